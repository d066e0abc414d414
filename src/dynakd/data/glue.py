"""GLUE loaders: the TSV files exactly as GLUE ships them, and the Hugging Face hub copy (``nyu-mll/glue``).

Both return a ``datasets.DatasetDict`` whose splits ("train" plus the task's eval splits) have the standardized
columns ``text_a`` (str), ``text_b`` (str, pair tasks only) and ``label`` (``ClassLabel`` in the hub's order, or
float32 for STS-B).
"""

from __future__ import annotations

import csv
import glob
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from dynakd import hub
from dynakd.data.tasks import TaskSpec
from dynakd.errors import DynaKDError, first_line
from dynakd.notes import say


@dataclass(frozen=True)
class TsvFormat:
    """Where the texts and the label are in one task's TSV files.

    ``columns`` is None when the first line is a header; otherwise the fixed column names of a header-less file.
    """

    text_a: str
    text_b: str | None
    label: str
    columns: tuple[str, ...] | None = None


TSV_FORMATS: dict[str, TsvFormat] = {
    "cola": TsvFormat("sentence", None, "label", ("source", "label", "original_label", "sentence")),
    "sst2": TsvFormat("sentence", None, "label"),
    "mrpc": TsvFormat("#1 String", "#2 String", "Quality"),
    "qqp": TsvFormat("question1", "question2", "is_duplicate"),
    "stsb": TsvFormat("sentence1", "sentence2", "score"),
    "mnli": TsvFormat("sentence1", "sentence2", "gold_label"),
    "qnli": TsvFormat("question", "sentence", "label"),
    "rte": TsvFormat("sentence1", "sentence2", "label"),
}


@dataclass
class TsvSplit:
    """The standardized columns read from one TSV file, and how many rows were skipped (and why)."""

    columns: dict[str, list]
    bad_rows: int = 0
    bad_labels: int = 0
    unknown: Counter = field(default_factory=Counter)  # the unknown labels as written, and how often
    widths: Counter = field(default_factory=Counter)  # the column counts of the malformed rows


def split_files(task: TaskSpec) -> dict[str, str]:
    """Map each split name the task supports to its TSV file name in the GLUE layout."""
    if task.name == "mnli":
        return {
            "train": "train.tsv",
            "validation_matched": "dev_matched.tsv",
            "validation_mismatched": "dev_mismatched.tsv",
        }
    return {"train": "train.tsv", **{split: "dev.tsv" for split in task.eval_splits}}


def glue_features(task: TaskSpec) -> Features:
    """The features of a standardized split: string texts, and a ClassLabel (or float32 for regression) label."""
    features = {"text_a": Value("string")}
    if task.is_pair:
        features["text_b"] = Value("string")
    if task.is_regression:
        features["label"] = Value("float32")
    else:
        features["label"] = ClassLabel(names=list(task.label_names or [str(i) for i in range(task.num_labels)]))
    return Features(features)


def parse_label(task: TaskSpec, raw: str) -> int | float | None:
    """Convert a raw TSV label to the hub's value: a finite float for regression (``nan`` is the mark of a row
    without a label), else the index in ``label_names`` (in any case: ``Entailment`` was dropped) or an integer
    string below ``num_labels``. Returns None for a label that fits neither."""
    raw = raw.strip()
    try:
        if task.is_regression:
            value = float(raw)
            return value if math.isfinite(value) else None
        names = [name.lower() for name in task.label_names or ()]
        if raw.lower() in names:
            return names.index(raw.lower())
        value = int(raw)
    except ValueError:
        return None
    return value if 0 <= value < task.num_labels else None


def _column_indices(fmt: TsvFormat, header: list[str], path: str) -> list[int]:
    wanted = [name for name in (fmt.text_a, fmt.text_b, fmt.label) if name is not None]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise DynaKDError(f"{path}: missing column '{missing[0]}'; columns are: {', '.join(header)}")
    return [header.index(name) for name in wanted]


def missing_file_hint(path: str, dev_split: bool = True) -> str:
    """Where a missing GLUE file may be: the dev file alone (QNLI here; ``dev_split``: the command has --dev-split),
    or a --data-dir one level up from the right one (``../shared/data`` for ``../shared/data/glue``)."""
    folder, name = os.path.split(path)
    if dev_split and name == "train.tsv" and os.path.isfile(os.path.join(folder, "dev.tsv")):
        return "; with the dev file alone, --dev-split 0.5 trains on half of it and evaluates on the rest"
    data_dir, task_dir = os.path.split(folder)
    below = sorted(glob.glob(os.path.join(glob.escape(data_dir), "*", task_dir, name)))
    there = f"; {os.path.dirname(os.path.dirname(below[0]))} holds one" if below else ""
    itself = os.path.basename(data_dir).lower() == task_dir.lower()  # (one level too deep: the task's folder)
    if not there and itself and os.path.isfile(os.path.join(data_dir, name)):
        there = f"; {data_dir} is the {task_dir} folder itself: give the folder above it"
    return f" (--data-dir is a folder holding {task_dir}/{name}{there})"


def read_glue_tsv(task: TaskSpec, path: str) -> TsvSplit:
    """Read one GLUE TSV file (tabs, no quoting, optional UTF-8 BOM) into standardized columns.

    Rows whose column count differs from the header's, and rows with an unknown label, are skipped and counted.
    Texts are kept as the file has them, as the hub's GLUE gives them: SST-2's sentences end with a space, which a
    byte-level BPE tokenizer (GPT-2's, RoBERTa's) reads as a token of its own (a decoder's class token), so stripped
    texts were other inputs than the hub's rows and than a pipeline given the file's rows.
    """
    if not os.path.isfile(path):
        raise DynaKDError(f"GLUE file not found: {path}{missing_file_hint(path)}")
    fmt = TSV_FORMATS[task.name]
    names = ["text_a", "text_b", "label"] if fmt.text_b else ["text_a", "label"]
    result = TsvSplit({name: [] for name in names})
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = list(fmt.columns) if fmt.columns else next(reader, [])
        indices = _column_indices(fmt, header, path)
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                result.bad_rows += 1
                result.widths[len(row)] += 1
                continue
            label = parse_label(task, row[indices[-1]])
            if label is None:
                result.bad_labels += 1
                result.unknown[row[indices[-1]].strip()] += 1
                continue
            for name, index in zip(names[:-1], indices[:-1]):
                result.columns[name].append(row[index])
            result.columns["label"].append(label)
    if result.bad_rows and not result.columns["label"] and not result.bad_labels:  # (a file of another layout)
        found = ", ".join(str(w) for w, _ in result.widths.most_common(3))
        named = f": {', '.join(fmt.columns)}, with no header line" if fmt.columns else ""  # (else the header's)
        raise DynaKDError(f"{path}: no row has the {len(header)} columns of {task.name}'s file{named} (its rows "
                          f"have {found}): is it another task's file, or GLUE's test file (which has no labels)?")
    return result


def _label_advice(task: TaskSpec, unknown: Counter) -> str:
    """What to change where rows were skipped for their labels: a CoLA header line read as a row, a decimal comma."""
    fmt = TSV_FORMATS[task.name]
    if fmt.columns and fmt.label in unknown:  # (the header's own label column, read as a row)
        return f"; {task.name}'s files have no header line: delete it"
    if task.is_regression and any(re.fullmatch(r"-?\d*,\d+", value) for value in unknown):
        return "; write decimals with a point (3.8, not 3,8)"
    return ""


def _check_splits(task: TaskSpec, splits: Sequence[str] | None) -> list[str]:
    valid = ["train", *task.eval_splits]
    chosen = list(valid if splits is None else splits)
    unknown = [split for split in chosen if split not in valid]
    if unknown:
        raise DynaKDError(f"task {task.name} has no split '{unknown[0]}'; splits are: {', '.join(valid)}")
    return chosen


def load_glue_dir(task: TaskSpec, data_dir: str, splits: Sequence[str] | None = None) -> DatasetDict:
    """Load ``splits`` (default: "train" and the task's eval splits) from ``data_dir/<glue_dir>/*.tsv``.

    Raises DynaKDError naming the full path of a missing file; only the requested splits' files must exist.
    Skipped rows are counted and logged as a warning.
    """
    if task.name not in TSV_FORMATS:
        raise DynaKDError(f"task {task.name} is not a GLUE task; GLUE tasks: {', '.join(sorted(TSV_FORMATS))}")
    files = split_files(task)
    result = DatasetDict()
    for split in _check_splits(task, splits):
        path = os.path.join(data_dir, task.glue_dir, files[split])
        data = read_glue_tsv(task, path)
        if data.bad_rows or data.bad_labels:
            unknown = ", ".join(f"{value!r} ({n})" for value, n in data.unknown.most_common(3))
            expected = "a finite number" if task.is_regression else f"0..{task.num_labels - 1}" + (
                f" or {', '.join(task.label_names)}" if task.label_names else "")
            labels = f" ({unknown}; {task.name}'s labels: {expected}{_label_advice(task, data.unknown)})" \
                if unknown else ""
            skipped = (f"{path}: skipped {data.bad_rows} malformed row(s) and {data.bad_labels} row(s) with an "
                       f"unknown label{labels}")
            if not data.columns["label"]:  # (every row skipped: the split's "has no examples" named no file)
                raise DynaKDError(f"{skipped}, which leaves no row")
            say(skipped, stderr=True)
        result[split] = Dataset.from_dict(data.columns, features=glue_features(task))
    return result


def load_glue_hub(task: TaskSpec, splits: Sequence[str] | None = None) -> DatasetDict:
    """Load ``splits`` of ``nyu-mll/glue`` (config ``task.name``) with the text columns renamed to
    ``text_a``/``text_b``, ``label`` kept and ``idx`` dropped. Failures to download raise DynaKDError."""
    import datasets

    chosen = _check_splits(task, splits)
    try:
        hub.offline_unless_reachable()
        raw = datasets.load_dataset("nyu-mll/glue", task.name)
    except Exception as exc:  # network, auth and cache errors come in many types; all mean "not available"
        reason = first_line(exc)
        raise DynaKDError(
            f"could not load GLUE {task.name} from the Hugging Face hub ({type(exc).__name__}: {reason}); "
            "pass --data-dir DIR with the GLUE TSV files"
        ) from exc
    renames = dict(zip(task.text_columns, ("text_a", "text_b")))
    result = DatasetDict()
    for split in chosen:
        part = raw[split].rename_columns(renames)
        result[split] = part.remove_columns([c for c in part.column_names if c not in ("text_a", "text_b", "label")])
    return result
