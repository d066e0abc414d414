"""Config layers: YAML files read strictly, layers merged (later wins, a ``None`` unsets) and ``--set`` overrides
parsed, and a merged mapping coerced into the dataclasses with errors that name the closest valid key."""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import numbers
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from ..errors import DynaKDError
from ..schedules import Schedule, constant
from .schema import AlignConfig, DynamicsConfig

# --------------------------------------------------------------- parsing: a mapping into the dataclasses


# transformers' names of DynaKD's settings (TrainingArguments', and run_glue's model), which its users type first
HF_NAMES = {"learning_rate": "lr", "num_train_epochs": "epochs", "per_device_train_batch_size": "batch_size",
            "per_device_eval_batch_size": "eval_batch_size", "output_dir": "output", "max_length": "max_seq_length",
            "model_name_or_path": "model"}


def _closest(key: str, valid: list[str], prefix: str = "") -> str:
    """The hint of an unknown key: transformers' name of one, a section's own key given at the top level (``eps`` is
    ``align.eps``), else the closest valid key in any case."""
    if not prefix and (name := HF_NAMES.get(key.lower())) in valid:
        return f" (did you mean '{name}'? DynaKD's name for transformers' {key})"
    lower = {v.lower(): v for v in valid}
    match = difflib.get_close_matches(key.lower(), list(lower), n=1, cutoff=0.5)
    if not prefix:
        for section, cls in (("align", AlignConfig), ("dynamics", DynamicsConfig)):
            if key.lower() in (f.name for f in dataclasses.fields(cls)):  # (layers: align's, or student_layers?)
                also = f" or '{lower[match[0]]}'" if match else ""
                return f" (did you mean '{section}.{key.lower()}'{also}?)"
    return f" (did you mean '{prefix}{lower[match[0]]}'?)" if match else f" (valid keys: {', '.join(sorted(valid))})"


def weight_number(value: Any) -> float | None:
    """A weight given as a number (a constant schedule): 0.01, or 1e-2, which YAML 1.1 reads as a string (it wants a
    dot); None for anything else (a mapping, a word, a boolean)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` to the annotated type ``tp`` or raise a DynaKDError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (value is False and args[0] is str):  # `push_to_hub: false`, `student: no`: unset
            return None
        return _coerce(value, args[0], where)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            lower = {str(c).lower(): str(c) for c in choices}  # (`method: KD`: no close match in case)
            hint = [lower[str(value).lower()]] if str(value).lower() in lower else \
                difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            extra = f"; did you mean '{hint[0]}'?" if hint else ""
            if isinstance(value, bool):  # (`pooling: yes` read as 'True')
                extra = (f" (a {str(value).lower()}, which YAML reads from yes, no, on, off, true or false; a choice "
                         "is none of them: quote it)")
            raise DynaKDError(f"{where}: '{value}' is not one of {', '.join(map(str, choices))}{extra}")
        return value
    if dataclasses.is_dataclass(tp):
        if tp is Schedule and (number := weight_number(value)) is not None:
            return constant(number)
        if isinstance(value, tp):  # `{"align": AlignConfig(name="ot")}` from Python: its fields, checked as a mapping's
            value = dataclasses.asdict(value)
        if not isinstance(value, dict):
            keys = ", ".join(f.name for f in dataclasses.fields(tp))
            raise DynaKDError(f"{where}: expected a mapping, got {value!r} (its settings are spelt {where}.KEY=VALUE; "
                              f"keys: {keys})")
        return _from_dict(tp, value, where)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if isinstance(value, dict):  # (read as one item: "expected a string", where a list was wanted)
            weights = "; each component's weight goes in dynamics.weights" if where == "dynamics.components" else ""
            raise DynaKDError(f"{where}: expected a list, e.g. [a, b], got the mapping {value!r}{weights}")
        items = list(value) if isinstance(value, (list, tuple)) else [value]  # (a tuple, from Python, is a list)
        if isinstance(value, str):
            # "a, b" is two names, not "a" and " b"; a stray comma adds no empty name
            items = [v.strip() for v in value.split(",") if v.strip()]
        try:
            return [_coerce(v, inner, where) for v in items]
        except DynaKDError:
            if isinstance(value, (list, tuple)) or inner not in (int, float):  # (a choice's message names the choices)
                raise
            raise DynaKDError(f"{where}: expected a list of {inner.__name__}s, e.g. [1, 2], got {value!r}") from None
    if origin is dict:
        if not isinstance(value, dict):
            raise DynaKDError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, typing.get_args(tp)[1], f"{where}.{k}") for k, v in value.items()}
    return _scalar(value, tp, where)


def _scalar(value: Any, tp: Any, where: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and value in (0, 1):  # `progress: 1` as `progress: "1"`
            return bool(value)
        raise DynaKDError(f"{where}: expected true or false, got {value!r}")
    if tp is str and isinstance(value, (list, tuple, dict)):  # str() of it would name a folder `['a', 'b']`
        raise DynaKDError(f"{where}: expected a string, got {value!r}")
    if tp is str and not isinstance(value, (str, numbers.Number, os.PathLike, datetime.date)):  # (a pathlib.Path is
        raise DynaKDError(_not_a_string(value, where))  # a path; YAML reads `output: 2024-12-06` as a date)
    if tp is str and where == "teacher_cache" and isinstance(value, bool):  # `teacher_cache: off` (or on), unquoted
        return "auto" if value else "off"
    if tp is str and isinstance(value, bool):
        # YAML reads yes/no/on/off as booleans: str() of what it read is not what was written (--set teacher_cache=on
        # wrote the cache into a folder named True). (A number is taken as written: output: 2024 names folder 2024.)
        raise DynaKDError(f"{where}: expected a string, got {value!r}, which YAML read from yes, no, on, off, true or "
                          f"false: quote the word (--set '{where}=\"yes\"', or {where}: \"yes\" in a file)")
    try:
        if isinstance(value, bool) and tp in (int, float):  # YAML reads `lr: yes` as True, not as 1.0
            raise ValueError
        if tp is int and float(value) != int(float(value)):
            raise ValueError
        return tp(value) if tp is not int else int(float(value))
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(float(".inf"))
        raise DynaKDError(f"{where}: expected {tp.__name__}, got {value!r}") from None


def _not_a_string(value: Any, where: str) -> str:
    """The refusal of an object where a string belongs: str() of a model would be read as a path many lines long."""
    what = f"a {type(value).__name__} object"
    if hasattr(value, "save_pretrained"):  # a model or tokenizer in memory, from Python
        tokenizer = ", and its tokenizer's" if hasattr(value, "config") else ""  # (a model's: a tokenizer has none)
        return (f"{where}: expected a folder or hub id, got {what}: save it first (its save_pretrained(DIR)"
                f"{tokenizer}) and give DIR, or distil models in memory with DistillationTrainer or Distiller (README, "
                "Python API)")
    return f"{where}: expected a string, got a value of type {type(value).__name__}"


def _from_dict(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        key = str(key).replace("-", "_")
        if key not in names:
            prefix = "" if where == "config" else f"{where.removeprefix('config.')}."
            raise DynaKDError(f"unknown config key '{prefix}{key}'{_closest(key, names, prefix)}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}".replace("config.", "", 1))
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------- merging layers


def typed(cls: type, layer: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """A layer's values as the schema types them, its keys as given, without defaults (``1e-1``, which YAML 1.1 reads
    as text, a number): what a command compares with a recorded run before the config is built. Weights (schedules)
    and keys the schema lacks stay as given."""
    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in layer.items():
        tp = hints.get(key)
        if value is None or tp is None or tp is Schedule or Schedule in typing.get_args(tp):
            out[key] = value
        elif dataclasses.is_dataclass(tp) and isinstance(value, dict):
            out[key] = typed(tp, value, f"{where}.{key}" if where != "config" else key)
        else:
            out[key] = _coerce(value, tp, key if where == "config" else f"{where}.{key}")
    return out


def underscored(layer: dict[str, Any]) -> dict[str, Any]:
    """``layer`` with every key's dashes as underscores, nested mappings too (``max-seq-length`` is
    ``max_seq_length``: spelt either way in one file, merged as one key with the others)."""
    return {str(k).replace("-", "_"): underscored(v) if isinstance(v, dict) else v for k, v in layer.items()}


def merge_dicts(base: dict[str, Any], update: dict[str, Any], unset: bool = False) -> dict[str, Any]:
    """``update`` over ``base``, nested mappings merged key by key. With ``unset``, a ``None`` (``key:`` or
    ``key: null`` in YAML, ``--set key=``) removes the key, so a later config layer can give one back to its
    default."""
    out = dict(base)
    for key, value in update.items():
        if value is None and unset:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value, unset)
        else:  # (a new section's unset keys are nobody's to unset: dropped)
            out[key] = without_unset(value) if unset and isinstance(value, dict) else value
    return out


def merge_layers(*layers: dict[str, Any]) -> dict[str, Any]:
    """Config layers merged, later wins, a ``None`` unsets (``merge_dicts``); keys spelt with dashes
    (max-seq-length) meet their underscored selves of other layers."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = merge_dicts(merged, underscored(layer), unset=True)
    return merged


def without_unset(layer: dict[str, Any]) -> dict[str, Any]:
    """``layer`` without the keys it sets to ``None`` (nested ones too): what it sets, read on its own."""
    return {k: without_unset(v) if isinstance(v, dict) else v for k, v in layer.items() if v is not None}


# ------------------------------------------------------------------------------------------------- files


def existing_part(path: Path) -> Path:
    """The nearest part of ``path`` that exists (itself, or the folder where creating it would start; a dangling link
    counts): where a path that cannot be a folder shows up as something else, e.g. a file."""
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping that names one key twice."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping naming one key twice: PyYAML keeps the last without a word, so
    ``lr: 1e-4`` further down a config silently won over the one the user was looking at."""

    def construct_mapping(self, node, deep=False):
        lines: dict[Any, int] = {}  # each key's first line
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`, whose keys a mapping may override
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            if isinstance(key, str):  # max_seq_length and max-seq-length are one key (underscored)
                key = key.replace("-", "_")
            try:
                first = lines.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own error names it
                continue
            if first is not None:
                where = f"on line {line}" if first == line else f"at lines {first} and {line}"
                raise DuplicateKeyError(None, None, f"key '{key}' is given twice, {where}; keep one",
                                        key_node.start_mark)
            lines[key] = line
        return super().construct_mapping(node, deep)


# The folders of DynaKD's source repository that its README names files in; an installed package holds none of them
REPOSITORY_FOLDERS = ("benchmarks", "examples", "docs")


def repository_hint(path: str | Path) -> str:
    """`` (benchmarks/ comes with DynaKD's source repository ...)`` for a path not found that names a file of the
    repository's own folders, which a wheel's user (the README's commands run from elsewhere) does not have."""
    parts = Path(path).parts
    if not parts or parts[0] not in REPOSITORY_FOLDERS:
        return ""
    return (f" ({parts[0]}/ comes with DynaKD's source repository, not with the installed package: run the command "
            "from a checkout of it, or give a file of your own)")


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        raise DynaKDError(f"{p} is a folder, not a config file; give a YAML file")
    if not p.is_file():
        raise DynaKDError(f"config file not found: {p}{repository_hint(p)}")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=StrictLoader)
        data = {} if data is None else data  # (an empty file, or comments alone; not `0` or `[]`)
        _check_acyclic(data, str(p))
    except (OSError, UnicodeDecodeError) as e:
        raise DynaKDError(f"cannot read config file {p}: {e.strerror if isinstance(e, OSError) else 'not UTF-8 text'}"
                          ) from None
    except DuplicateKeyError as e:
        raise DynaKDError(f"{p}: {e.problem}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise DynaKDError(f"malformed YAML in {p}{at}: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise DynaKDError(f"{p}: the top level must be a mapping of config keys")
    return data


def _check_acyclic(data: Any, where: str) -> None:
    """Refuse a value that holds itself (`align: &a {x: *a}`: PyYAML builds the loop, which merging then followed
    until a RecursionError)."""
    def walk(value: Any, holding: tuple[int, ...]) -> None:
        if isinstance(value, (dict, list)):
            if id(value) in holding:
                raise DynaKDError(f"{where}: a YAML alias refers to the mapping or list that holds it")
            for item in value.values() if isinstance(value, dict) else value:
                walk(item, (*holding, id(value)))

    walk(data, ())


# The sections a sweep file has at its top level and a run's config never has (experiments/ablate.py)
SWEEP_SECTIONS = ("base", "grid")


def load_run_config(path: str | Path) -> dict[str, Any]:
    """A run's config file (``--config`` of distill, finetune, evaluate, bench), as ``load_yaml`` reads it. A sweep
    file given here is named as one: its keys were refused one by one, ``name`` as a misspelt ``dynamics``."""
    layer = load_yaml(path)
    if any(key in layer for key in SWEEP_SECTIONS):
        raise DynaKDError(f"{path} is a sweep file (base/grid): run it with dynakd ablate --config {path}")
    return layer


# --------------------------------------------------------------------------------------- --set overrides


def nest(key: str, value: Any) -> dict[str, Any]:
    """``("align.eps", 0.1)`` -> ``{"align": {"eps": 0.1}}``."""
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def parse_override(text: str) -> dict[str, Any]:
    """``"align.eps=0.1"`` -> ``{"align": {"eps": 0.1}}`` (the value is read as YAML)."""
    if "=" not in text:
        raise DynaKDError(f"--set expects KEY=VALUE, got '{text}'")
    key, raw = text.split("=", 1)
    try:
        value = yaml.load(raw, Loader=StrictLoader) if raw else None
    except yaml.YAMLError as e:  # `--set lr=[1`
        raise DynaKDError(f"--set {text}: the value is not valid YAML: {getattr(e, 'problem', None) or e}") from None
    _check_acyclic(value, f"--set {text}")
    if "#" in raw and "#" not in str(value):  # `--set output=#1` unset the output, `repo #2` dropped the ` #2`
        # (quoted, a number or a switch would be a string, which its setting refuses: there the comment is to go)
        quote = f"quote the value (--set '{key}=\"{raw}\"')"
        fix = quote if value is None else (f"leave the comment out (--set '{key}={raw.split(' #')[0].strip()}'), or, "
                                           f"where the # is part of the value, {quote}")
        raise DynaKDError(f"--set {text}: YAML reads a # that starts the value or follows a space as a comment: {fix}")
    return nest(key, value)
