"""``DistillationTrainer`` given Trainer settings of one's own: an optimizer, label names, a distiller used before,
``save_strategy: no``. Each either works or is refused in one line, before training on something else."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, TrainerCallback

from dynakd import DistillationTrainer, Distiller, DynaKDError, build_config, build_student

from ..conftest import make_tiny_bert
from .test_api_checks import _args, _distiller, _rows


def _models(tiny_teacher):
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    return teacher, build_student(teacher, 2), AutoTokenizer.from_pretrained(tiny_teacher)


def test_your_own_optimizer_must_hold_the_distillers_parameters(tiny_teacher, tmp_path):
    """The distiller's projections joined the caller's optimizer after the caller's scheduler was built: the first
    step failed inside torch's lr_scheduler."""
    teacher, student, tokenizer = _models(tiny_teacher)
    distiller = _distiller({"method": "static"})

    def trainer(params):
        optimizer = torch.optim.AdamW(params, lr=1e-3)
        optimizers = (optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0))
        return DistillationTrainer(model=student, teacher=teacher, distiller=distiller, optimizers=optimizers,
                                   args=_args(tmp_path, max_steps=1, save_strategy="no"),
                                   train_dataset=_rows(tokenizer, 8), data_collator=DataCollatorWithPadding(tokenizer))

    with pytest.raises(DynaKDError, match=r"the optimizer passed in optimizers= lacks the distiller's own parameters "
                                          r"\(.*\): build it over list\(model.parameters\(\)\) \+ "
                                          r"list\(distiller.parameters\(\)\)"):
        trainer(student.parameters())
    before = distiller.projections[0].weight.detach().clone()
    trainer([*student.parameters(), *distiller.parameters()]).train()
    assert not torch.equal(before, distiller.projections[0].weight)


def test_label_names_other_than_labels_are_refused(tiny_teacher, tmp_path):
    """Training raised the distiller's 'no labels' (which never named label_names) and evaluate() an AttributeError."""
    teacher, student, tokenizer = _models(tiny_teacher)
    rows = _rows(tokenizer, 8).rename_column("label", "target")
    common = dict(model=student, teacher=teacher, train_dataset=rows, data_collator=DataCollatorWithPadding(tokenizer))
    with pytest.raises(DynaKDError, match=r"label_names \['target'\]: DistillationTrainer reads the batch's 'labels' "
                                          r".*dataset.rename_column\('target', 'labels'\)"):
        DistillationTrainer(distiller=_distiller(), args=_args(tmp_path, label_names=["target"]), **common)
    DistillationTrainer(distiller=_distiller(), args=_args(tmp_path, label_names=["labels"]), **common)


def test_a_reused_distiller_takes_each_trainers_label_smoothing(tiny_teacher, tmp_path):
    """The second trainer's label_smoothing_factor (0) was not applied: the first trainer's 0.3 stayed."""
    teacher, student, tokenizer = _models(tiny_teacher)
    distiller = _distiller()
    for smoothing in (0.3, 0.0):
        DistillationTrainer(model=student, teacher=teacher, distiller=distiller, train_dataset=_rows(tokenizer, 8),
                            args=_args(tmp_path, label_smoothing_factor=smoothing),
                            data_collator=DataCollatorWithPadding(tokenizer))
        assert distiller.label_smoothing == smoothing


def test_a_non_finite_loss_under_save_strategy_no_saves_nothing(tiny_teacher, tmp_path):
    """save_strategy 'no' still got a checkpoint-0, and the message named command-line flags (--lr, --overwrite)."""
    teacher, student, tokenizer = _models(tiny_teacher)
    with torch.no_grad():
        student.classifier.weight.fill_(float("nan"))
    trainer = DistillationTrainer(model=student, teacher=teacher, distiller=_distiller(),
                                  train_dataset=_rows(tokenizer, 8),
                                  args=_args(tmp_path / "run", max_steps=2, save_strategy="no"),
                                  data_collator=DataCollatorWithPadding(tokenizer))
    with pytest.raises(DynaKDError, match=r"non-finite loss at step 1: term 'task' is nan; the model and distiller "
                                          r"hold the last good state \(step 0\), not saved \(save_strategy 'no'\); "
                                          r"lower the learning rate \(lr\) or the term's weight"):
        trainer.train()
    assert not list((tmp_path / "run").glob("*checkpoint-*"))



class Poison(TrainerCallback):
    """Fills the student's head with NaN after its micro-batch ``at`` (counted from 1, every train() call)."""

    def __init__(self, student, at):
        self.student, self.at, self.seen = student, at, 0

    def on_substep_end(self, args, state, control, **kwargs):  # a micro-batch before a step's last
        self._count()

    def on_step_end(self, args, state, control, **kwargs):  # a step's last micro-batch
        self._count()

    def _count(self):
        self.seen += 1
        if self.seen == self.at:
            with torch.no_grad():
                self.student.classifier.weight.fill_(float("nan"))


def test_a_non_finite_loss_saves_the_checkpoint_it_names_with_save_steps_a_fraction(tiny_teacher, tmp_path):
    """save_steps 0.25 (a quarter of the run, as TrainingArguments allow) was compared as a step count: every step
    counted as saved already, and the message named a checkpoint that was never written."""
    teacher, student, tokenizer = _models(tiny_teacher)
    trainer = DistillationTrainer(model=student, teacher=teacher, distiller=_distiller(),
                                  train_dataset=_rows(tokenizer, 64), callbacks=[Poison(student, 3)],
                                  args=_args(tmp_path / "run", max_steps=8, save_strategy="steps", save_steps=0.25),
                                  data_collator=DataCollatorWithPadding(tokenizer))
    with pytest.raises(DynaKDError, match=r"non-finite loss at step 4: .* the last good state \(step 3\) is saved in "
                                          r".*checkpoint-3;"):
        trainer.train()
    assert (tmp_path / "run" / "checkpoint-3").is_dir()


def test_a_new_train_call_starts_without_the_distillers_gradients_of_a_stopped_one(tiny_teacher, tmp_path):
    """A train() stopped by a non-finite loss mid-accumulation left the distiller's gradients of its first
    micro-batch, which the next train() on the trainer added into its first step (the Trainer zeroes only its model's
    at the start)."""
    teacher, student, tokenizer = _models(tiny_teacher)
    distiller = _distiller({"method": "static"})
    good = {k: v.clone() for k, v in student.state_dict().items()}
    trainer = DistillationTrainer(model=student, teacher=teacher, distiller=distiller,
                                  train_dataset=_rows(tokenizer, 64), callbacks=[Poison(student, 1)],
                                  args=_args(tmp_path / "run", max_steps=4, save_strategy="no",
                                             gradient_accumulation_steps=2),
                                  data_collator=DataCollatorWithPadding(tokenizer))
    with pytest.raises(DynaKDError, match="non-finite loss at step 1"):
        trainer.train()
    assert distiller.projections[0].weight.grad is not None  # the first micro-batch's
    with torch.no_grad():
        student.load_state_dict(good)
    seen = []

    class Peek(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            seen.append(distiller.projections[0].weight.grad)

    trainer.callback_handler.callbacks = [c for c in trainer.callback_handler.callbacks
                                          if not isinstance(c, Poison)]
    trainer.add_callback(Peek())
    trainer.train()
    assert seen and seen[0] is None


def test_term_balancing_logs_its_divisors(tiny_teacher, tmp_path):
    """With balance the logged terms and weights did not give the loss: each term's divisor went unlogged."""
    teacher, student, tokenizer = _models(tiny_teacher)
    logged = []

    class Logs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logged.append(dict(logs or {}))

    distiller = _distiller({"method": "kd", "balance": True})
    trainer = DistillationTrainer(model=student, teacher=teacher, distiller=distiller,
                                  train_dataset=_rows(tokenizer, 16), callbacks=[Logs()],
                                  args=_args(tmp_path / "run", max_steps=2, logging_steps=1, save_strategy="no"),
                                  data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    first = next(log for log in logged if "loss" in log)
    assert {"balance/task", "balance/logit"} <= set(first) and first["balance/task"] > 0


def test_logged_terms_give_the_logged_loss_over_a_short_last_accumulation(tiny_teacher, tmp_path):
    """An epoch of 6 micro-batches with 4 to a step ends on a step of 2: the Trainer's loss is the mean of the two
    steps' losses, the terms were the mean of the six micro-batches' (0.44% off the loss in a reviewer's run)."""
    teacher, student, tokenizer = _models(tiny_teacher)
    logged = []

    class Logs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logged.append(dict(logs or {}))

    trainer = DistillationTrainer(model=student, teacher=teacher, distiller=_distiller(),
                                  train_dataset=_rows(tokenizer, 48), callbacks=[Logs()],
                                  args=_args(tmp_path / "run", max_steps=2, logging_steps=2, save_strategy="no",
                                             gradient_accumulation_steps=4, learning_rate=1e-2),
                                  data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    log = next(log for log in logged if "loss" in log)
    total = log["weight/task"] * log["loss/task"] + log["weight/logit"] * log["loss/logit"]
    assert total == pytest.approx(log["loss"], rel=2e-5)


@pytest.mark.parametrize("settings", [{"dynamics": {"weights": {"relations": 0.1}}}, {"staged": 0.375},
                                      {"balance": True}])
def test_what_each_term_added_sums_to_the_logged_loss_and_a_term_is_its_mean_where_computed(tiny_teacher, tmp_path,
                                                                                           settings):
    """The logged weights and terms were each a mean over the window, so with a decaying beta their products missed
    the logged loss by 2-3% (a reviewer's run), a component's weight (``dynamics.weights``) was not logged at all
    (20-46% over), and a layer term not computed at some steps (``staged``) was averaged in as 0. Now each term is its
    mean where computed, and ``weighted/<term>`` (0 where it added nothing, or was not computed since the last log)
    sums to the loss."""
    teacher, student, tokenizer = _models(tiny_teacher)
    logged = []

    class Logs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logged.append(dict(logs or {}))

    distiller = _distiller({"method": "full", "dynamics": {"components": ["deviation", "relations"]}, **settings})
    trainer = DistillationTrainer(model=student, teacher=teacher, distiller=distiller, callbacks=[Logs()],
                                  train_dataset=_rows(tokenizer, 64),
                                  args=_args(tmp_path / "run", max_steps=8, logging_steps=4, save_strategy="no",
                                             gradient_accumulation_steps=2),
                                  data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    logs = [log for log in logged if "loss" in log]
    assert len(logs) == 2
    for log in logs:
        weighted = [v for k, v in log.items() if k.startswith("weighted/")]
        assert sum(weighted) == pytest.approx(log["loss"], rel=1e-4)
    if "staged" in settings:  # steps 1-3 with the layer terms, 4-8 without: a mean over the 3, then none logged
        assert logs[0]["weight/feature"] == pytest.approx((10 + 10 * 7 / 8 + 10 * 6 / 8 + 0) / 4)
        assert "loss/dyn/deviation" in logs[0] and "loss/dyn/deviation" not in logs[1]
        # what it added is 0 in the window where it was not computed (its curve stopped at its last value)
        assert logs[1]["weighted/dyn/deviation"] == 0.0 and logs[1]["weighted/dyn/relations"] == 0.0
        # weighted: (b1 t1 + b2 t2 + b3 t3) / 4 with b in [7.5, 10], the term (t1 + t2 + t3) / 3 (was / 4)
        term, added = logs[0]["loss/dyn/deviation"], logs[0]["weighted/dyn/deviation"]
        assert 0.75 * 7.5 * term <= added * (1 + 1e-5) and added <= 0.75 * 10 * term * (1 + 1e-5)
    elif "dynamics" in settings:
        assert logs[0]["weight/dyn/relations"] == 0.1 and logs[0]["weight/dyn/deviation"] == 1.0


def test_a_balance_divisor_is_averaged_over_the_micro_batches_that_used_it(tiny_teacher, tmp_path):
    """A term's running magnitude that began within a logging window (a batch of transfer rows has no task term
    at first) was summed over the micro-batches that had it and divided by all of them: 20% low in a reviewer's run."""
    from dynakd.distiller import DistillOutput

    teacher, student, tokenizer = _models(tiny_teacher)
    trainer = DistillationTrainer(model=student, teacher=teacher, distiller=_distiller({"method": "kd",
                                                                                       "balance": True}),
                                  train_dataset=_rows(tokenizer, 8), args=_args(tmp_path / "run"),
                                  data_collator=DataCollatorWithPadding(tokenizer))
    out = DistillOutput(loss=torch.tensor(1.0), terms={"task": torch.tensor(0.5), "logit": torch.tensor(0.2)},
                        weights={"task": 1.0, "logit": 1.0}, plan=None)
    trainer.current_gradient_accumulation_steps = 1
    for magnitudes in ({"logit": 0.4}, {"logit": 0.4, "task": 0.6}, {"logit": 0.4, "task": 0.8}):
        trainer.distiller._magnitudes = magnitudes
        trainer._accumulate(out)
    logs = {"loss": 1.0}
    trainer.log(logs)
    assert logs["balance/task"] == pytest.approx(0.7) and logs["balance/logit"] == pytest.approx(0.4)
    assert logs["loss/task"] == pytest.approx(0.5) and logs["weight/logit"] == 1.0


def test_the_sensitivity_noise_follows_the_trainers_seed(tiny_teacher, tmp_path, monkeypatch):
    """The noise came from the distiller config's seed: runs of TrainingArguments(seed=...) 1 and 2 drew the same."""
    from dynakd import trainer as trainer_module

    teacher, student, tokenizer = _models(tiny_teacher)
    seeds, widths, real = [], [], trainer_module.perturbed_embeddings

    def perturbed_embeddings(model, input_ids, std, seed, mask, **shared):
        seeds.append(seed)
        widths.append(shared)
        return real(model, input_ids, std, seed, mask, **shared)

    monkeypatch.setattr(trainer_module, "perturbed_embeddings", perturbed_embeddings)
    config = {"method": "full", "dynamics": {"components": ["deviation", "sensitivity"]}}
    for seed in (1, 2):
        DistillationTrainer(model=student, teacher=teacher, distiller=_distiller(config),
                            train_dataset=_rows(tokenizer, 8),
                            args=_args(tmp_path / "run", max_steps=1, save_strategy="no", seed=seed),
                            data_collator=DataCollatorWithPadding(tokenizer)).train()
    assert len(seeds) == 4 and seeds[0] == seeds[1] and seeds[2] == seeds[3] and seeds[0] != seeds[2]
    assert widths == [{"width": 32, "length": _distiller(config).cfg.max_seq_length}] * 4  # one noise for both
    # a student narrower than its teacher: both draw at its width (each model drew at its own, unrelated noises)
    narrow = AutoModelForSequenceClassification.from_pretrained(make_tiny_bert(tmp_path / "narrow", layers=2,
                                                                               hidden=16))
    widths.clear()
    distiller = Distiller(build_config(config), student_layers=2, teacher_layers=4, student_width=16,
                          teacher_width=32)
    DistillationTrainer(model=narrow, teacher=teacher, distiller=distiller, train_dataset=_rows(tokenizer, 8),
                        args=_args(tmp_path / "run-narrow", max_steps=1, save_strategy="no"),
                        data_collator=DataCollatorWithPadding(tokenizer)).train()
    assert [w["width"] for w in widths] == [16, 16]


def test_the_second_stage_trains_without_the_layer_terms(tiny_teacher, tmp_path, monkeypatch):
    """`staged`'s second stage captured both models' hidden states and computed the dynamics to weigh them by 0. Now
    its steps capture none and log no dynamics term, and the feature weight is still logged (as 0) where it ends."""
    from dynakd import trainer as trainer_module

    teacher, student, tokenizer = _models(tiny_teacher)
    hidden, logged, real = [], [], trainer_module.capture
    monkeypatch.setattr(trainer_module, "capture", lambda *a, **kw: (hidden.append(kw.get("hidden", True)),
                                                                      real(*a, **kw))[1])

    class Logs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logged.append(dict(logs or {}))

    distiller = _distiller({"method": "full", "staged": 0.5, "dynamics": {"components": ["sensitivity"]}})
    trainer = DistillationTrainer(model=student, teacher=teacher, distiller=distiller, callbacks=[Logs()],
                                  train_dataset=_rows(tokenizer, 32),
                                  args=_args(tmp_path / "run", max_steps=4, logging_steps=1, save_strategy="no"),
                                  data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    # steps 1 and 2: student, teacher and both perturbed forwards; steps 3 and 4: the two models, hidden states off
    assert hidden == [True] * 8 + [False] * 4
    logs = [log for log in logged if "loss" in log]
    assert [log["weight/feature"] for log in logs] == [10.0, 7.5, 0.0, 0.0]
    assert ["loss/dyn/sensitivity" in log for log in logs] == [True, True, False, False]


def test_the_distillers_parameters_are_left_alone_where_their_terms_weigh_nothing(monkeypatch):
    """Where the layer terms weighed 0 (staged's second stage) the distiller's parameters had no gradient: one process
    skipped them in the optimizer, while under a launcher zeros were averaged in and Adam moved them by its momentum."""
    from types import SimpleNamespace

    from dynakd import distributed
    from dynakd.callbacks import DistillerGradients

    averaged = []
    monkeypatch.setattr(distributed, "average_gradients", lambda params: averaged.append(len(params)))
    callback = DistillerGradients(_distiller({"method": "static", "staged": 0.5}))
    args = SimpleNamespace(max_grad_norm=1.0)
    for step in (1, 3):  # of 4: stage 1, then stage 2
        callback.on_pre_optimizer_step(args, SimpleNamespace(global_step=step, max_steps=4), None)
    assert len(averaged) == 1 and averaged[0] > 0


@pytest.mark.parametrize("method", ["kd", "full"])
def test_the_live_teacher_runs_first_and_hands_pooled_dynamics_its_states_pooled(tiny_teacher, tmp_path, method):
    """The live teacher runs before the student, so its forward's temporaries never sit beside the student's
    activations; for pooled dynamics its token states are pooled at once and let go (Distiller.pooled_teacher)."""
    teacher, student, tokenizer = _models(tiny_teacher)
    order, seen = [], []
    teacher.register_forward_pre_hook(lambda *a: order.append("teacher"))
    student.register_forward_pre_hook(lambda *a: order.append("student"))
    distiller = _distiller({"method": method})
    forward = distiller.forward

    def recording(student_features, teacher_features, *args, **kwargs):
        seen.append(teacher_features)
        return forward(student_features, teacher_features, *args, **kwargs)

    distiller.forward = recording
    DistillationTrainer(model=student, teacher=teacher, distiller=distiller, train_dataset=_rows(tokenizer, 8),
                        args=_args(tmp_path, max_steps=2, save_strategy="no"),
                        data_collator=DataCollatorWithPadding(tokenizer)).train()
    assert order[-2:] == ["teacher", "student"]  # (the second step's: the first also probes each model, capture_rule)
    assert len(seen) == 2 and all(t.hidden == () for t in seen)
    assert all((t.pooled is not None) == (method == "full") for t in seen)


def test_gather_with_token_level_dynamics_is_noted_as_not_read(tiny_teacher, tmp_path, capsys, monkeypatch):
    """``dynamics.gather`` gathers pooled features; token-level dynamics compare each window's own tokens, so a
    multi-process run with both said nothing of the key it did not read."""
    from transformers import TrainingArguments

    teacher, student, tokenizer = _models(tiny_teacher)
    config = {"method": "full", "dynamics": {"pooling": "tokens", "gather": True}}
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))  # (as a launcher's process 0)
    DistillationTrainer(model=student, teacher=teacher, distiller=_distiller(config), train_dataset=_rows(tokenizer, 8),
                        args=_args(tmp_path / "run"), data_collator=DataCollatorWithPadding(tokenizer))
    assert "note: token-level dynamics compare the tokens of each window, so dynamics.gather is not read" in \
        capsys.readouterr().out


def test_terms_that_weigh_0_at_the_first_log_are_logged_from_it(tiny_teacher, tmp_path):
    """From a user's walkthrough (2026-12-07): with a feature weight warming up from 0 the first log had no
    weighted/dyn/* nor weight/dyn/* (the terms were not computed yet), so the curves began at a later log and the
    first log's terms did not visibly sum to its loss."""
    teacher, student, tokenizer = _models(tiny_teacher)
    logged = []

    class Logs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logged.append(dict(logs or {}))

    distiller = _distiller({"method": "full", "dynamics": {"components": ["deviation", "relations"]},
                            "beta": {"kind": "constant", "start": 10.0, "warmup": 0.5}})
    trainer = DistillationTrainer(model=student, teacher=teacher, distiller=distiller, callbacks=[Logs()],
                                  train_dataset=_rows(tokenizer, 16),
                                  args=_args(tmp_path / "run", max_steps=4, logging_steps=1, save_strategy="no"),
                                  data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    first, last = [log for log in logged if "loss" in log][::3]
    assert first["weight/feature"] == 0.0 and "loss/dyn/deviation" not in first  # (not computed at weight 0)
    assert first["weighted/dyn/deviation"] == first["weighted/dyn/relations"] == 0.0
    assert first["weight/dyn/deviation"] == first["weight/dyn/relations"] == 1.0
    assert sum(v for k, v in first.items() if k.startswith("weighted/")) == pytest.approx(first["loss"], rel=1e-4)
    assert last["weighted/dyn/deviation"] > 0 and "loss/dyn/deviation" in last


def test_predict_and_evaluate_keep_the_datasets_order_of_rows(tiny_teacher, tmp_path):
    """From a Trainer user's walkthrough (2026-12-07): predict() returned its rows longest first, so prediction i was
    not row i of the dataset (a submission file, error analysis), and a compute_metrics of one's own saw them so too.
    Rows come in the dataset's order, as from a plain Trainer; the dynakd commands score longest first (test_api)."""
    from transformers import Trainer

    teacher, student, tokenizer = _models(tiny_teacher)
    texts = [f"film {'very ' * (i % 5)}{i} was {'good' if i % 2 else 'dull'}" for i in range(24)]
    rows = Dataset.from_dict({"sentence": texts, "label": [i % 2 for i in range(24)]})
    rows = rows.map(lambda b: tokenizer(b["sentence"]), batched=True, remove_columns=["sentence"])
    assert len({len(ids) for ids in rows["input_ids"]}) > 1  # (longest first is another order)
    seen = []

    def metrics(p):
        seen.append(p.label_ids.tolist())
        return {}

    collate = DataCollatorWithPadding(tokenizer)
    args = _args(tmp_path / "d", per_device_eval_batch_size=4)
    trainer = DistillationTrainer(model=student, teacher=teacher, distiller=_distiller(), args=args,
                                  data_collator=collate, compute_metrics=metrics)
    ours = trainer.predict(rows)
    plain = Trainer(model=student, args=_args(tmp_path / "p", per_device_eval_batch_size=4), data_collator=collate,
                    compute_metrics=metrics).predict(rows)
    trainer.evaluate(rows)
    assert ours.label_ids.tolist() == plain.label_ids.tolist() == rows["label"][:]
    assert torch.allclose(torch.as_tensor(ours.predictions), torch.as_tensor(plain.predictions), atol=1e-6)
    assert seen == [rows["label"][:]] * 3
    trainer.eval_longest_first = True  # (what the commands set) evaluate() reads rows longest first; predict() not
    trainer.evaluate(rows)
    assert seen[-1] != rows["label"][:] and sorted(seen[-1]) == sorted(rows["label"][:])
    assert trainer.predict(rows).label_ids.tolist() == rows["label"][:] and trainer.eval_longest_first


def test_the_teacher_keeps_its_own_requires_grad(tiny_teacher, tmp_path):
    """The trainer froze the caller's teacher for good (requires_grad False on every parameter): fine-tuning that
    model afterwards in the same process failed with 'element 0 of tensors does not require grad'. It runs under
    no_grad instead, its parameters as the caller left them, and unchanged."""
    teacher, student, tokenizer = _models(tiny_teacher)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    DistillationTrainer(model=student, teacher=teacher, distiller=_distiller({"method": "full"}),
                        train_dataset=_rows(tokenizer, 16), args=_args(tmp_path / "run", max_steps=2),
                        data_collator=DataCollatorWithPadding(tokenizer)).train()
    assert all(p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert all(p.grad is None for p in teacher.parameters())
