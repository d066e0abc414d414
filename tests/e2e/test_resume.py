"""Fault tolerance: a run killed (SIGKILL) mid-run or mid-checkpoint resumes to the same final weights as a run that
was never interrupted; a non-finite loss stops the run with the last good state saved.

Tolerance: none, every final weight is bit-identical. The resumed run replays the same batches, dropout masks (the
Trainer restores the RNG states) and distiller state (EMA references, running plan, learned queries and their
optimizer state).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from dynakd.checkpoints import check_checkpoint
from dynakd.cli import main

from .test_errors import full_disk_for_the_record, run_error

SETTINGS = ["--synthetic", "--max-train-samples", "64", "--max-eval-samples", "16", "--batch-size", "8",
            "--max-seq-length", "32", "--no-progress", "--logging-steps", "4", "--max-steps", "8",
            "--save-steps", "4", "--method", "full", "--align", "attention", "--set", "align.learned=true",
            "--set", "dynamics.reference=ema", "--set", "eval_teacher=false"]

# Runs the CLI with one hook installed; the hook stops the process at a chosen point.
HOOKED_CLI = """
import os, signal, sys, time
from dynakd import trainer
from dynakd.checkpoints import check_checkpoint
from dynakd.cli import run

point, marker = os.environ["HOOK_POINT"], os.environ["HOOK_MARKER"]
if point == "mid-run":  # the sixth step, between the checkpoints of steps 4 and 8
    step = trainer.DistillationTrainer.training_step
    def training_step(self, *args, **kwargs):
        if self.state.global_step == 6:
            open(marker, "w").close()
            time.sleep(600)
        return step(self, *args, **kwargs)
    trainer.DistillationTrainer.training_step = training_step
else:  # die while checkpoint-8 (the last) is half written: model and optimizer on disk, the distiller's state not yet
    save = trainer.save_distiller_state
    def save_distiller_state(distiller, folder):
        if folder.name == "checkpoint-8":
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        save(distiller, folder)
    trainer.save_distiller_state = save_distiller_state
run(sys.argv[1:])
"""


def run_args(teacher: Path, out: Path, *extra: str) -> list[str]:
    return ["distill", "--teacher", str(teacher), "--student-layers", "2", *SETTINGS, "--output", str(out), *extra]


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


@pytest.fixture(scope="module")
def reference(tiny_teacher, tmp_path_factory) -> Path:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(run_args(tiny_teacher, out)) == 0
    assert not list(out.glob("checkpoint-*"))  # deleted once the run is saved
    return out


def kill_with_hook(teacher: Path, out: Path, point: str, tmp_path: Path, meanwhile=None) -> None:
    """Run until the hook stops the process at ``point``; call ``meanwhile(pid)`` while it waits there, then kill it."""
    marker = tmp_path / f"{point}.marker"
    env = {**os.environ, "HOOK_POINT": point, "HOOK_MARKER": str(marker)}
    proc = subprocess.Popen([sys.executable, "-c", HOOKED_CLI, *run_args(teacher, out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "hook never reached"
    if proc.poll() is None:
        try:
            if meanwhile is not None:
                meanwhile(proc.pid)
        finally:
            proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_mid_run_then_resume_gives_the_same_weights(tiny_teacher, reference, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"

    def second_start(pid: int) -> None:
        """The same command again while the run trains (a requeued job, another terminal): it resumed from the
        checkpoint the first then rotated away, and failed on a confusing error (or a traceback). Refused at once."""
        err = run_error(capsys, run_args(tiny_teacher, out))
        assert err == f"dynakd: error: {out} is in use: process {pid} on {socket.gethostname()} is training there " \
            "(two starts in one folder would resume from checkpoints the other deletes); wait for it to end, or stop it"
        for overwrite in (["--overwrite"], ["--overwrite", "--max-steps", "4"]):  # nor replaced under its feet
            assert f"{out} is in use: process {pid}" in run_error(capsys, run_args(tiny_teacher, out, *overwrite))
        assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-4"]

    kill_with_hook(tiny_teacher, out, "mid-run", tmp_path, meanwhile=second_start)
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-4"]
    with monkeypatch.context() as env:  # another number of processes: refused before any model loads
        env.setenv("WORLD_SIZE", "2")
        assert main(run_args(tiny_teacher, out, "--resume")) == 2
    assert "checkpoint-4 was written with 1 process(es) (global batch 8 x 1 x 1), and this run has 2 process(es)" in \
        capsys.readouterr().err
    # a start that cannot write the run's record (a full disk, when the run was likely stopped by one; another
    # --logging-steps, so that there is something to write) leaves it as it was: it emptied it, and the next start
    # took the folder for a different run, which only --overwrite (deleting the checkpoint) would train
    record = out / "dynakd.yaml"
    before = record.read_bytes(), record.stat().st_mtime_ns
    with monkeypatch.context() as disk:
        disk.setattr(Path, "write_text", full_disk_for_the_record)
        err = run_error(capsys, run_args(tiny_teacher, out, "--logging-steps", "2"))
    assert f"cannot write to {out}: No space left on device" in err
    assert (record.read_bytes(), record.stat().st_mtime_ns) == before
    assert main(run_args(tiny_teacher, out, "--resume")) == 0
    assert record.stat().st_mtime_ns == before[1]  # the same run's record is not written again
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["resumed_from"] == "checkpoint-4" and metrics["train"]["steps"] == 8
    assert_same_weights(reference, out)


def test_killed_during_checkpoint_write_resumes_from_the_previous_one(tiny_teacher, reference, tmp_path):
    out = tmp_path / "run"
    kill_with_hook(tiny_teacher, out, "mid-save", tmp_path)
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-4"]
    partial = out / ".partial-checkpoint-8" / "checkpoint-8"
    assert (partial / "model.safetensors").is_file() and not (partial / "dynakd_distiller.pt").exists()
    assert main(run_args(tiny_teacher, out)) == 0  # resuming is the default for the same run
    assert json.loads((out / "metrics.json").read_text())["train"]["resumed_from"] == "checkpoint-4"
    assert not (out / ".partial-checkpoint-8").exists()
    assert_same_weights(reference, out)


def test_a_checkpoint_of_the_last_step_resumes_without_training(tiny_teacher, tmp_path):
    """Killed after the last checkpoint (while evaluating or saving at the end): the Trainer's loop tests the step
    count only after a step, so a run whose last step falls inside an epoch (8 steps, 6 an epoch) trained a step 9
    of 8 when resumed (its running plan and references moved)."""
    out = tmp_path / "run"
    args = run_args(tiny_teacher, out, "--keep-checkpoints", "--max-train-samples", "48")
    assert main(args) == 0
    plan = json.loads((out / "alignment.json").read_text())
    for name in ("metrics.json", "model.safetensors", "README.md"):  # what the killed run had not written yet
        (out / name).unlink()
    assert main(args) == 0
    train = json.loads((out / "metrics.json").read_text())["train"]
    assert train["resumed_from"] == "checkpoint-8" and train["steps"] == 8 and train["loss"] is None
    assert json.loads((out / "alignment.json").read_text()) == plan


def test_a_resume_that_switches_the_teacher_cache_says_so(tiny_teacher, tmp_path, capsys):
    """Allowed (the disk may have filled), but the steps before the checkpoint read the teacher's cached float16
    features and the rest the live teacher: the weights move in the 4th digit, which a resume had said nothing of.
    Said by what the checkpoint's steps read, not by the setting they ran with: ``auto`` reads no cache in a run
    shorter than an epoch, and a resume with the cache off was told it had read one."""
    out = tmp_path / "run"
    args = run_args(tiny_teacher, out, "--max-train-samples", "16", "--max-steps", "2", "--save-steps", "2",
                    "--keep-checkpoints")  # (a run that reads every row once: auto builds the cache)

    def resume(cache: str) -> str:
        (out / "metrics.json").unlink()  # as if stopped after its last checkpoint
        capsys.readouterr()
        assert main([*args, "--teacher-cache", cache]) == 0
        return capsys.readouterr().out

    assert main(args) == 0
    assert json.loads((out / "checkpoint-2" / "dynakd_launch.json").read_text())["teacher_cache"] is True
    said = ("note: resuming from checkpoint-2, whose steps read the teacher's features from a cache; this start reads "
            "the live teacher (teacher_cache off), so the weights will differ slightly from an uninterrupted run's")
    assert said in resume("off")
    assert said in resume("off")  # (its steps read the cache, whatever the run's record says now)
    assert "note: resuming" not in resume("auto")  # the cache again

    assert main([*args, "--teacher-cache", "off", "--overwrite"]) == 0
    assert "whose steps read the live teacher; this start reads the teacher's features from a cache (teacher_cache " \
        "auto)" in resume("auto")
    # a run shorter than an epoch: auto read no cache, and the live teacher again is the same run
    short = run_args(tiny_teacher, tmp_path / "short", "--max-train-samples", "32", "--max-steps", "2",
                     "--save-steps", "2", "--keep-checkpoints")
    assert main(short) == 0
    assert json.loads((tmp_path / "short" / "checkpoint-2" / "dynakd_launch.json").read_text())["teacher_cache"] \
        is False
    (tmp_path / "short" / "metrics.json").unlink()
    capsys.readouterr()
    assert main([*short, "--teacher-cache", "off"]) == 0
    assert "note: resuming" not in capsys.readouterr().out
    (tmp_path / "short" / "metrics.json").unlink()  # nor is the cache's storage a difference where none was read
    assert main([*short, "--set", "teacher_cache_dtype=float32"]) == 0
    (tmp_path / "short" / "metrics.json").unlink()
    assert main(short) == 0  # (and back)
    # a checkpoint from before they recorded it: its run's setting tells where it can (off, a folder), not auto
    launch = tmp_path / "short" / "checkpoint-2" / "dynakd_launch.json"
    launch.write_text(json.dumps({k: v for k, v in json.loads(launch.read_text()).items() if k != "teacher_cache"}))
    for before, said in (("auto", False), ("off", True)):
        record = tmp_path / "short" / "dynakd.yaml"
        record.write_text(yaml.safe_dump(yaml.safe_load(record.read_text()) | {"teacher_cache": before}))
        (tmp_path / "short" / "metrics.json").unlink()
        capsys.readouterr()
        assert main([*short, "--teacher-cache", str(tmp_path / "cache")]) == 0
        assert ("whose steps read the live teacher" in capsys.readouterr().out) == said


def test_non_finite_loss_stops_with_the_last_good_state(tiny_teacher, tmp_path, capsys, monkeypatch):
    """Step 3 gets NaN features on the way into the EMA reference: the deviation term turns NaN, the run stops, and
    the saved state is that of step 2 (its EMA reference finite), a whole checkpoint to resume from."""
    import dynakd.distiller as distiller_module

    calls = {"n": 0}
    pool = distiller_module.pool

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        x, mask = pool(*args, **kwargs)
        return (x * float("nan") if calls["n"] == 3 else x), mask

    monkeypatch.setattr(distiller_module, "pool", poisoned)  # the references' pooling: one call per step
    out = tmp_path / "run"
    err = run_error(capsys, run_args(tiny_teacher, out, "--save-steps", "0"))
    assert "non-finite loss at step 3: term 'dyn/deviation' is nan" in err
    assert f"the last good state (step 2) is saved in {out / 'checkpoint-2'}" in err
    state = torch.load(out / "checkpoint-2" / "dynakd_distiller.pt")
    assert torch.isfinite(state["ref_s"]).all() and torch.isfinite(state["aligner.running_plan"]).all()
    check_checkpoint(out / "checkpoint-2")  # whole: a later run resumes from it (as the kill tests show)


def test_a_non_finite_loss_keeps_the_regular_checkpoint_of_the_step_before(tiny_teacher, tmp_path, capsys,
                                                                           monkeypatch):
    """With --save-steps 2, checkpoint-2 is written at the end of step 2, its random state that of a step boundary.
    A non-finite loss in step 3 saved over it from the middle of step 3; now it keeps it."""
    import dynakd.distiller as distiller_module
    from dynakd.trainer import DistillationTrainer

    calls, saves = {"n": 0}, []
    pool, save = distiller_module.pool, DistillationTrainer._save_checkpoint

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        x, mask = pool(*args, **kwargs)
        return (x * float("nan") if calls["n"] == 3 else x), mask

    def counted(self, *args, **kwargs):
        saves.append(self.state.global_step)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(distiller_module, "pool", poisoned)
    monkeypatch.setattr(DistillationTrainer, "_save_checkpoint", counted)
    out = tmp_path / "run"
    err = run_error(capsys, run_args(tiny_teacher, out, "--save-steps", "2"))
    assert f"the last good state (step 2) is saved in {out / 'checkpoint-2'}" in err
    assert saves == [2]  # the regular save only
    check_checkpoint(out / "checkpoint-2")


# Two epochs of 4 steps (64 rows, batch 16), evaluation at the end of each epoch and
# length-grouped batches (the defaults): a resume at an epoch's end or inside the second epoch.
EPOCHS = [*SETTINGS, "--batch-size", "16", "--keep-checkpoints"]


@pytest.mark.parametrize("checkpoint,every", [("checkpoint-4", "4"), ("checkpoint-6", "2")])
def test_resume_in_a_later_epoch_gives_the_same_weights(tiny_teacher, tmp_path_factory, tmp_path, checkpoint, every):
    """Each epoch's length-grouped order is drawn from the seed and the epoch (``EpochLengthGroupedSampler``), and
    evaluation leaves the random streams alone: checkpoint-4 is written before the first epoch's evaluation, which the
    resumed run does not replay; checkpoint-6 resumes mid-epoch, skipping the epoch's first batches."""
    full = tmp_path_factory.mktemp("two-epochs") / "run"
    assert main(run_args(tiny_teacher, full, *EPOCHS, "--save-steps", every)) == 0
    out = tmp_path / "run"
    out.mkdir()
    (out / "dynakd.yaml").write_text((full / "dynakd.yaml").read_text())
    shutil.copytree(full / checkpoint, out / checkpoint)
    assert main(run_args(tiny_teacher, out, *EPOCHS, "--save-steps", every)) == 0
    assert json.loads((out / "metrics.json").read_text())["train"]["resumed_from"] == checkpoint
    assert_same_weights(full, out)


def test_a_held_plan_resumes_where_it_was(tiny_teacher, tmp_path_factory, tmp_path):
    """``align.plan_every`` 4: checkpoint-6 is written while the plan of step 5 is held (for steps 6 to 8); the resumed
    run holds it for steps 7 and 8 too, as the uninterrupted run does, rather than compute one at step 7."""
    held = [*EPOCHS, "--save-steps", "2", "--align", "ot", "--set", "align.plan_every=4"]
    full = tmp_path_factory.mktemp("held") / "run"
    assert main(run_args(tiny_teacher, full, *held)) == 0
    out = tmp_path / "run"
    out.mkdir()
    (out / "dynakd.yaml").write_text((full / "dynakd.yaml").read_text())
    shutil.copytree(full / "checkpoint-6", out / "checkpoint-6")
    assert int(torch.load(out / "checkpoint-6" / "dynakd_distiller.pt")["aligner.held_for"]) == 2
    assert main(run_args(tiny_teacher, out, *held)) == 0
    assert_same_weights(full, out)


def test_evaluating_more_often_does_not_change_training(tiny_teacher, tmp_path):
    """The evaluation's data loader draws a seed from the global generator; evaluation runs under a fork of it, so
    dropout and batch order (and so the weights) do not depend on how often a run evaluates."""
    rare, often = tmp_path / "rare", tmp_path / "often"
    assert main(run_args(tiny_teacher, rare, "--max-steps", "4", "--save-steps", "0")) == 0
    assert main(run_args(tiny_teacher, often, "--max-steps", "4", "--save-steps", "0", "--eval-steps", "1")) == 0
    assert_same_weights(rare, often)


def test_non_finite_loss_with_gradient_accumulation_restores_the_state_before_the_step(tiny_teacher, tmp_path,
                                                                                      capsys, monkeypatch):
    """Two micro-batches per step, NaN in the second of step 2: the first had already moved the EMA references, so
    the state put back is the one from before the step's first micro-batch (2 reference updates, not 3)."""
    import dynakd.distiller as distiller_module

    micro = {"n": 0}
    forward, pool = distiller_module.Distiller.forward, distiller_module.pool

    def counted(self, *args, **kwargs):
        micro["n"] += 1
        return forward(self, *args, **kwargs)

    def poisoned(*args, **kwargs):
        x, mask = pool(*args, **kwargs)
        return (x * float("nan") if micro["n"] == 4 else x), mask

    monkeypatch.setattr(distiller_module.Distiller, "forward", counted)
    monkeypatch.setattr(distiller_module, "pool", poisoned)
    out = tmp_path / "run"
    err = run_error(capsys, run_args(tiny_teacher, out, "--save-steps", "0", "--batch-size", "4",
                                     "--gradient-accumulation-steps", "2"))
    assert "non-finite loss at step 2: term 'dyn/deviation' is nan" in err
    state = torch.load(out / "checkpoint-1" / "dynakd_distiller.pt")
    assert int(state["ref_steps"]) == 2 and torch.isfinite(state["ref_s"]).all()


def test_each_epoch_order_reaches_the_sampler_in_a_sharded_resumed_loader(tiny_teacher, tmp_path, monkeypatch):
    """The Trainer sets the epoch through the data loader, which does not reach the sampler behind accelerate's
    BatchSamplerShard (several processes) after skip_first_batches (a resumed epoch): the trainer sets it itself."""
    from accelerate.data_loader import prepare_data_loader, skip_first_batches
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    from dynakd import DistillationTrainer, Distiller, build_config, build_student
    from dynakd.data.sampler import EpochLengthGroupedSampler

    rows = Dataset.from_dict({"input_ids": [[2] + [7] * n + [3] for n in range(1, 33)], "labels": [0, 1] * 16})
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, report_to=[], use_cpu=True,
                             train_sampling_strategy="group_by_length", remove_unused_columns=False, seed=3)
    trainer = DistillationTrainer(model=build_student(teacher, 2), args=args, train_dataset=rows, teacher=teacher,
                                  distiller=Distiller(build_config({"method": "kd"}), student_layers=2,
                                                      teacher_layers=4, student_width=32, teacher_width=32))
    loader = trainer.get_train_dataloader()
    sampler = trainer._epoch_sampler
    assert isinstance(sampler, EpochLengthGroupedSampler)
    sharded = skip_first_batches(prepare_data_loader(loader.base_dataloader if hasattr(loader, "base_dataloader")
                                                     else loader, num_processes=2, process_index=0,
                                                     put_on_device=False), 2)
    seen = []
    monkeypatch.setattr(Trainer, "_run_epoch", lambda self, **kwargs: seen.append(sampler.epoch))
    trainer._run_epoch(model=None, epoch=3, train_dataloader=sharded)
    assert seen == [3]
    again = EpochLengthGroupedSampler(4, lengths=sampler.lengths, seed=3)
    again.set_epoch(3)
    assert list(again) == list(sampler) != list(EpochLengthGroupedSampler(4, lengths=sampler.lengths, seed=3))


def test_a_resumed_run_takes_the_commands_cadence(tmp_path):
    """The Trainer restores the logging, evaluation and saving steps from the checkpoint's trainer_state.json after
    computing them from its arguments: a run resumed with another --eval-steps kept the old one. The callback puts
    this command's back before the first step."""
    from transformers import TrainerState, TrainingArguments

    from dynakd.callbacks import StepsOfThisRun

    state = TrainerState(logging_steps=500, eval_steps=500, save_steps=500, max_steps=40)  # as the checkpoint had them
    args = TrainingArguments(output_dir=str(tmp_path), eval_strategy="steps", eval_steps=0.25, logging_steps=5,
                             save_steps=10, report_to=[], use_cpu=True)
    StepsOfThisRun().on_train_begin(args, state, None)
    assert (state.logging_steps, state.eval_steps, state.save_steps) == (5, 10, 10)


def interrupt_at(monkeypatch, step: int, interrupt) -> None:
    """Training steps call ``interrupt()`` once the run has trained ``step`` steps (Ctrl-C, a SIGTERM)."""
    from dynakd import trainer

    train_step = trainer.DistillationTrainer.training_step

    def training_step(self, *args, **kwargs):
        if self.state.global_step == step:
            interrupt()
        return train_step(self, *args, **kwargs)

    monkeypatch.setattr(trainer.DistillationTrainer, "training_step", training_step)


def ctrl_c():
    raise KeyboardInterrupt


def test_ctrl_c_says_which_checkpoint_the_same_command_resumes_from(tiny_teacher, tmp_path, capsys, monkeypatch):
    """Ctrl-C printed "dynakd: interrupted" alone, though a checkpoint was there to resume from."""
    interrupt_at(monkeypatch, 6, ctrl_c)
    out = tmp_path / "run"
    assert main(run_args(tiny_teacher, out)) == 130
    assert capsys.readouterr().err.splitlines()[-1] == \
        f"dynakd: interrupted; {out / 'checkpoint-4'} is saved: the same command resumes from it"
    interrupt_at(monkeypatch, 6, ctrl_c)
    other = tmp_path / "other"  # (with --overwrite the same command starts again: a sweep cell's, the demo's)
    assert main(run_args(tiny_teacher, other, "--overwrite")) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "dynakd: interrupted"
    monkeypatch.undo()
    assert main(run_args(tiny_teacher, out, "--max-steps", "8")) == 0
    assert f"resuming from {out / 'checkpoint-4'}" in capsys.readouterr().out


def test_a_sigterm_ends_a_run_as_ctrl_c_does(tiny_teacher, tmp_path, capsys, monkeypatch):
    """A cluster preempting a job sends SIGTERM, which ended a run without a word (Ctrl-C says which checkpoint the
    same command resumes from). The handler is the command's own: it is the default again afterwards."""
    interrupt_at(monkeypatch, 6, lambda: os.kill(os.getpid(), signal.SIGTERM))
    out = tmp_path / "run"
    assert main(run_args(tiny_teacher, out)) == 143
    assert capsys.readouterr().err.splitlines()[-1] == \
        f"dynakd: terminated (SIGTERM); {out / 'checkpoint-4'} is saved: the same command resumes from it"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_run_stopped_before_its_first_checkpoint_says_so_and_gives_way(tiny_teacher, tmp_path, capsys,
                                                                         monkeypatch):
    """Ctrl-C before the first checkpoint said "interrupted" alone; the folder then refused the command with any
    other setting as a different run, to be --overwritten, though it held nothing to lose."""
    interrupt_at(monkeypatch, 3, ctrl_c)
    out = tmp_path / "run"
    assert main(run_args(tiny_teacher, out, "--eval-steps", "2")) == 130
    assert capsys.readouterr().err.splitlines()[-1] == \
        "dynakd: interrupted; no checkpoint was saved yet: the same command starts the run again"
    assert (out / "alignment.json").is_file() and not list(out.glob("checkpoint-*"))
    monkeypatch.undo()
    assert main(run_args(tiny_teacher, out, "--lr", "1e-4")) == 0
    said = capsys.readouterr().out
    assert said.count(f"note: {out} holds a start of another run (differs in: lr 5e-05 -> 0.0001) that stopped before "
                      "its first checkpoint: this run replaces it") == 1  # (once, as it replaces it)
    assert json.loads((out / "alignment.json").read_text())["step"] == 8
    # a finished one is still refused
    assert main(run_args(tiny_teacher, out, "--lr", "2e-4")) == 2
    assert "already holds a different run (differs in: lr 0.0001 -> 0.0002)" in capsys.readouterr().err
    # and its kept checkpoints are no run to resume: the command it was started with is refused too (it is finished)
    assert main(run_args(tiny_teacher, out, "--lr", "1e-4", "--keep-checkpoints", "--overwrite")) == 0
    assert main(run_args(tiny_teacher, out, "--lr", "2e-4")) == 2
    err = capsys.readouterr().err
    assert "already holds a different run (differs in: " in err and "resumes" not in err, err
