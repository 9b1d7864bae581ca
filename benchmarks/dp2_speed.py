"""Cost of the dp2 method on this machine: the generator alone, then the whole checked loop per face.

    python benchmarks/dp2_speed.py [--shared PATH] [--weights fdf256|FILE] [--limit N] [--candidates 4]

1. Generator: one forward pass of the full FDF256 and FDF128 generators at batch 1, 2 and 4 (seconds per
   face; weights do not change the cost, so random weights of the official layout stand in when the
   official files are absent). DeepPrivacy2 itself: ~7.5 s per face on this 2-core CPU (13 s for one
   face unbatched), from issue #7.
2. Loop: `Anonymizer(method="dp2")` on the photos of shared/data/scenes (--limit of them), per face:
   milliseconds of the dp2 loop (crop, generate, blend, check each candidate), of which generation,
   candidates tried, and fallbacks. With --steps, a face no candidate passed also takes that many
   gradient steps on its best candidate's latent (counted as one more candidate; its time, checks
   included, is its own column). Without the official weights the generator is the random-weight
   FDF256 one: its faces are noise, so most faces try every candidate (the worst case of the loop's cost).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch
from shared_data import shared_root

import condanon
from condanon.dp2 import generator as dp2_generator
from condanon.dp2.synthesizer import DP2Synthesizer
from condanon.errors import ModelError
from condanon.weights import model_path


def generator_table(reps: int) -> list[str]:
    """Return Markdown rows: seconds per face of one forward pass, per configuration and batch size."""
    rows = ["| generator | batch | s per pass | s per face |", "|---|---:|---:|---:|"]
    for name, config in dp2_generator.CONFIGS.items():
        model = dp2_generator.FaceGenerator(config).eval().requires_grad_(False)
        size = config.resolution
        for batch in (1, 2, 4):
            condition = torch.rand(batch, 3, size, size) * 2 - 1
            mask = torch.ones(batch, 1, size, size)
            mask[..., size // 4 : size * 3 // 4, size // 4 : size * 3 // 4] = 0
            w = torch.randn(batch, config.w_dim)
            with torch.inference_mode():
                model(condition * mask, mask, w=w)  # warm-up
                start = time.perf_counter()
                for _ in range(reps):
                    model(condition * mask, mask, w=w)
            seconds = (time.perf_counter() - start) / reps
            rows.append(f"| {name} | {batch} | {seconds:.2f} | {seconds / batch:.2f} |")
    return rows


def loop_table(root: Path, weights: str, limit: int, candidates: int, batch: int, steps: int) -> list[str]:
    """Return Markdown rows: the dp2 loop's cost per face on the shared scenes."""
    spent: dict[str, list[float]] = {"generate": [], "refine": []}

    def timed(name: str):  # type: ignore[no-untyped-def]
        original = getattr(DP2Synthesizer, name)

        def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            result = original(self, *args, **kwargs)
            spent[name].append((time.perf_counter() - start) * 1000.0)
            return result

        setattr(DP2Synthesizer, name, wrapper)

    timed("generate")
    timed("refine")
    anonymizer = condanon.Anonymizer(method=condanon.DP2Options(weights=weights, candidates=candidates, steps=steps))
    assert isinstance(anonymizer.synthesizer, DP2Synthesizer)
    anonymizer.synthesizer.batch = batch
    anonymizer.anonymize(cv2.imread(str(root / "data" / "scenes" / "astronaut.jpg")))  # load everything once
    for values in spent.values():
        values.clear()
    loops, attempts, fallbacks, pipeline = [], [], 0, []
    reasons: Counter[str] = Counter()
    paths = sorted((root / "data" / "scenes").glob("*.jpg"))[:limit]
    for path in paths:
        result = anonymizer.anonymize(cv2.imread(str(path)))
        for report in result.reports:
            loops.append(report.timings_ms["anonymize"])
            attempts.append(report.attempts or 0)
            fallbacks += report.verdict == "fallback"
            if report.reason:
                reasons[report.reason.split(";")[-1].strip().removeprefix("closest: ")] += 1
        if result.reports:
            pipeline.append(result.timings_ms["total"] / len(result.reports))
    faces = len(loops)
    generation, refinement = sum(spent["generate"]), sum(spent["refine"])
    sampled = sum(attempts) - len(spent["refine"])  # candidates drawn from latents (a refined one is the +1)
    per_candidate = generation / max(sampled, 1)
    steps = refinement / len(spent["refine"]) if spent["refine"] else 0.0
    return [
        "| photos | faces | loop ms/face (median) | loop ms/face (mean) | generation ms/candidate | candidates/face (mean) | "
        "checks ms/candidate | gradient steps ms/refined face | fallbacks | pipeline ms/face (median) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(paths)} | {faces} | {statistics.median(loops):.0f} | {statistics.mean(loops):.0f} | {per_candidate:.0f} | "
        f"{np.mean(attempts):.2f} | {(sum(loops) - generation - refinement) / max(sampled, 1):.0f} | {steps:.0f} | {fallbacks} | "
        f"{statistics.median(pipeline):.0f} |",
        "",
        "Fallback reasons (last failed check of the closest candidate): "
        + (", ".join(f"{reason} ({n})" for reason, n in reasons.most_common(6)) or "none"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared")
    parser.add_argument("--weights", default="fdf256", help="fdf256, fdf128 or a checkpoint file")
    parser.add_argument("--limit", type=int, default=12, help="scenes photos")
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=0, help="gradient steps when no candidate passed")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--skip-generator", action="store_true")
    args = parser.parse_args()
    root = shared_root(args.shared)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    if not args.skip_generator:
        print("\n".join(generator_table(args.reps)) + "\n")
    weights = args.weights
    with tempfile.TemporaryDirectory() as folder:
        try:
            if weights in dp2_generator.CONFIGS:
                model_path(f"dp2-{weights}")
            note = f"weights: {weights}"
        except ModelError:
            weights = str(Path(folder) / "random-fdf256.pt")
            torch.save({"EMA_generator": dp2_generator.FaceGenerator(dp2_generator.FDF256).state_dict()}, weights)
            note = "weights: random FDF256 (the official file is absent): the cost of the loop, not its quality"
        print(note + f"; candidates {args.candidates}, batch {args.batch}, gradient steps {args.steps}\n")
        print("\n".join(loop_table(root, weights, args.limit, args.candidates, args.batch, args.steps)))


if __name__ == "__main__":
    main()
