"""FSDP2 (the student sharded over two gloo processes on CPU) gives the same run as one process with the same global
batch, saves a plain ``from_pretrained`` folder, and trains, checkpoints and resumes the distiller's own parameters.
DeepSpeed ZeRO-2 gives the same run too, where ``deepspeed`` is installed (it is not a dependency: skipped otherwise).

accelerate (1.15) enables FSDP only on accelerators: on CPU processes it keeps ``DistributedType.MULTI_CPU`` and drops
the FSDP plugin without a word, so ``accelerate launch --config_file examples/accelerate/fsdp.yaml`` on a machine
without GPUs trains with DDP. The launcher below (``FSDP_CLI``) switches accelerate's state to FSDP after it is built
(what accelerate does itself on GPUs) and records what the student became, so the test can check it was sharded.
Everything after that is accelerate's and the Trainer's FSDP2 code, unchanged: ``fully_shard`` per ``BertLayer`` and at
the root, sharded optimizer, FULL_STATE_DICT saving, FSDP checkpoints (``pytorch_model_fsdp.bin``, ``optimizer.bin``).

Tolerance against one process (method ``full``, ``dynamics.gather``, as ``test_distributed.py``): relative 1e-5 on
every logged loss and loss term, on the eval metrics and on the distiller's references and running plan; relative
5e-5 on the gradient norm (FSDP reduce-scatters the gradients and sums the squares of each process's shard, a
different order of sums than one process: measured 8e-6); 2e-6 absolute on the final weights (measured 4e-7).
Dropout is off and batches are random (``--no-group-by-length``), as in ``test_distributed.py``. DeepSpeed is held
to the same tolerances (measured: 1e-5 on the gradient norm, 4e-7 on the weights).

Method ``static`` with ``align.learned`` (projections and queries outside the student) is not compared with one process:
its hidden-state MSE is a mean over each process's own real tokens, so two processes differ from one (~1e-4) under DDP
as well; under FSDP it matched DDP to 1e-8 when measured. It is checked here to train, to checkpoint its optimizer state
(``dynakd_distiller_optimizer.pt``, written by DynaKD under FSDP2) and to resume from a checkpoint to the uninterrupted
run's weights and distiller state, bit-identical (as ``test_resume.py`` in one process).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from dynakd.cli import main

from ..conftest import make_tiny_bert
from .test_distributed import SETTINGS, assert_same_run

# What ``accelerate launch`` exports for examples/accelerate/fsdp.yaml (bf16 left out: CPU, and exact comparison).
# The layer class must be named: by default accelerate 1.15 shards BERT's ``_no_split_modules`` (BertEmbeddings and
# BertLayer), then the word embeddings inside BertEmbeddings once more, and fully_shard fails ("TypeError: Invariant
# encountered: value was None when it should not be").
FSDP_ENV = {
    "ACCELERATE_USE_FSDP": "true",
    "FSDP_VERSION": "2",
    "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
    "FSDP_TRANSFORMER_CLS_TO_WRAP": "BertLayer",
    "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT",
    "FSDP_CPU_RAM_EFFICIENT_LOADING": "true",
    "FSDP_OFFLOAD_PARAMS": "false",
    "FSDP_RESHARD_AFTER_FORWARD": "true",
}

# The CLI with accelerate's FSDP switched on for CPU processes; writes what the student is at its first training step.
FSDP_CLI = """
import json, os, sys
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor
from dynakd import trainer
from dynakd.cli import run

init = AcceleratorState.__init__
def fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs):
    init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin
AcceleratorState.__init__ = fsdp_on_cpu

compute_loss = trainer.DistillationTrainer.compute_loss
record = os.path.join(os.environ["FSDP_RECORD"], f"rank{os.environ['RANK']}.json")
def recording(self, model, *args, **kwargs):
    if model.training and not os.path.exists(record):
        params = list(model.parameters())
        with open(record, "w") as f:
            json.dump({"root": isinstance(model, FSDPModule), "type": type(model).__name__,
                       "units": [n for n, m in model.named_modules() if isinstance(m, FSDPModule)],
                       "dtensor": all(isinstance(p, DTensor) for p in params),
                       "local": sum(p.to_local().numel() for p in params if isinstance(p, DTensor)),
                       "full": sum(p.numel() for p in params)}, f)
    return compute_loss(self, model, *args, **kwargs)
trainer.DistillationTrainer.compute_loss = recording
run(sys.argv[1:])
"""

needs_gloo = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")


def fsdp_run(tmp_path: Path, args: list[str], out: Path) -> list[dict]:
    """``dynakd`` on two FSDP processes; returns what each process's student was at the first step."""
    script, record = tmp_path / "fsdp_cli.py", out.parent / f"{out.name}-record"
    script.write_text(FSDP_CLI)
    record.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **FSDP_ENV, "OMP_NUM_THREADS": "1", "FSDP_RECORD": str(record)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         *args, "--output", str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((record / f"rank{r}.json").read_text()) for r in range(2)]


def assert_sharded(records: list[dict], layers: int) -> None:
    for r in records:
        assert r["root"] and r["type"].startswith("FSDP") and r["dtensor"], r
        assert {"", *(f"bert.encoder.layer.{i}" for i in range(layers))} <= set(r["units"]), r  # the root, each layer
        assert r["local"] < 0.6 * r["full"], r  # each process holds about half of the student


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[list[str], Path]:
    """The command's arguments (without batch size and output) and its run on one process with batch 16."""
    root = tmp_path_factory.mktemp("fsdp-reference")
    teacher = make_tiny_bert(root / "teacher", dropout=0.0)
    args = ["distill", "--teacher", str(teacher), *SETTINGS]
    assert main([*args, "--batch-size", "16", "--output", str(root / "one")]) == 0
    return args, root / "one"


def assert_matches_one_process(two: Path, one: Path) -> None:
    """Same loss curve, eval metrics, distiller state and final weights; a plain ``from_pretrained`` folder."""
    from transformers import AutoModelForSequenceClassification

    assert_same_run(two, one, weights_atol=2e-6)  # the teacher is evaluated unsharded (EvalTrainer)

    # the saved student: whole (not sharded) weights under the model's own names, loadable without DynaKD
    w_two, w_one = load_file(two / "model.safetensors"), load_file(one / "model.safetensors")
    assert w_two.keys() == w_one.keys()
    model, info = AutoModelForSequenceClassification.from_pretrained(two, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched keys
    assert model.config.num_hidden_layers == 2
    for name, p in model.state_dict().items():
        torch.testing.assert_close(p, w_two[name], rtol=0, atol=0, msg=name)


@needs_gloo
def test_fsdp_two_processes_match_one_with_the_same_global_batch(tmp_path, reference):
    args, one = reference
    two = tmp_path / "two"
    assert_sharded(fsdp_run(tmp_path, [*args, "--batch-size", "8"], two), layers=2)
    assert (two / "checkpoint-4" / "pytorch_model_fsdp.bin").is_file()  # the Trainer's FSDP checkpoint
    assert_matches_one_process(two, one)


@needs_gloo
def test_deepspeed_zero2_two_processes_match_one_with_the_same_global_batch(tmp_path, reference):
    """``accelerate launch`` with examples/accelerate/deepspeed-zero2.yaml runs on CPU processes as it is (DeepSpeed
    picks its CPU accelerator and gloo); bf16 is switched off (``--mixed_precision no``) for the exact comparison."""
    pytest.importorskip("deepspeed", reason="DeepSpeed is not a dependency of DynaKD")
    args, one = reference
    two, config = tmp_path / "two", Path(__file__).parents[2] / "examples" / "accelerate" / "deepspeed-zero2.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes", "2",
         "--mixed_precision", "no", "-m", "dynakd.cli", *args, "--batch-size", "8", "--output", str(two)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (two / "checkpoint-4" / "global_step4").is_dir()  # DeepSpeed's own checkpoint: it did train the student
    assert_matches_one_process(two, one)


@needs_gloo
def test_fsdp_trains_checkpoints_and_resumes_the_distillers_parameters(tmp_path):
    teacher = make_tiny_bert(tmp_path / "teacher", dropout=0.0)
    args = ["distill", "--teacher", str(teacher), *SETTINGS, "--batch-size", "8", "--method", "static",
            "--align", "attention", "--set", "align.learned=true", "--save-steps", "2"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert_sharded(fsdp_run(tmp_path, args, full), layers=2)

    start = torch.load(full / "checkpoint-2" / "dynakd_distiller.pt")
    end = torch.load(full / "checkpoint-4" / "dynakd_distiller.pt")
    for key in ("projections.0.weight", "aligner.query"):
        assert not torch.equal(start[key], end[key]), key  # the distiller's parameters train
    adam = torch.load(full / "checkpoint-4" / "dynakd_distiller_optimizer.pt")
    assert len(adam["state"]) == sum(1 for k in end if k.startswith(("projections.", "aligner.query")))
    assert all(float(s["step"]) == 4 and s["exp_avg"].abs().sum() > 0 for s in adam["state"])
    assert adam["group"]["weight_decay"] == 0 and adam["group"]["lr"] == 0  # the schedule's end
    assert torch.load(full / "checkpoint-2" / "dynakd_distiller_optimizer.pt")["group"]["lr"] > 0

    # the same run resumed from checkpoint-2 (another output folder: --output does not tell runs apart)
    resumed.mkdir()
    shutil.copy(full / "dynakd.yaml", resumed)
    shutil.copytree(full / "checkpoint-2", resumed / "checkpoint-2")
    fsdp_run(tmp_path, args, resumed)
    assert json.loads((resumed / "metrics.json").read_text())["train"]["resumed_from"] == "checkpoint-2"
    w_full, w_resumed = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert w_resumed.keys() == w_full.keys()
    for key in w_full:
        assert torch.equal(w_resumed[key], w_full[key]), key
    state = torch.load(resumed / "checkpoint-4" / "dynakd_distiller.pt")
    for key in end:
        assert torch.equal(state[key], end[key]) if torch.is_tensor(end[key]) else state[key] == end[key], key
