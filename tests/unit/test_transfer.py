"""Transfer rows: training rows whose labels are hidden, so that only the teacher supervises them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Features, Value

from dynakd.config import DistillConfig, validate
from dynakd.data import HIDDEN_LABEL, subsample, subsample_with_transfer
from dynakd.errors import DynaKDError
from dynakd.losses import task_loss
from dynakd.runner import finetune


def _rows(n: int, regression: bool = False) -> Dataset:
    label = Value("float32") if regression else ClassLabel(names=["negative", "positive"])
    features = Features({"text_a": Value("string"), "label": label})
    return Dataset.from_dict({"text_a": [f"sentence {i}" for i in range(n)], "label": [i % 2 for i in range(n)]},
                             features=features)


def test_labelled_rows_are_the_plain_subset_and_the_next_rows_are_hidden(function_hashing):
    ds = _rows(50)
    mixed = subsample_with_transfer(ds, 10, 15, seed=3, regression=False)
    assert not function_hashing  # the map that hides labels names its own fingerprint
    plain = subsample(ds, 25, seed=3)  # the same seeded order, 25 rows
    assert mixed["text_a"] == plain["text_a"]
    assert mixed["label"][:10] == plain["label"][:10]
    assert mixed["label"][10:] == [HIDDEN_LABEL] * 15


def test_regression_labels_are_hidden_as_nan():
    mixed = subsample_with_transfer(_rows(20, regression=True), 5, 5, seed=0, regression=True)
    assert not any(math.isnan(y) for y in mixed["label"][:5])
    assert all(math.isnan(y) for y in mixed["label"][5:])


def test_too_many_transfer_rows_is_an_error():
    with pytest.raises(DynaKDError, match="leaves 10 for transfer_samples, not 11"):
        subsample_with_transfer(_rows(20), 10, 11, seed=0, regression=False)


def test_task_loss_is_the_mean_over_labelled_rows():
    logits = torch.randn(6, 3, requires_grad=True)
    labels = torch.tensor([0, HIDDEN_LABEL, 2, HIDDEN_LABEL, 1, 1])
    known = labels != HIDDEN_LABEL
    expected = F.cross_entropy(logits[known], labels[known])
    torch.testing.assert_close(task_loss(logits, labels), expected)
    task_loss(logits, labels).backward()
    assert torch.all(logits.grad[~known] == 0)


def test_a_batch_without_labels_gives_zero_task_loss():
    logits = torch.randn(4, 2, requires_grad=True)
    loss = task_loss(logits, torch.full((4,), HIDDEN_LABEL))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(logits.grad == 0)
    pred = torch.randn(3, 1, requires_grad=True)
    loss = task_loss(pred, torch.tensor([0.5, float("nan"), 2.0]), regression=True)
    torch.testing.assert_close(loss, F.mse_loss(pred[[0, 2], 0], torch.tensor([0.5, 2.0])))
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[1] == 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"method": "task", "max_train_samples": 10}, "no teacher"),
        ({"method": "kd"}, "set max_train_samples"),
        ({"method": "kd", "max_train_samples": 10, "task": "squad"}, "not extractive QA"),
        ({"method": "kd", "max_train_samples": 10, "transfer_samples": -1}, ">= 0"),
    ],
)
def test_settings_that_cannot_use_transfer_rows_are_refused(settings, message):
    with pytest.raises(DynaKDError, match=message):
        validate(DistillConfig(**{"transfer_samples": 5, **settings}))


def test_finetune_refuses_transfer_rows():
    with pytest.raises(DynaKDError, match=r"method .task. \(and finetune\) has no teacher to learn them from"):
        finetune(DistillConfig(model="any", transfer_samples=5, max_train_samples=10))


def test_a_sweep_drops_transfer_rows_from_task_cells():
    from dynakd.experiments.ablate import Sweep, cells

    sweep = Sweep("s", None, {"max_train_samples": 10}, {}, {"method": ["task", "kd"], "transfer_samples": [5, 10]})
    assert cells(sweep) == [{"method": "task"}, {"method": "kd", "transfer_samples": 5},
                            {"method": "kd", "transfer_samples": 10}]


def test_a_transfer_set_in_the_sweep_base_stays_out_of_task_runs(tmp_path):
    """The teacher and ``task`` cells learn from labelled rows only; the distillation cells keep the transfer set."""
    from dynakd.experiments.ablate import Sweep, cell_config, teacher_config

    base = {"task": "sst2", "max_train_samples": 10, "transfer_samples": 5}
    sweep = Sweep("s", tmp_path, base, {}, {"method": ["task", "kd"]})
    assert teacher_config(sweep, 1).transfer_samples is None
    assert cell_config(sweep, {"method": "task"}, "t").transfer_samples is None
    assert cell_config(sweep, {"method": "kd"}, "t").transfer_samples == 5
