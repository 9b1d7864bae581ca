"""Train the ``sface-probe`` attribute backend: linear probes on SFace identity vectors.

    python tools/train_attribute_probe.py [--shared PATH] [--out models/sface-probe-v1.npz]

Needs scikit-learn, which condanon itself does not install: ``pip install ".[eval]"``.

Faces: YuNet (largest face, 5 landmarks) -> SFace 128-D unit vector, on shared/data/train/utkface.
Sex: standardised vector -> a small MLP (128 ReLU units; a plain logistic regression reached only
~72 % in CV, the sex signal in SFace is not linear). Age: standardised vector -> multinomial logistic
regression over 11 age bands, turned into an expectation (ridge on log-age reached only ~10.8 y MAE).
Regularisation strengths are chosen by 5-fold CV on the train set only (fixed seed).
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
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier

from condanon.attributes import ATTRIBUTE_ESTIMATORS
from condanon.detection import DETECTORS
from condanon.identity import EMBEDDERS

SEED = 20240611
CACHE = Path("/tmp/probe_cache.npz")
SEX_ALPHA = [0.3, 1.0, 3.0]  # L2 penalty of the sex network
AGE_C = [0.1, 0.3, 1.0]  # inverse L2 penalty of the age-band classifier
HIDDEN = 128
# Age bands (years, [lo, hi)) and the age each band stands for in the expectation.
BAND_EDGES = np.array([0, 3, 7, 13, 20, 27, 35, 45, 55, 65, 80, 200], dtype=np.float64)
BAND_AGES = np.array([1.5, 5, 10, 16.5, 23.5, 31, 40, 50, 60, 72, 88], dtype=np.float64)


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


def mlp_forward(z: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: float) -> np.ndarray:
    """Return P(male) of the one-hidden-layer ReLU network (the backend runs the same numpy code)."""
    return 1 / (1 + np.exp(-(np.maximum(z @ w1 + b1, 0) @ w2 + b2)))


def fit_sex(z: np.ndarray, y: np.ndarray, alpha: float) -> MLPClassifier:
    return MLPClassifier((HIDDEN,), alpha=alpha, max_iter=300, random_state=SEED).fit(z, y)


def fit_age(z: np.ndarray, band: np.ndarray, c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=5000).fit(z, band)


def age_bands(age: np.ndarray) -> np.ndarray:
    return np.digitize(age, BAND_EDGES[1:-1])


def cv_probes(x: np.ndarray, male: np.ndarray, age: np.ndarray) -> dict:
    """5-fold CV (folds stratified by sex x age band) of every sex alpha and age C; out-of-fold predictions."""
    band = age_bands(age)
    folds = list(StratifiedKFold(5, shuffle=True, random_state=SEED).split(x, band * 2 + male))
    sex_oof = {a: np.zeros(len(x)) for a in SEX_ALPHA}
    age_oof = {c: np.zeros(len(x)) for c in AGE_C}
    for train, test in folds:
        mean, scale = standardise(x[train])
        zt, zs = (x[train] - mean) / scale, (x[test] - mean) / scale
        for a in SEX_ALPHA:
            sex_oof[a][test] = fit_sex(zt, male[train], a).predict_proba(zs)[:, 1]
        for c in AGE_C:
            age_oof[c][test] = fit_age(zt, band[train], c).predict_proba(zs) @ BAND_AGES
    sex_scores = {a: float(np.mean((p >= 0.5) == male)) for a, p in sex_oof.items()}
    age_scores = {c: float(np.mean(np.abs(p - age))) for c, p in age_oof.items()}
    best_a = max(SEX_ALPHA, key=lambda a: (sex_scores[a], a))
    best_c = min(AGE_C, key=lambda c: (age_scores[c], c))
    return {"alpha": best_a, "sex_scores": sex_scores, "oof_male": sex_oof[best_a],
            "c": best_c, "age_scores": age_scores, "oof_age": age_oof[best_c]}


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

    cv = cv_probes(x, male, age)
    alpha, c = cv["alpha"], cv["c"]
    print("sex CV accuracy by alpha:", {k: round(v, 4) for k, v in cv["sex_scores"].items()}, "-> alpha =", alpha)
    print("age CV MAE by C:", {k: round(v, 3) for k, v in cv["age_scores"].items()}, "-> C =", c)

    # Ensemble weight of the ages by inverse squared MAE, from train only (probe: CV; age-gender: as is).
    probe_cv_mae = cv["age_scores"][c]
    ag_train_mae = float(np.mean(np.abs(train["ag_age"] - age)))
    ag_train_sex = float(np.mean((train["ag_male"] >= 0.5) == male))
    w_probe = (1 / probe_cv_mae**2) / (1 / probe_cv_mae**2 + 1 / ag_train_mae**2)
    print(f"train (CV) probe age MAE {probe_cv_mae:.2f}; age-gender on train {ag_train_mae:.2f} MAE / "
          f"{ag_train_sex:.1%} sex -> inverse-variance weight of the probe's age {w_probe:.2f}")

    mean, scale = standardise(x)
    z = (x - mean) / scale
    sex_model = fit_sex(z, male, alpha)
    age_model = fit_age(z, age_bands(age), c)
    meta = {
        "name": "sface-probe-v1",
        "embedding": "sface 128-D unit vector (YuNet 5-landmark alignment), largest face",
        "features": "z = (x - mean) / scale",
        "sex": f"P(male) = sigmoid(relu(z @ sex_w1 + sex_b1) @ sex_w2 + sex_b2); MLP {HIDDEN} hidden, alpha={alpha}",
        "age": f"p = softmax(z @ age_coef.T + age_intercept) over bands; age = p @ band_ages; "
               f"age_std = sqrt(p @ (band_ages - age)^2); multinomial logistic regression C={c}",
        "band_edges": BAND_EDGES.tolist(),
        "train_set": "shared/data/train/utkface",
        "train_faces": int(len(x)),
        "cv_sex_accuracy": cv["sex_scores"][alpha],
        "cv_age_mae": probe_cv_mae,
        "ensemble_age_weight": w_probe,
        "seed": SEED,
        "sklearn": sklearn.__version__,
        "license": "derived from UTKFace: non-commercial research use only",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        sex_w1=sex_model.coefs_[0].astype(np.float32),
        sex_b1=sex_model.intercepts_[0].astype(np.float32),
        sex_w2=sex_model.coefs_[1][:, 0].astype(np.float32),
        sex_b2=np.float32(sex_model.intercepts_[1][0]),
        age_coef=age_model.coef_.astype(np.float32),
        age_intercept=age_model.intercept_.astype(np.float32),
        band_ages=BAND_AGES.astype(np.float32),
        metadata=np.asarray(json.dumps(meta, sort_keys=True)),
    )
    print(f"wrote {out}")

    # ---- held-out evaluation (attributes/utkface) with the stored float32 arrays ----
    stored = np.load(out, allow_pickle=False)
    ze = (held["x"] - stored["mean"]) / stored["scale"]
    p_male = mlp_forward(ze, stored["sex_w1"], stored["sex_b1"], stored["sex_w2"], stored["sex_b2"])
    logits = ze @ stored["age_coef"].T + stored["age_intercept"]
    bands = np.exp(logits - logits.max(axis=1, keepdims=True))
    p_age = (bands / bands.sum(axis=1, keepdims=True)) @ stored["band_ages"]
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
