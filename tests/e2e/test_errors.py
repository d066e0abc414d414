"""Bad input gets one line naming the problem, exit status 2, and no traceback."""

from __future__ import annotations

import dataclasses
import errno
import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dynakd.cli import main
from dynakd.errors import DynaKDError

from .test_cli import FAST, distill_args


def run_error(capsys, args: list[str]) -> str:
    capsys.readouterr()  # (what came before the command: a model's writing, whose progress bar may be on)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dynakd: error: ") and "\n" not in err and "Traceback" not in err
    return err


_write_text = Path.write_text


def full_disk_for_the_record(self: Path, *args, **kwargs):
    """A disk that fills as a run's ``dynakd.yaml`` is written: the file is opened (emptied), the write fails."""
    if "dynakd.yaml" not in self.name:
        return _write_text(self, *args, **kwargs)
    self.open("w").close()
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--task", "sst3"], "did you mean 'sst2'"),
        (["--method", "ful"], "did you mean 'full'"),
        (["--align", "sinkhorn"], "align.name: 'sinkhorn' is not one of fixed, attention, ot"),
        (["--set", "temprature=3"], "unknown config key 'temprature' (did you mean 'temperature'?)"),
        (["--set", "align.epss=0.1"], "--set align.epss=0.1: unknown config key 'align.epss' (did you mean "
                                      "'align.eps'?)"),
        (["--set", "align.eps=0"], "align.eps must be >= 0.0001"),
        (["--temperature", "0"], "temperature must be > 0"),
        (["--set", "beta=-1"], "beta must be >= 0"),
        (["--alpha", "-0.5"], "alpha must be >= 0"),
        (["--set", "eval_batch_size=abc"], "eval_batch_size: expected int"),
        (["--set", "eval_batch_size=.inf"], "eval_batch_size: expected int, got inf"),
        (["--set", "lr=yes"], "lr: expected float"),
        (["--set", "alpha.end=0"], "alpha: a constant weight has no end; give kind: linear, cosine or step"),
        (["--set", "beta.warmup=1.5"], "beta: warmup must be in [0, 1) and switch in [0, 1]"),
        (["--set", "beta={kind: step, switch: 0.1, warmup: 0.2}"], "beta: a step schedule's switch (0.1) comes before "
                                                                    "its warmup ends (0.2); switch at or after the "
                                                                    "warmup"),
        (["--set", "beta={kind: step, switch: 0, warmup: 0.2}"], "beta: a step schedule's switch (0.0) comes before"),
        (["--set", "align.layers=[1,2]"], "align.fixed_map and align.layers choose the fixed aligner's map"),
        (["--set", "align.plan_momentum=1"], "align.plan_momentum must be in [0, 1)"),
        (["--set", "align.plan_every=0"], "align.plan_every must be >= 1"),
        (["--set", "align.plan_every=4", "--set", "align.plan_grad=true"],
         "align.plan_every 4 holds a plan without gradient for the batches after the one it was computed from; "
         "align.plan_grad takes its gradient through every batch's plan"),
        (["--teacher-cache", "of"], "teacher_cache: 'of' is not auto, off or a folder (did you mean 'off'?"),
        (["--set", "teacher_cache=none"], "'none' is not auto, off or a folder (did you mean 'off'?"),
        (["--set", "teacher_cache=disable"], "'disable' is not auto, off or a folder (did you mean 'off'?"),
        (["--set", "align.order_prior=-1"], "align.order_prior must be >= 0"),
        (["--align", "attention", "--set", "align.relative=true", "--student-layers", "1"],
         "align.relative compares each teacher layer's cost across the student's layers: a student of one layer"),
        (["--align", "attention", "--set", "align.relative=true", "--student-layer-ids", "3"],
         "a student of one layer has nothing to compare it with"),
        # inf passed the range checks: a traceback (epochs) or a non-finite loss that blamed another term
        (["--epochs", "inf"], "epochs must be a finite number, got inf"),
        (["--alpha", "nan"], "alpha.start must be a finite number, got nan"),
        (["--set", "dynamics.weights.relations=.inf"], "dynamics.weights.relations must be a finite number, got inf"),
        (["--seed", "-1"], "seed and data_seed must be in [0, 2**32), got -1 and 0"),
        (["--max-steps", "0"], "max_steps must be > 0 (or -1: train --epochs), got 0"),
        (["--teacher-cache", "."], "teacher_cache: '.' names no folder of its own"),
        (["--method", "static", "--set", "hidden_weight=1"],
         "hidden_weight adds a hidden-state term to a dynamics method (full, dynamics); method 'static' has it "
         "already (beta weights it)"),
        (["--train-file", "mine.csv"], "task sst2 reads the GLUE TSV files of --data-dir, or the hub, not train_file: "
                                       "those are for --task csv or json (your own files)"),
        (["--text-columns", "text", "--label-column", "y"], "task sst2 reads the GLUE TSV files of --data-dir, or the "
                                                            "hub, not text_columns, label_column"),
        (["--set", "dynamics.weights.relations=-1"], "dynamics.weights must be >= 0"),
        (["--student-layers", "9"], "more layers than the teacher's 4"),
        (["--student-layer-ids", "0,7"], "distinct 0-based ids in 0..3"),
        # (stacked as listed, a later teacher layer below an earlier one)
        (["--set", "method=KD"], "method: 'KD' is not one of task, kd, static, pkd, dynamics, full; did you mean "
                                 "'kd'?"),
        (["--set", "dynamics.components=[deviation,velocity]"], "unknown 'velocity'"),
        (["--set", "warmup_ratio=1"], "warmup_ratio must be in [0, 1)"),
        (["--set", "dynamics.forms=[]"], "dynamics.forms is empty"),
        (["--set", "dynamics.components=[]"], "dynamics.components is empty: enable at least one component or use "
                                              "--method kd"),
        (["--set", "dynamics.pooling=tokens", "--set", "dynamics.relation_angle=true"],
         "dynamics.relation_angle with pooling 'tokens' needs O(B T^3 d) memory; use pooled dynamics"),
        (["--set", "dynamics.pooling=tokens", "--set", "dynamics.reference=ema"],
         "dynamics.reference must be 'batch' with pooling 'tokens' (references are pooled means; extractive QA pools "
         "by token unless told otherwise: --set dynamics.pooling=mean compares pooled windows, where a reference "
         "applies)"),
        (["--method", "kd", "--set", "hidden_weight=1"], "hidden_weight adds a hidden-state term to a dynamics method"),
        (["--max-seq-length", "4096"], "exceeds the model's limit of 128 tokens"),
        (["--save-steps", "-1"], "save_steps must be >= 0"),
        (["--dataloader-num-workers", "-1"], "dataloader_num_workers must be >= 0, got -1"),
        # a huge batch asked the Trainer's evaluation for 4 TB (a traceback); 1e12 workers hung while forking
        (["--set", "eval_batch_size=1e12"], "eval_batch_size must be in [1, 1048576], got 1000000000000"),
        (["--batch-size", "2000000"], "batch_size must be in [1, 1048576], got 2000000"),
        (["--dataloader-num-workers", "1000000"], "dataloader_num_workers must be at most 256, got 1000000"),
        (["--set", "align.iters=1e12"], "align.iters must be in [1, 10000], got 1000000000000"),  # spun on step 1
        (["--align", "fixed", "--set", "align.layers=notalist"],
         "align.layers: expected a list of ints, e.g. [1, 2], got 'notalist'"),  # (said: expected int)
        (["--set", "output=[a, b]"], "--set output=[a, b]: output: expected a string, got ['a', 'b']"),
        (["--set", "lr=[1"], "--set lr=[1: the value is not valid YAML: expected ',' or ']'"),
        (["--hub-private"], "hub_private creates the --push-to-hub repository private; it needs --push-to-hub REPO"),
        (["--resume", "--overwrite"], "choose one of resume and overwrite"),
        (["--save-steps", "0", "--keep-checkpoints"], "keep_checkpoints keeps the checkpoints that save_steps "
                                                      "writes, and save_steps 0 writes none"),
        (["--set", "dynamics.gather=maybe"], "dynamics.gather: expected true or false"),
        (["--resume"], "holds no finished checkpoint to resume from"),
        (["--set", "lr"], "--set expects KEY=VALUE, got 'lr'"),
        (["--set", "dynamics.pooling=yes"], "dynamics.pooling: 'True' is not one of auto, mean, cls, tokens (a true, "
                                            "which YAML reads from yes, no, on, off, true or false; a choice is none "
                                            "of them: quote it)"),
        (["--set", "output=#1"], "--set output=#1: YAML reads a # that starts the value or follows a space as a "
                                 "comment: quote the value"),
        (["--fp16", "--bf16"], "choose one of fp16 and bf16"),
        (["--task", "mnli", "--dev-split", "0.1"], "--dev-split needs a task with one eval split; mnli has"),
        (["--task", "squad", "--dev-split", "0.1"], "dev_split cuts a task's evaluation set by example"),
        (["--task", "squad", "--doc-stride", "64", "--max-seq-length", "64"],
         "doc_stride (64) must be smaller than max_seq_length (64)"),
        (["--task", "squad", "--transfer-samples", "8"],
         "transfer_samples applies to classification and regression tasks, not extractive QA"),
        (["--method", "task", "--transfer-samples", "8"], "transfer_samples: the transfer rows have no labels"),
    ],
)
def test_bad_flags(tiny_teacher, tmp_path, capsys, extra, expected):
    assert expected in run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", *extra))


@pytest.mark.parametrize("argv, expected", [
    (["distill", "--teacher", "t", "--lrr", "3"],
     "dynakd distill: error: unrecognized arguments: --lrr 3 (did you mean --lr?)"),
    (["evaluate", "--model", "m", "--torch-compile"], "dynakd evaluate: error: unrecognized arguments: "
                                                      "--torch-compile (--torch-compile is an option of bench, "
                                                      "distill, finetune)"),
    (["finetnue", "--model", "m"], "dynakd: error: unknown command 'finetnue' (did you mean finetune?)"),
    # (scoring draws nothing at random: --seed changed nothing and was recorded as if it had)
    (["evaluate", "--model", "m", "--seed", "7"], "dynakd evaluate: error: unrecognized arguments: --seed 7 (--seed "
                                                  "is an option of bench, distill, finetune; did you mean --set?)"),
    (["zzz"], "dynakd: error: argument COMMAND: invalid choice: 'zzz'"),
    # transformers' names, and settings that have no flag (a bare "unrecognized arguments" before)
    (["finetune", "--model", "m", "--learning-rate", "1e-4"],
     "unrecognized arguments: --learning-rate 1e-4 (did you mean --lr? DynaKD's name for transformers' learning_rate)"),
    (["distill", "--teacher", "t", "--num_train_epochs", "1"], "(did you mean --epochs? DynaKD's name for "
                                                               "transformers' num_train_epochs)"),
    (["distill", "--model-name-or-path", "t"], "(did you mean --teacher? the fine-tuned model to distil from"),
    (["finetune", "--model", "m", "--weight-decay", "0"], "--weight-decay 0 (give it as --set weight_decay=...)"),
    (["finetune", "--model", "m", "--do_train", "--do_eval"],  # (run_glue.py's; the hint once)
     "--do_train --do_eval (the commands need no --do-*: finetune and distill train, then score; evaluate scores)"),
    (["distill", "--teacher", "t", "--dynamics", "x"], "--dynamics x (give it as --set dynamics.KEY=...)"),
    (["bench", "--model", "t"], "; did you mean --teacher? the fine-tuned model to distil from)"),  # (no --student)
    (["distill", "--teacher", "t", "--set", "align.eps", "0.1"],  # (a user's walkthrough, 2026-12-07)
     "unrecognized arguments: 0.1 (--set takes KEY=VALUE as one word: --set align.eps=0.1)"),
    (["distill", "stray", "--teacher", "t", "--set", "lr", "-1"], "(--set takes KEY=VALUE as one word: --set lr=-1)"),
    (["distill", "--teacher", "t", "--set", "align.eps:", "0.1"], "(--set takes KEY=VALUE as one word: --set "
                                                                  "align.eps=0.1)"),
    (["distill", "--teacher", "t", "--set", "lr", "=1e-4"], "(--set takes KEY=VALUE as one word: --set lr=1e-4)"),
])
def test_an_unknown_flag_is_named_by_its_command(capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and expected in err
    # one usage line above the error, not a command's 30 (a batch user's walkthrough, 2026-12-07)
    assert len(err.splitlines()) <= 2 and err.startswith("usage: dynakd") and "--help` lists the options" in err


def test_malformed_yaml(tiny_teacher, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: full\nalign: [unclosed\n")
    assert "malformed YAML" in run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", "--config", str(bad)))


def test_a_config_that_is_a_folder_or_names_a_key_twice(tiny_teacher, tmp_path, capsys):
    """A folder was "not found"; a key given twice silently took the last value (PyYAML's way)."""
    err = run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", "--config", str(tmp_path)))
    assert err == f"dynakd: error: {tmp_path} is a folder, not a config file; give a YAML file"
    twice = tmp_path / "run.yaml"
    twice.write_text("lr: 1e-4\nmethod: kd\nlr: 2e-4\n")
    err = run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", "--config", str(twice)))
    assert err == f"dynakd: error: {twice}: key 'lr' is given twice, at lines 1 and 3; keep one"


def test_a_sweep_file_and_a_runs_config_given_to_the_other_command_are_named(tiny_teacher, tmp_path, capsys):
    """A sweep file given to distill was refused key by key (`'name' (did you mean 'dynamics'?)`); a run's config
    given to ablate listed every setting as an unknown sweep key."""
    from dynakd.config import DistillConfig, save_config

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: s1\nbase: {task: sst2}\nteacher: {model: minilm}\ngrid: {seed: [1, 2]}\n")
    for command in (distill_args(tiny_teacher, tmp_path / "run"), ["finetune", "--model", str(tiny_teacher)]):
        err = run_error(capsys, [*command, "--config", str(sweep)])
        assert err == f"dynakd: error: {sweep} is a sweep file (base/grid): run it with dynakd ablate --config {sweep}"
    run = tmp_path / "dynakd.yaml"
    save_config(DistillConfig(teacher=str(tiny_teacher), student_layers=2, output=str(tmp_path / "run")), run)
    err = run_error(capsys, ["ablate", "--config", str(run)])
    assert err == f"dynakd: error: {run} is a run's config: use it with dynakd distill/finetune --config {run}"
    # a sweep file with misspelt sections is still a sweep file (teacher and output are run settings too)
    run.write_text("name: s1\noutput: runs/s1\nteacher: {model: minilm}\nbsae: {seed: 1}\ngird: {seed: [1]}\n")
    assert "unknown sweep key(s) ['bsae', 'gird']" in run_error(capsys, ["ablate", "--config", str(run)])
    # a key of a section is said with its section (a typo in teacher: read as the top level's); metric is no setting
    for section, text in (("teacher", "{model: minilm, max_step: 2}"), ("base", "{task: sst2, metric: f1}")):
        sections = {"base": "{task: sst2}", section: text}
        run.write_text(f"name: s1\noutput: {tmp_path / 'o'}\n" + "".join(f"{k}: {v}\n" for k, v in sections.items())
                       + "grid: {seed: [1]}\n")
        err = run_error(capsys, ["ablate", "--config", str(run)])
        assert err.endswith({"teacher": f"{run}: teacher: unknown config key 'max_step' (did you mean 'max_steps'?)",
                             "base": f"{run}: base: 'metric' is no setting: the report ranks on the task's first "
                                     "score and shows the others beside it"}[section])
    run.write_text(f"name: s1\noutput: {tmp_path / 'o'}\nbase: {{task: sst2}}\ngrid: {{seed: [1]}}\nmetric: f1\n")
    assert run_error(capsys, ["ablate", "--config", str(run)]).endswith(
        "; the report ranks on the task's first score and shows the others beside it (no 'metric')")
    # smoke's own typo is smoke's (it joins base before the runs), and per_seed is the teacher's alone
    run.write_text(f"name: s1\noutput: {tmp_path / 'o'}\nbase: {{task: sst2}}\ngrid: {{seed: [1]}}\n"
                   "smoke: {max_step: 2}\n")
    assert run_error(capsys, ["ablate", "--config", str(run), "--smoke"]).endswith(
        f"{run}: smoke: unknown config key 'max_step' (did you mean 'max_steps'?)")
    run.write_text(f"name: s1\noutput: {tmp_path / 'o'}\nbase: {{task: sst2, per_seed: true}}\ngrid: {{seed: [1]}}\n")
    assert run_error(capsys, ["ablate", "--config", str(run)]).endswith(
        f"{run}: base: per_seed is the teacher's: teacher: {{per_seed: true}} fine-tunes one teacher per seed")
    # a grid's dotted key in base (a user's walkthrough: "unknown config key 'align.name'" said no more)
    run.write_text(f"name: s1\noutput: {tmp_path / 'o'}\nbase: {{task: sst2, align.name: fixed}}\n"
                   "grid: {seed: [1]}\n")
    assert run_error(capsys, ["ablate", "--config", str(run)]).endswith(
        f"{run}: base: 'align.name' is a grid's dotted key; in base write it nested, align: {{name: ...}}")
    run.write_text(f"name: s1\noutput: {tmp_path / 'o'}\nbase: {{task: sst2, lr.x: 1}}\ngrid: {{seed: [1]}}\n")
    assert "base: unknown config key 'lr.x'" in run_error(capsys, ["ablate", "--config", str(run)])  # (no group)


def test_a_bad_key_in_a_config_file_names_the_file(tiny_teacher, tmp_path, capsys):
    bad = tmp_path / "run.yaml"
    bad.write_text("method: full\nalign:\n  epss: 0.1\n")
    err = run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", "--config", str(bad)))
    assert f"{bad}: unknown config key 'align.epss' (did you mean 'align.eps'?)" in err
    bad.write_text("dynamics:\n  components: [deviaton]\n")
    err = run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", "--config", str(bad)))
    assert f"{bad}: dynamics.components: unknown 'deviaton'" in err and "did you mean 'deviation'?" in err


def test_a_bad_value_or_combination_names_the_file_that_holds_it(tiny_teacher, tmp_path, capsys):
    bad = tmp_path / "run.yaml"
    bad.write_text("temperature: -1\n")
    err = run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", "--config", str(bad)))
    assert err == f"dynakd: error: {bad}: temperature must be > 0, got -1.0"
    err = run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", "--set", "align.eps=0"))
    assert err == "dynakd: error: --set align.eps=0: align.eps must be >= 0.0001, got 0.0"
    bad.write_text("align:\n  fixed_map: reversed\n")  # a combination the file alone gets wrong
    err = run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", "--config", str(bad)))
    assert err.startswith(f"dynakd: error: {bad}: align.fixed_map and align.layers choose the fixed aligner's map")
    bad.write_text("max_train_samples: 8\n")  # fails only with the flag: no file to name
    err = run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", "--config", str(bad), "--temperature", "0"))
    assert err == "dynakd: error: temperature must be > 0, got 0.0"


def csv_args(teacher, out, text_column: str, train, validation) -> list[str]:
    return ["distill", "--teacher", str(teacher), "--student-layers", "2", "--task", "csv", "--text-columns",
            text_column, "--train-file", str(train), "--validation-file", str(validation), "--output", str(out)]


def test_missing_data_file_and_column(tiny_teacher, tmp_path, capsys):
    err = run_error(capsys, csv_args(tiny_teacher, tmp_path / "run", "sentence", tmp_path / "nope.csv", "x.csv"))
    assert "nope.csv" in err
    data = tmp_path / "train.csv"
    data.write_text("text,label\ngood film,1\nbad film,0\n")
    err = run_error(capsys, csv_args(tiny_teacher, tmp_path / "run", "sentence", data, data))
    assert "sentence" in err and "text" in err
    assert not (tmp_path / "run").exists()  # a run that fails before it starts leaves no empty output folder


def test_a_mistyped_data_file_is_named_before_the_output_folders_run(tiny_teacher, tmp_path, capsys):
    """A folder holding a run took a mistyped file for the setting that made this another run ("differs in:
    train_file ... -> nope.csv"), and told to --overwrite it."""
    data = tmp_path / "train.csv"
    data.write_text("".join(["text,label\n", *(f"film {i},{i % 2}\n" for i in range(16))]))
    assert main([*csv_args(tiny_teacher, tmp_path / "run", "text", data, data), "--max-steps", "1"]) == 0
    capsys.readouterr()
    err = run_error(capsys, [*csv_args(tiny_teacher, tmp_path / "run", "text", tmp_path / "nope.csv", data),
                             "--max-steps", "1"])
    assert err.endswith(f"data file not found: {tmp_path / 'nope.csv'}")


def test_a_new_users_mistakes_of_2026_12_06(tiny_teacher, tmp_path, capsys, monkeypatch):
    """From a walkthrough of docs/errors.md: a repeated text column gave a KeyError traceback; a tab-separated .csv
    without --text-columns was told to mind --label-column; a text column named as the label trained one class per
    row; --output in another run's folder blocked that run, --output the GLUE folder wrote the model among the data,
    and a --teacher-cache of the output folder was "a non-empty folder without a cache"; QA settings on a GLUE run went
    unread without a word; evaluate of an unfinished run said it was no model folder."""
    monkeypatch.chdir(tmp_path)
    rows = "".join(f"film number {i} was {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}\n" for i in range(24))
    Path("train.csv").write_text("text,label\n" + rows)
    args = csv_args(tiny_teacher, "run", "text,text", "train.csv", "train.csv")
    assert run_error(capsys, args).endswith("--text-columns names 'text' twice: a sentence pair is two columns")
    Path("tabs.csv").write_text("text\tlabel\na\tpos\nb\tneg\n")
    args = csv_args(tiny_teacher, "run", "x", "tabs.csv", "train.csv")
    args.remove("--text-columns"), args.remove("x")
    assert run_error(capsys, args).endswith("(tabs.csv is read comma-separated; a tab-separated file is read as such "
                                            "when its name ends in .tsv)")
    assert not Path("run").exists()
    from dynakd.config import build_config
    from dynakd.data.load import load_data

    task, _ = load_data(build_config({"task": "csv", "train_file": "train.csv", "validation_file": "train.csv",
                                      "text_columns": ["label"], "label_column": "text"}))
    assert task.num_labels == 24  # (one-shot data may have such labels: a note)
    assert "note: column 'text' gives each of the 24 training rows a class of its own: if it holds text or ids, not " \
           "labels, --label-column names the column of labels" in capsys.readouterr().out
    # output folders that are another thing's
    assert main(distill_args(tiny_teacher, tmp_path / "first")) == 0
    capsys.readouterr()
    inside = run_error(capsys, distill_args(tmp_path / "first", tmp_path / "first" / "sub"))
    assert inside.endswith(f"--output {tmp_path / 'first' / 'sub'} is inside {tmp_path / 'first'}, a run's folder, "
                           "which would then hold another run and could not be trained again: choose another --output")
    Path("project").mkdir()  # a config kept in a project's folder to reuse is no run: its runs go beneath it
    shutil.copy(tmp_path / "first" / "dynakd.yaml", "project/dynakd.yaml")
    assert main(distill_args(tiny_teacher, Path("project") / "runs" / "s")) == 0
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    args = [a for a in distill_args(tiny_teacher, "glue") if a != "--synthetic"] + ["--data-dir", "glue"]
    assert run_error(capsys, args).endswith("--output glue is the --data-dir folder: the run would write its model "
                                            "among the data; choose another --output")
    args = [*distill_args(tiny_teacher, "fresh"), "--teacher-cache", "fresh"]
    assert run_error(capsys, args).endswith("--teacher-cache fresh is the run's --output folder: give the cache a "
                                            "folder of its own (e.g. fresh/cache)")
    # QA settings a GLUE run does not read, and student layers out of order (an experiment, or a mistake): said, and
    # the run trains as it would without the first and with the second
    assert main(distill_args(tiny_teacher, tmp_path / "qa", "--doc-stride", "16", "--n-best", "5",
                             "--student-layer-ids", "2,1")) == 0
    said = capsys.readouterr().out
    assert "note: task sst2 does not read doc_stride, n_best (extractive QA's settings): the run trains as it would " \
           "without" in said
    assert "note: --student-layer-ids lists the teacher's layers out of order (2, 1): the student stacks them so, " \
           "layer 2 first (in the teacher's order: 1, 2)" in said
    # a run stopped before its end (a checkpoint, no model, no scores): said so, with its checkpoints
    run = tmp_path / "unfinished"
    assert main(distill_args(tiny_teacher, run, "--save-steps", "1", "--keep-checkpoints")) == 0
    capsys.readouterr()
    for name in ("metrics.json", "config.json", "model.safetensors"):
        (run / name).unlink()
    shutil.rmtree(run / "checkpoint-3")
    kept = sorted(p.name for p in run.glob("checkpoint-*"))
    assert kept and run_error(capsys, ["evaluate", "--model", str(run)]).endswith(
        f"'{run}' holds a run that has not finished, with no model saved yet: the command it was started with resumes "
        f"it; each of its checkpoints ({', '.join(kept)}) holds the model as it was")
    (tmp_path / "qa" / "config.json").unlink()  # finished, its model deleted
    assert run_error(capsys, ["evaluate", "--model", str(tmp_path / "qa")]).endswith(
        "holds a finished run whose model is gone (no config.json): train it again with --overwrite")


def test_labels_outside_model_range(tiny_teacher, tmp_path, capsys):
    data = tmp_path / "train.csv"
    data.write_text("text,label\ngood film,0\nbad film,1\nodd film,2\n")
    err = run_error(capsys, csv_args(tiny_teacher, tmp_path / "r", "text", data, data))
    assert "predicts 2 labels but task csv has 3" in err


def test_glue_dev_file_alone(tiny_teacher, tmp_path, capsys):
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    err = run_error(capsys, ["distill", "--teacher", str(tiny_teacher), "--student-layers", "2", "--task", "sst2",
                             "--data-dir", str(tmp_path), "--output", str(tmp_path / "run")])
    assert err.endswith("train.tsv; with the dev file alone, --dev-split 0.5 trains on half of it and evaluates on "
                        "the rest")


def test_missing_glue_dir(tiny_teacher, tmp_path, capsys):
    err = run_error(
        capsys,
        [
            "distill",
            "--teacher",
            str(tiny_teacher),
            "--student-layers",
            "2",
            "--task",
            "sst2",
            "--data-dir",
            str(tmp_path),
            "--output",
            str(tmp_path / "run"),
        ],
    )
    assert err.endswith(f"GLUE file not found: {tmp_path / 'SST-2' / 'train.tsv'} (--data-dir is a folder holding "
                        "SST-2/train.tsv)")
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)  # --data-dir one level above the GLUE folder
    (tmp_path / "glue" / "SST-2" / "train.tsv").write_text("sentence\tlabel\n")
    err = run_error(capsys, ["finetune", "--model", str(tiny_teacher), "--task", "sst2", "--data-dir", str(tmp_path),
                             "--output", str(tmp_path / "run")])
    assert err.endswith("(--data-dir is a folder holding SST-2/train.tsv; " + str(tmp_path / "glue") + " holds one)")
    deep = tmp_path / "glue" / "SST-2"  # one level too deep: the task's folder itself
    err = run_error(capsys, ["finetune", "--model", str(tiny_teacher), "--task", "sst2", "--data-dir", str(deep),
                             "--output", str(tmp_path / "run")])
    assert err.endswith(f"(--data-dir is a folder holding SST-2/train.tsv; {deep} is the SST-2 folder itself: give "
                        "the folder above it)")


@pytest.mark.parametrize("command", ["finetune", "distill", "evaluate", "demo"])
def test_synthetic_data_with_a_data_folder_is_refused(tiny_teacher, tmp_path, capsys, command):
    """``--synthetic`` with ``--data-dir`` trained on the built-in corpus without a word, and recorded both."""
    flag = {"finetune": "--model", "evaluate": "--model", "distill": "--teacher"}.get(command)
    model = [flag, str(tiny_teacher)] if flag else []
    err = run_error(capsys, [command, *model, "--synthetic", "--data-dir", str(tmp_path), "--output",
                             str(tmp_path / "run")])
    assert err.endswith("--synthetic trains on the built-in corpus and reads no files: choose one of --synthetic and "
                        "--data-dir")
    assert not (tmp_path / "run").exists()


def test_teacher_not_a_model(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = run_error(capsys, distill_args(tmp_path / "empty", tmp_path / "run"))
    assert "not a model folder" in err


def test_a_gguf_file_or_a_models_file_is_told_what_to_give(tiny_teacher, tmp_path, capsys):
    """A GGUF checkpoint (llama.cpp's), given as the file or its folder, is named as such, with where to read how to
    convert it; a file of a model's folder is told to give the folder."""
    folder = tmp_path / "smollm"
    folder.mkdir()
    (folder / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")
    for given in (folder, folder / "SmolLM2-135M-Instruct.Q4_1.gguf"):
        err = run_error(capsys, ["finetune", "--model", str(given), "--synthetic", "--output", str(tmp_path / "run")])
        assert err.endswith(f"'{given}' is not a model folder (no config.json): SmolLM2-135M-Instruct.Q4_1.gguf is a "
                            "GGUF file (llama.cpp's format), which DynaKD does not read; give the transformers "
                            "checkpoint it was made from, or convert it to one (pip install gguf, then transformers' "
                            "from_pretrained with gguf_file= and save_pretrained: README, 'Data', shows each step)")
    weights = tiny_teacher / "model.safetensors"
    err = run_error(capsys, distill_args(weights, tmp_path / "run"))
    assert err.endswith(f"'{weights}' is not a model folder (no config.json): it is a file; give the folder that "
                        f"holds it with its config.json ({tiny_teacher})")


def test_unreadable_model_folder(tiny_teacher, tmp_path, capsys, monkeypatch):
    """A folder the user may not read (chmod 000) is named as such: pathlib raises PermissionError there (as root, which
    reads every folder, the test stands the error in)."""
    real_is_file = Path.is_file

    def is_file(self):
        if self.parent == tiny_teacher:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", is_file)
    err = run_error(capsys, distill_args(tiny_teacher, tmp_path / "run"))
    assert err == f"dynakd: error: cannot read the model folder '{tiny_teacher}': Permission denied"


def test_model_folder_not_found(tiny_teacher, tmp_path, capsys, monkeypatch):
    """A name that can only be a local path is not sent to the hub (which would retry for half a minute)."""
    err = run_error(capsys, distill_args(tmp_path / "runs" / "nope", tmp_path / "run"))
    assert err == f"dynakd: error: model folder not found: {tmp_path / 'runs' / 'nope'}"
    err = run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", "--student", "./nope"))
    assert err == "dynakd: error: model folder not found: ./nope"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    err = run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", "--student", "runs/nope"))
    assert err == "dynakd: error: model folder not found: runs/nope"  # ./runs exists here: a path, not a hub id


def test_mistyped_folder_named_before_torch_loads(tmp_path):
    # the flags' model names are checked before torch and transformers load (seconds), and the process ends without
    # loading them to close a process group it never made
    code = ("import sys; from dynakd.cli import run\n"
            "try:\n    run(sys.argv[1:])\n"
            "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules, 'transformers' in sys.modules)")
    for args in (["distill", "--teacher", "./nope", "--student-layers", "2", "--output", str(tmp_path / "o")],
                 ["evaluate", "--model", str(tmp_path / "run" / "checkpoint-5"), "--task", "sst2"],
                 ["finetune", "--model", "./nope", "--task", "sst2", "--output", str(tmp_path / "o")]):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert proc.stdout.split() == ["2", "False", "False"], proc.stderr
        assert "model folder not found" in proc.stderr


def test_hub_ids_are_left_to_the_hub(tmp_path, monkeypatch):
    from dynakd.models import check_model_folder

    monkeypatch.chdir(tmp_path)
    asked = []
    monkeypatch.setattr("dynakd.hub.offline_unless_reachable", lambda: asked.append(1))
    for name in ("bert-base-uncased", "sentence-transformers/all-MiniLM-L6-v2"):
        check_model_folder(name)  # no such folder here, and a hub id's form: not refused
    assert len(asked) == 2  # whether the hub answers is checked (once per process: tests/unit/test_hub.py)


def test_student_named_twice(tiny_teacher, tmp_path, capsys):
    err = run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", "--student", str(tiny_teacher)))
    assert "choose one of --student (a checkpoint) and --student-layers / --student-layer-ids" in err


def test_teacher_without_a_classification_head(tiny_encoder, tmp_path, capsys):
    err = run_error(capsys, distill_args(tiny_encoder, tmp_path / "run"))
    assert "has no classification head: fine-tune it first with `dynakd finetune`" in err


def test_output_holds_a_different_run(tiny_teacher, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(distill_args(tiny_teacher, out, "--method", "kd")) == 0
    err = run_error(capsys, distill_args(tiny_teacher, out, "--method", "pkd"))
    # what differs, from what to what; pkd's default beta and aligner (the fixed map) are not kd's, and kd reads
    # neither: the method says it
    assert "already holds a different run (differs in: method kd -> pkd); pass --overwrite" in err
    # another command's run is named as such (a list of keys alone did not say the folder held a distillation)
    err = run_error(capsys, ["finetune", "--model", str(tiny_teacher), *FAST, "--output", str(out)])
    assert "already holds a different run (differs in: " in err
    assert f"; it is a distillation of {tiny_teacher} (method kd); pass --overwrite to replace it" in err
    assert main(distill_args(tiny_teacher, out, "--method", "pkd", "--overwrite")) == 0
    model = (out / "model.safetensors").stat().st_mtime_ns
    err = run_error(capsys, distill_args(tiny_teacher, out, "--method", "pkd"))  # the same run again
    assert "already holds this run, finished (metrics.json); pass --overwrite to train it again" in err
    assert (out / "model.safetensors").stat().st_mtime_ns == model  # refused before touching the saved model
    # its dynakd.yaml does not say --overwrite: started again from it, the run is refused, not trained again
    assert "overwrite: true" not in (out / "dynakd.yaml").read_text()
    err = run_error(capsys, ["distill", "--config", str(out / "dynakd.yaml"), "--no-progress"])
    assert "already holds this run, finished (metrics.json)" in err
    assert (out / "model.safetensors").stat().st_mtime_ns == model
    # a run stopped before its first checkpoint starts again in its folder; files it did not write stay
    (out / "metrics.json").unlink()
    (out / "notes.txt").write_text("mine")
    # its record, replaced on a full disk (another --eval-steps: there is something to write), stays: it was deleted
    # first, and the next start refused the run's files without it as no run's
    record = (out / "dynakd.yaml").read_bytes()
    with monkeypatch.context() as disk:
        disk.setattr(Path, "write_text", full_disk_for_the_record)
        err = run_error(capsys, distill_args(tiny_teacher, out, "--method", "pkd", "--eval-steps", "3"))
    assert f"cannot write to {out}: No space left on device" in err
    assert (out / "dynakd.yaml").read_bytes() == record
    assert main(distill_args(tiny_teacher, out, "--method", "pkd")) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "metrics.json").is_file()
    from dynakd.rundir import discard_output  # a restart that stops before training keeps its config beside them
    discard_output(out)
    assert (out / "dynakd.yaml").is_file() and (out / "notes.txt").is_file()
    stranger = tmp_path / "stranger"  # a model folder DynaKD did not write
    stranger.mkdir()
    (stranger / "config.json").write_text("{}")
    assert f"{stranger} holds config.json but no DynaKD run, which a run would write over" in run_error(
        capsys, distill_args(tiny_teacher, stranger))


def test_overwrite_replaces_a_run_and_nothing_else(tiny_teacher, tmp_path, capsys):
    """--overwrite deleted the whole folder, files of other origin with the run's (notes, another model's scores);
    it also wrote a student over its teacher. A teacher spelt otherwise (a trailing slash, another path to it) is the
    same run."""
    out = tmp_path / "project"
    out.mkdir()
    (out / "train.log").write_text("a log the shell opened before the run")  # beside a run: allowed, kept
    assert main(distill_args(tiny_teacher, out, "--method", "kd")) == 0
    (out / "notes").mkdir()
    (out / "notes" / "mine.txt").write_text("mine")
    for spelt in (f"{tiny_teacher}/", f"{tiny_teacher}/../{tiny_teacher.name}"):
        err = run_error(capsys, distill_args(Path(spelt), out, "--method", "kd"))
        assert "already holds this run, finished" in err, spelt
    for folder in ("checkpoint-best", "tokenizers"):  # folders of the user's whose names look like a run's files
        (out / folder).mkdir()
        (out / folder / "mine.txt").write_text("mine")
    (out / "runs" / "mine.txt").write_text("mine")  # TensorBoard's folder, with a file of the user's in it
    old_events = list((out / "runs").rglob("events.out.tfevents*"))
    assert main(distill_args(tiny_teacher, out, "--method", "pkd", "--overwrite")) == 0
    assert (out / "train.log").is_file() and (out / "notes" / "mine.txt").read_text() == "mine"
    assert all((out / f / "mine.txt").is_file() for f in ("checkpoint-best", "tokenizers", "runs"))
    assert old_events and not any(e.exists() for e in old_events)  # the replaced run's curves go
    assert json.loads((out / "metrics.json").read_text())["method"] == "pkd"
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, teacher)
    err = run_error(capsys, distill_args(teacher, teacher, "--overwrite"))
    assert f"--output {teacher} is the teacher's folder: the run would write over the model it reads" in err
    shutil.copytree(out, tmp_path / "old", ignore=shutil.ignore_patterns("notes"))
    shutil.move(tmp_path / "old", out / "notes" / "old")  # a run kept inside another
    err = run_error(capsys, distill_args(tiny_teacher, out, "--method", "pkd", "--overwrite"))
    assert f"{out} holds other runs ({out / 'notes' / 'old'}); a run's folder holds one run" in err


def test_settings_a_method_does_not_read_are_noted_and_do_not_make_another_run(tiny_teacher, tmp_path, capsys):
    """--beta and --align with kd were recorded without a word, and then made the same run "a different run"."""
    out = tmp_path / "run"
    assert main(distill_args(tiny_teacher, out, "--method", "kd", "--beta", "5", "--align", "attention")) == 0
    assert "note: method kd does not read align, beta: the run trains as it would without" in capsys.readouterr().out
    err = run_error(capsys, distill_args(tiny_teacher, out, "--method", "kd"))
    assert "already holds this run, finished" in err
    err = run_error(capsys, distill_args(tiny_teacher, out, "--method", "full"))
    assert "already holds a different run (differs in: method kd -> full)" in err
    # an aligner's setting another aligner reads (review of 2026-12-08): noted, and no other run for it
    ot = tmp_path / "ot"
    assert main(distill_args(tiny_teacher, ot, "--method", "full", "--set", "align.tau=0.3")) == 0
    assert "the ot aligner does not read align.tau" in capsys.readouterr().out
    assert "already holds this run, finished" in run_error(capsys, distill_args(tiny_teacher, ot, "--method", "full"))
    err = run_error(capsys, distill_args(tiny_teacher, ot, "--method", "full", "--set", "align.order_prior=1"))
    assert "already holds a different run (differs in: align.order_prior 0.0 -> 1.0)" in err
    att = tmp_path / "attention"
    assert main(distill_args(tiny_teacher, att, "--method", "full", "--align", "attention", "--set",
                             "align.relative=true")) == 0
    err = run_error(capsys, distill_args(tiny_teacher, att, "--method", "full", "--align", "attention"))
    assert "already holds a different run (differs in: align.relative true -> false)" in err  # (as YAML says it)
    err = run_error(capsys, distill_args(tiny_teacher, att, "--method", "full", "--align", "ot"))
    assert "already holds a different run (differs in: align.name attention -> ot);" in err  # (not each one's own)
    assert main(distill_args(tiny_teacher, tmp_path / "plain", "--method", "kd")) == 0
    capsys.readouterr()  # a run's own dynakd.yaml spells out every key at its default: nothing to note
    assert main(["distill", "--config", str(tmp_path / "plain" / "dynakd.yaml"), "--output", str(tmp_path / "again"),
                 "--no-progress"]) == 0
    assert "does not read" not in capsys.readouterr().out


def test_output_is_a_file(tiny_teacher, tmp_path, capsys):
    (tmp_path / "run").write_text("not a folder")
    assert f"--output {tmp_path / 'run'} is a file, not a folder" in run_error(
        capsys, distill_args(tiny_teacher, tmp_path / "run")
    )


def test_missing_required(tiny_teacher, tmp_path, capsys):
    assert "needs --student" in run_error(
        capsys, ["distill", "--teacher", str(tiny_teacher), *FAST, "--output", str(tmp_path / "r")]
    )
    assert "needs --output" in run_error(
        capsys, ["distill", "--teacher", str(tiny_teacher), "--student-layers", "2", *FAST]
    )


def test_subprocess_has_no_traceback(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # (a folder of a model's form: the task's error comes first)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dynakd.cli",
            "distill",
            "--teacher",
            str(tmp_path),
            "--task",
            "sst9",
            "--student-layers",
            "2",
            "--output",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr
    assert "unknown task" in proc.stderr.lower() or "sst9" in proc.stderr


@pytest.mark.parametrize("command", ["finetune", "distill", "evaluate", "demo"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: dynakd " + command in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--torch-compile", "--overwrite", "--no-group-by-length", "--transfer-samples=5"])
def test_evaluate_offers_only_what_it_reads(flag, capsys):
    """Scoring a model trains nothing: a training switch is an unknown argument, not silently ignored."""
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", "m", "--task", "sst2", flag])
    assert exit_info.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_csv_needs_both_files(tiny_teacher, tmp_path, capsys):
    data = tmp_path / "train.csv"
    data.write_text("text,label\ngood film,1\nbad film,0\n")
    args = csv_args(tiny_teacher, tmp_path / "r", "text", data, data)
    args = args[: args.index("--validation-file")] + args[args.index("--validation-file") + 2 :]
    assert "--task csv needs --train-file and --validation-file, or one file with --dev-split F" in \
        run_error(capsys, args)
    err = run_error(capsys, [*args[: args.index("--task") + 1], "json", *args[args.index("--task") + 2 :],
                             "--validation-file", str(data)])
    assert err.startswith(f"dynakd: error: could not read json file {data}: JSON parse error")  # the parser's
    assert err.endswith(f"({data} looks like csv: --task csv)")


DATA_FILES = {
    "good.csv": "text,label\ngood film,1\nbad film,0\n",
    "lines.json": '{"text": "good film", "label": 1}\n{"text": "bad film", "label": 0}\n',
    "other.csv": "sentence,label\ngood film,1\n",
    "header.csv": "text,label\n",
    "blank.csv": "\n  \n",
    "empty.json": "",
    "array.json": "[]\n",
    "tabs.csv": "text\tlabel\ngood film\t1\n",
    "commas.tsv": "text,label\ngood film,1\n",
    "rows.json": '[{"text": "good film", "label": 1}]\n',
}


@pytest.mark.parametrize("task, train, validation, expected", [
    # mixed files: the file at fault, with its own reason (read together, datasets gave "Couldn't cast", or the
    # parser's reason beside both names)
    ("csv", "good.csv", "lines.json", "<d>/lines.json: no column 'text'; columns are: *(<d>/lines.json looks like "
                                      "json; --task csv reads every file as csv: give both files in one format)"),
    ("json", "lines.json", "good.csv", "could not read json file <d>/good.csv: JSON parse error*(<d>/good.csv looks "
                                       "like csv; --task json reads every file as json: give both files in one "
                                       "format)"),
    ("csv", "good.csv", "other.csv", "<d>/other.csv: no column 'text'; columns are: sentence, label"),
    # no rows: not datasets' 'Instruction "validation" corresponds to no data!', nor an empty reason
    ("csv", "good.csv", "header.csv", "<d>/header.csv has no rows"),
    ("csv", "blank.csv", "good.csv", "<d>/blank.csv is empty"),
    ("json", "lines.json", "empty.json", "<d>/empty.json is empty"),
    ("json", "array.json", "lines.json", "<d>/array.json has no rows"),
    # a json array read as csv is a header without rows: the hint says what it looks like
    ("csv", "good.csv", "rows.json", "<d>/rows.json has no rows (<d>/rows.json looks like json; --task csv reads "
                                     "every file as csv: give both files in one format)"),
    # the separator a csv file is read with follows its suffix
    ("csv", "tabs.csv", "good.csv", "<d>/tabs.csv: no column 'text'; columns are: text\tlabel (<d>/tabs.csv is read "
                                    "comma-separated; a tab-separated file is read as such when its name ends in "
                                    ".tsv)"),
    ("csv", "good.csv", "commas.tsv", "<d>/commas.tsv: no column 'text'; columns are: text,label (<d>/commas.tsv is "
                                      "read tab-separated for its .tsv suffix; name a comma-separated file .csv)"),
])
def test_a_bad_data_file_is_named_with_its_own_reason(task, train, validation, expected, tiny_teacher, tmp_path,
                                                        capsys):
    for name, text in DATA_FILES.items():
        (tmp_path / name).write_text(text)
    args = csv_args(tiny_teacher, tmp_path / "r", "text", tmp_path / train, tmp_path / validation)
    args[args.index("--task") + 1] = task
    err = run_error(capsys, args)
    assert fnmatch.fnmatchcase(err, "dynakd: error: " + expected.replace("<d>", str(tmp_path))), err


def test_python_config_is_validated(tiny_teacher, tmp_path):
    from dynakd import DistillConfig, DynaKDError, distill

    with pytest.raises(DynaKDError, match="did you mean 'full'"):
        distill(DistillConfig(teacher=str(tiny_teacher), student_layers=2, method="ful", output=str(tmp_path)))


def test_a_model_object_is_refused_where_a_path_belongs(tiny_teacher, tmp_path):
    """From Python, a model in memory given for ``model`` or ``teacher`` gave ``evaluate`` an OSError ("File name too
    long": its printed layers taken for a path) and ``distill`` a refusal that printed them all."""
    from transformers import AutoModelForSequenceClassification

    from dynakd import DynaKDError, distill, evaluate

    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    with pytest.raises(DynaKDError, match="^model: expected a folder or hub id, got a BertForSequenceClassification "
                                          "object: save it first"):
        evaluate({"model": model, "output": str(tmp_path / "scores")})
    with pytest.raises(DynaKDError, match="^teacher: expected a folder or hub id, got a BertForSequenceClassification"):
        distill({"teacher": model, "student_layers": 1, "output": str(tmp_path / "run")})
    assert not (tmp_path / "scores").exists() and not (tmp_path / "run").exists()


def test_config_is_validated_before_any_model_loads(tiny_teacher, tmp_path, capsys, monkeypatch):
    import transformers

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the config was validated")

    for cls in (transformers.AutoModelForSequenceClassification, transformers.AutoConfig, transformers.AutoTokenizer):
        monkeypatch.setattr(cls, "from_pretrained", no_loading)
    for key, expected in [("align.eps=-1", "align.eps must be >= 0.0001"),
                          ("dynamics.forms=[]", "dynamics.forms is empty"), ("staged=2", "staged must be a fraction")]:
        assert expected in run_error(capsys, distill_args(tiny_teacher, tmp_path / "run", "--set", key))


def test_student_and_teacher_heads_differ(tiny_teacher, tmp_path, capsys):
    from tests.conftest import make_tiny_bert

    student = make_tiny_bert(tmp_path / "student", layers=2, num_labels=3)
    err = run_error(capsys, ["distill", "--teacher", str(tiny_teacher), "--student", str(student), *FAST,
                             "--output", str(tmp_path / "run")])
    assert "predicts 3 labels but task sst2 has 2 labels" in err
    regression = make_tiny_bert(tmp_path / "regression", layers=2, num_labels=1)
    err = run_error(capsys, distill_args(regression, tmp_path / "run"))
    assert "predicts 1 score (a regression head) but task sst2 has 2 labels" in err
    three = make_tiny_bert(tmp_path / "three", layers=2, num_labels=3)  # (and a classifier for a regression task)
    sts = tmp_path / "glue" / "STS-B"
    sts.mkdir(parents=True)
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    for name in ("train", "dev"):
        (sts / f"{name}.tsv").write_text(header + "0\tg\tf\t2015\t0\ts\ts\tA cat.\tA dog.\t2.5\n")
    err = run_error(capsys, ["distill", "--teacher", str(three), "--student-layers", "1", "--task", "stsb",
                             "--data-dir", str(tmp_path / "glue"), "--output", str(tmp_path / "run")])
    assert "predicts 3 labels but task stsb is a regression (1 score): fine-tune it on the task first with " \
           "`dynakd finetune` (a new regression head)" in err


def test_empty_examples(tiny_teacher, tmp_path, capsys):
    from dynakd import DistillConfig
    from dynakd.data.load import load_data

    data = tmp_path / "train.csv"
    data.write_text('text,label\n"",1\n"  ",0\n')
    assert "the train split has only empty examples (2 rows without text)" in run_error(
        capsys, csv_args(tiny_teacher, tmp_path / "r", "text", data, data)
    )
    data.write_text('text,label\ngood film,1\n"",0\nbad film,0\n')
    cfg = DistillConfig(task="csv", train_file=str(data), validation_file=str(data), text_columns=["text"])
    _, loaded = load_data(cfg)
    assert loaded["train"]["text_a"] == ["good film", "bad film"] and len(loaded["validation"]) == 3
    assert (f"skipping 1 empty training example(s) ({data} has 1 row(s) without text: data rows 2, counting from 1 "
            "after any header)") in capsys.readouterr().out
    # a subset names the file's rows, not their places in the subset drawn (a user could not find those)
    data.write_text("text,label\n" + "".join(f"film {i},{i % 2}\n" if i not in (3, 7, 30) else '"",0\n'
                                              for i in range(40)))
    cfg = DistillConfig(task="csv", train_file=str(data), validation_file=str(data), text_columns=["text"],
                        max_train_samples=20)
    _, loaded = load_data(cfg)
    assert "" not in loaded["train"]["text_a"]
    skipped = 20 - len(loaded["train"])
    assert 0 < skipped < 3  # (the seeded subset holds some of the three)
    assert (f"skipping {skipped} empty training example(s) of the 20 drawn ({data} has 3 row(s) without text: data "
            "rows 4, 8, 31, counting from 1 after any header)") in capsys.readouterr().out


def test_no_write_permission(tiny_teacher, tmp_path, capsys, monkeypatch):
    import errno

    import dynakd.rundir

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(dynakd.rundir.tempfile, "TemporaryFile", refused)  # as root, chmod does not stop writes
    out = tmp_path / "run"
    assert f"cannot write to {out}: Permission denied; give --output a folder you can write to" \
        in run_error(capsys, distill_args(tiny_teacher, out))
    assert not out.exists()
    monkeypatch.undo()
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")  # a link to nothing is no folder to write in
    err = run_error(capsys, distill_args(tiny_teacher, tmp_path / "dangling"))
    assert err == f"dynakd: error: cannot write to {tmp_path / 'dangling'}: {tmp_path / 'dangling'} is a link to " \
                  f"{tmp_path / 'gone'}, which is not there"  # (a batch user's walkthrough: "is not a folder")
    err = run_error(capsys, ["evaluate", "--model", str(tiny_teacher), "--synthetic", "--output",
                             str(tmp_path / "dangling")])  # evaluate too, before it scores anything
    assert err.startswith(f"dynakd: error: cannot write to {tmp_path / 'dangling'}: {tmp_path / 'dangling'} is a link")
    monkeypatch.undo()
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        err = run_error(capsys, distill_args(tiny_teacher, locked / "run"))
        assert f"cannot write to {locked / 'run'}: Permission denied" in err


def test_disk_full_while_saving_a_checkpoint(tiny_teacher, tmp_path, capsys, monkeypatch):
    """A full disk, simulated: every ``torch.save`` (optimizer, scheduler, RNG, distiller state) fails the way torch's
    zip writer does when the device is full (a RuntimeError, not an OSError)."""
    import torch

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "run"
    err = run_error(capsys, distill_args(tiny_teacher, out, "--save-steps", "2"))
    assert f"cannot write checkpoint-2 to {out}: [enforce fail" in err and "file write failed" in err
    assert err.endswith("; earlier checkpoints are intact")
    assert not list(out.glob("*checkpoint-*"))  # neither a half-written checkpoint nor its staging folder
    out = tmp_path / "short"
    err = run_error(capsys, distill_args(tiny_teacher, out, "--save-steps", "0", "--max-steps", "1",
                                         "--set", "eval_teacher=false"))
    assert f"cannot save the trained model to {out}: " in err  # training_args.bin is a torch.save too


def test_disk_full_reported_by_the_os(tiny_teacher, tmp_path, capsys, monkeypatch):
    import errno

    import dynakd.trainer

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dynakd.trainer, "save_distiller_state", full)
    out = tmp_path / "run"
    err = run_error(capsys, distill_args(tiny_teacher, out, "--save-steps", "2", "--max-steps", "2",
                                         "--set", "eval_teacher=false"))
    assert f"cannot write checkpoint-2 to {out}: No space left on device; earlier checkpoints are intact" in err


def test_missing_or_corrupt_checkpoint_files(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "run"
    args = distill_args(tiny_teacher, out, "--save-steps", "2", "--keep-checkpoints", "--method", "kd")
    assert main(args) == 0
    (out / "metrics.json").unlink()  # as if stopped after its last checkpoint: finished runs are not resumed
    newest, older = out / "checkpoint-3", out / "checkpoint-2"
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):  # (the Trainer skips the last two without a word)
        (newest / name).unlink()
    err = run_error(capsys, args)
    assert f"checkpoint {newest} is incomplete (missing optimizer.pt, scheduler.pt, rng_state.pth); delete it to " \
        "resume from checkpoint-2" in err
    shutil.rmtree(newest)
    model = older / "model.safetensors"
    intact = model.read_bytes()
    model.write_bytes(intact[:-100])
    err = run_error(capsys, args)
    assert f"checkpoint {older} is corrupt" in err and "model.safetensors: Error while deserializing header" in err
    assert "delete it or pass --overwrite to start again" in err
    model.write_bytes(intact)
    state = older / "dynakd_distiller.pt"
    whole = state.read_bytes()
    state.write_bytes(whole[:50])
    assert f"checkpoint {older} is corrupt (BadZipFile" in run_error(capsys, args)
    state.write_bytes(whole)
    (older / "config.json").write_text("")  # emptied: a crash before its data reached the disk (was a traceback)
    err = run_error(capsys, args)
    assert f"checkpoint {older} is corrupt (JSONDecodeError" in err and "Traceback" not in err


def test_a_runs_rotation_and_overwrite_leave_the_users_copies(tiny_teacher, tmp_path):
    """transformers' rotation took ``checkpoint-1-good`` (a user's copy) for a checkpoint and deleted it, and
    --overwrite deleted files by open patterns (``best.safetensors``, ``tokenizer_ideas.md``)."""
    out = tmp_path / "run"
    args = distill_args(tiny_teacher, out, "--save-steps", "1", "--method", "kd", "--keep-checkpoints")
    assert main(args) == 0
    mine = ["checkpoint-1-good", "best.safetensors", "tokenizer_ideas.md", "vocab.notes", "embeddings.model"]
    shutil.copytree(out / "checkpoint-3", out / "checkpoint-1-good")
    for name in mine[1:]:
        (out / name).write_text("mine")
    assert main([*args, "--overwrite"]) == 0
    assert all((out / name).exists() for name in mine)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1-good", "checkpoint-2", "checkpoint-3"]


def test_glue_hub_unreachable(tiny_teacher, tmp_path, capsys, monkeypatch):
    """The usual first run on an offline machine: no --data-dir, and the hub cannot be reached."""
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr("dynakd.hub.offline_unless_reachable", lambda: True)  # (tests/unit/test_hub.py)
    args = [a for a in distill_args(tiny_teacher, tmp_path / "run") if a != "--synthetic"]
    err = run_error(capsys, args)
    assert "could not load GLUE sst2 from the Hugging Face hub (ConnectionError: Couldn't reach" in err
    assert err.endswith("pass --data-dir DIR with the GLUE TSV files")


def test_evaluate_checks_the_sequence_limit(tiny_teacher, capsys):
    err = run_error(capsys, ["evaluate", "--model", str(tiny_teacher), "--synthetic", "--max-seq-length", "4096"])
    assert "max_seq_length 4096 exceeds the model's limit of 128 tokens" in err


def test_a_relative_path_that_is_no_folder_here_says_where_it_was_looked_for(tmp_path, capsys, monkeypatch):
    """``runs/teacher`` with no ./runs here is a hub id to transformers (a saved dynakd.yaml run from another folder);
    the message says it is no folder here either. Offline it led with transformers' connection error and two hints
    in brackets; it now says first that there is no such folder."""
    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    err = run_error(capsys, distill_args(tmp_path / "x", tmp_path / "run", "--teacher", "runs/teacher"))
    assert err == (f"dynakd: error: cannot load a model from 'runs/teacher': there is no such folder in {tmp_path} "
                   "(a relative path counts from the folder the command runs in, a path in a saved dynakd.yaml from "
                   "the one its run ran in), and the hub, where it would name a model, cannot be reached from here: "
                   "give a model folder, or minilm, the all-MiniLM-L6-v2 a pip package installs with DynaKD")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr("dynakd.hub.offline_unless_reachable", lambda: False)  # (the hub answers: a run asks anew)
    monkeypatch.setattr("dynakd.models.AutoConfig.from_pretrained",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("runs/teacher is not a valid model identifier")))
    err = run_error(capsys, distill_args(tmp_path / "x", tmp_path / "run", "--teacher", "runs/teacher"))
    assert err.endswith(f"runs/teacher is not a valid model identifier (if 'runs/teacher' is meant as a folder: there "
                        f"is none in {tmp_path}; a relative path counts from the folder the command runs in, a path "
                        "in a saved dynakd.yaml from the one its run ran in)")


@pytest.mark.parametrize("command", [["ablate", "--config", "s.yaml"], ["bench"], ["demo"], ["report", "runs/x"]])
def test_commands_that_run_in_one_process_refuse_a_launcher(command, capsys, monkeypatch):
    """Under torchrun each process ran the whole sweep: the processes waited for ever on each other's locks, or
    recorded every cell twice."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    err = run_error(capsys, command)
    assert f"dynakd {command[0]} runs in one process: launch it without torchrun or accelerate launch" in err
    if command[0] == "ablate":
        assert "--shard K/N" in err


@pytest.mark.parametrize("args, expected", [
    (["--train-file", "x.json"], "--train-file is the SQuAD file of the squad demo; the sst2 demo reads --data-dir"),
    (["--task", "squad", "--data-dir", "glue"], "--data-dir is the GLUE folder of the sst2 demo; the squad demo reads "
                                                "--train-file"),
])
def test_the_demo_refuses_a_flag_of_its_other_task(args, expected, capsys, tmp_path):
    assert expected in run_error(capsys, ["demo", "--output", str(tmp_path / "d"), *args])


@pytest.mark.parametrize("args, expected", [(["--epochs", "0"], "--epochs must be > 0, got 0.0"),
                                            (["--max-train-samples", "0"], "--max-train-samples must be > 0, got 0")])
def test_the_demo_refuses_zero_sizes(args, expected, capsys, tmp_path, monkeypatch):
    """(0 used to run the demo's defaults: minutes of training for a value distill refuses.) Refused before the hub
    is asked for data, as is a run's folder given as --output."""
    from dynakd import demo

    assert expected in run_error(capsys, ["demo", "--synthetic", "--output", str(tmp_path / "d"), *args])
    monkeypatch.setattr(demo, "hub_reachable", lambda: pytest.fail("the hub asked before the refusal"))
    assert expected in run_error(capsys, ["demo", "--output", str(tmp_path / "d"), *args])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "dynakd.yaml").write_text("task: sst2\n")
    assert main(["demo", "--synthetic", "--output", str(tmp_path / "run")]) == 2
    said = capsys.readouterr()
    assert "is a run's folder (or a model's), and the demo writes its three runs" in said.err
    assert "DynaKD demo: data" not in said.out


def test_the_demo_checks_its_glue_folder_before_it_says_it_replaces_its_runs(capsys, tmp_path):
    """A wrong --data-dir was found when the teacher's data loaded, after '(replacing the demo runs already in ...)'
    and '[1/3] fine-tuning the teacher'."""
    out = tmp_path / "d"
    (out / "teacher").mkdir(parents=True)
    (out / "teacher" / "metrics.json").write_text("{}")
    assert main(["demo", "--data-dir", str(tmp_path / "glue"), "--output", str(out)]) == 2
    said = capsys.readouterr()
    assert f"GLUE file not found: {tmp_path / 'glue' / 'SST-2' / 'train.tsv'} (--data-dir is a folder holding " \
           "SST-2/train.tsv)" in said.err
    assert "replacing" not in said.out and "[1/3]" not in said.out
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)  # the dev file alone: --dev-split is no flag of the demo
    (tmp_path / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n")
    assert main(["demo", "--data-dir", str(tmp_path / "glue"), "--output", str(out)]) == 2
    assert "--dev-split" not in capsys.readouterr().err


def test_the_demo_replaces_its_own_runs_only(tiny_teacher, capsys, tmp_path):
    """A teacher of the user's own in the demo's teacher folder was called one of "the demo runs" and deleted."""
    out = tmp_path / "d"
    assert main(["finetune", "--model", str(tiny_teacher), "--task", "sst2", "--synthetic", "--max-steps", "1",
                 "--no-progress", "--output", str(out / "teacher")]) == 0
    err = run_error(capsys, ["demo", "--synthetic", "--output", str(out)])
    assert f"{out / 'teacher'} holds a run the demo did not write (model {tiny_teacher}), which it would replace" in err
    assert (out / "teacher" / "metrics.json").is_file()
    (out / "teacher" / "metrics.json").unlink()
    from dynakd.config import save_config
    from dynakd.demo import DEMO_DEFAULTS, SQUAD_DEFAULTS, check_demo_folders, demo_configs, mark
    from dynakd.rundir import DEMO_MARK

    def record(name, cfg, **changes):
        (out / name).mkdir(exist_ok=True)
        save_config(dataclasses.replace(cfg, **changes), out / name / "dynakd.yaml")

    # the demo's unfinished runs pass, whatever its flags chose (a demo stopped midway), of either task
    for defaults, flags in ((DEMO_DEFAULTS, {"synthetic": True, "epochs": 3.0}),
                            (SQUAD_DEFAULTS, {"train_file": "dev.json", "max_train_samples": 50})):
        for name, cfg in demo_configs(out, {**defaults, **flags}, 1.0).items():
            record(name, cfg)
        check_demo_folders(out)
    demo = demo_configs(out, {**DEMO_DEFAULTS, "synthetic": True}, 2.0)
    for name in ("student-kd", "student-full"):  # (students of a demo run from tmp_path, then from elsewhere)
        record(name, demo[name], teacher={"student-kd": f"{out / 'teacher'}/", "student-full": "d/teacher"}[name])
    check_demo_folders(out)
    record("student-full", demo["student-full"], teacher="teacher")  # an earlier demo with --output .
    check_demo_folders(out)
    record("student-full", demo["student-full"], teacher=str(tmp_path / "elsewhere" / "d" / "teacher"))
    with pytest.raises(DynaKDError, match="student-full holds a run the demo did not write"):
        check_demo_folders(out)  # another teacher, whose folder's last names are the demo's
    # an unfinished run of the user's own in the demo's folders, of MiniLM or of the demo's teacher, passed for the
    # demo's: the settings the demo fixes are its own
    for name, changes, what in (("teacher", {"lr": 3e-4}, "lr 0.0003"),
                                ("student-full", {"student_layers": 3}, "student_layers 3"),
                                ("student-full", {"method": "kd"}, "method kd"),
                                ("student-kd", {"max_seq_length": 128}, "max_seq_length 128")):
        record(name, demo[name], **changes)
        with pytest.raises(DynaKDError, match=f"{name} holds a run the demo did not write \\({what}\\)"):
            check_demo_folders(out)
        record(name, demo[name])
    check_demo_folders(out)
    # a finished run of MiniLM in the demo's teacher folder (README's own `finetune --model minilm --output
    # runs/teacher`, then `demo --output runs`) passed for the demo's and was replaced: the demo's runs carry its mark
    (out / "teacher" / "metrics.json").write_text("{}")
    with pytest.raises(DynaKDError, match=r"teacher holds a run the demo did not write \(finished, and without the "
                                          r"demo's mark\), which it would replace; choose another --output"):
        check_demo_folders(out)
    mark(out / "teacher")
    check_demo_folders(out)
    # whatever replaces the demo's run removes its mark (a run's entry): the run there is then the user's
    assert main(["finetune", "--model", str(tiny_teacher), "--task", "sst2", "--synthetic", "--max-steps", "1",
                 "--no-progress", "--overwrite", "--output", str(out / "teacher")]) == 0
    assert not (out / "teacher" / DEMO_MARK).exists()
    with pytest.raises(DynaKDError, match="teacher holds a run the demo did not write"):
        check_demo_folders(out)


def test_the_demo_and_a_sweep_write_no_runs_into_a_runs_folder(tiny_teacher, capsys, tmp_path):
    """`demo --output RUN` and `ablate --output RUN` nested their runs in a run's folder, which could then not be
    trained again (it held other runs)."""
    run = tmp_path / "run"
    assert main(["finetune", "--model", str(tiny_teacher), "--task", "sst2", "--synthetic", "--max-steps", "1",
                 "--no-progress", "--output", str(run)]) == 0
    err = run_error(capsys, ["demo", "--synthetic", "--output", str(run)])
    assert f"{run} is a run's folder (or a model's), and the demo writes its three runs into folders inside its " \
           "--output: choose another --output" in err
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"base: {{task: sst2, synthetic: true, student_layers: 1}}\nteacher: {{model: {tiny_teacher}}}\n"
                     "grid: {seed: [1]}\n")
    for extra in ([], ["--smoke"]):
        err = run_error(capsys, ["ablate", "--config", str(sweep), "--output", str(run), *extra])
        assert f"{run} is a run's folder (or a model's), and ablate writes the sweep's teacher and cells" in err
    assert not (run / "cells").exists() and not (run / "smoke").exists()
    # nor a folder inside one (RUN/sub/teacher is two levels below RUN: RUN would hold other runs)
    err = run_error(capsys, ["demo", "--synthetic", "--output", str(run / "sub")])
    assert f"{run / 'sub'} is inside {run}, a run's folder (or a model's), and the demo writes" in err
    from dynakd.rundir import check_not_a_run

    project = tmp_path / "project"  # another tool's config.json is no model's
    project.mkdir()
    (project / "config.json").write_text('{"editor": "vim"}')
    check_not_a_run(project, "the demo", "its three runs")
    (project / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(DynaKDError, match="is a run's folder \\(or a model's\\)"):
        check_not_a_run(project, "the demo", "its three runs")


def test_evaluate_names_a_mistyped_model_before_any_data(tmp_path, capsys, monkeypatch):
    """``run/model`` for ``runs/model`` reads as a hub id; offline it failed on the data's hub download first."""
    monkeypatch.chdir(tmp_path)
    err = run_error(capsys, ["evaluate", "--model", "run/model", "--no-progress"])
    assert "cannot load a model from 'run/model'" in err and "GLUE" not in err


def test_a_model_folder_without_tokenizer_files_is_refused(tiny_teacher, tmp_path, capsys):
    """(transformers 5 built a tokenizer of a few special tokens for such a folder: a run trained and scored on
    sentences read as [UNK] only, and exited 0.)"""
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_teacher / name, bare / name)
    err = run_error(capsys, ["evaluate", "--model", str(bare), "--synthetic", "--no-progress"])
    assert f"'{bare}' has no tokenizer files (tokenizer.json, tokenizer_config.json, vocab.txt, ...)" in err


@pytest.mark.parametrize("command", ["distill", "finetune", "bench"])
def test_one_process_that_sees_several_gpus_is_refused(command, tiny_teacher, tmp_path, capsys, monkeypatch):
    """Without a launcher the Trainer split each batch over every visible GPU (nn.DataParallel): the records said one
    process with --batch-size rows, the batch forms saw a GPU's share, and a resume on fewer GPUs passed its check."""
    import torch

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    args = {"distill": distill_args(tiny_teacher, tmp_path / "run"),
            "finetune": ["finetune", "--model", str(tiny_teacher), "--synthetic", "--output", str(tmp_path / "t")],
            "bench": ["bench", "--teacher", str(tiny_teacher), "--synthetic"]}[command]
    err = run_error(capsys, args)
    assert err.endswith("this process sees 4 GPUs: launch one process per GPU (torchrun --nproc-per-node 4 -m "
                        "dynakd.cli ..., or accelerate launch; README: Several GPUs and machines), or choose one GPU "
                        "with CUDA_VISIBLE_DEVICES=0")
    assert not (tmp_path / "run").exists()


def test_an_encoder_decoder_is_refused_before_any_data(tiny_teacher, tmp_path, capsys, monkeypatch):
    """A T5 classifier returns the encoder's and the decoder's states apart: the first training step failed with an
    AttributeError ('Seq2SeqSequenceClassifierOutput' object has no attribute 'hidden_states')."""
    import torch
    from transformers import T5Config, T5ForSequenceClassification

    t5 = tmp_path / "t5"
    torch.manual_seed(0)
    T5ForSequenceClassification(T5Config(vocab_size=100, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
                                         num_labels=2, decoder_start_token_id=0)).save_pretrained(t5)
    for file in tiny_teacher.iterdir():
        if "token" in file.name:
            shutil.copy(file, t5 / file.name)
    monkeypatch.setattr("dynakd.runner.load_data", lambda *a, **k: pytest.fail("the data loaded first"))
    capsys.readouterr()  # (the library's bar, writing the model)
    expected = (f"dynakd: error: '{t5}' is an encoder-decoder model (t5): DynaKD distils encoders (and decoder-only "
                "classifiers), one stack of layers; use an encoder such as BERT or RoBERTa")
    assert run_error(capsys, distill_args(t5, tmp_path / "run")) == expected
    student_args = [a for a in distill_args(tiny_teacher, tmp_path / "run") if a not in ("--student-layers", "2")]
    assert run_error(capsys, [*student_args, "--student", str(t5)]) == expected
    assert run_error(capsys, ["evaluate", "--model", str(t5), "--synthetic", "--no-progress"]) == expected


def test_a_model_that_lacks_weights_is_refused_as_a_teacher_or_to_score(tiny_teacher, tmp_path, capsys):
    """A teacher saved without its pooler trained its student against a random pooler, and its score was that of a
    random one: nothing said so (the library's report is silenced)."""
    from safetensors.torch import load_file, save_file

    partial = tmp_path / "partial"
    shutil.copytree(tiny_teacher, partial)
    weights = load_file(partial / "model.safetensors")
    save_file({k: v for k, v in weights.items() if "pooler" not in k}, partial / "model.safetensors",
              metadata={"format": "pt"})
    capsys.readouterr()
    expected = (f"dynakd: error: '{partial}' does not hold every weight its config describes: 2 missing "
                "(bert.pooler.dense.bias, bert.pooler.dense.weight); they would be random: use its complete "
                "checkpoint (as save_pretrained writes it), or fine-tune it first with `dynakd finetune`")
    assert run_error(capsys, distill_args(partial, tmp_path / "run")) == expected
    assert run_error(capsys, ["evaluate", "--model", str(partial), "--synthetic", "--no-progress"]) == expected


def test_a_flags_prefix_is_not_the_flag(capsys):
    """argparse took --epoch 1 for --epochs 1 (a 67,000-row run for a mistyped flag)."""
    with pytest.raises(SystemExit) as stop:
        main(["distill", "--epoch", "1"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --epoch 1 (--epoch is an option of bench; did you mean --epochs?)" in \
        capsys.readouterr().err


def test_running_out_of_memory_says_what_to_lower(monkeypatch, capsys):
    """A device out of memory used to end a command with a traceback: it is named, with the settings that need less
    (the token-level dynamics' windows among them); any other error keeps its traceback."""
    import torch

    import dynakd.cli as cli

    errors = [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity"),
              RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 2147483648 bytes.")]
    for error in errors:
        monkeypatch.setattr(cli, "_run", lambda args, error=error: (_ for _ in ()).throw(error))
        assert cli.main(["bench"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"dynakd: error: out of memory ({str(error).splitlines()[0]}). Lower --batch-size")
        assert "--set dynamics.window_mib=32" in err
    monkeypatch.setattr(cli, "_run", lambda args: (_ for _ in ()).throw(RuntimeError("something else")))
    with pytest.raises(RuntimeError, match="something else"):
        cli.main(["bench"])


def test_parameters_no_term_reached_under_ddp_say_the_setting(monkeypatch, capsys):
    """DDP no longer looks for unused parameters at every step (the Trainer's default for a transformers model, which
    each process warned of); where some are (every term that reads the logits weighing 0), DDP's traceback is said
    as the setting that allows them. Under a launcher the other processes wait, once they have said their error, for
    process 0 to say its own before the launcher stops them all."""
    import dynakd.cli as cli
    from dynakd import distributed

    ddp = RuntimeError("Expected to have finished reduction in the prior iteration before starting a new one. This "
                       "error indicates that your module has parameters that were not used in producing loss. ...")
    monkeypatch.setattr(cli, "_run", lambda args: (_ for _ in ()).throw(ddp))
    slept = []
    monkeypatch.setattr("time.sleep", slept.append)
    assert cli.main(["bench"]) == 1
    assert capsys.readouterr().err.strip() == (
        "dynakd: error: the model has parameters that no loss term reached, which DDP was told to expect none of (a "
        "head of a model of one's own that the loss does not read, or every term that reads the logits weighing 0): "
        "run with --set ddp_find_unused_parameters=true")
    assert slept == []  # one process: no one to wait for
    monkeypatch.setattr(distributed, "launched_processes", lambda: 2)
    for rank, waits in ((1, [cli.ZERO_FIRST_S]), (0, [])):
        monkeypatch.setattr(distributed, "process_rank", lambda rank=rank: rank)
        monkeypatch.setattr(cli, "_run", lambda args: (_ for _ in ()).throw(DynaKDError("bad")))
        assert cli.main(["bench"]) == 2
        assert capsys.readouterr().err == f"dynakd: error: [rank {rank}] bad\n"
        assert slept == waits
        slept.clear()
    # an error that is not DynaKD's own: its traceback, then the same wait for process 0's
    monkeypatch.setattr(cli, "main", lambda argv: (_ for _ in ()).throw(ValueError("not ours")))
    monkeypatch.setattr(sys, "excepthook", lambda *exc: print(f"traceback of {exc[1]}", file=sys.stderr))
    monkeypatch.setattr(distributed, "end_process", lambda code: slept.append(f"end {code}"))
    for rank, waits in ((1, [cli.ZERO_FIRST_S, "end 1"]), (0, ["end 1"])):
        monkeypatch.setattr(distributed, "process_rank", lambda rank=rank: rank)
        cli.run(["bench"])
        assert capsys.readouterr().err == "traceback of not ours\n" and slept == waits
        slept.clear()



def test_a_checkpoint_no_longer_there_is_not_found_without_its_runs_settings(tiny_teacher, tmp_path, capsys):
    """A run deletes its checkpoints when it ends: `evaluate --model RUN/checkpoint-4` printed the run's data and its
    evaluation subset as lent to it, then that the folder was not found."""
    run = tmp_path / "run"
    assert main(distill_args(tiny_teacher, run, "--method", "kd")) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run / "checkpoint-4"), "--no-progress"]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err.strip() == (f"dynakd: error: model folder not found: {run / 'checkpoint-4'} (a run keeps its "
                                   "checkpoints only while it trains, unless --keep-checkpoints: its final model is "
                                   f"{run})")
    (run / "checkpoint-2").mkdir()  # a step mistyped in a run that kept its checkpoints: those it has
    assert main(["evaluate", "--model", str(run / "checkpoint-4"), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().endswith("(the run's checkpoints: checkpoint-2)")


def test_qa_tokens_beside_class_token_pooling_is_said_unread(capsys):
    """From a QA user's walkthrough (2026-12-07): pooling 'cls' compares each window's class token, which is no
    context token, so qa_tokens 'context' changed nothing, without a word."""
    from dynakd.config import build_config
    from dynakd.rundir import note_not_read_by_task

    given = {"task": "squad", "dynamics": {"pooling": "cls", "qa_tokens": "context"}}
    note_not_read_by_task(build_config(given), given)
    assert capsys.readouterr().out == ("note: dynamics.pooling 'cls' compares each window's class token alone, so "
                                       "dynamics.qa_tokens 'context' is not read: the run trains as it would without\n")
    for quiet in ({"task": "squad", "dynamics": {"qa_tokens": "context"}},
                  {"task": "squad", "method": "kd", "dynamics": {"pooling": "cls", "qa_tokens": "context"}}):
        note_not_read_by_task(build_config(quiet), quiet)
    assert capsys.readouterr().out == ""


def test_evaluate_names_what_it_does_not_read_and_its_batch_size(tiny_teacher, tmp_path, capsys):
    """From a user's walkthrough (2026-12-07): evaluate took training settings given with --set without a word (their
    flags are refused), and refused --batch-size without naming eval_batch_size."""
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", str(tiny_teacher), "--batch-size", "8"])
    assert "this command scores: its batch size is --set eval_batch_size=N" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tiny_teacher), "--synthetic", "--max-eval-samples", "8", "--no-progress",
                 "--output", str(tmp_path / "scores"), "--set", "lr=1", "--set", "align.name=fixed",
                 "--set", "eval_batch_size=4"]) == 0
    assert ("note: dynakd evaluate does not read align, lr (settings of training): the score is as it would be "
            "without (eval_batch_size is the batch size of scoring)") in capsys.readouterr().out


def test_an_output_closed_early_ends_the_command_without_a_traceback(tiny_teacher, tmp_path):
    """From a batch user's walkthrough (2026-12-07): `dynakd distill ... | head -1` ended in a BrokenPipeError's
    traceback. It ends as a command that SIGPIPE killed (141), saying why on stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "dynakd.cli", *distill_args(tiny_teacher, tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # (the reader gone before the first line)
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141, err
    assert "Traceback" not in err and "dynakd: stopped: its output was closed (Broken pipe)" in err


def test_a_path_this_locale_cannot_spell_is_refused_before_the_run(tiny_teacher, tmp_path):
    """From a batch user's walkthrough (2026-12-07): under an ASCII locale with UTF-8 mode off, an output path with
    accents failed in TensorBoard's writer (a UnicodeEncodeError's traceback) after the set-up, leaving a folder."""
    env = {**os.environ, "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "LC_ALL": "C", "LANG": "C"}
    out = tmp_path / "élève" / "run"
    proc = subprocess.run([sys.executable, "-m", "dynakd.cli", *distill_args(tiny_teacher, out)], env=env,
                          capture_output=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert b"run under a UTF-8 locale, or with PYTHONUTF8=1" in proc.stderr and b"Traceback" not in proc.stderr
    assert not out.exists()


def test_a_broken_pipe_other_than_the_output_keeps_its_traceback(monkeypatch):
    """Only a closed stdout or stderr is "its output was closed" (exit 141): another pipe's or socket's broken end
    (a data loader's worker, a tracker's service) is a failure of its own (a review of the change)."""
    import dynakd.cli

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(dynakd.cli, "_run", broken)
    with pytest.raises(BrokenPipeError):
        main(["report", "somewhere"])
