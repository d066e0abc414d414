"""``dynakd evaluate``: score a model folder on a task; prints and writes metrics.json."""

from __future__ import annotations

import argparse

from ..config import parse_override
from .options import DATA_FLAGS, EVALUATE_SWITCHES, add_common, add_flags, config_from_args, given_settings

# What scoring a model reads: no training rows besides those a dev split or SQuAD's articles hold out; no --seed
# (scoring draws nothing at random; the rows of --max-eval-samples come from data_seed: --set data_seed=N).
EVALUATE_FLAGS = {
    **{k: v for k, v in DATA_FLAGS.items() if k not in ("--max-train-samples", "--transfer-samples")},
    # a DynaKD run folder lends its own task, data and input length (lending.evaluation_defaults)
    "--task": ("task", str, "GLUE task (sst2 mrpc qnli mnli qqp rte cola stsb), squad (extractive QA) or csv / json "
                            "(default: the task a DynaKD run folder was trained on, else sst2)"),
    "--dev-split": ("dev_split", float, "score the part of dev that a run trained with --dev-split F held out (a "
                                        "DynaKD run folder's own by default)"),
    "--max-seq-length": ("max_seq_length", int, "truncate inputs to this many tokens (default: a DynaKD run "
                                                "folder's, else 128)"),
    "--output": ("output", str, "folder for metrics.json (default: the model folder, under the key 'evaluate')"),
    "--dataloader-num-workers": ("dataloader_num_workers", int, "worker processes that collate batches (default "
                                                                "0: the scoring process)"),
}


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score a model folder on a task; prints and writes metrics.json")
    add_common(p, "--model", EVALUATE_SWITCHES)
    add_flags(p, EVALUATE_FLAGS)


def run(args: argparse.Namespace):
    from .. import runner
    from ..lending import lent_config

    if _a_runs_own_record(args):  # its output is that run's folder, not where this command's scores go
        args.set = [*args.set, "output="]
    # a model folder DynaKD wrote is scored on its task and data, with the input length (and QA windows) it was
    # trained with, unless the command says otherwise (--model, or the model a --config names: checked whole below)
    given = given_settings(args, [EVALUATE_FLAGS])
    cfg = lent_config("evaluate", given, lambda lent: config_from_args(args, [EVALUATE_FLAGS], defaults=lent))
    _note_training_settings(args)
    return runner.evaluate(cfg)


# Settings of training, which a score does not read: given with --set, they were taken without a word (their flags
# are refused as options evaluate lacks). A --config file may hold them all: a run's own dynakd.yaml.
TRAINING_ONLY = frozenset({
    "teacher", "student", "student_layers", "student_layer_ids", "max_train_samples", "transfer_samples", "overwrite",
    "epochs", "max_steps", "batch_size", "gradient_accumulation_steps", "ddp_find_unused_parameters", "lr",
    "weight_decay", "warmup_ratio", "max_grad_norm", "torch_compile", "torch_compile_mode", "cuda_graphs",
    "logging_steps", "report_to", "eval_steps", "save_steps", "resume", "keep_checkpoints", "eval_teacher",
    "teacher_cache", "teacher_cache_dtype", "push_to_hub", "hub_private", "method", "temperature", "task_weight",
    "alpha", "beta", "hidden_weight", "staged", "balance", "dynamics", "align"})


def _note_training_settings(args: argparse.Namespace) -> None:
    from ..config import underscored
    from ..distributed import note

    given = {key for s in args.set for key in underscored(parse_override(s))}
    if unread := sorted(given & TRAINING_ONLY):
        note(f"dynakd evaluate does not read {', '.join(unread)} (settings of training): the score is as it would be "
             "without (eval_batch_size is the batch size of scoring)")


def _a_runs_own_record(args: argparse.Namespace) -> bool:
    """Whether --config is a finished run's own ``dynakd.yaml`` (its ``output`` names the folder the file is in), the
    command scores a --model of its own and gives no --output: scores of another model were refused for "--output
    <run> holds the run of another model", an --output the command never gave; the score goes where it would
    without the file. (Without --model the file's own model is scored, which the refusal still guards.)"""
    import os
    from pathlib import Path

    from ..config import load_yaml
    from ..rundir import CONFIG_NAME, ran_in, same_file

    if not (args.config and args.model) or args.output is not None \
            or any("output" in parse_override(s) for s in args.set):
        return False
    config = Path(os.path.expanduser(args.config))
    if config.name != CONFIG_NAME or not (config.parent / "metrics.json").is_file():
        return False
    output = load_yaml(config).get("output")
    return isinstance(output, str) and (same_file(output, str(config.parent))
                                        or ran_in(config.parent, output) is not None)
