"""The Python API mirrors the CLI, and the distiller plugs into a hand-written training loop."""

from __future__ import annotations

import json
import math
import time

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from dynakd import DistillConfig, Distiller, build_config, build_student, capture, distill
from dynakd.schedules import Schedule


def test_distill_from_python(tiny_teacher, tmp_path):
    cfg = DistillConfig(teacher=str(tiny_teacher), student_layers=2, task="sst2", synthetic=True, method="full",
                        max_train_samples=32, max_eval_samples=16, max_steps=2, batch_size=16, progress=False,
                        beta=Schedule("cosine", 5.0, 0.0), output=str(tmp_path / "run"))
    result = distill(cfg)
    assert result.output == tmp_path / "run"
    assert set(result.metrics["eval"]) >= {"accuracy", "loss"}
    # what metrics.json records, as evaluate's result is (a run's returned only part of it)
    assert result.metrics == json.loads((tmp_path / "run" / "metrics.json").read_text())
    # the saved weights are as readable as the files beside them (safetensors writes them owner-only)
    run = tmp_path / "run"
    assert (run / "model.safetensors").stat().st_mode & 0o777 == (run / "config.json").stat().st_mode & 0o777
    # the task's label names travel in config.json, so a pipeline answers "positive" rather than "LABEL_1"
    assert AutoConfig.from_pretrained(run).id2label == {0: "negative", 1: "positive"}


def test_a_dict_config_takes_what_the_run_folders_lend_as_the_command_line_does(tiny_teacher, tmp_path, capsys):
    """distill of a DynaKD teacher and evaluate of a DynaKD run, from a dict that names no data: the run's own (its
    data and input length), as on the command line; they went to the default task's data on the hub, and failed
    offline. A DistillConfig holds every setting, so nothing is lent to it."""
    import yaml

    from dynakd import evaluate, finetune

    teacher = finetune({"model": str(tiny_teacher), "task": "sst2", "synthetic": True, "max_train_samples": 32,
                        "max_eval_samples": 16, "max_steps": 1, "batch_size": 16, "max_seq_length": 48,
                        "progress": False, "output": str(tmp_path / "teacher")})
    student = distill({"teacher": str(teacher.output), "student_layers": 2, "max_steps": 1, "batch_size": 16,
                       "max_train_samples": 32, "max_eval_samples": 16, "progress": False,
                       "output": str(tmp_path / "student")})
    saved = yaml.safe_load((student.output / "dynakd.yaml").read_text())
    assert (saved["task"], saved["synthetic"], saved["max_seq_length"]) == ("sst2", True, 48)
    said = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("distill: "))
    assert "synthetic True" in said and "max_seq_length 48" in said and "(as the teacher " in said
    scored = evaluate({"model": str(student.output), "output": str(tmp_path / "scores"), "progress": False})
    assert scored.metrics["max_seq_length"] == 48 and scored.metrics["eval"]["accuracy"] >= 0


def test_a_classifier_takes_the_tasks_label_names(tiny_teacher, tmp_path, capsys):
    """Training on a task gives the head the task's label order, so the task's names; a classifier whose names are
    the task's in another case keeps its spelling."""
    from dynakd.data import get_task
    from dynakd.models import load_classifier

    assert load_classifier(str(tiny_teacher), get_task("sst2")).config.label2id == {"negative": 0, "positive": 1}
    for names, kept in (({0: "NEGATIVE", 1: "POSITIVE"}, True), ({0: "positive", 1: "negative"}, False)):
        model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher, id2label=names)
        model.save_pretrained(tmp_path / "named")
        AutoTokenizer.from_pretrained(tiny_teacher).save_pretrained(tmp_path / "named")
        loaded = load_classifier(str(tmp_path / "named"), get_task("sst2")).config.id2label
        assert loaded == (names if kept else {0: "negative", 1: "positive"})
        assert ("its head now gives them in task sst2's order: negative, positive" in capsys.readouterr().out) \
            == (not kept)
    # The same labels in another order (a hub MNLI model's CONTRADICTION, NEUTRAL, ENTAILMENT): the head's outputs
    # follow the task's order, as run_glue.py maps labels through label2id. They used to be read by position, so a
    # teacher scored and taught the opposite labels.
    probe = torch.tensor([[2, 7, 11, 5]])
    reordered = load_classifier(str(tmp_path / "named"), get_task("sst2"), new_head_ok=False)
    original = AutoModelForSequenceClassification.from_pretrained(tmp_path / "named").eval()
    with torch.no_grad():
        assert torch.allclose(reordered(input_ids=probe).logits, original(input_ids=probe).logits[:, [1, 0]])


def test_custom_training_loop(tiny_teacher):
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    student = build_student(teacher, 2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    batch = dict(tokenizer(["the film is good", "the plot is dull , but the cast is great"], padding=True,
                           return_tensors="pt"))
    labels = torch.tensor([1, 1])
    cfg = build_config({"method": "full", "align": {"name": "attention", "learned": True}})
    distiller = Distiller(cfg, student_layers=2, teacher_layers=4, student_width=32, teacher_width=32)
    optimizer = torch.optim.AdamW([*student.parameters(), *distiller.parameters()], lr=1e-3)
    for step in range(3):  # (the README's loop)
        with torch.no_grad():
            t = distiller.pooled_teacher(capture(teacher, batch))
        s = capture(student, batch)
        assert t.hidden == () and t.pooled["mean"].shape == (5, 2, 32)
        out = distiller(s, t, labels, progress=step / 3)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert {"task", "logit", "dyn/deviation", "dyn/layer_change", "dyn/relations"} == set(out.terms)
    assert out.plan.shape == (2, 4) and torch.isfinite(out.loss)
    assert all(p.grad is None for p in teacher.parameters())


def test_final_scores_reuse_the_last_epoch_evaluation(tiny_teacher, tmp_path, monkeypatch):
    """The evaluation the Trainer runs at the end of the last epoch gives the final scores; no second pass."""
    from dynakd.trainer import DistillationTrainer

    calls, evaluate = [], DistillationTrainer.evaluate

    def counted(self, *args, **kwargs):
        calls.append(self.state.global_step)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(DistillationTrainer, "evaluate", counted)
    cfg = DistillConfig(teacher=str(tiny_teacher), student_layers=2, task="sst2", synthetic=True, method="kd",
                        max_train_samples=32, max_eval_samples=16, epochs=1, batch_size=16, progress=False,
                        eval_teacher=False, output=str(tmp_path / "run"))
    result = distill(cfg)
    assert calls == [2]  # 32 rows / batch 16: one evaluation, at step 2
    assert set(result.metrics["eval"]) >= {"accuracy", "loss"} and "epoch" not in result.metrics["eval"]


def test_the_training_time_leaves_out_only_the_evaluations_it_ran(tmp_path, monkeypatch):
    """The evaluations train() ran are taken out of its time, MNLI's two dev sets too: a reviewer's 6-step run
    recorded 3.2 s of training for ~4.6 s, and its speed overstated. (They were scored again after train(), outside
    both; since 2026-12-07 the last step's evaluation gives the final scores.)"""
    from dynakd.trainer import DistillationTrainer
    from tests.conftest import make_tiny_bert
    from tests.e2e.test_cli import write_mnli

    loop = DistillationTrainer.evaluation_loop

    def slow(self, *args, **kwargs):
        time.sleep(0.5)  # each evaluation of a dev set: 0.5 s of eval_runtime at least
        return loop(self, *args, **kwargs)

    monkeypatch.setattr(DistillationTrainer, "evaluation_loop", slow)
    cfg = DistillConfig(teacher=str(make_tiny_bert(tmp_path / "t", layers=2, hidden=16, num_labels=3)),
                        student_layers=1, task="mnli", data_dir=str(write_mnli(tmp_path / "glue")), method="kd",
                        max_steps=2, batch_size=8, progress=False, eval_teacher=False, output=str(tmp_path / "run"))
    start = time.perf_counter()
    record = distill(cfg).metrics["train"]
    wall = time.perf_counter() - start
    assert 1.0 <= record["eval_runtime_s"] < 1.9  # the two sets scored in train(), at its last step
    assert record["runtime_s"] + record["eval_runtime_s"] < wall  # (the final scores are those: not scored again)


def test_transfer_rows_join_the_training_set(tiny_teacher, tmp_path):
    """32 labelled rows and 32 transfer rows at batch 16: one epoch is 4 steps, with the cached teacher as well."""
    for cache in ("off", "auto"):
        cfg = DistillConfig(teacher=str(tiny_teacher), student_layers=2, task="sst2", synthetic=True, method="full",
                            max_train_samples=32, transfer_samples=32, max_eval_samples=16, epochs=1, batch_size=16,
                            progress=False, eval_teacher=False, teacher_cache=cache, output=str(tmp_path / cache))
        result = distill(cfg)
        assert result.metrics["train"]["steps"] == 4
        assert (result.metrics["train"]["teacher_cache"] is None) == (cache == "off")
        assert math.isfinite(result.metrics["eval"]["loss"])


def test_gradient_accumulation(tiny_teacher, tmp_path):
    """32 rows at batch 8, two batches per optimizer step: one epoch is 2 optimizer steps."""
    cfg = DistillConfig(teacher=str(tiny_teacher), student_layers=2, task="sst2", synthetic=True, method="full",
                        max_train_samples=32, max_eval_samples=16, epochs=1, batch_size=8,
                        gradient_accumulation_steps=2, logging_steps=1, progress=False, eval_teacher=False,
                        output=str(tmp_path / "run"))
    result = distill(cfg)
    assert result.metrics["train"]["steps"] == 2
    assert math.isfinite(result.metrics["eval"]["loss"])


def test_progress_false_hides_the_library_bars_for_the_run_only():
    import datasets
    from transformers.utils import logging as hf_logging

    from dynakd.runner import library_bars

    before = datasets.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled()  # the CLI's tests hide them
    datasets.enable_progress_bars()
    hf_logging.enable_progress_bar()
    try:
        with library_bars(progress=False):
            assert not datasets.is_progress_bar_enabled() and not hf_logging.is_progress_bar_enabled()
        assert datasets.is_progress_bar_enabled() and hf_logging.is_progress_bar_enabled()
    finally:
        if not before[0]:
            datasets.disable_progress_bars()
        if not before[1]:
            hf_logging.disable_progress_bar()


def test_every_exported_name_resolves():
    """The package imports its API on first use (PEP 562): every name of ``__all__`` must still be there."""
    import dynakd

    assert set(dynakd.__all__) == set(dynakd._EXPORTS) and set(dynakd.__all__) <= set(dir(dynakd))
    for name in dynakd.__all__:
        assert getattr(dynakd, name).__name__ == name
    assert callable(dynakd.losses.feature_dynamics_loss) and callable(dynakd.align.sinkhorn)  # README's spelling
    assert not hasattr(dynakd, "no_such_thing")
    assert {"losses", "align"} <= set(dir(dynakd)) and not {"importlib", "TYPE_CHECKING"} & set(dir(dynakd))
    for name in dynakd._SUBPACKAGES:  # what tab completion offers resolves
        assert getattr(dynakd, name).__name__ == f"dynakd.{name}"


def test_your_own_trainer_run_resumes_the_distillers_state(tiny_teacher, tmp_path):
    """``DistillationTrainer`` in a hand-written Trainer flow: ``train(resume_from_checkpoint=True)`` restores the
    distiller's state (EMA references, running plan) with the checkpoint, so the run ends as an uninterrupted one."""
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, TrainerCallback, TrainingArguments, set_seed

    from dynakd import DistillationTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    rows = Dataset.from_dict({"sentence": [f"film {i} was {'good' if i % 2 else 'dull'}" for i in range(32)],
                              "label": [i % 2 for i in range(32)]})
    rows = rows.map(lambda b: tokenizer(b["sentence"]), batched=True, remove_columns=["sentence"])

    class StopAtTwo(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step == 2

    def run(out, stop=False, resume=None):
        set_seed(0)
        teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
        student = build_student(teacher, 2)
        distiller = Distiller(build_config({"method": "full", "dynamics": {"reference": "ema"}}), student_layers=2,
                              teacher_layers=4, student_width=32, teacher_width=32)
        args = TrainingArguments(output_dir=str(out), max_steps=4, per_device_train_batch_size=8, save_steps=2,
                                 report_to=[], use_cpu=True, seed=0, disable_tqdm=True)
        trainer = DistillationTrainer(model=student, args=args, train_dataset=rows, teacher=teacher,
                                      distiller=distiller, data_collator=DataCollatorWithPadding(tokenizer),
                                      callbacks=[StopAtTwo()] if stop else None)
        trainer.train(resume_from_checkpoint=resume)
        return student, distiller

    whole, whole_distiller = run(tmp_path / "whole")
    assert json.loads((tmp_path / "whole" / "alignment.json").read_text())["aligner"] == "ot"
    run(tmp_path / "cut", stop=True)
    resumed, resumed_distiller = run(tmp_path / "cut", resume=True)
    assert torch.equal(resumed_distiller.ref_s, whole_distiller.ref_s)
    assert torch.equal(resumed_distiller.aligner.running_plan, whole_distiller.aligner.running_plan)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_distiller_built_for_other_depths_says_so(tiny_teacher):
    import pytest

    from dynakd import DynaKDError

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    student = build_student(teacher, 2)
    batch = dict(AutoTokenizer.from_pretrained(tiny_teacher)(["a good film"], return_tensors="pt"))
    distiller = Distiller(build_config({"method": "full"}), student_layers=2, teacher_layers=12, student_width=32,
                          teacher_width=768)
    with pytest.raises(DynaKDError, match=r"the teacher's features have 4 layers of width 32; this Distiller was "
                                          r"built for 12 of width 768 \(teacher_layers, teacher_width\)"):
        distiller(capture(student, batch), capture(teacher, batch), torch.tensor([1]), progress=0.0)
    with pytest.raises(DynaKDError, match=r"the student's features hold no hidden states, which method 'full' "
                                          r"compares: capture\(model, batch\) with hidden=True"):
        distiller(capture(student, batch, hidden=False), capture(teacher, batch), torch.tensor([1]), progress=0.0)


def test_your_own_trainer_keeps_the_columns_distillation_reads(tiny_teacher, tmp_path):
    """With the Trainer's default ``remove_unused_columns``, a teacher cache's ``example_id`` and the teacher's own
    ``teacher_*`` tokens were dropped, and the run trained on something else without a word."""
    import pytest
    from datasets import Dataset
    from transformers import TrainingArguments

    from dynakd import DistillationTrainer, DynaKDError

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    rows = Dataset.from_dict({"input_ids": [[2, 7, 3]] * 4, "attention_mask": [[1, 1, 1]] * 4, "labels": [0, 1] * 2,
                              "example_id": list(range(4)), "teacher_input_ids": [[2, 8, 3]] * 4,
                              "teacher_attention_mask": [[1, 1, 1]] * 4, "context_mask": [[0, 1, 0]] * 4,
                              "sentence": ["a"] * 4})
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, report_to=[],
                             use_cpu=True, disable_tqdm=True)  # remove_unused_columns left at its default, True
    def trainer(method):
        return DistillationTrainer(model=build_student(teacher, 2), args=args, train_dataset=rows, teacher=None,
                                   distiller=Distiller(build_config({"method": method}), student_layers=2,
                                                       teacher_layers=4, student_width=32, teacher_width=32))

    # no teacher, and no cache: refused when built (it was at the first step, from a Trainer user's walkthrough)
    with pytest.raises(DynaKDError, match="method 'full' needs the teacher: pass teacher=..., or a teacher_cache"):
        trainer("full")
    kept = trainer("task")._remove_unused_columns(rows).column_names  # (the columns kept whatever the method)
    assert set(kept) == set(rows.column_names) - {"sentence"}
    collate = trainer("task")._get_collator_with_removed_columns(lambda features: features)  # a dataset without columns
    assert set(collate([dict(rows[0])])[0]) == set(kept)


def test_the_dataset_reference_must_be_given_outside_distill(tiny_teacher):
    """``dynamics.reference: dataset`` outside ``dynakd.distill`` used to fall back to a running mean without a word."""
    import pytest

    from dynakd import DynaKDError
    from dynakd.cache import live_dataset_mean  # noqa: F401  (named in the message)

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    student = build_student(teacher, 2)
    batch = dict(AutoTokenizer.from_pretrained(tiny_teacher)(["a good film", "a dull one"], return_tensors="pt"))
    distiller = Distiller(build_config({"method": "full", "dynamics": {"reference": "dataset"}}), student_layers=2,
                          teacher_layers=4, student_width=32, teacher_width=32)
    s, t, labels = capture(student, batch), capture(teacher, batch), torch.tensor([1, 0])
    with pytest.raises(DynaKDError, match=r"reference 'dataset' needs the teacher's training-set mean: call "
                                          r"distiller.set_dataset_reference\(mean\) first"):
        distiller(s, t, labels, progress=0.0)
    mean = torch.randn(5, 32)
    distiller.set_dataset_reference(mean)
    distiller(s, t, labels, progress=0.0)
    assert torch.equal(distiller.ref_t, mean)  # fixed, not a running mean


def test_scoring_a_model_leaves_the_callers_random_streams_as_they_were(tiny_teacher, tmp_path):
    """The Trainer seeds every generator when built: dynakd.evaluate() reset a caller's streams to seed 42."""
    import random

    import numpy as np
    import torch

    from dynakd import evaluate

    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    expected = draws()
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    evaluate({"model": str(tiny_teacher), "task": "sst2", "synthetic": True, "max_eval_samples": 16,
              "progress": False, "output": str(tmp_path / "scored")})
    assert draws() == expected


def test_a_term_that_swamps_the_task_term_is_noted_once(tiny_teacher, tmp_path, capsys):
    """A term adding 100x what the task term adds sets each step's direction: a note says so once, naming it, and for
    the layer change's magnitude form says why it can be large and how to leave it out; runs of ordinary weights get
    no note."""
    def run(beta: float, out: str, **kw):
        cfg = DistillConfig(teacher=str(tiny_teacher), student_layers=2, task="sst2", synthetic=True, method="dynamics",
                            max_train_samples=32, max_eval_samples=16, max_steps=3, batch_size=16, progress=False,
                            logging_steps=1, beta=Schedule("constant", beta, beta), eval_teacher=False,
                            output=str(tmp_path / out), **kw)
        distill(cfg)
        return capsys.readouterr().out

    assert "note: at step" not in run(1.0, "plain")
    out = run(1e7, "swamped", dynamics={"components": ["layer_change"]})
    assert out.count("note: at step 1 the term dyn/layer_change adds ") == 1
    assert "x what the task term adds (" in out and "--set 'dynamics.forms=[direction]' leaves that form out" in out
    assert "--set balance=true divides each term by its running size" in out
    out = run(1e7, "direction", dynamics={"components": ["layer_change"], "forms": ["direction"]})
    assert "note: at step 1 the term dyn/layer_change" in out and "dynamics.forms=[direction]" not in out


def test_the_last_step_logs_its_terms_whatever_logging_steps_says(tiny_teacher, tmp_path, monkeypatch):
    """A run shorter than logging_steps logged its first step alone: TensorBoard showed no term's course."""
    from dynakd.trainer import DistillationTrainer

    logged, log = [], DistillationTrainer.log

    def spy(self, logs, *args, **kwargs):
        log(self, logs, *args, **kwargs)  # (which adds the terms)
        if "loss" in logs:
            logged.append((self.state.global_step, "loss/task" in logs))

    monkeypatch.setattr(DistillationTrainer, "log", spy)
    cfg = DistillConfig(teacher=str(tiny_teacher), student_layers=2, task="sst2", synthetic=True, method="kd",
                        max_train_samples=32, max_eval_samples=16, max_steps=3, batch_size=8, progress=False,
                        logging_steps=25, eval_teacher=False, output=str(tmp_path / "run"))
    distill(cfg)
    assert logged == [(1, True), (3, True)]  # (the Trainer logs the first step: logging_first_step)


def test_classification_is_scored_longest_rows_first_and_qa_in_dataset_order(tiny_teacher, tmp_path, monkeypatch):
    """Evaluation batches of rows of about one length pad less (SST-2's dev set: 23,512 token positions against 44,448
    in dataset order); QA keeps dataset order, which its postprocessing reads windows by. The scores do not follow
    the order: the same as from dataset order."""
    from torch.utils.data import SequentialSampler

    from dynakd import evaluate, evaluation

    seen = []
    chosen = evaluation.QAEvaluationMixin._get_eval_sampler

    def spy(self, dataset):
        sampler = chosen(self, dataset)
        seen.append((type(sampler).__name__, [len(dataset[i]["input_ids"]) for i in sampler]))
        return sampler

    monkeypatch.setattr(evaluation.QAEvaluationMixin, "_get_eval_sampler", spy)
    settings = {"model": str(tiny_teacher), "task": "sst2", "synthetic": True, "max_eval_samples": 24,
                "eval_batch_size": 4, "progress": False}
    longest_first = evaluate({**settings, "output": str(tmp_path / "a")}).metrics["eval"]
    [(name, lengths)] = seen
    assert name == "LongestFirst" and lengths == sorted(lengths, reverse=True) and len(set(lengths)) > 1
    monkeypatch.setattr(evaluation, "LongestFirst", lambda ids: SequentialSampler(ids))
    in_order = evaluate({**settings, "output": str(tmp_path / "b")}).metrics["eval"]
    assert longest_first["accuracy"] == in_order["accuracy"]
    assert abs(longest_first["loss"] - in_order["loss"]) < 1e-6  # (other padding: the last bits)


def test_a_model_without_a_head_and_an_alignment_folder_as_text(tiny_teacher, tmp_path):
    """From a library user's walkthrough (2026-12-07): a base AutoModel as the teacher (or the student) of one's own
    loop or Trainer failed on an AttributeError of its output class; save_alignment took a Path alone."""
    import pytest
    from transformers import AutoModel

    from dynakd.callbacks import save_alignment
    from dynakd.errors import DynaKDError

    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    batch = dict(tokenizer(["the film is good"], return_tensors="pt"))
    with pytest.raises(DynaKDError, match=r"^the model's output \(BaseModelOutputWithPoolingAndCrossAttentions\) has "
                                          r"no logits: DynaKD distils models with a task head"):
        capture(AutoModel.from_pretrained(tiny_teacher), batch)
    save_alignment(torch.full((2, 4), 0.25), str(tmp_path / "plans"), step=3, aligner="ot")
    assert json.loads((tmp_path / "plans" / "alignment.json").read_text())["step"] == 3


def test_a_failed_run_closes_its_tensorboard_writer(tiny_teacher, tmp_path, monkeypatch):
    """transformers' TensorBoard callback closes its writer at the end of training alone: each run that failed in
    one process (a notebook's) left a writer thread running."""
    import threading

    import pytest

    from dynakd.trainer import DistillationTrainer

    def boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(DistillationTrainer, "training_step", boom)
    writers = lambda: [t for t in threading.enumerate() if "AsyncWriter" in type(t).__name__]  # noqa: E731
    before = len(writers())
    cfg = DistillConfig(teacher=str(tiny_teacher), student_layers=2, task="sst2", synthetic=True, method="kd",
                        max_train_samples=16, max_eval_samples=16, max_steps=2, batch_size=8, progress=False,
                        report_to=["tensorboard"], output=str(tmp_path / "run"))
    with pytest.raises(RuntimeError, match="boom"):
        distill(cfg)
    assert len(writers()) == before


def test_an_own_loops_optimizer_without_the_distillers_parameters_is_noted(tiny_teacher, capsys, monkeypatch):
    """An own loop whose optimizer held the student's parameters alone left the distiller's projections as they
    began, without a word (a DistillationTrainer refuses such an optimizer)."""
    import dynakd.distiller as D

    monkeypatch.setattr(D, "STEPPED_BY", 3)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    batch = dict(tokenizer(["the film is good", "the plot is dull"], padding=True, return_tensors="pt"))
    for own in (False, True):
        student = build_student(teacher, 2)
        distiller = Distiller(build_config({"method": "static"}), student_layers=2, teacher_layers=4,
                              student_width=32, teacher_width=32)
        params = [*student.parameters(), *(distiller.parameters() if own else ())]
        optimizer = torch.optim.AdamW(params, lr=1e-3)
        for step in range(4):
            with torch.no_grad():
                t = capture(teacher, batch)
            out = distiller(capture(student, batch), t, torch.tensor([1, 0]), progress=step / 4)
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
        said = capsys.readouterr().out
        assert ("have gradients but have not moved in 3 training batches" in said) is not own, said


def test_the_heatmap_says_how_many_plans_its_running_mean_holds(tiny_teacher, tmp_path):
    """After a few steps the running plan is still mostly the one-hot map it starts from (0.9^3 = 73% after 3), which
    read as a confident alignment: the picture and alignment.json say how many plans it holds."""
    cfg = DistillConfig(teacher=str(tiny_teacher), student_layers=2, task="sst2", synthetic=True, method="full",
                        max_train_samples=48, max_eval_samples=16, max_steps=3, batch_size=16, progress=False,
                        output=str(tmp_path / "run"))
    distill(cfg)
    record = json.loads((tmp_path / "run" / "alignment.json").read_text())
    assert record["plans_averaged"] == 3 and record["start_map_weight"] == 0.729
    d = Distiller(build_config({"method": "full"}), student_layers=2, teacher_layers=4, student_width=32,
                  teacher_width=32)
    d.aligner.tracked = 7
    again = Distiller(build_config({"method": "full"}), student_layers=2, teacher_layers=4, student_width=32,
                      teacher_width=32)
    again.load_state_dict(d.state_dict())
    assert again.aligner.tracked == 7  # (kept in checkpoints: a resumed run's picture counts on)
