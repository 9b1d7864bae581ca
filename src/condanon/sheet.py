"""Contact sheets for visual review: the original beside the anonymised image, each face boxed and labelled.

A sheet is one BGR image: the original on the left, the anonymised image on the right, both at the
same scale. On the right half every face gets its box and a label: its index, the verdict (green
``ok`` for ``"anonymized"``, red ``fallback`` otherwise) and, where the report has them, sex, age and
emotion before and after (``F 31→29 happy→happy``). `index_markdown` lists a run's sheets.
Nothing here prints or writes files; the ``condanon sheet`` command does.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from urllib.parse import quote

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import ConfigError
from .types import Attributes, Box, FaceReport, Result

log = logging.getLogger(__name__)

MIN_MAX_SIDE = 64
"""The smallest ``max_side`` accepted: below it, neither the faces nor the labels can be made out."""

OK_COLOUR = (60, 220, 60)
FALLBACK_COLOUR = (255, 60, 60)
TEXT_COLOUR = (255, 255, 255)
LABEL_BACKGROUND = (0, 0, 0)
"""RGB colours of the boxes and labels."""

Segment = tuple[str, tuple[int, int, int]]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def check_max_side(max_side: int) -> int:
    """Return ``max_side`` if a sheet can be that small; raise `ConfigError` otherwise."""
    if max_side < MIN_MAX_SIDE:
        raise ConfigError(f"max_side (--max-side) must be at least {MIN_MAX_SIDE} px, not {max_side}")
    return max_side


def pair_scale(width: int, height: int, max_side: int) -> float:
    """Return the factor (at most 1) that fits two ``width`` x ``height`` images side by side within ``max_side``."""
    return min(1.0, check_max_side(max_side) / max(2 * width, height))


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Return the ``(width, height)`` of each half of the sheet for an image of the given size."""
    scale = pair_scale(width, height, max_side)
    return max(1, math.floor(width * scale + 1e-9)), max(1, math.floor(height * scale + 1e-9))


@functools.lru_cache(maxsize=8)
def _font(size: int) -> Font:
    """Return a TrueType font of ``size`` px: DejaVu Sans where installed, else Pillow's own."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        log.debug("DejaVuSans.ttf not found; using Pillow's default font")
    try:
        return ImageFont.load_default(size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1, or built without FreeType
        return ImageFont.load_default()


@functools.lru_cache(maxsize=8)
def _arrow(size: int) -> str:
    """Return ``"→"`` if the label font draws it, else ``"->"``."""
    font = _font(size)
    try:
        arrow = font.getmask("→")
        missing = font.getmask("\uffff")  # a code point no font has: its mask is the "missing glyph" box
    except (UnicodeError, OSError, ValueError):
        return "->"
    same = arrow.size == missing.size and bytes(arrow) == bytes(missing)
    return "->" if same else "→"


def _change(before: str | None, after: str | None, arrow: str, collapse: bool = False) -> str | None:
    """Return ``"before→after"``, or one side when the other is unknown (or when equal and ``collapse``)."""
    if before is None and after is None:
        return None
    if after is None or (collapse and before == after):
        return before
    return f"{'?' if before is None else before}{arrow}{after}"


def _sex(attributes: Attributes | None) -> str | None:
    if attributes is None or attributes.sex is None:
        return None
    return {"female": "F", "male": "M"}.get(attributes.sex, attributes.sex)


def _age(attributes: Attributes | None) -> str | None:
    return None if attributes is None or attributes.age is None else f"{attributes.age:.0f}"


def _emotion(attributes: Attributes | None) -> str | None:
    return None if attributes is None else attributes.emotion


def attribute_text(report: FaceReport, arrow: str = "→") -> str:
    """Return ``"F 31→29 happy→happy"``: sex (once if unchanged), age and emotion before and after; "" if none."""
    before, after = report.attributes_before, report.attributes_after
    parts = [
        _change(_sex(before), _sex(after), arrow, collapse=True),
        _change(_age(before), _age(after), arrow),
        _change(_emotion(before), _emotion(after), arrow),
    ]
    return " ".join(p for p in parts if p)


def label_segments(report: FaceReport, arrow: str = "→") -> list[Segment]:
    """Return the label of one face as ``(text, RGB colour)`` pieces: index, verdict, attributes."""
    ok = report.verdict == "anonymized"
    segments: list[Segment] = [
        (f"{report.index} ", TEXT_COLOUR),
        ("ok" if ok else "fallback", OK_COLOUR if ok else FALLBACK_COLOUR),
    ]
    attributes = attribute_text(report, arrow)
    if attributes:
        segments.append((f" {attributes}", TEXT_COLOUR))
    return segments


def face_label(report: FaceReport, arrow: str = "→") -> str:
    """Return the label of one face as plain text, e.g. ``"0 ok F 31→29 happy→happy"``."""
    return "".join(text for text, _ in label_segments(report, arrow))


Rect = tuple[int, int, int, int]
"""``(x1, y1, x2, y2)`` in pixels, ``x2``/``y2`` exclusive."""


def _overlaps(a: Rect, b: Rect) -> bool:
    """Return whether two rectangles share any pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place(face: Rect, size: tuple[int, int], bounds: tuple[int, int], obstacles: list[Rect]) -> Rect | None:
    """Return where a label of ``size`` goes by ``face`` (above, below, then further out) clear of ``obstacles``."""
    (w, h), (width, height) = size, bounds
    if w > width or h > height:
        return None
    x1, y1, x2, y2 = face
    tops = [y1 - h, y2] + [t for k in (1, 2, 3) for t in (y1 - h - k * h, y2 + k * h)]
    lefts = dict.fromkeys(int(np.clip(x, 0, width - w)) for x in (x1, x2 - w))
    for top in tops:
        if not 0 <= top <= height - h:
            continue
        for left in lefts:
            rect = (left, top, left + w, top + h)
            if not any(_overlaps(rect, other) for other in obstacles):
                return rect
    return None


def _draw_labels(bgr: np.ndarray, reports: list[FaceReport], factors: tuple[float, float]) -> np.ndarray:
    """Return a copy of ``bgr`` (scaled from the reports' image by ``factors``, x and y) with every face's box and
    label.

    Labels avoid each other and the other faces' boxes where they can; in a crowd a label that does
    not fit shrinks to index and verdict.
    """
    height, width = bgr.shape[:2]
    image = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
    draw = ImageDraw.Draw(image)
    size = int(np.clip(round(height / 55), 11, 22))
    font, arrow = _font(size), _arrow(size)
    line = max(2, round(height / 300))
    pad = max(1, size // 6)
    boxes: list[Rect] = []
    for report in reports:
        box = report.face.box
        scaled = Box(box.x1 * factors[0], box.y1 * factors[1], box.x2 * factors[0], box.y2 * factors[1])
        x1, y1, x2, y2 = (round(v) for v in scaled.clipped(width, height).to_list())
        boxes.append((x1, y1, max(x1 + 1, x2), max(y1 + 1, y2)))
    labels: list[Rect] = []
    for report, face in zip(reports, boxes):
        colour = OK_COLOUR if report.verdict == "anonymized" else FALLBACK_COLOUR
        draw.rectangle((face[0], face[1], face[2] - 1, face[3] - 1), outline=colour, width=line)
        full = label_segments(report, arrow)
        choices = [full, full[:2]] if len(full) > 2 else [full]
        others = [b for b in boxes if b is not face]
        placed: tuple[list[Segment], Rect] | None = None
        for obstacles in (labels + others, labels):
            for segments in choices:
                text_width = round(sum(font.getlength(text) for text, _ in segments))
                rect = _place(face, (text_width + 2 * pad, size + 2 * pad), (width, height), obstacles)
                if rect is not None:
                    placed = (segments, rect)
                    break
            if placed:
                break
        if placed is None:  # no free spot: the short label above (or inside) the box, overlapping
            segments = choices[-1]
            w, h = round(sum(font.getlength(text) for text, _ in segments)) + 2 * pad, size + 2 * pad
            left, top = int(np.clip(face[0], 0, max(0, width - w))), int(np.clip(face[1] - h, 0, max(0, height - h)))
            placed = (segments, (left, top, left + w, top + h))
        segments, rect = placed
        labels.append(rect)
        draw.rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1), fill=LABEL_BACKGROUND)
        x = float(rect[0] + pad)
        for text, text_colour in segments:
            draw.text((x, rect[1] + pad), text, fill=text_colour, font=font)
            x += font.getlength(text)
    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1])


def render_sheet(original: np.ndarray, result: Result, max_side: int = 1600) -> np.ndarray:
    """Return the BGR sheet: ``original`` (BGR) on the left, ``result``'s image boxed and labelled on the right.

    Both halves have the same size; they are scaled down (never up) so that the sheet's longer side
    is at most ``max_side``.
    """
    anonymised = result.bgr
    if original.shape[:2] != anonymised.shape[:2]:
        raise ValueError(
            f"original is {original.shape[1]}x{original.shape[0]} px but the result is "
            f"{anonymised.shape[1]}x{anonymised.shape[0]} px"
        )
    height, width = original.shape[:2]
    size = scaled_size(width, height, max_side)
    if size != (width, height):
        original = cv2.resize(original, size, interpolation=cv2.INTER_AREA)
        anonymised = cv2.resize(anonymised, size, interpolation=cv2.INTER_AREA)
    right = _draw_labels(anonymised, result.reports, (size[0] / width, size[1] / height))
    return np.ascontiguousarray(np.hstack([original[:, :, :3], right]))


@dataclass
class SheetEntry:
    """One row of the index: an input, its sheet (a name inside the output folder) and what happened."""

    source: str
    sheet: str | None = None
    faces: int = 0
    reasons: dict[int, str] = field(default_factory=dict)
    """The fallback reason of each face that fell back, by face index."""
    error: str | None = None

    @classmethod
    def from_result(cls, source: str, sheet: str, result: Result) -> SheetEntry:
        """Return the entry of an input whose sheet was written under the name ``sheet``."""
        reasons = {r.index: r.reason or "no reason given" for r in result.reports if r.verdict != "anonymized"}
        return cls(source=source, sheet=sheet, faces=len(result.reports), reasons=reasons)

    @property
    def fallbacks(self) -> int:
        """Return the number of faces that fell back."""
        return len(self.reasons)


def unique_name(stem: str, taken: set[str]) -> str:
    """Return ``stem.jpg``, or ``stem-2.jpg``, ``stem-3.jpg``... when taken (case-insensitive); add it to ``taken``."""
    name, number = f"{stem}.jpg", 1
    while name.lower() in taken:
        number += 1
        name = f"{stem}-{number}.jpg"
    taken.add(name.lower())
    return name


def _cell(text: str) -> str:
    """Return ``text`` safe inside a Markdown table cell (one line, pipes escaped)."""
    return " ".join(text.split()).replace("|", "\\|")


def index_markdown(entries: list[SheetEntry], method: str, seed: int) -> str:
    """Return ``index.md``: a summary line and one table row per input, linking its sheet."""
    faces = sum(e.faces for e in entries)
    fallbacks = sum(e.fallbacks for e in entries)
    failed = sum(e.error is not None for e in entries)
    lines = [
        "# Contact sheets",
        "",
        f"Method `{method}`, seed {seed}: {len(entries)} images, {faces} faces, {fallbacks} fallbacks"
        + (f", {failed} failed" if failed else "")
        + ". Left: original; right: anonymised (green `ok`, red `fallback`).",
        "",
        "| sheet | source | faces | fallbacks | fallback reasons |",
        "|---|---|---:|---:|---|",
    ]
    for entry in entries:
        source = _cell(entry.source)
        if entry.error is not None or entry.sheet is None:
            lines.append(f"| — | {source} | — | — | error: {_cell(entry.error or 'no sheet')} |")
            continue
        link = f"[{_cell(entry.sheet).replace('[', '(').replace(']', ')')}]({quote(entry.sheet)})"
        reasons = "<br>".join(f"face {i}: {_cell(reason)}" for i, reason in sorted(entry.reasons.items()))
        lines.append(f"| {link} | {source} | {entry.faces} | {entry.fallbacks} | {reasons} |")
    return "\n".join(lines) + "\n"
