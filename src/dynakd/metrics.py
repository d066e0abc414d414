"""The official GLUE metrics, computed with scikit-learn (accuracy, F1, Matthews correlation) and scipy (Pearson
and Spearman correlations), and the SQuAD v1.1 metric (exact match and F1) as its official script computes them.
Values are Python floats on the [0, 1] (or [-1, 1] for correlations) scale."""

from __future__ import annotations

import re
import string
import warnings
from collections import Counter
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
    """The correlation statistic, or NaN (without a warning) when either input is constant or has one value."""
    if len(predictions) < 2:  # (scipy raises: "x and y must have length at least 2")
        return float("nan")
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
    has more than one metric, "combined_score" is their mean (as in transformers' run_glue). Any non-finite prediction
    makes every score NaN (``null`` in metrics.json)."""
    labels = np.asarray(labels)
    finite = bool(np.isfinite(np.asarray(predictions, dtype=np.float64)).all())
    if task.is_regression:
        predictions, labels = _scores(predictions), labels.astype(np.float64)
    else:
        predictions, labels = _classes(predictions), labels.astype(np.int64)
    if predictions.shape[0] != labels.shape[0]:
        raise ValueError(f"{predictions.shape[0]} predictions for {labels.shape[0]} labels")
    if not finite:  # a diverged model's NaN logits would be argmax'd into a plausible score (class 0, or the NaN's)
        return {name: float("nan") for name in [*task.metrics, *(["combined_score"] if len(task.metrics) > 1 else [])]}
    results = {name: _metric(name, predictions, labels) for name in task.metrics}
    if len(results) > 1:
        results["combined_score"] = float(np.mean(list(results.values())))
    return results


def squad_metrics(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """The official SQuAD v1.1 scores on the [0, 1] scale: exact match and token F1 after the official answer
    normalisation (lower case, no punctuation, no articles a/an/the, single spaces), each the maximum over the gold
    answers of a question, averaged over ``references`` (question id -> gold answer texts). A question without a
    prediction scores 0 on both.

    Reference: Rajpurkar et al. 2016, the official ``evaluate-v1.1.py``, followed line by line. Written here rather
    than taken from a library: torchmetrics' ``squad`` scores an answer that normalises to nothing (gold ``"."`` or
    ``"the"``) with SQuAD v2's rule (F1 1 when both are empty; v1.1 gives 0) and sums in float32, and the ``evaluate``
    library fetches its metric script from the hub.
    """
    if not references:
        return {"exact_match": 0.0, "f1": 0.0}
    exact = f1 = 0.0
    for qid, golds in references.items():
        if qid not in predictions:
            continue
        exact += max(float(_normalize(predictions[qid]) == _normalize(g)) for g in golds)
        f1 += max(_token_f1(predictions[qid], g) for g in golds)
    return {"exact_match": exact / len(references), "f1": f1 / len(references)}


def _normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def _token_f1(prediction: str, gold: str) -> float:
    pred, ref = _normalize(prediction).split(), _normalize(gold).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:  # also when either normalises to nothing (v1.1; v2 would give 1 for two empty answers)
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


_PUNCTUATION = set(string.punctuation)


def primary_metric(task: TaskSpec) -> str:
    """The metric that ranks models for ``task``: f1 for mrpc and squad, otherwise the first of ``task.metrics``
    (accuracy for sst2/qqp/mnli/qnli/rte, matthews_correlation for cola, pearson for stsb and regression user data)."""
    return _PRIMARY_OVERRIDES.get(task.name, task.metrics[0])
