"""Teacher-output cache: one pass of the frozen teacher over the training set, then training reads rows instead of
running the teacher.

The teacher runs in ``eval()`` (no dropout), so its outputs do not depend on the step: reading them from disk is the
same computation up to storage precision. The pass runs in float32 whatever the run's precision (a live teacher
runs under the run's autocast: under ``--bf16`` on CPU ~10x further from float32 than ``float16`` storage;
``benchmarks/speed/teacher_precision.py``), so one cache serves runs of every precision. A cache folder holds
memory-mapped arrays keyed by training-set row (``logits.npy`` float32 ``[N, C]``; ``mean.npy`` and ``cls.npy``
``[N, L+1, d]`` in the chosen dtype) and ``meta.json`` with the fingerprints of the teacher's weights and of the
tokenised training data (and, since caches recorded it, the multiple its batches padded to); a cache made for
another teacher or other data is refused. Token-level features (``static``, ``pooling: tokens``, ``sensitivity``)
need the live teacher: ``cache_blocker`` says why and the run falls back to it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import torch
import transformers
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data.tasks import get_task
from .distiller import token_level
from .distributed import is_first_on_machine, is_first_process, launched_processes, note, world_size
from .errors import DynaKDError
from .features import (
    CACHED_PREFIX,
    EXAMPLE_ID,
    TEACHER_PREFIX,
    Features,
    capture,
    capture_rule,
    forward_columns,
    split_inputs,
)
from .locks import held, locked
from .losses.dynamics import pool
from .notes import tell

POOLINGS = ("mean", "cls")
FORMAT_VERSION = 2  # 2: the teacher fingerprint leaves out label names


def cache_blocker(cfg) -> str | None:
    """Why this config needs the live teacher, or None if cached outputs are enough. The cache holds logits and
    pooled features of unperturbed inputs, so whatever compares the models token by token (``token_level``: QA's
    per-token logits, hidden states, token pooling, perturbed embeddings) needs the teacher itself."""
    if cfg.method == "task":
        return "method 'task' uses no teacher"
    if reason := token_level(cfg, qa=get_task(cfg.task).is_qa):
        return reason
    if cfg.terms["feature"] not in _POOLINGS:  # a term added since: the cache holds the pooled features named there
        return f"method '{cfg.method}' reads features the cache does not hold"
    return None


def teacher_fingerprint(teacher) -> str:
    """Hash of the teacher's weights and config (works for local folders and hub ids alike).

    The folder the teacher was loaded from is left out: the same teacher under another path (a copy, a link) reuses
    its cache; so are the label names, which change no output. A teacher whose features DynaKD reads otherwise than
    transformers returns them (a decoder's class token and top layer: ``features.capture_rule``) says so too: a cache
    built before that rule holds other features. An encoder's fingerprint is what it always was. The config's
    ``transformers_version`` stays in: another transformers may compute the teacher's outputs otherwise (its default
    attention, say), so an upgrade builds an ``auto`` cache anew, and a ``--teacher-cache DIR`` says which version
    built it."""
    config = teacher.config.to_dict()
    for key in ("_name_or_path", "id2label", "label2id"):
        config.pop(key, None)
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(teacher.state_dict().items()):
        h.update(name.encode())
        # flat first: a 0-dim tensor (a scalar parameter or buffer) has no last dimension to view as bytes; the bytes
        # of every other tensor are the same either way, and so are the fingerprints existing caches are keyed by
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    if capture_rule(teacher).changes:
        h.update(b"class token: last real token; top layer: the last block's output")
    return h.hexdigest()[:16]


def teacher_ids(columns) -> str:
    """The column of the teacher's token ids: its own encoding where the two models tokenize differently."""
    return f"{TEACHER_PREFIX}input_ids" if f"{TEACHER_PREFIX}input_ids" in columns else "input_ids"


def fingerprint_columns(columns) -> list[str]:
    """The columns a cache's data fingerprint hashes: the teacher's token ids, and its token types where the rows have
    them (the same ids with another split into segments give other outputs)."""
    types = f"{TEACHER_PREFIX}token_type_ids" if teacher_ids(columns).startswith(TEACHER_PREFIX) else "token_type_ids"
    return [teacher_ids(columns)] + ([types] if types in columns else [])


def data_fingerprint(dataset, columns: list[str]) -> str:
    """Hash of the teacher-side token ids of every training row, in order (``fingerprint_columns``). A token-type
    column of zeros alone (one segment per row) adds nothing: the fingerprints of caches built before token types
    counted stay what they were."""
    h = hashlib.sha256()
    for col in columns:
        if col.endswith("token_type_ids") and not any(np.any(row) for row in dataset[col]):
            continue
        for row in dataset[col]:
            h.update(np.asarray(row, dtype=np.int64).tobytes())
            h.update(b"|")
    return h.hexdigest()[:16]


def cache_home() -> Path:
    """Where DynaKD keeps what it computes once for many runs: ``$DYNAKD_CACHE``, else ``~/.cache/dynakd``."""
    return Path(os.environ.get("DYNAKD_CACHE", "~/.cache/dynakd")).expanduser()


class CacheNotWritten(DynaKDError):
    """A cache build that could not write its folder: ``what`` happened, then ``advice``."""

    def __init__(self, what: str, advice: str, sep: str = ": "):
        super().__init__(f"{what}{sep}{advice}")
        self.what = what


def default_cache_root() -> Path:
    return cache_home() / "teacher-outputs"


class TeacherCache:
    """Read side: ``rows(ids)`` returns the cached teacher outputs of those training rows (``CacheReadingCollator``)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        try:
            self.meta = _read_meta(self.folder)
            self.logits, self.pooled = _read_arrays(self.folder)
        except _UNREADABLE as e:
            raise DynaKDError(f"teacher cache {self.folder} is unreadable ({e}); delete it to rebuild") from None
        self.poolings: tuple[str, ...] = POOLINGS
        # the datasets (by datasets' own fingerprint) whose rows are the cache's, in its order: checked against it,
        # built into it, or numbered in the order it was built (``vouch``); others are checked (``check_rows``)
        self.vouched: set[str] = set()

    def use(self, poolings: tuple[str, ...]) -> TeacherCache:
        """This cache reading only these poolings in ``rows`` (the ones a run's losses use): a view sharing its
        arrays, so that two trainers given one cache each read their own."""
        view = object.__new__(TeacherCache)
        view.__dict__.update(self.__dict__)
        view.poolings = tuple(poolings)
        return view

    def vouch(self, dataset) -> None:
        """Take ``dataset``'s rows as the cache's, in its order, without hashing them again in ``check_rows``."""
        if (fingerprint := getattr(dataset, "_fingerprint", None)) is not None:
            self.vouched.add(fingerprint)

    def rows(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """The cached outputs of training rows ``ids`` (on the CPU) as batch entries: ``cached_teacher.logits``
        ``[B, C]`` and ``cached_teacher.<pooling>`` ``[B, L+1, d]``, batch first like every other entry."""
        ids = np.asarray(ids)
        idx = np.sort(ids)  # memory-mapped arrays read fastest in file order
        order = torch.as_tensor(np.argsort(np.argsort(ids)))  # back to batch order
        arrays = {"logits": self.logits} | {p: self.pooled[p] for p in self.poolings}
        return {CACHED_PREFIX + name: torch.from_numpy(np.ascontiguousarray(a[idx]))[order]
                for name, a in arrays.items()}

    def __getstate__(self) -> dict:
        # DataLoader workers started by spawn (macOS, Windows) receive the collator pickled: reopen the memory maps
        # there instead of copying the arrays into the pickle.
        return {"folder": self.folder, "poolings": self.poolings}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["folder"])
        self.poolings = state["poolings"]

    def dataset_mean(self, pooling: str) -> torch.Tensor:
        """Exact training-set mean ``[L+1, d]`` of the pooled teacher features."""
        a = self.pooled[pooling]
        total = sum(a[i : i + 4096].astype(np.float64).sum(0) for i in range(0, len(a), 4096))
        return torch.from_numpy(total / max(len(a), 1)).float()

    def check(self, fingerprints: dict[str, str], rows: int, dtype: str | None = None) -> None:
        """Refuse a cache of another format, teacher or data, or (``dtype``) whose features are stored otherwise than
        the run asks (``teacher_cache_dtype``: float32 is asked for exactness)."""
        if self.meta.get("version") != FORMAT_VERSION:
            raise DynaKDError(f"teacher cache {self.folder} was written in another format (by another DynaKD "
                              "version); delete it to rebuild")
        if dtype is not None and self.meta.get("dtype") != dtype:
            raise DynaKDError(f"teacher cache {self.folder} stores {self.meta.get('dtype')} features and this run asks "
                              f"for {dtype} (teacher_cache_dtype); give another --teacher-cache folder, or delete it "
                              "to rebuild")
        if self.meta.get("rows") != rows:  # e.g. another --max-train-samples
            raise DynaKDError(f"teacher cache {self.folder} was made for other training data ({self.meta.get('rows')} "
                              f"rows, this run has {rows}){_OTHER_FOLDER}")
        for key, value in fingerprints.items():
            if self.meta.get(key) != value:
                what = "another teacher" if key == "teacher_fingerprint" else "other training data"
                if key == "teacher_fingerprint" and self.meta.get("transformers", transformers.__version__) != \
                        transformers.__version__:  # (the teacher's config records it, and the fingerprint hashes it)
                    what += (f", or the same one under transformers {self.meta['transformers']} (this is "
                             f"{transformers.__version__}, whose outputs may differ)")
                raise DynaKDError(
                    f"teacher cache {self.folder} was made for {what} "
                    f"({self.meta.get(key)} != {value}){_OTHER_FOLDER}"
                )

    def check_rows(self, dataset) -> None:
        """A cache given in Python (``DistillationTrainer(teacher_cache=...)``) against the rows it is read for: each
        row's ``example_id`` names its cached outputs, so every row needs one within the cache's rows; a dataset of
        all of them, in any order, holds the rows it was built from (their teacher-side token ids, where the cache
        records them and the dataset is not one vouched for). A dataset without columns or a length (streamed) is
        the caller's to match."""
        columns = getattr(dataset, "column_names", None)
        if columns is None or not hasattr(dataset, "__len__"):
            return
        if EXAMPLE_ID not in columns:
            raise DynaKDError(f"teacher_cache reads each row's outputs by its '{EXAMPLE_ID}' column, which "
                              "train_dataset lacks: add the row numbers the cache was built in "
                              f"(dataset.add_column('{EXAMPLE_ID}', list(range(len(dataset)))))")
        ids, n = np.asarray(dataset[EXAMPLE_ID]), int(self.meta.get("rows") or 0)
        if len(ids) and (ids.min() < 0 or ids.max() >= n):
            bad = int(ids.min() if ids.min() < 0 else ids.max())
            raise DynaKDError(f"train_dataset's {EXAMPLE_ID} {bad} names no row of teacher cache {self.folder}, which "
                              f"holds {n}: the cache was built from other rows")
        whole = len(ids) == n and np.array_equal(np.sort(ids), np.arange(n))
        vouched = getattr(dataset, "_fingerprint", None) in self.vouched
        if whole and not vouched and "data_fingerprint" in self.meta:  # (build_cache may be given none)
            rows = dataset.select(np.argsort(ids, kind="stable"))  # in the order the cache was built
            self.check({"data_fingerprint": data_fingerprint(rows, fingerprint_columns(columns))}, n)
            self.vouch(dataset)


BUILD_PREFIX = ".build-"  # a build inside a --teacher-cache folder given empty: .build-<host>-<pid>
_UNREADABLE = (OSError, ValueError, EOFError)  # EOFError: an empty .npy file
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left, or the user's quota spent


def _read_meta(folder: Path) -> dict:
    meta = json.loads((folder / "meta.json").read_text())
    if not isinstance(meta, dict):  # valid JSON, but not what a build writes
        raise ValueError("meta.json is not a JSON object")
    return meta


def _read_arrays(folder: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The memory-mapped logits and pooled features (a file cut short fails here, not when its rows are read)."""
    return (np.load(folder / "logits.npy", mmap_mode="r"),
            {p: np.load(folder / f"{p}.npy", mmap_mode="r") for p in POOLINGS})


# What to do about a cache made for another run: a --teacher-cache folder holds one cache, not one per teacher.
_OTHER_FOLDER = ("; give another --teacher-cache folder (one holds one cache), --teacher-cache auto (a cache per "
                 "teacher and data, kept apart), delete it to rebuild, or pass --teacher-cache off")


def cached_features(batch: dict[str, torch.Tensor]) -> Features | None:
    """The teacher's ``Features`` from a batch that ``CacheReadingCollator`` filled, else None."""
    if CACHED_PREFIX + "logits" not in batch:
        return None
    n = len(CACHED_PREFIX)
    pooled = {k[n:]: v.transpose(0, 1) for k, v in batch.items()
              if k.startswith(CACHED_PREFIX) and k != CACHED_PREFIX + "logits"}  # [L+1, B, d]
    return Features(logits=batch[CACHED_PREFIX + "logits"], hidden=(), mask=None, pooled=pooled)


class CacheReadingCollator:
    """Collates a batch, then adds the cached teacher outputs of its training rows (batches without ``example_id``,
    such as evaluation batches, pass unchanged).

    The read belongs to the data pipeline rather than the training step: it runs where batches are made (in the
    DataLoader's workers, if any), the tensors are pinned and moved to the device with the rest of the batch, and the
    step no longer copies the row ids back to the host, a copy that waits for every kernel already queued on a GPU.
    """

    def __init__(self, collator, cache: TeacherCache):
        self.collator, self.cache = collator, cache

    def __call__(self, features):
        batch = self.collator(features)
        if EXAMPLE_ID in batch:
            batch.update(self.cache.rows(batch[EXAMPLE_ID]))
        return batch


@torch.no_grad()
def teacher_pass(teacher, dataset, collator, *, batch_size: int, device, progress: bool = False,
                 desc: str = "teacher pass", precision=None):
    """Yield ``(rows, logits [B, C], {pooling: [B, L+1, d]})`` over every row of ``dataset``, teacher in eval mode.

    Rows go shortest first, so each batch is padded little (on SST-2, batches in dataset order are two thirds
    padding). Runs under a forked RNG, so a pre-pass leaves the run's random stream (and its batch order) untouched.
    ``progress``: a bar of rows (the pass over a large training set takes minutes before the first step), from the
    first process of each machine (each machine without a shared cache folder builds its own). ``precision``: the
    autocast to run under (a context manager: a trainer's ``accelerator.autocast()``, as its live teacher runs);
    float32 by default whatever the caller's, which a cache stores: it serves runs of every precision.
    """
    if columns := forward_columns(teacher):  # the encodings only: a dataset may still hold its texts and labels
        dataset = dataset.select_columns([c for c in dataset.column_names
                                          if c in columns - {"labels"} or c.startswith(TEACHER_PREFIX)])
    key = teacher_ids(dataset.column_names)
    order = np.argsort(np.fromiter((len(ids) for ids in dataset[key]), dtype=np.int64, count=len(dataset)),
                       kind="stable")
    teacher.eval()
    bar = tqdm(total=len(dataset), desc=desc, unit=" rows", leave=True,
               disable=not (progress and is_first_on_machine()))
    precision = precision or torch.autocast(torch.device(device).type, enabled=False)
    with torch.random.fork_rng(devices=[]), precision, bar:
        loader = DataLoader(dataset, batch_size=batch_size, sampler=order.tolist(), collate_fn=collator)
        for i, batch in enumerate(loader):
            _, t_inputs, _ = split_inputs({k: v.to(device) for k, v in batch.items()})
            feats = capture(teacher, t_inputs)  # as a live teacher's features are read (a decoder's class token)
            pooled = {p: pool(feats.hidden, feats.mask, p, feats.cls_index)[0][:, 0].transpose(0, 1)
                      for p in POOLINGS}  # [B, L+1, d]
            rows = order[i * batch_size : (i + 1) * batch_size]
            bar.update(len(rows))
            yield rows, feats.logits.float(), pooled


def live_dataset_mean(teacher, dataset, collator, *, batch_size: int, device, pooling: str,
                      progress: bool = False, precision=None) -> torch.Tensor:
    """Exact training-set mean ``[L+1, d]`` of the teacher's pooled features, without a cache (one pre-pass), in the
    precision the live teacher's features will have (``precision``: see ``teacher_pass``), so that they centre on it."""
    total, count = 0.0, 0
    for _, _, pooled in teacher_pass(teacher, dataset, collator, batch_size=batch_size, device=device,
                                     progress=progress, desc="teacher mean", precision=precision):
        total = total + pooled[pooling].double().sum(0)
        count += len(pooled[pooling])
    return (total / max(count, 1)).float()


def _remove_dead_builds(folder: Path) -> None:
    """Delete what builds killed on this machine left (a model's features for a whole training set: gigabytes): of
    this folder, and in DynaKD's own cache root of every cache (an ``auto`` folder is named by its teacher and data,
    so a killed build's name may never come again)."""
    own_root = folder.parent.resolve() == default_cache_root().resolve()
    for part in folder.glob(f"{BUILD_PREFIX}{socket.gethostname()}-*"):  # builds inside a folder given empty
        if _dead(part):
            shutil.rmtree(part, ignore_errors=True)
    for part in folder.parent.glob(f"{'*' if own_root else folder.name}.tmp-{socket.gethostname()}-*"):
        name = part.name.split(".tmp-")[0]
        # another cache's build may run in a process this one cannot see (a container sharing the host name and the
        # cache folder): its builder holds that cache's lock (this cache's is held by the caller)
        if _dead(part) and (name == folder.name or not held(_lock_file(part.parent / name))):
            shutil.rmtree(part, ignore_errors=True)


def _dead(build: Path) -> bool:
    """Whether the process a build folder is named by (``...-<pid>``, on this machine) has ended."""
    pid = build.name.rsplit("-", 1)[-1]
    return pid.isdigit() and not _running(int(pid))


def _lock_file(folder: Path) -> Path:
    """The lock of a cache folder: held by a run while it builds the cache there, or checks the one it finds."""
    return folder.with_name(f".{folder.name}.lock")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _write_meta(folder: Path, meta: dict) -> None:
    """The cache's record, written last: a folder holding it is a whole cache."""
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))


def build_cache(folder: Path, teacher, dataset, collator, *, batch_size: int, device, dtype: str,
                fingerprints: dict[str, str], progress: bool = False) -> TeacherCache:
    """One eval-mode pass of ``teacher`` over ``dataset`` into memory-mapped arrays; written atomically.

    A ``folder`` that is a link (``cache`` -> a folder on a bigger disk) is built where it leads: a rename cannot put
    a folder in a link's place, and the temporary folder belongs on the disk the cache will live on."""
    n = len(dataset)
    target = folder.resolve()
    _remove_dead_builds(target)
    # one per builder; in a folder given empty (a mount point, a container's volume, a folder made beforehand) the
    # build goes inside it, on its disk: a rename cannot replace a mount point, and the folder's parent may be another
    # disk, or not the user's to write in
    inside = target.is_dir()
    tmp = target / f"{BUILD_PREFIX}{socket.gethostname()}-{os.getpid()}" if inside else \
        target.with_name(f"{target.name}.tmp-{socket.gethostname()}-{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheNotWritten(f"the teacher cache could not be written to {tmp.parent} ({e.strerror or e})",
                              "give --teacher-cache a folder you can write to, or run the teacher live with "
                              "--teacher-cache off") from None
    try:
        _write_arrays(tmp, teacher, dataset, collator, batch_size=batch_size, device=device, dtype=dtype,
                      progress=progress)
        # (pad_to_multiple_of: the multiple its batches were padded to, 1 for none; absent from caches written
        # before it was recorded, and null for a collator that does not say)
        _write_meta(tmp, {"version": FORMAT_VERSION, "rows": n, "dtype": dtype, **fingerprints,
                          "transformers": transformers.__version__, "pad_to_multiple_of": padding_of(collator)})
    except BaseException as e:  # an error, Ctrl-C: the half-written arrays go (a killed process's, the next build's)
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            raise CacheNotWritten(f"the teacher cache could not be written to {tmp.parent}: {e.strerror}",
                                  "free space there, or give --teacher-cache a folder on a larger disk (or off)",
                                  sep="; ") from None
        raise
    try:
        _move_up(tmp, target) if inside else tmp.rename(target)
    except OSError as e:  # another process (e.g. on another machine sharing the folder) finished first: use its cache
        shutil.rmtree(tmp, ignore_errors=True)  # ours, whichever way: a model's features for a whole training set
        if not (target / "meta.json").is_file():
            raise DynaKDError(f"the teacher cache could not be moved into {folder} ({e.strerror}; did something else "
                              "appear there while it was built?): empty or remove that folder and run again") from None
        # checked as a cache found at the start is: the winner may be another machine's run for another teacher or
        # other data, sharing this --teacher-cache folder
        cache = TeacherCache(folder)
        cache.check(fingerprints, n, dtype)
        return cache
    return TeacherCache(folder)


def _move_up(tmp: Path, target: Path) -> None:
    """Move a build made inside ``target`` up into it, its record last (a folder holding it is a whole cache), unless
    another builder's cache is there first (``FileExistsError``, which ``build_cache`` answers as a rename's)."""
    if (target / "meta.json").is_file():
        raise FileExistsError(errno.EEXIST, "a cache is there already")
    for part in sorted(tmp.iterdir(), key=lambda p: p.name == "meta.json"):
        os.replace(part, target / part.name)
    tmp.rmdir()


def _write_arrays(tmp: Path, teacher, dataset, collator, *, batch_size: int, device, dtype: str,
                  progress: bool) -> None:
    n = len(dataset)
    arrays: dict[str, np.ndarray] = {}
    for rows, logits, pooled in teacher_pass(teacher, dataset, collator, batch_size=batch_size, device=device,
                                             progress=progress, desc="teacher cache"):
        outputs = {"logits": logits, **pooled}
        if not arrays:  # the first batch gives the shapes
            shapes = {name: ((n, *value.shape[1:]), np.dtype(np.float32 if name == "logits" else dtype))
                      for name, value in outputs.items()}
            _check_space(tmp, sum(int(np.prod(shape)) * np_dtype.itemsize for shape, np_dtype in shapes.values()))
            arrays = {name: np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=np_dtype, shape=shape)
                      for name, (shape, np_dtype) in shapes.items()}
            for name in arrays:
                _reserve(tmp / f"{name}.npy")
        for name, value in outputs.items():
            value = value.float().cpu().numpy()
            _check_finite(value, rows, name)
            if arrays[name].dtype != value.dtype:  # float16 storage
                _check_range(value, arrays[name].dtype)
            arrays[name][rows] = value
    for a in arrays.values():
        a.flush()


def _check_space(tmp: Path, need: int) -> None:
    """Refuse a build the disk cannot hold: the arrays are memory-mapped sparse files, so a full disk would show only
    when a page is written back, killing the process with SIGBUS, without a message (``_reserve`` then allocates
    them, for a disk filled after this check)."""
    free = shutil.disk_usage(tmp.parent).free
    if need > free:
        raise CacheNotWritten(f"the teacher cache needs {_size(need)} and {tmp.parent} has {_size(free)} free",
                              "give --teacher-cache DIR on a bigger disk, or run the teacher live with --teacher-cache "
                              "off")


def _reserve(path: Path) -> None:
    """Allocate a memory-mapped file's blocks now: a disk that another writer (or a quota) fills after
    ``_check_space`` is then an error here (ENOSPC), not a SIGBUS when a page is written back. Nothing is reserved
    where the file system cannot (EOPNOTSUPP, EINVAL) or the platform has no ``posix_fallocate`` (macOS)."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as e:
            if e.errno in _DISK_FULL:
                raise


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _check_finite(value: np.ndarray, rows, name: str) -> None:
    """Refuse a teacher's outputs that are not finite (NaN, inf): a cache would keep them, and every run reading it
    would stop on a non-finite loss that blames the learning rate (a live run stops so too, at the batch)."""
    bad = ~np.isfinite(value).reshape(len(value), -1).all(1)
    if bad.any():
        ids = np.asarray(rows)[bad][:5].tolist()
        raise DynaKDError(f"the teacher gives non-finite {name} (NaN or inf) on training row(s) "
                          f"{', '.join(map(str, ids))}{', ...' if bad.sum() > 5 else ''}: a cache would keep them; "
                          "check the teacher (its weights, its precision) and its inputs")


def _check_range(value: np.ndarray, dtype: np.dtype) -> None:
    """Refuse features that the storage type cannot hold: float16 turns values beyond 65504 into inf, and the
    cached run would stop on a non-finite loss that the live teacher never gives."""
    limit = float(np.finfo(dtype).max)
    peak = float(np.abs(value).max(initial=0.0))
    if peak > limit:
        raise DynaKDError(f"the teacher's pooled features reach {peak:.3g}, beyond {dtype.name}'s range ({limit:.6g}):"
                          " store them with --set teacher_cache_dtype=float32, or run the teacher live with "
                          "--teacher-cache off")


def _worth_building(cfg, n_rows: int) -> bool:
    """``auto`` builds a cache only for runs that read every training row at least once (over all processes and
    accumulated micro-batches)."""
    if cfg.max_steps > 0:
        return _rows_read(cfg) >= n_rows
    return cfg.epochs >= 1


def _rows_read(cfg) -> int:
    """The training rows a run of ``max_steps`` reads (over all processes and accumulated micro-batches)."""
    return cfg.max_steps * cfg.batch_size * cfg.gradient_accumulation_steps * world_size()


def _short_run(cfg, n_rows: int) -> str:
    """Why ``auto`` reads no cache for a run shorter than one pass over its ``n_rows`` training rows."""
    part = f"{min(_rows_read(cfg), n_rows)} of its {n_rows} training rows" if cfg.max_steps > 0 else \
        f"{cfg.epochs:g} of an epoch"
    return (f"the run reads {part}, and auto builds one for a run of one pass or more (--teacher-cache DIR builds or "
            "reads one for any run)")


def _expected(cfg) -> bool:
    """Whether a user could expect ``cfg``'s run to read a cache: a method whose features the cache holds, where a
    setting (``hidden_weight``, token pooling, ``sensitivity``) keeps it out; not extractive QA nor ``static``, which
    never read one (every such run would say so), nor ``task``, which reads no teacher."""
    return cfg.method != "task" and cfg.terms["feature"] in _POOLINGS and not get_task(cfg.task).is_qa


def padding_of(collator) -> int | None:
    """The multiple ``collator`` pads a batch's length to (1: the longest row), None where it does not say (a
    collator of one's own)."""
    for attr in ("multiple", "pad_to_multiple_of"):  # DistillationCollator's, transformers' DataCollatorWithPadding's
        if hasattr(collator, attr):
            return getattr(collator, attr) or 1
    return None


def prepare_teacher_cache(cfg, teacher, train_ds, collator, device, say_reuse: bool = True) -> TeacherCache | None:
    """The cache this run reads (reused, or built now), or None to run the teacher live; ``collator``: the run's
    ``DistillationCollator``, whose padding an ``auto`` cache is named by; ``say_reuse``: say which cache a run reads
    (the bench, which reads its own for each configuration, does not)."""
    if cfg.teacher_cache == "off" or teacher is None:
        return None
    auto = cfg.teacher_cache == "auto"
    reason = cache_blocker(cfg)
    if short := reason is None and auto and not _worth_building(cfg, len(train_ds)):
        # nor read where another run has built it: the same command trains alike on every machine (the cache's
        # float16 features move the losses in the 4th digit)
        reason = _short_run(cfg, len(train_ds))
    if reason is not None:
        # (an auto run said nothing, where its steps may be slower than a run before it that read one; not for runs
        # that never read one, QA's and static's, each of which would say so)
        if (not auto or _expected(cfg)) and is_first_process():  # one note for a multi-process run
            if short and (built := _built_for(cfg, teacher, train_ds, collator)):
                reason += (f"; one built for this teacher and these rows is in {built} (give it as --teacher-cache "
                           "to read it)")
            tell(f"teacher cache not used: {reason}")
        return None
    fingerprints = {"teacher_fingerprint": teacher_fingerprint(teacher),
                    "data_fingerprint": data_fingerprint(train_ds, fingerprint_columns(train_ds.column_names))}
    folder = default_cache_root() / _auto_name(cfg, fingerprints, collator) if auto else Path(cfg.teacher_cache)
    # Runs sharing the machine (e.g. the shards of a sweep) build one cache: the first builds, the others wait, then
    # read it. (Processes of one distributed run are ordered by the runner; other machines race, see build_cache.)
    # (said by a machine's first process: the run's others take the lock in turn to read what it built)
    waiting = f"waiting for the teacher cache {folder}: another run holds it (building or reading it)"
    with locked(_lock_file(folder), required=False, waiting=waiting if is_first_on_machine() else None):
        return _reuse_or_build(cfg, auto, folder, fingerprints, teacher, train_ds, collator, device, say_reuse)


def _auto_name(cfg, fingerprints: dict[str, str], collator) -> str:
    """The name of the ``auto`` folder of a cache of these fingerprints (teacher and rows)."""
    name = f"{fingerprints['teacher_fingerprint']}-{fingerprints['data_fingerprint']}-{cfg.teacher_cache_dtype}"
    # The last bits of a row's states follow the length it is padded to: a run padded otherwise builds a cache of its
    # own, so a cached run can match a live one bit for bit. (Every cache before padding was a setting padded to 8,
    # and meta.json records the multiple since: the names stay, so that older caches are still found.)
    if (multiple := padding_of(collator)) != 8:
        name += f"-pad{multiple}"
    return name


def _built_for(cfg, teacher, train_ds, collator) -> Path | None:
    """The ``auto`` cache folder another run built for this teacher and these rows that a run can read, where one is
    (the rows are hashed only where some cache is, the teacher's weights only where one is of these rows)."""
    root = default_cache_root()
    names = [p.name for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    if not names:
        return None
    data = data_fingerprint(train_ds, fingerprint_columns(train_ds.column_names))
    if not any(f"-{data}-{cfg.teacher_cache_dtype}" in name for name in names):
        return None
    folder = root / _auto_name(cfg, {"teacher_fingerprint": teacher_fingerprint(teacher), "data_fingerprint": data},
                               collator)
    return folder if (folder / "meta.json").is_file() and _unusable(folder) is None else None


def _reuse_or_build(cfg, auto: bool, folder: Path, fingerprints: dict[str, str], teacher, train_ds, collator,
                    device, say_reuse: bool = True) -> TeacherCache | None:
    if auto and (why := _unusable(folder)):
        # an auto cache's folder is the cache's own (named by teacher, data, dtype and padding), so one of another
        # format or damaged is rebuilt rather than refused at every run until someone deletes it; a --teacher-cache
        # DIR is the user's, never deleted: refused below
        tell(f"the teacher cache {folder} {why}: rebuilding it")
        shutil.rmtree(folder)
    if (folder / "meta.json").is_file():
        cache = TeacherCache(folder)
        cache.check(fingerprints, len(train_ds), cfg.teacher_cache_dtype)
        if say_reuse and is_first_process():  # (a build says so; a reuse said nothing)
            tell(f"reading the teacher cache ({len(train_ds)} rows) <- {folder}")
        built, padded = cache.meta.get("pad_to_multiple_of"), padding_of(collator)
        if built is not None and padded is not None and built != padded:
            # (an auto cache is named by its padding; a folder of one's own is read whatever padding built it)
            note(f"the teacher cache {folder} was built from batches padded to a multiple of {built}, and this run "
                 f"pads to {padded}: its features differ from the live teacher's in their last bits (README: "
                 "'Teacher-output cache')")
        cache.vouch(train_ds)  # (checked against these rows)
        return cache.use(poolings_for(cfg))
    if folder.exists() and any(not p.name.startswith(BUILD_PREFIX) for p in folder.iterdir()):
        raise DynaKDError(f"--teacher-cache {folder} is a non-empty folder without a cache (no meta.json)")
    tell(f"building the teacher cache ({len(train_ds)} rows) -> {folder}")
    try:
        cache = build_cache(folder, teacher, train_ds, collator, batch_size=cfg.eval_batch_size, device=device,
                            dtype=cfg.teacher_cache_dtype, fingerprints=fingerprints, progress=cfg.progress)
    except CacheNotWritten as e:
        if not auto or launched_processes() > 1:  # (a folder of one's own: the user asked for a cache there; a
            raise  # launched run's processes would each decide, some reading a cache and others the live teacher)
        # auto asks for a cache where it helps: a home or a disk it cannot write (a cluster's read-only home) leaves
        # the run to the live teacher, as a run too short for one is
        tell(f"teacher cache not used: {e.what}: the teacher runs live (--teacher-cache DIR builds one in a folder "
             "of your choice; $DYNAKD_CACHE moves the auto ones)")
        return None
    cache.vouch(train_ds)  # (built from these rows, or a race's winner checked against them)
    return cache.use(poolings_for(cfg))


# The pooled teacher features each layer term reads from the cache (logits always); a term not named here trains on
# the live teacher (``cache_blocker``).
_POOLINGS = {None: lambda cfg: (), "pkd": lambda cfg: ("cls",), "dynamics": lambda cfg: (cfg.dynamics.pooling,)}


def _unusable(folder: Path) -> str | None:
    """Why the cache in ``folder`` cannot be read as it is, or None (also for a missing or empty folder: nothing to
    delete). A build renames a finished folder into place, so a folder without meta.json, or with arrays missing or
    cut short, was damaged afterwards (a file deleted, a copy stopped partway)."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    if not (folder / "meta.json").is_file():
        return "is damaged (no meta.json)"
    try:
        if _read_meta(folder).get("version") != FORMAT_VERSION:
            return "was written in another format (another DynaKD version)"
        _read_arrays(folder)
    except _UNREADABLE as e:
        return f"is damaged ({e})"
    return None


def poolings_for(cfg) -> tuple[str, ...]:
    return _POOLINGS[cfg.terms["feature"]](cfg)
