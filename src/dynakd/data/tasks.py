"""Task specifications: GLUE tasks (Hugging Face hub conventions), user csv/json files and extractive QA (SQuAD)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace

from dynakd.errors import DynaKDError


@dataclass(frozen=True)
class TaskSpec:
    """What the data loaders, the model head and the metrics need to know about a task.

    ``text_columns`` are the column names in the hub dataset (``nyu-mll/glue``); every loader renames them to the
    standardized ``text_a`` / ``text_b``. ``label_names`` follow the hub's integer order. For user files
    (``csv``/``json``) ``num_labels`` is 0 until it is known (see ``dynakd.data.infer_task_from_data``).
    """

    name: str
    glue_dir: str | None
    text_columns: tuple[str, ...]
    num_labels: int
    is_regression: bool
    eval_splits: tuple[str, ...]
    metrics: tuple[str, ...]
    label_names: tuple[str, ...] | None
    kind: str = "classification"  # "classification" (sequence classification / regression) or "qa" (extractive QA)

    @property
    def is_qa(self) -> bool:
        """True for extractive question answering (start/end logits over the tokens of a window)."""
        return self.kind == "qa"

    @property
    def is_pair(self) -> bool:
        """True when every example has two texts (``text_a`` and ``text_b``)."""
        return len(self.text_columns) == 2

    @property
    def is_user_data(self) -> bool:
        """True for the generic ``csv``/``json``/``dataset`` specs (one's own data rather than a GLUE task)."""
        return self.name in USER_FORMATS

    @property
    def reads_dataset(self) -> bool:
        """True for ``dataset``: a dataset by name (``--dataset``), not files."""
        return self.name == "dataset"

    @property
    def reads_data_dir(self) -> bool:
        """True for the GLUE tasks, whose TSV files a ``data_dir`` holds; SQuAD and one's own files read files."""
        return not (self.is_qa or self.is_user_data)


_VALIDATION = ("validation",)

GLUE_TASKS: dict[str, TaskSpec] = {
    "cola": TaskSpec(
        "cola", "CoLA", ("sentence",), 2, False, _VALIDATION, ("matthews_correlation",), ("unacceptable", "acceptable")
    ),
    "sst2": TaskSpec("sst2", "SST-2", ("sentence",), 2, False, _VALIDATION, ("accuracy",), ("negative", "positive")),
    "mrpc": TaskSpec(
        "mrpc",
        "MRPC",
        ("sentence1", "sentence2"),
        2,
        False,
        _VALIDATION,
        ("accuracy", "f1"),
        ("not_equivalent", "equivalent"),
    ),
    "qqp": TaskSpec(
        "qqp",
        "QQP",
        ("question1", "question2"),
        2,
        False,
        _VALIDATION,
        ("accuracy", "f1"),
        ("not_duplicate", "duplicate"),
    ),
    "stsb": TaskSpec("stsb", "STS-B", ("sentence1", "sentence2"), 1, True, _VALIDATION, ("pearson", "spearmanr"), None),
    "mnli": TaskSpec(
        "mnli",
        "MNLI",
        ("premise", "hypothesis"),
        3,
        False,
        ("validation_matched", "validation_mismatched"),
        ("accuracy",),
        ("entailment", "neutral", "contradiction"),
    ),
    "qnli": TaskSpec(
        "qnli", "QNLI", ("question", "sentence"), 2, False, _VALIDATION, ("accuracy",), ("entailment", "not_entailment")
    ),
    "rte": TaskSpec(
        "rte", "RTE", ("sentence1", "sentence2"), 2, False, _VALIDATION, ("accuracy",), ("entailment", "not_entailment")
    ),
}

# The rows of each GLUE task's validation splits on the hub (nyu-mll/glue): a ``data_dir`` whose files hold as many is
# taken for a copy of GLUE's (the model card publishes its scores as the dataset's); files of one's own in GLUE's
# layout, of other sizes, are not (card.py).
GLUE_EVAL_ROWS: dict[str, dict[str, int]] = {
    "cola": {"validation": 1043}, "sst2": {"validation": 872}, "mrpc": {"validation": 408},
    "qqp": {"validation": 40430}, "stsb": {"validation": 1500},
    "mnli": {"validation_matched": 9815, "validation_mismatched": 9832}, "qnli": {"validation": 5463},
    "rte": {"validation": 277},
}


def rows_not_glues(task: TaskSpec, rows: dict[str, int] | None) -> str | None:
    """Where evaluation splits of ``rows`` (``{split: rows}``, ``metrics.json``'s ``eval_split_rows``) are not GLUE's
    own, what they held against GLUE's (``60 rows in validation, where GLUE's holds 872``); None where every split
    holds GLUE's count (a copy of its files). Splits not recorded count as not GLUE's."""
    published = GLUE_EVAL_ROWS.get(task.name, {})
    rows = rows or {}
    if published and all(rows.get(split) == n for split, n in published.items()):
        return None
    return "; ".join(f"{rows[split]} rows in {split}, where GLUE's holds {n}" if split in rows
                     else f"{split} of rows not recorded" for split, n in published.items()) or "rows not recorded"


# One's own data: csv or json files, or a dataset by name (the hub's, or a folder; ``--dataset``)
USER_FORMATS = ("csv", "json", "dataset")

# Extractive QA: SQuAD v1.1 from the hub (``rajpurkar/squad``) or local files in the official JSON format.
# ``num_labels`` 2 = the start and end logits of ``AutoModelForQuestionAnswering``.
QA_TASKS: dict[str, TaskSpec] = {
    "squad": TaskSpec(
        "squad", None, ("question", "context"), 2, False, _VALIDATION, ("exact_match", "f1"), None, kind="qa"
    ),
}


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def user_task(kind: str, num_labels: int | None = None) -> TaskSpec:
    """A generic spec for user files: accuracy + F1 (macro F1 above 2 labels), or Pearson/Spearman when
    ``num_labels == 1`` (regression). ``num_labels=None`` gives 0, meaning "infer it from the data"."""
    n = 0 if num_labels is None else num_labels
    if n < 0:
        raise DynaKDError(f"num_labels must be >= 1, got {n}")
    if n == 1:
        return TaskSpec(kind, None, (), 1, True, _VALIDATION, ("pearson", "spearmanr"), None)
    metrics = ("accuracy", "macro_f1") if n > 2 else ("accuracy", "f1")
    return TaskSpec(kind, None, (), n, False, _VALIDATION, metrics, None)


def get_task(name: str, num_labels: int | None = None) -> TaskSpec:
    """Return the spec for a GLUE task name (case-insensitive; "SST-2", "sts-b" style aliases accepted), for
    extractive QA ("squad") or for one's own data ("csv"/"json" files, a "dataset" by name). For GLUE tasks
    ``num_labels``, when given, must match the task."""
    key = _normalize(name)
    if key in USER_FORMATS:
        return user_task(key, num_labels)
    if key in QA_TASKS:
        return QA_TASKS[key]
    if key not in GLUE_TASKS:
        valid = sorted(GLUE_TASKS) + list(QA_TASKS) + list(USER_FORMATS)
        if key == "wnli":  # (the nearest name, qnli, would read its files with QNLI's labels)
            raise DynaKDError(f"GLUE's WNLI is not one of DynaKD's tasks ({', '.join(valid)}); its files read as "
                              "your own data: --task csv --train-file .../train.tsv --validation-file .../dev.tsv "
                              "--text-columns sentence1,sentence2 --label-column label")
        if key == "ax":
            raise DynaKDError(f"GLUE's AX is a test set without labels, not one of DynaKD's tasks "
                              f"({', '.join(valid)}); score a model on it with the hub's GLUE tools")
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DynaKDError(f"unknown task '{name}'; valid tasks: {', '.join(valid)}{hint}")
    task = GLUE_TASKS[key]
    if num_labels is not None and num_labels != task.num_labels:
        raise DynaKDError(f"task {task.name} has {task.num_labels} label(s), not {num_labels}")
    return task


def with_labels(
    task: TaskSpec,
    num_labels: int,
    label_names: tuple[str, ...] | None = None,
    text_columns: tuple[str, ...] | None = None,
) -> TaskSpec:
    """A user-data spec completed with what was learned from the files (label count, names, text columns)."""
    base = user_task(task.name, num_labels)
    columns = task.text_columns if text_columns is None else tuple(text_columns)
    return replace(base, label_names=label_names, text_columns=columns)


def is_classifier(config) -> bool:
    """Whether a model's config (``transformers.PretrainedConfig``) is a trained sequence classifier's."""
    return any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))


def named_labels(config) -> list[str]:
    """The label names a classifier's config gives, in id order; empty when it names none (``LABEL_0``, ...)."""
    own = [str(v) for _, v in sorted((config.id2label or {}).items())]
    return [] if all(x == f"LABEL_{i}" for i, x in enumerate(own)) else own
