"""Train the ``sface-probe`` attribute backend: linear probes on SFace identity vectors.

    python tools/train_attribute_probe.py [--shared PATH] [--out models/sface-probe-v1.npz]

Faces: YuNet (largest face, 5 landmarks) -> SFace 128-D unit vector, on shared/data/train/utkface.
Sex: standardised vector -> logistic regression. Age: standardised vector -> ridge regression on
log(1 + age). Regularisation strengths are chosen by 5-fold CV on the train set only (fixed seed).
The embeddings are cached in /tmp/probe_cache.npz (no images are copied anywhere). The output .npz
holds only numpy arrays (loadable with ``allow_pickle=False``); metadata is a JSON string.
Finally the probe, the age-gender backend and simple ensembles are scored on the held-out
shared/data/attributes/utkface set.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold

from condanon.attributes import ATTRIBUTE_ESTIMATORS
from condanon.detection import DETECTORS
from condanon.identity import EMBEDDERS

SEED = 20240611
CACHE = Path("/tmp/probe_cache.npz")
SEX_C = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
AGE_ALPHA = [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0]


def shared_root(given: str | None) -> Path:
    root = Path(given or os.environ.get("CONDANON_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
    if not (root / "data").is_dir():
        raise SystemExit(f"no shared data at {root} (pass --shared or set CONDANON_SHARED)")
    return root


def embed_set(folder: Path, with_age_gender: bool) -> dict[str, np.ndarray]:
    """Return SFace vectors, labels and (optionally) age-gender outputs for the largest face of each image."""
    rows = list(csv.DictReader(open(folder / "index.csv")))
    detector = DETECTORS.create("yunet")
    embedder = EMBEDDERS.create("sface")
    age_gender = ATTRIBUTE_ESTIMATORS.create("age-gender") if with_age_gender else None
    vectors, ages, male, found, ag_age, ag_male = [], [], [], [], [], []
    for index, row in enumerate(rows):
        image = cv2.imread(str(folder / row["path"]))
        faces = detector.detect(image) if image is not None else []
        found.append(bool(faces))
        if not faces:
            continue
        face = max(faces, key=lambda f: f.box.area)
        vectors.append(embedder.embed(image, [face])[0])
        ages.append(float(row["age"]))
        male.append(row["sex"] == "M")
        if age_gender is not None:
            out = age_gender.estimate(image, [face])[0]
            ag_age.append(out.age)
            p = out.sex_confidence
            ag_male.append(p if out.sex == "male" else 1.0 - p)
        if index % 1000 == 0:
            print(f"  {folder.name}: {index}/{len(rows)}", flush=True)
    return {
        "x": np.asarray(vectors, np.float32),
        "age": np.asarray(ages, np.float64),
        "male": np.asarray(male, bool),
        "found": np.asarray(found, bool),
        "ag_age": np.asarray(ag_age, np.float64),
        "ag_male": np.asarray(ag_male, np.float64),
    }


def load_sets(root: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    if CACHE.is_file():
        data = np.load(CACHE, allow_pickle=False)
        if str(data["root"]) == str(root):
            split = lambda p: {k[len(p):]: data[k] for k in data.files if k.startswith(p)}  # noqa: E731
            return split("train_"), split("eval_")
    cv2.setNumThreads(1)
    train = embed_set(root / "data/train/utkface", with_age_gender=True)
    held = embed_set(root / "data/attributes/utkface", with_age_gender=True)
    arrays = {f"train_{k}": v for k, v in train.items()} | {f"eval_{k}": v for k, v in held.items()}
    np.savez(CACHE, root=np.asarray(str(root)), **arrays)
    return train, held


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


def cv_sex(x: np.ndarray, y: np.ndarray) -> tuple[float, dict[float, float], np.ndarray]:
    """Return the best C, the CV accuracy per C, and the out-of-fold P(male) at the best C."""
    folds = list(StratifiedKFold(5, shuffle=True, random_state=SEED).split(x, y))
    scores, oof = {}, {}
    for c in SEX_C:
        p = np.zeros(len(y))
        for train, test in folds:
            mean, scale = standardise(x[train])
            model = LogisticRegression(C=c, max_iter=5000).fit((x[train] - mean) / scale, y[train])
            p[test] = model.predict_proba((x[test] - mean) / scale)[:, 1]
        scores[c] = float(np.mean((p >= 0.5) == y))
        oof[c] = p
    best = max(SEX_C, key=lambda c: (scores[c], -c))
    return best, scores, oof[best]


def cv_age(x: np.ndarray, age: np.ndarray) -> tuple[float, dict[float, float], np.ndarray]:
    """Return the best ridge alpha (on log(1+age)), the CV MAE in years per alpha, and out-of-fold ages."""
    folds = list(KFold(5, shuffle=True, random_state=SEED).split(x))
    target = np.log1p(age)
    scores, oof = {}, {}
    for alpha in AGE_ALPHA:
        pred = np.zeros(len(age))
        for train, test in folds:
            mean, scale = standardise(x[train])
            model = Ridge(alpha=alpha).fit((x[train] - mean) / scale, target[train])
            pred[test] = np.expm1(model.predict((x[test] - mean) / scale))
        scores[alpha] = float(np.mean(np.abs(np.clip(pred, 0, 116) - age)))
        oof[alpha] = np.clip(pred, 0, 116)
    best = min(AGE_ALPHA, key=lambda a: (scores[a], a))
    return best, scores, oof[best]


def metrics(age_true: np.ndarray, age_pred: np.ndarray, male_true: np.ndarray, p_male: np.ndarray) -> dict:
    err = np.abs(age_pred - age_true)
    return {
        "sex_accuracy": float(np.mean((p_male >= 0.5) == male_true)),
        "age_mae": float(err.mean()),
        "age_within_5": float(np.mean(err <= 5)),
        "age_within_10": float(np.mean(err <= 10)),
    }


def paired_bootstrap(a_correct: np.ndarray, b_correct: np.ndarray, n: int = 10000) -> tuple[float, float, float]:
    """Return mean(b - a) and its 95 % bootstrap interval, over faces resampled with replacement."""
    rng = np.random.default_rng(SEED)
    diff = b_correct.astype(np.float64) - a_correct.astype(np.float64)
    idx = rng.integers(0, len(diff), size=(n, len(diff)))
    means = diff[idx].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", help="the shared folder (default ../shared or $CONDANON_SHARED)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "models/sface-probe-v1.npz"))
    args = parser.parse_args()
    root = shared_root(args.shared)
    train, held = load_sets(root)
    x, age, male = train["x"].astype(np.float64), train["age"], train["male"]
    print(f"train: {len(x)} faces ({train['found'].mean():.1%} detected); eval: {len(held['x'])} faces "
          f"({held['found'].mean():.1%} detected)")

    c, sex_scores, oof_male = cv_sex(x, male)
    alpha, age_scores, oof_age = cv_age(x, age)
    print("sex CV accuracy by C:", {k: round(v, 4) for k, v in sex_scores.items()}, "-> C =", c)
    print("age CV MAE by alpha:", {k: round(v, 3) for k, v in age_scores.items()}, "-> alpha =", alpha)

    # Spread of the age error in log space (for age_std) and ensemble weights, all from train CV only.
    log_resid_std = float(np.std(np.log1p(oof_age) - np.log1p(age)))
    probe_cv_mae = age_scores[alpha]
    ag_train_mae = float(np.mean(np.abs(train["ag_age"] - age)))
    ag_train_sex = float(np.mean((train["ag_male"] >= 0.5) == male))
    w_probe = (1 / probe_cv_mae**2) / (1 / probe_cv_mae**2 + 1 / ag_train_mae**2)
    print(f"train (CV) probe age MAE {probe_cv_mae:.2f}, age-gender on train {ag_train_mae:.2f} MAE / "
          f"{ag_train_sex:.1%} sex -> inverse-variance weight of the probe's age {w_probe:.2f}")

    mean, scale = standardise(x)
    z = (x - mean) / scale
    sex_model = LogisticRegression(C=c, max_iter=5000).fit(z, male)
    age_model = Ridge(alpha=alpha).fit(z, np.log1p(age))
    meta = {
        "name": "sface-probe-v1",
        "embedding": "sface 128-D unit vector (YuNet 5-landmark alignment), largest face",
        "features": "(x - mean) / scale",
        "sex": f"logistic regression, P(male) = sigmoid(z @ sex_coef + sex_intercept), C={c}",
        "age": f"ridge on log(1 + age), age = expm1(z @ age_coef + age_intercept) clipped to [0, 116], alpha={alpha}",
        "age_log_std": log_resid_std,
        "train_set": "shared/data/train/utkface",
        "train_faces": int(len(x)),
        "cv_sex_accuracy": sex_scores[c],
        "cv_age_mae": probe_cv_mae,
        "seed": SEED,
        "license": "derived from UTKFace: non-commercial research use only",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        sex_coef=sex_model.coef_[0].astype(np.float32),
        sex_intercept=np.float32(sex_model.intercept_[0]),
        age_coef=age_model.coef_.astype(np.float32),
        age_intercept=np.float32(age_model.intercept_),
        metadata=np.asarray(json.dumps(meta, sort_keys=True)),
    )
    print(f"wrote {out}")

    # ---- held-out evaluation (attributes/utkface) with the stored float32 arrays ----
    stored = np.load(out, allow_pickle=False)
    ze = (held["x"] - stored["mean"]) / stored["scale"]
    p_male = 1 / (1 + np.exp(-(ze @ stored["sex_coef"] + stored["sex_intercept"])))
    p_age = np.clip(np.expm1(ze @ stored["age_coef"] + stored["age_intercept"]), 0, 116)
    ea, em = held["age"], held["male"]
    ag_age, ag_male = held["ag_age"], held["ag_male"]
    rows = {
        "sface-probe alone": (p_age, p_male),
        "age-gender alone": (ag_age, ag_male),
        "mean P(male), mean age": ((p_age + ag_age) / 2, (p_male + ag_male) / 2),
        f"mean P(male), age weighted {w_probe:.2f}/{1 - w_probe:.2f} (train MAE)": (
            w_probe * p_age + (1 - w_probe) * ag_age, (p_male + ag_male) / 2),
    }
    print(f"\n## attributes/utkface: {len(ea)} faces with a detection\n")
    print("| estimator | sex acc % | age MAE | within 5 y % | within 10 y % |")
    print("|---|---|---|---|---|")
    results = {}
    for name, (a, p) in rows.items():
        m = metrics(ea, a, em, p)
        results[name] = (a, p)
        print(f"| {name} | {100 * m['sex_accuracy']:.1f} | {m['age_mae']:.2f} | {100 * m['age_within_5']:.1f} | "
              f"{100 * m['age_within_10']:.1f} |")
    print("\npaired bootstrap vs age-gender alone (10,000 resamples of the faces; 95 % interval):")
    base_err = np.abs(ag_age - ea)
    base_ok = (ag_male >= 0.5) == em
    for name, (a, p) in results.items():
        if name == "age-gender alone":
            continue
        d, lo, hi = paired_bootstrap(base_ok, (p >= 0.5) == em)
        e, elo, ehi = paired_bootstrap(-base_err, -np.abs(a - ea))
        print(f"  {name}: sex accuracy {100 * d:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]; "
              f"age MAE {-e:+.2f} y [{-ehi:+.2f}, {-elo:+.2f}]")


if __name__ == "__main__":
    main()
