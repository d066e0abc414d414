"""Ablation chart: one panel per student depth, one row per method, aligner and other settings (a dot at the mean over
seeds, an sd whisker), the teacher as a dashed line; the alignment heatmaps the report copies from its runs; and
the bench's chart (``plot_bench``): time, where a step's time goes, and peak memory, against the speed targets.

The rows lie across the page so that a label, however long, wraps beside its row instead of widening the figure; each
row's numbers are written at its right end. Figures are built without ``pyplot`` (see ``dynakd.plots``)."""

from __future__ import annotations

import math
import shutil
import textwrap
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..config import ALIGNER_READS, METHODS, AlignConfig, layer_term
from .report import clear, mean, note, score, stdev

LABEL_WIDTH = 36  # characters in a line of a row's label before it wraps
LINE_INCHES = 0.19  # the height of one line of a label


def plot_ablation(rows: list[dict[str, Any]], path: Path, metric: str) -> None:
    depths = sorted({r["depth"] for r in rows}, reverse=True)
    panels = [sorted((r for r in rows if r["depth"] == d), key=_row_order) for d in depths]
    heights = [[len(_label(r)) + 0.5 for r in panel] for panel in panels]  # a row: its label's lines and a gap
    fig = Figure(figsize=(7.5, 0.6 + 0.55 * len(panels) + LINE_INCHES * sum(map(sum, heights))))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [sum(h) for h in heights]})[:, 0]
    colours = _colours(rows)
    for ax, depth, panel, h in zip(axes, depths, panels, heights):
        _panel(ax, depth, panel, h, colours)
    low, high = _limits(rows)
    axes[0].set_xlim(low, high)  # (shared: every depth on one scale)
    for ax in axes:
        if low < 0 < high:  # (a range across 0: the line shows which side a score is on)
            ax.axvline(0, color="black", linewidth=0.8)
    paired = any(r.get("delta") is not None for r in rows)
    axes[-1].set_xlabel(f"dev {metric} (x100)\ndot: mean over the row's n seeds; whisker: ± sd (none for one seed)"
                        + ("\nΔkd: the mean difference to kd paired by seed, its 95% interval; * where it leaves 0 out"
                           " (whiskers that overlap can still differ so)" if paired else ""), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # (tight: the numbers beside the axes are kept)


def _panel(ax, depth: int, panel: list[dict[str, Any]], heights: list[float], colours: dict) -> None:
    """One depth's rows top to bottom, each as tall as its label, with its numbers at the right."""
    ys = [sum(heights[:k]) + h / 2 for k, h in enumerate(heights)]
    means = [mean(r["scores"]) for r in panel]
    # a dot, not a bar: the axis starts near the lowest score, where a bar's length would not be its score
    scored = [(m, y, colours[(r["method"], r["align"])]) for m, y, r in zip(means, ys, panel) if not math.isnan(m)]
    if scored:
        xs, dots, fill = zip(*scored)
        ax.scatter(xs, dots, s=60, c=list(fill), edgecolors="black", linewidths=0.6, zorder=3)
    spread = [(m, y, stdev(r["scores"])) for m, y, r in zip(means, ys, panel)
              if len(r["scores"]) > 1 and not math.isnan(m)]  # one seed has no sd: no whisker, not a whisker of 0
    if spread:
        xs, ws, es = zip(*spread)
        ax.errorbar(xs, ws, xerr=es, fmt="none", ecolor="black", elinewidth=1, capsize=3)
    for y, r in zip(ys, panel):
        ax.text(1.02, y, _numbers(r), transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.set_yticks(ys, ["\n".join(_label(r)) for r in panel], fontsize=8)
    ax.set_ylim(sum(heights), 0)  # the table's first row on top
    teacher = [t for r in panel for t in r["teacher"] if not math.isnan(t)]
    title = f"{depth}-layer student"
    if teacher:  # the ceiling the scores are read against
        ax.axvline(level := mean(teacher), color="0.3", linestyle="--", linewidth=1)
        title += f"; dashed line: the teacher ({level:.2f})"
    ax.set_title(title, fontsize=9, loc="left")
    ax.tick_params(axis="x", labelsize=8)


def _label(row: dict[str, Any]) -> list[str]:
    """The row's method, aligner and other settings, wrapped to lines of ``LABEL_WIDTH`` (breaking after commas)."""
    name = (row["method"] if row["align"] == "-" else f"{row['method']} / {row['align']}")
    name += "" if row["variant"] == "-" else f" ({row['variant']})"
    return textwrap.wrap(name, LABEL_WIDTH)


def _numbers(row: dict[str, Any]) -> str:
    """``mean ± sd  n=3`` (no sd for one seed); ``n/a`` where no seed has a score; a count of the runs left out; and
    the paired difference to ``kd`` the report's table gives (``Δkd +0.74 [+0.19,+1.29]*``), which sds that overlap do
    not tell."""
    n, nan = len(row["scores"]), row.get("nan", 0)
    m = mean(row["scores"])
    text = "n/a" if math.isnan(m) else f"{m:.2f}" + (f" ± {stdev(row['scores']):.2f}" if n > 1 else "") + f"  n={n}"
    text += f" (+{nan} nan)" if nan else ""
    if (d := row.get("delta")) is not None:
        interval = "" if d.pairs < 2 else f" [{d.low:+.2f},{d.high:+.2f}]" + ("*" if clear(d) else "")
        text += f"  Δkd {d.mean:+.2f}{interval}" + (f" ({d.pairs} paired)" if d.pairs < n else "")
    return text


def _limits(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """The score axis: every whisker's ends and the teachers inside, with a little room on either side (not past 0
    for scores that are all positive, nor for negative ones), within -100..100."""
    ends = [t for r in rows for t in r["teacher"] if not math.isnan(t)]
    for r in rows:
        if not math.isnan(m := mean(r["scores"])):
            sd = stdev(r["scores"]) if len(r["scores"]) > 1 else 0.0
            ends += [m - sd, m + sd]
    if not ends:
        return 0.0, 100.0
    lo, hi = min(ends), max(ends)
    pad = max(1.0, 0.1 * (hi - lo))
    low, high = lo - 2 * pad, hi + pad
    low, high = (max(0.0, low) if lo >= 0 else low), (min(0.0, high) if hi <= 0 else high)
    if high <= low:  # every score 0 (a tiny QA student's F1): room on both sides (matplotlib warned of a singular axis)
        low, high = low - 1.0, high + 1.0
    return max(-100.0, low), min(100.0, high)


# Each aligner's shade of its method's hue, the same in every report: fixed darker, OT the hue itself, attention
# lighter; an aligner of one's own between OT and attention. (Shades by a report's own aligners made OT dark in one
# picture and light in the next.)
ALIGN_SHADES = {"fixed": -0.4, "ot": 0.0, "attention": 0.5}
OWN_SHADE = 0.25


def _colours(rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[float, ...]]:
    """One colour per (method, aligner): each method a hue of its own, each aligner a shade of it (``ALIGN_SHADES``),
    the same in every report."""
    out = {}
    for method, align in {(r["method"], r["align"]) for r in rows}:
        base = to_rgb(colormaps["tab10"](_order(method) % 10))
        shade = 0.0 if align == "-" else ALIGN_SHADES.get(align, OWN_SHADE)  # below 0 toward black, above toward white
        out[(method, align)] = tuple(c * (1 + shade) if shade < 0 else c + (1 - c) * shade for c in base)
    return out


def _row_order(row: dict[str, Any]) -> tuple:
    return _order(row["method"]), row["align"], row["variant"]


def _order(method: str) -> int:
    order = list(METHODS)
    return order.index(method) if method in order else len(order)


def alignment_plots(records: list[dict[str, Any]], folder: Path, metric: str) -> list[str]:
    """One ``alignment_<aligner>_L<depth>.png`` per aligner and depth (and per variant of the aligner, where its
    settings differ among the runs: ``alignment_attention_relative_L2.png``), copied from a run's folder: the aligner's
    running plan at the end of training of one run, chosen among the runs with a ``metric`` score (a diverged run's
    plan may be NaN; where none has one, among all), from those of ``full`` (else of another layer method), the
    lowest seed's, of those the first in the file. Returns the report's words naming the run each shows.

    A run folder that is not where the record says (a relative path counts from the folder ``ablate`` ran in) is
    looked for in this folder's ``cells/``, then from this folder's parents; one found nowhere is named in a note,
    and an earlier report's picture of it stays, said to be that. Pictures of aligners and depths the results no
    longer hold are removed."""
    chosen: dict[tuple[str, int, tuple], dict[str, Any]] = {}
    variant = _variants([r for r in records if layer_term(r["method"])])
    for r in sorted(records, key=lambda r: (math.isnan(score(r, metric, missing=math.nan)), r["method"] != "full",
                                            r["seed"])):
        if layer_term(r["method"]):
            chosen.setdefault((r["align"], r["student_layers"], variant(r)), r)
    names = {where: f"alignment_{where[0]}{_variant_said(where[2])}_L{where[1]}.png" for where in chosen}
    for old in folder.glob("alignment_*.png"):
        if old.name not in names.values():
            old.unlink()
    said, missing = [], []
    for where, r in sorted(chosen.items()):
        name, key = names[where], r.get("key", "?")
        if (run := run_folder(r.get("output"), folder)) is not None:
            shutil.copy(run / "alignment.png", folder / name)
            said.append(f"`{name}` of `{key}`")
        elif (folder / name).is_file():
            said.append(f"`{name}` an earlier report's (the folder of `{key}` is not on this machine)")
            missing.append(f"{name} (an earlier report's stays): {r.get('output')}")
        elif r.get("output"):  # (a record written by hand may name no folder)
            said.append(f"`{name}` not drawn (the folder of `{key}` is not on this machine)")
            missing.append(f"{name}: {r['output']}")
    if missing:
        note(f"{len(missing)} alignment heatmap(s) not drawn, their runs' folders hold no alignment.png here (run the "
             f"report where the sweep ran, or keep its cells/ beside results.jsonl): {'; '.join(missing)}",
             in_report=False)
    return said


def _variants(records: list[dict[str, Any]]):
    """The record -> its variant of its aligner: the aligner's own settings (``ALIGNER_READS``) that differ among the
    records of its aligner and depth, as ``((key, value), ...)`` with those at their defaults left out, so that each
    variant has its picture (the attention aligner with and without ``relative``) and a sweep of one variant keeps
    the plain name ``alignment_<aligner>_L<depth>.png``."""
    def read(r: dict[str, Any]) -> dict[str, Any]:
        align = (r.get("config") or {}).get("align") or {}
        return {k: align[k] for k in sorted(ALIGNER_READS.get(r["align"], ())) if k in align}

    seen: dict[tuple[str, int], dict[str, set]] = {}
    for r in records:
        for k, v in read(r).items():
            seen.setdefault((r["align"], r["student_layers"]), {}).setdefault(k, set()).add(repr(v))
    defaults = AlignConfig()

    def variant(r: dict[str, Any]) -> tuple:
        varying = {k for k, values in seen.get((r["align"], r["student_layers"]), {}).items() if len(values) > 1}
        return tuple((k, v) for k, v in read(r).items() if k in varying and v != getattr(defaults, k, None))

    return variant


def _variant_said(variant: tuple) -> str:
    """``_fixed_map-last`` style file-name parts: a fixed map by its name alone (``_last``), a flag by its key
    (``_relative``), another setting as ``_key-value`` (``_order_prior-1``)."""
    parts = []
    for k, v in variant:
        if k == "fixed_map":
            parts.append(str(v))
        elif v is True:
            parts.append(k)
        else:
            said = f"{v:g}" if isinstance(v, float) else "-".join(map(str, v)) if isinstance(v, list) else str(v)
            parts.append(f"{k}-{said}")
    return "".join(f"_{p}" for p in parts)


def run_folder(output: str | None, folder: Path) -> Path | None:
    """The folder of a record's run that holds its ``alignment.png``: in ``folder/cells/`` (the sweep's own, however
    it is reached or was renamed since), as recorded (relative to the current folder), or relative to one of
    ``folder``'s parents (the folder ``ablate`` ran in); None where none does. The sweep's own comes first: as
    recorded, a relative path may name another checkout's run of the same name."""
    if not output:
        return None
    path = Path(output)
    tries = [folder / "cells" / path.name, path]
    tries += [] if path.is_absolute() else [parent / path for parent in folder.resolve().parents]
    return next((t for t in tries if (t / "alignment.png").is_file()), None)


# A step's parts in the order a step runs them, each one colour in every bench chart (``dynakd bench``'s phases_ms).
PHASES = {"teacher_forward": ("teacher forward", "tab:red"), "teacher_cache_read": ("teacher cache read", "tab:purple"),
          "student_forward": ("student forward", "tab:brown"), "feature_terms": ("feature terms", "tab:pink"),
          "aligner": ("aligner", "tab:cyan"), "backward_optimizer_data": ("backward, optimiser, data", "tab:olive")}


def plot_bench(result: dict[str, Any], path: Path, targets: dict[str, float]) -> None:
    """``dynakd bench``'s results as one picture, a row per configuration, top to bottom as the table prints them:
    its time (the pooled median step, or the epoch, with each repeat's as a dot), where a step's time goes (the
    phases, from a short run of their own: absent from epochs and compiled runs), and its peak memory. The targets
    are dashed lines: ``full`` live against 1.05x ``kd`` live's time and 1.10x its peak, cached rows against 1.10x
    ``task``'s time, drawn where the rows they divide by were timed."""
    rows = result["rows"]
    phased = any(r.get("phases_ms") for r in rows)
    fig = Figure(figsize=(4.2 * (2 + phased), 1.4 + 0.42 * len(rows)))
    axes = fig.subplots(1, 2 + phased, sharey=True, squeeze=False)[0]
    colours = ["tab:green" if r["cache"] else "tab:gray" if r["method"] == "task" else "tab:blue" for r in rows]
    key = (("tab:gray", "the student alone (task)"), ("tab:blue", "live teacher"), ("tab:green", "teacher cache"))
    named = {name: Patch(color=colour) for colour, name in key if colour in colours}  # (in the legend below)
    epoch = bool((result.get("setup") or {}).get("epoch")) or any("epoch_s" in r for r in rows)
    _time_panel(axes[0], rows, colours, targets, epoch)
    if phased:
        _phases_panel(axes[1], rows)
    _peak_panel(axes[-1], rows, colours, targets)
    for ax in axes:
        ax.tick_params(axis="x", labelsize=8)
    title = _bench_title(result.get("setup") or {}) + (", cut short: the rows it finished" if result.get("partial")
                                                        else "")
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    fig.tight_layout()
    named |= {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
    # one legend under the panels (saved with a tight box, which takes it in), where it covers no bar
    fig.legend(list(named.values()), list(named), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4,
               frameon=False, fontsize=7)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def _time_panel(ax, rows: list[dict[str, Any]], colours: list[str], targets: dict[str, float], epoch: bool) -> None:
    """Each row's pooled time as a bar, its repeats' as dots, its ratio at the end (to ``kd`` live for a live layer
    term, to ``task`` for the rest, as the bench's verdicts take them); the targets' limits as dashed lines."""
    unit, value, spread = (("s per epoch", "epoch_s", "repeat_epochs_s") if epoch
                           else ("ms per step (median)", "median_ms", "repeat_medians_ms"))
    ys = range(len(rows))
    ax.barh(ys, [r[value] for r in rows], color=colours, height=0.7)
    passes = [(y, r) for y, r in zip(ys, rows) if r.get("epoch_with_teacher_pass_s")]  # (epochs only)
    if passes:  # what a single run adds to a cached epoch: the pass that fills its cache (a sweep's runs share one)
        ax.barh([y for y, _ in passes], [r["epoch_with_teacher_pass_s"] - r[value] for _, r in passes],
                left=[r[value] for _, r in passes], height=0.7, color="none", edgecolor="tab:green", hatch="//",
                label="the teacher pass that fills the cache")
    task, kd = find_row(rows, "task", cache=False), find_row(rows, "kd", cache=False)
    for y, r in zip(ys, rows):
        if len(r.get(spread) or []) > 1:
            ax.plot(r[spread], [y] * len(r[spread]), "k.", markersize=3)
        over = kd if held_to_kd(r) and kd is not None else task if r is not task else None
        ratio = _ratio_said(r, over, value, targets) if over is not None and over[value] else ""
        ratio += " (epoch alone)" if ratio and r.get("epoch_with_teacher_pass_s") else ""  # (the hatch is beside it)
        _at_end(ax, _bar_end(r, value, spread), y, ratio)
    ax.set_xlim(0, 1.3 * max(_bar_end(r, value, spread) for r in rows))
    if kd is not None and any(map(held_to_kd, rows)):
        _target(ax, targets["ratio_to_kd"] * kd[value], f"{targets['ratio_to_kd']:.2f}x kd live", "tab:blue")
    if task is not None and any(r["cache"] for r in rows):
        _target(ax, targets["ratio_to_task"] * task[value], f"{targets['ratio_to_task']:.2f}x task", "tab:green")
    ax.set_xlabel(unit + ("\ndots: each repeat" if any(len(r.get(spread) or []) > 1 for r in rows) else ""),
                  fontsize=8)
    ax.set_yticks(ys, [config_label(r["method"], r["align"], r["cache"]) for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the table's first row on top
    ax.set_title("time", fontsize=9, loc="left")


def _ratio_said(row: dict[str, Any], over: dict[str, Any], value: str, targets: dict[str, float]) -> str:
    """A row's time over ``over``'s, as the bench's verdicts read it: the JSON's ratio where it has one (of unrounded
    times), to three places near a target's limit (1.047 and 1.054 both read 1.05), with the verdict where a target
    judges the row (a live layer term against ``kd`` live, a cached row against ``task``)."""
    key = "ratio_to_kd" if over["method"] == "kd" else "ratio_to_task"
    ratio = row.get(key) if row.get(key) is not None else row[value] / over[value]
    limit = targets.get(key) if (key == "ratio_to_kd" or row["cache"]) else None
    return _verdict(ratio, limit, over["method"])


def _verdict(ratio: float, limit: float | None, over: str) -> str:
    """``1.047x kd, met (<= 1.05)``: three places near the limit, where two would read either side of it alike."""
    near = limit is not None and abs(ratio - limit) < 0.01
    said = f"{ratio:.3f}x {over}" if near else f"{ratio:.2f}x {over}"
    return said if limit is None else f"{said}, {'met' if ratio <= limit else 'missed'} (<= {limit:.2f})"


def _at_end(ax, x: float, y: float, text: str) -> None:
    """A bar's numbers just past its end, on white where a target's dashed line crosses them."""
    ax.annotate(text, (x, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.8})


def _phases_panel(ax, rows: list[dict[str, Any]]) -> None:
    """Each row's phases stacked in the order a step runs them."""
    ys, lefts = range(len(rows)), [0.0] * len(rows)
    for phase, (name, colour) in PHASES.items():
        # (the remainder, a difference, can fall below 0)
        widths = [max(0.0, (r.get("phases_ms") or {}).get(phase, 0.0)) for r in rows]
        if any(widths):
            ax.barh(ys, widths, left=lefts, height=0.7, label=name, color=colour)
        lefts = [a + b for a, b in zip(lefts, widths)]
    ax.set_xlabel("ms per step, from a short run of its own\n(timers wait for the device; need not add up)",
                  fontsize=8)
    ax.set_title("where a step's time goes", fontsize=9, loc="left")


def _peak_panel(ax, rows: list[dict[str, Any]], colours: list[str], targets: dict[str, float]) -> None:
    """Each row's peak memory; the memory target's limit where a live layer term has ``kd`` live's to divide by."""
    ax.barh(range(len(rows)), [r.get("peak_mib") or 0.0 for r in rows], color=colours, height=0.7)  # (None: unmeasured)
    limit, kd = targets["peak_ratio_to_kd"], find_row(rows, "kd", cache=False)
    for y, r in enumerate(rows):  # the MiB, and where the target judges the row its ratio and verdict
        if r.get("peak_mib"):
            ratio = r.get("peak_ratio_to_kd") if held_to_kd(r) else None
            if ratio is None and held_to_kd(r) and kd is not None and kd.get("peak_mib"):
                ratio = r["peak_mib"] / kd["peak_mib"]
            said = f"{r['peak_mib']:.0f} MiB" + ("" if ratio is None else f", {_verdict(ratio, limit, 'kd')}")
            _at_end(ax, r["peak_mib"], y, said)
    if kd is not None and kd.get("peak_mib") and any(map(held_to_kd, rows)):
        _target(ax, limit * kd["peak_mib"], f"peak {limit:.2f}x kd live's", "tab:blue")
    peaks = [r.get("peak_mib") or 0.0 for r in rows]
    if any(peaks):  # (room for the numbers at the bars' ends)
        ax.set_xlim(0, 2.1 * max(limit * ((kd or {}).get("peak_mib") or 0.0), *peaks))
    ax.set_xlabel("peak MiB above the start\n(CUDA's allocator on a GPU, live tensors' bytes elsewhere)", fontsize=8)
    ax.set_title("peak memory", fontsize=9, loc="left")


def find_row(rows: list[dict[str, Any]], method: str, cache: bool) -> dict[str, Any] | None:
    """The bench row of ``method``, cached or live; None where it was not timed."""
    return next((r for r in rows if r["method"] == method and r["cache"] == cache), None)


def held_to_kd(row: dict[str, Any]) -> bool:
    """A live row of a layer term: the targets hold it to ``kd`` live's time and peak."""
    return row["method"] not in ("task", "kd") and not row["cache"]


def _bar_end(row: dict[str, Any], value: str, spread: str) -> float:
    """Where a time bar's marks end: its bar, its repeats' dots, its epoch with the teacher pass."""
    return max([row[value], *(row.get(spread) or []), row.get("epoch_with_teacher_pass_s") or 0.0])


def config_label(method: str, align: str, cached: bool) -> str:
    """A bench configuration as the chart and the JSON's ``orders`` name it: ``task``, ``kd live``,
    ``full ot cached`` (``align`` is ``-`` for a method without an aligner, as in the JSON's rows)."""
    if method == "task":
        return "task"
    return " ".join([method, *([align] if align != "-" else []), "cached" if cached else "live"])


def _target(ax, x: float, name: str, colour: str) -> None:
    """A dashed line at a target's limit, named in the legend."""
    ax.axvline(x, color=colour, linestyle="--", linewidth=1, label=f"target: {name}")


def _bench_title(setup: dict[str, Any]) -> str:
    """What was timed, in one line: the teacher and student, the task, the batch, how it ran, the device, the date."""
    teacher = Path(str(setup.get("teacher", "?")))
    name = teacher.parent.name if teacher.name == "model" and teacher.parent.name else teacher.name  # (a package's)
    task = str(setup.get("task", "?")) + (" (synthetic sentences)" if setup.get("data") == "synthetic" else "")
    n = setup.get("cpu_threads")
    threads = f"{n} CPU thread{'s' if n != 1 else ''}" if n else ""
    parts = [f"{name} -> {setup.get('student_layers', '?')} layers", task,
             f"batch {setup.get('batch_size', '?')}",
             "bf16" if setup.get("bf16") else "fp16" if setup.get("fp16") else "fp32",
             "compiled" if setup.get("torch_compile") else "", "CUDA graphs" if setup.get("cuda_graphs") else "",
             "whole epochs" if setup.get("epoch") else "", str(setup.get("device", "?")), threads,
             str(setup.get("date", ""))]
    return "dynakd bench: " + ", ".join(p for p in parts if p)
