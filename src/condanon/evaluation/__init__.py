"""Evaluation harness: privacy against utility for every method, measured the way the field does.

    from condanon.evaluation import evaluate
    result = evaluate(["photos/identity"], methods=["original", "blur", "pixelate", "mask"], out="report/")
    result.summaries["identity"]["blur"].dlib_removed

A dataset is a folder of photos with an ``index.csv`` (`load_dataset`). The definitions of the measures,
and the latest figures, are in docs/evaluation.md and docs/realism.md.
"""

from .dataset import Dataset, Sample, load_dataset
from .evaluate import Evaluation, evaluate
from .metrics import MethodSummary
from .records import FaceRecord
from .runner import MethodSpec

__all__ = ["Dataset", "Evaluation", "FaceRecord", "MethodSpec", "MethodSummary", "Sample", "evaluate", "load_dataset"]
