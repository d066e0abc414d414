"""Teacher-output cache: built once, reused, equivalent to the live teacher, refused when stale."""

from __future__ import annotations

import json
import re

import pytest
import torch

from dynakd.cli import main

from .test_cli import distill_args


def train_metrics(out):
    return json.loads((out / "metrics.json").read_text())


def test_cache_matches_live_teacher(tiny_teacher, tmp_path):
    """The cached run reads the cache in a DataLoader worker, as the data pipeline does with workers."""
    live, cached = tmp_path / "live", tmp_path / "cached"
    extra = ["--method", "full", "--set", "dynamics.reference=dataset"]
    assert main(distill_args(tiny_teacher, live, *extra, "--teacher-cache", "off")) == 0
    assert main(distill_args(tiny_teacher, cached, *extra, "--teacher-cache", str(tmp_path / "c"),
                             "--set", "teacher_cache_dtype=float32", "--dataloader-num-workers", "1")) == 0
    assert "dataloader_num_workers: 1" in (cached / "dynakd.yaml").read_text()
    a, b = train_metrics(live), train_metrics(cached)
    from dynakd.rundir import home_relative  # (a temporary folder under $HOME is named from ~)

    assert a["train"]["teacher_cache"] is None and b["train"]["teacher_cache"] == home_relative(tmp_path / "c")
    assert b["train"]["loss"] == pytest.approx(a["train"]["loss"], rel=1e-4)
    assert b["eval"]["loss"] == pytest.approx(a["eval"]["loss"], rel=1e-4)


def test_cache_is_reused_and_refused_when_stale(tiny_teacher, tmp_path, capsys):
    from tests.conftest import make_tiny_bert

    cache = str(tmp_path / "c")
    shown = [a for a in distill_args(tiny_teacher, tmp_path / "a", "--method", "kd", "--teacher-cache", cache)
             if a != "--no-progress"]
    assert main(shown) == 0
    out, err = capsys.readouterr()
    assert "building the teacher cache" in out and "teacher cache: 100%" in err  # the pass has a bar of its own
    assert main(distill_args(tiny_teacher, tmp_path / "b", "--method", "pkd", "--teacher-cache", cache)) == 0
    out = capsys.readouterr().out
    assert "building the teacher cache" not in out and f"reading the teacher cache (48 rows) <- {cache}" in out
    other = make_tiny_bert(tmp_path / "other", layers=4, hidden=32, seed=7)
    assert main(distill_args(other, tmp_path / "c2", "--method", "kd", "--teacher-cache", cache)) == 2
    assert "was made for another teacher" in capsys.readouterr().err
    assert not (tmp_path / "c2").exists()  # no run folder left to refuse the corrected command as another run
    inside = tmp_path / "in"  # a cache folder inside the run's own folder
    assert main(distill_args(tiny_teacher, inside, "--method", "kd", "--teacher-cache", str(inside / "cache"))) == 0
    assert (inside / "cache" / "meta.json").is_file()
    assert main(distill_args(tiny_teacher, tmp_path / "c3", "--method", "kd", "--teacher-cache", cache,
                             "--set", "data_seed=1")) == 2  # the same number of rows, other rows
    assert "was made for other training data" in capsys.readouterr().err
    assert main(distill_args(tiny_teacher, tmp_path / "c4", "--method", "kd", "--teacher-cache", cache,
                             "--max-train-samples", "40")) == 2
    assert ("was made for other training data (48 rows, this run has 40); give another --teacher-cache folder (one "
            "holds one cache), --teacher-cache auto (a cache per teacher and data, kept apart), delete it to rebuild, "
            "or pass --teacher-cache off") in capsys.readouterr().err
    meta = json.loads((tmp_path / "c" / "meta.json").read_text())
    (tmp_path / "c" / "meta.json").write_text(json.dumps({**meta, "version": -1}))
    assert main(distill_args(tiny_teacher, tmp_path / "c5", "--method", "kd", "--teacher-cache", cache)) == 2
    assert "was written in another format (by another DynaKD version); delete it to rebuild" in capsys.readouterr().err


def test_runs_sharing_a_cache_folder_build_it_once(tiny_teacher, tmp_path, capsys):
    """A second run that wants the same cache while the first builds it waits for it, then reads it."""
    import threading

    from dynakd.locks import locked

    cache = tmp_path / "c"
    run = threading.Thread(target=main, args=(distill_args(tiny_teacher, tmp_path / "a", "--method", "kd",
                                                           "--teacher-cache", str(cache)),))
    with locked(cache.with_name(f".{cache.name}.lock")):  # stands in for a run building it right now
        run.start()
        run.join(timeout=3)
        assert run.is_alive() and not cache.exists()  # the run waits for the lock, building nothing
    run.join()
    out, err = capsys.readouterr()
    assert "building the teacher cache" in out and (cache / "meta.json").is_file()
    assert "teacher cache:" not in err  # --no-progress: no bar


@pytest.mark.parametrize("flags, reason", [(["--method", "static"], "method 'static'"),
                                           (["--method", "full", "--set", "hidden_weight=1.0"], "hidden_weight")])
def test_token_level_methods_fall_back_to_the_live_teacher(tiny_teacher, tmp_path, capsys, flags, reason):
    out = tmp_path / "run"
    assert main(distill_args(tiny_teacher, out, *flags, "--teacher-cache", str(tmp_path / "c"))) == 0
    assert f"teacher cache not used: {reason}" in capsys.readouterr().out
    assert train_metrics(out)["train"]["teacher_cache"] is None


def test_teacher_fingerprint_ignores_the_folder_and_label_names(tiny_teacher, tmp_path):
    import shutil

    import torch
    from transformers import AutoModelForSequenceClassification

    from dynakd.cache import teacher_fingerprint

    copy = shutil.copytree(tiny_teacher, tmp_path / "copy")
    a, b = (AutoModelForSequenceClassification.from_pretrained(p) for p in (tiny_teacher, copy))
    assert teacher_fingerprint(a) == teacher_fingerprint(b)
    named = AutoModelForSequenceClassification.from_pretrained(copy, id2label={0: "negative", 1: "positive"})
    assert teacher_fingerprint(named) == teacher_fingerprint(a)  # label names change no output
    with torch.no_grad():
        next(b.parameters()).add_(1.0)
    assert teacher_fingerprint(a) != teacher_fingerprint(b)


def test_features_beyond_float16_are_refused_rather_than_stored_as_inf(tiny_teacher, tmp_path, capsys):
    """float16 storage turned a teacher's large activations into inf, and the cached run stopped on a non-finite loss
    that the live teacher never gives."""
    import shutil

    import torch
    from transformers import AutoModelForSequenceClassification

    big = tmp_path / "big"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    with torch.no_grad():
        model.bert.encoder.layer[1].output.LayerNorm.weight.mul_(1e5)  # a middle layer's outputs near 1e5
    model.save_pretrained(big)
    for f in tiny_teacher.iterdir():
        if "token" in f.name or f.name == "vocab.txt":
            shutil.copy(f, big)
    cache = tmp_path / "c"
    assert main(distill_args(big, tmp_path / "a", "--method", "dynamics", "--teacher-cache", str(cache))) == 2
    err = capsys.readouterr().err
    assert "the teacher's pooled features reach 1" in err
    assert "beyond float16's range (65504): store them with --set teacher_cache_dtype=float32" in err
    assert not cache.exists() and not list(tmp_path.glob("c.tmp-*"))
    assert main(distill_args(big, tmp_path / "b", "--method", "dynamics", "--teacher-cache", str(cache),
                             "--set", "teacher_cache_dtype=float32")) == 0


def test_a_teacher_giving_non_finite_outputs_builds_no_cache(tiny_teacher, tmp_path, capsys):
    """A teacher whose outputs held NaN built a cache of them (the range check let NaN through, and float32 storage
    had none), and every run reading it stopped on a non-finite loss that blamed the learning rate."""
    import shutil

    import torch
    from transformers import AutoModelForSequenceClassification

    bad = tmp_path / "bad"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    with torch.no_grad():
        model.classifier.bias.fill_(float("nan"))  # every row's logits NaN, its features finite
    model.save_pretrained(bad)
    for f in tiny_teacher.iterdir():
        if "token" in f.name or f.name == "vocab.txt":
            shutil.copy(f, bad)
    cache = tmp_path / "c"
    assert main(distill_args(bad, tmp_path / "a", "--method", "kd", "--teacher-cache", str(cache),
                             "--set", "teacher_cache_dtype=float32")) == 2
    assert re.search(r"the teacher gives non-finite logits \(NaN or inf\) on training row\(s\) (\d+, ){5}\.\.\.: a "
                     r"cache would keep them; check the teacher \(its weights, its precision\) and its inputs\n",
                     capsys.readouterr().err)
    assert not cache.exists() and not list(tmp_path.glob("c.tmp-*"))


def test_a_cache_stored_in_another_dtype_or_a_file_is_refused(tiny_teacher, tmp_path, capsys):
    cache = str(tmp_path / "c")
    assert main(distill_args(tiny_teacher, tmp_path / "a", "--method", "kd", "--teacher-cache", cache)) == 0
    capsys.readouterr()
    assert main(distill_args(tiny_teacher, tmp_path / "b", "--method", "kd", "--teacher-cache", cache,
                             "--set", "teacher_cache_dtype=float32")) == 2
    assert (f"teacher cache {cache} stores float16 features and this run asks for float32 (teacher_cache_dtype); give "
            "another --teacher-cache folder, or delete it to rebuild") in capsys.readouterr().err
    (tmp_path / "afile").write_text("")
    afile = tmp_path / "afile"
    for given, message in ((afile, "is a file, not a folder"), (afile / "c", "is inside a file")):
        assert main(distill_args(tiny_teacher, tmp_path / "d", "--teacher-cache", str(given))) == 2
        assert f"teacher_cache: {given} {message}" in capsys.readouterr().err
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("mine")
    assert main(distill_args(tiny_teacher, tmp_path / "e", "--method", "kd", "--teacher-cache", str(junk))) == 2
    assert f"--teacher-cache {junk} is a non-empty folder without a cache (no meta.json)" in capsys.readouterr().err


def test_an_auto_cache_of_another_format_is_rebuilt(tiny_teacher, tmp_path, capsys, monkeypatch):
    """An auto cache's folder is its own (named by teacher, data and dtype): one another DynaKD version wrote is
    rebuilt, where a --teacher-cache DIR of another format is refused (the test above)."""
    from dynakd.cache import FORMAT_VERSION

    monkeypatch.setenv("DYNAKD_CACHE", str(tmp_path / "caches"))
    assert main(distill_args(tiny_teacher, tmp_path / "a", "--method", "kd", "--teacher-cache", "auto")) == 0
    [meta] = (tmp_path / "caches").glob("teacher-outputs/*/meta.json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "version": -1}))
    capsys.readouterr()
    assert main(distill_args(tiny_teacher, tmp_path / "b", "--method", "kd", "--teacher-cache", "auto")) == 0
    out = capsys.readouterr().out
    assert "written in another format (another DynaKD version): rebuilding it" in out
    assert json.loads(meta.read_text())["version"] == FORMAT_VERSION
    meta.write_text("{not json")  # unreadable: rebuilt too, not a traceback
    assert main(distill_args(tiny_teacher, tmp_path / "c", "--method", "kd", "--teacher-cache", "auto")) == 0
    assert json.loads(meta.read_text())["version"] == FORMAT_VERSION


def test_a_run_padded_otherwise_builds_an_auto_cache_of_its_own(tiny_teacher, tmp_path, capsys, monkeypatch):
    """A row's teacher states follow, in their last bits, the length its batch pads it to: a run padded to a multiple
    of 16, to end with a live run's weights bit for bit, read the cache a run padded otherwise had built."""
    monkeypatch.setenv("DYNAKD_CACHE", str(tmp_path / "caches"))
    assert main(distill_args(tiny_teacher, tmp_path / "a", "--method", "kd")) == 0
    assert main(distill_args(tiny_teacher, tmp_path / "b", "--method", "kd", "--set", "pad_to_multiple_of=16")) == 0
    assert capsys.readouterr().out.count("building the teacher cache") == 2
    names = [p.name for p in (tmp_path / "caches" / "teacher-outputs").iterdir() if p.is_dir()]
    default = "float16" if torch.cuda.is_available() else "pad1"  # (8, as every cache before the setting: no suffix)
    assert sorted(n.rsplit("-", 1)[-1] for n in names) == sorted([default, "pad16"]), names
    # meta.json records the padding too (a --teacher-cache DIR's name says nothing of it)
    for name in names:
        meta = tmp_path / "caches" / "teacher-outputs" / name / "meta.json"
        record = json.loads(meta.read_text())
        assert record["pad_to_multiple_of"] == {"pad16": 16, "pad1": 1, "float16": 8}[name.rsplit("-", 1)[-1]]
        if name.endswith("pad16"):  # a cache written before the padding was recorded is still read
            meta.write_text(json.dumps({k: v for k, v in record.items() if k != "pad_to_multiple_of"}))
    assert main(distill_args(tiny_teacher, tmp_path / "c", "--method", "kd", "--set", "pad_to_multiple_of=16")) == 0
    out = capsys.readouterr().out
    assert "reading the teacher cache" in out and "building" not in out
    # a --teacher-cache DIR is read whatever padding built it, with a note where meta.json says another
    [pad1] = [p for p in (tmp_path / "caches" / "teacher-outputs").iterdir() if p.name.endswith(default)]
    assert main(distill_args(tiny_teacher, tmp_path / "d", "--method", "kd", "--teacher-cache", str(pad1), "--set",
                             "pad_to_multiple_of=16")) == 0
    assert (f"note: the teacher cache {pad1} was built from batches padded to a multiple of "
            f"{1 if default == 'pad1' else 8}, and this run pads to 16") in capsys.readouterr().out


def test_a_damaged_auto_cache_is_rebuilt_and_a_damaged_folder_of_yours_refused(tiny_teacher, tmp_path, capsys,
                                                                              monkeypatch):
    """An auto cache without its meta.json was refused as '--teacher-cache <dir> is a non-empty folder without a
    cache' (a flag the run was never given), and one with an array cut short as unreadable, until deleted by hand.
    The auto folder is DynaKD's own: rebuilt. A --teacher-cache DIR is the user's: refused, never deleted."""
    import shutil

    monkeypatch.setenv("DYNAKD_CACHE", str(tmp_path / "caches"))
    assert main(distill_args(tiny_teacher, tmp_path / "a", "--method", "kd", "--teacher-cache", "auto")) == 0
    [folder] = [meta.parent for meta in (tmp_path / "caches").glob("teacher-outputs/*/meta.json")]
    mine = shutil.copytree(folder, tmp_path / "mine")
    logits = (folder / "logits.npy").read_bytes()
    (folder / "meta.json").unlink()
    capsys.readouterr()
    assert main(distill_args(tiny_teacher, tmp_path / "b", "--method", "kd", "--teacher-cache", "auto")) == 0
    assert f"the teacher cache {folder} is damaged (no meta.json): rebuilding it" in capsys.readouterr().out
    assert (folder / "meta.json").is_file()
    (folder / "logits.npy").write_bytes(logits[:-8])  # a copy stopped partway
    assert main(distill_args(tiny_teacher, tmp_path / "c", "--method", "kd", "--teacher-cache", "auto")) == 0
    out = capsys.readouterr().out
    assert f"the teacher cache {folder} is damaged (mmap length is greater than file size): rebuilding it" in out
    assert (folder / "logits.npy").read_bytes() == logits
    (mine / "logits.npy").write_bytes(logits[:-8])
    assert main(distill_args(tiny_teacher, tmp_path / "d", "--method", "kd", "--teacher-cache", str(mine))) == 2
    assert (f"teacher cache {mine} is unreadable (mmap length is greater than file size); delete it to rebuild"
            in capsys.readouterr().err)
    (mine / "meta.json").unlink()
    assert main(distill_args(tiny_teacher, tmp_path / "e", "--method", "kd", "--teacher-cache", str(mine))) == 2
    assert f"--teacher-cache {mine} is a non-empty folder without a cache (no meta.json)" in capsys.readouterr().err
    assert (mine / "logits.npy").read_bytes() == logits[:-8]  # left as it was


def test_teacher_fingerprint_takes_scalar_tensors_and_keeps_existing_keys(tiny_teacher):
    """A 0-dim parameter or buffer failed in ``view(torch.uint8)`` (RuntimeError). Flattening first changes no byte of
    any other tensor: existing caches, keyed by the fingerprint, are still found."""
    import hashlib

    import torch
    from transformers import AutoModelForSequenceClassification

    from dynakd.cache import teacher_fingerprint

    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    config = model.config.to_dict()
    for key in ("_name_or_path", "id2label", "label2id"):
        config.pop(key, None)
    before = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())  # as computed until now
    for name, tensor in sorted(model.state_dict().items()):
        before.update(name.encode())
        before.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    assert teacher_fingerprint(model) == before.hexdigest()[:16]
    assert any(t.dim() >= 2 for t in model.state_dict().values())
    model.register_buffer("temperature", torch.tensor(2.0))
    scaled = teacher_fingerprint(model)
    model.temperature.fill_(3.0)
    assert teacher_fingerprint(model) != scaled != before.hexdigest()[:16]


def test_auto_reads_a_cache_only_for_runs_it_would_build_one_for(tiny_teacher, tmp_path, capsys, monkeypatch):
    """A short run (fewer rows than the training set) trained on the live teacher on a clean machine and on the
    float16 cache where another run had built it: one command, two results. It says where such a cache is."""
    monkeypatch.setenv("DYNAKD_CACHE", str(tmp_path / "caches"))
    assert main(distill_args(tiny_teacher, tmp_path / "whole", "--method", "kd")) == 0  # every row: builds it
    assert "building the teacher cache" in capsys.readouterr().out
    assert main(distill_args(tiny_teacher, tmp_path / "short", "--method", "kd", "--max-steps", "1")) == 0
    out = capsys.readouterr().out  # (it said nothing, where its steps were slower than the run's before it)
    built = next((tmp_path / "caches" / "teacher-outputs").iterdir())
    assert ("teacher cache not used: the run reads 16 of its 48 training rows, and auto builds one for a run of one "
            "pass or more (--teacher-cache DIR builds or reads one for any run); one built for this teacher and these "
            f"rows is in {built} (give it as --teacher-cache to read it)\n") in out
    assert "reading the teacher cache" not in out
    assert train_metrics(tmp_path / "short")["train"]["teacher_cache"] is None
    assert main(distill_args(tiny_teacher, tmp_path / "other", "--method", "kd", "--max-steps", "1",
                             "--max-train-samples", "40")) == 0  # other rows: no cache of theirs, nothing more said
    assert "the run reads 16 of its 40 training rows, and auto builds one for a run of one pass or more " \
        "(--teacher-cache DIR builds or reads one for any run)\n" in capsys.readouterr().out


def test_auto_says_why_it_reads_no_cache_where_one_could_be_expected(tiny_teacher, tmp_path, capsys, monkeypatch):
    """A setting that keeps a cached method's teacher live (hidden_weight) is said with auto too, as with
    --teacher-cache DIR; a method or task that never reads a cache (static, extractive QA, task) says nothing."""
    monkeypatch.setenv("DYNAKD_CACHE", str(tmp_path / "caches"))
    assert main(distill_args(tiny_teacher, tmp_path / "a", "--method", "full", "--set", "hidden_weight=1.0",
                             "--max-steps", "1")) == 0
    out = capsys.readouterr().out
    assert out.count("teacher cache not used") == 1  # (the setting's reason, not the short run's besides)
    assert "teacher cache not used: hidden_weight compares hidden states token by token" in out
    for method in ("static", "task"):
        assert main(distill_args(tiny_teacher, tmp_path / method, "--method", method)) == 0
        assert "teacher cache" not in capsys.readouterr().out


def test_a_full_disk_while_the_cache_is_written_is_one_line_and_leaves_nothing(tiny_teacher, tmp_path, capsys,
                                                                             monkeypatch):
    """meta.json was written outside the clean-up: a full disk there left the temporary folder (its arrays) and a
    traceback."""
    import errno

    from dynakd import cache

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "_write_meta", full)  # (the last write of a build)
    assert main(distill_args(tiny_teacher, tmp_path / "run", "--method", "kd", "--teacher-cache",
                             str(tmp_path / "c"))) == 2
    assert (f"the teacher cache could not be written to {tmp_path}: No space left on device; free space there, or "
            "give --teacher-cache a folder on a larger disk (or off)") in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("c")) == []



def test_a_disk_filled_after_the_space_check_is_found_when_the_arrays_are_reserved(tiny_teacher, tmp_path, capsys,
                                                                                 monkeypatch):
    """Another writer filling the disk after the space check killed the build later with SIGBUS, without a message
    (the arrays are memory-mapped sparse files): their blocks are now allocated up front."""
    import errno
    import os

    reserved = []

    def fallocate(fd, offset, length):
        reserved.append(length)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", fallocate, raising=False)
    assert main(distill_args(tiny_teacher, tmp_path / "run", "--method", "kd", "--teacher-cache",
                             str(tmp_path / "c"))) == 2
    assert "the teacher cache could not be written to" in capsys.readouterr().err and reserved[0] > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("c")]


def test_a_cache_folder_given_empty_is_built_inside_it(tiny_teacher, tmp_path, capsys, monkeypatch):
    """A --teacher-cache DIR that exists (a mount point, a container's volume) was built beside it and renamed into
    its place: on a mount point the rename failed after the whole teacher pass ("empty or remove that folder", of a
    folder already empty), and a parent the user may not write in ended in a traceback."""
    import os
    import socket
    import subprocess
    import sys

    import transformers

    from dynakd.cache import BUILD_PREFIX

    volume = tmp_path / "mnt" / "cache"
    volume.mkdir(parents=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = volume / f"{BUILD_PREFIX}{socket.gethostname()}-{gone.stdout.strip()}"  # a killed build's, inside
    dead.mkdir()
    (dead / "logits.npy").write_bytes(b"x")
    renamed = []
    real_rename = type(volume).rename
    monkeypatch.setattr(type(volume), "rename", lambda self, target: renamed.append(self) or real_rename(self, target))
    assert main(distill_args(tiny_teacher, tmp_path / "a", "--method", "kd", "--teacher-cache", str(volume))) == 0
    assert not renamed and sorted(os.listdir(tmp_path / "mnt")) == [".cache.lock", "cache"]  # nothing beside it
    # the dead build gone
    assert sorted(p.name for p in volume.iterdir()) == ["cls.npy", "logits.npy", "mean.npy", "meta.json"]
    meta = json.loads((volume / "meta.json").read_text())
    assert meta["transformers"] == transformers.__version__
    assert main(distill_args(tiny_teacher, tmp_path / "b", "--method", "kd", "--teacher-cache", str(volume))) == 0
    assert f"reading the teacher cache (48 rows) <- {volume}" in capsys.readouterr().out
    # built under another transformers, whose version the teacher's config (and so its fingerprint) records
    (volume / "meta.json").write_text(json.dumps({**meta, "teacher_fingerprint": "0", "transformers": "4.0.0"}))
    assert main(distill_args(tiny_teacher, tmp_path / "c", "--method", "kd", "--teacher-cache", str(volume))) == 2
    assert (f"teacher cache {volume} was made for another teacher, or the same one under transformers 4.0.0 (this is "
            f"{transformers.__version__}, whose outputs may differ)") in capsys.readouterr().err

    real_mkdir = type(volume).mkdir

    def refused(self, *args, **kwargs):  # a folder the user may not write in
        if "root-owned" in str(self):
            raise PermissionError(13, "Permission denied")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(type(volume), "mkdir", refused)  # (as root, chmod does not stop writes)
    assert main(distill_args(tiny_teacher, tmp_path / "d", "--method", "kd",
                             "--teacher-cache", str(tmp_path / "root-owned" / "alice"))) == 2
    err = capsys.readouterr().err
    assert f"the teacher cache could not be written to {tmp_path / 'root-owned'} (Permission denied): give " \
           "--teacher-cache a folder you can write to, or run the teacher live with --teacher-cache off" in err
    assert "Traceback" not in err


def test_a_cache_damaged_in_place_is_named_by_the_non_finite_loss_it_gives(tiny_teacher, tmp_path, capsys):
    """A cache damaged in place at its size (no checksum) is read as it is: the non-finite loss that followed advised
    a lower learning rate alone. The failing batch's cached values are checked, and the cache named."""
    import numpy as np

    from dynakd.features import CACHED_PREFIX, EXAMPLE_ID
    from dynakd.trainer import DistillationTrainer

    cache = tmp_path / "c"
    assert main(distill_args(tiny_teacher, tmp_path / "a", "--method", "kd", "--teacher-cache", str(cache))) == 0
    logits = np.load(cache / "logits.npy", mmap_mode="r+")
    logits[:] = np.nan  # every row: the first batch holds some
    logits.flush()
    del logits
    capsys.readouterr()
    assert main(distill_args(tiny_teacher, tmp_path / "b", "--method", "kd", "--teacher-cache", str(cache))) == 2
    err = capsys.readouterr().err
    assert "non-finite loss at step 1: term 'logit' is nan" in err
    assert (f"the teacher cache {cache} holds non-finite values for this batch (training rows ") in err
    assert (", ...): it was damaged since it was built (or the teacher gives them); delete that folder to rebuild it, "
            "or pass --teacher-cache off, and train again with overwrite") in err
    # finite cached values: the usual advice, the cache named beside it; a live teacher's: the usual advice alone
    trainer = object.__new__(DistillationTrainer)
    trainer._cache_folder = cache
    batch = {EXAMPLE_ID: torch.tensor([3, 4]), CACHED_PREFIX + "logits": torch.zeros(2, 2),
             CACHED_PREFIX + "mean": torch.tensor([[[1.0]], [[float("inf")]]], dtype=torch.float16)}
    assert trainer._cache_advice(batch).startswith(f"the teacher cache {cache} holds non-finite values for this "
                                                   "batch (training row 4): it was damaged")
    batch[CACHED_PREFIX + "mean"] = torch.ones(2, 1, 1)
    assert trainer._cache_advice(batch) == (
        f"lower the learning rate (lr) or the term's weight, or check the data (and the teacher cache {cache} this "
        "run reads: delete it to rebuild, or pass --teacher-cache off), and train again")
    trainer._cache_folder = None
    assert trainer._cache_advice(batch) is None


def test_an_auto_cache_that_cannot_be_written_leaves_the_run_to_the_live_teacher(tiny_teacher, tmp_path, capsys,
                                                                               monkeypatch):
    """From a batch user's walkthrough (2026-12-07): with a home the run cannot write (a cluster's read-only one), a
    default run ended in "the teacher cache could not be written to ~/.cache/...": auto asks for a cache where it
    helps, so the run trains with the live teacher and says why. A --teacher-cache DIR of one's own is still refused."""
    real_mkdir = type(tmp_path).mkdir

    def refused(self, *args, **kwargs):  # (as root, chmod does not stop writes)
        if "read-only" in str(self):
            raise PermissionError(13, "Permission denied")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "mkdir", refused)
    monkeypatch.setenv("DYNAKD_CACHE", str(tmp_path / "read-only" / "dynakd"))
    out = tmp_path / "run"
    assert main(distill_args(tiny_teacher, out, "--method", "kd", "--teacher-cache", "auto")) == 0
    said = capsys.readouterr().out
    root = tmp_path / "read-only" / "dynakd" / "teacher-outputs"
    assert f"teacher cache not used: the teacher cache could not be written to {root} (Permission denied): the " \
           "teacher runs live" in said
    assert train_metrics(out)["train"]["teacher_cache"] is None
    assert main(distill_args(tiny_teacher, tmp_path / "b", "--method", "kd",
                             "--teacher-cache", str(tmp_path / "read-only" / "mine"))) == 2
    from dynakd import cache

    monkeypatch.setattr(cache, "launched_processes", lambda: 2)  # processes that would each decide: refused
    assert main(distill_args(tiny_teacher, tmp_path / "c", "--method", "kd", "--teacher-cache", "auto")) == 2
    monkeypatch.undo()
    monkeypatch.setenv("DYNAKD_CACHE", str(tmp_path / "small"))  # a disk without room, found before the pass
    monkeypatch.setattr(cache, "_check_space", lambda tmp, need: (_ for _ in ()).throw(cache.CacheNotWritten(
        f"the teacher cache needs 1 GiB and {tmp.parent} has 0 B free", "give ...")))
    assert main(distill_args(tiny_teacher, tmp_path / "d", "--method", "kd", "--teacher-cache", "auto")) == 0
    assert "has 0 B free: the teacher runs live" in capsys.readouterr().out
