"""``dynakd report``: rebuild report.md and the plots of a sweep folder from its results.jsonl, or the chart of a
``dynakd bench`` JSON file."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="rebuild report.md and the plots of a sweep folder from its results.jsonl, or "
                                      "draw a bench JSON file's chart")
    p.add_argument("folder", help="sweep folder holding results.jsonl, or a JSON file `dynakd bench --output` wrote "
                                  "(its chart is written beside it, .png)")


def run(args: argparse.Namespace) -> None:
    if Path(args.folder).suffix == ".json" and not Path(args.folder).is_dir():
        from ..experiments.bench import plot_bench_file

        print(f"chart: {plot_bench_file(Path(args.folder))}")
        return
    from ..experiments.report import build_report

    print(f"report: {build_report(args.folder)}")
