"""``dynakd report``: rebuild report.md and the plots of a sweep folder from its results.jsonl."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="rebuild report.md and the plots of a sweep folder from its results.jsonl")
    p.add_argument("folder", help="sweep folder holding results.jsonl")


def run(args: argparse.Namespace) -> None:
    from ..experiments.report import build_report

    print(f"report: {build_report(args.folder)}")
