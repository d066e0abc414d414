"""Command-line flags and how they become config overrides (defaults < --config YAML < --set < flags)."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import Any

from ..config import (
    ALIGNERS,
    METHOD_TERMS,
    METHODS,
    DistillConfig,
    build_config,
    default_aligner,
    default_beta,
    layer_term,
    load_run_config,
    merge_dicts,
    merge_layers,
    nest,
    own_fixed_map,
    parse_layer,
    parse_override,
    typed,
    underscored,
    weight_number,
)
from ..errors import DynaKDError

# flag -> (config key, type, help)
DATA_FLAGS = {
    "--task": ("task", str, "GLUE task (sst2 mrpc qnli mnli qqp rte cola stsb), squad (extractive QA), csv / json "
               "(your own files) or dataset (--dataset) (default sst2; distill: the task a DynaKD teacher was "
               "fine-tuned on)"),
    "--dataset": ("dataset", str, "--task dataset: a hub dataset (imdb, user/name), a folder of data files, or a "
                  "folder written by save_to_disk"),
    "--dataset-config": ("dataset_config", str, "--task dataset: the dataset's config (subset), where it has several"),
    "--train-split": ("train_split", str, "--task dataset: the split that trains (default train; a split expression "
                      "such as train[:90%%] too)"),
    "--eval-split": ("eval_split", str, "--task dataset: the split that evaluates (default validation; e.g. test)"),
    "--data-dir": ("data_dir", str, "folder in the GLUE TSV layout (DIR/SST-2/train.tsv ...); default: the hub"),
    "--train-file": ("train_file", str, "training file for --task csv/json (csv: a .tsv file is read tab-separated), "
                     "or SQuAD v1.1 JSON for --task squad"),
    "--validation-file": ("validation_file", str, "validation file for --task csv/json/squad"),
    "--train-articles": ("train_articles", int, "squad: the first N articles of --train-file train, the rest evaluate"),
    "--doc-stride": ("doc_stride", int, "squad: overlap of a context's windows in tokens (default min(128, L/2))"),
    "--max-answer-length": ("max_answer_length", int, "squad: longest predicted answer in tokens (default 30)"),
    "--n-best": ("n_best", int, "squad: start/end candidates per window in postprocessing (default 20)"),
    "--text-columns": ("text_columns", str, "comma-separated text column(s) for --task csv/json/dataset"),
    "--label-column": ("label_column", str, "label column for --task csv/json/dataset (default: label)"),
    "--max-seq-length": ("max_seq_length", int, "truncate inputs to this many tokens (default 128)"),
    "--max-train-samples": ("max_train_samples", int, "use a fixed seeded subset of the training set"),
    "--max-eval-samples": ("max_eval_samples", int, "use a fixed seeded subset of each eval split"),
    "--dev-split": ("dev_split", float, "no train set: train on this seeded fraction of dev (csv/json: of the "
                                         "one file), evaluate on the rest"),
    "--transfer-samples": ("transfer_samples", int, "distil also on this many more training rows, labels hidden"),
}
TRAIN_FLAGS = {
    "--output": ("output", str, "run folder: model, tokenizer, metrics.json, dynakd.yaml, TensorBoard logs"),
    "--epochs": ("epochs", float, "training epochs (default 3)"),
    "--max-steps": ("max_steps", int, "stop after this many optimizer steps (overrides --epochs)"),
    "--batch-size": ("batch_size", int, "per-device training batch size (default 32)"),
    "--gradient-accumulation-steps": ("gradient_accumulation_steps", int, "batches per optimizer step (default 1): "
                                      "the effective batch is N x --batch-size x processes"),
    "--lr": ("lr", float, "peak learning rate (default 5e-5), reached after a linear warm-up over warmup_ratio "
                          "(0.06) of the steps, then decayed linearly"),
    "--seed": ("seed", int, "random seed (default 42)"),
    "--max-grad-norm": ("max_grad_norm", float, "clip gradients to this norm (default 1.0; 0 disables)"),
    "--logging-steps": ("logging_steps", int, "log every N steps (default 25)"),
    "--report-to": ("report_to", str, "comma-separated trackers that get the logs, as transformers' report_to names "
                    "them: tensorboard (default), wandb, mlflow, trackio, ..., or none"),
    "--eval-steps": ("eval_steps", int, "evaluate every N steps (default: every epoch)"),
    "--save-steps": ("save_steps", int, "checkpoint every N steps for resuming (default 500; 0 disables)"),
    "--push-to-hub": ("push_to_hub", str, "upload the finished run folder (model, tokenizer, model card, metrics, "
                      "logs) to this hub repository (name or namespace/name); needs a token (`hf auth login`)"),
    "--dataloader-num-workers": ("dataloader_num_workers", int, "worker processes that collate batches and read the "
                                 "teacher cache (default 0: the training process)"),
    "--torch-compile-mode": ("torch_compile_mode", str, "torch.compile mode, implies --torch-compile: default, "
                             "reduce-overhead (CUDA graphs), max-autotune, max-autotune-no-cudagraphs"),
}
METHOD_FLAGS = {
    "--method": ("method", str, f"one of {', '.join(METHODS)} (default full)"),
    "--align": ("align.name", str, f"layer aligner: {', '.join(ALIGNERS)} (default: fixed for static and pkd, "
              "ot otherwise)"),
    "--temperature": ("temperature", float, "logit-KD temperature T (default 2)"),
    "--alpha": ("alpha", float, "weight of the logit-KD term (its schedule's start; default: constant 1)"),
    "--beta": ("beta", float, "weight of the feature term at the start (default: the method's, decayed linearly to 0)"),
    "--teacher-cache": ("teacher_cache", str, "auto (default), off, or a folder for the teacher-output cache"),
    "--student": ("student", str, "student checkpoint (any AutoModel of the task)"),
    "--student-layers": ("student_layers", int, "build the student from K evenly spaced teacher layers"),
    "--student-layer-ids": ("student_layer_ids", str, "comma-separated 0-based teacher layer ids to keep"),
}
# flag -> (config key, the value the flag sets, help)
SWITCHES = {
    "--overwrite": ("overwrite", True, "replace an output folder that holds a different run (or start a run again)"),
    "--resume": ("resume", True, "continue from the newest checkpoint in --output (the default when one exists); "
                 "fail if there is none"),
    "--keep-checkpoints": ("keep_checkpoints", True, "keep the checkpoints after a successful run (default: delete)"),
    "--hub-private": ("hub_private", True, "with --push-to-hub: create the repository private (an existing one "
                      "keeps its visibility)"),
    "--synthetic": ("synthetic", True, "use the built-in synthetic sentiment corpus instead of real data"),
    "--fp16": ("fp16", True, "mixed precision (fp16)"),
    "--bf16": ("bf16", True, "mixed precision (bf16)"),
    "--torch-compile": ("torch_compile", True, "compile the student and the dynamics losses with torch.compile"),
    "--cuda-graphs": ("cuda_graphs", True, "replay the dynamics losses from CUDA graphs, one per batch size (a GPU; "
                      "without torch.compile)"),
    "--no-group-by-length": ("group_by_length", False, "random batches instead of batches of similar length"),
    "--no-progress": ("progress", False, "hide progress bars"),
    "--trust-remote-code": ("trust_remote_code", True, "let transformers run the model's own code (its config's "
                            "auto_map: a hub model's modeling file); read it first"),
}


def add_flags(parser: argparse.ArgumentParser, *groups: dict) -> None:
    for group in groups:
        for flag, (_, tp, help_) in group.items():
            parser.add_argument(flag, type=tp, default=None, help=help_)


RUN_FOLDER_SWITCHES = {"--overwrite", "--resume", "--keep-checkpoints", "--hub-private"}
# scoring a model neither trains nor writes a run folder; it runs in float32 unless --bf16 / --fp16
EVALUATE_SWITCHES = {"--synthetic", "--no-progress", "--bf16", "--fp16", "--trust-remote-code"}


class Once(argparse.Action):
    """A flag given once: argparse keeps the last of a flag given twice, so `--config a.yaml --config b.yaml` read b
    alone without a word."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            raise argparse.ArgumentError(self, f"given twice ({getattr(namespace, self.dest)}, {values}): it reads "
                                               "one file; give one")
        setattr(namespace, self.dest, values)


def add_common(parser: argparse.ArgumentParser, model_flag: str | None = None, switches=SWITCHES) -> None:
    """--config, --set, the model flag and the ``switches`` (flag names) this command reads."""
    parser.add_argument("--config", action=Once, help="YAML file of config keys (README: \"Every option of the "
                        "method, and where it lives\"); flags override it")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set align.eps=0.1 (repeatable)",
    )
    if model_flag:
        parser.add_argument(model_flag, dest="model", default=None, help="model checkpoint folder or hub id")
    for flag, (_, _, help_) in SWITCHES.items():
        if flag in switches:
            parser.add_argument(flag, action="store_true", default=None, help=help_)


def config_from_args(
    args: argparse.Namespace, groups: list[dict], defaults: dict[str, Any] | None = None, **fixed: Any
) -> DistillConfig:
    """Build the config: ``defaults``, then --config, then --set, then explicit flags, then ``fixed``."""
    from ..distributed import note

    notes: list[str] = []
    yaml_layer, overrides, flags = _layers(args, groups, defaults, say=notes.append, fixed=fixed)
    try:
        cfg = build_config(defaults or {}, yaml_layer, *overrides, flags, fixed)
    except DynaKDError as e:  # a bad value or combination: name the file or --set that holds it, if one alone does
        sources = [(args.config, yaml_layer), *zip((f"--set {s}" for s in args.set), overrides)]
        raise DynaKDError(f"{_source_of(str(e), defaults or {}, sources, fixed)}{e}") from None
    for said in notes:  # (once the config holds: a config refused says so alone)
        note(said)
    return cfg


def given_settings(args: argparse.Namespace, groups: list[dict]) -> dict[str, Any]:
    """The settings the command gives itself (--config, --set and flags merged, nested), without any defaults. A key
    a layer unsets stays, as None: the command gives it (its default)."""
    yaml_layer, overrides, flags = _layers(args, groups, None)
    return typed(DistillConfig, functools.reduce(merge_dicts, map(underscored, [yaml_layer, *overrides, flags]), {}))


def _layers(args: argparse.Namespace, groups: list[dict], defaults: dict[str, Any] | None,
            say: Callable[[str], None] | None = None, fixed: dict[str, Any] | None = None):
    """The command's own config layers: the --config file, each --set, the flags (each layer checked on its own).
    What the file's own task chose, and what the task that runs does not read, are left to that task
    (``_for_the_task``; ``say``: takes what to say of it), as are the settings the command fixes (``fixed``:
    ``--teacher``, ``finetune``'s method)."""
    yaml_layer = load_run_config(args.config) if args.config else {}
    overrides = [parse_override(s) for s in args.set]
    for source, layer in [(args.config, yaml_layer), *zip((f"--set {s}" for s in args.set), overrides)]:
        try:  # a wrong key or value is named with the file or --set that holds it
            parse_layer(layer)
        except DynaKDError as e:
            raise DynaKDError(f"{source}: {e}") from None
    before_flags = merge_layers(defaults or {}, yaml_layer, *overrides)
    flags: dict[str, Any] = {}
    for group in groups:
        for flag, (key, _, _) in group.items():
            value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
            if value is None:
                continue
            if key in ("alpha", "beta") and weight_number(before_flags.get(key)) is None:
                value = {"start": value}  # the start of the config's schedule, else of the method's default
            flags = merge_dicts(flags, nest(key, value))
    for flag, (key, value, _) in SWITCHES.items():
        if getattr(args, flag.lstrip("-").replace("-", "_"), None):
            flags[key] = value
    if getattr(args, "model", None):
        flags["model"] = args.model
    # (each layer underscored once here: the file's keys may be spelt with dashes, as the flags are)
    later = [underscored(x) for x in (*overrides, flags, fixed or {})]
    trains = getattr(args, "command", None) in ("distill", "finetune")  # (bench's --output is its JSON file's)
    yaml_layer = _from_where_it_ran(args.config, underscored(yaml_layer), later, say, trains)
    return _for_the_task(args.config, yaml_layer, later, say), overrides, flags


def _from_where_it_ran(config: str | None, layer: dict[str, Any], later: list[dict[str, Any]],
                       say: Callable[[str], None] | None, trains: bool = True) -> dict[str, Any]:
    """``layer`` (the --config file's, underscored, as are the ``later`` layers) with its relative data and model paths
    counted from the folder its run ran in, where it is a run's own dynakd.yaml given from another folder
    (``rundir.paths_from_where_it_ran``: the file's folder ends with the ``output`` it records), and its ``output``
    the run's folder as found from here: the run's data and teacher were not found from here (a model path is counted
    so only where that folder holds it: else it may name a hub model), and the same command trained a second run into
    the recorded relative output counted from here; ``say``: takes what to say of the paths no ``later`` layer (--set,
    flags) gives; ``trains``: the command trains into ``output`` (distill, finetune), else it is left as it is."""
    import os
    from pathlib import Path

    from ..lending import holds_no
    from ..rundir import PATH_SETTINGS, holds_a_run, paths_from_where_it_ran, read_from_here

    if not config or not layer:
        return layer
    folder = Path(os.path.expanduser(config)).parent
    found = paths_from_where_it_ran(layer, folder, PATH_SETTINGS)
    where, here = read_from_here(layer, folder, PATH_SETTINGS)
    if trains and where is not None and holds_a_run(folder):
        # its output too: the run's own folder (a relative one here trained a second run); not a config of one's own
        # kept in a folder named as its output ("exp/kd": kd)
        found = found | {"output": os.path.relpath(where / layer["output"])}
    given = {k for x in later for k in x}
    if moved := [f"{k} {v}" for k, v in found.items() if v != layer.get(k) and k not in given]:
        if say:
            say(f"{config} is the record of a run in another folder: its paths as found from here, "
                f"{', '.join(moved)}")
    if (here := [k for k in here if k not in given]) and say:
        say(f"{config} is the record of a run in {where}, {holds_no(here, layer)}")
    return found


def _for_the_task(config: str | None, layer: dict[str, Any], later: list[dict[str, Any]],
                  say: Callable[[str], None] | None) -> dict[str, Any]:
    """``layer`` (the --config file's, underscored, as are the ``later`` layers) with what the task that runs does not
    read, or what the file's own task chose for itself, left to the task that runs, where no ``later`` layer (--set,
    flags) gives it; ``say``: takes what to say of it.
    - A GLUE folder (``data_dir``), which SQuAD and one's own files do not read: a GLUE run's dynakd.yaml reused with
      --task squad, or a SQuAD run's from before such folders were refused (refused where the command gives one).
    - The dynamics' pooling that the file's task's ``auto`` chose, which a run's dynakd.yaml from before it was saved
      as ``auto`` holds: reused with a task of the other kind, SST-2's ``mean`` gave SQuAD pooled dynamics.
    - The aligner and feature weight the file's method chose by default, which a run's dynakd.yaml spells out: a
      ``full`` run's reused with --method pkd trained Patient KD with OT and a weight from 10, not its fixed map
      from 100."""
    from ..config.schema import auto_pooling
    from ..data.tasks import get_task

    own = layer.get("task", DistillConfig.task)
    try:
        own, spec = get_task(str(own)).name, get_task(str(next((x["task"] for x in reversed(later)
                                                                  if x.get("task") is not None), own)))
    except DynaKDError:  # (an unknown task name: validation names it)
        return layer
    task, notes = spec.name, []
    if layer.get("data_dir") and not spec.reads_data_dir and not any("data_dir" in x for x in later):
        notes.append(f"data_dir {layer['data_dir']}, a GLUE folder, which task {task} does not read: left out")
        layer = {k: v for k, v in layer.items() if k != "data_dir"}
    dynamics = layer.get("dynamics") if isinstance(layer.get("dynamics"), dict) else {}
    pooling, theirs = dynamics.get("pooling"), auto_pooling(task)
    if "task" in layer and pooling not in (None, "auto", theirs) and pooling == auto_pooling(own) \
            and not any("pooling" in (x.get("dynamics") or {}) for x in later):
        notes.append(f"dynamics.pooling {pooling}, the one task {own} chose; task {task} takes its own, {theirs}")
        layer = {**layer, "dynamics": {**dynamics, "pooling": "auto"}}
    layer = _for_the_method(layer, later, notes)
    for note in notes if say else ():
        say(f"{config} gives {note}")
    return layer


def _for_the_method(layer: dict[str, Any], later: list[dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    """``_for_the_task``'s aligner and feature weight: ``layer`` without those its own method chose by default where
    the ``later`` layers name another method, whose own differ, and give none; what is left out goes to ``notes``."""
    import dataclasses

    mine = layer.get("method")  # (a file that names none chose nothing for a method: a record names its own)
    # (`--set method=` gives the default method back: another method where the file names one)
    method = next((x["method"] or DistillConfig.method for x in reversed(later) if "method" in x), mine)
    if method == mine or mine not in METHOD_TERMS or method not in METHOD_TERMS or not layer_term(method) \
            or not layer_term(mine):
        return layer
    align = layer.get("align") if isinstance(layer.get("align"), dict) else {}
    if align.get("name") is not None and align["name"] == default_aligner(mine) != default_aligner(method) \
            and not own_fixed_map(align) and not any("name" in (x.get("align") or {}) for x in later):
        notes.append(f"align.name {align['name']}, the one method {mine} chose; method {method} takes its own, "
                     f"{default_aligner(method)}")
        layer = {**layer, "align": {**align, "name": None}}
    ours, theirs = (default_beta(m) for m in (mine, method))
    if layer.get("beta") == dataclasses.asdict(ours) and ours != theirs and not any("beta" in x for x in later):
        notes.append(f"beta from {ours.start:g}, the one method {mine} chose; method {method} takes its own, from "
                     f"{theirs.start:g}")
        layer = {k: v for k, v in layer.items() if k != "beta"}
    return layer


def _source_of(message: str, defaults: dict[str, Any], sources: list[tuple[str | None, dict]], fixed: dict) -> str:
    """``"FILE: "`` when that config layer alone, over the defaults, fails with ``message``, else ``""`` (the flags,
    or settings that only fail together). Runs on the error path only."""
    for source, layer in sources:
        if not source:
            continue
        try:
            build_config(defaults, layer, fixed)
        except DynaKDError as e:
            if str(e) == message:
                return f"{source}: "
    return ""
