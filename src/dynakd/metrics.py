"""The official GLUE metrics, computed with scikit-learn (accuracy, F1, Matthews correlation) and scipy (Pearson
and Spearman correlations), and the official SQuAD v1.1 metric (exact match and F1), computed with torchmetrics.
Values are Python floats on the [0, 1] (or [-1, 1] for correlations) scale."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from dynakd.data.tasks import TaskSpec

_PRIMARY_OVERRIDES = {"mrpc": "f1", "squad": "f1"}


def _classes(predictions: np.ndarray) -> np.ndarray:
    """Class ids from logits ``[N, C]`` (argmax) or from ids ``[N]``."""
    predictions = np.asarray(predictions)
    return predictions.argmax(axis=-1) if predictions.ndim == 2 else predictions.astype(np.int64)


def _scores(predictions: np.ndarray) -> np.ndarray:
    """Regression outputs ``[N]`` or ``[N, 1]`` as a float vector."""
    predictions = np.asarray(predictions, dtype=np.float64)
    if predictions.ndim == 2 and predictions.shape[1] == 1:
        predictions = predictions[:, 0]
    if predictions.ndim != 1:
        raise ValueError(f"regression predictions must be [N] or [N, 1], got shape {predictions.shape}")
    return predictions


def _correlation(function, predictions: np.ndarray, labels: np.ndarray) -> float:
    """The correlation statistic, or NaN (without a warning) when either input is constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(function(predictions, labels)[0])


def _metric(name: str, predictions: np.ndarray, labels: np.ndarray) -> float:
    if name == "accuracy":
        return float(accuracy_score(labels, predictions))
    if name == "f1":
        return float(f1_score(labels, predictions, pos_label=1, average="binary", zero_division=0))
    if name == "macro_f1":
        return float(f1_score(labels, predictions, average="macro", zero_division=0))
    if name == "matthews_correlation":
        return float(matthews_corrcoef(labels, predictions))
    if name == "pearson":
        return _correlation(pearsonr, predictions, labels)
    if name == "spearmanr":
        return _correlation(spearmanr, predictions, labels)
    raise ValueError(f"unknown metric {name!r}")


def compute_metrics(task: TaskSpec, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The task's metrics (``task.metrics``) for ``predictions`` (logits ``[N, C]`` or class ids ``[N]``; for
    regression ``[N]`` or ``[N, 1]``) against ``labels`` ``[N]``. F1 is of the positive class (label 1). When a task
    has more than one metric, "combined_score" is their mean (as in transformers' run_glue)."""
    labels = np.asarray(labels)
    if task.is_regression:
        predictions, labels = _scores(predictions), labels.astype(np.float64)
    else:
        predictions, labels = _classes(predictions), labels.astype(np.int64)
    if predictions.shape[0] != labels.shape[0]:
        raise ValueError(f"{predictions.shape[0]} predictions for {labels.shape[0]} labels")
    results = {name: _metric(name, predictions, labels) for name in task.metrics}
    if len(results) > 1:
        results["combined_score"] = float(np.mean(list(results.values())))
    return results


def squad_metrics(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """The official SQuAD v1.1 scores on the [0, 1] scale: exact match and token F1 after the official answer
    normalisation (lower case, no punctuation, no articles a/an/the, single spaces), each the maximum over the gold
    answers of a question, averaged over ``references`` (question id -> gold answer texts). A question without a
    prediction scores 0 on both.

    Reference: Rajpurkar et al. 2016, the official ``evaluate-v1.1.py``; implemented by ``torchmetrics``' ``squad``
    (a maintained copy of the official script that runs offline).
    """
    if not references:
        return {"exact_match": 0.0, "f1": 0.0}
    from torchmetrics.functional.text import squad  # slow import: only when needed

    preds = [{"id": qid, "prediction_text": predictions[qid]} for qid in references if qid in predictions]
    target = [{"id": qid, "answers": {"text": list(texts)}} for qid, texts in references.items()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Unanswered question ... will receive score 0" is the intended behaviour
        scores = squad(preds, target)
    return {"exact_match": float(scores["exact_match"]) / 100, "f1": float(scores["f1"]) / 100}


def primary_metric(task: TaskSpec) -> str:
    """The metric that ranks models for ``task``: f1 for mrpc and squad, otherwise the first of ``task.metrics``
    (accuracy for sst2/qqp/mnli/qnli/rte, matthews_correlation for cola, pearson for stsb and regression user data)."""
    return _PRIMARY_OVERRIDES.get(task.name, task.metrics[0])
