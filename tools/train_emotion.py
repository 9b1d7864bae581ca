"""Train condanon's own emotion model (``emotion-v1``) on the CPU and export it to ONNX.

    python tools/train_emotion.py [--out models/emotion-v1.onnx] [--log models/emotion-v1.jsonl]
                                  [--epochs 30] [--seed 20250301] [--cache-dir DIR] [--quick] [--help]

The committed models/emotion-v1.onnx is exactly this command with its defaults (about 13 minutes on
a shared 2-core CPU, one torch thread); its log is models/emotion-v1.jsonl.

Needs torch (2.13.0, CPU) and onnx on top of condanon (``pip install -e .[test]``); the exported model
runs with onnxruntime alone.

Data (paths default to ``$CONDANON_SHARED/data`` or ``../shared/data`` beside the repository):
  --train-dir       labelled crops, ``index.csv`` with ``path,emotion`` (shared/data/train/emotion)
  --unlabelled-dir  unlabelled faces, every ``*.jpg`` (shared/data/train/utkface)
  --eval-dir        held-out faces, ``index.csv`` with ``path,emotion`` (shared/data/attributes/emotion);
                    scored after every epoch and at the end, never trained on or used to pick a model
Faces: YuNet (as `condanon.detection` runs it, small images padded), the largest face per image; its 5
landmarks give the runtime crop `condanon.attributes.emotion_model.aligned_face` (64x64 grey, a
similarity transform onto a template). An image with no face found is used whole (the runtime's box
fallback with the image as the box). Augmentation perturbs that same transform (rotation, scale,
shift, mirror) and the grey levels.

Loss on each mixed batch of labelled and unlabelled faces:
  * labelled faces: cross-entropy with logit adjustment (Menon et al. 2021: the log class prior of the
    labelled set, times ``--tau``, is added to the logits in training only, so the exported network
    predicts as if the classes were balanced; the training set is 41 % happy, 41 % neutral, 0.3 % fear)
    and label smoothing;
  * every face: distillation from the fer teacher (models/fer-emotion-v1.onnx through onnxruntime),
    which sees the same augmented crop: KL(teacher || student) at temperature ``--temperature``,
    weighted by ``--kd-weight``.
``contempt`` (5 training faces) is mapped by ``--contempt`` (default ``neutral``; ``drop`` leaves
those faces unlabelled, so only the teacher's soft label trains on them).

The log (``--log``, JSON lines) has one record per epoch: losses, learning rate, seconds, and the
accuracy, macro-F1 and per-class recall on the eval set (and on a validation split of the labelled
set with ``--val-fraction``); the last record is the exported ONNX model scored through onnxruntime.
``--quick`` trains on a few dozen images for a few epochs (a smoke test: tests/test_emotion_training.py).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import random
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from condanon.attributes.base import onnx_session
from condanon.attributes.emotion_model import CROP_SCALE, INPUT_SIZE, aligned_face, alignment_matrix, to_input
from condanon.detection import DETECTORS
from condanon.types import EMOTIONS, Box, Face

REPO = Path(__file__).resolve().parents[1]
LABELS = list(EMOTIONS)  # output order of the model and of the teacher
CONTEMPT_CHOICES = ("disgust", "neutral", "drop")


def default_data() -> Path:
    """Return ``$CONDANON_SHARED/data`` or ``../shared/data`` beside the repository."""
    shared = os.environ.get("CONDANON_SHARED")
    return (Path(shared).expanduser() if shared else REPO.parent / "shared") / "data"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    data = default_data()
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--train-dir", type=Path, default=data / "train/emotion")
    p.add_argument("--unlabelled-dir", type=Path, default=data / "train/utkface")
    p.add_argument("--eval-dir", type=Path, default=data / "attributes/emotion", help="'' to skip evaluation")
    p.add_argument("--teacher", type=Path, default=REPO / "models/fer-emotion-v1.onnx")
    p.add_argument("--out", type=Path, default=REPO / "models/emotion-v1.onnx")
    p.add_argument("--log", type=Path, help="JSON-lines metrics log (default: OUT with .jsonl)")
    p.add_argument("--cache-dir", type=Path, help="keep the YuNet detections here (keyed by folder and file list)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=20250301)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate (1 warm-up epoch, cosine decay)")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--width", type=int, default=32, help="channels of the first stage (x2, x4 later)")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--tau", type=float, default=1.0, help="logit-adjustment strength (0: plain cross-entropy)")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--kd-weight", type=float, default=1.0, help="weight of the distillation term")
    p.add_argument(
        "--kd-labelled", type=float, default=1.0, help="relative weight of distillation on the labelled faces"
    )
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--unlabelled-limit", type=int, default=0, help="use at most this many unlabelled faces (0: all)")
    p.add_argument(
        "--crop",
        choices=("aligned", "box"),
        default="aligned",
        help="aligned: the runtime crop from the 5 landmarks; box: ignore the landmarks "
        "(the runtime's box fallback; for comparison)",
    )
    p.add_argument(
        "--contempt",
        choices=CONTEMPT_CHOICES,
        default="neutral",
        help="label for the 5 contempt faces (measured: see the model card)",
    )
    p.add_argument("--val-fraction", type=float, default=0.0, help="hold out this share of the labelled set")
    p.add_argument("--ema", type=float, default=0.99, help="decay of the weight average that is exported (0: off)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    p.add_argument("--quick", action="store_true", help="a few dozen images, a few epochs (smoke test)")
    args = p.parse_args(argv)
    if args.log is None:
        args.log = args.out.with_suffix(".jsonl")
    if args.quick:
        args.epochs = min(args.epochs, 6)
        args.batch_size = 8
        args.unlabelled_limit = args.unlabelled_limit or 16
        args.ema = 0.0
    return args


# ----------------------------------------------------------------------------------------------- data


@dataclass
class Sample:
    """One image (grey, kept whole) and its base transform onto the model's crop."""

    path: str
    grey: np.ndarray
    matrix: np.ndarray  # 2x3: image -> INPUT_SIZE crop (the runtime's crop, before augmentation)
    label: int  # index into LABELS, -1 when unlabelled
    found: bool  # whether YuNet found a face (else: the whole image)


def read_index(folder: Path) -> list[tuple[str, str]]:
    with open(folder / "index.csv", newline="") as handle:
        return [(row["path"], row["emotion"].strip().lower()) for row in csv.DictReader(handle)]


def first_per_class(rows: list[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    """Return the first ``count`` rows of every label (for --quick)."""
    seen: dict[str, int] = {}
    out = []
    for name, label in rows:
        if seen.get(label, 0) < count:
            seen[label] = seen.get(label, 0) + 1
            out.append((name, label))
    return out


def box_matrix(box: Box) -> np.ndarray:
    """The affine equivalent of the runtime's no-landmark fallback: the square box grown by 10 %."""
    from condanon.attributes.emotion_model import BOX_MARGIN

    side = max(box.width, box.height) * (1.0 + BOX_MARGIN)
    cx, cy = box.center
    s = INPUT_SIZE / max(side, 1.0)
    return np.array([[s, 0.0, INPUT_SIZE / 2 - s * cx], [0.0, s, INPUT_SIZE / 2 - s * cy]])


def detect(folder: Path, names: list[str], cache_dir: Path | None) -> list[tuple[np.ndarray | None, Box | None]]:
    """Return (landmarks5, box) of the largest YuNet face of each image, or (None, None)."""
    key = hashlib.sha256((str(folder.resolve()) + "\n" + "\n".join(names)).encode()).hexdigest()[:16]
    cache = cache_dir / f"yunet-{key}.npz" if cache_dir else None
    if cache and cache.is_file():
        stored = np.load(cache)
        return [
            (stored["landmarks"][i], Box(*stored["boxes"][i])) if stored["found"][i] else (None, None)
            for i in range(len(names))
        ]
    detector = DETECTORS.create("yunet")
    out: list[tuple[np.ndarray | None, Box | None]] = []
    for name in names:
        image = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot read {folder / name}")
        faces = detector.detect(image)
        face = max(faces, key=lambda f: f.box.area) if faces else None
        out.append((None, None) if face is None else (np.asarray(face.landmarks5, np.float32), face.box))
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            found=np.array([lm is not None for lm, _ in out]),
            landmarks=np.array([lm if lm is not None else np.zeros((5, 2), np.float32) for lm, _ in out]),
            boxes=np.array([[b.x1, b.y1, b.x2, b.y2] if b is not None else [0, 0, 0, 0] for _, b in out]),
        )
    return out


def load_samples(
    folder: Path, items: list[tuple[str, int]], cache_dir: Path | None, crop: str = "aligned"
) -> list[Sample]:
    """Read the images (kept grey and whole) and their base crop transform."""
    found = detect(folder, [name for name, _ in items], cache_dir)
    if crop == "box":
        found = [(None, box) if box is not None else (None, None) for _, box in found]
    samples = []
    for (name, label), (landmarks, box) in zip(items, found):
        grey = cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE)
        matrix = alignment_matrix(landmarks) if landmarks is not None else None
        if matrix is None:
            height, width = grey.shape[:2]
            matrix = box_matrix(box if box is not None else Box(0, 0, width, height))
        samples.append(Sample(name, grey, matrix, label, box is not None))
    return samples


def eval_crops(
    folder: Path, names: list[str], cache_dir: Path | None, crop: str = "aligned"
) -> tuple[np.ndarray, np.ndarray]:
    """Return the runtime crops (exactly `aligned_face` on the colour image) and which images had a face."""
    found = detect(folder, names, cache_dir)
    crops, ok = [], []
    for name, (landmarks, box) in zip(names, found):
        if landmarks is None or box is None:
            ok.append(False)
            continue
        image = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        face = Face(box=box, score=1.0, landmarks5=landmarks if crop == "aligned" else None)
        crops.append(aligned_face(image, face))
        ok.append(True)
    return np.array(crops, dtype=np.uint8).reshape(-1, INPUT_SIZE, INPUT_SIZE), np.array(ok)


def augment(sample: Sample, rng: np.random.Generator) -> np.ndarray:
    """Return a float32 ``INPUT_SIZE`` crop: the base transform perturbed, mirrored, grey levels jittered."""
    angle = math.radians(rng.uniform(-12, 12))
    scale = math.exp(rng.uniform(-0.1, 0.1))
    shift = rng.uniform(-0.06, 0.06, size=2) * INPUT_SIZE
    c = INPUT_SIZE / 2
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    perturb = np.hstack([rot, (np.array([c, c]) - rot @ np.array([c, c]) + shift)[:, None]])
    full = np.hstack([rot @ sample.matrix[:, :2], (rot @ sample.matrix[:, 2] + perturb[:, 2])[:, None]])
    crop = cv2.warpAffine(
        sample.grey, full, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    if rng.random() < 0.2:  # low resolution: many runtime faces are small
        small = int(rng.integers(20, 44))
        crop = cv2.resize(
            cv2.resize(crop, (small, small), interpolation=cv2.INTER_AREA),
            (INPUT_SIZE, INPUT_SIZE),
            interpolation=cv2.INTER_LINEAR,
        )
    out = crop.astype(np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.7, 1.3) + mean + rng.uniform(-25, 25)
    if rng.random() < 0.3:
        out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** rng.uniform(0.7, 1.4)
    return np.clip(out, 0, 255)


# ---------------------------------------------------------------------------------------------- model


def build_model(width: int, dropout: float):  # noqa: ANN201 (torch is imported lazily)
    import torch.nn as nn

    def block(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> list:
        return [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]

    w = width
    return nn.Sequential(
        *block(1, w, 5, 2),  # 32 x 32
        *block(w, w),
        *block(w, 2 * w, 3, 2),  # 16 x 16
        *block(2 * w, 2 * w),
        *block(2 * w, 4 * w, 3, 2),  # 8 x 8
        *block(4 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(4 * w, len(LABELS)),
    )


def metrics(probs: np.ndarray, truth: list[str]) -> dict:
    """Accuracy (labels outside the 7 classes, i.e. contempt, count as wrong), macro-F1 over the 7, recalls."""
    predicted = np.array(LABELS)[np.asarray(probs).argmax(axis=1)]
    truth_a = np.array(truth)
    f1s, recall = [], {}
    for label in LABELS:
        tp = int(((predicted == label) & (truth_a == label)).sum())
        fp = int(((predicted == label) & (truth_a != label)).sum())
        fn = int(((predicted != label) & (truth_a == label)).sum())
        f1s.append(2 * tp / max(1, 2 * tp + fp + fn))
        recall[label] = round(tp / max(1, tp + fn), 4)
    return {
        "n": len(truth),
        "accuracy": round(float((predicted == truth_a).mean()) if len(truth) else 0.0, 4),
        "macro_f1": round(float(np.mean(f1s)), 4),
        "recall": recall,
    }


def export_onnx(model, path: Path, meta: dict) -> None:  # noqa: ANN001
    """Write ``model`` + softmax as ONNX (input ``input`` N x 1 x 64 x 64, output ``probs`` N x 7)."""
    import onnx
    import torch

    class WithSoftmax(torch.nn.Module):
        def __init__(self, net) -> None:  # noqa: ANN001
            super().__init__()
            self.net = net

        def forward(self, x):  # noqa: ANN001, ANN202
            return torch.softmax(self.net(x), dim=1)

    wrapped = WithSoftmax(model).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            (torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE),),
            str(path),
            input_names=["input"],
            output_names=["probs"],
            dynamic_axes={"input": {0: "N"}, "probs": {0: "N"}},
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    graph = onnx.load(str(path))
    graph.producer_name = "condanon tools/train_emotion.py"
    graph.producer_version = ""
    graph.doc_string = "condanon emotion-v1: 7 emotions, see models/emotion-v1.md"
    del graph.metadata_props[:]
    for key, value in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


# ------------------------------------------------------------------------------------------- training


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch
    import torch.nn.functional as F

    started = time.perf_counter()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    # Labelled set, contempt mapped; --quick keeps the first few of every label.
    rows = read_index(args.train_dir)
    if args.quick:
        rows = first_per_class(rows, 6)
    labelled, unlabelled_extra, unknown = [], [], set()
    for name, emotion in rows:
        if emotion == "contempt":
            if args.contempt == "drop":
                unlabelled_extra.append(name)
                continue
            emotion = args.contempt
        if emotion not in LABELS:
            unknown.add(emotion)
            continue
        labelled.append((name, LABELS.index(emotion)))
    if unknown:
        print(f"skipped labels not among the 7 classes: {sorted(unknown)}", file=sys.stderr)
    val: list[tuple[str, int]] = []
    if args.val_fraction > 0:
        order = rng.permutation(len(labelled))
        by_class: dict[int, list[int]] = {}
        for i in order:
            by_class.setdefault(labelled[i][1], []).append(int(i))
        held = {i for ids in by_class.values() for i in ids[: int(round(len(ids) * args.val_fraction))]}
        val = [labelled[i] for i in sorted(held)]
        labelled = [item for i, item in enumerate(labelled) if i not in held]

    unlabelled_names = sorted(p.name for p in args.unlabelled_dir.glob("*.jpg")) if args.unlabelled_dir else []
    if args.unlabelled_limit:
        unlabelled_names = [
            unlabelled_names[i] for i in sorted(rng.permutation(len(unlabelled_names))[: args.unlabelled_limit])
        ]

    print(
        f"labelled {len(labelled)}, validation {len(val)}, unlabelled {len(unlabelled_names)}"
        f" + {len(unlabelled_extra)} contempt faces (--contempt drop)",
        flush=True,
    )
    samples = load_samples(args.train_dir, labelled + [(n, -1) for n in unlabelled_extra], args.cache_dir, args.crop)
    if unlabelled_names:
        samples += load_samples(args.unlabelled_dir, [(n, -1) for n in unlabelled_names], args.cache_dir, args.crop)
    val_samples = load_samples(args.train_dir, val, args.cache_dir, args.crop) if val else []
    labels = np.array([s.label for s in samples])
    counts = np.bincount(labels[labels >= 0], minlength=len(LABELS)).astype(np.float64)
    prior = (counts + 1.0) / (counts + 1.0).sum()
    print("class counts", dict(zip(LABELS, counts.astype(int).tolist())), flush=True)

    eval_rows: list[tuple[str, str]] = []
    eval_x = np.zeros((0, INPUT_SIZE, INPUT_SIZE), np.uint8)
    eval_truth: list[str] = []
    if args.eval_dir and str(args.eval_dir) not in ("", ".") and (args.eval_dir / "index.csv").is_file():
        eval_rows = read_index(args.eval_dir)
        if args.quick:
            eval_rows = first_per_class(eval_rows, 3)
        eval_x, ok = eval_crops(args.eval_dir, [n for n, _ in eval_rows], args.cache_dir, args.crop)
        eval_truth = [e for (_, e), good in zip(eval_rows, ok) if good]
        print(f"eval: {len(eval_rows)} images, {len(eval_truth)} faces found", flush=True)
    val_x = np.array(
        [
            cv2.warpAffine(
                s.grey, s.matrix, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            for s in val_samples
        ],
        np.uint8,
    )
    val_truth = [LABELS[s.label] for s in val_samples]
    prep_s = time.perf_counter() - started

    teacher = onnx_session(str(args.teacher))
    model = build_model(args.width, args.dropout)
    params = sum(p.numel() for p in model.parameters())
    ema = None
    if args.ema > 0:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema), use_buffers=True
        )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(samples) / args.batch_size))
    total = steps_per_epoch * args.epochs
    warmup = 0 if args.quick else steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (step + 1) / warmup
        if step < warmup
        else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))),
    )
    log_prior = torch.tensor(np.log(prior), dtype=torch.float32)
    T = args.temperature

    def predict(net, crops: np.ndarray, flip: bool = False) -> np.ndarray:  # noqa: ANN001
        if len(crops) == 0:
            return np.zeros((0, len(LABELS)))
        net.eval()
        with torch.no_grad():
            x = torch.from_numpy(to_input(crops))
            p = torch.softmax(net(x), 1)
            if flip:
                p = (p + torch.softmax(net(torch.flip(x, dims=[3])), 1)) / 2
        return p.numpy()

    # A fixed probe of up to 512 training faces without augmentation: its loss (eval mode) is a
    # noise-free view of how the fit goes; it is logged before training (epoch 0) and after every epoch.
    probe_ids = np.sort(np.random.default_rng(args.seed + 1).permutation(len(samples))[:512])
    probe_x = to_input(
        np.array(
            [
                cv2.warpAffine(
                    samples[i].grey,
                    samples[i].matrix,
                    (INPUT_SIZE, INPUT_SIZE),
                    flags=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE,
                )
                for i in probe_ids
            ],
            np.uint8,
        )
    )
    probe_y = torch.tensor([samples[i].label for i in probe_ids])
    probe_soft = torch.from_numpy(teacher.run(None, {"input": probe_x})[0])  # type: ignore[attr-defined]

    def losses(net, x, y, soft):  # noqa: ANN001, ANN202
        """Return (cross-entropy on the labelled faces, distillation loss) for one batch."""
        logits = net(x)
        has = y >= 0
        ce = (
            F.cross_entropy(logits[has] + args.tau * log_prior, y[has], label_smoothing=args.label_smoothing)
            if bool(has.any())
            else logits.sum() * 0
        )
        teacher_t = torch.softmax(torch.log(soft.clamp_min(1e-8)) / T, 1)
        per_face = F.kl_div(F.log_softmax(logits / T, 1), teacher_t, reduction="none").sum(1) * T * T
        weight = torch.where(has, torch.tensor(args.kd_labelled), torch.tensor(1.0))
        kd = (per_face * weight).sum() / weight.sum().clamp_min(1e-8)
        return ce, kd

    def probe_loss(net) -> float:  # noqa: ANN001
        net.eval()
        with torch.no_grad():
            ce, kd = losses(net, torch.from_numpy(probe_x), probe_y, probe_soft)
        return round(float(ce + args.kd_weight * kd), 4)

    args.log.parent.mkdir(parents=True, exist_ok=True)
    log = open(args.log, "w")
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    log.write(
        json.dumps(
            {
                "config": config,
                "params": params,
                "labelled": len(labelled),
                "unlabelled": len(samples) - len(labelled),
                "class_counts": dict(zip(LABELS, counts.astype(int).tolist())),
                "prep_s": round(prep_s, 1),
            }
        )
        + "\n"
    )
    print(f"model: {params} parameters; {steps_per_epoch} steps per epoch; prep {prep_s:.0f} s", flush=True)

    history = [{"epoch": 0, "probe_loss": probe_loss(model)}]
    log.write(json.dumps(history[0]) + "\n")
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = rng.permutation(len(samples))
        sums = {"loss": 0.0, "ce": 0.0, "kd": 0.0}
        for step in range(steps_per_epoch):
            chosen = [samples[i] for i in order[step * args.batch_size : (step + 1) * args.batch_size]]
            crops = np.stack([augment(s, rng) for s in chosen])
            x_np = to_input(crops)
            soft = teacher.run(None, {"input": x_np})[0]  # type: ignore[attr-defined]
            x = torch.from_numpy(x_np)
            y = torch.tensor([s.label for s in chosen])
            ce, kd = losses(model, x, y, torch.from_numpy(soft))
            loss = ce + args.kd_weight * kd
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if ema is not None:
                ema.update_parameters(model)
            sums["loss"] += loss.item()
            sums["ce"] += ce.item()
            sums["kd"] += kd.item()
        net = ema.module if ema is not None else model
        record = {
            "epoch": epoch,
            **{k: round(v / steps_per_epoch, 4) for k, v in sums.items()},
            "probe_loss": probe_loss(net),
            "lr": round(schedule.get_last_lr()[0], 6),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        if len(eval_truth):
            record["eval"] = metrics(predict(net, eval_x), eval_truth)
        if val_truth:
            record["val"] = metrics(predict(net, val_x), val_truth)
        history.append(record)
        log.write(json.dumps(record) + "\n")
        log.flush()
        summary = (
            f"eval acc {record['eval']['accuracy']:.3f} F1 {record['eval']['macro_f1']:.3f}" if "eval" in record else ""
        )
        if "val" in record:
            summary += f" | val acc {record['val']['accuracy']:.3f} F1 {record['val']['macro_f1']:.3f}"
        print(
            f"epoch {epoch}: loss {record['loss']:.4f} (ce {record['ce']:.4f}, kd {record['kd']:.4f}, "
            f"probe {record['probe_loss']:.4f}) {record['seconds']:.0f} s {summary}",
            flush=True,
        )

    net = (ema.module if ema is not None else model).eval()
    train_s = time.perf_counter() - started
    meta = {
        "labels": ",".join(LABELS),
        "input": f"N x 1 x {INPUT_SIZE} x {INPUT_SIZE} grey, (x / 255 - 0.5) * 2; crop: "
        f"condanon.attributes.emotion_model.aligned_face (5-landmark similarity, scale {CROP_SCALE})",
        "trained_by": "tools/train_emotion.py",
        "config": {
            k: v
            for k, v in config.items()
            if k not in ("train_dir", "unlabelled_dir", "eval_dir", "teacher", "out", "log", "cache_dir")
        },
        "data": "shared/data/train/emotion (labelled), shared/data/train/utkface (unlabelled); teacher fer-emotion-v1",
    }
    export_onnx(net, args.out, meta)
    final: dict = {
        "final": True,
        "onnx": str(args.out),
        "bytes": args.out.stat().st_size,
        "train_seconds": round(train_s, 1),
        "params": params,
    }
    session = onnx_session(str(args.out))
    if len(eval_truth):
        probe = to_input(eval_x[:8])
        final["max_abs_diff_torch_onnx"] = float(
            np.abs(session.run(None, {"input": probe})[0] - predict(net, eval_x[:8], flip=False)).max()
        )  # type: ignore[attr-defined]
        for flip in (False, True):
            x = to_input(eval_x)
            probs = session.run(None, {"input": x})[0]  # type: ignore[attr-defined]
            if flip:
                mirrored = np.ascontiguousarray(x[..., ::-1])
                probs = (probs + session.run(None, {"input": mirrored})[0]) / 2  # type: ignore[attr-defined]
            final["eval_flip" if flip else "eval"] = metrics(probs, eval_truth)
        final["eval_images"] = len(eval_rows)
    log.write(json.dumps(final) + "\n")
    log.close()
    print(json.dumps(final), flush=True)
    return {"history": history, "final": final}


if __name__ == "__main__":
    main()
