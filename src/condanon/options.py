"""What the `Anonymizer` finds faces with and checks them with: two small options records beside the method's.

``Anonymizer(method, preserve=..., seed=..., detection=Detection(...), checks=Checks(...), fallback=...)``:
the method's own options are in `condanon.methods`. All of them are frozen dataclasses with ``to_dict``,
so the settings that shape an output can be recorded and compared (resumable jobs, reports).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigError

DEFAULT_DETECTOR = "yunet+blazeface"
DEFAULT_FACENESS = "face-mesh"
ATTRIBUTE_READERS = ("age-sex", "emotion")
"""The attribute backends read where attributes are read (``Checks.attributes``)."""
ORIENTATIONS = ("auto", "full", "off")
Orientation = Literal["auto", "full", "off"]


@dataclass(frozen=True)
class Detection:
    """How faces are found.

    Args:
        detector: a name from ``DETECTORS`` (``"yunet+blazeface"``: YuNet, plus BlazeFace full-range for the
            profile, border-cut and small faces YuNet misses; ``"yunet+hog"``: the earlier default).
        score_threshold: the detector's score threshold where it has one (YuNet's default 0.6; lower
            finds more faces and more false ones).
        orientation: the search for sideways, upside-down and tilted faces (`condanon.orientation`):
            ``"auto"`` probes turned views cheaply and searches them fully where the upright pass found no
            face, found a turned one, or the probe found one; ``"full"`` always; ``"off"`` never.
        faceness: the check that a detection is a real face (`condanon.faceness`; ``None`` to skip). A face
            it doubts is still obscured by the fallback, never synthesised, and reported ``uncertain``.
    """

    detector: str = DEFAULT_DETECTOR
    score_threshold: float | None = None
    orientation: Orientation = "auto"
    faceness: str | None = DEFAULT_FACENESS

    def __post_init__(self) -> None:
        if self.score_threshold is not None and not 0.0 < self.score_threshold < 1.0:
            raise ConfigError(f"score_threshold must be between 0 and 1, not {self.score_threshold}")
        if self.orientation not in ORIENTATIONS:
            raise ConfigError(f"unknown orientation search {self.orientation!r} (known: {', '.join(ORIENTATIONS)})")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Checks:
    """What reads each face and checks the output.

    Args:
        attributes: attribute backends to run, merged in order (``ATTRIBUTE_ESTIMATORS``); ``None`` (the
            default): `ATTRIBUTE_READERS` where the method needs them (synthetic and dp2 keep them) and none
            for blur, pixelate and mask, which pay only for what is asked (``()``: never read).
        embedder: the in-loop identity checker: a face it still matches falls back. The synthetic method
            needs the recogniser its prototype bank ranks by (``sface``).
        attacker: a held-out recogniser, reported only (``"dlib"``, about 60 ms a face; ``None``, the
            default, to skip).
        verify: run the identity check (and re-read the attributes, where they are read) on the output.
    """

    attributes: tuple[str, ...] | None = None
    embedder: str = "sface"
    attacker: str | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        if self.attributes is not None:
            object.__setattr__(self, "attributes", tuple(self.attributes))

    def readers(self, method_keeps_attributes: bool) -> tuple[str, ...]:
        """Return the attribute backends to run for a method that keeps attributes (or does not)."""
        if self.attributes is not None:
            return tuple(self.attributes)
        return ATTRIBUTE_READERS if method_keeps_attributes else ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dataclasses.asdict(self) | {"attributes": None if self.attributes is None else list(self.attributes)}
