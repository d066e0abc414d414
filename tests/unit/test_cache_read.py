"""The teacher cache is read by the data pipeline: batches carry the cached outputs of their rows, in batch order."""

from __future__ import annotations

import json
import pickle

import numpy as np
import torch
from torch.utils.data import DataLoader

from dynakd.cache import FORMAT_VERSION, CacheReadingCollator, TeacherCache, cached_features
from dynakd.features import CACHED_PREFIX, EXAMPLE_ID, split_inputs

ROWS, CLASSES, LAYERS, WIDTH = 10, 3, 3, 4


def make_cache(folder) -> TeacherCache:
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.save(folder / "logits.npy", rng.standard_normal((ROWS, CLASSES)).astype(np.float32))
    for pooling in ("mean", "cls"):
        np.save(folder / f"{pooling}.npy", rng.standard_normal((ROWS, LAYERS, WIDTH)).astype(np.float16))
    (folder / "meta.json").write_text(json.dumps({"version": FORMAT_VERSION, "rows": ROWS, "dtype": "float16"}))
    return TeacherCache(folder).use(("mean",))


def collate(features):  # module level, so that spawned workers can unpickle it
    batch = {"input_ids": torch.tensor([[f["row"] + 1] for f in features])}
    if EXAMPLE_ID in features[0]:
        batch[EXAMPLE_ID] = torch.tensor([f[EXAMPLE_ID] for f in features])
    return batch


def test_training_batches_carry_their_rows_cached_outputs(tmp_path):
    cache = make_cache(tmp_path / "c")
    ids = [7, 2, 9, 2]  # unsorted, with a repeat
    batch = CacheReadingCollator(collate, cache)([{"row": i, EXAMPLE_ID: i} for i in ids])
    assert set(batch) == {"input_ids", EXAMPLE_ID, CACHED_PREFIX + "logits", CACHED_PREFIX + "mean"}
    assert torch.equal(batch[CACHED_PREFIX + "logits"], torch.from_numpy(cache.logits[ids]))
    assert torch.equal(batch[CACHED_PREFIX + "mean"], torch.from_numpy(cache.pooled["mean"][ids]))  # batch first
    teacher = cached_features(batch)
    assert torch.equal(teacher.pooled_layers("mean"), batch[CACHED_PREFIX + "mean"].transpose(0, 1))  # [L+1, B, d]
    student, teacher_inputs, _ = split_inputs(batch)
    assert set(student) == set(teacher_inputs) == {"input_ids"}  # never passed to a model


def test_evaluation_batches_pass_unchanged(tmp_path):
    batch = CacheReadingCollator(collate, make_cache(tmp_path / "c"))([{"row": 1}, {"row": 2}])
    assert set(batch) == {"input_ids"} and cached_features(batch) is None


def test_workers_reopen_the_cache_instead_of_copying_it(tmp_path):
    cache = make_cache(tmp_path / "c")
    assert len(pickle.dumps(cache)) < 500  # the folder and poolings, not the arrays
    rows = [{"row": i, EXAMPLE_ID: i} for i in range(ROWS)]
    loader = DataLoader(rows, batch_size=4, collate_fn=CacheReadingCollator(collate, cache), num_workers=1,
                        multiprocessing_context="spawn")  # spawn pickles the collator (fork would share it)
    read = torch.cat([b[CACHED_PREFIX + "mean"] for b in loader])
    assert torch.equal(read, torch.from_numpy(np.array(cache.pooled["mean"])))


def test_training_waits_for_the_device_once_a_step(tmp_path):
    """Batches go to a GPU without blocking (pinned); the Trainer's NaN filter, a second test of the loss that
    DistillationTrainer already checks before its backward pass, is off."""
    from dynakd.config import build_config
    from dynakd.runner import training_args

    args = training_args(build_config({"task": "sst2", "dataloader_num_workers": 2}), tmp_path)
    assert args.logging_nan_inf_filter is False and args.dataloader_num_workers == 2
    assert args.accelerator_config.non_blocking == torch.cuda.is_available() == args.dataloader_pin_memory


def test_a_build_killed_on_this_machine_is_cleaned_up(tmp_path):
    """A build killed partway left its temporary folder for ever (a model's features for a whole training set)."""
    import os
    import socket
    import subprocess
    import sys

    from dynakd.cache import _remove_dead_builds

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    dead, alive = tmp_path / f"c.tmp-{host}-{gone.stdout.strip()}", tmp_path / f"c.tmp-{host}-{os.getpid()}"
    other = tmp_path / "c.tmp-elsewhere-1"  # another machine's build: its processes are not ours to ask about
    for folder in (dead, alive, other):
        folder.mkdir()
    _remove_dead_builds(tmp_path / "c")
    assert not dead.exists() and alive.exists() and other.exists()


def test_an_interrupted_build_leaves_nothing_behind(tmp_path, monkeypatch):
    import pytest

    from dynakd import cache as module

    def interrupted(*args, **kwargs):
        yield np.arange(2), torch.zeros(2, CLASSES), {"mean": torch.zeros(2, LAYERS, WIDTH)}
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "teacher_pass", interrupted)
    with pytest.raises(KeyboardInterrupt):
        module.build_cache(tmp_path / "c", None, list(range(ROWS)), None, batch_size=2, device="cpu",
                           dtype="float16", fingerprints={})
    assert list(tmp_path.iterdir()) == []
