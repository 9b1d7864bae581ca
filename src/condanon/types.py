"""The records that flow through the pipeline: `Box`, `Attributes`, `Face`, `FaceReport`, `Result`.

Images inside the library are always BGR ``uint8`` arrays of shape ``(H, W, 3)`` (OpenCV's order);
the public entry points convert at the edge. Every record has ``to_dict()`` that returns plain JSON
types only (no numpy arrays, no numpy scalars).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .failures import Failure

Sex = Literal["female", "male"]
Channels = Literal["bgr", "rgb"]

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates, ``x2``/``y2`` exclusive."""

    x1: float
    y1: float
    x2: float
    y2: float

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        """Return the box with top-left ``(x, y)`` and size ``(w, h)``."""
        return cls(float(x), float(y), float(x + w), float(y + h))

    @property
    def width(self) -> float:
        """Return the box width."""
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        """Return the box height."""
        return self.y2 - self.y1

    @property
    def center(self) -> tuple[float, float]:
        """Return the box centre ``(cx, cy)``."""
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2

    @property
    def area(self) -> float:
        """Return the box area (0 for a degenerate box)."""
        return max(0.0, self.width) * max(0.0, self.height)

    def scaled(self, factor: float) -> Box:
        """Return the box grown (or shrunk) about its centre by ``factor``."""
        cx, cy = self.center
        hw, hh = self.width * factor / 2, self.height * factor / 2
        return Box(cx - hw, cy - hh, cx + hw, cy + hh)

    def shifted(self, dx: float, dy: float) -> Box:
        """Return the box moved by ``(dx, dy)``."""
        return Box(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)

    def within(self, width: int, height: int, margin: float = 1.0) -> bool:
        """Return whether the box lies inside an image of the given size, ``margin`` pixels clear of every edge."""
        return self.x1 >= margin and self.y1 >= margin and self.x2 <= width - margin and self.y2 <= height - margin

    def clipped(self, width: int, height: int) -> Box:
        """Return the box clipped to an image of the given size."""
        return Box(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )

    def to_int(self) -> tuple[int, int, int, int]:
        """Return the smallest integer box ``(x1, y1, x2, y2)`` that contains this one."""
        return (
            int(np.floor(self.x1)),
            int(np.floor(self.y1)),
            int(np.ceil(self.x2)),
            int(np.ceil(self.y2)),
        )

    def iou(self, other: Box) -> float:
        """Return the intersection over union with ``other``."""
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_list(self) -> list[float]:
        """Return ``[x1, y1, x2, y2]`` rounded to 0.1 px."""
        return [round(float(v), 1) for v in (self.x1, self.y1, self.x2, self.y2)]


@dataclass
class Attributes:
    """Age, sex and emotion of one face, each with its confidence; any may be ``None`` (not estimated)."""

    age: float | None = None
    age_std: float | None = None
    sex: Sex | None = None
    sex_confidence: float | None = None
    emotion: str | None = None
    emotion_probabilities: dict[str, float] = field(default_factory=dict)

    @property
    def emotion_confidence(self) -> float | None:
        """Return the probability of the dominant emotion, if one was estimated."""
        if self.emotion is None:
            return None
        return self.emotion_probabilities.get(self.emotion)

    def merged(self, other: Attributes) -> Attributes:
        """Return these attributes with every field that ``other`` estimated taken from ``other``."""
        return Attributes(
            age=other.age if other.age is not None else self.age,
            age_std=other.age_std if other.age is not None else self.age_std,
            sex=other.sex if other.sex is not None else self.sex,
            sex_confidence=other.sex_confidence if other.sex is not None else self.sex_confidence,
            emotion=other.emotion if other.emotion is not None else self.emotion,
            emotion_probabilities=(
                dict(other.emotion_probabilities) if other.emotion is not None else dict(self.emotion_probabilities)
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "age": _round(self.age, 1),
            "age_std": _round(self.age_std, 1),
            "sex": self.sex,
            "sex_confidence": _round(self.sex_confidence),
            "emotion": self.emotion,
            "emotion_confidence": _round(self.emotion_confidence),
            "emotion_probabilities": {k: _round(v) for k, v in self.emotion_probabilities.items()},
        }


@dataclass
class Face:
    """One detected face and everything the stages learn about it."""

    box: Box
    score: float
    landmarks5: np.ndarray | None = None
    """(5, 2) float32: right eye, left eye, nose tip, right mouth corner, left mouth corner (image coords)."""
    landmarks68: np.ndarray | None = None
    """(68, 2) float32 in iBUG-300W order, or ``None`` when not estimated."""
    detector: str = ""
    track_id: int | None = None
    attributes: Attributes | None = None
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    """Identity vectors of this face in the original image, by embedder name (filled on first use)."""
    angle: float = 0.0
    """Degrees (counter-clockwise) the image was turned to see this face upright; 0 for an upright face.

    A face with a non-zero angle carries its box, landmarks and embeddings in the upright view's coordinates
    while it is processed; the pipeline maps its box back to the image's for the report.
    """
    uncertain: bool = False
    """Whether the face is doubtful (found only by a recall net, or of doubtful faceness): it is still
    obscured, privacy-first, but never synthesised and never counted as a person. ``doubt`` says why."""
    doubt: str | None = None
    """Why the face is ``uncertain`` (``None`` for a face that is not)."""
    faceness: float | None = None
    """How likely the detection is a real human face (0 to 1, `condanon.faceness`); ``None`` when not checked."""

    def mark_uncertain(self, reason: str) -> None:
        """Mark the face uncertain and say why (the first reason is kept)."""
        if not self.uncertain:
            self.doubt = reason
        self.uncertain = True

    @property
    def embedding(self) -> np.ndarray | None:
        """Return the in-loop (SFace) identity vector of the original face, if computed."""
        return self.embeddings.get("sface")

    def to_dict(self, landmarks: bool = False) -> dict[str, Any]:
        """Return a JSON-ready dict (landmark lists only when ``landmarks`` is true)."""
        out: dict[str, Any] = {
            "box": self.box.to_list(),
            "score": _round(self.score),
            "detector": self.detector,
            "track_id": self.track_id,
            "angle": _round(self.angle, 1),
            "uncertain": self.uncertain,
            "doubt": self.doubt,
            "faceness": _round(self.faceness),
            "attributes": self.attributes.to_dict() if self.attributes else None,
        }
        if landmarks:
            for name in ("landmarks5", "landmarks68"):
                points = getattr(self, name)
                out[name] = None if points is None else np.round(points, 1).tolist()
        return out


Verdict = Literal["anonymized", "fallback"]


@dataclass
class IdentityCheck:
    """One embedder's comparison of the anonymised face with the original."""

    embedder: str
    metric: str
    value: float | None
    threshold: float
    matched: bool | None
    """Whether the embedder still recognises the person (``None`` if the check could not run)."""
    margin: float = 0.0
    """Room asked for on the safe side of ``threshold`` (`condanon.identity.judge`); 0: the bar itself."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``margin`` only where one was asked for)."""
        return {
            "embedder": self.embedder,
            "metric": self.metric,
            "value": _round(self.value),
            "threshold": self.threshold,
            "matched": self.matched,
        } | ({"margin": self.margin} if self.margin else {})


@dataclass
class FaceReport:
    """What happened to one face: method, attributes before and after, identity checks, verdict."""

    index: int
    face: Face
    method: str
    verdict: Verdict
    reason: str | None = None
    attributes_before: Attributes | None = None
    attributes_after: Attributes | None = None
    identity: list[IdentityCheck] = field(default_factory=list)
    attempts: int = 1
    timings_ms: dict[str, float] = field(default_factory=dict)
    synthesis: dict[str, Any] | None = None
    """The synthetic method's choice: prototypes, weights, k, candidates tried, in-loop similarity."""
    embeddings_after: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Identity vectors of the final output at the original face's place, by embedder (not in the JSON)."""
    failure: Failure | None = None
    """Why the face fell back, as a record (``reason`` is its ``detail``); ``None`` when it did not."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "index": self.index,
            "box": self.face.box.to_list(),
            "score": _round(self.face.score),
            "detector": self.face.detector,
            "track_id": self.face.track_id,
            "angle": _round(self.face.angle, 1),
            "uncertain": self.face.uncertain,
            "doubt": self.face.doubt,
            "faceness": _round(self.face.faceness),
            "method": self.method,
            "verdict": self.verdict,
            "reason": self.reason,
            "failure": None if self.failure is None else self.failure.to_dict(),
            "attributes_before": self.attributes_before.to_dict() if self.attributes_before else None,
            "attributes_after": self.attributes_after.to_dict() if self.attributes_after else None,
            "identity": [c.to_dict() for c in self.identity],
            "attempts": self.attempts,
            "synthesis": self.synthesis,
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


@dataclass
class Result:
    """The anonymised image with one report per face.

    ``image`` has the channel order named by ``channels``: the order the caller gave (``"bgr"`` for
    paths and OpenCV arrays, ``"rgb"`` for PIL images or when asked for).
    """

    image: np.ndarray
    faces: list[Face]
    reports: list[FaceReport]
    channels: Channels = "bgr"
    source: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def bgr(self) -> np.ndarray:
        """Return the image in BGR order."""
        return self.image if self.channels == "bgr" else self.image[..., ::-1].copy()

    @property
    def rgb(self) -> np.ndarray:
        """Return the image in RGB order."""
        return self.image if self.channels == "rgb" else self.image[..., ::-1].copy()

    def to_pil(self) -> Any:
        """Return the image as a PIL image."""
        from PIL import Image

        return Image.fromarray(self.rgb)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the image itself is left out)."""
        height, width = self.image.shape[:2]
        return {
            "source": self.source,
            "width": int(width),
            "height": int(height),
            "faces": [r.to_dict() for r in self.reports],
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }

    def to_json(self, **kwargs: Any) -> str:
        """Return the report as a JSON string."""
        return json.dumps(self.to_dict(), **kwargs)
