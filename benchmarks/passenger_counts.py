"""Counting accuracy of the passenger analytics on generated door clips, and what it counts on the shared clips.

    python benchmarks/passenger_counts.py [--clips 6] [--people 6] [--shared PATH]

Door clips (`condanon.analytics.door_clip`): each draws ``--people`` labelled adults (age 20-65) from
``shared/data/train/utkface`` with its own seed, lets them walk through a door (a vertical middle
line; direction at random) one after another, and hangs one more photo on the wall as a poster that
must not be counted. Each clip is analysed at the defaults of ``condanon analytics`` and scored
against its truth: people counted, line crossings by direction, sex right and age within 10 years per
walker under the analytics' readers, beside the same readers on each labelled photo itself and on a
still frame of the walker as the clip paints it (oval, size, corridor; no motion, no encoding): the
photo level the video reading is held to.
Then the three shared clips: people counted, tracks left out and why (crowd.mp4's crest must be).
Prints Markdown tables. Targets (issue #16): people counted exactly, sexes exact, ages within 10 y for
>= 80 %, the crest and the mannequin not counted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shared_data import shared_root

from condanon.analytics import analysis_video_anonymizer, analyze_video
from condanon.analytics.door_clip import make_door_clip, score_counts, still_of


def labelled(folder: Path, count: int, seed: int) -> list[tuple[np.ndarray, float, str]]:
    """Return ``count`` adults (photo, age, sex) drawn with ``seed`` from UTKFace-named photos."""
    rng = np.random.default_rng(seed)
    out = []
    for path in rng.permutation(sorted(folder.glob("*.jpg"))):
        age, sex = Path(path).name.split("_")[:2]
        if 20 <= int(age) <= 65:
            image = cv2.imread(str(path))
            if image is not None:
                out.append((image, float(age), "male" if sex == "0" else "female"))
        if len(out) == count:
            break
    return out


def still_readings(images: list[np.ndarray]) -> list[tuple[float | None, str | None]]:
    """Return (age, sex) as the analytics' own readers read each image's largest face."""
    runner = analysis_video_anonymizer()
    out: list[tuple[float | None, str | None]] = []
    for image in images:
        found = sorted(runner.detector.detect(image), key=lambda f: -f.box.area)[:1]
        reading = runner.read(image, found)[0] if found else None
        out.append((reading.age, reading.sex) if reading is not None else (None, None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--people", type=int, default=6)
    parser.add_argument("--shared")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    data = shared_root(args.shared) / "data"
    print("| door clip | walkers | counted | crossings in/out (truth) | sex right | age within 10 y | fps (720p) |")
    print("|---|---|---|---|---|---|---|")
    totals: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.clips):
            faces = labelled(data / "train" / "utkface", args.people + 1, 100 + seed)
            clip = make_door_clip(faces[:-1], Path(tmp) / f"door{seed}.mp4", poster=faces[-1][0], seed=100 + seed)
            start = time.perf_counter()
            analytics = analyze_video(clip.path, None, line=clip.line)
            fps = clip.frames / (time.perf_counter() - start)
            s = score_counts(clip, analytics.people)
            exact = s["people"] == s["walkers"] and s["crossings_found"] == s["crossings_expected"]
            totals.update(
                walkers=s["walkers"],
                counted=s["people"],
                exact=int(exact),
                sex=s["sex_right"],
                age=s["age_within_10"],
                poster_left_out=int("static" in analytics.excluded.values()),
            )
            photos = [cv2.copyMakeBorder(image, 64, 64, 64, 64, cv2.BORDER_REPLICATE) for image, _, _ in faces[:-1]]
            stills = [still_of(image, walker.height) for (image, _, _), walker in zip(faces[:-1], clip.walkers)]
            for kind, images in (("photo", photos), ("still", stills)):
                for (age, sex), (_, true_age, true_sex) in zip(still_readings(images), faces[:-1]):
                    totals[f"{kind}_sex"] += int(sex == true_sex)
                    totals[f"{kind}_age"] += int(age is not None and abs(age - true_age) <= 10)
            found, expected = s["crossings_found"], s["crossings_expected"]
            print(
                f"| {seed} | {s['walkers']} | {s['people']} | {found['in']}/{found['out']} "
                f"({expected['in']}/{expected['out']}) "
                f"| {s['sex_right']}/{s['walkers']} | {s['age_within_10']}/{s['walkers']} | {fps:.1f} |"
            )
    n = totals["walkers"]
    print(
        f"\n{args.clips} clips: counted exactly (people and crossings) in {totals['exact']}/{args.clips}; "
        f"{totals['counted']} counted of {n} walkers; poster left out in {totals['poster_left_out']}/{args.clips}; "
        f"sex right {totals['sex'] / n:.0%}, age within 10 y {totals['age'] / n:.0%}; the same readers on the "
        f"photos themselves: sex right {totals['photo_sex'] / n:.0%}, age within 10 y {totals['photo_age'] / n:.0%}; "
        f"on a still of each walker as the clip paints it: sex right {totals['still_sex'] / n:.0%}, age within 10 y "
        f"{totals['still_age'] / n:.0%}\n"
    )
    print("| shared clip | face tracks | people counted | not counted (why) | fps |")
    print("|---|---|---|---|---|")
    for name in ("crowd.mp4", "single_face.mp4", "face_noface.mov"):
        path = data / "video" / name
        start = time.perf_counter()
        analytics = analyze_video(path, None)
        seconds = time.perf_counter() - start
        why = ", ".join(f"{reason} {count}" for reason, count in sorted(Counter(analytics.excluded.values()).items()))
        print(
            f"| {name} | {analytics.counts['tracks']} | {len(analytics.people)} | {why or '-'} "
            f"| {analytics.counts['frames'] / seconds:.1f} |"
        )


if __name__ == "__main__":
    main()
