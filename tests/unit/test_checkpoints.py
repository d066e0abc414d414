"""Checkpoint folders: which ones count, what makes one whole, and the atomic rename (milliseconds, no models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dynakd.checkpoints import check_checkpoint, latest_checkpoint, publish, remove_partial
from dynakd.errors import DynaKDError


def fake_checkpoint(folder: Path, layout: str = "plain") -> Path:
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    torch.save({"ref_s": torch.zeros(2)}, folder / "dynakd_distiller.pt")
    if layout == "plain":
        save_file({"w": torch.ones(3)}, folder / "model.safetensors")
        torch.save({}, folder / "optimizer.pt")
        torch.save({}, folder / "scheduler.pt")
    elif layout == "fsdp":  # sharded model and optimizer folders
        (folder / "pytorch_model_fsdp_0").mkdir()
        (folder / "optimizer_0").mkdir()
    else:  # DeepSpeed keeps model and optimizer in global_stepN/
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


def test_publish_is_a_rename_that_may_replace_the_same_step(tmp_path):
    staged = fake_checkpoint(tmp_path / ".partial-checkpoint-4" / "checkpoint-4")
    final = tmp_path / "checkpoint-4"
    fake_checkpoint(final)
    (final / "stale").write_text("from the earlier save")
    publish(staged, final)
    assert not staged.exists() and not (final / "stale").exists() and (final / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".partial-checkpoint-4.")] == []
