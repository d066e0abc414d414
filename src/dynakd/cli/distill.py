"""``dynakd distill`` (alias ``distil``): distil a fine-tuned teacher into a smaller student."""

from __future__ import annotations

import argparse

from .options import DATA_FLAGS, METHOD_FLAGS, TRAIN_FLAGS, add_common, add_flags, config_from_args, given_settings


def add_parser(sub) -> None:
    p = sub.add_parser("distill", aliases=["distil"], help="distil a fine-tuned teacher into a smaller student")
    add_common(p)
    p.add_argument("--teacher", default=None, help="fine-tuned teacher folder or hub id")
    add_flags(p, DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS)


def run(args: argparse.Namespace):
    from .. import runner
    from ..lending import lent_config
    from ..rundir import note_not_read

    extra = {"teacher": args.teacher} if args.teacher else {}
    groups = [DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS]
    given = given_settings(args, groups)
    # a DynaKD teacher lends its task and data (and its input length and QA windows) where the command names none
    cfg = lent_config("distill", given | extra, lambda lent: config_from_args(args, groups, defaults=lent, **extra))
    note_not_read(cfg, given)
    _note_task_from_a_file(args, cfg)
    return runner.distill(cfg)


def _note_task_from_a_file(args: argparse.Namespace, cfg) -> None:
    """Say so when method ``task`` comes from the --config file alone (a fine-tune's saved dynakd.yaml, reused to
    distil): the student then learns from labels alone, and the teacher, loaded and scored, teaches it nothing."""
    from ..config import parse_override
    from ..distributed import is_first_process
    from ..notes import say

    if cfg.method != "task" or not args.config or args.method is not None \
            or any("method" in parse_override(s) for s in args.set) or not is_first_process():
        return
    teacher = f", and the teacher {cfg.teacher} is scored beside it but teaches it nothing" if cfg.teacher else ""
    say(f"{args.config} gives method task: the student learns from labels alone{teacher}; give --method kd or full "
        "to distil")
