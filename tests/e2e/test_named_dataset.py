"""A dataset by name through the commands: finetune on it, distil with the teacher's dataset lent, evaluate."""

from __future__ import annotations

import json

import yaml
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from dynakd.cli import main

FAST = ["--max-steps", "2", "--batch-size", "8", "--max-seq-length", "16", "--no-progress"]


def test_finetune_distill_evaluate_on_a_saved_dataset(tiny_teacher, tmp_path, capsys):
    data = tmp_path / "reviews"
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    rows = {"text": ["good movie", "bad film", "great story", "awful plot"] * 4, "label": [1, 0, 1, 0] * 4}
    DatasetDict({split: Dataset.from_dict(rows, features=features) for split in ("train", "test")}).save_to_disk(data)
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    assert main(["finetune", "--model", str(tiny_teacher), "--task", "dataset", "--dataset", str(data),
                 "--eval-split", "test", "--output", str(teacher), *FAST]) == 0
    config = json.loads((teacher / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}  # the dataset's class names, not LABEL_0
    assert main(["distill", "--teacher", str(teacher), "--student-layers", "1", "--output", str(student),
                 *FAST]) == 0
    out = capsys.readouterr().out
    assert f"task dataset, dataset {data}, eval_split test (as the teacher" in out
    saved = yaml.safe_load((student / "dynakd.yaml").read_text())
    assert (saved["task"], saved["dataset"], saved["eval_split"]) == ("dataset", str(data), "test")
    card = (student / "README.md").read_text()
    assert "the `reviews` dataset (split `train`)" in card and "| test | accuracy |" in card  # (the split scored)
    record = json.loads((student / "metrics.json").read_text())
    assert (record["dataset"], record["eval_split"]) == (str(data), "test")
    assert main(["evaluate", "--model", str(student), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "reviews (test split)" in out and "evaluate: accuracy=" in out
    assert "accuracy" in json.loads((student / "metrics.json").read_text())["evaluate"]["eval"]
    from dynakd.experiments.compare import _task

    assert _task({"metrics": record, "config": saved}) == f"dataset {data}"  # (report: a table a dataset)
