"""Leaked faces of the shared scenes turned and tilted (issue #13): is every face found whatever the angle?

    python benchmarks/orientation_leaks.py [--scenes t1,bbt2] [--limit N] [--angles 0,90,180,270,30,-30,45,-45]
        [--method mask,synthetic] [--synthetic-scenes multiface,bbt2] [--detector NAME] [--control] [--out rows.json]

Each scene of ``data/scenes`` is turned by 90, 180 or 270 degrees (``np.rot90``, exact, counter-clockwise)
or tilted by +-30 and +-45 degrees (``cv2.warpAffine``, bilinear, on a canvas grown so that nothing is cut,
black corners; positive = counter-clockwise), anonymised by the product (``condanon.Anonymizer(method=...)``,
its defaults otherwise, or ``--detector``), turned back to the upright view (the exact inverse turn; for
tilts the inverse affine map, cropped to the original frame) and judged there by
`condanon.evaluation.leaks.leaked_faces` against the upright original. The judge's faces are found once
per scene, on the upright original.

Prints a Markdown table, one row per scene and angle: the judge's faces, then per method the faces the
product found (on the turned image), the faces leaked, and the seconds of the anonymisation; then the
totals per angle, and the cost per upright photo (the angle-0 runs) to compare before and after the
orientation search. ``--control`` adds, for tilts, the leaks of the un-anonymised round trip (turned
and turned back): it must leak every judged face, else the resampling itself hides faces from the judge.
A crash of the product is caught and shown as ``error`` in that cell (and counted in ``errors``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shared_data import shared_root

import condanon
from condanon.evaluation.leaks import MARGINAL_SCORE, judge_faces, leaked_faces

ANGLES = (0, 90, 180, 270, 30, -30, 45, -45)
METHODS = ("mask", "synthetic")


# ---------------------------------------------------------------------------------------------------
# Turning and turning back


@dataclass
class Turn:
    """One angle: ``forward`` turns the upright image, ``back`` turns an output of it back to the upright frame."""

    angle: int
    size: tuple[int, int]
    """The upright image's ``(width, height)``."""
    matrix: np.ndarray | None = None
    """The tilt's forward affine map (``None`` for the exact quarter turns)."""
    canvas: tuple[int, int] = (0, 0)

    @classmethod
    def of(cls, angle: int, image: np.ndarray) -> Turn:
        height, width = image.shape[:2]
        turn = cls(angle, (width, height))
        if angle % 90:
            matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
            cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
            new_w, new_h = int(np.ceil(width * cos + height * sin)), int(np.ceil(width * sin + height * cos))
            matrix[0, 2] += new_w / 2 - width / 2
            matrix[1, 2] += new_h / 2 - height / 2
            turn.matrix, turn.canvas = matrix, (new_w, new_h)
        return turn

    def forward(self, image: np.ndarray) -> np.ndarray:
        if self.matrix is None:
            return np.ascontiguousarray(np.rot90(image, k=(self.angle // 90) % 4))
        return cv2.warpAffine(image, self.matrix, self.canvas, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def back(self, image: np.ndarray) -> np.ndarray:
        if self.matrix is None:
            return np.ascontiguousarray(np.rot90(image, k=-(self.angle // 90) % 4))
        inverse = cv2.invertAffineTransform(self.matrix)
        return cv2.warpAffine(image, inverse, self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


# ---------------------------------------------------------------------------------------------------
# The runs


@dataclass
class Cell:
    """One method on one scene at one angle."""

    found: int | None = None
    leaked: int | None = None
    sure: int | None = None
    """Leaked faces the judge scored >= 0.6 (without its marginal hits, which are often not faces)."""
    unchecked: int | None = None
    seconds: float | None = None
    error: str | None = None
    leaks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Row:
    scene: str
    angle: int
    faces: int
    cells: dict[str, Cell] = field(default_factory=dict)
    faces_sure: int | None = None
    """The judge's faces scored >= 0.6."""
    control: int | None = None
    """Leaked faces of the un-anonymised round trip (``--control``, tilts only)."""


def run_one(anonymizer: condanon.Anonymizer, upright: np.ndarray, turn: Turn, faces: list[Any]) -> Cell:
    """Anonymise ``upright`` turned by ``turn``, turn the output back, and judge it."""
    cell = Cell()
    turned = turn.forward(upright)
    start = time.perf_counter()
    try:
        result = anonymizer.anonymize(turned)
    except Exception as error:  # noqa: BLE001  (a crash of the product is a result, not the end of the benchmark)
        cell.error = f"{type(error).__name__}: {error}"
        return cell
    cell.seconds = time.perf_counter() - start
    cell.found = len(result.faces)
    report = leaked_faces(upright, turn.back(result.image), faces)
    cell.leaked, cell.sure, cell.unchecked = report.leaked, report.leaked_sure, report.unchecked
    cell.leaks = [f.to_dict() for f in report.face_leaks if f.leaked]
    return cell


def scene_paths(root: Path, names: list[str] | None, limit: int | None) -> list[Path]:
    paths = sorted((root / "data" / "scenes").glob("*.jpg"))
    if names:
        wanted = {n.removesuffix(".jpg") for n in names}
        paths = [p for p in paths if p.stem in wanted]
    return paths[:limit] if limit else paths


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def cell_text(cell: Cell | None, key: str) -> str:
    if cell is None:
        return "-"
    if cell.error is not None:
        return "error"
    if key == "leaked":
        return f"{cell.leaked} [{cell.sure}]"
    return fmt(getattr(cell, key))


def print_tables(rows: list[Row], methods: list[str], control: bool) -> None:
    print("Cells 'leaked': faces leaked [of which the judge scored >= 0.6, i.e. without its marginal hits].\n")
    head = "| scene | angle | faces (judge) [>= 0.6] |"
    rule = "|---|---:|---:|"
    for method in methods:
        head += f" found ({method}) | leaked ({method}) | s ({method}) |"
        rule += "---:|---:|---:|"
    if control:
        head, rule = head + " leaked (round trip, no anonymiser) |", rule + "---:|"
    print(head)
    print(rule)
    for row in rows:
        line = f"| {row.scene} | {row.angle} | {row.faces} [{row.faces_sure}] |"
        for method in methods:
            cell = row.cells.get(method)
            line += f" {cell_text(cell, 'found')} | {cell_text(cell, 'leaked')} | {cell_text(cell, 'seconds')} |"
        if control:
            line += f" {fmt(row.control)} |"
        print(line)

    print("\nTotals per angle (faces: the judge's, on the scenes each method ran; leaked share of those):\n")
    head, rule = "| angle |", "|---:|"
    for method in methods:
        head += f" scenes ({method}) | faces [>= 0.6] | leaked ({method}) | share | leaked [>= 0.6] | share | errors | s ({method}) |"
        rule += "---:|---:|---:|---:|---:|---:|---:|---:|"
    print(head)
    print(rule)
    angles = list(dict.fromkeys(row.angle for row in rows))
    for angle in angles + ["all"]:
        line = f"| {angle} |"
        for method in methods:
            picked = [r for r in rows if (angle == "all" or r.angle == angle) and method in r.cells]
            done = [r for r in picked if r.cells[method].error is None]
            faces = sum(r.faces for r in done)
            leaked = sum(r.cells[method].leaked or 0 for r in done)
            sure_faces = sum(r.faces_sure or 0 for r in done)
            sure = sum(r.cells[method].sure or 0 for r in done)
            seconds = sum(r.cells[method].seconds or 0.0 for r in done)
            share = f"{100 * leaked / faces:.1f} %" if faces else "-"
            sure_share = f"{100 * sure / sure_faces:.1f} %" if sure_faces else "-"
            line += (f" {len(picked)} | {faces} [{sure_faces}] | {leaked} | {share} | {sure} | {sure_share}"
                     f" | {len(picked) - len(done)} | {seconds:.0f} |")
        print(line)

    print("\nCost per upright photo (angle 0 runs; compare before and after the orientation search):\n")
    upright = [r for r in rows if r.angle == 0]
    print("| method | photos | faces (judge) | seconds per photo | seconds per judged face |")
    print("|---|---:|---:|---:|---:|")
    for method in methods:
        done = [r for r in upright if method in r.cells and r.cells[method].error is None]
        seconds = sum(r.cells[method].seconds or 0.0 for r in done)
        faces = sum(r.faces for r in done)
        if done:
            print(f"| {method} | {len(done)} | {faces} | {seconds / len(done):.1f} | {seconds / max(faces, 1):.2f} |")


def load_rows(path: Path, root: Path) -> tuple[list[Row], list[str]]:
    """Return the rows and methods of an ``--out`` file (older files lack the >= 0.6 counts: they are derived)."""
    data = json.loads(path.read_text())
    rows, methods, sure_faces = [], [], {}
    for item in data:
        if item.get("faces_sure") is None and item["scene"] not in sure_faces:
            faces = judge_faces(cv2.imread(str(root / "data" / "scenes" / f"{item['scene']}.jpg")))
            sure_faces[item["scene"]] = sum(f.score >= MARGINAL_SCORE for f in faces)
        row = Row(item["scene"], item["angle"], item["faces"], control=item.get("control"),
                  faces_sure=item.get("faces_sure", sure_faces.get(item["scene"])))
        for method, values in item["cells"].items():
            cell = Cell(**values)
            if cell.sure is None and cell.error is None:
                cell.sure = sum(leak["score"] >= MARGINAL_SCORE for leak in cell.leaks)
            row.cells[method] = cell
            methods += [method] if method not in methods else []
        rows.append(row)
    return rows, methods


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", help="the shared folder holding data/ (default: $CONDANON_SHARED or ../shared)")
    parser.add_argument("--scenes", help="comma-separated scene names (default: every data/scenes/*.jpg)")
    parser.add_argument("--limit", type=int, help="only the first N scenes (sorted by name)")
    parser.add_argument("--angles", default=",".join(map(str, ANGLES)), help="comma-separated degrees (counter-clockwise)")
    parser.add_argument("--method", default=",".join(METHODS), help="comma-separated product methods (default mask,synthetic)")
    parser.add_argument("--synthetic-scenes", help="run the synthetic method only on these scenes (it is slow on crowds)")
    parser.add_argument("--detector", help="the product's detector (default: the Anonymizer's own default)")
    parser.add_argument("--control", action="store_true", help="also judge the un-anonymised round trip of each tilt")
    parser.add_argument("--out", type=Path, help="write every row, with each leaked face, to this JSON file")
    parser.add_argument("--from-json", type=Path, help="print the tables of an earlier run's --out file (runs nothing)")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    root = shared_root(opts.shared)
    if opts.from_json:
        rows, methods = load_rows(opts.from_json, root)
        print_tables(rows, methods, any(r.control is not None for r in rows))
        return
    paths = scene_paths(root, opts.scenes.split(",") if opts.scenes else None, opts.limit)
    angles = [int(a) for a in opts.angles.split(",") if a.strip()]
    methods = [m.strip() for m in opts.method.split(",") if m.strip()]
    synthetic_only = {n.removesuffix(".jpg") for n in opts.synthetic_scenes.split(",")} if opts.synthetic_scenes else None
    extra = {"detector": opts.detector} if opts.detector else {}
    anonymizers = {m: condanon.Anonymizer(method=m, **extra) for m in methods}
    print(f"condanon {Path(condanon.__file__).parent}; scenes: {len(paths)}; angles: {angles}; methods: {methods}"
          + (f"; synthetic only on {sorted(synthetic_only)}" if synthetic_only else "") + "\n")

    if paths:  # load every model first, so the first timed run is not the one that loads them
        warm = cv2.imread(str(paths[0]))
        for anonymizer in anonymizers.values():
            anonymizer.anonymize(warm)
        leaked_faces(warm, warm)

    started = time.perf_counter()
    rows: list[Row] = []
    for path in paths:
        upright = cv2.imread(str(path))
        faces = judge_faces(upright)
        for angle in angles:
            turn = Turn.of(angle, upright)
            row = Row(path.stem, angle, len(faces), faces_sure=sum(f.score >= MARGINAL_SCORE for f in faces))
            for method in methods:
                if method == "synthetic" and synthetic_only is not None and path.stem not in synthetic_only:
                    continue
                row.cells[method] = run_one(anonymizers[method], upright, turn, faces)
            if opts.control and turn.matrix is not None:
                row.control = leaked_faces(upright, turn.back(turn.forward(upright)), faces).leaked
            rows.append(row)
            print(f"  {path.stem} {angle}: " + ", ".join(
                f"{m} {c.leaked}/{row.faces} leaked" if c.error is None else f"{m} error" for m, c in row.cells.items()),
                file=sys.stderr, flush=True)

    print_tables(rows, methods, opts.control)
    print(f"\n{time.perf_counter() - started:.0f} s in all (after loading the models)")
    errors = [(r.scene, r.angle, m, c.error) for r in rows for m, c in r.cells.items() if c.error]
    for scene, angle, method, error in errors:
        print(f"error: {scene} {angle} {method}: {error}")
    if opts.out:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        data = [{"scene": r.scene, "angle": r.angle, "faces": r.faces, "faces_sure": r.faces_sure, "control": r.control,
                 "cells": {m: vars(c) for m, c in r.cells.items()}} for r in rows]
        opts.out.write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
