"""Scores: accuracy, balanced accuracy, per-class recall, bootstrap CIs, majority vote.

A run writes one :class:`ResultRecord` per finished (sample, repeat). :func:`score_run` groups
them by task and returns a :class:`TaskScore` each:

- ``value``: the task's metric. With several repeats it is the *mean of runs* (each repeat's
  metric, averaged), otherwise the single run's metric.
- ``ci_low``/``ci_high``: percentile bootstrap over samples (seeded, ``n_bootstrap`` draws); a
  drawn sample brings all its repeats, so the CI is for the same statistic as ``value``.
- ``boot_mean``/``boot_std``: the mean and standard deviation of the same bootstrap draws. This
  is how the GIANT paper reports its numbers (bootstrap mean ± std; GIANT's code has no scorer),
  so compare ``boot_mean ± boot_std`` with the paper, not the percentile CI.
- ``majority_vote``: the metric of the per-sample majority answer across repeats (the paper's
  "×5" is this over 5 runs; ties go to the answer given first, i.e. in the lowest repeat;
  unparsed answers do not vote unless all are), with its own bootstrap mean ± std.
- ``n_isup0_null``: PANDA replies scored as ISUP 0 because they named no grade (``null``,
  "N/A", "Benign", "no cancer"). ``n_empty``: empty replies; ``value_excluding_empty`` leaves
  them out of the denominator, as MedFrameQA's official evaluation does.
- Unparsed answers (``parsed_ok`` False) and failed samples count as wrong; ``n_unparsed`` and
  ``n_errors`` say how many. Balanced accuracy is the mean recall over the classes present in
  the ground truth. A (sample_id, repeat) written twice counts once: the last line wins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, Field

from slidescout.core.parsing import ISUP0_METHODS
from slidescout.core.record import ResultRecord, Value, answer_key
from slidescout.eval.samples import Metric

__all__ = [
    "ResultRecord",
    "TaskScore",
    "accuracy",
    "balanced_accuracy",
    "bootstrap_ci",
    "majority_vote",
    "per_class_recall",
    "score_run",
    "score_task",
]


def _key(v: Value | None) -> str | None:
    return answer_key(v)


class TaskScore(BaseModel):
    task: str
    metric: Metric
    n: int  # distinct samples
    n_records: int
    repeats: int  # distinct repeat indices
    value: float  # mean of runs when repeats > 1, else the single run's metric (0..1)
    ci_low: float
    ci_high: float
    ci_level: float = 0.95
    n_bootstrap: int = 1000
    n_correct: int = 0  # records
    n_unparsed: int = 0  # records whose answer could not be parsed (counted wrong)
    n_errors: int = 0  # records whose status is not "answered"
    n_incomplete: int = 0  # samples missing from some repeat
    per_class_recall: dict[str, float] = Field(default_factory=dict)  # pooled over repeats
    run_values: list[float] = Field(default_factory=list)  # each repeat's metric, by repeat index
    mean_of_runs: float | None = None  # when repeats > 1
    majority_vote: float | None = None  # when repeats > 1
    majority_ci: tuple[float, float] | None = None
    boot_mean: float | None = None  # bootstrap mean and std of ``value`` (the GIANT paper's report)
    boot_std: float | None = None
    majority_boot_mean: float | None = None
    majority_boot_std: float | None = None
    n_isup0_null: int = 0  # PANDA replies with no grade (null, N/A, Benign...) scored as ISUP 0
    n_empty: int = 0  # empty replies (counted wrong in ``value``)
    value_excluding_empty: float | None = (
        None  # empty replies left out (MedFrameQA's official score)
    )
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # sum of the known costs
    n_cost_unknown: int = 0
    mean_latency_s: float | None = None


# ---- plain metrics --------------------------------------------------------------------------


def _correct(
    truth: Sequence[Any], predicted: Sequence[Any], parsed_ok: Sequence[bool] | None
) -> np.ndarray:
    if len(truth) != len(predicted) or (parsed_ok is not None and len(parsed_ok) != len(truth)):
        raise ValueError("truth, predicted and parsed_ok must have the same length")
    ok = parsed_ok if parsed_ok is not None else [True] * len(truth)
    return np.array(
        [
            bool(o) and p is not None and _key(p) == _key(t)
            for t, p, o in zip(truth, predicted, ok, strict=True)
        ],
        dtype=bool,
    )


def _class_order(keys: Iterable[str]) -> list[str]:
    def sort_key(k: str) -> tuple[int, float, str]:
        try:
            return (0, float(k), k)
        except ValueError:
            return (1, 0.0, k)

    return sorted(set(keys), key=sort_key)


def accuracy(
    truth: Sequence[Any], predicted: Sequence[Any], parsed_ok: Sequence[bool] | None = None
) -> float:
    """Fraction correct; unparsed (``parsed_ok`` False) or None predictions are wrong. NaN if empty."""
    c = _correct(truth, predicted, parsed_ok)
    return float(c.mean()) if c.size else math.nan


def per_class_recall(
    truth: Sequence[Any], predicted: Sequence[Any], parsed_ok: Sequence[bool] | None = None
) -> dict[str, float]:
    """Recall of each ground-truth class (keyed by the class as text, in natural order)."""
    c = _correct(truth, predicted, parsed_ok)
    keys = [str(_key(t)) for t in truth]
    out: dict[str, list[bool]] = {}
    for k, ok in zip(keys, c, strict=True):
        out.setdefault(k, []).append(bool(ok))
    labels = {str(_key(t)): str(t) for t in truth}
    return {labels[k]: float(np.mean(out[k])) for k in _class_order(out)}


def balanced_accuracy(
    truth: Sequence[Any], predicted: Sequence[Any], parsed_ok: Sequence[bool] | None = None
) -> float:
    """Mean per-class recall over the classes present in ``truth``. NaN if empty."""
    recalls = per_class_recall(truth, predicted, parsed_ok)
    return float(np.mean(list(recalls.values()))) if recalls else math.nan


def majority_vote(
    predicted: Sequence[Value | None], parsed_ok: Sequence[bool] | None = None
) -> Value | None:
    """The most frequent parsed answer, in repeat order; a tie goes to the answer given first.
    Unparsed answers (None or ``parsed_ok`` False) do not vote; None if nothing parsed."""
    ok = parsed_ok if parsed_ok is not None else [True] * len(predicted)
    counts: dict[str, int] = {}
    first: dict[str, tuple[int, Value]] = {}
    for i, (p, o) in enumerate(zip(predicted, ok, strict=True)):
        if not o or p is None:
            continue
        k = str(_key(p))
        counts[k] = counts.get(k, 0) + 1
        first.setdefault(k, (i, p))
    if not counts:
        return None
    best = max(counts, key=lambda k: (counts[k], -first[k][0]))
    return first[best][1]


# ---- vectorised core ------------------------------------------------------------------------


def _metric_batch(
    idx: np.ndarray,
    codes: np.ndarray,
    correct: np.ndarray,
    mask: np.ndarray,
    n_classes: int,
    metric: str,
) -> np.ndarray:
    """Mean over repeats of the metric, for each row of sample indices ``idx`` (B, n)."""
    b, _ = idx.shape
    r = correct.shape[1]
    cb = correct[idx] & mask[idx]  # (B, n, R)
    mb = mask[idx]
    if metric == "accuracy":
        hits, counts = cb.sum(axis=1), mb.sum(axis=1)  # (B, R)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_run = hits / counts
    else:
        cls = codes[idx]  # (B, n)
        flat = (np.arange(b)[:, None, None] * r + np.arange(r)[None, None, :]) * n_classes + cls[
            :, :, None
        ]
        size = b * r * n_classes
        counts = np.bincount(flat.ravel(), weights=mb.ravel(), minlength=size).reshape(
            b, r, n_classes
        )
        hits = np.bincount(flat.ravel(), weights=cb.ravel(), minlength=size).reshape(
            b, r, n_classes
        )
        present = counts > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(present, hits / np.where(present, counts, 1), 0.0)
            per_run = recall.sum(axis=2) / present.sum(axis=2)  # (B, R)
    valid = ~np.isnan(per_run)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid, per_run, 0.0).sum(axis=1) / valid.sum(axis=1)


def _bootstrap_stats(
    codes: np.ndarray,
    correct: np.ndarray,
    mask: np.ndarray,
    n_classes: int,
    metric: str,
    n_boot: int,
    seed: int,
) -> np.ndarray:
    """The metric of each bootstrap draw of samples (NaN draws dropped)."""
    n, r = correct.shape
    if n == 0 or n_boot <= 0:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    block = max(1, 4_000_000 // max(1, n * r * 2))
    stats = np.concatenate(
        [
            _metric_batch(idx[i : i + block], codes, correct, mask, n_classes, metric)
            for i in range(0, n_boot, block)
        ]
    )
    return stats[~np.isnan(stats)]


def _percentiles(stats: np.ndarray, level: float) -> tuple[float, float]:
    if stats.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(stats, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def _mean_std(stats: np.ndarray) -> tuple[float | None, float | None]:
    return (float(stats.mean()), float(stats.std())) if stats.size else (None, None)


def _bootstrap(
    codes: np.ndarray,
    correct: np.ndarray,
    mask: np.ndarray,
    n_classes: int,
    metric: str,
    n_boot: int,
    level: float,
    seed: int,
) -> tuple[float, float]:
    return _percentiles(
        _bootstrap_stats(codes, correct, mask, n_classes, metric, n_boot, seed), level
    )


def bootstrap_ci(
    truth: Sequence[Any],
    predicted: Sequence[Any],
    metric: str = "accuracy",
    *,
    parsed_ok: Sequence[bool] | None = None,
    n: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``metric`` ("accuracy" or "balanced_accuracy") over samples."""
    c = _correct(truth, predicted, parsed_ok)
    keys = [str(_key(t)) for t in truth]
    order = {k: i for i, k in enumerate(_class_order(keys))}
    codes = np.array([order[k] for k in keys], dtype=np.int64)
    return _bootstrap(
        codes,
        c[:, None],
        np.ones((len(c), 1), dtype=bool),
        max(1, len(order)),
        _check_metric(metric),
        n,
        level,
        seed,
    )


def _check_metric(metric: str) -> Metric:
    if metric == "accuracy":
        return "accuracy"
    if metric == "balanced_accuracy":
        return "balanced_accuracy"
    raise ValueError(f"unknown metric {metric!r}: use accuracy or balanced_accuracy")


# ---- scoring records ------------------------------------------------------------------------


def _records(records: Iterable[ResultRecord | Mapping[str, Any]]) -> list[ResultRecord]:
    out = [
        r if isinstance(r, ResultRecord) else ResultRecord.model_validate(dict(r)) for r in records
    ]
    latest: dict[tuple[str, int], ResultRecord] = {}
    for r in out:
        latest[(r.sample_id, r.repeat)] = r  # a line written again (resume) replaces the old one
    return list(latest.values())


@dataclass
class _Grid:
    """One task's records laid out as samples × repeats: which answers were right, which cells
    hold a record, which replies were empty, and each sample's truth class code."""

    recs: list[ResultRecord]
    sample_ids: list[str]
    repeats: int
    correct: np.ndarray  # (n, repeats) bool
    mask: np.ndarray  # (n, repeats) bool: a record exists
    empty: np.ndarray  # (n, repeats) bool: the reply was empty
    truth: dict[str, Value | None]
    codes: np.ndarray  # (n,) truth class code of each sample
    k: int  # number of classes (at least 1)

    @classmethod
    def of(cls, recs: list[ResultRecord]) -> _Grid:
        sample_ids = list(dict.fromkeys(r.sample_id for r in recs))
        repeat_ids = sorted({r.repeat for r in recs})
        s_pos = {s: i for i, s in enumerate(sample_ids)}
        r_pos = {k: i for i, k in enumerate(repeat_ids)}
        n, nr = len(sample_ids), len(repeat_ids)
        correct = np.zeros((n, nr), dtype=bool)
        mask = np.zeros((n, nr), dtype=bool)
        empty = np.zeros((n, nr), dtype=bool)
        truth: dict[str, Value | None] = {}
        for r in recs:
            i, j = s_pos[r.sample_id], r_pos[r.repeat]
            correct[i, j], mask[i, j] = bool(r.correct), True
            empty[i, j] |= r.error == "empty reply"
            truth.setdefault(r.sample_id, r.truth)
        keys = [str(_key(truth[s])) for s in sample_ids]
        order = {k: i for i, k in enumerate(_class_order(keys))}
        codes = np.array([order[k] for k in keys], dtype=np.int64)
        return cls(recs, sample_ids, nr, correct, mask, empty, truth, codes, max(1, len(order)))

    def value(self, correct: np.ndarray, mask: np.ndarray, metric: Metric) -> float:
        """The metric over every sample, for a (n, r) grid of answers."""
        all_idx = np.arange(len(self.sample_ids))[None, :]
        return float(_metric_batch(all_idx, self.codes, correct, mask, self.k, metric)[0])

    def majority_correct(self) -> np.ndarray:
        """(n, 1): whether each sample's majority vote over its repeats is right."""
        by_sample: dict[str, list[ResultRecord]] = {}
        for r in sorted(self.recs, key=lambda r: r.repeat):
            by_sample.setdefault(r.sample_id, []).append(r)
        votes = [
            majority_vote([r.predicted for r in by_sample[s]], [r.parsed_ok for r in by_sample[s]])
            for s in self.sample_ids
        ]
        return np.array(
            [
                v is not None and _key(v) == _key(self.truth[s])
                for v, s in zip(votes, self.sample_ids, strict=True)
            ],
            dtype=bool,
        )[:, None]


def _task_metric(recs: list[ResultRecord]) -> Metric:
    """The one metric of one task's records; mixed tasks or metrics are a ``ValueError``."""
    if not recs:
        raise ValueError("no records to score")
    tasks = {r.task for r in recs}
    if len(tasks) > 1:
        raise ValueError(
            f"score_task got records of several tasks ({', '.join(sorted(tasks))}); use score_run"
        )
    metrics = {r.metric for r in recs}
    if len(metrics) > 1:
        raise ValueError(
            f"records of task {recs[0].task} disagree on the metric ({', '.join(sorted(metrics))})"
        )
    return _check_metric(recs[0].metric)


class _Majority(NamedTuple):
    value: float | None = None
    ci: tuple[float, float] | None = None
    boot_mean: float | None = None
    boot_std: float | None = None


def _majority(g: _Grid, metric: Metric, n_bootstrap: int, level: float, seed: int) -> _Majority:
    """Majority-vote value, interval and bootstrap mean/std (all ``None`` with one repeat)."""
    if g.repeats <= 1:
        return _Majority()
    mc = g.majority_correct()
    ones = np.ones((len(g.sample_ids), 1), dtype=bool)
    maj_stats = _bootstrap_stats(g.codes, mc, ones, g.k, metric, n_bootstrap, seed)
    maj_mean, maj_std = _mean_std(maj_stats)
    return _Majority(g.value(mc, ones, metric), _percentiles(maj_stats, level), maj_mean, maj_std)


def score_task(
    records: Iterable[ResultRecord | Mapping[str, Any]],
    *,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> TaskScore:
    """Score the records of one task (see the module docstring for what each number means)."""
    recs = _records(records)
    metric = _task_metric(recs)
    g = _Grid.of(recs)
    nr = g.repeats
    run_values = [g.value(g.correct[:, [j]], g.mask[:, [j]], metric) for j in range(nr)]
    value = g.value(g.correct, g.mask, metric)
    stats = _bootstrap_stats(g.codes, g.correct, g.mask, g.k, metric, n_bootstrap, seed)
    lo, hi = _percentiles(stats, level)
    boot_mean, boot_std = _mean_std(stats)
    value_ne: float | None = None
    if g.empty.any() and (g.mask & ~g.empty).any():
        value_ne = g.value(g.correct, g.mask & ~g.empty, metric)
    recall = per_class_recall(
        [r.truth for r in recs], [r.predicted for r in recs], [r.parsed_ok for r in recs]
    )
    maj = _majority(g, metric, n_bootstrap, level, seed)
    latencies = [r.latency_s for r in recs if r.latency_s is not None]
    return TaskScore(
        task=recs[0].task,
        metric=metric,
        n=len(g.sample_ids),
        n_records=len(recs),
        repeats=nr,
        value=value,  # type: ignore[arg-type]
        ci_low=lo,
        ci_high=hi,
        ci_level=level,
        n_bootstrap=n_bootstrap,
        n_correct=sum(bool(r.correct) for r in recs),
        n_unparsed=sum(not r.parsed_ok for r in recs),
        n_errors=sum(r.status != "answered" for r in recs),
        n_incomplete=int((~g.mask).any(axis=1).sum()),
        per_class_recall=recall,
        run_values=run_values,
        mean_of_runs=value if nr > 1 else None,
        majority_vote=maj.value,
        majority_ci=maj.ci,
        boot_mean=boot_mean,
        boot_std=boot_std,
        majority_boot_mean=maj.boot_mean,
        majority_boot_std=maj.boot_std,
        n_isup0_null=sum(r.parse_method in ISUP0_METHODS for r in recs),
        n_empty=int(g.empty.sum()),
        value_excluding_empty=value_ne,
        input_tokens=sum(r.input_tokens or 0 for r in recs),
        output_tokens=sum(r.output_tokens or 0 for r in recs),
        cost_usd=float(sum(r.cost_usd for r in recs if r.cost_usd is not None)),
        n_cost_unknown=sum(r.cost_usd is None for r in recs),
        mean_latency_s=float(np.mean(latencies)) if latencies else None,
    )


def score_run(
    records: Iterable[ResultRecord | Mapping[str, Any]],
    *,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, TaskScore]:
    """Score every task in a run's records (ResultRecord objects or ``results.jsonl`` dicts),
    in the order tasks first appear."""
    by_task: dict[str, list[ResultRecord]] = {}
    for r in _records(records):
        if r.truth is not None:  # a sample with no ground truth (ask) is not scored
            by_task.setdefault(r.task, []).append(r)
    return {
        t: score_task(rs, n_bootstrap=n_bootstrap, level=level, seed=seed)
        for t, rs in by_task.items()
    }
