"""Typed, validated run configuration: defaults < YAML file < command-line flags.

One ``DistillConfig`` describes every command (``finetune`` is ``method: task`` without a teacher).
Unknown keys are errors that name the closest valid key; the resolved config is written into the run folder.

``schema`` holds the methods and the dataclasses, ``layers`` reads, merges and parses config layers, ``checks``
validates a whole config; this module builds one from layers, and every public name is importable from here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ..atomic import write_text
from ..errors import DynaKDError
from ..schedules import Schedule
from .checks import MAX_BATCH, MAX_ITERS, MAX_WORKERS, _check_dynamics_choices, validate
from .layers import (
    SWEEP_SECTIONS,
    DuplicateKeyError,
    StrictLoader,
    _from_dict,
    existing_part,
    load_run_config,
    load_yaml,
    merge_dicts,
    merge_layers,
    nest,
    parse_override,
    repository_hint,
    typed,
    underscored,
    weight_number,
    without_unset,
)
from .schema import (
    ALIGNER_READS,
    ALIGNERS,
    COMPONENTS,
    DATA_PATHS,
    DATASET_KEYS,
    DEFAULT_BETA0,
    FORMS,
    METHOD_TERMS,
    METHODS,
    AlignConfig,
    CompileMode,
    DistillConfig,
    DynamicsConfig,
    default_aligner,
    default_beta,
    layer_term,
    unread_options,
)

__all__ = [
    "ALIGNER_READS", "ALIGNERS", "COMPONENTS", "DATA_PATHS", "DATASET_KEYS", "DEFAULT_BETA0", "FORMS", "MAX_BATCH",
    "MAX_ITERS", "MAX_WORKERS", "METHODS", "METHOD_TERMS", "SWEEP_SECTIONS", "AlignConfig", "CompileMode",
    "DistillConfig", "DuplicateKeyError", "DynamicsConfig", "StrictLoader", "as_config", "build_config",
    "default_aligner", "default_beta", "existing_part", "layer_term", "load_run_config", "load_yaml", "merge_dicts",
    "merge_layers", "nest", "own_fixed_map", "parse_layer", "parse_override", "repository_hint", "save_config",
    "typed", "underscored", "unread_options", "validate", "weight_number", "without_unset",
]


def parse_layer(layer: dict[str, Any]) -> None:
    """Check one config layer's keys, value types and list choices on their own (how layers combine is
    ``build_config``'s)."""
    _check_dynamics_choices(_from_dict(DistillConfig, without_unset(layer)).dynamics)


def build_config(*layers: dict[str, Any] | DistillConfig, **overrides: Any) -> DistillConfig:
    """Merge config layers (later wins; a ``None`` gives a key set by an earlier layer back to its default), parse
    them into a DistillConfig and validate it. A layer is a dict of config keys as in YAML or a whole DistillConfig;
    keyword arguments are a last layer: ``build_config(cfg, lr=1e-4)``."""
    for layer in layers:
        if not isinstance(layer, (dict, DistillConfig)):
            raise DynaKDError(f"build_config takes dicts of config keys or DistillConfigs, got {type(layer).__name__}")
    dicts = _one_student_choice([_plain(_as_layer(x) if isinstance(x, DistillConfig) else x)
                                 for x in (*layers, overrides)])
    merged = merge_layers(*_numbers_amended(dicts))
    method = merged.get("method", "full")
    if method in METHOD_TERMS:  # (an unknown method fails in parsing, with a suggestion)
        probe = DistillConfig(method=method)
        for name, default in (("alpha", probe.alpha), ("beta", default_beta(method)),
                              ("task_weight", probe.task_weight), ("hidden_weight", Schedule())):
            part = merged.get(name)
            # a mapping without 'kind' amends the default: {warmup: 0.1}; --set beta.start=3 (linear from 3 to 0)
            if isinstance(part, dict) and "kind" not in part:
                moves = sorted(set(part) & {"end", "switch"})
                if default.kind == "constant" and moves:  # else `alpha: {end: 0}` would keep 1 without a word
                    raise DynaKDError(f"{name}: a constant weight has no {' or '.join(moves)}; give kind: linear, "
                                      "cosine or step to move it during training")
                merged[name] = {**dataclasses.asdict(default), **part}
            elif isinstance(part, dict) and "start" not in part and name not in unread_options(method):
                merged[name] = {**part, "start": default.start}  # {kind: cosine}: from the method's start, not 1
    return validate(_from_dict(DistillConfig, merged))


# The three ways of choosing the student: a layer that gives one replaces the choice of the layers before it
STUDENT_KEYS = ("student", "student_layers", "student_layer_ids")


def _one_student_choice(dicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``dicts`` with the student keys of each layer dropped where a later layer chooses the student: a run's saved
    dynakd.yaml (``student_layers: 2``) given with ``--student-layer-ids 0,1,3`` was refused as giving both (3 layers
    but 2), and ``--student CHECKPOINT`` as choosing two students. Within one layer both are still refused."""
    def chooses(layer: dict[str, Any]) -> bool:
        return any(underscored(layer).get(key) is not None for key in STUDENT_KEYS)

    last = max((i for i, layer in enumerate(dicts) if chooses(layer)), default=None)
    return [{k: v for k, v in layer.items() if k.replace("-", "_") not in STUDENT_KEYS}
            if last is not None and i < last else layer for i, layer in enumerate(dicts)]


def _as_layer(cfg: DistillConfig) -> dict[str, Any]:
    """A DistillConfig as a layer of ``build_config``: what validation chose for its method and task given back as
    unchosen (the aligner its method names by default, the pooling its task's ``auto`` gives), so that a later
    layer's method or task chooses its own: ``build_config(base, method="pkd")`` trained pkd with the OT aligner
    ``full`` had chosen, not its fixed map."""
    layer = dataclasses.asdict(cfg)
    if layer_term(cfg.method) and cfg.align.name == default_aligner(cfg.method) and not own_fixed_map(layer["align"]):
        layer["align"]["name"] = None
    if layer_term(cfg.method) and cfg.beta == default_beta(cfg.method):
        layer["beta"] = None  # (a record's, spelt out: the method's own)
    layer["dynamics"]["pooling"] = cfg.pooling_as_chosen()
    return layer


def own_fixed_map(align: dict[str, Any]) -> bool:
    """Whether ``align`` (as a mapping) gives the fixed aligner a map of its own (``fixed_map``, ``layers``), which
    names that aligner for any method (validation asks for it by name)."""
    return align.get("fixed_map", AlignConfig.fixed_map) != AlignConfig.fixed_map or align.get("layers") is not None


WEIGHTS = ("alpha", "beta", "task_weight", "hidden_weight")  # the weights that are schedules


def _plain(value: Any) -> Any:
    """A layer with the library's own objects in it (``beta=constant(3.0)``, ``align=AlignConfig(...)``) as the
    mappings a YAML file gives: merged key by key like them (a Schedule merged whole, a later ``beta.warmup`` lost)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _numbers_amended(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The layers, each weight given as a mapping without ``kind`` over one given as a number by an earlier layer
    (``beta: 5``, then ``--set beta.warmup=0.1``) made to amend that number, a constant, rather than the method's
    default schedule, which the mapping replaced it with (``build_config``). A constant has no ``end`` or
    ``switch``: those are refused, as for a constant default. A mapping with a ``kind`` and no ``start`` starts from
    the number (``--set beta.kind=cosine``: from 5 to 0)."""
    number: dict[str, float | None] = {}
    out = []
    for layer in map(underscored, layers):
        layer = dict(layer)
        for name in WEIGHTS:
            if name not in layer:
                continue
            part = layer[name]
            if isinstance(part, dict) and "kind" not in part and number.get(name) is not None:
                if moves := sorted(set(part) & {"end", "switch"}):
                    raise DynaKDError(f"{name}: a constant weight ({number[name]:g}) has no {' or '.join(moves)}; "
                                      "give kind: linear, cosine or step to move it during training")
                layer[name] = {"kind": "constant", "start": number[name], "end": number[name], **part}
                number[name] = weight_number(layer[name]["start"])  # (still a constant, for the layers after)
            elif isinstance(part, dict) and "start" not in part and number.get(name) is not None:
                layer[name] = {"start": number[name], **part}  # (beta: 5, then beta.kind=cosine: from 5)
                number[name] = None
            else:
                number[name] = weight_number(part)
        out.append(layer)
    return out


def as_config(cfg: DistillConfig | dict[str, Any], where: str) -> DistillConfig:
    """What the Python entry points (``where``: ``distill``, ``Distiller``, ...) take: a DistillConfig, or a dict of
    config keys as in YAML (``build_config``'s), which becomes one; validated."""
    if isinstance(cfg, DistillConfig):
        return validate(cfg)
    if isinstance(cfg, dict):
        return build_config(cfg)
    raise DynaKDError(f"{where} takes a DistillConfig or a dict of config keys, got {type(cfg).__name__}")


def save_config(cfg: DistillConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML whole or not at all, and not again where the file holds it already: a run folder's record
    is rewritten at every start, resumes included, and one emptied by a full disk or a kill mid-write made the next
    start take the run for a different one."""
    path, text = Path(path), yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    try:
        if path.read_text() == text:
            return
    except (OSError, UnicodeDecodeError):  # none yet, or unreadable: written anew
        pass
    write_text(path, text)
