"""GLUE metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynakd.data import get_task
from dynakd.metrics import compute_metrics, primary_metric

# 4 positives, 6 negatives: TP=3, FN=1, FP=1, TN=5.
LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
PREDS = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])


def logits(classes, num_classes=2):
    """Logits whose argmax is ``classes``."""
    out = np.zeros((len(classes), num_classes), dtype=np.float32)
    out[np.arange(len(classes)), classes] = 2.0
    return out - 1.0


def test_accuracy_f1_from_logits():
    result = compute_metrics(get_task("mrpc"), logits(PREDS), LABELS)
    # accuracy 8/10; precision 3/4, recall 3/4 -> F1 3/4.
    assert result == pytest.approx({"accuracy": 0.8, "f1": 0.75, "combined_score": 0.775})
    assert all(type(value) is float for value in result.values())


def test_matthews_correlation():
    result = compute_metrics(get_task("cola"), logits(PREDS), LABELS)
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (15 - 1) / sqrt(4*4*6*6) = 14/24
    assert result == pytest.approx({"matthews_correlation": 14 / 24})


def test_three_class_accuracy_and_macro_f1():
    labels, preds = np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2])
    assert compute_metrics(get_task("mnli"), logits(preds, 3), labels) == pytest.approx({"accuracy": 0.75})
    # per-class F1: 1, 0, 0.8 (P=2/3, R=1) -> macro 0.6
    result = compute_metrics(get_task("csv", num_labels=3), logits(preds, 3), labels)
    assert result["macro_f1"] == pytest.approx(0.6)


@pytest.mark.parametrize("shape", [(4,), (4, 1)])
def test_regression_pearson_spearman(shape):
    preds = np.array([1.0, 2.0, 3.0, 4.0]).reshape(shape)
    labels = np.array([1.0, 2.0, 3.0, 5.0])
    result = compute_metrics(get_task("stsb"), preds, labels)
    pearson = 6.5 / math.sqrt(5 * 8.75)  # sum(dx*dy) / sqrt(sum(dx^2) * sum(dy^2))
    assert result == pytest.approx({"pearson": pearson, "spearmanr": 1.0, "combined_score": (pearson + 1) / 2})


def test_constant_regression_gives_nan_not_crash():
    result = compute_metrics(get_task("stsb"), np.ones(3), np.array([0.0, 1.0, 2.0]))
    assert math.isnan(result["pearson"])


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        compute_metrics(get_task("sst2"), np.array([0, 1, 1]), np.array([0, 1]))


def test_primary_metric():
    expected = {
        "sst2": "accuracy",
        "mrpc": "f1",
        "cola": "matthews_correlation",
        "stsb": "pearson",
        "qqp": "accuracy",
        "mnli": "accuracy",
        "qnli": "accuracy",
        "rte": "accuracy",
    }
    assert {name: primary_metric(get_task(name)) for name in expected} == expected
    assert primary_metric(get_task("csv", num_labels=1)) == "pearson"


def test_a_regression_set_of_one_row_gives_nan_not_crash():
    """(scipy raises for fewer than 2 rows: a one-row dev set ended a finished fine-tuning before its model was
    saved.)"""
    result = compute_metrics(get_task("stsb"), np.array([0.5]), np.array([1.0]))
    assert math.isnan(result["pearson"]) and math.isnan(result["spearmanr"])


def test_model_preparation_time_is_not_a_metric():
    """The Trainer adds it per evaluation set (MNLI: eval_validation_matched_model_preparation_time)."""
    from dynakd.runner import _strip

    assert _strip({"eval_validation_matched_model_preparation_time": 0.1, "eval_validation_matched_accuracy": 0.5,
                   "eval_model_preparation_time": 0.1, "epoch": 1.0}) == {"validation_matched_accuracy": 0.5}


def test_strict_json_keeps_numbers_as_they_are_and_refuses_what_is_none():
    """jsonfile.dumps: non-finite numbers as null; numpy and torch scalars as the Python numbers they hold (an integer
    stays one: `default=float` wrote np.int64(3) as 3.0); anything else is json's own TypeError, not float()'s."""
    import math
    from pathlib import Path

    import numpy as np
    import torch

    from dynakd import jsonfile

    text = jsonfile.dumps({"i": np.int64(3), "f": np.float32("nan"), "t": torch.tensor(2.5), "b": np.bool_(True),
                           "inf": math.inf, "list": [1.0, -math.inf]})
    assert text == '{"i": 3, "f": null, "t": 2.5, "b": true, "inf": null, "list": [1.0, null]}'
    for bad in (np.arange(3), Path("x")):
        with pytest.raises(TypeError, match=f"Object of type {type(bad).__name__} is not JSON serializable"):
            jsonfile.dumps({"x": bad})


def test_non_finite_predictions_score_nan():
    """A diverged model's NaN logits were argmax'd into a plausible score: all-NaN rows counted as class 0 (accuracy
    0.25 on sst2 labels [0, 1, 1, 1]), and a NaN's position won where a row held one."""
    nan = np.full((4, 2), np.nan, dtype=np.float32)
    one = logits(np.array([1, 1, 1, 1]))
    one[0, 0] = np.inf
    for task, predictions in (("sst2", nan), ("mrpc", one), ("stsb", np.array([0.5, np.nan, 1.0, 2.0]))):
        result = compute_metrics(get_task(task), predictions, np.array([0, 1, 1, 1]))
        assert set(result) == {*get_task(task).metrics, *(["combined_score"] if len(result) > 1 else [])}
        assert all(math.isnan(v) for v in result.values()), (task, result)
