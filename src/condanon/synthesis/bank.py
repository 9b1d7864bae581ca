"""The prototype bank: averages of k >= 5 aligned real faces, bucketed by sex, age band and expression.

Built by ``tools/build_prototype_bank.py`` from training photos (card: models/prototype-bank-v1.md).
Each prototype carries its 68-point shape in the 128 px canonical frame, its bucket, k, and how the
package's own estimators read it (apparent age, probability of male, emotion probabilities): the
synthetic method picks prototypes by those readings, because the estimators are what must agree.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelError, one_line, show_path
from ..types import EMOTIONS, Attributes, Box, Face
from ..weights import load_once, model_path

SIZE = 128
"""Side of the canonical frame the prototypes live in."""

MOUTH_OPEN = 0.12
"""Inner-lip gap over mouth width above which a mouth counts as open."""


def mouth_open(points68: np.ndarray) -> bool:
    """Return whether the lips are apart: the inner-lip gap is more than `MOUTH_OPEN` of the mouth width."""
    points68 = np.asarray(points68, dtype=np.float64)
    gap = np.mean([np.hypot(*(points68[a] - points68[b])) for a, b in ((61, 67), (62, 66), (63, 65))])
    width = np.hypot(*(points68[54] - points68[48]))
    return bool(width > 0 and gap / width > MOUTH_OPEN)


def expression_key(emotion: str, is_open: bool) -> str:
    """Return the expression bucket name: the emotion, with ``-open`` when the mouth is open."""
    return f"{emotion}-open" if is_open else emotion


def box_of(points68: np.ndarray) -> Box:
    """Return a detector-style box (forehead to chin) around 68 landmarks."""
    low, high = points68.min(axis=0), points68.max(axis=0)
    height = high[1] - low[1]
    return Box(float(low[0]), float(low[1] - 0.25 * height), float(high[0]), float(high[1]))


def face_of(points68: np.ndarray) -> Face:
    """Return a `Face` for known 68 landmarks (box and 5 points derived from them)."""
    from ..landmarks import five_from_68

    points68 = np.asarray(points68, dtype=np.float32)
    return Face(box=box_of(points68), score=1.0, landmarks5=five_from_68(points68), landmarks68=points68)


IN_LOOP_ESTIMATORS = ("age-sex-mean", "emotion")
"""The attribute backends the verification loop reads candidates with (fast: the SFace vector is shared)."""
RANKED_BY = "sface"
"""The recogniser whose vectors the bank holds (`PrototypeBank.rank` compares the original's with them)."""


def read_prototypes(images: list[np.ndarray], shapes: np.ndarray) -> dict[str, np.ndarray]:
    """Return how the in-loop estimators and SFace read each prototype.

    Keys: ``age``, ``male`` (probability), ``emotion`` (N, 7), ``sface`` (N, 128 unit vectors).
    """
    from ..attributes import ATTRIBUTE_ESTIMATORS, CombinedEstimator
    from ..identity import EMBEDDERS

    estimator = CombinedEstimator([ATTRIBUTE_ESTIMATORS.create(name) for name in IN_LOOP_ESTIMATORS])
    sface = EMBEDDERS.create("sface")
    ages, males, emotions, vectors = [], [], [], []
    for image, shape in zip(images, shapes):
        face = face_of(shape)
        vectors.append(sface.embed(image, [face])[0])
        face.embeddings["sface"] = vectors[-1]
        (a,) = estimator.estimate(image, [face])
        assert a.sex_confidence is not None  # age-sex-mean always reads sex with its confidence
        ages.append(a.age)
        males.append(a.sex_confidence if a.sex == "male" else 1 - a.sex_confidence)
        emotions.append([a.emotion_probabilities[e] for e in EMOTIONS])
    return {"age": np.array(ages), "male": np.array(males), "emotion": np.array(emotions), "sface": np.array(vectors)}


@dataclass
class PrototypeBank:
    """Prototype images (BGR, canonical frame), shapes, buckets and the estimators' readings of them."""

    images: np.ndarray
    shapes: np.ndarray
    sex: np.ndarray
    expression: np.ndarray
    k: np.ndarray
    apparent_age: np.ndarray
    apparent_male: np.ndarray
    apparent_emotion: np.ndarray
    sface: np.ndarray
    reference: np.ndarray

    @classmethod
    def load(cls, path: str | Path) -> PrototypeBank:
        """Return the bank stored at ``path`` (an ``.npz`` written by tools/build_prototype_bank.py).

        Raises `ModelError` naming the file and what is wrong when it cannot be read whole: a broken
        bank is a configuration failure, never a reason to mask faces quietly.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                blob, offsets = data["jpeg"], data["offsets"]
                images = []
                for i in range(len(offsets) - 1):
                    image = cv2.imdecode(blob[offsets[i] : offsets[i + 1]], cv2.IMREAD_COLOR)
                    if image is None:
                        raise ValueError(f"prototype image {i} does not decode")
                    images.append(image)
                if not images:
                    raise ValueError("it holds no prototypes")
                bank = cls(
                    images=np.stack(images),
                    shapes=data["shapes"].astype(np.float64),
                    sex=data["sex"],
                    expression=data["expression"],
                    k=data["k"],
                    apparent_age=data["apparent_age"],
                    apparent_male=data["apparent_male"],
                    apparent_emotion=data["apparent_emotion"],
                    sface=data["sface"].astype(np.float32),
                    reference=data["reference"].astype(np.float64),
                )
        except KeyError as error:
            raise ModelError(
                f"prototype bank {show_path(path)} is corrupt or of another version: no entry {error}"
            ) from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            raise ModelError(f"prototype bank {show_path(path)} cannot be read: {one_line(error)}") from None
        count = len(bank.images)
        if any(
            len(column) != count for column in (bank.shapes, bank.sex, bank.expression, bank.apparent_age, bank.sface)
        ):
            raise ModelError(f"prototype bank {show_path(path)} is corrupt: its columns differ in length")
        return bank

    def __len__(self) -> int:
        return len(self.images)

    def rank(
        self,
        attributes: Attributes | None,
        is_open: bool,
        rng: np.random.Generator,
        identity: np.ndarray | None = None,
        weights: RankWeights | None = None,
        strangers: float = 0.0,
    ) -> np.ndarray:
        """Return prototype indices, best match first, for a face with these attributes and mouth state.

        Cost (lower is better): sex as the estimators read the prototype must match (a large penalty
        otherwise, and a small one for a weak reading); age distance in units of the original's age
        spread (at least 4 years); how unlikely the original's dominant emotion is on the prototype; a
        different mouth state; and, given the original's SFace vector as ``identity``, how similar the
        prototype already looks to the person beyond ``strangers``, the similarity a typical stranger of
        the person's age has (candidates should start far from them; to SFace all infants look alike,
        so an infant prototype at 0.45 is as far as any other). A small seeded jitter breaks ties so two
        faces with the same attributes get different people.
        """
        w = weights or RankWeights()
        cost = np.zeros(len(self))
        if identity is not None:
            cost += w.identity * np.clip(self.sface @ np.asarray(identity, dtype=np.float32) - strangers, 0.0, None)
        if attributes is not None and attributes.sex is not None:
            male = attributes.sex == "male"
            agrees = (self.apparent_male >= 0.5) == male
            cost += np.where(agrees, 0.0, 100.0)
            cost += w.sex * np.abs(self.apparent_male - (1.0 if male else 0.0))
        if attributes is not None and attributes.age is not None:
            spread = max(4.0, 0.15 * attributes.age)
            cost += w.age * np.abs(self.apparent_age - attributes.age) / spread
        if attributes is not None and attributes.emotion is not None:
            index = EMOTIONS.index(attributes.emotion)
            cost += -w.emotion * np.log(np.maximum(self.apparent_emotion[:, index], 1e-3))
        opened = np.char.endswith(self.expression.astype(str), "-open")
        cost += np.where(opened == is_open, 0.0, 1.0)
        cost += rng.uniform(0, 0.3, len(self))
        return np.argsort(cost, kind="stable")


@dataclass
class RankWeights:
    """Weights of the terms of `PrototypeBank.rank`'s cost (the loop raises a term after a failed check)."""

    identity: float = 8.0
    """Per unit of SFace cosine between prototype and original (0.25 costs as much as 2 age spreads)."""
    sex: float = 2.0
    """Per unit of how far the prototype's male probability is from the original's sex."""
    age: float = 1.0
    emotion: float = 1.0


def default_bank() -> PrototypeBank:
    """Return the bundled bank, loaded once per process."""
    return load_once("prototype-bank-v1", lambda: PrototypeBank.load(model_path("prototype-bank-v1")))
