"""Named backends for each stage, chosen by name like timm's ``create_model``.

Each stage keeps one `Registry`; a backend registers a factory under a name, and callers build it
with ``REGISTRY.create(name, **options)``. Factories should be cheap: heavy weights load lazily
through `condanon.weights.load_once`, so creating a backend twice never loads a model twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> factory table for one pipeline stage."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._factories: dict[str, Callable[..., T]] = {}
        self._docs: dict[str, str] = {}

    def register(self, name: str, doc: str = "") -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Return a decorator that registers a factory under ``name``."""

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ConfigError(f"{self.stage} backend {name!r} is registered twice")
            self._factories[name] = factory
            self._docs[name] = doc or (factory.__doc__ or "").strip().split("\n")[0]
            return factory

        return decorate

    def create(self, name: str, **options: Any) -> T:
        """Return a new backend built by the factory registered as ``name``."""
        try:
            factory = self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise ConfigError(f"unknown {self.stage} backend {name!r} (known: {known})") from None
        return factory(**options)

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._factories)

    def describe(self) -> dict[str, str]:
        """Return ``{name: one-line description}``."""
        return {name: self._docs[name] for name in self.names()}

    def __contains__(self, name: object) -> bool:
        return name in self._factories
