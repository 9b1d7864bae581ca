"""Train ``sface-dlib-probe-v1``: age/sex heads on the SFace + dlib vectors, and a stack with age-gender.

    python tools/train_attribute_probe_v2.py [--shared PATH] [--out models/sface-dlib-probe-v1.npz]

Needs scikit-learn, which condanon itself does not install: ``pip install ".[eval]"``.

Faces: YuNet (largest face, 5 landmarks) -> SFace 128-D unit vector and dlib ResNet 128-D unit vector
(condanon's "sface" and "dlib" embedders), concatenated to 256 values, on shared/data/train/utkface.
Heads (the same kinds as sface-probe-v1): sex = MLP with 128 ReLU units on the standardised vector;
age = multinomial logistic regression over 11 age bands, turned into an expectation. Regularisation is
the one 5-fold CV chose for sface-probe-v1 (alpha 1, C 0.3; not searched again).

Stack: the probe's 5-fold out-of-fold predictions on the TRAIN set and age-gender's predictions on the
same faces are combined by a logistic regression over the two logit(P(male)) (sex) and a least-absolute-
deviation linear regression over the two ages (age). Nothing is fitted on the held-out set.

SFace vectors and age-gender outputs come from tools/train_attribute_probe.py's cache
(/tmp/probe_cache.npz, made when missing); dlib vectors are cached in /tmp/probe_cache_v2.npz. No image
is copied anywhere. The output .npz holds only numpy arrays (``allow_pickle=False``); metadata is JSON.
Finally the probe, the stack and the current default are scored on shared/data/attributes/utkface.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression, QuantileRegressor
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_attribute_probe import (  # noqa: E402
    BAND_AGES,
    BAND_EDGES,
    HIDDEN,
    SEED,
    age_bands,
    fit_age,
    fit_sex,
    load_sets,
    metrics,
    paired_bootstrap,
    shared_root,
    standardise,
)

from condanon.detection import DETECTORS  # noqa: E402
from condanon.identity import EMBEDDERS  # noqa: E402

NAME = "sface-dlib-probe-v1"
CACHE_V2 = Path("/tmp/probe_cache_v2.npz")
ALPHA, C = 1.0, 0.3  # chosen by 5-fold CV for sface-probe-v1 (tools/train_attribute_probe.py)
STACK_C = 1.0  # inverse L2 penalty of the 2-input sex stacker (3 parameters: hardly matters)
LOGIT_CLIP = 1e-4  # P(male) is clipped to [clip, 1 - clip] before the logit
MEMBERS = ("age-gender", "sface-dlib-probe")


def dlib_vectors(folder: Path, found: np.ndarray) -> np.ndarray:
    """Return the dlib vectors of the largest YuNet face of every image where one was found."""
    rows = list(csv.DictReader(open(folder / "index.csv")))
    detector, embedder = DETECTORS.create("yunet"), EMBEDDERS.create("dlib")
    out = []
    for index, row in enumerate(rows):
        image = cv2.imread(str(folder / row["path"]))
        faces = detector.detect(image) if image is not None else []
        if bool(faces) != bool(found[index]):
            raise SystemExit(f"detection of {row['path']} differs from the SFace cache: delete both caches")
        if faces:
            out.append(embedder.embed(image, [max(faces, key=lambda f: f.box.area)])[0])
        if index % 1000 == 0:
            print(f"  dlib {folder.name}: {index}/{len(rows)}", flush=True)
    return np.asarray(out, np.float32)


def load_dlib(root: Path, train: dict, held: dict) -> tuple[np.ndarray, np.ndarray]:
    if CACHE_V2.is_file():
        data = np.load(CACHE_V2, allow_pickle=False)
        if (
            str(data["root"]) == str(root)
            and np.array_equal(data["train_idx"], np.flatnonzero(train["found"]))
            and np.array_equal(data["eval_idx"], np.flatnonzero(held["found"]))
        ):
            return data["train_dlib"], data["eval_dlib"]
    cv2.setNumThreads(1)
    train_d = dlib_vectors(root / "data/train/utkface", train["found"])
    eval_d = dlib_vectors(root / "data/attributes/utkface", held["found"])
    np.savez(CACHE_V2, root=np.asarray(str(root)), train_dlib=train_d, eval_dlib=eval_d,
             train_idx=np.flatnonzero(train["found"]), eval_idx=np.flatnonzero(held["found"]))
    return train_d, eval_d


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(p / (1 - p))


def probe_forward(stored: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return P(male) and expected age of the stored heads (the backend runs the same numpy code)."""
    z = (x - stored["mean"]) / stored["scale"]
    hidden = np.maximum(z @ stored["sex_w1"] + stored["sex_b1"], 0)
    male = 1 / (1 + np.exp(-(hidden @ stored["sex_w2"] + stored["sex_b2"])))
    logits = z @ stored["age_coef"].T + stored["age_intercept"]
    bands = np.exp(logits - logits.max(axis=1, keepdims=True))
    return male, (bands / bands.sum(axis=1, keepdims=True)) @ stored["band_ages"]


def stack_forward(stored: dict, males: list[np.ndarray], ages: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Return the stacked P(male) and age from the members' outputs (in MEMBERS order)."""
    s = np.column_stack([logit(m) for m in males]) @ stored["stack_sex_coef"] + stored["stack_sex_intercept"]
    age = np.column_stack(ages) @ stored["stack_age_coef"] + stored["stack_age_intercept"]
    return 1 / (1 + np.exp(-s)), np.maximum(age, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", help="the shared folder (default ../shared or $CONDANON_SHARED)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / f"models/{NAME}.npz"))
    args = parser.parse_args()
    root = shared_root(args.shared)
    train, held = load_sets(root)
    train_d, eval_d = load_dlib(root, train, held)
    x = np.hstack([train["x"], train_d]).astype(np.float64)
    xe = np.hstack([held["x"], eval_d]).astype(np.float64)
    age, male = train["age"], train["male"]
    print(f"train: {len(x)} faces, eval: {len(xe)} faces; features {x.shape[1]}")

    # ---- 5-fold out-of-fold predictions of the probe on the train set (same folds as v1) ----
    band = age_bands(age)
    oof_male, oof_age = np.zeros(len(x)), np.zeros(len(x))
    start = time.time()
    for train_idx, test_idx in StratifiedKFold(5, shuffle=True, random_state=SEED).split(x, band * 2 + male):
        mean, scale = standardise(x[train_idx])
        zt, zs = (x[train_idx] - mean) / scale, (x[test_idx] - mean) / scale
        oof_male[test_idx] = fit_sex(zt, male[train_idx], ALPHA).predict_proba(zs)[:, 1]
        oof_age[test_idx] = fit_age(zt, band[train_idx], C).predict_proba(zs) @ BAND_AGES
    cv_probe = metrics(age, oof_age, male, oof_male)
    print(f"probe CV ({time.time() - start:.0f}s): sex {cv_probe['sex_accuracy']:.1%}, MAE {cv_probe['age_mae']:.2f}")

    # ---- the stack, fitted on the out-of-fold predictions ----
    sex_stack = LogisticRegression(C=STACK_C).fit(np.column_stack([logit(train["ag_male"]), logit(oof_male)]), male)
    age_stack = QuantileRegressor(quantile=0.5, alpha=0.0, solver="highs").fit(
        np.column_stack([train["ag_age"], oof_age]), age
    )
    print("stack: sex coef", sex_stack.coef_[0].round(3), "intercept", round(float(sex_stack.intercept_[0]), 3),
          "| age coef", age_stack.coef_.round(3), "intercept", round(float(age_stack.intercept_), 3))

    # ---- the final probe on the whole train set ----
    mean, scale = standardise(x)
    z = (x - mean) / scale
    sex_model = fit_sex(z, male, ALPHA)
    age_model = fit_age(z, band, C)
    arrays = {
        "mean": mean.astype(np.float32),
        "scale": scale.astype(np.float32),
        "sex_w1": sex_model.coefs_[0].astype(np.float32),
        "sex_b1": sex_model.intercepts_[0].astype(np.float32),
        "sex_w2": sex_model.coefs_[1][:, 0].astype(np.float32),
        "sex_b2": np.float32(sex_model.intercepts_[1][0]),
        "age_coef": age_model.coef_.astype(np.float32),
        "age_intercept": age_model.intercept_.astype(np.float32),
        "band_ages": BAND_AGES.astype(np.float32),
        "stack_sex_coef": sex_stack.coef_[0].astype(np.float32),
        "stack_sex_intercept": np.float32(sex_stack.intercept_[0]),
        "stack_age_coef": age_stack.coef_.astype(np.float32),
        "stack_age_intercept": np.float32(age_stack.intercept_),
    }
    stored = {k: v.astype(np.float64) for k, v in arrays.items()}
    p_cv, a_cv = stack_forward(stored, [train["ag_male"], oof_male], [train["ag_age"], oof_age])
    cv_stack = metrics(age, a_cv, male, p_cv)
    print(f"stack on the train OOF: sex {cv_stack['sex_accuracy']:.1%}, MAE {cv_stack['age_mae']:.2f}")
    meta = {
        "name": NAME,
        "embedding": "concat(sface 128-D unit vector, dlib ResNet 128-D unit vector); YuNet 5-landmark alignment "
                     "for SFace, dlib 5-point predictor on the YuNet box for dlib; largest face",
        "features": "z = (concat(sface, dlib) - mean) / scale",
        "sex": f"P(male) = sigmoid(relu(z @ sex_w1 + sex_b1) @ sex_w2 + sex_b2); MLP {HIDDEN} hidden, alpha={ALPHA}",
        "age": f"p = softmax(z @ age_coef.T + age_intercept) over bands; age = p @ band_ages; "
               f"age_std = sqrt(p @ (band_ages - age)^2); multinomial logistic regression C={C}",
        "band_edges": BAND_EDGES.tolist(),
        "stack_members": list(MEMBERS),
        "stack_sex": "P(male) = sigmoid([logit(p_age_gender), logit(p_probe)] @ stack_sex_coef + stack_sex_intercept), "
                     f"p clipped to [{LOGIT_CLIP}, 1 - {LOGIT_CLIP}]; logistic regression C={STACK_C} on 5-fold OOF",
        "stack_age": "age = max(0, [age_age_gender, age_probe] @ stack_age_coef + stack_age_intercept); "
                     "least-absolute-deviation regression on 5-fold OOF",
        "logit_clip": LOGIT_CLIP,
        "train_set": "shared/data/train/utkface",
        "train_faces": int(len(x)),
        "cv_probe": cv_probe,
        "cv_stack": cv_stack,
        "seed": SEED,
        "sklearn": sklearn.__version__,
        "license": "derived from UTKFace: non-commercial research use only",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, metadata=np.asarray(json.dumps(meta, sort_keys=True)), **arrays)
    print(f"wrote {out}")

    # ---- held-out evaluation (attributes/utkface) with the stored float32 arrays ----
    with np.load(out, allow_pickle=False) as data:
        stored = {k: data[k].astype(np.float64) for k in arrays}
    with np.load(out.parent / "sface-probe-v1.npz", allow_pickle=False) as data:
        v1 = {k: data[k].astype(np.float64) for k in data.files if k != "metadata"}
    ea, em = held["age"], held["male"]
    ag_male, ag_age = held["ag_male"], held["ag_age"]
    p_male, p_age = probe_forward(stored, xe)
    v1_male, v1_age = probe_forward(v1, held["x"].astype(np.float64))
    s_male, s_age = stack_forward(stored, [ag_male, p_male], [ag_age, p_age])
    rows = {
        "age-gender alone": (ag_age, ag_male),
        "sface-probe-v1 alone": (v1_age, v1_male),
        f"{NAME} alone": (p_age, p_male),
        "current default: mean(age-gender, sface-probe-v1)": ((ag_age + v1_age) / 2, (ag_male + v1_male) / 2),
        f"stack(age-gender, {NAME})": (s_age, s_male),
    }
    print(f"\n## attributes/utkface: {len(ea)} faces with a detection\n")
    print("| estimator | sex acc % | age MAE | within 5 y % | within 10 y % |")
    print("|---|---|---|---|---|")
    for name, (a, p) in rows.items():
        m = metrics(ea, a, em, p)
        print(f"| {name} | {100 * m['sex_accuracy']:.1f} | {m['age_mae']:.2f} | {100 * m['age_within_5']:.1f} | "
              f"{100 * m['age_within_10']:.1f} |")
    print("\npaired bootstrap vs the current default (10,000 resamples of the faces; 95 % interval):")
    base_age, base_male = rows["current default: mean(age-gender, sface-probe-v1)"]
    base_ok, base_err = (base_male >= 0.5) == em, np.abs(base_age - ea)
    for name, (a, p) in rows.items():
        if name.startswith("current default"):
            continue
        d, lo, hi = paired_bootstrap(base_ok, (p >= 0.5) == em)
        e, elo, ehi = paired_bootstrap(-base_err, -np.abs(a - ea))
        print(f"  {name}: sex accuracy {100 * d:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]; "
              f"age MAE {-e:+.2f} y [{-ehi:+.2f}, {-elo:+.2f}]")


if __name__ == "__main__":
    main()
