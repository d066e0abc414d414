"""``dynakd finetune``: fine-tune a model on a task (the teacher, or a task-only student)."""

from __future__ import annotations

import argparse

from .options import DATA_FLAGS, SWITCHES, TRAIN_FLAGS, add_common, add_flags, config_from_args, given_settings

FINETUNE_DATA_FLAGS = {k: v for k, v in DATA_FLAGS.items() if k != "--transfer-samples"}  # labelled rows only


def add_parser(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model on a task (the teacher, or a task-only student)")
    add_common(p, "--model", SWITCHES.keys() - {"--cuda-graphs"})  # (no dynamics to replay)
    add_flags(p, FINETUNE_DATA_FLAGS, TRAIN_FLAGS)


def run(args: argparse.Namespace):
    from .. import runner
    from ..rundir import note_not_read_by_task

    # (checked as what runs, method task: a shared file's fixed-map settings were refused as if it were full's)
    cfg = config_from_args(args, [FINETUNE_DATA_FLAGS, TRAIN_FLAGS], method="task")
    note_not_read_by_task(cfg, given_settings(args, [FINETUNE_DATA_FLAGS, TRAIN_FLAGS]))
    return runner.finetune(cfg)
