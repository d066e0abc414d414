"""``dynakd report``: rebuild report.md and the plots of a sweep folder from its results.jsonl, or the chart of a
``dynakd bench`` JSON file."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="rebuild report.md and the plots of a sweep folder from its results.jsonl, or "
                                      "draw a bench JSON file's chart")
    p.add_argument("folder", metavar="PATH", help="sweep folder holding results.jsonl, or a JSON file `dynakd bench "
                                                  "--output` wrote (its chart is written beside it, .png)")


def run(args: argparse.Namespace) -> None:
    path = Path(args.folder)
    if path.name == "results.jsonl" and path.is_file():  # a sweep's results named rather than its folder
        path = path.parent
    elif path.is_file() or (path.suffix.lower() == ".json" and not path.is_dir()):  # (a missing .json: said so there)
        from ..experiments.bench import plot_bench_file

        print(f"chart: {plot_bench_file(path)}")
        return
    from ..experiments.report import build_report

    print(f"report: {build_report(path)}")
