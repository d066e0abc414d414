"""``dynakd report DIR``: ``results.jsonl`` -> ``report.md``, ``ablation.png`` and ``alignment_*.png``.

Scores are last-epoch dev scores, x100, mean +- sample sd over seeds. The delta vs ``kd`` pairs runs by seed (same
seed, same depth) and gives a 95% t interval over the paired differences. Where a method ran under more than one
setting (a learning-rate grid, say), a second table puts each method at its best setting beside ``kd`` at its best:
a method tuned against an untuned baseline is not a fair comparison. A score that could not be computed (``null``
in the file) makes its row's mean, sd and delta ``nan``; a record that lacks what the report reads is left out.
"""

from __future__ import annotations

import math
import shutil
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from scipy import stats

from ..config import METHODS, layer_term
from ..data.tasks import get_task
from ..errors import DynaKDError
from ..metrics import primary_metric
from .ablate import LAYER_TERM_OPTIONS, cell_key, read_results


def load_results(folder: Path) -> list[dict[str, Any]]:
    path = folder / "results.jsonl"
    if not path.is_file():
        smoke = folder / "smoke" / "results.jsonl"
        hint = f"; a --smoke run's are in {smoke.parent}" if smoke.is_file() else ": run `dynakd ablate` first"
        raise DynaKDError(f"no results.jsonl in {folder}{hint}" if folder.is_dir() else f"no folder {folder}")
    records, partial = read_results(path)
    if partial:
        print(f"note: {path} ends in a partial record (a run stopped while writing it); the report leaves it out",
              file=sys.stderr, flush=True)
    if not records:
        raise DynaKDError(f"{path} holds no finished run yet")
    return records


# What the report reads of a record (``run_sweep`` writes them all), nested keys dotted; ``cell`` and ``output`` are
# optional.
REPORTED = ("task", "method", "student_layers", "seed", "align", "eval", "teacher_eval", "model.parameters",
            "train.steps_per_second")


def _holds(record: dict[str, Any], dotted: str) -> bool:
    value: Any = record
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return True


def reportable(records: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """The records that hold what the report reads. Others (an older DynaKD's, or edited by hand) are left out with a
    note naming how many and what they lack, rather than stopping the report on the first (a KeyError)."""
    missing = [[k for k in REPORTED if not _holds(r, k)] for r in records]
    kept = [r for r, lacks in zip(records, missing) if not lacks]
    if len(kept) < len(records):
        lacked = sorted({k for lacks in missing for k in lacks}, key=REPORTED.index)
        print(f"note: {path}: {len(records) - len(kept)} of {len(records)} record(s) lack {', '.join(lacked)} "
              "(written by hand or by an older DynaKD); the report leaves them out", file=sys.stderr, flush=True)
    if not kept:
        raise DynaKDError(f"{path}: no record holds what the report reads ({', '.join(REPORTED)})")
    return kept


def score(record: dict[str, Any], metric: str) -> float:
    ev = record["eval"]
    key = metric if metric in ev else next((k for k in ev if k.endswith(metric)), None)
    if key is None:
        raise DynaKDError(f"run {record.get('key', '?')} has no '{metric}' score")
    return math.nan if ev[key] is None else 100.0 * ev[key]  # null: a score that could not be computed (jsonfile)


def number(value: Any) -> float:
    """A number the report reads, NaN for null (jsonfile writes a non-finite number so; or a record edited by hand)."""
    return math.nan if value is None else float(value)


def mean(values: Iterable[float]) -> float:
    """The mean, NaN where a value is: a run whose score could not be computed (say a correlation on constant
    predictions) shows in its row, rather than vanishing from it or stopping the report."""
    values = list(values)
    return math.nan if any(math.isnan(v) for v in values) else statistics.mean(values)


def stdev(values: Iterable[float]) -> float:
    """The sample sd, NaN as ``mean`` (``statistics.stdev`` raises on a NaN)."""
    values = list(values)
    return math.nan if any(math.isnan(v) for v in values) else statistics.stdev(values)


def group_of(record: dict[str, Any]) -> str:
    """Runs that differ only in their seed share a group."""
    cell = record.get("cell", {})
    return cell_key({k: v for k, v in cell.items() if k != "seed"} | {"student_layers": record["student_layers"],
                                                                    "method": record["method"]})


def kd_partner(record: dict[str, Any]) -> str:
    """The group of the ``kd`` runs to pair with: same settings except the method and layer-term options."""
    cell = {k: v for k, v in record.get("cell", {}).items()
            if k != "seed" and not k.startswith(LAYER_TERM_OPTIONS)}
    return cell_key(cell | {"student_layers": record["student_layers"], "method": "kd"})


def variant(record: dict[str, Any]) -> str:
    """Grid settings other than method, aligner, depth and seed (shown in the table)."""
    skip = {"seed", "method", "align.name", "student_layers"}
    return ", ".join(f"{k}={v}" for k, v in sorted(record.get("cell", {}).items()) if k not in skip) or "-"


class Delta(NamedTuple):
    """A row's paired difference to ``kd``: the mean over shared seeds, its 95% t interval (NaN for one pair), the
    number of pairs and how many of them the row is ahead in, tied or behind."""

    mean: float
    low: float
    high: float
    pairs: int
    ahead: int
    tied: int
    behind: int


def paired_delta(a: dict[int, float], b: dict[int, float]) -> Delta | None:
    """Mean of ``a - b`` over shared seeds and its 95% t interval."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    d = [a[s] - b[s] for s in seeds]
    signs = (sum(x > 0 for x in d), sum(x == 0 for x in d), sum(x < 0 for x in d))
    if len(d) < 2:
        return Delta(d[0], math.nan, math.nan, 1, *signs)
    half = stats.t.ppf(0.975, len(d) - 1) * stdev(d) / math.sqrt(len(d))
    return Delta(mean(d), mean(d) - half, mean(d) + half, len(d), *signs)


def _fmt(values: list[float]) -> str:
    return f"{mean(values):.2f} ± {stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def _fmt_teacher(values: list[float]) -> str:
    """One teacher shared by the seeds (or teachers that scored alike) is one score, not a spread of 0."""
    return f"{values[0]:.2f}" if len(set(values)) == 1 else _fmt(values)


def summarise(records: list[dict[str, Any]], metric: str, others: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    by_group: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        by_group[group_of(r)][r["seed"]] = r
    rows = []
    for runs in by_group.values():
        first = next(iter(runs.values()))
        scores = {s: score(r, metric) for s, r in runs.items()}
        kd = by_group.get(kd_partner(first)) if first["method"] != "kd" else None
        rows.append({
            "depth": first["student_layers"], "method": first["method"],
            "align": first["align"] if layer_term(first["method"]) else "-",
            "variant": variant(first),
            "scores": list(scores.values()), "by_seed": scores,
            "others": {m: [score(r, m) for r in runs.values()] for m in others},
            "delta": paired_delta(scores, {s: score(r, metric) for s, r in kd.items()}) if kd else None,
            "teacher": [score({"eval": r["teacher_eval"], "key": "teacher"}, metric) for r in runs.values()],
            "params_m": number(first["model"]["parameters"]) / 1e6,
            "steps_per_s": mean(number(r["train"]["steps_per_second"]) for r in runs.values()),
        })
    order = list(METHODS)
    rows.sort(key=lambda r: (-r["depth"], order.index(r["method"]) if r["method"] in order else 9, r["align"],
                             r["variant"]))
    return rows


MAX_PLOTTED = 20  # bars per depth in ablation.png (tab20's colours); beyond, it plots each method at its best


def best_settings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (depth, method, aligner) at its best mean over the settings it ran, its delta paired with ``kd`` at its
    best setting at that depth; empty when no method ran more than one setting.

    Rows with at least three seeds (or the most of their kind, if fewer) compete, ranked by their mean over the seeds
    they all share: a two-seed screen cannot win on luck, and extra seeds of one row do not tilt the ranking.
    """
    kinds: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        kinds[(r["depth"], r["method"], r["align"])].append(r)
    if all(len(group) == 1 for group in kinds.values()) and not unpaired(rows):
        return []
    best = {}
    for kind, group in kinds.items():
        enough = min(3, max(len(r["scores"]) for r in group))
        rivals = [r for r in group if len(r["scores"]) >= enough]
        shared = set.intersection(*(set(r["by_seed"]) for r in rivals))
        best[kind] = max(rivals, key=lambda r: _ranked(mean(r["by_seed"][s] for s in shared) if shared
                                                      else mean(r["scores"])))
    out = []
    for (depth, method, _), r in best.items():
        kd = best.get((depth, "kd", "-"))
        out.append(r | {"delta": paired_delta(r["by_seed"], kd["by_seed"]) if kd and method != "kd" else None})
    return out  # in the order of ``rows``, which ``summarise`` sorted


def unpaired(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with no ``kd`` run of their own settings to pair with, though ``kd`` ran at their depth (e.g. each method
    at a learning rate of its own): the best-settings table pairs them."""
    kd_depths = {r["depth"] for r in rows if r["method"] == "kd"}
    return [r for r in rows if r["method"] != "kd" and r["depth"] in kd_depths and r.get("delta") is None]


def _ranked(value: float) -> float:
    """A NaN mean ranks last (``max`` compares NaN as neither larger nor smaller)."""
    return -math.inf if math.isnan(value) else value


def markdown(rows: list[dict[str, Any]], metric: str, title: str) -> str:
    best = best_settings(rows)
    lone = (" A row with no `kd` run of its own other settings shows '-'; the second table pairs it."
            if unpaired(rows) else "")
    text = (f"# {title}\n\nDev {metric} x100 at the end of training; mean ± sd over seeds. "
            "Δ vs kd: the mean difference to `kd` with the same other settings, paired by seed, with its 95% t "
            f"interval and the seeds it is ahead / tied / behind in.{lone}\n\n" + table(rows, metric))
    if best:
        text += ("\n## Each method at its best setting\n\nPer depth, each method and aligner at the setting with "
                 "the best mean among those it ran with three or more seeds (or with the most seeds it ran, if fewer; "
                 "over the seeds they share); Δ pairs it "
                 "with `kd` at its own best setting. Settings are chosen on the same dev set that scores them, so "
                 "every row is optimistic alike.\n\n" + table(best, metric))
    return text


def table(rows: list[dict[str, Any]], metric: str) -> str:
    others = list(rows[0]["others"]) if rows else []  # the task's other metrics (e.g. exact_match beside f1)
    lines = [f"| student layers | method | aligner | other settings | {metric} | seeds | Δ vs kd [95% CI] "
             "(ahead/tied/behind) | teacher "
             f"| {''.join(f'{m} | ' for m in others)}params (M) | train steps/s |",
             "|---" * (10 + len(others)) + "|"]
    for r in rows:
        d = r["delta"]
        delta = "-" if d is None else (f"{d.mean:+.2f}" + ("" if d.pairs < 2 else f" [{d.low:+.2f}, {d.high:+.2f}]")
                                       + f" ({d.ahead}/{d.tied}/{d.behind})")
        extra = "".join(f"{_fmt(r['others'][m])} | " for m in others)
        lines.append(f"| {r['depth']} | {r['method']} | {r['align']} | {r['variant']} | {_fmt(r['scores'])} "
                     f"| {len(r['scores'])} | {delta} | {_fmt_teacher(r['teacher'])} "
                     f"| {extra}{r['params_m']:.1f} | {r['steps_per_s']:.2f} |")
    return "\n".join(lines) + "\n"


def build_report(folder: str | Path) -> Path:
    """Write ``report.md`` and the plots from ``results.jsonl``; return the report's path."""
    from .plots import plot_ablation

    folder = Path(folder)
    records = reportable(load_results(folder), folder / "results.jsonl")
    task = get_task(records[0]["task"])
    metric = primary_metric(task)
    rows = summarise(records, metric, tuple(m for m in task.metrics if m != metric))
    plotted, caption, best = rows, "", best_settings(rows)
    if len({(r["method"], r["align"], r["variant"]) for r in rows}) > MAX_PLOTTED and best:
        plotted = best  # beyond the palette's 20 colours the bars and the legend cannot be told apart
        caption = "The plot shows each method at its best setting (the second table): too many settings for one.\n\n"
    plot_ablation(plotted, folder / "ablation.png", metric)
    copy_alignment_plots(records, folder)
    name = folder.name or folder.resolve().name  # (`dynakd report .` has no name of its own)
    name = f"{folder.resolve().parent.name} (smoke)" if name == "smoke" else name
    text = markdown(rows, metric, f"Ablation: {name}")
    text += "\n" + caption + "![ablation](ablation.png)\n"
    (folder / "report.md").write_text(text)
    return folder / "report.md"


def copy_alignment_plots(records: list[dict[str, Any]], folder: Path) -> None:
    """One heatmap per aligner and depth: the plan of the first seed's run of ``full`` (or any layer method)."""
    chosen: dict[tuple[str, int], dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: (r["method"] != "full", r["seed"])):
        if not layer_term(r["method"]):
            continue
        chosen.setdefault((r["align"], r["student_layers"]), r)
    for (align, depth), r in chosen.items():
        src = Path(r["output"], "alignment.png") if r.get("output") else None  # (a record may name no folder)
        if src and src.is_file():
            shutil.copy(src, folder / f"alignment_{align}_L{depth}.png")
