"""``dynakd bench`` on a tiny teacher: every configuration is timed and written as JSON."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import pytest
import torch
import yaml

from dynakd.cli import main
from dynakd.experiments.bench import TensorMemory


def test_tensor_memory_counts_the_peak_of_live_tensors():
    with TensorMemory() as mem:
        a = torch.ones(1000, 1000)  # 4,000,000 bytes
        b = a * 2  # a and b alive: the peak
        del a
        view = b.view(-1)  # a view allocates nothing
        c = b + 1  # b and c alive: as much as the peak
        del b, c, view
    assert mem.peak == 8_000_000 and mem.live == 0
    assert mem.ops == 4  # ones, mul, view, add: every operator dispatched, views too


def test_tensor_memory_leaves_out_the_tensors_there_before():
    """An operator's output was counted whatever its storage: a Linear views its weight (aten.t), so a reviewer's
    64 MiB layer counted 64 MiB for an output of 32 KiB, and the bench's live-teacher rows counted the teacher's
    weights (~41 of kd's 50 MiB over the cache). CUDA's peak is taken above what was allocated before."""
    layer = torch.nn.Linear(1024, 1024)
    with torch.no_grad(), TensorMemory(layer) as mem:
        layer(torch.randn(2, 1024))
    assert mem.peak == 2 * 2 * 1024 * 4  # the input and the output
    with torch.no_grad(), TensorMemory() as mem:
        layer(torch.randn(2, 1024))
    assert mem.peak > 1024 * 1024 * 4  # (the old count)


def test_a_phase_read_ahead_is_a_mean_per_call():
    """The cache is read in the collator, a batch ahead: the first timed step's read came before the timers were on,
    and the reads' sum was divided by the timed steps (9 reads over 10 steps)."""
    from dynakd.experiments.bench import PhaseTimer

    class Reader:
        def rows(self):
            time.sleep(0.01)

    timer, reader = PhaseTimer(warmup=0), Reader()
    timer.wrap(reader, "rows", "teacher_cache_read", ahead=True)
    timer.on, timer.steps = True, 10
    for _ in range(9):
        reader.rows()
    assert 10 <= timer.per_step_ms(100.0)["teacher_cache_read"] < 15


def test_the_json_says_what_the_timings_depend_on(tiny_teacher, tmp_path, capsys, monkeypatch):
    """The JSON named no DynaKD version or commit, no CPU model (platform.processor() is empty on Linux), not the
    methods asked for nor why a cached row was left out, and no setting beyond a few; a method named twice was timed
    twice per repeat; a teacher_cache of one's own and --cuda-graphs off a GPU went unread without a word; nor the
    host allocator's settings, which move a CPU's long steps by ~1.4x."""
    out = tmp_path / "b.json"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    assert main(["bench", "--teacher", str(tiny_teacher), "--synthetic", "--max-train-samples", "16", "--batch-size",
                 "8", "--steps", "1", "--warmup", "0", "--repeats", "1", "--methods", "task,static,task",
                 "--aligners", "fixed", "--set", "teacher_cache=elsewhere", "--cuda-graphs", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [(r["method"], r["steps_timed"]) for r in result["rows"]] == [("task", 1), ("static", 1)]
    setup = result["setup"]
    assert setup["methods"] == ["task", "static"] and setup["config"]["teacher"] == str(tiny_teacher)
    assert setup["dynakd"] and setup["python"] and setup["accelerate"] and "commit" in setup
    assert setup["allocator_env"]["THP_MEM_ALLOC_ENABLE"] == "1"
    assert setup["device"] != "cpu" or not Path("/proc/cpuinfo").is_file()
    assert "token by token" in result["no_cached_row"]["static"] and "task" not in result["no_cached_row"]
    # what ran, not what was asked: no CUDA graphs off a CUDA device, no cache's dtype where no row reads one
    assert setup["cuda_graphs"] is torch.cuda.is_available() and setup["config"]["cuda_graphs"] is True
    assert setup["teacher_cache_dtype"] is None
    printed = capsys.readouterr().out
    assert "note: the bench builds a teacher cache of its own for the rows it times; teacher_cache elsewhere is not " \
           "read" in printed
    assert "note: --cuda-graphs needs a CUDA device: the dynamics run eagerly here" in printed


@pytest.mark.parametrize("multiple", [None, 16])
def test_bench_pads_batches_as_a_run_does(tiny_teacher, tmp_path, multiple, capsys):
    """The bench padded to the longest row where training padded to 8 (on every device, then): its steps were not a
    run's. Now both follow pad_to_multiple_of, which the JSON records; and where the timed batches' widths differ by
    more than 1.5x, it says that a run pays the mean step, not the median (its token windows: unset, by device)."""
    out = tmp_path / "b.json"
    extra = ["--set", f"pad_to_multiple_of={multiple}"] if multiple else []
    assert main(["bench", "--teacher", str(tiny_teacher), "--synthetic", "--max-train-samples", "32", "--batch-size",
                 "4", "--steps", "4", "--warmup", "0", "--repeats", "1", "--methods", "task", *extra,
                 "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    widths = {shape[1] for r in result["rows"] for shape in r["batch_shapes"]}
    device_multiple = 8 if torch.cuda.is_available() else None
    assert result["setup"]["pad_to_multiple_of"] == (multiple or device_multiple)
    if multiple or device_multiple:
        assert all(w % (multiple or device_multiple) == 0 for w in widths)
    else:
        assert any(w % 8 for w in widths), widths
    note = "note: the timed batches are" in capsys.readouterr().out
    assert note == (max(widths) > 1.5 * min(widths))
    assert result["setup"]["window_mib"] == (0.0 if torch.cuda.is_available() else 32.0)


def test_bench_writes_rows(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "--teacher", str(tiny_teacher), "--synthetic", "--max-train-samples", "32", "--batch-size", "8",
            "--steps", "2", "--warmup", "1", "--repeats", "2", "--aligners", "fixed,ot", "--output", str(out)]
    assert main(args) == 0
    rows = json.loads(out.read_text())["rows"]
    got = {(r["method"], r["align"], r["cache"]) for r in rows}
    assert got == {("task", "-", False), ("kd", "-", False), ("kd", "-", True), ("full", "fixed", False),
                   ("full", "fixed", True), ("full", "ot", False), ("full", "ot", True)}
    # two interleaved repeats of two timed steps each, pooled
    assert all(r["median_ms"] > 0 and r["steps_timed"] == 4 and len(r["repeat_medians_ms"]) == 2 for r in rows)
    assert json.loads(out.read_text())["setup"]["repeats"] == 2
    assert json.loads(out.read_text())["setup"]["teacher_cache_dtype"] == "float16"  # (rows read a cache)
    # each repeat's order, as run: the first the list's, the second from further down
    orders = json.loads(out.read_text())["setup"]["orders"]
    assert orders[0] == ["task", "kd live", "kd cached", "full fixed live", "full fixed cached", "full ot live",
                         "full ot cached"]
    assert orders[1][0] == "full fixed cached" and sorted(orders[1]) == sorted(orders[0])
    assert json.loads(out.read_text())["max_rss_mib"] > 0  # (Linux, as CI)
    assert next(r for r in rows if r["method"] == "task")["ratio_to_task"] == 1.0
    # each repeat's median over task's in the same repeat
    task = next(r for r in rows if r["method"] == "task")
    task_medians = task["repeat_medians_ms"]
    for r in rows:
        want = [round(a / b, 3) for a, b in zip(r["repeat_medians_ms"], task_medians)]
        assert r["repeat_ratios_to_task"] == want
    # the ratios compare like with like: every configuration and repeat trained on the same batches
    assert all(r["same_batches_as_task"] and r["same_batches_each_repeat"] for r in rows)
    assert all(len(r["batch_shapes"]) == 2 for r in rows)
    # each repeat's timed steps, and their mean (what a run of batches of many lengths pays)
    for r in rows:
        steps = [t for repeat in r["step_ms"] for t in repeat]
        assert [len(repeat) for repeat in r["step_ms"]] == [2, 2]
        assert r["mean_ms"] == pytest.approx(sum(steps) / 4, abs=0.02)
        assert r["mean_ratio_to_task"] == round(r["mean_ms"] / task["mean_ms"], 3)
    assert all(r["peak_mib"] > 0 for r in rows)  # CPU: counted tensors on a short extra run
    # operators per step: the teacher's forward and the feature terms add to the student's own step
    ops = {(r["method"], r["align"], r["cache"]): r["ops_per_step"] for r in rows}
    assert ops[("task", "-", False)] < ops[("kd", "-", True)] < ops[("kd", "-", False)] < ops[("full", "ot", False)]
    assert ops[("kd", "-", True)] < ops[("full", "ot", True)] < ops[("full", "ot", False)]
    assert next(r for r in rows if r["method"] == "task")["ops_ratio_to_task"] == 1.0
    printed = capsys.readouterr().out
    assert "ms/step" in printed and "all 2 repeat(s) pooled, ratios to the student alone (task):" in printed
    assert f"wrote {out} and its chart {out.with_suffix('.png')}" in printed and out.with_suffix(".png").is_file()
    assert "1.00x task" in printed
    full_ot = next(r for r in rows if (r["method"], r["align"], r["cache"]) == ("full", "ot", True))
    low, high = min(full_ot["repeat_ratios_to_task"]), max(full_ot["repeat_ratios_to_task"])
    assert f"x task pooled (repeats {low:.2f}-{high:.2f})" in printed
    assert "reading the teacher cache" not in printed  # (said for each configuration, in each repeat)
    # the speed targets: live layer terms against live kd (time and peak), cached rows against task
    kd = next(r for r in rows if (r["method"], r["cache"]) == ("kd", False))
    full_live = next(r for r in rows if (r["method"], r["align"], r["cache"]) == ("full", "ot", False))
    assert full_live["ratio_to_kd"] == round(full_live["median_ms"] / kd["median_ms"], 3)
    assert full_live["repeat_ratios_to_kd"] == [round(a / b, 3) for a, b in zip(full_live["repeat_medians_ms"],
                                                                                kd["repeat_medians_ms"])]
    assert full_live["peak_ratio_to_kd"] == round(full_live["peak_mib"] / kd["peak_mib"], 3)
    assert all(r["ratio_to_kd"] is None for r in rows if r["cache"] or r["method"] in ("task", "kd"))
    assert "the speed targets, by the pooled ratios:" in printed
    verdict = "met" if full_live["ratio_to_kd"] <= 1.05 else "missed"
    assert f"full ot live, time over kd's: {full_live['ratio_to_kd']:.3f}x pooled (repeats " in printed
    assert f"<= 1.05: {verdict}" in printed
    assert f"full ot cached, time over task's: {full_ot['ratio_to_task']:.3f}x" in printed
    phases = {(r["method"], r["align"], r["cache"]): r["phases_ms"] for r in rows}
    assert set(phases[("task", "-", False)]) == {"student_forward", "backward_optimizer_data"}
    assert {"teacher_forward", "feature_terms", "aligner"} <= set(phases[("full", "ot", False)])
    cached = phases[("full", "ot", True)]
    assert "teacher_cache_read" in cached and "teacher_forward" not in cached
    assert all(v >= 0 for p in phases.values() for k, v in p.items() if k != "backward_optimizer_data")


def test_a_chart_that_cannot_be_drawn_leaves_the_timings(tiny_teacher, tmp_path, capsys, monkeypatch):
    """The JSON is written before the chart: a chart that fails says so, and how to draw it, and the bench succeeds."""
    import dynakd.experiments.plots as plots

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plots, "plot_bench", broken)
    out = tmp_path / "bench.json"
    assert main(["bench", "--teacher", str(tiny_teacher), "--synthetic", "--max-train-samples", "16", "--batch-size",
                 "8", "--steps", "1", "--warmup", "0", "--repeats", "1", "--methods", "task", "--output",
                 str(out)]) == 0
    assert json.loads(out.read_text())["rows"] and not out.with_suffix(".png").exists()
    printed = capsys.readouterr().out
    assert f"wrote {out}; its chart was not drawn (cannot write the chart" in printed
    assert f"`dynakd report {out}` draws it" in printed


def test_each_configuration_keeps_the_aligner_settings_given():
    """`--set align.eps=0.2` was reset to the default in every configuration (the aligner's name replaced the whole
    section), while the JSON recorded 0.2."""
    from dynakd.config import build_config
    from dynakd.experiments.bench import _aligner

    base = build_config({"align": {"eps": 0.2, "iters": 7}})
    cfg = build_config(dataclasses.asdict(base) | {"method": "full", "align": _aligner(base, "ot")})
    assert (cfg.align.name, cfg.align.eps, cfg.align.iters) == ("ot", 0.2, 7)


def test_bench_times_a_whole_epoch(tiny_teacher, tmp_path, capsys):
    """--epoch: each configuration trains one whole epoch (36 rows in batches of 8: 5 steps), timed from its first
    step to its last; the teacher pass that fills the cache is timed apart and added to each cached row's epoch."""
    out = tmp_path / "bench.json"
    args = ["bench", "--teacher", str(tiny_teacher), "--synthetic", "--max-train-samples", "36", "--batch-size", "8",
            "--epoch", "--methods", "task,kd", "--output", str(out)]
    assert main(args) == 0
    result = json.loads(out.read_text())
    rows = {(r["method"], r["cache"]): r for r in result["rows"]}
    assert set(rows) == {("task", False), ("kd", False), ("kd", True)}
    assert result["setup"]["epoch"] is True and result["setup"]["repeats"] == 1
    assert all(len(r["batch_shapes"]) == 5 and r["steps_timed"] == 5 and r["epoch_s"] > 0 for r in rows.values())
    assert all(r["same_batches_as_task"] for r in rows.values())
    assert rows[("task", False)]["ratio_to_task"] == 1.0
    assert result["teacher_pass_s"] > 0
    cached = rows[("kd", True)]
    assert cached["epoch_with_teacher_pass_s"] == pytest.approx(cached["epoch_s"] + result["teacher_pass_s"], abs=0.02)
    assert "epoch_with_teacher_pass_s" not in rows[("kd", False)]
    printed = capsys.readouterr().out
    assert "the teacher pass that filled the cache" in printed and "with the teacher pass" in printed
    # no phases: said in each row and once below the table, where the column was left empty without a word
    assert printed.count("| not split (--epoch)") == 2 * len(rows)  # (as each ran, and in the table)
    assert "after |: no phases: --epoch times whole epochs, without the short runs that split a step" in printed
    assert main([*args[:-2], "--steps", "3"]) == 2  # an epoch has its own length
    assert "--steps and --warmup do not apply" in capsys.readouterr().err


def test_a_compiled_bench_times_whole_steps(tiny_teacher, tmp_path, monkeypatch, capsys):
    """Under ``--torch-compile-mode`` nothing inside the compiled code is wrapped (a timer there would split the graph
    and sync the GPU), so there are no phases; the batch shapes still come from the collator."""
    modes = []  # the student's mode, or the dynamics' options (their mode goes in as options)
    monkeypatch.setattr(torch, "compile", lambda fn=None, **kw: modes.append(kw.get("mode", kw.get("options"))) or fn)
    out = tmp_path / "bench.json"
    args = ["bench", "--teacher", str(tiny_teacher), "--synthetic", "--max-train-samples", "32", "--batch-size", "8",
            "--steps", "2", "--warmup", "1", "--repeats", "1", "--aligners", "ot", "--methods", "task,full",
            "--torch-compile-mode", "reduce-overhead", "--output", str(out)]
    assert main(args) == 0
    rows = json.loads(out.read_text())["rows"]
    assert "reduce-overhead" in modes and all(m == "reduce-overhead" or m["triton.cudagraphs"] for m in modes)
    assert all(r["phases_ms"] == {} and r["ops_per_step"] is None for r in rows)
    printed = capsys.readouterr().out
    assert printed.count("| not split (compiled)") == 2 * len(rows)
    assert "after |: no phases: a timer inside compiled code would split its graph" in printed
    assert all(len(r["batch_shapes"]) == 2 and r["same_batches_as_task"] for r in rows)


def test_a_bench_cut_short_leaves_the_rows_it_timed(tiny_teacher, tmp_path, monkeypatch):
    """A time limit (the GPU script's timeout) killed a bench before its JSON was written: every row was lost."""
    from dynakd.experiments import bench

    timed, real = [], bench.bench_one

    def bench_one(cfg, *args, **kwargs):
        if len(timed) == 2 and not kwargs.get("count_tensors"):  # the second configuration (each times its phases too)
            raise KeyboardInterrupt
        res = real(cfg, *args, **kwargs)
        if not kwargs.get("count_tensors"):
            timed.append(cfg.method)
        return res

    monkeypatch.setattr(bench, "bench_one", bench_one)
    out = tmp_path / "bench.json"
    args = ["bench", "--teacher", str(tiny_teacher), "--synthetic", "--max-train-samples", "32", "--batch-size", "8",
            "--steps", "2", "--warmup", "1", "--repeats", "1", "--aligners", "ot", "--methods", "full,kd",
            "--output", str(out)]
    assert main(args) == 130
    saved = json.loads(out.read_text())
    assert saved["partial"] is True and saved["setup"]["repeats"] == 1
    assert [(r["method"], r["cache"]) for r in saved["rows"]] == [("full", False)]


def test_each_repeat_starts_elsewhere_in_the_list_and_no_configuration_always_follows_one():
    """Repeats start further down the list each; with the rotation alone kd live always followed task (and ran slow
    there: benchmarks/speed/RESULTS.md, session 43)."""
    from dynakd.experiments.bench import repeat_orders

    configs = list(range(9))
    orders = repeat_orders(configs, 3)
    assert [o[0] for o in orders] == [0, 3, 6] and orders[0] == configs and repeat_orders([], 2) == [[], []]
    bench = ["task", "kd live", "kd cached", "full live", "full cached"]
    for configs, repeats in ((list(range(9)), 3), (bench, 3), (bench, 8), (list(range(7)), 2), (bench, 1),
                             (list(range(4)), 3)):
        orders = repeat_orders(configs, repeats)
        assert len(orders) == repeats and all(sorted(o) == sorted(configs) for o in orders)
        for c in configs:
            before = [o[o.index(c) - 1] for o in orders if o.index(c) > 0]
            assert len(before) < 2 or len(set(before)) > 1, (c, orders)
        assert all(a[-1] != b[0] for a, b in zip(orders, orders[1:])), orders  # none twice in a row
    for n, repeats in ((3, 3), (3, 2), (4, 4), (5, 8), (6, 5)):
        orders = repeat_orders(list(range(n)), repeats)
        assert all(a[-1] != b[0] for a, b in zip(orders, orders[1:])) and all(sorted(o) == list(range(n))
                                                                              for o in orders), orders
    assert [o[o.index("kd live") - 1] for o in repeat_orders(bench, 3) if o.index("kd live")][0] == "task"
    assert len({o[o.index("kd live") - 1] for o in repeat_orders(bench, 3) if o.index("kd live")}) > 1
    # three configurations cannot do it, whatever the order after the rotated starts: kd live follows task
    three = repeat_orders(["task", "kd live", "kd cached"], 3)
    assert [o[0] for o in three] == ["task", "kd live", "kd cached"]


def test_bad_names_and_paths_are_refused_before_any_timing(tmp_path, capsys, monkeypatch):
    """These used to surface after minutes of timing (a name was checked when its turn came; the JSON was written at
    the end), or as the synthetic corpus refusing a task the user never asked it for."""
    import dynakd.experiments.bench as bench

    monkeypatch.setattr(bench, "load_data", lambda *a, **k: pytest.fail("timing started"))
    (tmp_path / "afile").write_text("")
    cases = {
        ("--methods", "kd,fulll"): "method: 'fulll' is not one of task, kd, static, pkd, dynamics, full; did you mean",
        ("--methods", "kd,"): r"--methods 'kd,' holds an empty name \(a stray comma\?\)",
        ("--aligners", "ot,sink"): "align.name: 'sink' is not one of fixed, attention, ot",
        ("--task", "mrpc"): "bench on task mrpc needs its data: --data-dir or --train-file \\(the synthetic corpus",
        ("--output", str(tmp_path)): f"--output {tmp_path} is a folder; give a file name",
        ("--output", str(tmp_path / "afile" / "b.json")): f"cannot write --output .*: {tmp_path / 'afile'} is a file",
        # (from a user's walkthrough, 2026-12-07: the JSON was written into the picture, the chart as b.png.png; a
        # misspelt aligner beside methods that read none was timed without a word)
        ("--output", str(tmp_path / "b.png")): r"--output .*b\.png names a picture: give the JSON file",
        ("--methods", "task,kd", "--aligners", "ot,bar"): "align.name: 'bar' is not one of fixed, attention, ot",
    }
    for flags, message in cases.items():
        assert main(["bench", *flags]) == 2
        assert re.search(message, capsys.readouterr().err), flags


def test_bench_says_when_it_times_the_synthetic_corpus(tiny_teacher, tiny_encoder, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "--teacher", str(tiny_teacher), "--max-train-samples", "16", "--batch-size", "8",
                 "--steps", "1", "--warmup", "0", "--repeats", "1", "--methods", "static", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bench: no --data-dir or --train-file: timing on the synthetic corpus" in printed
    assert "all 1 repeat(s) pooled, ratios" not in printed  # no task row in this run to compare with
    assert "note: 1 timed steps per configuration; medians of so few steps move with the machine's load" in printed
    setup = json.loads(out.read_text())["setup"]
    assert (setup["data"], setup["max_train_samples"], setup["group_by_length"]) == ("synthetic", 16, True)
    assert "bench: no cached row for static: method 'static' compares hidden states token by token" in printed
    # a DynaKD teacher's data is named (a reviewer read the bench as ignoring it, where distill lends it)
    import shutil

    teacher = shutil.copytree(tiny_teacher, tmp_path / "teacher")
    (teacher / "dynakd.yaml").write_text("task: sst2\ndata_dir: /data/glue\n")
    assert main(["bench", "--teacher", str(teacher), "--max-train-samples", "16", "--batch-size", "8", "--steps", "1",
                 "--warmup", "0", "--repeats", "1", "--methods", "task"]) == 0
    assert ("timing on the synthetic corpus (sentences of its own lengths; give --data-dir /data/glue for the "
            f"batches the teacher {teacher} was fine-tuned on)") in capsys.readouterr().out
    # a teacher without a head is timed with a fresh one, which trains nothing: no note of a new head
    assert main(["bench", "--teacher", str(tiny_encoder), "--max-train-samples", "16", "--batch-size", "8", "--steps",
                 "1", "--warmup", "0", "--repeats", "1", "--methods", "task"]) == 0
    assert "has no classification head" not in capsys.readouterr().out


def test_the_bench_names_the_flags_of_a_teachers_own_task_and_data(tmp_path):
    """The bench of a DynaKD teacher of another task (SQuAD, csv) timed the synthetic corpus and named the teacher's
    file alone: given as it said, the bench refused it (task sst2 reads GLUE folders, not train_file)."""
    from dynakd.config import build_config
    from dynakd.experiments.bench import _teacher_data_flags

    teacher = tmp_path / "teacher"
    teacher.mkdir()

    def flags(record: dict, **base) -> str:
        (teacher / "dynakd.yaml").write_text(yaml.safe_dump(record))
        return _teacher_data_flags(build_config({"teacher": str(teacher), "synthetic": True, **base}))

    qa = {"task": "squad", "train_file": "/d/dev-v1.1.json", "label_column": "label", "text_columns": None}
    assert flags(qa) == "--task squad --train-file /d/dev-v1.1.json"
    assert flags({"task": "csv", "train_file": "/d/a.csv", "text_columns": ["t", "u"], "label_column": "y"}) == \
        "--task csv --train-file /d/a.csv --text-columns t,u --label-column y"
    assert flags({"task": "sst2", "data_dir": "/d/glue"}) == "--data-dir /d/glue"  # the bench's own task
    assert flags({"task": "sst2"}) == ""  # the hub's data: nothing to name


def test_bench_gives_the_dataset_reference_as_a_run_does(tiny_teacher, tmp_path):
    """The bench built its own distiller without the teacher's training-set mean: with the dataset reference it
    stopped at the first dynamics configuration."""
    assert main(["bench", "--teacher", str(tiny_teacher), "--synthetic", "--max-train-samples", "16", "--batch-size",
                 "8", "--steps", "1", "--warmup", "0", "--repeats", "1", "--methods", "full", "--aligners", "fixed",
                 "--set", "dynamics.reference=dataset", "--output", str(tmp_path / "b.json")]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert {(r["method"], r["cache"]) for r in rows} == {("full", False), ("full", True)}


def test_bench_times_a_csv_file_of_ones_own(tiny_teacher, tmp_path):
    """bench evaluates nothing, so --task csv needs only --train-file (it used to ask for --validation-file, a flag
    bench does not have)."""
    rows = tmp_path / "rows.csv"
    rows.write_text("text,label\n" + "".join(f"sentence number {i} is {'good' if i % 2 else 'bad'},{i % 2}\n"
                                              for i in range(16)))
    out = tmp_path / "b.json"
    assert main(["bench", "--teacher", str(tiny_teacher), "--task", "csv", "--train-file", str(rows), "--text-columns",
                 "text", "--batch-size", "8", "--steps", "1", "--warmup", "0", "--repeats", "1", "--methods", "task",
                 "--output", str(out)]) == 0
    assert [r["method"] for r in json.loads(out.read_text())["rows"]] == ["task"]


def test_the_teacher_flag_wins_over_a_config_file(tmp_path, monkeypatch):
    """Flags override --config and --set: bench's --teacher was a default, so a config file's teacher beat it."""
    from dynakd.experiments import bench

    seen = []
    monkeypatch.setattr(bench, "run_bench", lambda cfg, **kw: seen.append(cfg.teacher))
    (tmp_path / "b.yaml").write_text("teacher: from-yaml\n")
    assert main(["bench", "--config", str(tmp_path / "b.yaml"), "--teacher", "from-flag", "--synthetic"]) == 0
    assert main(["bench", "--config", str(tmp_path / "b.yaml"), "--synthetic"]) == 0
    assert seen == ["from-flag", "from-yaml"]


def test_a_refused_bench_leaves_no_folder(tmp_path):
    """The output's folder was made before the data was checked: a refused bench left it empty."""
    from dynakd.config import build_config
    from dynakd.errors import DynaKDError
    from dynakd.experiments.bench import run_bench

    out = tmp_path / "sub" / "b.json"
    with pytest.raises(DynaKDError, match="bench on task mrpc needs its data"):
        run_bench(build_config({"task": "mrpc", "teacher": "x"}), methods=["task"], aligners=["fixed"], steps=1,
                  warmup=0, output=out)
    assert not (tmp_path / "sub").exists()


def test_bench_times_extractive_qa_steps(tmp_path, capsys):
    """QA steps on SQuAD windows (bench used to refuse them): the live teacher only, windows of 384 tokens unless told
    otherwise, checked against the model's position table before any timing."""
    from tests.squad_fixture import make_tiny_qa_bert, write_squad

    teacher = make_tiny_qa_bert(tmp_path / "teacher", layers=4, hidden=32)
    squad = write_squad(tmp_path / "squad.json")
    common = ["bench", "--teacher", str(teacher), "--task", "squad", "--train-file", str(squad), "--batch-size", "4",
              "--steps", "1", "--warmup", "0", "--repeats", "1", "--methods", "task,kd,full", "--aligners", "ot"]
    assert main(common) == 2  # 384 tokens: past the tiny model's 128 positions
    assert ("max_seq_length 384 exceeds the model's limit of 128 tokens: give a --max-seq-length it takes"
            in capsys.readouterr().err)
    no_file = [a for a in common if a not in ("--train-file", str(squad))]
    assert main(no_file) == 2
    assert "bench --task squad needs --train-file FILE (a SQuAD v1.1 json)" in capsys.readouterr().err
    assert main([*no_file, "--data-dir", str(tmp_path)]) == 2  # (GLUE's folders: no SQuAD file there)
    assert "task squad reads SQuAD JSON files (train_file, validation_file; the hub's without them), not data_dir" \
        in capsys.readouterr().err
    out = tmp_path / "qa.json"
    assert main([*common, "--max-seq-length", "64", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {(r["method"], r["align"], r["cache"]) for r in result["rows"]} == {
        ("task", "-", False), ("kd", "-", False), ("full", "ot", False)}
    assert result["setup"]["task"] == "squad" and result["setup"]["max_seq_length"] == 64
    assert all(r["peak_mib"] > 0 and r["ops_per_step"] for r in result["rows"])
    assert all(shape[1] <= 64 for r in result["rows"] for shape in r["batch_shapes"])
    assert set(result["no_cached_row"]) == {"kd", "full"} and result["setup"]["teacher_cache_dtype"] is None
    assert "extractive QA distils start/end logits token by token" in result["no_cached_row"]["full"]
    assert result["setup"]["orders"] == [["task", "kd live", "full ot live"]]  # (as run: no cached row)


def test_the_quartiles_lie_within_the_steps_timed():
    """Two timed steps (an epoch of two batches) gave a first quartile below 0 ms: the default method extrapolates."""
    from dynakd.experiments.bench import summarise

    two = summarise([1.0, 3.0], 0)
    assert 1000 <= two["q1_ms"] <= two["median_ms"] <= two["q3_ms"] <= 3000 and two["mean_ms"] == 2000
    assert summarise([0.5, 1.0, 2.0, 4.0, 8.0], 1)["median_ms"] == 3000


def test_the_datas_advice_names_the_setting_bench_takes(monkeypatch, capsys):
    """From a user's walkthrough (2026-12-07): QNLI's dev file alone was answered with --dev-split 0.5, a flag bench
    refuses; it takes the setting: --set dev_split=0.5."""
    import dynakd.experiments.bench as bench
    from dynakd.errors import DynaKDError

    def no_train_file(*args, **kwargs):
        raise DynaKDError("GLUE file not found: d/QNLI/train.tsv; with the dev file alone, --dev-split 0.5 trains on "
                          "half of it and evaluates on the rest")

    monkeypatch.setattr(bench, "run_bench", no_train_file)
    assert main(["bench", "--task", "qnli"]) == 2
    assert ("with the dev file alone, --set dev_split=0.5 trains on half of it and evaluates on the rest"
            in capsys.readouterr().err)


def test_a_pooled_ratio_outside_its_repeats_range_is_said_to_be_pooled():
    """The verdict's ratio, of pooled medians, lay outside the per-repeat range printed beside it (1.47x beside
    repeats of 1.10x), which read as a contradiction: the ratio is called pooled, and a note says why it may lie
    outside. Nothing measured changes."""
    from dynakd.experiments.bench import (
        POOLED_NOTE,
        format_row,
        pooled_outside_repeats,
        summarise,
        target_lines,
    )

    steps = {"task": [[0.010, 0.010], [0.020, 0.040]], "kd": [[0.011, 0.011], [0.033, 0.033]]}
    pooled = {m: summarise([t for repeat in s for t in repeat], 0)["median_ms"] for m, s in steps.items()}
    repeats = {m: [summarise(repeat, 0)["median_ms"] for repeat in s] for m, s in steps.items()}
    row = {"method": "kd", "align": "-", "cache": True, "median_ms": pooled["kd"], "q1_ms": 11.0, "q3_ms": 33.0,
           "mean_ms": 22.0, "peak_mib": 1.0, "ops_per_step": 10, "phases_ms": {},
           "ratio_to_task": round(pooled["kd"] / pooled["task"], 3),
           "repeat_ratios_to_task": [round(a / b, 3) for a, b in zip(repeats["kd"], repeats["task"])]}
    assert row["ratio_to_task"] == 1.467 and row["repeat_ratios_to_task"] == [1.1, 1.1]
    assert "1.47x task pooled (repeats 1.10-1.10)" in format_row(row)
    assert "kd cached, time over task's: 1.467x pooled (repeats 1.100-1.100) <= 1.10: missed" in "\n".join(
        target_lines([row]))
    assert pooled_outside_repeats([row]) and "may lie outside its repeats' range" in POOLED_NOTE
    assert not pooled_outside_repeats([{**row, "ratio_to_task": 1.1}])
    assert not pooled_outside_repeats([{**row, "repeat_ratios_to_task": None}])  # one repeat: no range
    assert format_row(row).endswith("| -")  # (no phases, for no reason the bench knows)
