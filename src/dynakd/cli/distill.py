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
    return runner.distill(cfg)
