"""Evaluation harness: privacy against utility for every method, measured the way the field does.

    from condanon.evaluation import evaluate
    result = evaluate(["../shared/data/identity"], methods=["original", "blur", "pixelate", "mask"], out="report/")
    result.summaries["identity"]["blur"].dlib_removed

See `evaluate` and ``shared/docs/field.md`` for the definitions.
"""

from .dataset import Dataset, Sample, load_dataset
from .evaluate import Evaluation, evaluate
from .metrics import MethodSummary
from .records import FaceRecord
from .runner import MethodSpec

__all__ = ["Dataset", "Evaluation", "FaceRecord", "MethodSpec", "MethodSummary", "Sample", "evaluate", "load_dataset"]
