"""User data in csv (.tsv: tab-separated) or json (JSON lines or a JSON array) files,
standardized like the GLUE loaders. Each file is read on its own: train and validation files may hold different
extra columns.

String labels become a ``datasets.ClassLabel`` whose ``names`` are the sorted unique label strings of all splits
together, so the mapping is ``dataset["train"].features["label"].names[i]`` for label ``i``. Integer labels are
kept as they are (they must be >= 0); float labels are kept as float32 (regression).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy
from datasets import ClassLabel, Dataset, DatasetDict, Value

from dynakd.data.fingerprint import map_fingerprint
from dynakd.distributed import is_first_process, note
from dynakd.errors import DynaKDError, first_line
from dynakd.notes import tell

USER_KINDS = ("csv", "json")
_STRING_TYPES = ("string", "large_string")
_SUFFIXES = {"csv": ("csv", "tsv"), "json": ("json", "jsonl")}


def _check_args(kind: str, files: dict[str, str], text_columns: Sequence[str], label_column: str) -> None:
    if kind not in USER_KINDS:
        raise DynaKDError(f"unknown data file kind '{kind}'; valid kinds: {', '.join(USER_KINDS)}")
    if not files:
        raise DynaKDError(f"{kind} data needs a train file or a validation file")
    check_columns(text_columns, label_column)
    for path in files.values():
        if os.path.isdir(path):
            raise DynaKDError(f"{path} is a folder: give the data file in it")
        if not os.path.isfile(path):
            raise DynaKDError(f"data file not found: {path}")
        if what := _OTHER_FORMATS.get(_suffix(path)):
            raise DynaKDError(f"{path} is {what}, which DynaKD does not read: it reads csv (.csv, or .tsv "
                              "tab-separated) and json (.json, .jsonl) files")


def check_columns(text_columns: Sequence[str], label_column: str) -> None:
    """One or two text columns (none: the only column besides the label, ``only_text_column``), apart from each
    other and from the label column."""
    if len(text_columns) > 2:
        raise DynaKDError(f"need 1 or 2 text columns, got {len(text_columns)}: {', '.join(text_columns)}")
    if len(set(text_columns)) < len(text_columns):  # (a KeyError when the columns were renamed)
        raise DynaKDError(f"--text-columns names '{text_columns[0]}' twice: a sentence pair is two columns")
    if label_column in text_columns:
        raise DynaKDError(f"column '{label_column}' cannot be both a text column and the label column")


# Files users have that the csv and json readers cannot read, with what to do; read as csv, a workbook (a zip file)
# failed with "'Content_Types' does not appear to be an IPv4 or IPv6 address"
_SPREADSHEET = "a spreadsheet (save it as CSV UTF-8 first)"
_OTHER_FORMATS = {"xlsx": _SPREADSHEET, "xlsm": _SPREADSHEET, "xls": _SPREADSHEET, "ods": _SPREADSHEET,
                  "parquet": "a Parquet file (its folder reads as a dataset: --task dataset --dataset DIR)",
                  "arrow": "an Arrow file (its folder, save_to_disk's, reads as a dataset: --task dataset --dataset "
                           "DIR)"}


def _read(kind: str, files: dict[str, str]) -> DatasetDict:
    """Each split's file read on its own, so that an error names the file at fault with its own reason (read
    together, datasets casts every file to the first one's columns, and a parse error names none), and files with
    different extra columns can pair."""
    paths = list(files.values())
    tables = {path: _read_file(kind, path, paths) for path in dict.fromkeys(paths)}  # a file given twice: read once
    return DatasetDict({split: tables[path] for split, path in files.items()})


def _read_file(kind: str, path: str, paths: list[str]) -> Dataset:
    import datasets

    if _is_blank(path):  # the parsers' own words for it are "No columns to parse" (csv) and nothing at all (json)
        raise DynaKDError(f"{path} is empty")
    builder_log = logging.getLogger(f"datasets.packaged_modules.{kind}.{kind}")
    level = builder_log.level
    builder_log.setLevel(logging.CRITICAL)  # the parse error is reported once, below, not logged first
    try:
        builder = datasets.load_dataset_builder(kind, data_files=path, **_reader_options(kind, path))
        builder.download_and_prepare()
    except Exception as exc:  # parse errors come from pandas/pyarrow/datasets in many types
        while exc.__cause__ is not None:  # datasets wraps the parser's reason in "An error occurred while ..."
            exc = exc.__cause__
        raise DynaKDError(f"could not read {kind} file {path}: {first_line(exc)}{_kind_hint(kind, path, paths)}"
                          f"{_reading_hint(kind, path, exc)}") from exc
    finally:
        builder_log.setLevel(level)
    # load_dataset would answer a file without rows with 'Instruction "train" corresponds to no data!'
    if not builder.info.splits["train"].num_examples:  # (a json array read as csv is a header without rows)
        raise DynaKDError(f"{path} has no rows{_kind_hint(kind, path, paths)}")
    return builder.as_dataset(split="train")


def _reading_hint(kind: str, path: str, exc: BaseException) -> str:
    """What a parse error commonly means: text in another encoding than UTF-8 (a spreadsheet's "CSV" on Windows),
    or a csv file separated by semicolons (Excel's CSV where the comma writes decimals)."""
    if isinstance(exc, UnicodeDecodeError):
        return " (the file is not UTF-8 text: save it as UTF-8" + (", e.g. a spreadsheet's \"CSV UTF-8\")"
                                                                   if kind == "csv" else ")")
    if kind == "csv" and _suffix(path) != "tsv":
        with open(path, encoding="utf-8", errors="replace") as handle:
            header = handle.readline()
        if header.count(";") and not header.count(","):
            return _semicolons(path)
    return ""


def _semicolons(path: str) -> str:
    return f" ({path} looks separated by semicolons: save it comma-separated, or tab-separated as .tsv)"


def _is_blank(path: str) -> bool:
    """Whether the file holds nothing but whitespace (read up to its first other byte)."""
    with open(path, "rb") as handle:
        return all(not chunk.strip() for chunk in iter(lambda: handle.read(1 << 16), b""))


def _reader_options(kind: str, path: str) -> dict[str, Any]:
    """How pandas reads a csv file: a cell is text as written (pandas would read ``NA``, ``null``, ``None``, ``nan``
    ... as missing: a text lost, a label ``None`` refused), and only an empty cell is missing. A .tsv file is read
    tab-separated, its quotes as ``_tsv_quoting`` finds them."""
    if kind != "csv":
        return {}
    options: dict[str, Any] = {"keep_default_na": False, "na_values": [""]}
    if _suffix(path) == "tsv":
        options.update(sep="\t", quoting=_tsv_quoting(path))
    return options


def _tsv_quoting(path: str) -> int:
    """``QUOTE_MINIMAL`` for a file quoted as csv writers quote (pandas, Python's ``csv``): every cell that opens
    with a quote closes it right before a tab or the line's end, doubling the quotes inside, and no row runs past its
    line or differs in width from the header. Else ``QUOTE_NONE``, as GLUE's files are read, where a quote is text:
    read with csv quoting, a GLUE cell that starts with ``"`` quoted what followed, rows merged into one text, or
    the file failed to parse. (Python's own parser decides, once over the file: pandas has no strict mode.)"""
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        if not any('"' in line for line in handle):
            return csv.QUOTE_NONE  # (the same reading either way)
        handle.seek(0)
        quoted = _quoted_as_csv(handle)
    if not quoted:
        note(f"{path} holds quotes that are not csv quoting (a cell opens a quote it does not close right "
             "before a tab or the line's end, or rows differ in width): they are read as text, as GLUE's files are")
    return csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE


def _quoted_as_csv(handle) -> bool:
    limit = csv.field_size_limit(2**31 - 1)  # (a long text is no error: the default limit is 131,072)
    widths = set()
    try:
        for row in csv.reader(handle, delimiter="\t", strict=True):
            # a stray quote that csv quoting would close lines later swallows a row's end, its tab and newline both
            # (GLUE's files); a text of several lines that a csv writer quoted holds newlines alone
            if any(("\n" in cell or "\r" in cell) and "\t" in cell for cell in row):
                return False
            if any(cell.strip() for cell in row):  # (pandas skips a blank line)
                widths.add(len(row))
    except csv.Error:
        return False
    finally:
        csv.field_size_limit(limit)
    return len(widths) == 1


def _suffix(path: str) -> str:
    return os.path.splitext(path)[1].lower().lstrip(".")


def _kind_hint(kind: str, path: str, paths: list[str]) -> str:
    """`` (x.csv looks like csv: --task csv)`` for a file whose suffix names the other kind, else empty; when the
    run's other file (``paths``) does not look like that kind too, the other task would not read it either."""
    other = {"csv": "json", "json": "csv"}.get(kind)
    if other is None:  # (a dataset by name: no file)
        return ""
    looks = [p for p in paths if _suffix(p) in _SUFFIXES[other]]
    if path not in looks:
        return ""
    if looks == paths:
        return f" ({path} looks like {other}: --task {other})"
    return f" ({path} looks like {other}; --task {kind} reads every file as {kind}: give both files in one format)"


def _separator_hint(kind: str, path: str, columns: list[str]) -> str:
    """For a csv file whose header reads as one column holding the other separator (a tab-separated .csv file, a
    comma-separated .tsv file): how the file was read, and how to have it read otherwise."""
    if kind != "csv" or len(columns) != 1:
        return ""
    tsv = _suffix(path) == "tsv"
    if tsv and "," in columns[0]:
        return f" ({path} is read tab-separated for its .tsv suffix; name a comma-separated file .csv)"
    if not tsv and "\t" in columns[0]:
        return f" ({path} is read comma-separated; a tab-separated file is read as such when its name ends in .tsv)"
    if not tsv and ";" in columns[0]:
        return _semicolons(path)
    return ""


def standardize_columns(
    data: Dataset, path: str, text_columns: Sequence[str], label_column: str, kind: str, paths: list[str]
) -> Dataset:
    """Keep only the text and label columns, renamed to text_a/text_b/label, with texts as strings (null -> "")."""
    wanted = [*text_columns, label_column]
    for name in wanted:
        if name not in data.column_names:
            columns = data.column_names
            raise DynaKDError(f"{path}: no column '{name}'; columns are: {', '.join(columns)}"
                              f"{_kind_hint(kind, path, paths)}{_separator_hint(kind, path, columns)}")
    new_names = ["text_a", "text_b"][: len(text_columns)] + ["label"]
    data = data.select_columns(wanted).rename_columns(dict(zip(wanted, new_names)))
    for name, given in zip(new_names[:-1], wanted):
        if not isinstance(data.features[name], Value):  # (a cast of lists or objects to text failed in pyarrow)
            raise DynaKDError(f"{path}: column '{given}' holds {_what_cells_hold(data.features[name])}, not text: "
                              "give each row its text as a string (two texts: --text-columns A,B)")
        if getattr(data.features[name], "dtype", None) not in _STRING_TYPES:
            data = data.cast_column(name, Value("string"))
        if data.data.column(name).null_count:
            data = data.map(_no_null, input_columns=name, fn_kwargs={"key": name},
                            new_fingerprint=map_fingerprint(data, _no_null, name))
    nulls = data.data.column("label").null_count
    if nulls:
        raise DynaKDError(f"{path}: {nulls} row(s) have no value in label column '{label_column}'")
    return data


def _what_cells_hold(feature) -> str:
    """Cells that are not one value each, in words: lists, or objects (a json file's ``[...]``, ``{...}``)."""
    return "objects" if isinstance(feature, dict) else "lists"


def _no_null(value: str | None, key: str) -> dict[str, str]:
    return {key: value or ""}


def _label_kind(splits: DatasetDict) -> str:
    """ "string" if any split has string labels, else "float" if any has floats, else "int"."""
    dtypes = {getattr(part.features["label"], "dtype", None) or _what_cells_hold(part.features["label"])
              for part in splits.values()}
    if dtypes & set(_STRING_TYPES):
        return "string"
    if any(dtype.startswith("float") for dtype in dtypes):
        return "float"
    if all(dtype.startswith(("int", "uint")) or dtype == "bool" for dtype in dtypes):
        return "int"
    raise DynaKDError(f"unsupported label type(s): {', '.join(sorted(dtypes))}; use strings, integers or floats (one "
                      "label per row)")


def check_same_kind(splits: DatasetDict, files: dict[str, str], label_column: str) -> None:
    """Names in one file and numbers in the other are refused: each file is read on its own, so 0/1 beside neg/pos
    would make four classes, two never trained. Integers beside floats stay (regression targets that happen to be
    whole numbers in one file)."""
    kinds = {split: _label_kind(DatasetDict({split: part})) for split, part in splits.items()}
    named = [split for split, kind in kinds.items() if kind == "string"]
    if named and len(named) < len(kinds):
        numbered = next(split for split in kinds if split not in named)
        raise DynaKDError(f"label column '{label_column}' holds names in {files[named[0]]} but numbers in "
                          f"{files[numbered]}: give both files labels of one kind (names, or integer ids)")


def encode_labels(splits: DatasetDict, label_column: str, files: dict[str, str]) -> DatasetDict:
    kind = _label_kind(splits)
    if kind == "float":
        encoded = DatasetDict({name: part.cast_column("label", Value("float32")) for name, part in splits.items()})
        for name, part in encoded.items():  # infinity stopped the run at its 2nd step; NaN marks a row the teacher
            targets = part.with_format("numpy")["label"]  # alone supervises, which scored nan in evaluation
            unscored = int(numpy.isnan(targets).sum())
            if bad := int(numpy.isinf(targets).sum()) + (unscored if name != "train" else 0):
                raise DynaKDError(f"{files[name]}: {bad} row(s) have no finite target in label column '{label_column}' "
                                  "(NaN or infinity): give each row a number, or leave the row out")
            if unscored:
                note(f"{files[name]}: {unscored} training row(s) have no target (NaN): distill's teacher alone "
                     "supervises them, as a transfer set's rows; a fine-tune learns nothing from them")
        return encoded
    if kind == "int":
        encoded = DatasetDict({name: part.cast_column("label", Value("int64")) for name, part in splits.items()})
        lowest = [min(part.unique("label")) for part in encoded.values() if len(part)]
        if lowest and min(lowest) < 0:
            raise DynaKDError(f"integer labels in column '{label_column}' must be >= 0, found {min(lowest)}")
        return encoded
    as_text = {name: part.cast_column("label", Value("string")) for name, part in splits.items()}
    seen = {value for part in as_text.values() for value in part.unique("label")}
    if padded := sorted(value for value in seen if value != value.strip()):
        # "neg " beside "neg" made two classes, the space unseen in the list of names
        note(f"label column '{label_column}' holds names with spaces around them ({', '.join(map(repr, padded[:5]))}"
             f"{', ...' if len(padded) > 5 else ''}): read without them")
        as_text = {name: part.map(_stripped, input_columns="label", new_fingerprint=map_fingerprint(part, _stripped))
                   for name, part in as_text.items()}
        seen = {value.strip() for value in seen}
    if "" in seen:
        raise DynaKDError(f"label column '{label_column}' holds labels that are only spaces: give every row a label")
    spellings: dict[str, list[str]] = {}
    for value in sorted(seen):
        spellings.setdefault(value.lower(), []).append(value)
    if twins := [" and ".join(map(repr, group)) for group in spellings.values() if len(group) > 1]:
        # (as two classes, one would have no training rows or both would split a class; evaluate matches names in
        # any case, so a model's own names would not tell them apart either)
        raise DynaKDError(f"label column '{label_column}' names classes that differ only in case: {'; '.join(twins)}"
                          "; give each class one spelling")
    names = sorted(seen, key=_label_order)
    return DatasetDict({name: part.cast_column("label", ClassLabel(names=names)) for name, part in as_text.items()})


def _stripped(label: str) -> dict[str, str]:
    return {"label": label.strip()}


def _label_order(name: str) -> tuple:
    """Names sort as text, numbers written as text (JSON's ``"10"``) by their value: ``"10"`` came before ``"2"``, so
    a file of such labels numbered them otherwise than the same labels read as integers from a csv file."""
    return (0, int(name), name) if name.strip().isdigit() else (1, 0, name)


def only_text_column(kind: str, raw: DatasetDict, files: dict[str, str], label_column: str) -> list[str]:
    """The text column when none is named: the first file's only column besides the label. Between two or more it
    would be a guess (transformers' run_glue takes the first two, and an id column then reads as text): refused, with
    the columns."""
    split, path = next(iter(files.items()))
    columns = raw[split].column_names
    if label_column not in columns:  # (the refusal below would ask for text columns instead)
        if hint := _kind_hint(kind, path, list(files.values())) + _separator_hint(kind, path, columns):
            raise DynaKDError(f"{path}: no column '{label_column}'; columns are: {', '.join(columns)}{hint}")
        raise DynaKDError(f"{path}: no label column '{label_column}' (--label-column names another); columns are: "
                          f"{', '.join(columns)}")
    others = [c for c in columns if c != label_column]
    what = f"{kind} data" if kind in USER_KINDS else "a dataset"
    if kind not in USER_KINDS and len(others) > 1:  # (a dataset's types are its own, not a parser's guess: an
        others = [c for c in others  # id column beside one text column is no text column)
                  if getattr(raw[split].features[c], "dtype", None) in _STRING_TYPES] or others
    if len(others) != 1:
        raise DynaKDError(f"{what} needs the names of its text columns (one or two): --text-columns a[,b] "
                          f"({path} has columns {', '.join(columns)})")
    dtype = getattr(raw[split].features[others[0]], "dtype", "")
    if dtype.startswith(("int", "uint", "float", "bool")):  # (an id column beside the label: trained on numbers)
        raise DynaKDError(f"{path}: the only column besides the label column '{label_column}', '{others[0]}', holds "
                          f"numbers, not text: name the text column with --text-columns (--text-columns {others[0]} "
                          "reads those numbers as text)")
    if is_first_process():
        only = "the only one" if len(columns) == 2 else "the only one of text"
        tell(f"{path if kind not in USER_KINDS else f'{kind} data'}: text column '{others[0]}' ({only} besides the "
             f"label column '{label_column}'; --text-columns names others)")
    return others


def load_user_files(
    kind: str,
    train_file: str | None,
    validation_file: str | None,
    text_columns: Sequence[str] | None,
    label_column: str = "label",
) -> DatasetDict:
    """Load user csv/json files into splits "train" and/or "validation" (those whose file is given), each with
    columns text_a, text_b (when two text columns are given) and label (see the module docstring for label types).
    Without ``text_columns``, the only column of the first file besides the label.

    Raises DynaKDError for a missing, empty or unparsable file, one without rows, a missing column (listing the
    columns that exist), more than two text columns, missing labels, or negative integer labels.
    """
    files = {split: path for split, path in (("train", train_file), ("validation", validation_file)) if path}
    text_columns = list(text_columns or ())
    _check_args(kind, files, text_columns, label_column)
    raw = _read(kind, files)
    paths = list(files.values())
    text_columns = text_columns or only_text_column(kind, raw, files, label_column)
    standard = DatasetDict({
        split: standardize_columns(raw[split], path, text_columns, label_column, kind, paths)
        for split, path in files.items()
    })
    check_same_kind(standard, files, label_column)
    return encode_labels(standard, label_column, files)
