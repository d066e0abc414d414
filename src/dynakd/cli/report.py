"""``dynakd report``: rebuild report.md and the plots of a sweep folder from its results.jsonl, the chart of a
``dynakd bench`` JSON file, or a table of run folders side by side (``experiments/compare.py``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import DynaKDError


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="rebuild report.md and the plots of a sweep folder from its results.jsonl, "
                                      "draw a bench JSON file's chart, or print run folders side by side")
    p.add_argument("folder", metavar="PATH", nargs="+",
                   help="sweep folder holding results.jsonl, a JSON file `dynakd bench --output` wrote (its chart is "
                        "written beside it, .png), or run folders of distill or finetune, or a folder holding them (a "
                        "table of their scores and the settings they differ in, a task, printed)")


def run(args: argparse.Namespace) -> None:
    from ..experiments.compare import compare_runs, runs_in
    from ..rundir import is_run_folder

    paths = [Path(os.path.expanduser(p)) for p in args.folder]  # (--flag=~/x and "~/x" reach it unexpanded)
    if len(paths) > 1 or is_run_folder(paths[0]):
        print(compare_runs(paths), end="")
        return
    if not (paths[0] / "results.jsonl").is_file() and (runs := runs_in(paths[0])):  # a folder of runs made by hand
        print(compare_runs(runs), end="")
        return
    path = paths[0]
    if path.name == "results.jsonl" and path.is_file():  # a sweep's results named rather than its folder
        path = path.parent
    elif path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        raise DynaKDError(_yaml_given(path))
    elif path.is_file() and path.suffix.lower() != ".json" and not _looks_like_json(path):  # (it was read as a
        # bench's JSON: "Expecting value")
        where = f"; the sweep's folder is {path.parent}" if (path.parent / "results.jsonl").is_file() else ""
        raise DynaKDError(f"{path} is no sweep's folder nor a bench's JSON file, which report reads{where}")
    elif path.is_file() or (path.suffix.lower() == ".json" and not path.is_dir()):  # (a missing .json: said so there)
        from ..experiments.bench import plot_bench_file

        print(f"chart: {plot_bench_file(path)}")
        return
    from ..experiments.report import build_report

    print(f"report: {build_report(path)}")


def _yaml_given(path: Path) -> str:
    """What ``report`` says of a YAML file: a sweep file names the folder its results are in (its ``output``, else
    runs/NAME, as ``ablate`` writes them)."""
    from ..config import SWEEP_SECTIONS, load_yaml
    from ..experiments.ablate import sweep_folder

    try:
        raw = load_yaml(path)
    except DynaKDError:
        raw = None
    if isinstance(raw, dict) and set(SWEEP_SECTIONS) & set(raw):
        return (f"{path} is a sweep file: report reads the folder its results are in, dynakd report "
                f"{sweep_folder(raw, path)}")
    return f"{path} is a YAML file: report reads a sweep's folder (results.jsonl) or a bench's JSON file"


def _looks_like_json(path: Path) -> bool:
    """Whether a file opens as a JSON object does (a bench's results may be named without .json)."""
    try:
        with path.open("rb") as f:
            return f.read(4096).lstrip().startswith(b"{")
    except OSError:
        return True  # (said where it is read)
