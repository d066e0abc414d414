"""Task data: GLUE (TSV directory or hub), user csv/json files, a dataset by name, or the built-in synthetic corpus.

Every loader returns a ``datasets.DatasetDict`` whose splits have the columns ``text_a``, ``text_b`` (pair tasks
only) and ``label``.
"""

from __future__ import annotations

from collections.abc import Sequence

from datasets import ClassLabel, Dataset, DatasetDict, Value, concatenate_datasets

from dynakd.data.files import load_user_files
from dynakd.data.fingerprint import map_fingerprint
from dynakd.data.glue import load_glue_dir, load_glue_hub
from dynakd.data.named import load_named_dataset
from dynakd.data.synthetic import SYNTHETIC_VOCAB_WORDS, synthetic_sentiment
from dynakd.data.tasks import GLUE_TASKS, TaskSpec, get_task, is_classifier, named_labels, with_labels
from dynakd.distributed import note
from dynakd.errors import DynaKDError, first_line
from dynakd.features import HIDDEN_LABEL

__all__ = [
    "GLUE_TASKS",
    "HIDDEN_LABEL",
    "SYNTHETIC_VOCAB_WORDS",
    "TaskSpec",
    "get_task",
    "follow_model_labels",
    "infer_task_from_data",
    "load_glue_dir",
    "load_glue_hub",
    "load_task_data",
    "load_user_files",
    "subsample",
    "subsample_with_transfer",
    "synthetic_serves",
    "synthetic_sentiment",
]


def _keep_splits(data: DatasetDict, splits: Sequence[str] | None) -> DatasetDict:
    if splits is None:
        return data
    missing = [split for split in splits if split not in data]
    if missing:
        raise DynaKDError(f"no '{missing[0]}' split in the data; splits are: {', '.join(data)}")
    return DatasetDict({split: data[split] for split in splits})


def synthetic_serves(task: TaskSpec) -> bool:
    """Whether the built-in corpus (single sentences, two labels) can stand in for ``task``'s data."""
    return not (task.is_regression or task.num_labels != 2 or task.is_pair or task.is_qa)


def _load_synthetic(task: TaskSpec, seed: int) -> DatasetDict:
    if not synthetic_serves(task):
        raise DynaKDError(f"synthetic data is single-sentence binary sentiment; it cannot be used for {task.name}")
    return synthetic_sentiment(seed=seed)


def load_task_data(
    task: TaskSpec,
    *,
    data_dir: str | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
    splits: Sequence[str] | None = None,
    synthetic: bool = False,
    seed: int = 0,
    dataset: tuple[str | None, str | None, dict[str, str]] | None = None,
) -> DatasetDict:
    """Load the data for ``task`` from the one source the arguments name, checked in this order: user files
    (task csv/json; ``text_columns``, else the files' only column besides the label), the synthetic corpus
    (``synthetic=True``, seeded by ``seed``), the GLUE TSV directory ``data_dir``, else the Hugging Face hub.
    ``splits`` (default: all) restricts the result. ``dataset``: task 'dataset''s name, config and
    ``{split: the dataset's split}`` (``named.load_named_dataset``)."""
    if task.reads_dataset:
        name, config, theirs = dataset or (None, None, {})
        if not name:
            raise DynaKDError("--task dataset needs --dataset NAME")
        chosen = {split: theirs.get(split, split) for split in (splits or theirs or ("train", "validation"))}
        return load_named_dataset(name, config, chosen, text_columns, label_column)
    if task.is_user_data:
        data = load_user_files(task.name, train_file, validation_file, text_columns, label_column)
        return _keep_splits(data, splits)
    if synthetic:
        return _keep_splits(_load_synthetic(task, seed), splits)
    if data_dir is not None:
        return load_glue_dir(task, data_dir, splits)
    return load_glue_hub(task, splits)


def infer_task_from_data(task: TaskSpec, data: DatasetDict, text_columns: Sequence[str] | None = None,
                         model_numbers: bool = False) -> TaskSpec:
    """For csv/json specs, the spec completed from the loaded data: a ClassLabel gives its names and count, float
    labels give regression (1 label), integer labels give max + 1 labels (at least 2). GLUE specs come back as is.
    ``model_numbers``: a trained classifier numbers the labels next (``follow_model_labels``), so ids that are
    sparse in this file (an evaluation file of a many-class model) are not refused."""
    if not task.is_user_data:
        return task
    feature = next(iter(data.values())).features["label"]
    columns = tuple(text_columns) if text_columns else None
    if isinstance(feature, ClassLabel):
        if feature.num_classes < 2:
            if not model_numbers:
                raise DynaKDError(f"the label column has only the value(s) {feature.names}; classification needs two")
            # a file of one class, scored by a trained classifier whose names number it next: its classes, not one
            return with_labels(task, 2, None, columns)
        return with_labels(task, feature.num_classes, tuple(feature.names), columns)
    if feature.dtype.startswith("float"):
        return with_labels(task, 1, None, columns)
    seen = {x for part in data.values() for x in part.unique("label")}  # each split's labels read once
    highest = max(seen, default=1)
    if not model_numbers:
        check_sparse_ids(highest, seen)
    return with_labels(task, max(highest + 1, 2), None, columns)


SPARSE_IDS_FROM = 1000  # classes: below this a few unused ids cost nothing


def check_sparse_ids(highest: int, seen: set[int]) -> None:
    """Integer labels are class ids, so the head gets ``highest + 1`` rows. Ids that leave most of that range unused
    (``0`` and ``1000000``: a head of a million rows for two classes) are surely not ids: refused, with the remedy."""
    if highest + 1 >= SPARSE_IDS_FROM and highest + 1 > 2 * len(seen):
        raise DynaKDError(f"integer labels are class ids, and the highest, {highest}, would make a head of "
                          f"{highest + 1} classes for {len(seen)} distinct labels; number the classes 0 to "
                          f"{len(seen) - 1}, or give the labels as strings (they are then numbered in sorted order)")


def follow_model_labels(task: TaskSpec, data: DatasetDict, config, name: str,
                        by_ids: bool = False) -> tuple[TaskSpec, DatasetDict]:
    """csv/json labels numbered as a trained classifier (``config``, of the model ``name``) numbers them, not only
    from the files of this run: string labels through its ``label2id`` (names matched in any case), integer ids
    within its ``num_labels`` (a class that the files lack is still the model's). Without this, an evaluation file
    lacking one class, or holding its classes in other names, was scored by position or refused. A head without
    names (``LABEL_0``, ...) or a model that is no classifier leaves the files' numbering as it was. ``by_ids``: the
    labels are a dataset's own ``ClassLabel`` ids (``named``), read by their ids where its names are not the model's
    (a label column of names the dataset does not number is matched by name, as a file's)."""
    if not task.is_user_data or task.is_regression:
        return task, data
    if not is_classifier(config):
        return task, data
    own = named_labels(config)
    feature = next(iter(data.values())).features["label"]
    if not isinstance(feature, ClassLabel):  # integer ids
        if own and all(x.strip().isdigit() for x in own) and [int(x) for x in own] != list(range(len(own))):
            return _by_number(task, data, own, name)
        if config.num_labels > task.num_labels:
            return with_labels(task, config.num_labels, None, task.text_columns), data
        return task, data
    if not own:
        if feature.num_classes < 2:  # (infer_task_from_data let it pass for names this model does not have)
            raise DynaKDError(f"the label column has only the value(s) {feature.names}, and '{name}' names no "
                              "labels to number it by; classification needs two")
        return task, data
    # names in any case, and without spaces around them (a model trained before the files' names were read without
    # them names its labels with them)
    index = {x.strip().lower(): i for i, x in enumerate(own)}
    unknown = [x for x in feature.names if x.lower() not in index]
    if by_ids and len(unknown) == feature.num_classes == len(own):  # (no name of its matches, and as many classes)
        # a dataset's ClassLabel numbers its classes, as the model's head does (imdb's neg, pos; a hub model's
        # NEGATIVE, POSITIVE): by their ids, said, as run_classification.py reads them where the names differ
        note(f"the dataset's labels ({', '.join(feature.names)}) are not among the labels '{name}' was trained on: "
             f"read by their ids, {', '.join(f'{a} as {b}' for a, b in zip(feature.names, own))}")
        return with_labels(task, len(own), tuple(own), task.text_columns), data
    if unknown:
        raise DynaKDError(f"label(s) {', '.join(map(repr, unknown))} of the data are not among the labels '{name}' "
                          f"was trained on: {', '.join(own)}")
    ids = [index[x.lower()] for x in feature.names]
    if ids != list(range(len(own))):
        data = _renumbered(data, ids, own)
    return with_labels(task, len(own), tuple(own), task.text_columns), data


def _renumbered(data: DatasetDict, table: list[int] | dict[int, int], own: list[str]) -> DatasetDict:
    """Every split's label ``v`` as ``table[v]``, a class of the model's names ``own``."""
    target = ClassLabel(names=own)
    key = table if isinstance(table, list) else sorted(table.items())

    def renumber(batch: dict[str, list]) -> dict[str, list]:
        return {"label": [table[v] for v in batch["label"]]}

    def relabel(part: Dataset) -> Dataset:
        features = part.features.copy()
        features["label"] = target
        return part.map(renumber, batched=True, features=features,
                        new_fingerprint=map_fingerprint(part, renumber, key, own))

    return DatasetDict({split: relabel(part) for split, part in data.items()})


def _by_number(task: TaskSpec, data: DatasetDict, own: list[str], name: str) -> tuple[TaskSpec, DatasetDict]:
    """Integer labels scored by a model whose classes are numbers named in another order (string labels numbered as
    text before: ``0, 1, 10, 11, 2, ...``): each label is the class its number names, not the id it equals."""
    index = {int(x): i for i, x in enumerate(own)}
    unknown = sorted({v for part in data.values() for v in part.unique("label")} - set(index))
    if unknown:
        raise DynaKDError(f"label(s) {', '.join(map(str, unknown))} of the data are not among the labels '{name}' "
                          f"was trained on: {', '.join(own)}")
    return with_labels(task, len(own), tuple(own), task.text_columns), _renumbered(data, index, own)


_STRATUM = "_dynakd_stratum"  # split_dev's temporary column


def split_dev(data: DatasetDict, split: str, fraction: float, seed: int) -> DatasetDict:
    """Cut the eval split ``split`` by example into a training part (``fraction`` of it) and the rest, which stays
    ``split``: seeded, and stratified by label for classification so both parts keep the label mix (unstratified,
    with a note, where a class has too few rows for that)."""
    ds = data[split]
    label = ds.features["label"]
    stratify = "label" if isinstance(label, ClassLabel) else None
    if isinstance(label, Value) and label.dtype.startswith("int"):  # a csv/json task's class ids
        # datasets stratifies a ClassLabel column only: the ids seen, numbered densely, in a column of its own
        ids = sorted(ds.unique("label"))
        dense = {v: i for i, v in enumerate(ids)}
        ds = ds.add_column(_STRATUM, [dense[v] for v in ds["label"]]).cast_column(_STRATUM, ClassLabel(len(ids)))
        stratify = _STRATUM
    try:
        try:
            parts = ds.train_test_split(train_size=fraction, seed=seed, stratify_by_column=stratify)
        except ValueError as e:  # a class too small to be in both parts
            if stratify is None:
                raise
            parts = ds.train_test_split(train_size=fraction, seed=seed)
            # (said once the unstratified split worked)
            note(f"{split} is split without stratifying by label ({first_line(e).replace(_STRATUM, 'label')})")
    except ValueError as e:  # too few examples for the fraction (datasets names the sizes)
        raise DynaKDError(f"cannot split {split} ({len(ds)} examples) at {fraction}: {e}") from None
    if _STRATUM in ds.column_names:
        parts = parts.remove_columns(_STRATUM)
    return DatasetDict({"train": parts["train"], split: parts["test"]})


def subsample(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """A fixed seeded subset of ``min(n, len(ds))`` rows (``ds.shuffle(seed).select(...)``); ``n=None`` gives
    ``ds`` unchanged. The same ``seed`` and ``n`` always give the same rows."""
    if n is None:
        return ds
    if n < 0:
        raise DynaKDError(f"a subsample size must be >= 0, got {n}")
    return ds.shuffle(seed=seed).select(range(min(n, len(ds))))


def subsample_with_transfer(ds: Dataset, n: int, transfer: int, seed: int, *, regression: bool) -> Dataset:
    """``subsample(ds, n, seed)`` followed by the next ``transfer`` rows of the same seeded order with their labels
    hidden (``HIDDEN_LABEL``, NaN for regression): a transfer set that only the teacher supervises, as DistilBERT
    and TinyBERT distil on unlabelled text. The labelled rows are those of the same run without transfer rows."""
    if n + transfer > len(ds):
        raise DynaKDError(f"the training set has {len(ds)} rows: max_train_samples {n} leaves {max(len(ds) - n, 0)} "
                          f"for transfer_samples, not {transfer}")
    features = ds.features.copy()
    features["label"] = Value("float32" if regression else "int64")  # a ClassLabel cannot hold the hidden label
    rows = subsample(ds, n + transfer, seed).cast(features)  # a seeded order's prefix: its first n are subsample(n)
    hidden = float("nan") if regression else HIDDEN_LABEL

    def hide(_row: dict) -> dict[str, float]:
        return {"label": hidden}

    extra = rows.select(range(n, n + transfer))
    extra = extra.map(hide, desc="hiding labels", new_fingerprint=map_fingerprint(extra, hide, hidden))
    return concatenate_datasets([rows.select(range(n)), extra])
