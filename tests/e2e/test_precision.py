"""Mixed precision and ``torch.compile`` work with every method (issue #4), on CPU here, through the Trainer."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from dynakd import DistillConfig, distill
from dynakd.cli import main
from dynakd.config import METHOD_TERMS
from tests.conftest import make_tiny_bert


def run(teacher, out, method: str, **kw) -> dict:
    cfg = DistillConfig(teacher=str(teacher), student_layers=2, task="sst2", synthetic=True, method=method,
                        max_train_samples=48, max_eval_samples=16, max_steps=3, batch_size=16, progress=False,
                        logging_steps=1, group_by_length=False, output=str(out), **kw)
    return distill(cfg).metrics


@pytest.mark.parametrize("method", sorted(METHOD_TERMS))
def test_bf16_trains_every_method(method, tiny_teacher, tmp_path, monkeypatch):
    """CPU autocast (the Trainer needs ``use_cpu`` for bf16 on a machine without an accelerator): the student's
    matrix products run in the half type (accelerate hands the outputs back in float32), the weights stay float32,
    the losses are finite."""
    dtypes, linear = set(), torch.nn.functional.linear

    def spy(*args, **kw):
        out = linear(*args, **kw)
        if torch.is_grad_enabled():  # the student's training forward (the teacher runs under no_grad)
            dtypes.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    metrics = run(tiny_teacher, tmp_path / "run", method, bf16=True)
    assert torch.bfloat16 in dtypes  # (static's projections run in float32 with the other feature terms)
    assert torch.isfinite(torch.tensor([metrics["train"]["loss"], metrics["eval"]["loss"]])).all()
    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run")
    assert all(p.dtype == torch.float32 for p in student.parameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_fp16_on_cpu_is_refused(tiny_teacher, tmp_path, capsys):
    """accelerate has no fp16 autocast on CPU and would train in float32 without saying so."""
    args = ["distill", "--teacher", str(tiny_teacher), "--student-layers", "2", "--synthetic", "--fp16",
            "--output", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--fp16 needs a GPU (on CPU it would silently run in float32); use --bf16 on CPU" in err
    assert not (tmp_path / "run").exists()  # refused before any data, model or folder


def test_torch_compile_matches_eager(tmp_path, monkeypatch):
    """``--torch-compile`` on ``full`` (hidden states of every layer, dynamics, OT): the student and the dynamics
    losses are really compiled and give the eager run's losses. Dropout is off because compiled dropout draws its
    masks from another generator."""
    from torch._dynamo.utils import counters

    from dynakd.losses import dynamics_costs

    teacher = make_tiny_bert(tmp_path / "teacher", layers=4, hidden=32, dropout=0.0)
    eager = run(teacher, tmp_path / "eager", "full")
    counters.clear()
    compiled_fns, real_compile = [], torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn=None, **kw: compiled_fns.append(fn) or real_compile(fn, **kw))
    compiled = run(teacher, tmp_path / "compiled", "full", torch_compile=True)
    assert counters["stats"]["unique_graphs"] > 0
    assert dynamics_costs in compiled_fns
    assert compiled["train"]["loss"] == pytest.approx(eager["train"]["loss"], rel=1e-4)
    assert compiled["eval"]["loss"] == pytest.approx(eager["eval"]["loss"], rel=1e-4)


def test_torch_compile_mode_reaches_the_student_and_the_dynamics(tiny_teacher, tmp_path, monkeypatch, capsys):
    """``--torch-compile-mode reduce-overhead`` (CUDA graphs on a GPU) implies ``--torch-compile`` and is the mode of
    both compilations: the Trainer's of the student and the distiller's of the dynamics losses."""
    from dynakd.config import build_config
    from dynakd.losses import dynamics_costs

    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn=None, **kw: calls.append((fn, kw)) or fn)  # no compiling
    assert build_config({"torch_compile_mode": "reduce-overhead"}).torch_compile is True
    run(tiny_teacher, tmp_path / "run", "full", torch_compile_mode="reduce-overhead")
    student = [kw for fn, kw in calls if fn is not dynamics_costs]
    dynamics = [kw for fn, kw in calls if fn is dynamics_costs]
    assert student and {kw.get("mode") for kw in student} == {"reduce-overhead"}
    # the dynamics take the mode as its options (CUDA graphs), with inductor's coalescing analysis of tilings off
    assert dynamics and all(kw["options"]["triton.cudagraphs"] and "mode" not in kw for kw in dynamics)
    assert all(kw["dynamic"] is True for kw in dynamics)  # no recompilation for a new batch size or length
    assert all(kw["options"].get("triton.coalesce_tiling_analysis") is False for kw in dynamics)
    args = ["distill", "--teacher", str(tiny_teacher), "--synthetic", "--torch-compile-mode", "fast"]
    assert main(args) == 2  # an unknown mode is a clear error, not a traceback from torch
    assert "torch_compile_mode: 'fast' is not one of default, reduce-overhead," in capsys.readouterr().err


def test_cuda_graphs_from_the_command_line(tiny_teacher, tmp_path, capsys):
    """``--cuda-graphs`` reaches the distiller (eager off a GPU, with a note) and the run folder; finetune, which has
    no dynamics to record, does not offer it."""
    import yaml

    from dynakd.cli import main

    out = tmp_path / "run"
    args = ["distill", "--teacher", str(tiny_teacher), "--student-layers", "2", "--synthetic", "--max-train-samples",
            "32", "--max-eval-samples", "8", "--max-steps", "2", "--batch-size", "16", "--no-progress", "--output",
            str(out), "--cuda-graphs"]
    assert main(args) == 0
    assert "note: --cuda-graphs needs a CUDA device" in capsys.readouterr().out
    assert yaml.safe_load((out / "dynakd.yaml").read_text())["cuda_graphs"] is True
    with pytest.raises(SystemExit):
        main(["finetune", "--model", str(tiny_teacher), "--cuda-graphs"])
    assert "unrecognized arguments: --cuda-graphs" in capsys.readouterr().err



def test_the_sensitivity_forwards_of_the_teacher_share_its_precision(tiny_teacher, tmp_path, monkeypatch):
    """The input-sensitivity component compares the teacher's clean and perturbed forwards: under --bf16 both run
    under the run's autocast. The perturbed one ran in float32, so the two differed by their precision as well as the
    perturbation (bf16 moves a pooled feature of MiniLM by ~0.2%: benchmarks/speed/teacher_precision.py)."""
    from dynakd.trainer import DistillationTrainer

    dtypes, linear, compute_loss, in_step = set(), torch.nn.functional.linear, DistillationTrainer.compute_loss, []

    def spy(*args, **kw):
        out = linear(*args, **kw)
        if in_step and not torch.is_grad_enabled():  # the teacher's forwards in a training step
            dtypes.add(out.dtype)
        return out

    def step(self, *args, **kw):
        in_step.append(True)
        try:
            return compute_loss(self, *args, **kw)
        finally:
            in_step.pop()

    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    monkeypatch.setattr(DistillationTrainer, "compute_loss", step)
    run(tiny_teacher, tmp_path / "run", "full", bf16=True, dynamics={"components": ["relations", "sensitivity"]})
    assert dtypes == {torch.bfloat16}


def test_under_bf16_every_teacher_pass_runs_in_the_runs_precision(tiny_teacher, tmp_path, monkeypatch):
    """The student is scored under the Trainer's autocast, so its teacher is too (it was scored in float32 beside a
    bf16 student); the `dataset` reference's live pre-pass centres the teacher's features in the precision they are
    computed in. `dynakd evaluate` scores in float32 unless told, and writes down when it is told."""
    from dynakd import runner

    dtypes: dict[str, set] = {}
    linear, active = torch.nn.functional.linear, []

    def spy(*args, **kw):
        out = linear(*args, **kw)
        if active:
            dtypes.setdefault(active[-1], set()).add(out.dtype)
        return out

    def watched(name, fn):
        def call(*args, **kw):
            active.append(name)
            try:
                return fn(*args, **kw)
            finally:
                active.pop()
        return call

    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    monkeypatch.setattr(runner, "_score", watched("scoring", runner._score))  # (a teacher's scoring, and evaluate's)
    monkeypatch.setenv("DYNAKD_CACHE", str(tmp_path / "cache"))  # (scored here, not read from another test's record)
    monkeypatch.setattr(runner, "live_dataset_mean", watched("mean", runner.live_dataset_mean))
    run(tiny_teacher, tmp_path / "run", "full", bf16=True, teacher_cache="off", dynamics={"reference": "dataset"})
    assert dtypes == {"scoring": {torch.bfloat16}, "mean": {torch.bfloat16}}

    dtypes.clear()
    assert main(["evaluate", "--model", str(tmp_path / "run"), "--no-progress", "--output", str(tmp_path / "e")]) == 0
    assert dtypes == {"scoring": {torch.float32}}
    dtypes.clear()
    assert main(["evaluate", "--model", str(tmp_path / "run"), "--no-progress", "--output", str(tmp_path / "b"),
                 "--bf16"]) == 0
    assert dtypes == {"scoring": {torch.bfloat16}}
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["mixed_precision"] == "bf16"
    assert "mixed_precision" not in json.loads((tmp_path / "e" / "metrics.json").read_text())


def test_each_micro_batch_draws_a_perturbation_of_its_own(tiny_teacher, tmp_path, monkeypatch):
    """Input sensitivity with gradient accumulation: the micro-batches of a step drew the same noise (one seed per
    step), and so did every process; now each draws its own, and the student and the teacher still share it. The
    first micro-batch of a step keeps the seed it always had, so a single-process run repeats earlier ones."""
    from dynakd import trainer

    seeds, perturb = [], trainer.perturbed_embeddings

    def spy(model, ids, std, seed, mask=None, **shared):
        seeds.append(seed)
        return perturb(model, ids, std, seed, mask, **shared)

    monkeypatch.setattr(trainer, "perturbed_embeddings", spy)
    run(tiny_teacher, tmp_path / "run", "full", gradient_accumulation_steps=2,
        dynamics={"components": ["relations", "sensitivity"]})
    pairs = list(zip(seeds[::2], seeds[1::2]))  # (student, teacher) per micro-batch
    assert all(s == t for s, t in pairs)
    drawn = [s for s, _ in pairs]  # 3 steps of 2 micro-batches, but for the epoch's end (3 batches an epoch)
    assert len(drawn) == 5 and len(set(drawn)) == 5
    assert {42 * 1_000_003 + step for step in range(3)} <= set(drawn)
