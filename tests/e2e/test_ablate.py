"""``dynakd ablate`` / ``dynakd report`` on a tiny teacher: expansion, resumption, report and plots."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from dynakd.cli import main
from dynakd.config import AlignConfig
from dynakd.errors import DynaKDError
from dynakd.experiments.ablate import cell_config, cell_key, cell_seed, cells, load_sweep, run_sweep, teacher_config
from dynakd.experiments.report import best_settings, build_report, paired_delta

ROOT = Path(__file__).resolve().parents[2]


def write_sweep(path: Path, teacher: Path, out: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "tiny",
        "output": str(out),
        "base": {"task": "sst2", "synthetic": True, "max_train_samples": 32, "max_eval_samples": 16, "max_steps": 2,
                 "batch_size": 16, "max_seq_length": 32},
        "teacher": {"model": str(teacher), "per_seed": True},
        "grid": {"method": ["kd", "full"], "align.name": ["fixed", "ot"], "student_layers": [1], "seed": [1, 2]},
    }))
    return path


def test_grid_expansion_drops_aligner_axis_for_kd(tiny_encoder, tmp_path):
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out"))
    keys = [c.get("align.name", "-") + c["method"] for c in cells(sweep)]
    assert len(keys) == 6 and keys.count("-kd") == 2


def test_grid_expansion_drops_options_of_other_aligners(tiny_encoder, tmp_path):
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out"))
    sweep.grid[0]["align.fixed_map"] = ["uniform", "reversed"]
    got = sorted((c["method"], c.get("align.name", "-"), c.get("align.fixed_map", "-")) for c in cells(sweep)
                 if c["seed"] == 1)
    assert got == [("full", "fixed", "reversed"), ("full", "fixed", "uniform"), ("full", "ot", "-"), ("kd", "-", "-")]


def test_grid_expansion_keeps_an_option_for_every_aligner_that_reads_it(tiny_encoder, tmp_path):
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out"))
    sweep.grid[0]["align.name"] = ["fixed", "attention", "ot"]
    sweep.grid[0]["align.plan_momentum"] = [0.0, 0.9]  # read by attention and OT, not by the fixed map
    got = sorted((c.get("align.name", "-"), c.get("align.plan_momentum", "-")) for c in cells(sweep)
                 if c["seed"] == 1 and c["method"] == "full")
    assert got == [("attention", 0.0), ("attention", 0.9), ("fixed", "-"), ("ot", 0.0), ("ot", 0.9)]


def test_grid_expansion_drops_the_logit_weight_where_there_is_no_logit_term(tiny_encoder, tmp_path):
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out"))
    sweep.grid = [{"method": ["task", "dynamics", "kd"], "alpha": [0.5, 1.0], "seed": [1]}]
    got = sorted((c["method"], c.get("alpha", "-")) for c in cells(sweep))
    assert got == [("dynamics", "-"), ("kd", 0.5), ("kd", 1.0), ("task", "-")]


def test_grid_expansion_keeps_the_hidden_state_term_for_dynamics_methods_only(tiny_encoder, tmp_path):
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out"))
    sweep.grid = [{"method": ["kd", "static", "full"], "hidden_weight": [1.0], "seed": [1]}]
    assert sorted((c["method"], c.get("hidden_weight", "-")) for c in cells(sweep)) == [
        ("full", 1.0), ("kd", "-"), ("static", "-")]


def test_options_of_terms_a_method_lacks_leave_its_runs_in_base_as_in_the_grid(tiny_encoder, tmp_path):
    """A base `hidden_weight` (for the `full` cells) refused the whole sweep at its `kd` cells; a base `staged` turned
    the teacher's and the `task` cells' only term off for the first stage. Each run drops them, as from the grid."""
    from dynakd.experiments.ablate import cell_config, teacher_config

    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    raw["base"] |= {"hidden_weight": 0.5, "staged": 0.5}
    raw["grid"] = {"method": ["task", "kd", "full"], "staged": [0.3], "student_layers": [1], "seed": [1]}
    path.write_text(yaml.safe_dump(raw))
    sweep = load_sweep(path)
    got = {c["method"]: cell_config(sweep, c, "t") for c in cells(sweep)}
    assert (got["task"].staged, got["kd"].staged, got["full"].staged) == (None, 0.3, 0.3)
    assert got["task"].hidden_weight is got["kd"].hidden_weight is None and got["full"].hidden_weight is not None
    assert teacher_config(sweep, 1).staged is None


def test_one_setting_spelt_two_ways_is_one_cell(tmp_path):
    """A mapping's keys in another order, or a rate PyYAML reads as a string, made another cell: a finished cell
    ran again when a sweep file was edited. A record keyed before keys were sorted is found by today's key."""
    from dynakd.experiments.ablate import finished

    one = {"lr": "1e-4", "beta": {"start": 3.0, "kind": "linear", "end": 0.0}, "seed": 1}
    other = {"seed": 1, "lr": 0.0001, "beta": {"kind": "linear", "end": 0.0, "start": 3.0}}
    assert cell_key(one) == cell_key(other)
    assert cell_key({"seed": "1", "name": "a1e-4"}) == 'name=a1e-4,seed=1'
    results = tmp_path / "results.jsonl"
    old_key = 'beta={"start": 3.0, "kind": "linear", "end": 0.0},lr=1e-4,seed=1'
    results.write_text(json.dumps({"key": old_key, "cell": one}) + "\n")
    assert list(finished(results)) == [cell_key(other)]


def test_a_failed_cell_stops_no_other_and_is_tried_again(tiny_teacher, tmp_path, monkeypatch, capsys):
    """A rate that diverged stopped the whole sweep, without a record; a rerun stopped on it again, so the cells after
    it never ran. Now the others run and are reported, and the command ends in an error naming the failed cell."""
    from dynakd.experiments import ablate
    from dynakd.runner import RunResult

    tried = []

    def fake_distill(cfg):
        tried.append((cfg.method, cfg.seed))
        if (cfg.method, cfg.seed) == ("kd", 1):
            raise DynaKDError("non-finite loss at step 3")
        metrics = {"eval": {"accuracy": 0.5 + cfg.seed / 10}, "model": {"layers": 1, "parameters": 10},
                   "train": {"steps_per_second": 2.0}}
        return RunResult(Path(cfg.output), metrics)

    teacher = {"eval": {"accuracy": 0.75}}
    monkeypatch.setattr(ablate, "ensure_teacher", lambda sweep, seed: (ablate.teacher_config(sweep, seed), teacher))
    monkeypatch.setattr(ablate, "distill", fake_distill)
    config = write_sweep(tmp_path / "s.yaml", tiny_teacher, tmp_path / "out")
    assert main(["ablate", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert len(tried) == 6 and "report: " in out
    assert ("dynakd: error: sweep tiny: 1 of 6 cells failed, with no record (a rerun tries them again): "
            "method=kd,seed=1,student_layers=1 (non-finite loss at step 3)") in err
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 5
    # the report names it (it had no row and no word in report.md)
    assert json.loads((tmp_path / "out" / "failed.json").read_text()) == {
        "method=kd,seed=1,student_layers=1": "non-finite loss at step 3"}
    assert ("1 cell(s) of the sweep failed and have no record, so no row: method=kd,seed=1,student_layers=1 "
            "(non-finite loss at step 3)") in (tmp_path / "out" / "report.md").read_text()
    tried.clear()
    assert main(["ablate", "--config", str(config)]) == 2
    assert tried == [("kd", 1)]
    capsys.readouterr()

    def lost_teacher(sweep, seed):  # a teacher of its own per seed: one that fails takes its cells, not the others
        if seed == 2:
            raise RuntimeError("CUDA out of memory")
        return ablate.teacher_config(sweep, seed), teacher

    monkeypatch.setattr(ablate, "ensure_teacher", lost_teacher)
    tried.clear()
    assert main(["ablate", "--config", str(config), "--output", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert sorted(tried) == [("full", 1), ("full", 1), ("kd", 1)]
    assert "RuntimeError: CUDA out of memory" in err and "Traceback" in err  # (not DynaKD's own: its stack)
    assert "4 of 6 cells failed, with no record (a rerun tries them again): " in err  # (kd seed 1 diverges, above)
    # the cells of one reason together, the reason said once
    final = err[err.index("4 of 6 cells failed"):]
    assert final.count("(its teacher (seed 2) failed: RuntimeError: CUDA out of memory)") == 1
    assert all(f"{key}," in final or f"{key} (" in final for key in (
        "method=kd,seed=2,student_layers=1", "align.name=fixed,method=full,seed=2,student_layers=1",
        "align.name=ot,method=full,seed=2,student_layers=1"))
    assert "[ablate] the teacher of seed 2 failed (RuntimeError: CUDA out of memory): its cells are left" in err


@pytest.mark.parametrize("grid, base", [({"task": ["sst2", "mrpc"]}, {}), ({"dev_split": [0.5]}, {}),
                                        ({"data_seed": [0, 1]}, {"dev_split": 0.5}),
                                        ({"max_eval_samples": [8, 16]}, {})])  # the teacher scored on base's rows
def test_a_grid_over_the_teachers_task_or_data_is_refused(grid, base, tiny_encoder, tmp_path):
    """The teacher is fine-tuned once (a seed) on base's task and data: a cell of another task got it anyway."""
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    raw["base"] |= base
    raw["grid"] |= grid
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DynaKDError, match=f"grid over {next(iter(grid))}: a sweep fine-tunes its teacher on base"):
        load_sweep(path)
    raw["base"].pop("dev_split", None)
    if "data_seed" in grid:  # on the synthetic corpus data_seed draws the evaluation rows too; on files it does not
        path.write_text(yaml.safe_dump(raw))
        with pytest.raises(DynaKDError, match="grid over data_seed"):
            load_sweep(path)
        raw["base"]["synthetic"] = False
        path.write_text(yaml.safe_dump(raw))
        if raw["base"].get("max_eval_samples"):  # ... and a subset of the evaluation rows
            with pytest.raises(DynaKDError, match="grid over data_seed"):
                load_sweep(path)
            raw["base"].pop("max_eval_samples")
            path.write_text(yaml.safe_dump(raw))
        load_sweep(path)


@pytest.mark.parametrize("where, key, says", [("base", "teacher", "fine-tunes its own teacher (once, or once per"),
                                               ("grid", "teacher", "to distil from a teacher you have, run dynakd "),
                                               ("base", "model", "the teacher is fine-tuned from teacher.model"),
                                               ("base", "output", "under its own output: key (top level)"),
                                               ("grid", "output", "the sweep writes its teacher and cells")])
def test_what_the_sweep_sets_itself_is_refused_in_base_and_grid(where, key, says, tiny_encoder, tmp_path):
    """The sweep's own teacher, starting model and folders went over base's and a grid's without a word: a base
    teacher of one's own was never read, and a new one fine-tuned."""
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    raw[where][key] = [str(tmp_path / "mine")] if where == "grid" else str(tmp_path / "mine")
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DynaKDError, match=rf"s.yaml: {where}.{key}: .*{re.escape(says)}"):
        load_sweep(path)
    raw[where].pop(key)
    raw["smoke"] = {key: str(tmp_path / "mine")}  # a smoke run's settings the same
    path.write_text(yaml.safe_dump(raw))
    load_sweep(path)
    with pytest.raises(DynaKDError, match=rf"s.yaml: smoke.{key}: .*{re.escape(says)}"):
        load_sweep(path, smoke=True)


@pytest.mark.parametrize("teacher, base, refused", [({"max_eval_samples": 100}, {"max_eval_samples": 1000}, True),
                                                     ({"data_seed": 7}, {"max_eval_samples": 1000}, True),
                                                     ({"dev_split": 0.2}, {}, True),
                                                     ({"max_eval_samples": 1000}, {"max_eval_samples": 1000}, False),
                                                     ({"data_seed": 7}, {"synthetic": False, "max_eval_samples": None},
                                                      False),
                                                     ({"epochs": 3, "lr": 3e-4}, {}, False)])
def test_the_teachers_own_settings_keep_the_cells_task_and_data(teacher, base, refused, tiny_encoder, tmp_path):
    """`teacher:` overrode base's data settings unchecked: the teacher's score, printed beside the students', was on
    other rows (another max_eval_samples or data_seed), or it trained on their evaluation rows (dev_split)."""
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    raw["base"] |= base
    raw["teacher"] = {**(raw.get("teacher") or {}), **teacher}
    path.write_text(yaml.safe_dump(raw))
    if refused:
        with pytest.raises(DynaKDError, match=f"teacher sets {next(iter(teacher))} otherwise than base: the teacher "
                                              "is scored on, and trained apart from, the rows the cells use"):
            load_sweep(path)
    else:
        load_sweep(path)


def test_grid_expansion_gives_dynamics_options_to_dynamics_methods_only(tiny_encoder, tmp_path):
    """static and pkd read no dynamics options: a grid over one ran the same static or pkd cell once per value."""
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out"))
    sweep.grid = [{"method": ["pkd", "static", "full"], "dynamics.reference": ["batch", "ema"], "seed": [1]}]
    assert sorted((c["method"], c.get("dynamics.reference", "-")) for c in cells(sweep)) == [
        ("full", "batch"), ("full", "ema"), ("pkd", "-"), ("static", "-")]


def test_a_list_of_grids_joins_their_products(tiny_encoder, tmp_path):
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    raw["grid"] = [{"method": "kd", "lr": [1e-4, 2e-4], "student_layers": 2, "seed": [1, 2]},
                   {"method": ["full", "kd"], "lr": [1e-4], "student_layers": [1], "seed": [1, 2]}]
    raw["smoke"] = {"grid": {"lr": [3e-4]}}
    path.write_text(yaml.safe_dump(raw))
    got = sorted((c["method"], c["lr"], c["seed"]) for c in cells(load_sweep(path)))
    assert got == [("full", 1e-4, 1), ("full", 1e-4, 2), ("kd", 1e-4, 1), ("kd", 1e-4, 1), ("kd", 1e-4, 2),
                   ("kd", 1e-4, 2), ("kd", 2e-4, 1), ("kd", 2e-4, 2)]  # kd at 1e-4 twice: 2 and 1 layers
    smoke = sorted((c["method"], c["lr"], c["seed"]) for c in cells(load_sweep(path, smoke=True)))
    assert smoke == [("full", 3e-4, 1), ("kd", 3e-4, 1), ("kd", 3e-4, 1)]  # each grid overridden, one seed


def test_a_grid_that_is_not_a_mapping_is_refused(tiny_encoder, tmp_path):
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    raw["grid"] = ["kd", "full"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DynaKDError, match="'grid' must map options"):
        load_sweep(path)
    raw["grid"] = [{"method": ["kd"], "seed": [1]}, {"method": ["full"], "seed": []}]  # would vanish silently
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DynaKDError, match=r"\['seed'\] list no values"):
        load_sweep(path)
    raw["grid"] = {"method": ["kd"]}
    raw["smoke"] = {"grid": [{"seed": [1]}, {"seed": [2]}]}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DynaKDError, match="'smoke.grid' must be one mapping"):
        load_sweep(path, smoke=True)
    raw.pop("smoke")
    for part, change in (("base", {"base": {**raw["base"], "push_to_hub": "me/sweep"}}),
                         ("teacher", {"teacher": {**raw["teacher"], "push_to_hub": "me/sweep"}}),
                         ("grid", {"grid": {**raw["grid"], "push_to_hub": ["me/sweep"]}}),
                         ("smoke", {"smoke": {"push_to_hub": "me/sweep"}})):
        path.write_text(yaml.safe_dump({**raw, **change}))
        with pytest.raises(DynaKDError, match="sweep tiny: push_to_hub would push every cell to one repository; push"):
            load_sweep(path, smoke=part == "smoke")


def test_a_sweep_file_of_the_wrong_shape_is_refused_before_anything_trains(tiny_encoder, tmp_path):
    """Each of these went on to fine-tune the teacher (minutes) before failing, or failed with a Python traceback."""
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    cases = [
        ({"grid": {}}, "'grid' names no option to sweep; give at least one, e.g. seed: \\[1, 2, 3\\]"),
        ({"grid": None}, "'grid' names no option to sweep"),
        ({"grid": {**raw["grid"], "seed": None}}, r"grid option\(s\) \['seed'\] list no values"),
        ({"grid": {"method": ["kd"], "seed": [1]}}, "cell method=kd,seed=1 names no student: give student_layers"),
        ({"base": ["task", "sst2"]}, "'base' must be a mapping of config keys, got \\['task', 'sst2'\\]"),
        ({"teacher": ["minilm"]}, "'teacher' must be a mapping of config keys"),
        ({"smoke": 3}, "'smoke' must be a mapping of config keys, got 3"),
        ({"teacher": {"model": str(tiny_encoder), "per_seed": "maybe"}},
         "teacher.per_seed: expected true or false, got 'maybe'"),
        ({"name": ["a", "b"]}, "'name' must be a string"),
    ]
    for change, message in cases:
        path.write_text(yaml.safe_dump({**raw, **change}))
        with pytest.raises(DynaKDError, match=message):
            load_sweep(path, smoke=True)
    path.write_text("")
    with pytest.raises(DynaKDError, match="'grid' names no option"):
        load_sweep(path)
    path.write_text(yaml.safe_dump(raw))
    (tmp_path / "afile").write_text("")
    with pytest.raises(DynaKDError, match="the sweep's output .*afile is a file, not a folder"):
        load_sweep(path, output=str(tmp_path / "afile"))


def test_smoke_without_the_data_says_it_uses_the_synthetic_corpus(tiny_encoder, tmp_path, capsys):
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    raw["base"] = {**raw["base"], "synthetic": False, "data_dir": str(tmp_path / "no-such-glue")}
    path.write_text(yaml.safe_dump(raw))
    assert load_sweep(path, smoke=True).base["synthetic"] is True
    assert f"data_dir {tmp_path / 'no-such-glue'} is not a folder here: this smoke run uses the synthetic corpus, " \
           "and the real sweep will fail" in capsys.readouterr().err


def test_smoke_without_data_the_synthetic_corpus_cannot_serve_is_refused(tiny_encoder, tmp_path):
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    raw["base"] = {**raw["base"], "task": "mrpc", "synthetic": False, "data_dir": str(tmp_path / "no-such-glue")}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DynaKDError, match="the synthetic corpus \\(single sentences, two labels\\) cannot stand in "
                                          "for mrpc; run the smoke check where the data is"):
        load_sweep(path, smoke=True)


def test_a_missing_data_file_is_named_before_anything_runs(tiny_encoder, tmp_path):
    """A sweep's train or validation file that is not there is named with the sweep file, before the teacher's run
    (a SQuAD sweep, which has no synthetic stand-in, found it only there), in smoke mode and not."""
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    missing = tmp_path / "no-such" / "dev-v1.1.json"
    raw["base"] = {**raw["base"], "task": "squad", "synthetic": False, "train_file": str(missing)}
    path.write_text(yaml.safe_dump(raw))
    for smoke in (True, False):
        with pytest.raises(DynaKDError, match=f"s.yaml: train_file {missing} is not a file here"):
            load_sweep(path, smoke=smoke)
    assert not (tmp_path / "out").exists()
    raw["base"] = {**raw["base"], "task": "sst2", "train_file": None, "data_dir": "no-such-glue"}
    path.write_text(yaml.safe_dump(raw))  # the real sweep (smoke falls back to the synthetic corpus, with a warning)
    with pytest.raises(DynaKDError, match="s.yaml: data_dir no-such-glue is not a folder here \\(a relative path "
                                          "counts from /"):
        load_sweep(path)


def test_a_changed_sweep_file_starts_its_smoke_run_again(tiny_encoder, tmp_path, capsys):
    config = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    spec = yaml.safe_load(config.read_text())
    spec["grid"] = {"method": ["kd"], "student_layers": [1], "seed": [1]}
    config.write_text(yaml.safe_dump(spec))
    assert main(["ablate", "--config", str(config), "--smoke"]) == 0
    spec["base"]["temperature"] = 4.0
    config.write_text(yaml.safe_dump(spec))
    assert main(["ablate", "--config", str(config), "--smoke"]) == 0
    assert f"the sweep file changed since the last smoke run: {tmp_path / 'out' / 'smoke'} starts again" in \
        capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "smoke" / "results.jsonl").read_text())
    assert record["config"]["temperature"] == 4.0
    (tmp_path / "out" / "smoke" / "results.jsonl").unlink()  # killed before a cell finished: only the teacher stands
    spec["base"]["weight_decay"] = 0.1
    config.write_text(yaml.safe_dump(spec))
    assert main(["ablate", "--config", str(config), "--smoke"]) == 0
    assert "starts again" in capsys.readouterr().out


def test_smoke_shrinks_the_teachers_own_sizes_too(tiny_encoder, tmp_path):
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    raw["teacher"]["max_train_samples"] = 8000
    path.write_text(yaml.safe_dump(raw))
    assert load_sweep(path).teacher["max_train_samples"] == 8000
    assert load_sweep(path, smoke=True).teacher["max_train_samples"] == 32


def test_smoke_checks_the_types_of_the_values_it_replaces(tiny_encoder, tmp_path):
    """From a sweep user's walkthrough (2026-12-07): base's max_steps 'ten' passed a --smoke run (which sets its own
    max_steps) and failed the real sweep."""
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    for section, key in (("base", "max_steps"), ("teacher", "max_train_samples")):
        bad = raw | {section: (raw.get(section) or {}) | {key: "ten"}}
        path.write_text(yaml.safe_dump(bad))
        for smoke in (False, True):
            with pytest.raises(DynaKDError, match=rf"^{path}: {section}\.{key}: expected int, got 'ten'$"):
                load_sweep(path, smoke=smoke)


def test_ablate_resumes_and_reports(tiny_encoder, tmp_path, capsys, monkeypatch):
    config = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    assert main(["ablate", "--config", str(config)]) == 0
    results = tmp_path / "out" / "results.jsonl"
    lines = results.read_text().splitlines()
    assert len(lines) == 6
    assert {json.loads(x)["method"] for x in lines} == {"kd", "full"}
    assert {json.loads(x)["align"] for x in lines if json.loads(x)["method"] == "kd"} == {None}  # kd aligns nothing
    assert all(json.loads(x)["versions"]["dynakd"] for x in lines)  # the code that made each record
    assert "The runs ran DynaKD at " in (tmp_path / "out" / "report.md").read_text()
    assert len(list((tmp_path / "out").glob("teacher-seed*"))) == 2  # one teacher per seed, reused across cells
    # a rerun finds every cell done and only rebuilds the report
    assert main(["ablate", "--config", str(config)]) == 0
    assert len(results.read_text().splitlines()) == 6
    # finished cells trained with other shared settings are refused, not reported as the new sweep's
    saved = (tmp_path / "out" / "sweep.yaml").read_text()
    spec = yaml.safe_load(config.read_text())
    spec["base"]["max_steps"] = 3
    config.write_text(yaml.safe_dump(spec))
    assert main(["ablate", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "was run with other settings (differs in: max_steps 2 -> 3, teacher.max_steps 2 -> 3); give the sweep " \
        "another" in err
    assert (tmp_path / "out" / "sweep.yaml").read_text() == saved
    shutil.rmtree(tmp_path / "out" / "cells")  # the records still say how the cells ran
    assert main(["ablate", "--config", str(config)]) == 2
    assert "differs in: max_steps 2 -> 3" in capsys.readouterr().err
    spec["base"]["max_steps"] = 2
    config.write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)  # the same sweep folder, spelt relative: nothing differs
    assert main(["ablate", "--config", str(config), "--output", "out"]) == 0
    assert "6 cells done, 0 to run" in capsys.readouterr().out
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| 1 | full | ot |" in report and "| 1 | kd | - |" in report
    assert (tmp_path / "out" / "ablation.png").is_file()
    assert (tmp_path / "out" / "alignment_ot_L1.png").is_file()
    (tmp_path / "out" / "report.md").unlink()
    assert main(["report", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.md").is_file()


def test_a_teacher_fine_tuned_with_other_settings_is_refused(tiny_encoder, tmp_path, capsys):
    config = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    spec = yaml.safe_load(config.read_text())
    spec["teacher"].update(per_seed=False, seed=42)
    spec["grid"] = {"method": ["kd"], "student_layers": [1], "seed": [1]}
    config.write_text(yaml.safe_dump(spec))
    assert main(["ablate", "--config", str(config)]) == 0
    spec["teacher"]["lr"] = 1.0e-3  # the teacher's settings change; a new cell would reuse the old teacher
    spec["grid"]["seed"] = [1, 2]
    config.write_text(yaml.safe_dump(spec))
    assert main(["ablate", "--config", str(config)]) == 2
    assert "was run with other settings (differs in: teacher.lr 5e-05 -> 0.001)" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "out" / "teacher-seed42")  # the finished cell's record still says how its teacher ran
    assert main(["ablate", "--config", str(config)]) == 2
    assert "was run with other settings (differs in: teacher.lr 5e-05 -> 0.001)" in capsys.readouterr().err
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 1
    spec["teacher"].pop("lr")
    spec["teacher"]["seed"] = 7  # another teacher folder (teacher-seed7) for the same cells
    config.write_text(yaml.safe_dump(spec))
    assert main(["ablate", "--config", str(config)]) == 2
    assert "was run with other settings (differs in: teacher teacher-seed42 -> teacher-seed7, teacher.seed 42 -> 7)" \
        in capsys.readouterr().err


def test_shards_split_the_grid_and_share_one_teacher(tiny_encoder, tmp_path):
    """Two concurrent ``--shard`` processes: disjoint cells, every cell once, the shared teacher trained once."""
    config = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    spec = yaml.safe_load(config.read_text())
    spec["teacher"]["per_seed"] = False
    config.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dynakd.cli", "ablate", "--config", str(config), "--shard"]
    procs = [subprocess.Popen([*cmd, f"{k}/2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for k in (1, 2)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    keys = [json.loads(x)["key"] for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sorted(keys) == sorted(cell_key(c) for c in cells(load_sweep(config)))
    assert sum(log.count("fine-tuning the teacher") for log in logs) == 1
    assert "(shard 1/2): 0 cells done, 3 to run" in logs[0] and "(shard 2/2): 0 cells done, 3 to run" in logs[1]
    # shards leave the report to one `dynakd report` at the end (a shard cannot know whether the others are done)
    assert all("when every shard is: dynakd report" in log for log in logs)
    assert not (tmp_path / "out" / "report.md").exists()
    assert main(["report", str(tmp_path / "out")]) == 0


@pytest.mark.parametrize("shard", ["0/2", "3/2", "1", "a/b"])
def test_bad_shard_is_refused(shard, capsys):
    assert main(["ablate", "--config", "missing.yaml", "--shard", shard]) == 2
    assert "--shard must be K/N" in capsys.readouterr().err


def test_paired_delta():
    d = paired_delta({1: 81.0, 2: 82.0, 3: 83.0}, {1: 80.0, 2: 80.5, 3: 81.5})
    assert abs(d.mean - 4 / 3) < 1e-9 and d.low < d.mean < d.high and d.pairs == 3
    assert (d.ahead, d.tied, d.behind) == (3, 0, 0)
    d = paired_delta({1: 81.0, 2: 80.5, 3: 80.0, 4: 90.0}, {1: 80.0, 2: 80.5, 3: 81.5})  # seed 4 has no pair
    assert (d.pairs, d.ahead, d.tied, d.behind) == (3, 1, 1, 1)


def test_best_settings_pairs_each_method_at_its_best_with_kd_at_its_best():
    def row(method, variant, by_seed, align="-"):
        return {"depth": 2, "method": method, "align": align, "variant": variant, "scores": list(by_seed.values()),
                "by_seed": by_seed, "delta": None if method == "kd" or variant == "beta=30" else (0.0,)}

    rows = [row("kd", "lr=0.0001", {1: 80.0, 2: 80.5, 3: 81.0}),
            row("kd", "lr=0.0004", {1: 83.0, 2: 82.5, 3: 83.5}),
            row("full", "lr=0.0001", {1: 82.0, 2: 82.0, 3: 82.5}),
            row("full", "lr=0.0002", {1: 82.5, 2: 83.0, 3: 83.0}),
            row("full", "beta=30", {1: 90.0, 2: 90.0})]  # a two-seed screen does not compete with three-seed rows
    best = {r["method"]: r for r in best_settings(rows)}
    assert best["kd"]["variant"] == "lr=0.0004" and best["kd"]["delta"] is None
    assert best["full"]["variant"] == "lr=0.0002"
    assert abs(best["full"]["delta"][0] - (-0.5 + 0.5 - 0.5) / 3) < 1e-9
    assert best_settings([rows[0], rows[2]]) == []  # one setting per method: the main table says it all
    # ... unless a method ran at a setting of its own (kd at 4e-4, full at 2e-4): no Δ in the main table, so the
    # second table pairs them
    alone = dict(rows[3], delta=None)
    best = {r["method"]: r for r in best_settings([rows[1], alone])}
    assert best["full"]["delta"].pairs == 3 and abs(best["full"]["delta"].mean + 0.5 / 3) < 1e-9
    # two more seeds of the 1e-4 row (poor ones) do not change its rank: rows compete on the seeds they share
    rows[2] = row("full", "lr=0.0001", {1: 83.0, 2: 83.5, 3: 83.0, 4: 70.0, 5: 70.0})
    assert {r["method"]: r for r in best_settings(rows)}["full"]["variant"] == "lr=0.0001"


def test_a_control_map_is_no_setting_to_be_best_at():
    """A user's walkthrough: a sweep of `align.fixed_map: [uniform, random]` put `full`/fixed at the random map, a
    control, as its best setting (on a tie); a control competes only where it is all a method and aligner ran."""
    def row(variant, by_seed, method="full"):
        return {"depth": 2, "method": method, "align": "fixed" if method != "kd" else "-", "variant": variant,
                "scores": list(by_seed.values()), "by_seed": by_seed, "delta": None if method == "kd" else (0.0,)}

    kd = row("-", {1: 80.0, 2: 80.0, 3: 80.0}, method="kd")
    uniform, drawn = row("-", {1: 81.0, 2: 81.0, 3: 81.0}), row("align.fixed_map=random", {1: 82.0, 2: 82.0, 3: 82.0})
    assert best_settings([kd, uniform, drawn]) == []  # (one setting left to compare: no second table)
    reversed_only = row("align.fixed_map=reversed", {1: 79.0, 2: 79.0, 3: 79.0})
    assert best_settings([kd, reversed_only]) == []
    tuned = row("lr=0.0002, align.fixed_map=random", {1: 90.0, 2: 90.0, 3: 90.0})
    assert [r["variant"] for r in best_settings([kd, uniform, row("lr=0.0002", {1: 81.5, 2: 81.5, 3: 81.5}),
                                                  tuned]) if r["method"] == "full"] == ["lr=0.0002"]


def test_methods_tuned_apart_are_paired_in_the_second_table(tmp_path):
    """`kd` at one learning rate and `full` at another (each at its best): the main table has no `kd` of full's
    settings, so its Δ is '-'. The report said nothing more; now the second table pairs them, and each Δ counts the
    seeds it is ahead, tied and behind in."""
    records = [json.loads(x) for x in (ROOT / "benchmarks" / "b1-pilot-L2" / "results.jsonl").read_text().splitlines()]
    for r in records:
        r["cell"]["lr"] = 4e-4 if r["method"] == "kd" else 6e-4
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    text = build_report(tmp_path).read_text()
    main_table, best = text.split("## Each method at its best setting")
    assert "| 2 | full | ot | lr=0.0006 | 81.27 ± 0.40 | 3 | - |" in main_table
    assert "the second table pairs each method at its best setting with `kd` at its best" in main_table
    assert "| 2 | full | ot | lr=0.0006 | 81.27 ± 0.40 | 3 | +0.61 [-0.79, +2.02] (3/0/0) |" in best


def test_a_report_with_too_many_settings_plots_each_method_at_its_best(tmp_path, monkeypatch):
    """The research folder's ~60 settings per depth would be an unreadable plot: it shows the second table instead."""
    from dynakd.experiments import plots

    shutil.copy(ROOT / "benchmarks" / "research-L2g" / "results.jsonl", tmp_path / "results.jsonl")
    plotted = []
    monkeypatch.setattr(plots, "plot_ablation", lambda rows, path, metric: plotted.append(rows))
    text = build_report(tmp_path).read_text()
    assert "The plot shows each method at its best setting" in text
    (rows,) = plotted
    assert len({(r["method"], r["align"], r["variant"]) for r in rows}) <= 20
    assert all(r.get("delta") is not None or r["method"] == "kd" for r in rows)  # the second table's rows


def test_a_plot_of_many_settings_at_their_own_rates_reads(tmp_path):
    """14 methods and aligners at 2 depths, each depth at a rate of its own: 28 settings, no second table, so the
    fallback to it did nothing and the plot was a 3696-pixel strip with colours repeating and the legend cut off. It
    counts the bars of one depth (14, which read), one panel a depth, one colour a method and aligner."""
    kinds = [("task", "-"), ("kd", "-")] + [(m, a) for m in ("static", "pkd", "dynamics", "full")
                                            for a in ("fixed", "attention", "ot")]
    records = []
    for depth, lr in ((2, 4e-4), (3, 2e-4)):
        for i, (method, align) in enumerate(kinds):
            extra = {"lr": lr, "student_layers": depth} | ({} if align == "-" else {"align.name": align})
            for seed in (1, 2, 3):
                records.append(run_record(method, seed, 0.80 + 0.002 * i + 0.001 * seed, **extra) | {
                    "align": "ot" if align == "-" else align})
    text = build_report(write_results(tmp_path, records)).read_text()
    assert "The plot shows" not in text  # every setting is drawn
    png = Image.open(tmp_path / "ablation.png")
    assert png.width <= 1000 and png.height < 1600


def test_the_readme_figure_is_no_strip(tmp_path):
    """B1's figure, which the README shows, was 2736 by 432 pixels: bars side by side with a legend beside them."""
    shutil.copy(ROOT / "benchmarks" / "b1-sst2-cpu" / "results.jsonl", tmp_path / "results.jsonl")
    build_report(tmp_path)
    png = Image.open(tmp_path / "ablation.png")
    assert png.width <= 1000 and png.height > png.width


def test_the_heatmap_copied_is_of_a_run_with_a_score(tmp_path):
    """The report copied the lowest seed's heatmap even when that run had diverged (its plan may be NaN)."""
    records = [run_record("full", 1, None), run_record("full", 2, 0.82), run_record("full", 3, 0.81)]
    for r in records:
        r["output"] = str(tmp_path / "cells" / r["key"])
        (tmp_path / "cells" / r["key"]).mkdir(parents=True)
        (tmp_path / "cells" / r["key"] / "alignment.png").write_bytes(r["key"].encode())
    text = build_report(write_results(tmp_path, records)).read_text()
    assert (tmp_path / "alignment_ot_L2.png").read_bytes() == b"method=full,seed=2"
    assert "`alignment_ot_L2.png` of `method=full,seed=2`" in text


def test_each_variant_of_an_aligner_has_its_heatmap(tmp_path):
    """maps-L2's three attention rows (plain, order prior, relative costs) shared one picture, the first's: the
    variants' plans, the point of those cells, were never drawn. Settings all its runs share keep the plain name."""
    variants = [{}, {"order_prior": 1.0}, {"relative": True}]
    records = []
    for extra in variants:
        for seed in (1, 2):
            r = run_record("full", seed, 0.8, **{f"align.{k}": v for k, v in extra.items()})
            r["align"], r["config"] = "attention", {"align": {**AlignConfig(iters=50).__dict__, "name": "attention",
                                                              **extra}}
            r["output"] = str(tmp_path / "cells" / r["key"])
            (tmp_path / "cells" / r["key"]).mkdir(parents=True)
            (tmp_path / "cells" / r["key"] / "alignment.png").write_bytes(r["key"].encode())
            records.append(r)
    text = build_report(write_results(tmp_path, records)).read_text()
    drawn = sorted(p.name for p in tmp_path.glob("alignment_*.png"))
    assert drawn == ["alignment_attention_L2.png", "alignment_attention_order_prior-1_L2.png",
                     "alignment_attention_relative_L2.png"]  # (iters 50 is every run's: not in a name)
    assert (tmp_path / "alignment_attention_relative_L2.png").read_bytes() == records[4]["key"].encode()
    assert "`alignment_attention_relative_L2.png` of `align.relative=true,method=full,seed=1`" in text
    assert "| 2 | full | attention | align.relative=true |" in text  # (a flag as the cell's key says it, not True)


def stand_in_data(path: Path, tmp_path: Path) -> Path:
    """The sweep file, with small local files for data that is not on this machine (``../shared`` is optional for
    tests): a copy under ``tmp_path`` when something was stood in. SST-2 needs nothing: ``--smoke`` falls back to the
    synthetic corpus by itself. A teacher checkpoint named by a local path that is not here (get-models.sh's) is stood
    in by a tiny 12-layer BERT: the sweep checks its folder and its depth before any cell runs."""
    from tests.conftest import make_tiny_bert

    raw = yaml.safe_load(path.read_text())
    base, stood_in = raw["base"], False
    model = str((raw.get("teacher") or {}).get("model", ""))
    if model.startswith(("~", "/", ".")) and not Path(model).expanduser().is_dir():
        raw["teacher"]["model"] = str(make_tiny_bert(tmp_path / "stand-in-teacher", layers=12, hidden=16))
        stood_in = True
    if base.get("task") == "squad" and not Path(base.get("train_file", "")).is_file():
        from tests.squad_fixture import write_squad

        base.update(train_file=str(write_squad(tmp_path / "squad.json")), train_articles=3)
    elif base.get("task") == "mrpc" and not Path(base.get("data_dir", "")).is_dir():
        header = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        pairs = [(i % 2, f"the cat sat on mat {i}", f"a cat sat on the mat {i}" if i % 2 else "rain fell")
                 for i in range(12)]
        for split, rows in (("train", pairs), ("dev", pairs[:6])):
            folder = tmp_path / "glue" / "MRPC"
            folder.mkdir(parents=True, exist_ok=True)
            body = "".join(f"{q}\t{2 * i}\t{2 * i + 1}\t{a}\t{b}\n" for i, (q, a, b) in enumerate(rows))
            (folder / f"{split}.tsv").write_text(header + body, encoding="utf-8")
        base["data_dir"] = str(tmp_path / "glue")
    elif base.get("task") == "qnli" and not Path(base.get("data_dir", "")).is_dir():  # a dev file: dev_split cuts it
        header = "index\tquestion\tsentence\tlabel\n"
        body = "".join(f"{i}\twhere is cat {i}?\t{'the cat is on the mat' if i % 2 else 'rain fell'} {i}\t"
                       f"{'entailment' if i % 2 else 'not_entailment'}\n" for i in range(24))
        folder = tmp_path / "glue" / "QNLI"
        folder.mkdir(parents=True)
        (folder / "dev.tsv").write_text(header + body, encoding="utf-8")
        base["data_dir"] = str(tmp_path / "glue")
    elif not stood_in:
        return path
    copy = tmp_path / path.name  # the same name: the sweep's name comes from it
    copy.write_text(yaml.safe_dump(raw))
    return copy


CONFIGS = ROOT / "benchmarks" / "configs"
COMMITTED = sorted(CONFIGS.rglob("*.yaml"))


# Settings that name places, not code paths (the stand-in data live in each test's own folder), and the seeds.
PLACES = {"output", "teacher", "data_dir", "train_file", "validation_file", "seed", "data_seed"}


def code_path(value: Any) -> Any:
    """A run's settings with each number reduced to zero or not: runs alike in all else take the same code paths."""
    if isinstance(value, dict):
        return tuple(sorted((k, code_path(v)) for k, v in value.items() if k not in PLACES))
    if isinstance(value, (list, tuple)):
        return tuple(code_path(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0
    return value


@pytest.fixture(scope="session")
def smoke_cells(tmp_path_factory) -> dict[Path, set[str]]:
    """The cells each committed sweep's smoke test runs: those whose teacher and run take code paths no earlier file's
    cell took (in file order, so one test alone runs the same cells). The ~130 smoke cells are ~45 such runs; cells
    that differ from one of them only in numbers (seeds, rates, weights) add time, not coverage. ``load_sweep`` still
    validates every cell of every file."""
    seen, plan = set(), {}
    for path in COMMITTED:
        sweep = load_sweep(stand_in_data(path, tmp_path_factory.mktemp("plan")), smoke=True,
                           output=str(tmp_path_factory.mktemp("plan-out")))
        plan[path] = set()
        for cell in cells(sweep):
            runs = code_path(teacher_config(sweep, cell_seed(sweep, cell)).to_dict()), \
                code_path(cell_config(sweep, cell, "teacher").to_dict())
            if runs not in seen:
                seen.add(runs)
                plan[path].add(cell_key(cell))
    return plan


@pytest.mark.parametrize("path", COMMITTED, ids=[str(p.relative_to(CONFIGS)) for p in COMMITTED])
def test_committed_sweeps_run_in_smoke_mode(path, tiny_teacher, smoke_cells, tmp_path):
    """Every committed sweep loads with --smoke (which validates each cell), and its cells of code paths not run
    before run end to end (a tiny 4-layer teacher stands in for the real one)."""
    sweep = load_sweep(stand_in_data(path, tmp_path), smoke=True, output=str(tmp_path / "out"))
    sweep.teacher["model"] = str(tiny_teacher)
    mine = [cell for cell in cells(sweep) if cell_key(cell) in smoke_cells[path]]
    if not mine:
        return
    sweep = dataclasses.replace(sweep, grid=[{k: [v] for k, v in cell.items()} for cell in mine])
    assert cells(sweep) == mine
    results = run_sweep(sweep)
    assert len(results.read_text().splitlines()) == len(mine)
    header = build_report(results.parent).read_text().splitlines()[4]
    task = sweep.base["task"]  # every metric of the task has a column, the ranking one first
    first = {"sst2": "| accuracy |", "qnli": "| accuracy |", "mrpc": "| f1 | seeds |", "squad": "| f1 | seeds |"}
    assert first[task] in header
    assert task != "squad" or "| exact_match |" in header


def test_a_smoke_run_has_a_folder_of_its_own(tmp_path):
    """Smoke cells have the real cells' keys: in the real sweep folder they would pass for finished ones."""
    path = CONFIGS / "b1-sst2-cpu.yaml"  # (SST-2: the smoke run can do without the data)
    assert load_sweep(path, smoke=True, output=str(tmp_path / "s")).output == tmp_path / "s" / "smoke"
    assert load_sweep(path, smoke=True).output == Path("runs/b1-sst2-cpu/smoke")
    assert load_sweep(path, output=str(tmp_path / "s")).output == tmp_path / "s"


def test_report_points_to_a_smoke_run(tmp_path):
    from dynakd.experiments.report import load_results

    with pytest.raises(DynaKDError, match=f"no results.jsonl in {tmp_path}: run `dynakd ablate` first"):
        load_results(tmp_path)
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "results.jsonl").write_text("")
    with pytest.raises(DynaKDError, match=f"no results.jsonl in {tmp_path}; a --smoke run's are in {tmp_path}/smoke"):
        load_results(tmp_path)


def test_report_says_a_model_or_scores_folder_is_not_a_runs(tmp_path, capsys):
    """From a user's walkthrough: a folder `evaluate --output` wrote, or a model's, was told to run `dynakd ablate`."""
    (tmp_path / "scores").mkdir()
    (tmp_path / "scores" / "metrics.json").write_text("{}")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    for name, what in (("scores", "a folder of scores (evaluate --output)"), ("model", "a model's folder")):
        assert main(["report", str(tmp_path / name)]) == 2
        assert (f"no results.jsonl in {tmp_path / name}: it is {what} that no DynaKD run wrote (no dynakd.yaml), "
                "and report compares the folders distill and finetune write, or a sweep's") in capsys.readouterr().err
    (tmp_path / "run" / "checkpoint-2").mkdir(parents=True)  # (a review: it was told it was no DynaKD run's)
    (tmp_path / "run" / "dynakd.yaml").write_text("task: sst2\n")
    (tmp_path / "run" / "checkpoint-2" / "config.json").write_text("{}")
    assert main(["report", str(tmp_path / "run" / "checkpoint-2")]) == 2
    assert (f"it is a checkpoint of the run in {tmp_path / 'run'}, which report compares once it has finished"
            in capsys.readouterr().err)


def test_a_sweep_checks_every_grid_value_and_says_which_options_no_cell_reads(tiny_encoder, tmp_path, capsys):
    """From a new user's sweep (2026-12-06): ``align.tau: [0.1, fast]`` beside the OT aligner gave one cell without a
    word (no cell reads it, so nothing checked ``fast``); ``seed: [1, two]`` passed --smoke, which keeps one seed; a
    mistyped teacher folder was found when the teacher's training started."""
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())

    def sweep_with(**grid):
        path.write_text(yaml.safe_dump({**raw, "grid": {"method": ["full"], "student_layers": [1], **grid}}))
        return path

    for grid, said in (({"seed": [1, "two"]}, "grid seed: expected int, got 'two'"),
                       ({"align.tau": [0.1, "fast"]}, "grid align.tau: expected float, got 'fast'"),
                       # (a misspelt key was named without its section, as base's and teacher's are)
                       ({"methd": ["kd"]}, r"grid: unknown config key 'methd' \(did you mean 'method'\?\)")):
        for smoke in (False, True):
            with pytest.raises(DynaKDError, match=f"^{re.escape(str(path))}: {said}$"):
                load_sweep(sweep_with(**grid), smoke=smoke)
    capsys.readouterr()
    assert len(cells(load_sweep(sweep_with(**{"align.tau": [0.1, 0.2]})))) == 1
    assert f"note: {path}: no cell reads grid option(s) align.tau (its method or aligner does not): the cells leave " \
           "them out" in capsys.readouterr().out
    load_sweep(sweep_with(**{"align.name": ["attention", "ot"], "align.tau": [0.1, 0.2]}))  # read by attention's
    assert "no cell reads" not in capsys.readouterr().out
    # one mapping's option, read by another mapping's cells (a user's walkthrough, 2026-12-08): said of that mapping
    path.write_text(yaml.safe_dump({**raw, "grid": [
        {"method": ["full"], "student_layers": [1], "align.name": ["attention"], "align.order_prior": [0, 1]},
        {"method": ["full"], "student_layers": [1], "align.name": ["fixed"], "align.order_prior": [0, 1]}]}))
    assert len(cells(load_sweep(path))) == 3
    out = capsys.readouterr().out
    assert "no cell reads" not in out
    assert (f"note: {path}: grid mapping 2 (align.name: [fixed], align.order_prior: [0, 1], method: [full], "
            "student_layers: [1]): none of its cells reads align.order_prior (its method or aligner does not): "
            "they leave it out") in out and "grid mapping 1" not in out
    path.write_text(yaml.safe_dump({**raw, "teacher": {"model": str(tmp_path / "nope")}}))
    with pytest.raises(DynaKDError, match=f"^{re.escape(str(path))}: model folder not found: "):
        load_sweep(path)
    path.write_text(yaml.safe_dump({**raw, "teacher": {"model": None}}))  # (a TypeError in that check)
    load_sweep(path)


def test_report_says_what_it_reads_of_a_file_or_a_runs_folder(tmp_path):
    """``report report.md`` was read as a bench's JSON ("Expecting value"); a run's folder was told to run ablate."""
    (tmp_path / "results.jsonl").write_text("")
    (tmp_path / "report.md").write_text("# Ablation\n")
    with pytest.raises(DynaKDError, match=f"^{re.escape(str(tmp_path / 'report.md'))} is no sweep's folder nor a "
                                          f"bench's JSON file, which report reads; the sweep's folder is "
                                          f"{re.escape(str(tmp_path))}$"):
        from dynakd.cli.report import run

        run(type("Args", (), {"folder": [str(tmp_path / "report.md")]})())
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "dynakd.yaml").write_text("task: sst2\n")
    assert main(["report", str(tmp_path / "run")]) == 2


def test_the_report_says_how_many_examples_scored_it():
    """report.md gave scores of a 128-example subset without a word (one example: 0.78 points)."""
    from dynakd.experiments.report import data_sizes

    def records(*caps):
        return [{"config": {"max_eval_samples": e, "max_train_samples": t}} for e, t in caps]

    assert data_sizes(records((128, 512), (128, 512))) == (
        "Runs were scored on a seeded subset of at most 128 examples (`max_eval_samples`; at 128 examples one is 0.78 "
        "points) and trained on a seeded subset of at most 512 examples (`max_train_samples`).")
    assert data_sizes(records((None, 512), (64, 512))).startswith(
        "Runs were scored on at most 64 or all examples, by run (`max_eval_samples`) and trained on")
    assert data_sizes(records((None, None))) == ""
    assert data_sizes([{"eval": {}}]) == ""  # (a record from before records held their config)


def test_the_report_and_every_record_name_the_code_that_made_them(tmp_path):
    """No record said which DynaKD made it: a sweep's numbers moved with the code (the same config +1.19, then
    +0.11), and a reader of results.jsonl could not tell which commit each came from."""
    from dynakd.experiments.report import code_versions
    from dynakd.provenance import versions

    now = versions()
    assert set(now) == {"dynakd", "commit", "python", "torch", "transformers"} and now["dynakd"]
    assert code_versions([{"versions": {"commit": "abc1234"}}, {"versions": {"commit": "def5678-dirty"}}]) == \
        "The runs ran DynaKD at commits abc1234, def5678-dirty."
    assert code_versions([{"versions": {"dynakd": "0.1.0", "commit": None}}]) == \
        "The runs ran DynaKD at 0.1.0 (installed)."
    assert code_versions([{"versions": {"commit": "abc1234"}}, {"versions": {"dynakd": "0.1.0", "commit": None}}]) \
        == "The runs ran DynaKD at commit abc1234 and 0.1.0 (installed)."
    assert code_versions([{"versions": {"commit": "abc1234"}}, {"eval": {}}]) == ""  # (a record from before)


def test_a_damaged_results_file_is_read_as_far_as_it_goes(tmp_path, capsys):
    """A process stopped while writing leaves a partial last record: the report leaves it out, the sweep cuts it off
    (so the next record starts on a line of its own) and runs its cell again. Other damage is named by line."""
    from dynakd.experiments.ablate import finished
    from dynakd.experiments.report import load_results

    results = tmp_path / "results.jsonl"
    good = json.dumps({"key": "method=kd,seed=1", "task": "sst2"})
    results.write_text(good + "\n" + '{"key": "method=full,se')
    assert [r["key"] for r in load_results(tmp_path)] == ["method=kd,seed=1"]
    assert "ends in a partial record (a run stopped while writing it); the report leaves it out" in \
        capsys.readouterr().err
    assert list(finished(results)) == ["method=kd,seed=1"]
    assert results.read_text() == good + "\n"
    results.write_text(good + "\n" + good.replace("kd", "full"))  # saved by hand without the last newline: whole
    assert [r["key"] for r in load_results(tmp_path)] == ["method=kd,seed=1", "method=full,seed=1"]
    assert list(finished(results)) == ["method=kd,seed=1", "method=full,seed=1"]
    assert results.read_text().endswith("}\n")
    from dynakd.experiments.ablate import mend_results

    results.write_text(good + "\n" + '{"key": "method=full,se')  # another shard stopped mid-write: the next record
    assert mend_results(results) and results.read_text() == good + "\n"  # is appended on a line of its own
    results.write_text(good + "\nnot json\n" + good + "\n")
    with pytest.raises(DynaKDError, match="results.jsonl: line 2 is not a JSON record"):
        load_results(tmp_path)
    results.write_text("")
    with pytest.raises(DynaKDError, match="results.jsonl holds no finished run yet"):
        load_results(tmp_path)
    with pytest.raises(DynaKDError, match="no folder .*nope"):
        load_results(tmp_path / "nope")


def test_the_teacher_line_stays_inside_the_plot_and_a_shared_teacher_is_one_score(tmp_path, monkeypatch):
    """The plot's lower limit followed the students only, so a teacher scoring below them fell outside the axes."""
    from matplotlib.figure import Figure

    from dynakd.experiments.plots import plot_ablation
    from dynakd.experiments.report import _fmt_teacher

    limits = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: limits.append(fig.axes[0].get_xlim()))  # scores
    rows = [{"depth": 2, "method": "kd", "align": "-", "variant": "-", "scores": [60.0, 62.0], "teacher": [46.9] * 2}]
    plot_ablation(rows, tmp_path / "a.png", "accuracy")
    assert limits[0][0] < 46.9 < limits[0][1]
    assert _fmt_teacher([46.88, 46.88]) == "46.88" and _fmt_teacher([46.0, 48.0]) == "47.00 ± 1.41"


def strict_json(text: str):
    """Parse as jq or JavaScript would: a bare NaN or Infinity is no JSON."""
    def refuse(constant):
        raise ValueError(f"{constant} is not strict JSON")
    return json.loads(text, parse_constant=refuse)


def test_records_lacking_what_the_report_reads_are_left_out_with_a_note(tmp_path, capsys):
    """A record without task or student_layers (an older DynaKD's, or edited by hand) stopped the report on a
    KeyError."""
    records = [json.loads(x) for x in (ROOT / "benchmarks" / "b1-pilot-L2" / "results.jsonl").read_text().splitlines()]
    del records[0]["task"], records[1]["student_layers"]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["report", str(tmp_path)]) == 0
    assert (f"note: {tmp_path / 'results.jsonl'}: 2 of 6 record(s) lack task, student_layers (written by hand or by "
            "an older DynaKD); the report leaves them out") in capsys.readouterr().err
    report = (tmp_path / "report.md").read_text()
    assert "| 2 | kd | - | - | 80.39 | 1 |" in report  # kd's seeds 2 and 3 remain
    # and report.md says so itself, by the file's own name: its reader never saw stderr
    assert report.endswith("\n## Notes\n\n- results.jsonl: 2 of 6 record(s) lack task, student_layers (written by "
                           "hand or by an older DynaKD); the report leaves them out\n")
    assert str(tmp_path) not in report
    del records[2]["train"]["steps_per_second"]  # a nested key is named dotted; a null speed reads as nan
    records[3]["train"]["steps_per_second"] = None
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["report", str(tmp_path)]) == 0
    assert "3 of 6 record(s) lack task, student_layers, train.steps_per_second" in capsys.readouterr().err
    (tmp_path / "results.jsonl").write_text(json.dumps({"key": "method=kd", "eval": {}}) + "\n")
    with pytest.raises(DynaKDError, match="results.jsonl: no record holds what the report reads"):
        build_report(tmp_path)


def test_a_score_that_could_not_be_computed_is_written_as_null_and_reported_as_nan(tiny_teacher, tmp_path,
                                                                                    monkeypatch):
    """A correlation on constant predictions is NaN: metrics.json and results.jsonl held a bare NaN, which jq and
    JavaScript refuse. Both hold null now, and the report leaves the run out of its row's statistics and counts it
    beside the seeds, rather than failing."""
    import math

    import numpy as np

    from dynakd.experiments import ablate
    from dynakd.runner import RunResult

    def fake_distill(cfg):  # the scores a run on constant labels gives, as floats of numpy and Python
        metrics = {"eval": {"accuracy": np.float32("nan") if cfg.seed == 1 else 0.5, "loss": math.inf},
                   "model": {"layers": 1, "parameters": 10}, "train": {"steps_per_second": 2.0}}
        return RunResult(Path(cfg.output), metrics)

    teacher = {"eval": {"accuracy": 0.75}}
    monkeypatch.setattr(ablate, "ensure_teacher", lambda sweep, seed: (ablate.teacher_config(sweep, seed), teacher))
    monkeypatch.setattr(ablate, "distill", fake_distill)
    config = write_sweep(tmp_path / "s.yaml", tiny_teacher, tmp_path / "out")
    results = run_sweep(load_sweep(config))
    records = [strict_json(line) for line in results.read_text().splitlines()]
    assert {r["seed"]: r["eval"]["accuracy"] for r in records} == {1: None, 2: 0.5}
    assert {r["eval"]["loss"] for r in records} == {None}
    report = build_report(results.parent).read_text()
    assert "| 1 | kd | - | - | 50.00 | 1 (+1 nan) | - | 75.00 |" in report
    assert "| 1 | full | ot | - | 50.00 | 1 (+1 nan) | +0.00 (0/1/0) | 75.00 |" in report

    from dynakd.config import build_config
    from dynakd.data import get_task
    from dynakd.rundir import write_metrics

    path = write_metrics(tmp_path, "evaluate", build_config({"task": "stsb"}), get_task("stsb"),
                         {"eval": {"pearson": np.float64("nan"), "spearmanr": float("nan")}})
    assert strict_json(path.read_text())["eval"] == {"pearson": None, "spearmanr": None}
    path = write_metrics(tmp_path, "evaluate", build_config({"task": "stsb"}), get_task("stsb"),
                         {"eval": {"pearson": math.inf}}, merge="evaluate")  # reads the file it adds to
    assert strict_json(path.read_text())["evaluate"]["eval"] == {"pearson": None}


def run_record(method: str, seed: int, accuracy: float | None, **cell: Any) -> dict[str, Any]:
    """A results.jsonl record as ``run_sweep`` writes it, of what the report reads."""
    cell = {"method": method, "seed": seed, **cell}
    layers = cell.get("student_layers", 2)
    return {"key": cell_key(cell), "cell": cell, "method": method, "align": "ot", "student_layers": layers,
            "seed": seed, "task": "sst2", "eval": {"loss": 0.4, "accuracy": accuracy},
            "teacher_eval": {"accuracy": 0.87}, "model": {"parameters": 10}, "train": {"steps_per_second": 1.0}}


def write_results(folder: Path, records: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_best_settings_do_not_rank_on_one_shared_seed(tmp_path):
    """kd at 1e-4 on seeds 1-3 (mean 80.00) and at 4e-4 on seeds 3-5 (71.67) share seed 3 alone: ranked on it, 4e-4
    won on one seed's luck. With fewer shared seeds than the rows compete with, each is ranked on its own mean, and
    the report says so."""
    records = [run_record("kd", s, a, lr=1e-4) for s, a in ((1, 0.85), (2, 0.85), (3, 0.70))]
    records += [run_record("kd", s, a, lr=4e-4) for s, a in ((3, 0.72), (4, 0.71), (5, 0.72))]
    records += [run_record("full", s, 0.86, lr=1e-4) for s in (1, 2, 3)]
    text = build_report(write_results(tmp_path, records)).read_text()
    best = text.split("## Each method at its best setting")[1]
    assert "| 2 | kd | - | lr=0.0001 | 80.00 ± 8.66 | 3 | - |" in best
    assert "kd at 2 layers: the settings it ran share fewer seeds than that, so each is ranked on its own mean" in best
    assert "| 2 | full | ot | lr=0.0001 | 86.00 ± 0.00 | 3 | +6.00 [-15.51, +27.51] (3/0/0) |" in best


def test_two_records_of_one_rows_seed_are_named_not_silently_overwritten(tmp_path, capsys):
    """One setting spelt two ways (a cell naming the base's student_layers, one not) lands in one row twice per seed:
    the last record silently replaced the first. The first stays now, and a note names both."""
    records = [run_record("kd", s, 0.80) for s in (1, 2)] + [run_record("kd", 1, 0.70, student_layers=2)]
    text = build_report(write_results(tmp_path, records)).read_text()
    assert "| 2 | kd | - | - | 80.00 ± 0.00 | 2 | - |" in text
    assert ("1 record(s) are a seed their row already holds (a setting spelt two ways in the grid, or records without "
            "`cell`); the report leaves them out: method=kd,seed=1,student_layers=2 (seed 1 of row "
            "method=kd,student_layers=2, which method=kd,seed=1 holds)") in capsys.readouterr().err


def test_records_without_cell_keep_their_aligners_apart(tmp_path, capsys):
    """Without ``cell`` the row was the method and depth: `full` with two aligners was one row, the second aligner's
    seeds left out with a note on stderr alone."""
    records = [run_record("kd", s, 0.80) for s in (1, 2)]
    records += [dict(run_record("full", s, acc), align=align) for align, acc in (("fixed", 0.81), ("ot", 0.83))
                for s in (1, 2)]
    for r in records:
        del r["cell"]
    text = build_report(write_results(tmp_path, records)).read_text()
    assert "| 2 | full | fixed | - | 81.00 ± 0.00 | 2 |" in text and "| 2 | full | ot | - | 83.00 ± 0.00 | 2 |" in text
    assert "already holds" not in capsys.readouterr().err


def test_a_record_without_the_tasks_score_is_left_out_with_a_note(tmp_path, capsys):
    """An eval holding only its loss stopped the whole report (run ... has no 'accuracy' score)."""
    records = [run_record("kd", s, 0.80) for s in (1, 2)] + [run_record("full", s, 0.81) for s in (1, 2)]
    del records[3]["eval"]["accuracy"]
    text = build_report(write_results(tmp_path, records)).read_text()
    assert "| 2 | full | ot | - | 81.00 | 1 | +1.00 (1/0/0) |" in text
    assert "1 of 4 record(s) lack eval.accuracy" in capsys.readouterr().err
    del records[0]["teacher_eval"]["accuracy"]
    build_report(write_results(tmp_path, records))
    assert "2 of 4 record(s) lack eval.accuracy, teacher_eval.accuracy" in capsys.readouterr().err
    mrpc = [run_record("kd", s, None) | {"task": "mrpc"} for s in (1, 2)]  # f1 first, accuracy beside it
    for r, f1 in zip(mrpc, (0.80, 0.82)):
        r["eval"], r["teacher_eval"] = {"f1": f1, "accuracy": 0.7}, {"f1": 0.9, "accuracy": 0.8}
    del mrpc[1]["eval"]["accuracy"]  # one of the other scores missing: nan in its column, not a stopped report
    assert "| 2 | kd | - | - | 81.00 ± 1.41 | 2 | - | 90.00 | nan ± nan |" in build_report(
        write_results(tmp_path, mrpc)).read_text()


def test_a_diverged_run_is_left_out_of_its_rows_statistics_and_counted(tmp_path, capsys):
    """A null score made its row's mean and every Δ paired with it nan ('+nan [+nan, +nan] (1/0/0)' over two pairs,
    the nan pair counted nowhere). It is left out now, named in a note and counted beside the seeds; a Δ over fewer
    pairs than its row's seeds says how many."""
    records = [run_record("kd", 1, 0.80), run_record("kd", 2, None)] + [run_record("full", s, a)
                                                                          for s, a in ((1, 0.81), (2, 0.82))]
    text = build_report(write_results(tmp_path, records)).read_text()
    assert "| 2 | kd | - | - | 80.00 | 1 (+1 nan) | - |" in text
    assert "| 2 | full | ot | - | 81.50 ± 0.71 | 2 | +1.00 (1/0/0) n=1 |" in text
    assert "counted as '+N nan' beside the seeds" in text and "n=: the number of seeds paired" in text
    assert "1 run(s) have no accuracy score (null: the run diverged" in capsys.readouterr().err
    records = [run_record("kd", s, None) for s in (1, 2)]  # nothing left of a row: nan, not a traceback
    assert "| 2 | kd | - | - | nan | 0 (+2 nan) | - |" in build_report(write_results(tmp_path, records)).read_text()


def test_kd_of_the_same_settings_on_other_seeds_is_said_so(tmp_path):
    """kd and full ran the same settings on seeds 1-3 and 4-6: the note said the second table pairs full, and the
    second table showed '-' too. No second table now; the note says there is no seed to pair."""
    records = [run_record("kd", s, 0.81) for s in (1, 2, 3)] + [run_record("full", s, 0.85) for s in (4, 5, 6)]
    text = build_report(write_results(tmp_path, records)).read_text()
    assert "| 2 | full | ot | - | 85.00 ± 0.00 | 3 | - |" in text
    assert "has no scored seed in common with it shows '-': there is no pair" in text
    assert "second table" not in text and "## Each method" not in text


def test_alignment_heatmaps_are_found_from_another_folder_named_and_stale_ones_removed(tmp_path, monkeypatch, capsys):
    """A record's output is relative to where `ablate` ran: a report run from elsewhere drew no heatmap and said
    nothing; old heatmaps stayed; none said which run it shows."""
    sweep = tmp_path / "runs" / "sw"
    records = [run_record("kd", 1, 0.80), run_record("full", 1, 0.81), run_record("full", 2, 0.82)]
    for r in records:
        r["output"] = f"runs/sw/cells/{r['key'].replace(',', '__')}"
        (tmp_path / r["output"]).mkdir(parents=True)
        (tmp_path / r["output"] / "alignment.png").write_bytes(r["key"].encode())
    write_results(sweep, records)
    (sweep / "alignment_fixed_L3.png").write_bytes(b"an aligner the results no longer hold")
    monkeypatch.chdir(tmp_path / "runs")
    text = build_report(sweep).read_text()
    assert (sweep / "alignment_ot_L2.png").read_bytes() == b"method=full,seed=1"
    assert not (sweep / "alignment_fixed_L3.png").exists()
    assert "Alignment heatmaps, each one run's running plan (the running mean of its plans; a fixed aligner's: its " \
        "map) at the end of its training: `alignment_ot_L2.png` of " \
           "`method=full,seed=1`." in text
    moved = tmp_path / "elsewhere" / "renamed"  # a sweep folder moved with its cells/: found there
    shutil.move(sweep, moved)
    (moved / "alignment_ot_L2.png").unlink()
    build_report(moved)
    assert (moved / "alignment_ot_L2.png").read_bytes() == b"method=full,seed=1"
    shutil.rmtree(moved / "cells")  # the runs are gone: an earlier report's picture stays, said to be that
    assert "`alignment_ot_L2.png` an earlier report's (the folder of `method=full,seed=1` is not on this machine)" \
        in build_report(moved).read_text()
    assert "1 alignment heatmap(s) not drawn" in capsys.readouterr().err
    (moved / "alignment_ot_L2.png").unlink()  # and none from before: report.md says it is not drawn
    assert "`alignment_ot_L2.png` not drawn (the folder of `method=full,seed=1` is not on this machine)" \
        in build_report(moved).read_text()


def test_a_cell_key_too_long_for_a_folder_name_is_cut_and_hashed():
    """File systems allow 255 bytes a name: a grid of many options made cell folders that could not be created."""
    from dynakd.experiments.ablate import _slug

    short = "lr=0.0004,method=kd,seed=1"
    assert _slug(short) == "lr=0.0004__method=kd__seed=1"  # as before
    keys = [",".join(f"dynamics.option_{i}={v}" for i in range(16)) for v in (1, 2)]
    assert len(keys[0]) > 255
    slugs = [_slug(k) for k in keys]
    assert all(len(s.encode()) <= 240 for s in slugs) and slugs[0] != slugs[1]
    assert slugs[0].startswith(keys[0].replace(",", "__")[:150])  # the key's own start, then its hash


def test_a_smoke_run_shrinks_a_transfer_set_too(tiny_encoder, tmp_path):
    """A transfer set of the real size could outgrow the synthetic corpus that stands in for missing data."""
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    raw["base"]["transfer_samples"] = 16000
    raw["grid"] = [raw["grid"], {"method": ["kd"], "transfer_samples": [8000, 12, None], "student_layers": [1]}]
    path.write_text(yaml.safe_dump(raw))
    sweep = load_sweep(path, smoke=True)
    assert sweep.base["transfer_samples"] == 16 and sweep.grid[1]["transfer_samples"] == [16, 12, None]
    assert load_sweep(path).base["transfer_samples"] == 16000


def test_a_student_deeper_than_the_teacher_is_refused_before_the_teacher_trains(tiny_encoder, tmp_path, capsys):
    """A cell's student_layers above the teacher's depth was found after the teacher's fine-tuning (hours), in a
    message naming a flag the sweep never gave (--student-layers 9)."""
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    for option, values, message in (
        ("student_layers", [1, 9], "student_layers 9 asks for more layers than the teacher's 2"),
        ("student_layer_ids", [[0, 1], [0, 7]], r"student_layer_ids must be distinct 0-based ids in 0..1, got "
                                                r"\[0, 7\]"),
    ):
        raw["grid"] = {"method": ["kd"], option: values, "seed": [1]}
        path.write_text(yaml.safe_dump(raw))
        assert main(["ablate", "--config", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"dynakd: error: {path}: cell method=kd,seed=1,{option}=") and "--student" not in err
        assert re.search(message, err) and f"(teacher.model: {tiny_encoder})" in err
        assert not (tmp_path / "out").exists()
    # a grid's student replaces base's choice (one grid of built students, another of a checkpoint), as a flag
    # replaces a file's; one layer giving two ways is refused
    raw["grid"] = {"method": ["kd"], "student": [str(tiny_encoder)], "seed": [1]}
    raw["base"]["student_layers"] = 1
    path.write_text(yaml.safe_dump(raw))
    sweep = load_sweep(path)
    cfg = cell_config(sweep, cells(sweep)[0], "teacher")
    assert (cfg.student, cfg.student_layers) == (str(tiny_encoder), None)
    raw["grid"] = {"method": ["kd"], "student": [str(tiny_encoder)], "student_layers": [1], "seed": [1]}
    del raw["base"]["student_layers"]
    path.write_text(yaml.safe_dump(raw))
    assert main(["ablate", "--config", str(path)]) == 2
    assert "choose one of student (a checkpoint) and student_layers / student_layer_ids" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    raw["grid"] = {"method": ["kd"], "student_layers": [9], "seed": [1]}
    raw["teacher"]["model"] = "no-org/no-such-model"  # a config not at hand offline: the check is left to distill
    path.write_text(yaml.safe_dump(raw))
    load_sweep(path)
    from transformers import AlbertConfig  # a teacher whose layers share weights: no cell could keep layers of it

    albert = tmp_path / "albert"
    AlbertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
                 embedding_size=16).save_pretrained(albert)
    raw["teacher"]["model"] = str(albert)
    raw["grid"] = {"method": ["kd"], "student_layers": [2], "seed": [1]}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DynaKDError, match=r"cell method=kd,seed=1,student_layers=2: .* shares one set of weights "
                                          r"among its 4 layers .* give it as student, or give another "
                                          r"smaller model as student \(teacher.model: "):
        load_sweep(path)


def test_a_sweep_on_regression_files_of_ones_own_is_reported_on_their_scores(tiny_encoder, tmp_path, capsys):
    """A sweep on a csv file of scores trained, then its report stopped: it ranked `--task csv` on accuracy (the
    spec without the label count, which no record holds), left every record out as lacking it and found none left.
    The scores the records hold say which metrics the task has (user_task's: pearson and spearmanr here)."""
    import random

    from dynakd.data import SYNTHETIC_VOCAB_WORDS

    words, rng = sorted({w.lower() for w in SYNTHETIC_VOCAB_WORDS if w.isalpha()}), random.Random(0)
    for name, n in (("train.csv", 32), ("dev.csv", 16)):
        (tmp_path / name).write_text("sentence,label\n" + "".join(
            f"{' '.join(rng.choices(words, k=6))},{rng.uniform(0, 5):.3f}\n" for _ in range(n)))
    path = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(path.read_text())
    raw["base"] = {"task": "csv", "train_file": str(tmp_path / "train.csv"),
                   "validation_file": str(tmp_path / "dev.csv"), "text_columns": "sentence", "max_steps": 2,
                   "batch_size": 16, "max_seq_length": 16}
    raw["grid"] = {"method": ["kd"], "student_layers": [1], "seed": [1]}
    path.write_text(yaml.safe_dump(raw))
    assert main(["ablate", "--config", str(path)]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Dev pearson x100" in report and "| other settings | pearson | seeds |" in report
    assert "| teacher | spearmanr | params (M) |" in report and "| 1 | kd | - | - |" in report
    assert "lack" not in capsys.readouterr().err


def test_a_sweep_on_files_of_ones_own_shows_the_metrics_its_scores_name(tmp_path, capsys):
    """Records of `--task csv` say nothing of their label count: regression scores were all left out (ranked on
    accuracy), and more than two classes' macro F1 was headed `f1` (found by the end of its key)."""
    def records(ev: dict[str, float]) -> list[dict[str, Any]]:
        return [run_record(m, s, None) | {"task": "csv", "eval": ev, "teacher_eval": ev}
                for m in ("kd", "full") for s in (1, 2)]

    regression = build_report(write_results(tmp_path / "reg", records({"pearson": 0.8, "spearmanr": 0.7})))
    assert "| pearson | seeds |" in regression.read_text() and "| teacher | spearmanr |" in regression.read_text()
    several = build_report(write_results(tmp_path / "multi", records({"accuracy": 0.7, "macro_f1": 0.6})))
    assert "| accuracy | seeds |" in several.read_text() and "| teacher | macro_f1 |" in several.read_text()
    two = build_report(write_results(tmp_path / "two", records({"accuracy": 0.7, "f1": 0.6})))
    assert "| accuracy | seeds |" in two.read_text() and "| teacher | f1 |" in two.read_text()
    assert "lack" not in capsys.readouterr().err
    odd = records({"pearson": 0.8, "spearmanr": 0.7})
    odd[1]["eval"] = {"loss": 0.5}  # a record without its scores is left out, named by the scores the others hold
    assert "| 2 | kd | - | - | 80.00 | 1 |" in build_report(write_results(tmp_path / "odd", odd)).read_text()
    assert "1 of 4 record(s) lack eval.pearson" in capsys.readouterr().err


def test_mnli_ranks_on_matched_accuracy_and_shows_mismatched_beside_it(tmp_path):
    """MNLI's report ranked on the first key ending in `accuracy` (matched, by the order of the record's keys) under
    the heading `accuracy`, and showed no mismatched accuracy. It ranks on matched accuracy by name now, says so,
    and shows mismatched accuracy as a column of its own, whatever the order of the keys."""
    records = []
    for method, scores in (("kd", ((0.70, 0.60), (0.71, 0.61))), ("full", ((0.72, 0.50), (0.73, 0.51)))):
        for seed, (m, mm) in enumerate(scores, 1):
            r = run_record(method, seed, None) | {"task": "mnli"}
            r["eval"] = {"validation_mismatched_accuracy": mm, "validation_matched_loss": 1.0,
                         "validation_matched_accuracy": m}  # mismatched first: the order does not decide
            r["teacher_eval"] = {"validation_mismatched_accuracy": 0.81, "validation_matched_accuracy": 0.8}
            records.append(r)
    text = build_report(write_results(tmp_path, records)).read_text()
    assert "Dev matched accuracy x100" in text
    assert ("| other settings | matched accuracy | seeds | Δ vs kd [95% CI] (ahead/tied/behind) | teacher | mismatched "
            "accuracy | params (M) |") in text
    assert "| 2 | kd | - | - | 70.50 ± 0.71 | 2 | - | 80.00 | 60.50 ± 0.71 |" in text
    assert "| 2 | full | ot | - | 72.50 ± 0.71 | 2 | +2.00 [+2.00, +2.00] * (2/0/0) | 80.00 | 50.50 ± 0.71 |" in text


def test_a_grid_value_a_cell_takes_anyway_finds_its_finished_run(tiny_encoder, tmp_path, capsys):
    """``align.name: [ot, fixed]`` added beside ``full`` cells (whose aligner is OT) named a cell
    ``align.name=ot,method=full,...`` that ran again, the same run as the finished ``method=full,...``; so did a base
    setting moved into the grid at its value."""
    config = tmp_path / "sweep.yaml"
    spec = {"name": "grow", "output": str(tmp_path / "out"),
            "base": {"task": "sst2", "synthetic": True, "max_train_samples": 32, "max_eval_samples": 16,
                     "max_steps": 1, "batch_size": 16, "max_seq_length": 32, "student_layers": 1, "lr": 1e-4},
            "teacher": {"model": str(tiny_encoder), "max_steps": 1},
            "grid": {"method": ["full"], "seed": [1]}}
    config.write_text(yaml.safe_dump(spec))
    assert main(["ablate", "--config", str(config)]) == 0
    capsys.readouterr()
    spec["grid"]["align.name"] = ["ot", "fixed"]
    spec["grid"]["lr"] = [1e-4]
    config.write_text(yaml.safe_dump(spec))
    assert main(["ablate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "grow: 1 cells done, 1 to run" in out
    assert ("[ablate] 1 of the cells done are finished cells of other names, the same runs (align.name=ot,lr=0.0001,"
            "method=full,seed=1 is method=full,seed=1): the report shows them under those names") in out
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["cell"].get("align.name") for x in lines] == [None, "fixed"]


def test_the_temperature_is_no_axis_of_a_regression_task(tiny_encoder, tmp_path, capsys):
    """A regression task's logit term is a squared distance to the teacher's prediction: a grid over temperature ran
    cells that trained alike, without a word. STS-B's cells leave it out; a csv task, regression by its labels, says
    so in each run."""
    from dynakd import DistillConfig, distill, finetune
    from dynakd.experiments.ablate import Sweep

    sweep = Sweep("s", None, {"task": "stsb"}, {}, {"method": ["kd"], "temperature": [1.0, 4.0]})
    assert cells(sweep) == [{"method": "kd"}]
    rows = "".join(f"film number {i} was fine,{i % 5 + 0.5}\n" for i in range(24))
    data = tmp_path / "scores.csv"
    data.write_text("text,score\n" + rows)
    files = {"task": "csv", "train_file": str(data), "validation_file": str(data), "label_column": "score",
             "max_steps": 1, "batch_size": 8, "max_seq_length": 16, "progress": False}
    finetune(DistillConfig(model=str(tiny_encoder), output=str(tmp_path / "t"), **files))
    capsys.readouterr()
    distill(DistillConfig(teacher=str(tmp_path / "t"), student_layers=1, method="kd", temperature=4.0,
                          eval_teacher=False, output=str(tmp_path / "s"), **files))
    assert ("note: temperature 4 is not read: a regression task's logit term is the squared distance to the teacher's "
            "prediction; the run trains as it would without") in capsys.readouterr().out


def test_a_difference_whose_interval_leaves_zero_out_is_marked():
    """report.md gave every interval alike: -3.25 [-57.25, +50.75] at two seeds read as a loss beside clear ones."""
    from dynakd.experiments.report import clear, paired_delta, table

    ahead = paired_delta({1: 0.80, 2: 0.82, 3: 0.81}, {1: 0.70, 2: 0.71, 3: 0.72})
    unclear = paired_delta({1: 0.80, 2: 0.70, 3: 0.90}, {1: 0.75, 2: 0.80, 3: 0.80})
    assert clear(ahead) and not clear(unclear) and not clear(paired_delta({1: 0.8}, {1: 0.7}))
    row = {"depth": 2, "method": "full", "align": "ot", "variant": "-", "scores": [0.80, 0.82, 0.81], "others": {},
           "teacher": [0.9], "params_m": 11.0, "steps_per_s": 1.0}
    marked = table([row | {"delta": ahead}], "accuracy")
    assert f"[{ahead.low:+.2f}, {ahead.high:+.2f}] * (3/0/0)" in marked
    assert " * (" not in table([row | {"delta": unclear}], "accuracy")


def test_a_failed_cell_is_told_what_to_change_in_the_sweep_file(tmp_path):
    """From a sweep user's walkthrough (2026-12-07): a diverged cell was told to train again with overwrite or into
    another output folder (cells always overwrite, in folders the sweep names), and a teacher without its data to
    pass --data-dir, a flag ablate does not take."""
    import inspect

    from dynakd import trainer
    from dynakd.data import glue
    from dynakd.experiments.ablate import SWEEP_ADVICE, _failure

    diverged = DynaKDError("non-finite loss at step 3: term 'task' is nan; the last good state (step 2) is saved in "
                           "x/checkpoint-2; lower the learning rate (lr) or the term's weight, or check the data, and "
                           "train again with overwrite or into another output folder (a resumed run would repeat the "
                           "step; the checkpoint is there to inspect)")
    assert _failure(diverged).endswith("and train again with other settings in the sweep's grid (a rerun of the same "
                                       "cell fails alike; the checkpoint is there to inspect)")
    offline = DynaKDError("could not load GLUE sst2 from the Hugging Face hub (offline); pass --data-dir DIR with the "
                          "GLUE TSV files")
    assert "set data_dir: DIR in the sweep's base with the GLUE TSV files" in _failure(offline)
    (tmp_path / "QNLI").mkdir()
    (tmp_path / "QNLI" / "dev.tsv").write_text("")
    dev_alone = DynaKDError(f"no file{glue.missing_file_hint(str(tmp_path / 'QNLI' / 'train.tsv'))}")
    assert "dev_split: 0.5 in the sweep's base trains on half of it" in _failure(dev_alone)
    elsewhere = DynaKDError(f"no file{glue.missing_file_hint(str(tmp_path / 'SST-2' / 'train.tsv'))}")
    assert "(the base's data_dir is a folder holding SST-2/train.tsv)" in _failure(elsewhere)
    damaged = DynaKDError("non-finite loss at step 1: ...; the teacher cache c holds non-finite values for this batch "
                          "(training row 5): ...; delete that folder to rebuild it, or pass --teacher-cache off, and "
                          "train again with overwrite or into another output folder (...)")
    assert "delete that folder to rebuild it, or set teacher_cache: off in the sweep's base" in _failure(damaged)
    said = inspect.getsource(trainer) + inspect.getsource(glue)
    for words in SWEEP_ADVICE:  # (still the words the runs say: else the sweep's advice is never given)
        assert " ".join(words.split()[:4]) in said


def test_an_interrupted_cell_or_teacher_resumes_from_its_checkpoint(tiny_encoder, tmp_path, capsys):
    """From a sweep user's walkthrough (2026-12-07): a sweep stopped mid-cell (or mid-teacher) trained that run again
    from step 0 when run again, its checkpoints deleted (a sweep's runs overwrite their folders). A run stopped after
    its last checkpoint stands in here: its checkpoints kept, its scores (and the sweep's record) gone."""
    config = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    raw = yaml.safe_load(config.read_text())
    raw["base"] |= {"save_steps": 1, "keep_checkpoints": True}
    raw["teacher"] = {"model": str(tiny_encoder)}
    raw["grid"] = {"method": ["kd"], "student_layers": [1], "seed": [1]}
    config.write_text(yaml.safe_dump(raw))
    assert main(["ablate", "--config", str(config)]) == 0
    out = tmp_path / "out"
    cell, teacher = out / "cells" / "method=kd__seed=1__student_layers=1", out / "teacher-seed42"
    for folder in (cell, teacher):
        assert (folder / "checkpoint-2").is_dir()
        (folder / "metrics.json").unlink()
    (out / "results.jsonl").unlink()
    capsys.readouterr()
    assert main(["ablate", "--config", str(config)]) == 0
    printed = capsys.readouterr().out
    assert f"fine-tuning the teacher (seed 42) -> {teacher} (resumed from its checkpoint-2)" in printed
    assert "(1/1) method=kd,seed=1,student_layers=1 (resumed from its checkpoint-2)" in printed
    record = json.loads((out / "results.jsonl").read_text())
    assert record["train"]["resumed_from"] == "checkpoint-2"
    (cell / "dynakd.yaml").write_text((cell / "dynakd.yaml").read_text().replace("seed: 1", "seed: 7"))
    (cell / "metrics.json").unlink()
    (out / "results.jsonl").unlink()
    assert main(["ablate", "--config", str(config)]) == 0  # another run's checkpoint there: trained again
    assert json.loads((out / "results.jsonl").read_text())["train"]["resumed_from"] is None


def test_a_grid_value_at_the_default_is_no_setting_of_its_own_in_the_report():
    """From a sweep user's walkthrough (2026-12-07): lr: [5.0e-5] (the default) added to a grid made its new cells a
    row of their own, 'lr=5e-05', whose Δ was "-" (no kd run of that name: ablate had found kd's under the other)."""
    from dynakd.experiments.report import cells_without_defaults, kd_partner, variant

    def record(method, seed, lr_in_cell, lr=5e-5, **cell):
        return {"method": method, "student_layers": 2, "seed": seed,
                "cell": {"method": method, "seed": seed, **cell} | ({"lr": lr_in_cell} if lr_in_cell else {}),
                "config": {"lr": lr, "method": method, "align": {"name": cell.get("align.name", "ot")}}}

    records = [record("kd", 1, None), record("full", 1, None),
               record("full", 1, 5e-5, **{"align.name": "fixed", "align.fixed_map": "reversed"}),
               record("full", 2, 1e-4, lr=1e-4)]
    kept = cells_without_defaults(records)
    assert variant(kept[2]) == "align.fixed_map=reversed" and kd_partner(kept[2]) == kd_partner(kept[0])
    assert variant(kept[3]) == "lr=0.0001"  # (another rate: a setting of its own)
    alone = cells_without_defaults([record("full", 1, 5e-5)])  # (no run without it: nothing tells its default)
    assert variant(alone[0]) == "lr=5e-05"


def test_a_shard_without_cells_says_so(tiny_encoder, tmp_path, capsys):
    """From a sweep user's walkthrough (2026-12-07): --shard 5/8 of a 4-cell sweep ran nothing without a word."""
    config = write_sweep(tmp_path / "s.yaml", tiny_encoder, tmp_path / "out")
    main(["ablate", "--config", str(config), "--shard", "8/8"])
    assert "[ablate] shard 8/8 holds no cell: the sweep has 6, fewer than its 8 shards" in capsys.readouterr().out
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_a_failed_cell_that_ran_since_is_no_failure_in_the_report(tmp_path, capsys):
    from dynakd.experiments.ablate import record_failures
    from dynakd.experiments.report import note_failed_cells

    record_failures(tmp_path, {"method=kd,seed=1": "diverged", "method=full,seed=1": "out of memory"})
    record_failures(tmp_path, {"method=full,seed=1": "out of memory again"})  # (another shard, or a rerun)
    note_failed_cells(tmp_path, [{"key": "method=kd,seed=1"}])  # (it has a record since)
    assert capsys.readouterr().err == ("note: 1 cell(s) of the sweep failed and have no record, so no row: "
                                       "method=full,seed=1 (out of memory again)\n")
