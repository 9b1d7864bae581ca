"""The anonymisation methods and their options: one registry that the SDK, the CLI, jobs and evaluation read.

Each method has a frozen options dataclass (``SyntheticOptions(candidates=8)``, ``BlurOptions(strength=0.3)``).
`METHOD_OPTIONS` maps method names to them; the CLI's ``--method`` choices and per-method flags, a resumable
job's settings digest and evaluation's ``name:key=value`` specs are all derived from it, so a new option is
added in one place. A field's ``metadata`` names its command-line flag and help (no flag: SDK only).

This module is cheap to import (no model, no OpenCV): the CLI reads it before any command runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .errors import ConfigError

Shape = Literal["box", "ellipse"]


def _option(default: Any, flag: str | None = None, help: str = "", **argparse: Any) -> Any:
    """Return a dataclass field whose metadata says how the CLI exposes it (``flag`` ``None``: it does not)."""
    return field(default=default, metadata={"flag": flag, "help": help, "argparse": argparse})


@dataclass(frozen=True)
class MethodOptions:
    """Base of every method's options; ``name`` is the method's registered name."""

    name: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the options as plain JSON types, with the method's name."""
        return {"method": self.name} | dataclasses.asdict(self)


@dataclass(frozen=True)
class ObscureOptions(MethodOptions):
    """A conventional method's region: its shape and its size relative to the face box."""

    # _option returns a dataclasses.field (RUF009 reads it as a call that makes a shared default)
    shape: Shape = _option("ellipse", "--shape", "region shape", choices=["ellipse", "box"])  # noqa: RUF009
    scale: float = _option(1.3, "--mask-scale", "region size relative to the face box", type=float)


@dataclass(frozen=True)
class BlurOptions(ObscureOptions):
    """Gaussian blur over the face region."""

    name: ClassVar[str] = "blur"
    strength: float = _option(0.5, "--strength", "blur kernel as a fraction of the face size", type=float)


@dataclass(frozen=True)
class PixelateOptions(ObscureOptions):
    """A mosaic over the face region."""

    name: ClassVar[str] = "pixelate"
    blocks: int = _option(8, "--blocks", "mosaic cells across the face", type=int)


@dataclass(frozen=True)
class MaskOptions(ObscureOptions):
    """A solid black mask over the face region (the default fallback)."""

    name: ClassVar[str] = "mask"


@dataclass(frozen=True)
class SynthesisOptions(MethodOptions):
    """A method that draws a new face, checked by the synthesis loop (`condanon.synthesis.backend`).

    ``candidates``: the budget of candidates per face. ``margin``: a candidate passes identity this far under
    the identity bar for the original's age (`condanon.identity.strangers`); the final image is checked
    against the bar itself. ``strict``: a face whose every candidate drifts on a preserved attribute falls
    back instead of keeping the closest safe one (docs/synthesis.md).
    """

    candidates: int = 6
    margin: float = 0.02
    strict: bool = False

    def backend(self, embedder: Any, checks: Any, detect: Any, final: Any) -> Any:
        """Return the synthesis backend (a `CheckedSynthesizer`) for these options.

        ``checks`` is the `LoopChecks` built from the options and the attributes to preserve, ``detect``
        the still-a-face detector, ``final`` the pipeline's attribute estimator (the final gate).
        """
        raise NotImplementedError


@dataclass(frozen=True)
class SyntheticOptions(SynthesisOptions):
    """A new face from the prototype bank that keeps age, sex, expression and pose (docs/synthesis.md).

    ``shape_mix``: how far the outline and nose move to the prototype's (0 to 1). ``feature_mix``: how far
    eyes, brows and mouth move, whole, to the prototype's places (their shapes, the expression, stay).
    """

    name: ClassVar[str] = "synthetic"
    candidates: int = _option(
        6, "--candidates", "synthetic/dp2 candidates tried per face before the fallback (default 6 / 4)", type=int
    )
    shape_mix: float = 1.0
    feature_mix: float = 1.0

    def backend(self, embedder: Any, checks: Any, detect: Any, final: Any) -> Any:
        """Return the prototype `Synthesizer`."""
        from .synthesis import Synthesizer

        return Synthesizer(embedder, checks, detect, final, shape_mix=self.shape_mix, feature_mix=self.feature_mix)


@dataclass(frozen=True)
class DP2Options(SynthesisOptions):
    """DeepPrivacy2's generator inpaints the face (needs ``condanon[dp2]`` and a checkpoint, docs/dp2.md).

    ``weights``: ``"fdf256"``, ``"fdf128"`` (official, md5-checked in ``$TORCH_HOME/hub/checkpoints``) or a
    file. ``truncation``: of the candidates after the first (the first is DP2's average latent).
    ``steps``: gradient steps on the best latent when no candidate passed (`condanon.dp2.guidance`).
    """

    name: ClassVar[str] = "dp2"
    candidates: int = _option(
        4, "--candidates", "synthetic/dp2 candidates tried per face before the fallback (default 6 / 4)", type=int
    )
    weights: str = _option(
        "fdf256", "--dp2-weights", "dp2 checkpoint: fdf256, fdf128 (in $TORCH_HOME/hub/checkpoints) or a file"
    )
    truncation: float = _option(
        0.5,
        "--truncation",
        "dp2: truncation of the candidates after the first (0: DP2's average latent, 1: none)",
        type=float,
    )
    steps: int = _option(
        0, "--dp2-steps", "dp2: gradient steps on the best candidate's latent when none passed (~3 s each)", type=int
    )

    def backend(self, embedder: Any, checks: Any, detect: Any, final: Any) -> Any:
        """Return the `DP2Synthesizer` (imports PyTorch: only for this method)."""
        from .dp2.synthesizer import DP2Synthesizer

        return DP2Synthesizer(
            embedder, checks, detect, final, weights=self.weights, truncation=self.truncation, steps=self.steps
        )


METHOD_OPTIONS: dict[str, type[MethodOptions]] = {
    options.name: options for options in (SyntheticOptions, DP2Options, PixelateOptions, BlurOptions, MaskOptions)
}
"""Every method by name, to its options class."""
AUTO = "auto"
"""Not a method of its own: ``dp2`` where PyTorch and its checkpoint are installed, else ``synthetic``
(`resolve_method`).
"""
METHODS: tuple[str, ...] = (*METHOD_OPTIONS, AUTO)
"""The built-in methods' names (`method_names` also lists registered ones)."""
FALLBACKS: tuple[str, ...] = tuple(
    name for name, options in METHOD_OPTIONS.items() if issubclass(options, ObscureOptions)
)


def register_method(options: type[SynthesisOptions]) -> type[SynthesisOptions]:
    """Register a synthesis method by its options class (a decorator): the SDK, ``condanon evaluate``'s
    ``name:key=value`` specs and `method_names` know it from then on (docs/extending.md)."""
    if not options.name or options.name in METHOD_OPTIONS or options.name == AUTO:
        raise ConfigError(f"method name {options.name!r} is empty or taken")
    if not issubclass(options, SynthesisOptions):
        raise ConfigError("a registered method's options subclass SynthesisOptions")
    METHOD_OPTIONS[options.name] = options
    return options


def method_names() -> tuple[str, ...]:
    """Return every method's name, registered ones included, and ``auto``."""
    return (*METHOD_OPTIONS, AUTO)


def option_names(method: str) -> tuple[str, ...]:
    """Return the option names of ``method``."""
    return tuple(f.name for f in dataclasses.fields(_options_class(method)))


def method_options(
    method: str, values: Mapping[str, Any] | None = None, *, ignore_others: bool = False
) -> MethodOptions:
    """Return ``method``'s options from ``values`` (missing ones keep their defaults, ``None`` values too).

    A name that is not one of the method's options is a `ConfigError` (it lists the known ones), unless
    ``ignore_others``: the CLI's flags are shared by all methods and each takes its own.
    """
    cls = _options_class(method)
    known = option_names(method)
    values = {k: v for k, v in (values or {}).items() if v is not None}
    unknown = sorted(set(values) - set(known))
    if unknown and not ignore_others:
        raise ConfigError(
            f"{method} has no option {', '.join(map(repr, unknown))} (its options: {', '.join(known) or 'none'})"
        )
    return cls(**{k: v for k, v in values.items() if k in known})


def _options_class(method: str) -> type[MethodOptions]:
    try:
        return METHOD_OPTIONS[method]
    except KeyError:
        raise ConfigError(f"unknown method {method!r} (known: {', '.join(method_names())})") from None


def cli_options() -> dict[str, tuple[str, dict[str, Any]]]:
    """Return ``{option name: (flag, argparse keywords)}`` for every option some method exposes on the command line."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for cls in METHOD_OPTIONS.values():
        for f in dataclasses.fields(cls):
            flag = f.metadata.get("flag")
            if flag and f.name not in out:
                out[f.name] = (
                    flag,
                    {"dest": f.name, "default": None, "help": f.metadata["help"], **f.metadata["argparse"]},
                )
    return out
