"""Evaluation: datasets (MultiPathQA, MedFrameQA, SynthPath), answer parsing and metrics.

The runner and the Ray executor live in their own modules and are imported from there.
"""

from slidescout.core.parsing import ParsedAnswer, isup_from_gleason, parse_answer
from slidescout.eval.dataset_registry import DATASETS, DatasetRequest, DatasetSpec, load_dataset
from slidescout.eval.datasets import load_multipathqa, load_synth
from slidescout.eval.medframeqa import load_medframeqa
from slidescout.eval.metrics import (
    ResultRecord,
    TaskScore,
    accuracy,
    balanced_accuracy,
    bootstrap_ci,
    majority_vote,
    per_class_recall,
    score_run,
    score_task,
)
from slidescout.eval.samples import DatasetLoad, Sample, SlideIndex

__all__ = [
    "DATASETS",
    "DatasetLoad",
    "DatasetRequest",
    "DatasetSpec",
    "ParsedAnswer",
    "ResultRecord",
    "Sample",
    "SlideIndex",
    "TaskScore",
    "accuracy",
    "balanced_accuracy",
    "bootstrap_ci",
    "isup_from_gleason",
    "load_dataset",
    "load_medframeqa",
    "load_multipathqa",
    "load_synth",
    "majority_vote",
    "parse_answer",
    "per_class_recall",
    "score_run",
    "score_task",
]
