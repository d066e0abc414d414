"""``dynakd ablate``: run a sweep of distillation runs from a YAML file (resumable), then report."""

from __future__ import annotations

import argparse

from ..errors import DynaKDError
from ..notes import say
from .options import Once


def add_parser(sub) -> None:
    p = sub.add_parser("ablate", help="run a sweep of distillation runs from a YAML file (resumable), then report")
    p.add_argument("--config", required=True, action=Once,
                   help="sweep file: name, output, base, teacher, grid, smoke (README, 'Sweeps'; the source "
                        "repository's benchmarks/configs hold the project's own)")
    p.add_argument("--output", default=None, help="sweep folder (default: the file's 'output', else runs/NAME)")
    p.add_argument("--smoke", action="store_true",
                   help="shrink data and steps to a quick check of the sweep (seconds to minutes)")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="run every N-th cell from the K-th, so N processes (e.g. one per GPU) share a sweep folder")


def run(args: argparse.Namespace) -> None:
    from ..experiments.ablate import CellsFailed, load_sweep, parse_shard, run_sweep
    from ..experiments.report import build_report

    shard, failed = parse_shard(args.shard), None  # (the shard checked before the sweep file is read)
    try:
        results = run_sweep(load_sweep(args.config, smoke=args.smoke, output=args.output), shard)
    except CellsFailed as e:  # the other cells' report first, then the failures
        results, failed = e.results, e
    if shard[1] > 1:  # the other shards may still run: one report, when all are done
        print(f"shard {shard[0]}/{shard[1]} done; when every shard is: dynakd report {results.parent}")
    elif results.is_file():
        try:
            print(f"report: {build_report(results.parent)}")
        except DynaKDError as e:  # (the failed cells are the error to end on)
            if not failed:
                raise
            say(f"no report: {e}", stderr=True)
    if failed:
        raise failed
