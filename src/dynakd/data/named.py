"""A dataset of one's own by name (``--task dataset --dataset NAME``): a hub dataset (``imdb``, ``user/name``), a
folder of data files ``datasets`` reads, or a folder written by ``save_to_disk``; its splits standardized as the
csv/json loaders standardize files (``text_a``, ``text_b``, ``label``).

``datasets.load_dataset`` does the reading (the hub, a local folder, a split expression such as ``train[:90%]``);
this module picks the splits and the columns, and keeps a ``ClassLabel``'s names (``imdb``'s ``neg``/``pos``), which
the label numbers of a csv file do not carry.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from datasets import ClassLabel, Dataset, DatasetDict

from dynakd import hub
from dynakd.data.files import check_columns, check_same_kind, encode_labels, only_text_column, standardize_columns
from dynakd.errors import DynaKDError, first_line

KIND = "dataset"


def load_named_dataset(
    name: str,
    config: str | None,
    splits: dict[str, str],
    text_columns: Sequence[str] | None,
    label_column: str = "label",
) -> DatasetDict:
    """``splits`` (``{"train": "train", "validation": "test"}``: DynaKD's split: the dataset's split or split
    expression) of the dataset ``name`` (config ``config``), each with columns text_a, text_b (two text columns) and
    label. Without ``text_columns``, the only column of text besides the label. Labels as a csv file's are read (names,
    integer ids, floats for regression), a ``ClassLabel`` kept with its names; rows without a label (``-1``, as a
    test split's) are refused."""
    check_columns(list(text_columns or ()), label_column)
    raw = DatasetDict({ours: _load_split(name, config, theirs, ours) for ours, theirs in splits.items()})
    places = {ours: f"{name} ({theirs} split)" for ours, theirs in splits.items()}
    text_columns = list(text_columns or ()) or only_text_column(KIND, raw, places, label_column)
    standard = DatasetDict({ours: standardize_columns(raw[ours], places[ours], text_columns, label_column, KIND, [])
                            for ours in splits})
    _check_labelled(standard, places, label_column)
    names = _class_names(standard, places, label_column)
    if names is None:
        check_same_kind(standard, places, label_column)
        return encode_labels(standard, label_column, places)
    data = DatasetDict({ours: part.cast_column("label", ClassLabel(names=names)) for ours, part in standard.items()})
    data.ids_of_its_own = True  # (its ids number its classes: follow_model_labels may read them by id)
    return data


def _load_split(name: str, config: str | None, split: str, ours: str) -> Dataset:
    """One split of the dataset, which serves as DynaKD's split ``ours``: ``load_from_disk``'s where ``name`` is a
    folder ``save_to_disk`` wrote, else ``load_dataset``'s (the hub, checked once for reach, or a local folder of data
    files)."""
    import datasets

    folder = os.path.expanduser(name)
    # (a DatasetDict's save_to_disk writes dataset_dict.json, a Dataset's state.json: its one split is "train")
    saved = any(os.path.isfile(os.path.join(folder, f)) for f in ("dataset_dict.json", "state.json"))
    if not os.path.isdir(folder) and is_path(name):  # (not a hub id: the hub's hint would mislead)
        raise DynaKDError(f"dataset folder not found: {name}")
    if saved and config:
        raise DynaKDError(f"{name} is a folder save_to_disk wrote, which has no configs: leave --dataset-config "
                          f"{config} out")
    try:
        if saved:
            whole = datasets.load_from_disk(folder)
            return _saved_split(whole if isinstance(whole, DatasetDict) else DatasetDict({"train": whole}), split)
        if not os.path.isdir(folder):
            hub.offline_unless_reachable()
        return datasets.load_dataset(folder if os.path.isdir(folder) else name, config, split=split)
    except Exception as exc:  # the hub, the cache, a file's parser and an unknown split raise many types
        reason = first_line(exc)
        hint = _hint(name, config, ours, reason)
        raise DynaKDError(f"could not load dataset {name}{f' ({config})' if config else ''}, split {split}: "
                          f"{reason}{hint}") from exc


def _saved_split(whole: DatasetDict, split: str) -> Dataset:
    """A split, or a split expression (``train[:90%]``, ``train+test``), of a folder ``save_to_disk`` wrote, as
    ``load_dataset`` reads one of the hub's (``load_from_disk`` reads whole splits alone)."""
    from datasets import ReadInstruction, concatenate_datasets

    # (a split it lacks: datasets' 'Unknown split "x". Should be one of [...]')
    parts = ReadInstruction.from_spec(split).to_absolute({k: len(v) for k, v in whole.items()})
    chosen = [whole[p.splitname].select(range(p.from_, p.to)) for p in parts]
    return chosen[0] if len(chosen) == 1 else concatenate_datasets(chosen)


def _hint(name: str, config: str | None, ours: str, reason: str) -> str:
    """What to do about the commonest failures: a split the dataset lacks (``ours``: the one that trains, or
    evaluates), a config not chosen, the hub not reached."""
    if "Unknown split" in reason or "Bad split" in reason or "split" in reason.lower() and "spec" in reason.lower():
        if ours == "train":
            return " (choose the training split with --train-split)"
        return (" (choose the evaluation split with --eval-split, e.g. --eval-split test; a dataset with one split: "
                "--eval-split train --dev-split 0.9 trains on 90% of it and evaluates on the rest)")
    if "Config name is missing" in reason or "config" in reason.lower() and config is None:
        return " (choose one with --dataset-config)"
    if hub.offline() and not os.path.isdir(os.path.expanduser(name)):
        return (" (the hub cannot be reached and the dataset is not in the local Hugging Face cache: download it "
                "where the hub is reachable, or give a folder, e.g. one written by save_to_disk)")
    return ""


def is_path(name: str) -> bool:
    """Whether ``name`` can only be a local path: a hub id is ``name`` or ``owner/name``, never absolute or relative
    to ``.``, ``..`` or ``~``."""
    return name.startswith(("/", "./", "../", "~", ".\\", "..\\")) or name in (".", "..") or os.path.isabs(name)


def _check_labelled(splits: DatasetDict, places: dict[str, str], label_column: str) -> None:
    """Refuse a split of integer labels below 0 (``-1``: a row without a label, as a test split's), saying which
    split and what to give instead."""
    for ours, part in splits.items():
        dtype = getattr(part.features["label"], "dtype", "")
        if len(part) and dtype.startswith("int") and min(part.unique("label")) < 0:
            remedy = ("train on a labelled split (--train-split)" if ours == "train" else "evaluate on a labelled "
                      "split (--eval-split), or cut one from the training split (--eval-split train --dev-split 0.9)")
            raise DynaKDError(f"{places[ours]} holds rows without a label (-1 in column '{label_column}'), as a test "
                              f"split's: {remedy}")


def _class_names(splits: DatasetDict, places: dict[str, str], label_column: str) -> list[str] | None:
    """The class names of a ``ClassLabel`` label column (every split's the same), or None where no split's labels
    are one. A ``ClassLabel`` in one split beside plain values in another is refused: ids beside names would make
    classes of both, and beside ids it would number them by the names of one split alone."""
    features = {ours: part.features["label"] for ours, part in splits.items()}
    named = [ours for ours, f in features.items() if isinstance(f, ClassLabel)]
    if not named:
        return None
    if len(named) < len(features):
        plain = next(ours for ours in features if ours not in named)
        raise DynaKDError(f"label column '{label_column}' holds classes (a ClassLabel) in {places[named[0]]} but plain "
                          f"values in {places[plain]}: give the splits labels of one kind")
    names = [list(f.names) for f in features.values()]
    if any(n != names[0] for n in names):
        raise DynaKDError(f"label column '{label_column}' names other classes in each split: "
                          f"{'; '.join(f'{places[s]}: {list(f.names)}' for s, f in features.items())}")
    return names[0]
