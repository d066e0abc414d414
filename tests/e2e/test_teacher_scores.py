"""A teacher scored once per teacher files, rows and settings: a later distill on the same dev rows reads its scores."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from datasets import Dataset

from dynakd import DistillConfig, distill, teacher_scores
from dynakd.data.squad import QAEval
from dynakd.evaluation import EvalTrainer
from dynakd.teacher_scores import TIMING, rows_fingerprint


@pytest.fixture
def scorings(monkeypatch) -> list:
    """Each teacher scoring, counted (the records in a folder of the test's own: conftest)."""
    calls, evaluate = [], EvalTrainer.evaluate

    def counted(self, *args, **kwargs):
        calls.append(1)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(EvalTrainer, "evaluate", counted)
    return calls


def _run(teacher, out, **kw):
    settings = {"teacher": str(teacher), "student_layers": 2, "task": "sst2", "synthetic": True, "method": "kd",
                "max_train_samples": 16, "max_eval_samples": 16, "max_steps": 1, "batch_size": 8,
                "progress": False, "output": str(out), **kw}
    return distill(DistillConfig(**settings)).metrics


def test_a_later_run_reads_the_teachers_scores_of_an_earlier_one(tiny_teacher, tmp_path, scorings, capsys):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, teacher)
    first = _run(teacher, tmp_path / "a")
    assert len(scorings) == 1 and "teacher_eval_recorded" not in first
    capsys.readouterr()
    second = _run(teacher, tmp_path / "b", method="full")  # another method, the same teacher and dev rows
    assert len(scorings) == 1  # not scored again
    # the scores and loss; not the timing of the evaluation that made them
    assert second["teacher_eval"] == {k: v for k, v in first["teacher_eval"].items() if k not in TIMING}
    assert set(first["teacher_eval"]) - set(second["teacher_eval"]) == set(TIMING)
    record = second["teacher_eval_recorded"]
    assert "teacher-scores" in record and record.endswith(".json")
    assert "teacher's scores read from an earlier run's evaluation" in capsys.readouterr().out
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["teacher_eval_recorded"] == record


def test_other_rows_other_settings_or_rewritten_teacher_files_score_again(tiny_teacher, tmp_path, scorings):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, teacher)
    _run(teacher, tmp_path / "a")
    _run(teacher, tmp_path / "b", max_eval_samples=12)  # other dev rows
    _run(teacher, tmp_path / "c", eval_batch_size=4)  # other batches, so other padding
    _run(teacher, tmp_path / "c2", max_seq_length=48)  # another length (rows no longer cut: padded otherwise on a GPU)
    assert len(scorings) == 4
    weights = teacher / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # written anew (a finetune --overwrite)
    _run(teacher, tmp_path / "d")
    assert len(scorings) == 5
    _run(teacher, tmp_path / "e")  # ... and recorded again
    assert len(scorings) == 5


def test_a_damaged_record_is_scored_again_and_none_is_kept_without_a_teachers_score(tiny_teacher, tmp_path, scorings):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, teacher)
    _run(teacher, tmp_path / "a", eval_teacher=False)
    assert not scorings and not any(teacher_scores.scores_root().iterdir())
    _run(teacher, tmp_path / "b")
    [record] = teacher_scores.scores_root().iterdir()
    record.write_text("{not json")
    metrics = _run(teacher, tmp_path / "c")
    assert len(scorings) == 2 and "teacher_eval_recorded" not in metrics
    assert json.loads(record.read_text())["scores"] == {k: v for k, v in metrics["teacher_eval"].items()
                                                        if k not in TIMING}


def test_the_rows_fingerprint_follows_the_labels_and_every_column():
    rows = {"input_ids": [[1, 2, 3], [4, 5]], "labels": [0, 1]}
    base = rows_fingerprint({"validation": Dataset.from_dict(rows)})
    assert base == rows_fingerprint({"validation": Dataset.from_dict(rows)})
    assert base != rows_fingerprint({"validation": Dataset.from_dict({**rows, "labels": [1, 1]})})
    assert base != rows_fingerprint({"validation": Dataset.from_dict({**rows, "input_ids": [[1, 2], [3, 4, 5]]})})
    assert base != rows_fingerprint({"test": Dataset.from_dict(rows)})
    # a subset selected in another order is other rows
    assert rows_fingerprint({"validation": Dataset.from_dict(rows).select([1, 0])}) != base


def test_the_rows_fingerprint_of_qa_follows_the_windows_and_the_answers():
    rows = {"validation": Dataset.from_dict({"input_ids": [[1, 2, 3]]})}

    def qa(answer="Paris", offsets=((0, 5),)):
        examples = Dataset.from_dict({"id": ["q1"], "context": ["Paris is big"],
                                      "answers": [{"text": [answer], "answer_start": [0]}]})
        return QAEval(examples=examples, features=rows["validation"], example_ids=["q1"],
                      offsets=[[None, *offsets]])

    base = rows_fingerprint(rows, qa())
    assert base == rows_fingerprint(rows, qa()) != rows_fingerprint(rows)
    assert base != rows_fingerprint(rows, qa(answer="Lyon")) and base != rows_fingerprint(rows, qa(offsets=((0, 4),)))


def test_the_teacher_files_are_named_by_their_folder_a_hub_model_by_its_revision(tiny_teacher, tmp_path):
    """A link to the teacher's folder names the same files; a copy (another inode, whatever times it keeps) does not;
    a hub model is named by the revision transformers read, and a model known by neither gets no record."""
    from types import SimpleNamespace

    from dynakd.teacher_scores import model_files

    link = tmp_path / "link"
    link.symlink_to(tiny_teacher)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_teacher, copy)  # (copy2: the times kept)
    own = model_files(str(tiny_teacher), None)
    assert own == model_files(str(link), None) and own["folder"] == str(tiny_teacher.resolve())
    assert [f[:3] for f in model_files(str(copy), None)["files"]] == [f[:3] for f in own["files"]]
    assert model_files(str(copy), None) != own
    hub = SimpleNamespace(config=SimpleNamespace(_commit_hash="abc123"))
    assert model_files("org/model", hub) == {"hub": "org/model", "revision": "abc123"}
    assert model_files("org/model", SimpleNamespace(config=SimpleNamespace())) is None
    (tmp_path / "empty").mkdir()
    assert model_files(str(tmp_path / "empty"), None) is None


def test_a_score_that_could_not_be_computed_reads_back_as_nan():
    """A NaN score is written null (strict JSON) and was read back as None, where a scoring gives NaN."""
    import math

    settings = {"format": -1, "teacher": {"test": "nan"}}
    teacher_scores.write(settings, {"pearson": math.nan, "loss": 0.5, "runtime": 1.0}, "t")
    scores, _ = teacher_scores.read(settings)
    assert math.isnan(scores["pearson"]) and scores["loss"] == 0.5 and "runtime" not in scores
