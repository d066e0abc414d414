"""``dynakd report DIR``: ``results.jsonl`` -> ``report.md``, ``ablation.png`` and ``alignment_*.png``.

Scores are last-epoch dev scores, x100, mean +- sample sd over seeds. The delta vs ``kd`` pairs runs by seed (same
seed, same depth) and gives a 95% t interval over the paired differences. Where a method ran under more than one
setting (a learning-rate grid, say), a second table puts each method at its best setting beside ``kd`` at its best:
a method tuned against an untuned baseline is not a fair comparison. A score that could not be computed (``null``
in the file: a diverged run, a correlation on constant predictions) is left out of its row's mean, sd and delta, with
a note naming the run, and counted beside the row's seeds. A record that lacks what the report reads, its score
among it, is left out with a note; so is a second record of one row's seed (a setting spelt two ways in a grid).

Which scores a record holds, and which ranks, is the task's (``shown_scores``): its primary metric first, then its
others, each as an extra column. A task scored on several dev sets (MNLI) ranks on the first (matched) and shows each
set's score under its own name (``matched accuracy``, ``mismatched accuracy``). A run on user files (``csv``/``json``)
does not record its label count, which decides its metrics; the record's scores name them (``scored_task``).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from scipy import stats

from ..config import METHODS, layer_term
from ..data.tasks import GLUE_TASKS, TaskSpec, get_task, user_task
from ..errors import DynaKDError
from ..metrics import primary_metric
from ..notes import say
from ..rundir import CONFIG_NAME, is_run_folder
from .ablate import FAILURES, LAYER_TERM_OPTIONS, cell_key, read_results


def load_results(folder: Path) -> list[dict[str, Any]]:
    path = folder / "results.jsonl"
    if not path.is_file():
        smoke = folder / "smoke" / "results.jsonl"
        hint = f"; a --smoke run's are in {smoke.parent}" if smoke.is_file() else ": run `dynakd ablate` first"
        if is_run_folder(folder):  # (a finished run, given to build_report: the command prints it as a table)
            hint = f": it is a run's folder, which `dynakd report {folder}` prints as a table (with others beside it)"
        elif (folder / CONFIG_NAME).is_file():  # (a sweep's cell, or any run; report compares finished ones)
            hint = (": it is a run's folder that has not finished (no metrics.json), and report reads a sweep's (the "
                    "folder `dynakd ablate` wrote) or finished runs' folders")
        elif folder.is_dir() and any(is_run_folder(p) for p in folder.iterdir()):  # (build_report, from Python)
            hint = f": it holds run folders, which `dynakd report {folder}` prints side by side"
        elif (folder.parent / CONFIG_NAME).is_file() and folder.name.startswith("checkpoint-"):
            hint = f": it is a checkpoint of the run in {folder.parent}, which report compares once it has finished"
        elif (folder / "config.json").is_file() or (folder / "metrics.json").is_file():
            model = (folder / "config.json").is_file()
            what = "a model's folder" if model else "a folder of scores (evaluate --output)"
            hint = (f": it is {what} that no DynaKD run wrote (no {CONFIG_NAME}), and report compares the folders "
                    "distill and finetune write, or a sweep's")
        raise DynaKDError(f"no results.jsonl in {folder}{hint}" if folder.is_dir() else f"no folder {folder}")
    records, partial = read_results(path)
    if partial:
        note(f"{path} ends in a partial record (a run stopped while writing it); the report leaves it out")
    if not records:
        raise DynaKDError(f"{path} holds no finished run yet")
    return records


# What the report reads of a record (``run_sweep`` writes them all), nested keys dotted; ``cell`` and ``output`` are
# optional.
REPORTED = ("task", "method", "student_layers", "seed", "align", "eval", "teacher_eval", "model.parameters",
            "train.steps_per_second")


def dotted_value(mapping: Any, dotted: str, missing: Any = None) -> Any:
    """The value of a nested key (``model.parameters``, ``align.eps``) in ``mapping``, ``missing`` where it has none."""
    value = mapping
    for key in dotted.split("."):
        value = value.get(key, missing) if isinstance(value, dict) else missing
    return value


def _holds(record: dict[str, Any], dotted: str) -> bool:
    return dotted_value(record, dotted, _ABSENT) is not _ABSENT


_SAID: list[str] = []  # the notes of the report being built: report.md lists them too (build_report)


def note(text: str, *, in_report: bool = True) -> None:
    """Say what the report left out or could not pair, on stderr and, once built, in report.md's own notes (a reader
    of the file never learnt that records were left out); ``in_report`` False for what concerns the machine the
    report is drawn on, not the results (run folders not at hand)."""
    say(text, stderr=True)
    if in_report:
        _SAID.append(text)


def reportable(records: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """The records that hold what the report reads, the task's score (``shown_scores``) among it. Others (an older
    DynaKD's, or edited by hand) are left out with a note naming how many and what they lack, rather than stopping the
    report on the first (a KeyError)."""
    missing = [[k for k in REPORTED if not _holds(r, k)] for r in records]
    metric = shown_scores([r for r, lacks in zip(records, missing) if not lacks])[0]
    scores = (f"eval.{metric}", f"teacher_eval.{metric}")
    missing = [lacks or [f"{part}.{metric}" for part in ("eval", "teacher_eval") if score_key(r[part], metric) is None]
               for r, lacks in zip(records, missing)]
    kept = [r for r, lacks in zip(records, missing) if not lacks]
    if len(kept) < len(records):
        lacked = sorted({k for lacks in missing for k in lacks}, key=(*REPORTED, *scores).index)
        note(f"{path}: {len(records) - len(kept)} of {len(records)} record(s) lack {', '.join(lacked)} "
             "(written by hand or by an older DynaKD); the report leaves them out")
    if not kept:
        raise DynaKDError(f"{path}: no record holds what the report reads ({', '.join(REPORTED)}, and the task's "
                          f"score{f' {metric}' if metric else ''} in eval and teacher_eval)")
    return kept


def note_failed_cells(folder: Path, records: list[dict[str, Any]]) -> None:
    """Name the cells whose last run failed and that have no record (``ablate``'s ``failed.json``): they had no row
    and no word in report.md, as if the grid had not held them."""
    path = folder / FAILURES
    try:
        failed = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return
    recorded = {r.get("key") for r in records}
    if isinstance(failed, dict) and (left := {k: v for k, v in failed.items() if k not in recorded}):
        listed = "; ".join(f"{key} ({why})" for key, why in list(left.items())[:5])
        more = f"; and {len(left) - 5} more ({path.name})" if len(left) > 5 else ""
        note(f"{len(left)} cell(s) of the sweep failed and have no record, so no row: {listed}{more}")


def cells_without_defaults(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each record's cell less the grid values that every record of its method without that key ran at too (a rate
    at its default): ablate finds such a cell finished under the other name, and the report shows it there, where it
    was a row of its own, its Δ "-" for want of a kd partner of that name. Read from the configs the records hold."""
    def value(record: dict[str, Any], dotted: str) -> Any:
        v = dotted_value(record.get("config"), dotted, _ABSENT)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v

    keys = {k for r in records for k in r.get("cell", {})} - {"seed", "method"}
    for key in sorted(keys):
        ran_at: dict[str, set[str]] = defaultdict(set)
        for r in records:
            if key not in r.get("cell", {}):
                ran_at[r["method"]].add(repr(value(r, key)))
        for r in records:
            cell = r.get("cell", {})
            at = ran_at.get(r["method"], set())
            if key in cell and len(at) == 1 and repr(value(r, key)) in at and repr(_ABSENT) not in at:
                r["cell"] = {k: v for k, v in cell.items() if k != key}
    return records


_ABSENT = object()


def scored_task(records: list[dict[str, Any]]) -> TaskSpec | None:
    """The task of the first record (None for none). A run on user files (``csv``/``json``) does not record its label
    count, which decides its metrics (``user_task``); ``compute_metrics`` writes exactly its spec's, so the scores
    name the spec: the first ``eval`` to hold all of one's metrics, ``pearson`` and ``spearmanr`` (regression),
    ``accuracy`` and ``macro_f1`` (more than two labels) or ``accuracy`` and ``f1`` (two, also where none holds a
    whole set: the records lacking it are then left out with a note)."""
    if not records:
        return None
    task = get_task(str(records[0]["task"]))
    if not task.is_user_data:
        return task
    specs = [user_task(task.name, n) for n in (1, 3, 2)]
    return next((spec for r in records for spec in specs
                 if all(score_key(r["eval"], m) is not None for m in spec.metrics)), specs[-1])


def shown_scores(records: list[dict[str, Any]]) -> tuple[str, tuple[str, ...]]:
    """The keys in a record's ``eval`` of the scores the report shows (``scored_task``'s): the one that ranks, the
    task's primary metric, then its others (``("", ())`` for no record). A task scored on several dev sets (MNLI)
    names each set's scores by it (``validation_matched_accuracy``) and ranks on the first set's."""
    task = scored_task(records)
    if task is None:
        return "", ()
    primary = primary_metric(task)
    metrics = (primary, *(m for m in task.metrics if m != primary))
    keys = [f"{split}_{m}" for split in task.eval_splits for m in metrics] if len(task.eval_splits) > 1 else metrics
    return keys[0], tuple(keys[1:])


# The dev sets of the tasks scored on several (MNLI's), whose scores' keys name their set
_SPLITS = tuple(split for task in GLUE_TASKS.values() if len(task.eval_splits) > 1 for split in task.eval_splits)


def heading(key: str) -> str:
    """What the report calls the score of ``key``: its metric, after the dev set's name where the task has several
    (``validation_matched_accuracy``: ``matched accuracy``)."""
    split = next((s for s in _SPLITS if key.startswith(f"{s}_")), None)
    return key if split is None else f"{split.removeprefix('validation_')} {key.removeprefix(f'{split}_')}"


def score_key(ev: Any, metric: str) -> str | None:
    """The key of ``metric`` (a key ``shown_scores`` gives) in an ``eval`` mapping: itself, or with the Trainer's
    ``eval_`` prefix (``eval_accuracy`` is ``accuracy``); None where it has neither."""
    if not isinstance(ev, dict):
        return None
    return next((k for k in (metric, f"eval_{metric}") if k in ev), None)


def score(record: dict[str, Any], metric: str, missing: float | None = None) -> float:
    """The record's ``metric`` x100 (NaN for null); ``missing`` where it has none, else an error."""
    ev = record["eval"]
    key = score_key(ev, metric)
    if key is None:
        if missing is not None:
            return missing
        raise DynaKDError(f"run {record.get('key', '?')} has no '{metric}' score")
    return math.nan if ev[key] is None else 100.0 * ev[key]  # null: a score that could not be computed (jsonfile)


def number(value: Any) -> float:
    """A number the report reads, NaN for null (jsonfile writes a non-finite number so; or a record edited by hand)."""
    return math.nan if value is None else float(value)


def mean(values: Iterable[float]) -> float:
    """The mean, NaN where a value is or where there is none (a row whose every run's score could not be computed),
    rather than stopping the report."""
    values = list(values)
    return math.nan if not values or any(math.isnan(v) for v in values) else statistics.mean(values)


def stdev(values: Iterable[float]) -> float:
    """The sample sd, NaN as ``mean`` (``statistics.stdev`` raises on a NaN)."""
    values = list(values)
    return math.nan if any(math.isnan(v) for v in values) else statistics.stdev(values)


def group_of(record: dict[str, Any]) -> str:
    """Runs that differ only in their seed share a group; the aligner a run used counts where its cell does not name
    it (records without ``cell``: runs of two aligners were one row, the second's seeds left out)."""
    cell = record.get("cell", {})
    aligner = {"align.name": record["align"]} if layer_term(record["method"]) and record.get("align") and \
        "align.name" not in cell else {}
    return cell_key({k: v for k, v in cell.items() if k != "seed"} | aligner | {
        "student_layers": record["student_layers"], "method": record["method"]})


def kd_partner(record: dict[str, Any]) -> str:
    """The group of the ``kd`` runs to pair with: same settings except the method and layer-term options."""
    cell = {k: v for k, v in record.get("cell", {}).items()
            if k != "seed" and not k.startswith(LAYER_TERM_OPTIONS)}
    return cell_key(cell | {"student_layers": record["student_layers"], "method": "kd"})


def variant(record: dict[str, Any]) -> str:
    """Grid settings other than method, aligner, depth and seed (shown in the table)."""
    skip = {"seed", "method", "align.name", "student_layers"}
    return ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}"  # (a flag as YAML and the cell key say it)
                     for k, v in sorted(record.get("cell", {}).items()) if k not in skip) or "-"


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
    return f"{mean(values):.2f} ± {stdev(values):.2f}" if len(values) > 1 else f"{mean(values):.2f}"  # none: nan


def _fmt_teacher(values: list[float]) -> str:
    """One teacher shared by the seeds (or teachers that scored alike) is one score, not a spread of 0."""
    return f"{values[0]:.2f}" if len(set(values)) == 1 else _fmt(values)


def by_row(records: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """Each row's runs by seed. A second record of a row's seed (one setting spelt two ways in the grid, say a cell
    naming the base's ``student_layers``, or records without ``cell``) is left out with a note naming both, rather
    than silently taking the first's place: which of the two the row should hold, the file cannot say, and keeping the
    first (and saying so) lets the report still print where refusing would leave none."""
    rows: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    twice = []
    for r in records:
        runs = rows[group_of(r)]
        if (first := runs.get(r["seed"])) is not None:
            twice.append(f"{r.get('key', '?')} (seed {r['seed']} of row {group_of(r)}, which {first.get('key', '?')} "
                         "holds)")
        else:
            runs[r["seed"]] = r
    if twice:
        note(f"{len(twice)} record(s) are a seed their row already holds (a setting spelt two ways in the grid, or "
             f"records without `cell`); the report leaves them out: {'; '.join(twice)}")
    return rows


def scored(rows: dict[str, dict[int, dict[str, Any]]], metric: str) -> dict[str, dict[int, float]]:
    """Each row's scores by seed, without those that could not be computed (``null``: a run that diverged, or a
    correlation on constant predictions), which a note names: a mean, sd or delta over the rest says something, a
    ``nan`` nothing. The table counts them beside the row's seeds."""
    out = {group: {s: score(r, metric) for s, r in runs.items()} for group, runs in rows.items()}
    failed = [rows[g][s].get("key", "?") for g, by_seed in out.items() for s, v in by_seed.items() if math.isnan(v)]
    if failed:
        note(f"{len(failed)} run(s) have no {heading(metric)} score (null: the run diverged, or the metric is "
             f"undefined on its predictions): {'; '.join(failed)}; the report leaves them out of their rows' "
             "statistics and counts them as '+N nan' beside the seeds")
    return {group: {s: v for s, v in by_seed.items() if not math.isnan(v)} for group, by_seed in out.items()}


def summarise(records: list[dict[str, Any]], metric: str, others: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    by_group = by_row(records)
    scores_of = scored(by_group, metric)
    rows = []
    for group, runs in by_group.items():
        first = next(iter(runs.values()))
        scores = scores_of[group]
        partner = kd_partner(first) if first["method"] != "kd" else None
        rows.append({
            "depth": first["student_layers"], "method": first["method"],
            "align": first["align"] if layer_term(first["method"]) else "-",
            "variant": variant(first),
            "scores": list(scores.values()), "by_seed": scores, "nan": len(runs) - len(scores),
            "others": {m: [score(runs[s], m, missing=math.nan) for s in scores]  # (one lacking: nan there)
                       for m in others},
            "delta": paired_delta(scores, scores_of[partner]) if partner in scores_of else None,
            "kd_elsewhere": partner in scores_of and not set(scores) & set(scores_of[partner]),  # no seed to pair
            "teacher": [score({"eval": r["teacher_eval"], "key": "teacher"}, metric) for r in runs.values()],
            "params_m": number(first["model"]["parameters"]) / 1e6,
            "steps_per_s": mean(number(r["train"]["steps_per_second"]) for r in runs.values()),
        })
    order = list(METHODS)
    rows.sort(key=lambda r: (-r["depth"], order.index(r["method"]) if r["method"] in order else 9, r["align"],
                             r["variant"]))
    return rows


MAX_PLOTTED = 20  # rows in one depth's panel of ablation.png; beyond, it plots each method at its best


CONTROL_MAP = re.compile(r"\balign\.fixed_map=(reversed|random)\b")  # the fixed maps that control for alignment


def best_settings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (depth, method, aligner) at its best mean over the settings it ran, its delta paired with ``kd`` at its
    best setting at that depth; empty when no method ran more than one setting.

    Rows with at least three seeds (or the most of their kind, if fewer) compete, ranked by their mean over the seeds
    they all share: a two-seed screen cannot win on luck, and extra seeds of one row do not tilt the ranking. Where
    they share fewer seeds than that (say seeds 1-3 against 3-5), a mean over the shared ones would pick on one or two
    seeds' luck, so each is ranked on its own mean instead, and the row says so (``ranked_alone``, a note under the
    table).
    """
    kinds: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        kinds[(r["depth"], r["method"], r["align"])].append(r)
    # a control map (reversed, random) is a yardstick, not a setting to tune: it competes only where it is all there is
    kinds = {kind: [r for r in group if not CONTROL_MAP.search(r["variant"])] or group for kind, group in kinds.items()}
    if all(len(group) == 1 for group in kinds.values()) and not unpaired(rows):
        return []
    best = {}
    for kind, group in kinds.items():
        enough = min(3, max(len(r["scores"]) for r in group))
        rivals = [r for r in group if len(r["scores"]) >= enough]
        shared = set.intersection(*(set(r["by_seed"]) for r in rivals))
        alone = len(shared) < max(1, enough)
        best[kind] = max(rivals, key=lambda r: _ranked(mean(r["scores"]) if alone
                                                       else mean(r["by_seed"][s] for s in shared)))
        best[kind] = best[kind] | {"ranked_alone": alone and len(rivals) > 1}
    out = []
    for (depth, method, _), r in best.items():
        kd = best.get((depth, "kd", "-"))
        out.append(r | {"delta": paired_delta(r["by_seed"], kd["by_seed"]) if kd and method != "kd" else None})
    return out  # in the order of ``rows``, which ``summarise`` sorted


def unpaired(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with no ``kd`` run of their own settings to pair with, though ``kd`` ran at their depth (e.g. each method
    at a learning rate of its own): the best-settings table pairs each method at its best with ``kd`` at its best."""
    kd_depths = {r["depth"] for r in rows if r["method"] == "kd"}
    return [r for r in rows if r["method"] != "kd" and r["depth"] in kd_depths and r.get("delta") is None
            and not r.get("kd_elsewhere")]


def _ranked(value: float) -> float:
    """A NaN mean ranks last (``max`` compares NaN as neither larger nor smaller)."""
    return -math.inf if math.isnan(value) else value


def markdown(rows: list[dict[str, Any]], metric: str, title: str, about: str = "") -> str:
    """The report's text: its first paragraph (which ``about`` ends: what the records say of the runs' data and
    code), the table of rows, and each method at its best setting where settings differ."""
    best = best_settings(rows)
    notes = "".join((
        " A row with no `kd` run of its own other settings shows '-'; the second table pairs each method at its best "
        "setting with `kd` at its best." if unpaired(rows) else "",
        " A row whose `kd` of the same settings has no scored seed in common with it shows '-': there is no pair."
        if any(r.get("kd_elsewhere") for r in rows) else "",
        " n=: the number of seeds paired, where fewer than the row's (`kd` has no score for the others)."
        if any(_fewer_pairs(r) for r in rows + best) else "",
        " A run whose score could not be computed (null in results.jsonl: it diverged, say) is left out of its row's "
        "mean, sd and Δ, and counted as '+N nan' beside the seeds." if any(r.get("nan") for r in rows) else ""))
    text = (f"# {title}\n\nDev {heading(metric)} x100 at the end of training; mean ± sd over seeds. "
            "Δ vs kd: the mean difference to `kd` with the same other settings, paired by seed, with its 95% t "
            "interval (* where it leaves 0 out; without it, the seeds cannot tell the row from `kd`) and the seeds "
            f"it is ahead / tied / behind in.{notes}{' ' + about if about else ''}\n\n"
            + table(rows, metric))
    if best:
        alone = [f"{r['method']}" + ("" if r["align"] == "-" else f" / {r['align']}") + f" at {r['depth']} layers"
                 for r in best if r.get("ranked_alone")]
        alone_note = (f" {', '.join(alone)}: the settings it ran share fewer seeds than that, so each is ranked on "
                      "its own mean." if alone else "")
        text += ("\n## Each method at its best setting\n\nPer depth, each method and aligner at the setting with "
                 "the best mean among those it ran with three or more seeds (or with the most seeds it ran, if fewer; "
                 "over the seeds they share); Δ pairs it with `kd` at its own best setting. Settings are chosen on "
                 "the same dev set and seeds that score them, so every row is optimistic, the more so the more "
                 "settings it was chosen from, and the intervals are conditional on that choice."
                 f"{alone_note}\n\n" + table(best, metric))
    return text


def clear(d: Delta) -> bool:
    """Whether a paired difference's 95% interval leaves 0 out: otherwise its seeds cannot tell it from none."""
    return d.pairs >= 2 and (d.low > 0 or d.high < 0)


def _fewer_pairs(row: dict[str, Any]) -> bool:
    return row["delta"] is not None and row["delta"].pairs < len(row["scores"])


def table(rows: list[dict[str, Any]], metric: str) -> str:
    others = list(rows[0]["others"]) if rows else []  # the task's other scores (e.g. exact_match beside f1)
    lines = [f"| student layers | method | aligner | other settings | {heading(metric)} | seeds | Δ vs kd [95% CI] "
             "(ahead/tied/behind) | teacher "
             f"| {''.join(f'{heading(m)} | ' for m in others)}params (M) | train steps/s |",
             "|---" * (10 + len(others)) + "|"]
    for r in rows:
        d = r["delta"]
        delta = "-" if d is None else (f"{d.mean:+.2f}" + ("" if d.pairs < 2 else f" [{d.low:+.2f}, {d.high:+.2f}]"
                                                          + (" *" if clear(d) else ""))
                                       + f" ({d.ahead}/{d.tied}/{d.behind})" + (f" n={d.pairs}" if _fewer_pairs(r)
                                                                                 else ""))
        seeds = f"{len(r['scores'])}" + (f" (+{r['nan']} nan)" if r.get("nan") else "")
        extra = "".join(f"{_fmt(r['others'][m])} | " for m in others)
        lines.append(f"| {r['depth']} | {r['method']} | {r['align']} | {r['variant']} | {_fmt(r['scores'])} "
                     f"| {seeds} | {delta} | {_fmt_teacher(r['teacher'])} "
                     f"| {extra}{r['params_m']:.1f} | {r['steps_per_s']:.2f} |")
    return "\n".join(lines) + "\n"


def plotted_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The rows ablation.png shows, and the report's words on it: every row, or where a depth has more than
    ``MAX_PLOTTED`` (a panel too tall to read), each method at its best setting (the second table's rows). A depth
    holds that many only where some method ran several settings (there are 14 methods and aligners), so the second
    table is there to show."""
    per_depth = defaultdict(int)
    for r in rows:
        per_depth[r["depth"]] += 1
    if max(per_depth.values(), default=0) <= MAX_PLOTTED:
        return rows, ""
    return best_settings(rows), ("The plot shows each method at its best setting (the second table): too many "
                                 "settings for one.\n\n")


def data_sizes(records: list[dict[str, Any]]) -> str:
    """The examples the runs were scored and trained on, where their records' configs cap them (``max_eval_samples``,
    ``max_train_samples``): a table of 128 scored examples moves by 0.78 points an example, which the scores alone
    do not say.
    Empty where a record holds no config (written before they did) or nothing is capped."""
    configs = [r.get("config") for r in records]
    if not configs or not all(isinstance(c, dict) for c in configs):
        return ""
    said = []
    for key, what in (("max_eval_samples", "scored on"), ("max_train_samples", "trained on")):
        caps = sorted({c.get(key) for c in configs}, key=lambda n: (n is None, n or 0))
        if caps == [None]:
            continue
        counts = " or ".join("all" if n is None else str(n) for n in caps)
        rows = (f"a seeded subset of at most {counts} examples" if len(caps) == 1 else
                f"at most {counts} examples, by run")
        step = f"; at {caps[0]} examples one is {100 / caps[0]:.2f} points" if key == "max_eval_samples" and \
            len(caps) == 1 else ""
        said.append(f"{what} {rows} (`{key}`{step})")
    return f"Runs were {' and '.join(said)}." if said else ""


def code_versions(records: list[dict[str, Any]]) -> str:
    """The DynaKD code the runs ran, from their records' ``versions``: its commit(s), or its version where it ran
    from no checkout. Empty where a record holds none (written before they did): a number goes with the code that
    made it, and one sweep's cells may have run on several commits."""
    found = [r.get("versions") for r in records]
    if not found or not all(isinstance(v, dict) for v in found):
        return ""
    commits = sorted({str(v["commit"]) for v in found if v.get("commit")})
    installed = sorted({str(v.get("dynakd")) for v in found if not v.get("commit")})  # (no checkout: its version)
    said = ([f"commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}"] if commits else []) + \
        ([f"{', '.join(installed)} (installed)"] if installed else [])
    return f"The runs ran DynaKD at {' and '.join(said)}."


def build_report(folder: str | Path) -> Path:
    """Write ``report.md`` and the plots from ``results.jsonl``; return the report's path."""
    from .plots import alignment_plots, plot_ablation

    folder = Path(folder)
    _SAID.clear()
    records = cells_without_defaults(reportable(load_results(folder), folder / "results.jsonl"))
    note_failed_cells(folder, records)
    metric, others = shown_scores(records)
    rows = summarise(records, metric, others)
    plotted, caption = plotted_rows(rows)
    plot_ablation(plotted, folder / "ablation.png", heading(metric))
    heatmaps = alignment_plots(records, folder, metric)
    name = folder.name or folder.resolve().name  # (`dynakd report .` has no name of its own)
    name = f"{folder.resolve().parent.name} (smoke)" if name == "smoke" else name
    about = " ".join(filter(None, (data_sizes(records), code_versions(records))))
    text = markdown(rows, metric, f"Ablation: {name}", about=about)
    text += "\n" + caption + "![ablation](ablation.png)\n"
    if heatmaps:
        text += ("\nAlignment heatmaps, each one run's running plan (the running mean of its plans; a fixed aligner's: "
                 f"its map) at the end of its training: {'; '.join(heatmaps)}.\n")
    if _SAID:
        # report.md travels with its folder: results.jsonl by its own name, not by this machine's path
        text += "\n## Notes\n\n" + "".join(f"- {said.replace(str(folder / 'results.jsonl'), 'results.jsonl')}\n"
                                          for said in _SAID)
    (folder / "report.md").write_text(text)
    return folder / "report.md"
