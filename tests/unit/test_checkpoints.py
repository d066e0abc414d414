"""Checkpoint folders: which ones count, what makes one whole, and the atomic rename (milliseconds, no models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dynakd.checkpoints import LAUNCH, check_checkpoint, latest_checkpoint, publish, remove_partial, save_launch
from dynakd.errors import DynaKDError


def fake_checkpoint(folder: Path, layout: str = "plain", processes: int = 1) -> Path:
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    torch.save({"ref_s": torch.zeros(2)}, folder / "dynakd_distiller.pt")
    save_launch(folder, {"processes": processes, "per_device_batch": 8, "gradient_accumulation_steps": 1})
    for name in ["rng_state.pth"] if processes == 1 else [f"rng_state_{i}.pth" for i in range(processes)]:
        torch.save({}, folder / name)
    if layout == "plain":
        save_file({"w": torch.ones(3)}, folder / "model.safetensors")
        torch.save({}, folder / "optimizer.pt")
        torch.save({}, folder / "scheduler.pt")
    elif layout == "fsdp":  # sharded model and optimizer folders
        (folder / "pytorch_model_fsdp_0").mkdir()
        (folder / "optimizer_0").mkdir()
        torch.save({}, folder / "scheduler.pt")
    else:  # DeepSpeed keeps model, optimizer and scheduler in global_stepN/
        (folder / "global_step4").mkdir()
    return folder


@pytest.mark.parametrize("layout", ["plain", "fsdp", "deepspeed"])
def test_whole_checkpoints_pass(tmp_path, layout):
    check_checkpoint(fake_checkpoint(tmp_path / "checkpoint-4", layout))


def test_only_finished_checkpoints_count(tmp_path):
    fake_checkpoint(tmp_path / "checkpoint-4")
    fake_checkpoint(tmp_path / "checkpoint-12")
    (tmp_path / ".partial-checkpoint-16" / "checkpoint-16").mkdir(parents=True)  # a killed write
    (tmp_path / "checkpoint-20.txt").write_text("not a folder")
    assert latest_checkpoint(tmp_path).name == "checkpoint-12"  # by step, not by name
    remove_partial(tmp_path)
    assert not (tmp_path / ".partial-checkpoint-16").exists() and latest_checkpoint(tmp_path).name == "checkpoint-12"


def test_missing_and_truncated_files_are_named(tmp_path):
    folder = fake_checkpoint(tmp_path / "checkpoint-4")
    (folder / "dynakd_distiller.pt").unlink()
    with pytest.raises(DynaKDError, match="incomplete \\(missing dynakd_distiller.pt\\)"):
        check_checkpoint(folder)
    fake_checkpoint(tmp_path / "checkpoint-8")
    model = tmp_path / "checkpoint-8" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-4])
    with pytest.raises(DynaKDError, match="model.safetensors: .*not fully covered.*resume from checkpoint-4"):
        check_checkpoint(tmp_path / "checkpoint-8")


@pytest.mark.parametrize("layout", ["plain", "fsdp"])
def test_a_checkpoint_without_its_scheduler_or_a_random_state_is_incomplete(tmp_path, layout):
    """Without scheduler.pt the Trainer loads neither optimizer nor scheduler, and without a process's RNG state it
    restores none, both without a word (an INFO log for the RNG): the resumed run drifted from the uninterrupted one."""
    folder = fake_checkpoint(tmp_path / "checkpoint-4", layout, processes=2)
    (folder / "scheduler.pt").unlink()
    (folder / "rng_state_1.pth").unlink()
    with pytest.raises(DynaKDError, match=rf"checkpoint {folder} is incomplete \(missing scheduler.pt, "
                                          r"rng_state_1.pth\); delete it or pass --overwrite"):
        check_checkpoint(folder)
    one = fake_checkpoint(tmp_path / "one" / "checkpoint-4", layout)
    (one / "rng_state.pth").unlink()
    torch.save({}, one / "rng_state_0.pth")  # another launch's file is not this one's
    with pytest.raises(DynaKDError, match=r"incomplete \(missing rng_state.pth\)"):
        check_checkpoint(one)
    (one / LAUNCH).unlink()  # written before the launch record: any RNG state file will do, but one is needed
    check_checkpoint(one)
    (one / "rng_state_0.pth").unlink()
    with pytest.raises(DynaKDError, match=r"incomplete \(missing rng_state.pth\)"):
        check_checkpoint(one)


def test_a_deepspeed_checkpoint_needs_no_scheduler_file(tmp_path):
    """DeepSpeed keeps its scheduler in global_stepN/ (the Trainer writes scheduler.pt only for one of its own, and
    fails loudly without it)."""
    folder = fake_checkpoint(tmp_path / "checkpoint-4", "deepspeed", processes=2)
    assert not (folder / "scheduler.pt").exists()
    check_checkpoint(folder)


def test_a_checkpoint_without_the_distillers_state_is_named_as_such(tmp_path):
    """It was said not to fit this run's distiller, as if it held another method's state."""
    from dynakd import Distiller, build_config
    from dynakd.checkpoints import load_distiller_state

    distiller = Distiller(build_config({"method": "kd"}), student_layers=2, teacher_layers=4, student_width=32,
                          teacher_width=32)
    folder = tmp_path / "checkpoint-4"
    folder.mkdir()
    with pytest.raises(DynaKDError, match=rf"^{folder} lacks dynakd_distiller.pt \(not a DynaKD checkpoint, or "
                                          r"incomplete\)$"):
        load_distiller_state(distiller, folder)


def test_a_checkpoint_of_another_aligner_is_refused_and_a_mismatch_names_its_keys(tmp_path):
    """From a library user's walkthrough (2026-12-07): an attention aligner's run resumed an OT run's checkpoint
    without a word (its running plan taken for its own), and a state that did not fit said only torch's first line
    ("Error(s) in loading state_dict for Distiller:"), not which keys."""
    from dynakd import Distiller, build_config
    from dynakd.checkpoints import DISTILLER_STATE, load_distiller_state, save_distiller_state

    def distiller(align):
        return Distiller(build_config({"method": "full", "align": {"name": align}}), student_layers=2,
                         teacher_layers=4, student_width=32, teacher_width=32)

    folder = tmp_path / "checkpoint-4"
    folder.mkdir()
    save_distiller_state(distiller("ot"), folder)
    load_distiller_state(distiller("ot"), folder)  # (its own: as ever)
    ot, attention = type(distiller("ot").aligner).__name__, type(distiller("attention").aligner).__name__
    with pytest.raises(DynaKDError, match=rf"^checkpoint {folder} does not fit this run's distiller: the distiller's "
                                          rf"state was saved with {ot} and this distiller has {attention}: resume "
                                          "with the aligner it was trained with$"):
        load_distiller_state(distiller("attention"), folder)
    state = torch.load(folder / DISTILLER_STATE, weights_only=True)
    del state["_extra_state"]["aligner"]  # (a state written before the aligner was recorded: keys alone tell)
    torch.save(state, folder / DISTILLER_STATE)
    with pytest.raises(DynaKDError, match=rf"^checkpoint {folder} does not fit this run's distiller \(Unexpected "
                                          r"key\(s\) in state_dict: \"aligner\.potential\"\.\)$"):
        load_distiller_state(distiller("attention"), folder)


def test_publish_is_a_rename_that_may_replace_the_same_step(tmp_path):
    staged = fake_checkpoint(tmp_path / ".partial-checkpoint-4" / "checkpoint-4")
    final = tmp_path / "checkpoint-4"
    fake_checkpoint(final)
    (final / "stale").write_text("from the earlier save")
    publish(staged, final)
    assert not staged.exists() and not (final / "stale").exists() and (final / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".partial-checkpoint-4.")] == []


def test_a_checkpoint_resumes_only_with_the_batches_of_the_run_that_wrote_it(tmp_path):
    """Resumed with another number of processes, per-process batch or gradient accumulation, the global batch changed,
    and with it the steps, the schedules and which rows the skipped batches held; the Trainer carried on without a
    word (the per-process batch and the accumulation were recorded but not compared: a Python caller's
    TrainingArguments are not checked against a run's dynakd.yaml)."""
    from dynakd.checkpoints import check_launch

    two = {"processes": 2, "per_device_batch": 8, "gradient_accumulation_steps": 1}
    save_launch(tmp_path, two)
    check_launch(tmp_path, two)
    with pytest.raises(DynaKDError, match=r"was written with 2 process\(es\) \(global batch 8 x 1 x 2\), and this "
                                          r"run has 1 process\(es\) \(global batch 8 x 1 x 1\): resume it with 2 "
                                          r"process\(es\), or start again with --overwrite"):
        check_launch(tmp_path, {**two, "processes": 1})
    with pytest.raises(DynaKDError, match=r"with 1 gradient accumulation step\(s\) \(global batch 8 x 1 x 2\), and "
                                          r"this run has 2 gradient accumulation step\(s\) \(global batch 8 x 2 x 2\)"):
        check_launch(tmp_path, {**two, "gradient_accumulation_steps": 2})
    # the same global batch, made otherwise: the dynamics forms that compare a batch's samples see other batches
    with pytest.raises(DynaKDError, match=r"with a per-process batch of 8 and 1 gradient accumulation step\(s\) "
                                          r"\(global batch 8 x 1 x 2\), and this run has a per-process batch of 4 "
                                          r"and 2 gradient accumulation step\(s\) \(global batch 4 x 2 x 2\): resume "
                                          r"it with a per-process batch of 8 and 1 gradient accumulation step\(s\)"):
        check_launch(tmp_path, {**two, "per_device_batch": 4, "gradient_accumulation_steps": 2})
    (tmp_path / LAUNCH).unlink()
    check_launch(tmp_path, {**two, "processes": 1})  # a checkpoint from before the file: not checked


def test_train_time_leaves_out_the_evaluations_between_steps():
    from types import SimpleNamespace

    from dynakd.runner import _train_record

    history = [{"step": 2, "eval_runtime": 3.0}, {"step": 4, "loss": 0.5},
               {"step": 4, "eval_validation_matched_runtime": 2.0}, {"step": 1, "eval_runtime": 9.0}]
    out = SimpleNamespace(global_step=4, training_loss=0.5)
    record = _train_record(out, 15.0, Path("run/checkpoint-1"), None, 1, history)  # the step-1 one ran before
    assert record["runtime_s"] == 10.0 and record["eval_runtime_s"] == 5.0 and record["steps_per_second"] == 0.3


def test_one_start_at_a_time_holds_a_run_folder(tmp_path, capsys, monkeypatch):
    """A second start in a run's folder (a requeued job, another terminal) resumed from checkpoints the first rotated
    away; it is refused at once, naming the holder. The lock goes with the run, on an error or Ctrl-C too, and is
    neither published nor taken for a file of the run's or the user's."""
    import errno
    import os
    import socket

    from dynakd import locks
    from dynakd.config import DistillConfig
    from dynakd.rundir import RUN_LOCK, check_output, published_files, run_lock

    out = tmp_path / "runs" / "s"
    with run_lock(out):
        with pytest.raises(DynaKDError, match=rf"^{out} is in use: process {os.getpid()} on {socket.gethostname()} is "
                                              r"training there \(two starts in one folder would resume from "
                                              r"checkpoints the other deletes\); wait for it to end, or stop it$"):
            with run_lock(out):
                pass
        (out / "model.safetensors").write_text("weights")
        assert published_files(out) == ["model.safetensors"]
    assert [p.name for p in out.iterdir()] == ["model.safetensors"]  # the lock file goes with the run
    with pytest.raises(KeyboardInterrupt):
        with run_lock(out):
            raise KeyboardInterrupt
    assert not locks.held(out / RUN_LOCK)
    (out / RUN_LOCK).write_text("4242 elsewhere\n")  # left by a killed start: no lock held, nothing foreign
    (out / "model.safetensors").unlink()
    assert check_output(DistillConfig(output=str(out)), "distill") == out
    with run_lock(out):
        assert (out / RUN_LOCK).read_text() == f"{os.getpid()} {socket.gethostname()}\n"
    with pytest.raises(DynaKDError):  # a start that fails before writing anything leaves no folder it made
        with run_lock(tmp_path / "new" / "run"):
            raise DynaKDError("no data")
    assert not (tmp_path / "new").exists() and out.is_dir()

    def no_locks(f, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks.fcntl, "flock", no_locks)
    monkeypatch.setattr(locks, "_said_unlocked", set())
    with run_lock(out):  # a file system without locks: trained unguarded, with a note
        pass
    assert f"note: cannot lock {out / RUN_LOCK} (No locks available); going on without the lock (nothing stops a " \
        "second start from training in this folder)" in capsys.readouterr().out
    # the lock file made for a lock it could not take is not left behind, nor the folder made for the run
    assert not (out / RUN_LOCK).exists()
    with pytest.raises(DynaKDError):
        with run_lock(tmp_path / "unlocked" / "run"):
            raise DynaKDError("no data")
    assert not (tmp_path / "unlocked").exists()
