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


def test_a_build_killed_on_this_machine_is_cleaned_up(tmp_path, monkeypatch):
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
    another = tmp_path / f"d.tmp-{host}-{gone.stdout.strip()}"  # a dead build of another cache
    another.mkdir()
    _remove_dead_builds(tmp_path / "c")
    assert not dead.exists() and alive.exists() and other.exists()
    assert another.exists()  # beside a folder of the user's: only this cache's builds are touched
    monkeypatch.setenv("DYNAKD_CACHE", str(tmp_path / "home"))
    root = tmp_path / "home" / "teacher-outputs"
    root_dead = root / f"d.tmp-{host}-{gone.stdout.strip()}"
    root_dead.mkdir(parents=True)
    busy = root / f"e.tmp-{host}-{gone.stdout.strip()}"  # a build whose process this one cannot see (a container)
    busy.mkdir()
    from dynakd.locks import locked

    with locked(root / ".e.lock"):  # ... holds its cache's lock: left alone
        _remove_dead_builds(root / "c")  # in DynaKD's own root: every cache's (an auto name may never come again)
    assert not root_dead.exists() and busy.exists()


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


def test_an_unreadable_cache_is_named_not_a_traceback(tmp_path):
    """meta.json that is JSON but not an object (``[]``) failed in ``check`` with an AttributeError; an empty .npy
    file with an EOFError."""
    import pytest

    from dynakd.errors import DynaKDError

    folder = tmp_path / "c"
    make_cache(folder)
    (folder / "meta.json").write_text("[]")
    with pytest.raises(DynaKDError, match=r"c is unreadable \(meta.json is not a JSON object\); delete it to rebuild"):
        TeacherCache(folder)
    (folder / "meta.json").write_text(json.dumps({"version": FORMAT_VERSION, "rows": ROWS, "dtype": "float16"}))
    (folder / "cls.npy").write_bytes(b"")
    with pytest.raises(DynaKDError, match=r"c is unreadable \(No data left in file\); delete it to rebuild"):
        TeacherCache(folder)


def fake_pass(*args, **kwargs):  # stands in for the teacher: two batches of five rows
    for rows in (np.arange(5), np.arange(5, ROWS)):
        yield rows, torch.ones(5, CLASSES), {p: torch.ones(5, LAYERS, WIDTH) for p in ("mean", "cls")}


def test_a_cache_folder_that_is_a_link_is_built_where_it_leads(tmp_path, monkeypatch):
    """``--teacher-cache cache`` with ``cache`` a link to an empty folder: the whole pass ran, the rename onto the link
    failed, the run was told the cache 'appeared while building it', and the temporary folder stayed."""
    from dynakd import cache as module

    monkeypatch.setattr(module, "teacher_pass", fake_pass)
    (tmp_path / "disk").mkdir()
    (tmp_path / "here").mkdir()
    link = tmp_path / "here" / "cache"
    link.symlink_to(tmp_path / "disk")
    cache = module.build_cache(link, None, list(range(ROWS)), None, batch_size=5, device="cpu", dtype="float16",
                               fingerprints={})
    assert link.is_symlink() and (tmp_path / "disk" / "meta.json").is_file() and cache.folder == link
    assert np.array_equal(cache.pooled["mean"], np.ones((ROWS, LAYERS, WIDTH)))
    assert [p.name for p in (tmp_path / "here").iterdir()] == ["cache"]  # no temporary folder left on either side
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk", "here"]


def test_a_build_that_loses_the_race_checks_the_winners_cache(tmp_path, monkeypatch):
    """Another machine sharing the folder finished first: its cache was used unchecked, though it may hold another
    teacher's outputs; and a folder that is no cache, appearing meanwhile, left the temporary folder behind."""
    import shutil

    import pytest

    from dynakd import cache as module
    from dynakd.errors import DynaKDError

    folder = tmp_path / "c"
    mine = {"teacher_fingerprint": "mine", "data_fingerprint": "d"}

    def won_by(meta):
        def other_builder_finishes_first(*args, **kwargs):
            yield from fake_pass()
            make_cache(folder)
            if meta is not None:
                (folder / "meta.json").write_text(json.dumps(meta))
            else:
                (folder / "meta.json").unlink()
        return other_builder_finishes_first

    meta = {"version": FORMAT_VERSION, "rows": ROWS, "dtype": "float16"}
    for winner, message in (({**meta, **mine, "teacher_fingerprint": "theirs"}, "was made for another teacher"),
                            (None, "could not be moved into .*c \\(Directory not empty; did something else appear")):
        monkeypatch.setattr(module, "teacher_pass", won_by(winner))
        with pytest.raises(DynaKDError, match=message):
            module.build_cache(folder, None, list(range(ROWS)), None, batch_size=5, device="cpu", dtype="float16",
                               fingerprints=mine)
        assert [p.name for p in tmp_path.iterdir()] == ["c"]  # our temporary folder is gone
        shutil.rmtree(folder)
    monkeypatch.setattr(module, "teacher_pass", won_by({**meta, **mine}))
    cache = module.build_cache(folder, None, list(range(ROWS)), None, batch_size=5, device="cpu", dtype="float16",
                               fingerprints=mine)
    assert cache.meta["teacher_fingerprint"] == "mine" and [p.name for p in tmp_path.iterdir()] == ["c"]


def test_a_disk_too_small_for_the_cache_is_refused_before_it_is_written(tmp_path, monkeypatch):
    """The arrays are sparse memory-mapped files: a full disk killed the build with SIGBUS, without a message."""
    import collections

    import pytest

    from dynakd import cache as module
    from dynakd.errors import DynaKDError

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(module, "teacher_pass", fake_pass)
    monkeypatch.setattr(module.shutil, "disk_usage", lambda path: usage(2**31, 2**30, 2**30))
    rows = range(10**8)  # logits 1.2e9 bytes, each pooling 2.4e9 (float16): 6e9 in all, never allocated
    with pytest.raises(DynaKDError) as e:
        module.build_cache(tmp_path / "c", None, rows, None, batch_size=5, device="cpu", dtype="float16",
                           fingerprints={})
    assert str(e.value) == (f"the teacher cache needs 5.6 GiB and {tmp_path} has 1.0 GiB free: give --teacher-cache "
                            "DIR on a bigger disk, or run the teacher live with --teacher-cache off")
    assert list(tmp_path.iterdir()) == []


def test_a_file_system_without_locks(tmp_path, monkeypatch, capsys):
    """``fcntl.flock`` failing (NFS without its lock service: ENOLCK; Lustre without flock: ENOSYS) was a raw
    traceback. A lock the caller can do without (the teacher cache's) is a note, once; a lock it needs is a one-line
    error."""
    import errno

    import pytest

    from dynakd import locks
    from dynakd.errors import DynaKDError

    def no_locks(f, op):
        if op == locks.fcntl.LOCK_EX:
            raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks.fcntl, "flock", no_locks)
    monkeypatch.setattr(locks, "_said_unlocked", set())
    ran = []
    for _ in range(2):
        with locks.locked(tmp_path / ".c.lock", required=False):
            ran.append(True)
    assert ran == [True, True]
    out = capsys.readouterr().out
    assert out.count("note: cannot lock") == 1 and f"{tmp_path / '.c.lock'} (No locks available)" in out
    with pytest.raises(DynaKDError, match=r"cannot lock .*\.results\.lock \(No locks available: its file system may "
                                          r"take no locks, as NFS without its lock service or Lustre without "
                                          r"flock do\); put the folder on a file system that takes them"):
        with locks.locked(tmp_path / ".results.lock"):
            ran.append(False)
    assert ran == [True, True]


def test_a_lock_held_elsewhere_is_said_before_the_wait(tmp_path, capsys):
    """A run waiting for another's teacher cache waited minutes without a word."""
    import fcntl
    import threading
    import time

    from dynakd.locks import locked

    path = tmp_path / ".c.lock"
    holder = path.open("w")
    fcntl.flock(holder, fcntl.LOCK_EX)
    got = []

    def wait():
        with locked(path, waiting="waiting for another run building the teacher cache c"):
            got.append(True)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    assert not got  # still waiting
    fcntl.flock(holder, fcntl.LOCK_UN)
    holder.close()
    waiter.join(5)
    assert got and f"waiting for another run building the teacher cache c (lock {path})" in capsys.readouterr().out
    with locked(path, waiting="not said: nobody holds it"):
        pass
    assert "not said" not in capsys.readouterr().out


def test_the_data_fingerprint_counts_token_types_where_a_row_has_two_segments():
    """The same ids split into segments otherwise are other inputs to a BERT-like teacher (its token-type
    embeddings): another fingerprint. Types of one segment (all 0) change nothing, so caches built before types
    counted keep their key."""
    from datasets import Dataset

    from dynakd.cache import data_fingerprint, fingerprint_columns

    ids = [[101, 7, 8, 102, 9, 102], [101, 5, 102]]

    def fingerprint(**columns):
        rows = Dataset.from_dict({"input_ids": ids, **columns})
        return data_fingerprint(rows, fingerprint_columns(rows.column_names))

    one_segment = fingerprint(token_type_ids=[[0] * 6, [0] * 3])
    pair = fingerprint(token_type_ids=[[0, 0, 0, 0, 1, 1], [0] * 3])
    assert one_segment == fingerprint() != pair != fingerprint(token_type_ids=[[0, 0, 1, 1, 1, 1], [0] * 3])
    assert fingerprint_columns(["teacher_input_ids", "teacher_token_type_ids", "token_type_ids", "input_ids"]) == [
        "teacher_input_ids", "teacher_token_type_ids"]


def test_the_cached_teacher_keeps_its_dtype_where_deepspeed_casts_a_batch():
    """transformers' _prepare_input casts every floating-point batch entry to DeepSpeed's dtype: the cache's float16
    features and float32 logits became bf16, rounded a second time. The student's inputs are still prepared as the
    Trainer prepares them."""
    from types import SimpleNamespace

    from dynakd.trainer import DistillationTrainer

    trainer = DistillationTrainer.__new__(DistillationTrainer)  # (only what _prepare_input reads)
    trainer.is_deepspeed_enabled = True
    trainer.args = SimpleNamespace(device=torch.device("cpu"))
    plugin = SimpleNamespace(hf_ds_config=SimpleNamespace(dtype=lambda: torch.bfloat16))
    trainer.accelerator = SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=plugin))
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "extra": torch.ones(2),
             "cached_teacher.logits": torch.full((2, 2), 1 / 3), "cached_teacher.mean": torch.ones(2, 3, 4).half()}
    out = trainer._prepare_inputs(batch)
    assert out["input_ids"].dtype == torch.long and out["extra"].dtype == torch.bfloat16  # (the Trainer's casting)
    assert out["cached_teacher.logits"].dtype == torch.float32 and out["cached_teacher.mean"].dtype == torch.float16
    assert torch.equal(out["cached_teacher.logits"], batch["cached_teacher.logits"])
