"""Metrics on hand-computed examples: (balanced) accuracy, bootstrap CIs, majority vote, run scoring."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from slidescout.eval import (
    ParsedAnswer,
    ResultRecord,
    Sample,
    accuracy,
    balanced_accuracy,
    bootstrap_ci,
    majority_vote,
    parse_answer,
    per_class_recall,
    score_run,
    score_task,
)


def test_accuracy_and_balanced_accuracy_imbalanced() -> None:
    truth = ["A", "A", "A", "A", "B"]
    pred = ["A", "A", "A", "A", "A"]
    assert accuracy(truth, pred) == pytest.approx(0.8)
    assert per_class_recall(truth, pred) == {"A": 1.0, "B": 0.0}
    assert balanced_accuracy(truth, pred) == pytest.approx(0.5)


def test_unparsed_counts_wrong_and_classes_come_from_truth() -> None:
    truth = [1, 1, 1, 2, 2, 3]
    pred = [1, 1, 2, 2, 2, 3]
    ok = [True, True, True, True, True, False]  # the last one was not parsed
    assert accuracy(truth, pred, ok) == pytest.approx(4 / 6)
    assert per_class_recall(truth, pred, ok) == pytest.approx({"1": 2 / 3, "2": 1.0, "3": 0.0})
    assert balanced_accuracy(truth, pred, ok) == pytest.approx((2 / 3 + 1 + 0) / 3)
    # a predicted class that never occurs in the truth adds no class
    assert balanced_accuracy([1, 1, 2], [5, 1, 2]) == pytest.approx((0.5 + 1) / 2)
    assert accuracy([1, 2], [None, 2]) == 0.5
    assert math.isnan(accuracy([], [])) and math.isnan(balanced_accuracy([], []))
    # labels compare case-insensitively, ints and their text are the same class
    assert accuracy(["Colon", 3], ["colon", "3"]) == 1.0
    with pytest.raises(ValueError):
        accuracy([1, 2], [1])


def test_per_class_recall_natural_order() -> None:
    truth = [10, 2, 1, 2]
    assert list(per_class_recall(truth, truth)) == ["1", "2", "10"]


def test_majority_vote_rules() -> None:
    assert majority_vote([2, 3, 3]) == 3
    assert majority_vote(["B", "A", "A", "B"]) == "B"  # 2-2 tie: the answer given first wins
    assert majority_vote([4, 1, 1, 4, 2]) == 4
    assert majority_vote([None, None, 5]) == 5  # unparsed answers do not vote
    assert majority_vote([1, 2, 2], [True, False, False]) == 1
    assert majority_vote([None, None]) is None and majority_vote([1, 1], [False, False]) is None
    assert majority_vote(["Colon", "colon", "Skin"]) == "Colon"


def _naive_ci(truth, pred, fn, n, seed, level=0.95):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(truth), size=(n, len(truth)))
    stats = [fn([truth[i] for i in row], [pred[i] for i in row]) for row in idx]
    return tuple(np.percentile(stats, [(1 - level) / 2 * 100, (1 + level) / 2 * 100]))


def test_bootstrap_matches_naive_loop_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    truth = list(rng.integers(0, 6, 120))
    pred = [t if rng.random() < 0.4 else int(rng.integers(0, 6)) for t in truth]
    for metric, fn in (("accuracy", accuracy), ("balanced_accuracy", balanced_accuracy)):
        ci = bootstrap_ci(truth, pred, metric, n=300, seed=7)
        assert ci == pytest.approx(_naive_ci(truth, pred, fn, 300, 7))
        point = fn(truth, pred)
        assert ci[0] <= point <= ci[1]
        assert bootstrap_ci(truth, pred, metric, n=300, seed=7) == ci
        assert bootstrap_ci(truth, pred, metric, n=300, seed=8) != ci
    assert bootstrap_ci([1, 2, 3], [1, 2, 3], "balanced_accuracy") == (1.0, 1.0)
    assert all(math.isnan(x) for x in bootstrap_ci([], [], "accuracy"))
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci([1], [1], "f1")


def _rec(
    sid: str,
    truth,
    pred,
    repeat: int = 0,
    ok: bool = True,
    task: str = "t",
    metric: str = "accuracy",
    **kw,
):
    return ResultRecord(
        sample_id=sid,
        task=task,
        metric=metric,
        truth=truth,
        predicted=pred if ok else None,  # type: ignore[arg-type]
        parsed_ok=ok,
        repeat=repeat,
        **kw,
    )


def test_score_task_single_run() -> None:
    recs = [
        _rec("s1", 1, 1, cost_usd=0.5, input_tokens=100, output_tokens=10, latency_s=2.0),
        _rec("s2", 1, 2, cost_usd=0.25, latency_s=4.0),
        _rec("s3", 2, 2, cost_usd=None),
        _rec("s4", 3, None, ok=False, status="error", error="boom"),
    ]
    s = score_task(recs, seed=0)
    assert (s.n, s.n_records, s.repeats) == (4, 4, 1)
    assert s.value == pytest.approx(0.5) and s.mean_of_runs is None and s.majority_vote is None
    assert s.run_values == [pytest.approx(0.5)]
    assert s.ci_low <= s.value <= s.ci_high
    assert (s.n_correct, s.n_unparsed, s.n_errors) == (2, 1, 1)
    assert s.per_class_recall == pytest.approx({"1": 0.5, "2": 1.0, "3": 0.0})
    assert s.cost_usd == pytest.approx(0.75) and s.n_cost_unknown == 2
    assert (s.input_tokens, s.output_tokens) == (100, 10) and s.mean_latency_s == pytest.approx(3.0)
    bal = score_task([r.model_copy(update={"metric": "balanced_accuracy"}) for r in recs])
    assert bal.value == pytest.approx((0.5 + 1 + 0) / 3)


def test_score_task_repeats_mean_of_runs_and_majority() -> None:
    # truth: s1=A, s2=A, s3=B, s4=C (balanced accuracy)
    answers = {  # repeat -> predictions for s1..s4 (None = unparsed)
        0: ["A", "B", "B", "A"],
        1: ["A", "A", "C", None],
        2: ["B", "A", "B", "C"],
    }
    truth = {"s1": "A", "s2": "A", "s3": "B", "s4": "C"}
    recs = [
        _rec(sid, truth[sid], p, repeat=r, ok=p is not None, metric="balanced_accuracy")
        for r, preds in answers.items()
        for sid, p in zip(truth, preds, strict=True)
    ]
    s = score_task(recs)
    # repeat 0: A 1/2, B 1, C 0 -> 0.5 ; repeat 1: A 1, B 0, C 0 -> 1/3 ; repeat 2: A 1/2, B 1, C 1 -> 5/6
    assert s.run_values == pytest.approx([0.5, 1 / 3, 5 / 6])
    assert s.value == s.mean_of_runs == pytest.approx((0.5 + 1 / 3 + 5 / 6) / 3)
    # majority: s1 A (2 of 3), s2 A, s3 B, s4: A vs C tie -> A (given first) -> wrong
    assert s.majority_vote == pytest.approx((1 + 1 + 0) / 3)
    assert s.majority_ci is not None and s.majority_ci[0] <= s.majority_vote <= s.majority_ci[1]
    assert s.repeats == 3 and s.n == 4 and s.n_records == 12 and s.n_unparsed == 1
    assert s.ci_low <= s.value <= s.ci_high
    # pooled per-class recall over all repeats
    assert s.per_class_recall == pytest.approx({"A": 4 / 6, "B": 2 / 3, "C": 1 / 3})


def test_score_run_groups_tasks_dedupes_and_reads_jsonl_dicts() -> None:
    lines = [
        {
            "sample_id": "tcga/1",
            "task": "tcga",
            "metric": "balanced_accuracy",
            "truth": 3,
            "predicted": 5,
            "parsed_ok": True,
            "repeat": 0,
            "status": "answered",
            "model": "openai:gpt-5",
        },
        {
            "sample_id": "tcga/1",
            "task": "tcga",
            "metric": "balanced_accuracy",
            "truth": 3,
            "predicted": 3,
            "parsed_ok": True,
            "repeat": 0,
        },  # written again on resume: the last line wins
        {
            "sample_id": "tcga/2",
            "task": "tcga",
            "metric": "balanced_accuracy",
            "truth": 7,
            "predicted": 7,
            "parsed_ok": True,
        },
        {
            "sample_id": "gtex/1",
            "task": "gtex",
            "metric": "balanced_accuracy",
            "truth": "Colon",
            "predicted": "Skin",
            "parsed_ok": True,
        },
    ]
    lines = [json.loads(json.dumps(x)) for x in lines]
    scores = score_run(lines)
    assert list(scores) == ["tcga", "gtex"]
    assert scores["tcga"].n == 2 and scores["tcga"].value == 1.0
    assert scores["gtex"].value == 0.0
    # extra fields survive a round trip
    assert ResultRecord.model_validate(lines[0]).model_dump()["model"] == "openai:gpt-5"
    with pytest.raises(ValueError, match="several tasks"):
        score_task(lines)
    with pytest.raises(ValueError, match="disagree on the metric"):
        score_task([_rec("a", 1, 1), _rec("b", 1, 1, metric="balanced_accuracy")])
    with pytest.raises(ValueError, match="no records"):
        score_task([])


def test_incomplete_repeats_are_counted() -> None:
    recs = [_rec("s1", 1, 1, 0), _rec("s2", 2, 2, 0), _rec("s1", 1, 2, 1)]
    s = score_task(recs)
    assert s.n_incomplete == 1 and s.run_values == [1.0, 0.0]
    assert s.value == pytest.approx(0.5)


def test_record_from_parsed_answer() -> None:
    sample = Sample(
        sample_id="gtex/G1",
        task="gtex",
        question="q",
        options=["Colon", "Skin"],
        answer="Colon",
        answer_label="Colon",
        answer_index=1,
        metric="balanced_accuracy",
        answer_format="label",
        image_path="G1.tiff",
    )
    rec = ResultRecord.from_answer(
        sample, parse_answer('{"answer": 1}', sample), repeat=2, n_steps=7, cost_usd=0.1
    )
    assert (
        rec.correct
        and rec.predicted == "Colon"
        and rec.repeat == 2
        and rec.parse_method == "json_number"
    )
    assert rec.metric == "balanced_accuracy" and rec.truth_label == "Colon" and rec.n_steps == 7
    bad = ResultRecord.from_answer(sample, parse_answer("no idea", sample))
    assert not bad.correct and not bad.parsed_ok and bad.predicted is None and bad.error
    failed = ResultRecord.from_answer(sample, None, status="error", error="slide unreadable")
    assert not failed.correct and failed.error == "slide unreadable" and failed.status == "error"
    assert ResultRecord.from_answer(sample, ParsedAnswer(value="colon", ok=True)).correct
    again = ResultRecord.model_validate_json(rec.model_dump_json())
    assert again == rec and isinstance(again.truth, str)


def test_bootstrap_speed_on_a_large_run() -> None:

    rng = np.random.default_rng(0)
    recs = [
        _rec(
            f"s{i}",
            int(t),
            int(t) if rng.random() < 0.5 else -1,
            repeat=r,
            metric="balanced_accuracy",
        )
        for i, t in enumerate(rng.integers(0, 30, 934))
        for r in range(5)
    ]
    s = score_task(recs)
    assert 0.4 < s.value < 0.6 and s.ci_low < s.value < s.ci_high
