"""The independent leak check of one photo: which faces of the original are still recognisable in the output.

    from condanon.evaluation.leaks import leaked_faces
    report = leaked_faces(original_bgr, output_bgr)
    report.leaked, report.faces, [f.box for f in report.face_leaks if f.leaked]

It is the check a reviewer used for issue #13, deliberately independent of the product's defaults
(detector, thresholds, orientation search): it calls YuNet directly with its own settings.

**The judge's faces** (found on the ORIGINAL only, `judge_faces`):

1. YuNet (`YuNetDetector`, score threshold ``WEAK_SCORE`` = 0.3, its own pyramid at longer side 1280,
   640 and 320 px and native-resolution tiles over 1280 px) on two scales: the image as it is, and the
   image upscaled x2 (`UPSCALE`, bicubic), whose native-resolution tiles find faces down to ~5 px tall
   in the original. The two passes are merged by `condanon.detection.suppress` (IoU 0.5, best score kept).
2. A face scoring >= ``STRONG_SCORE`` (0.5) on either scale is kept as it is.
3. A weak hit (0.3 <= score < 0.5) is kept only when confirmed: YuNet at 0.5 finds a face on a zoomed
   crop around it (the box grown x``CONFIRM_CROP`` = 2.5 about its centre, resized so its longer side is
   ``CONFIRM_SIDE`` = 320 px) that overlaps the box by IoU >= ``CONFIRM_IOU`` = 0.3. The confirmed face
   takes the zoomed detection's box, score and landmarks (mapped back), which are the sharper ones.

**The verdict** (per face, `judge_face`): both images are read at the original face's place with the
original's 5 landmarks (SFace aligns on them, dlib places its 5-point predictor in the box), and each
judge compares the two vectors at its own verification threshold:

- ``sface``: OpenCV SFace, cosine >= 0.363;
- ``dlib``: dlib ResNet, L2 < 0.4 on unit vectors, which is dlib's published 0.6 on its raw
  descriptors (norm ~1.5; see `condanon.identity.dlib_resnet`).

A judge that matches is asked a control, as `condanon.evaluation.video` does: the output with the face
painted out in its mean colour (the box grown x2). A judge that also matches the original with that
blank cannot judge this face (dlib "recognises" many small faces in a flat patch) and its verdict is
dropped. A face LEAKS when any remaining judge matches; a face no judge can judge is ``unchecked``
(counted apart, not as leaked).

**Caveat:** YuNet between 0.5 and 0.6 often fires on things that are not faces (hands, an ear, a bottle,
lamps), and an anonymiser rightly leaves those alone, so they "leak". Such faces are flagged
``marginal`` (score < ``MARGINAL_SCORE`` = 0.6) and `LeakReport.leaked_sure` counts the leaks without
them; both counts are reported.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..detection import suppress
from ..detection.yunet import YuNetDetector
from ..identity import EMBEDDERS, Embedder, embed_original
from ..identity import judge as identity_judge
from ..types import Box, Face
from .video_leaks import embed_one, painted_out

STRONG_SCORE = 0.5
"""A YuNet face at or above this score is a face without further checks."""
WEAK_SCORE = 0.3
"""Hits between this and ``STRONG_SCORE`` are kept only when a zoomed crop confirms them."""
UPSCALE = 2.0
"""The second scale: the original upscaled by this factor (small faces)."""
MERGE_IOU = 0.5
"""Detections of the two scales overlapping by this IoU are one face."""
CONFIRM_CROP = 2.5
"""A weak hit is re-examined in its box grown by this factor about its centre..."""
CONFIRM_SIDE = 320
"""...resized so the crop's longer side is this many pixels (never shrunk)..."""
CONFIRM_IOU = 0.3
"""...where a YuNet face at ``STRONG_SCORE`` must overlap the hit by this IoU."""
MARGINAL_SCORE = 0.6
"""Faces scoring below this are flagged ``marginal``: of the 26 judge hits under 0.65 on the scenes and a
crowd frame, looked at by eye, about 15 were not faces (hands, an ear, a bottle, lamps, tables, a printed
crest, the back of a head), while several real but blurred faces of spectators also score 0.5-0.6.
Counts are given with and without them (`LeakReport.leaked_sure`)."""
JUDGES: tuple[str, ...] = ("sface", "dlib")
"""The embedders that judge, by their `EMBEDDERS` names."""


@dataclass
class FaceLeak:
    """The verdict on one face of the original."""

    box: Box
    score: float
    scale: str
    """Where the judge found it: ``"x1"``, ``"x2"`` (upscaled) or ``"zoom"`` (a weak hit confirmed on a zoomed crop)."""
    leaked: bool = False
    judges: list[str] = field(default_factory=list)
    """The judges that still match the output with the original (empty when it did not leak)."""
    similarities: dict[str, float] = field(default_factory=dict)
    """Each judge's value (cosine for sface, L2 for dlib) between the original and the output."""
    unjudged: list[str] = field(default_factory=list)
    """Judges that could not judge this face (no reading, or they also match a blank)."""
    checked: bool = True
    """Whether at least one judge could judge this face."""

    @property
    def marginal(self) -> bool:
        """Return whether the judge's score is below ``MARGINAL_SCORE`` (often not a face at all)."""
        return self.score < MARGINAL_SCORE

    @property
    def size(self) -> int:
        """Return the face's height in pixels (YuNet boxes are about square)."""
        return round(self.box.height)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "box": [round(v) for v in self.box.to_list()],
            "size": self.size,
            "score": round(self.score, 3),
            "scale": self.scale,
            "marginal": self.marginal,
            "leaked": self.leaked,
            "judges": list(self.judges),
            "similarities": {k: round(v, 4) for k, v in self.similarities.items()},
            "unjudged": list(self.unjudged),
            "checked": self.checked,
        }


@dataclass
class LeakReport:
    """The leak check of one original / output pair."""

    face_leaks: list[FaceLeak]
    seconds: float = 0.0

    @property
    def faces(self) -> int:
        """Return the faces the judge found on the original."""
        return len(self.face_leaks)

    @property
    def leaked(self) -> int:
        """Return the faces that still match their original under any judge."""
        return sum(f.leaked for f in self.face_leaks)

    @property
    def leaked_sure(self) -> int:
        """Return the leaked faces that the judge scored at least ``MARGINAL_SCORE`` (leaving out marginal hits)."""
        return sum(f.leaked and not f.marginal for f in self.face_leaks)

    @property
    def unchecked(self) -> int:
        """Return the faces no judge could judge (not counted as leaked)."""
        return sum(not f.checked for f in self.face_leaks)

    @property
    def by_judge(self) -> dict[str, int]:
        """Return the leaked faces each judge matched (a face matched by both counts for both)."""
        counts: dict[str, int] = {}
        for face in self.face_leaks:
            for judge in face.judges:
                counts[judge] = counts.get(judge, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "faces": self.faces,
            "leaked": self.leaked,
            "leaked_sure": self.leaked_sure,
            "unchecked": self.unchecked,
            "by_judge": self.by_judge,
            "seconds": round(self.seconds, 2),
            "face_leaks": [f.to_dict() for f in self.face_leaks],
        }


# ---------------------------------------------------------------------------------------------------
# The judge: its models, created once


class Judge:
    """The judge's YuNet detectors and embedders, loaded once and reused for every photo."""

    def __init__(self, judges: Sequence[str] = JUDGES) -> None:
        self.finder = YuNetDetector(score_threshold=WEAK_SCORE)
        self.confirmer = YuNetDetector(score_threshold=STRONG_SCORE)
        self.embedders: list[Embedder] = [EMBEDDERS.create(name) for name in judges]

    # -- the faces of the original ---------------------------------------------------------------

    def find(self, original: np.ndarray) -> list[Face]:
        """Return the judge's faces of ``original`` (BGR): strong hits on two scales plus confirmed weak ones."""
        height, width = original.shape[:2]
        plain = [dataclasses.replace(f, detector="x1") for f in self.finder.detect(original)]
        big = cv2.resize(original, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC)
        upscaled = [_scaled_face(f, 1.0 / UPSCALE, "x2") for f in self.finder.detect(big)]
        faces = []
        for found in suppress(plain + upscaled, MERGE_IOU):
            face = self.confirm(original, found) if found.score < STRONG_SCORE else found
            if face is None:
                continue
            face.box = face.box.clipped(width, height)
            if face.box.width >= 2 and face.box.height >= 2:
                faces.append(face)
        return faces

    def confirm(self, original: np.ndarray, face: Face) -> Face | None:
        """Return YuNet's face (at 0.5) at ``face``'s place on a zoomed crop, mapped back, or ``None``."""
        height, width = original.shape[:2]
        x1, y1, x2, y2 = face.box.scaled(CONFIRM_CROP).clipped(width, height).to_int()
        if min(x2 - x1, y2 - y1) < 4:
            return None
        crop = np.ascontiguousarray(original[y1:y2, x1:x2])
        zoom = max(1.0, CONFIRM_SIDE / max(crop.shape[:2]))
        if zoom > 1.0:
            crop = cv2.resize(crop, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
        found = [_scaled_face(f, 1.0 / zoom, "zoom", (x1, y1)) for f in self.confirmer.detect(crop)]
        best = max(found, key=lambda f: f.box.iou(face.box), default=None)
        if best is None or best.box.iou(face.box) < CONFIRM_IOU:
            return None
        return best

    # -- the verdict -----------------------------------------------------------------------------

    def judge(self, original: np.ndarray, output: np.ndarray, face: Face) -> FaceLeak:
        """Return the verdict on one face of ``original``: does the output at its place still match it?"""
        verdict = FaceLeak(box=face.box, score=face.score, scale=face.detector)
        blank = None
        for embedder in self.embedders:
            try:
                before = embed_original(embedder, original, [face])[0]
            except ValueError:  # cannot read it (SFace without landmarks)
                verdict.unjudged.append(embedder.name)
                continue
            after = embed_one(embedder, output, face)
            if after is None:
                verdict.unjudged.append(embedder.name)
                continue
            check = identity_judge(embedder, before, after)
            verdict.similarities[embedder.name] = check.value  # type: ignore[assignment]  # it ran: never None
            if not check.matched:
                continue
            blank = painted_out(output, face.box) if blank is None else blank
            control = embed_one(embedder, blank, face)
            if control is not None and identity_judge(embedder, before, control).matched:
                verdict.unjudged.append(embedder.name)  # it matches a flat blank too: it cannot judge this face
                continue
            verdict.judges.append(embedder.name)
        verdict.leaked = bool(verdict.judges)
        verdict.checked = len(verdict.unjudged) < len(self.embedders)
        return verdict

    def check(self, original: np.ndarray, output: np.ndarray, faces: list[Face] | None = None) -> LeakReport:
        """Return the leak report of ``output`` against ``original`` (faces: `find`'s, computed if not given)."""
        if original.shape != output.shape:
            raise ValueError(f"the output is {output.shape}, the original {original.shape}: they must match")
        start = time.perf_counter()
        faces = self.find(original) if faces is None else faces
        verdicts = [self.judge(original, output, face) for face in faces]
        return LeakReport(face_leaks=verdicts, seconds=time.perf_counter() - start)


def _scaled_face(face: Face, factor: float, label: str, offset: tuple[float, float] = (0.0, 0.0)) -> Face:
    """Return ``face`` with its box and landmarks multiplied by ``factor`` then moved by ``offset``."""
    b = face.box
    box = Box(
        b.x1 * factor + offset[0], b.y1 * factor + offset[1], b.x2 * factor + offset[0], b.y2 * factor + offset[1]
    )
    points = None
    if face.landmarks5 is not None:
        points = face.landmarks5 * np.float32(factor) + np.asarray(offset, np.float32)
    return dataclasses.replace(face, box=box, landmarks5=points, detector=label, embeddings={})


_JUDGE: Judge | None = None


def default_judge() -> Judge:
    """Return the shared `Judge` (created on first use)."""
    global _JUDGE
    if _JUDGE is None:
        _JUDGE = Judge()
    return _JUDGE


def judge_faces(original_bgr: np.ndarray) -> list[Face]:
    """Return the judge's faces of ``original_bgr`` (reuse them across outputs of one original)."""
    return default_judge().find(original_bgr)


def leaked_faces(original_bgr: np.ndarray, output_bgr: np.ndarray, faces: list[Face] | None = None) -> LeakReport:
    """Return which faces of ``original_bgr`` (the judge's, see the module doc) still match in ``output_bgr``.

    Both are BGR uint8 arrays of the same shape. ``faces`` are `judge_faces` of the original, to skip
    the detection when one original is judged against several outputs (their embeddings are cached).
    """
    return default_judge().check(original_bgr, output_bgr, faces)
