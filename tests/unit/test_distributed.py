"""The collectives that keep the distiller consistent across processes, on a 2-process gloo group."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dynakd import distributed

from .distributed_worker import waiting_worker, worker


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
def test_collectives_on_two_processes(tmp_path):
    """Averaged gradients, a plan cost shared by all processes, one failure flag for all, and a feature gather whose
    gradient, averaged as DDP does, equals the single-process gradient (see ``distributed_worker``)."""
    mp.spawn(worker, args=(2, str(tmp_path / "init")), nprocs=2, join=True)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
@pytest.mark.parametrize("slow", [0, 1])
def test_other_processes_wait_for_the_first_past_the_group_timeout(tmp_path, slow):
    """Process 0 filling a teacher cache may outlast the process group's timeout (30 minutes in a run, 4 s here):
    the others wait at a barrier of their own instead of failing (a barrier of the process group fails here), and
    the process group works on afterwards. So may another machine's first process, filling a cache folder that
    machine does not share: process 0 then waits for it at that barrier too (it went on to the process group's)."""
    marker = tmp_path / "cache"
    mp.spawn(waiting_worker, args=(2, str(tmp_path / "init"), 4.0, str(marker), slow), nprocs=2, join=True)
    assert marker.read_text() == "built"


def test_single_process_is_a_no_op():
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    assert distributed.world_size() == 1 and distributed.synced_cost(t) is t
    x, m = distributed.gather_items(t[None, :, None], torch.ones(1, 2, dtype=torch.bool), 1)
    assert x.shape == (1, 2, 1) and m.all()
    with distributed.first_process_first():  # no process group: the body runs, nothing waits
        pass


@pytest.mark.parametrize("prefix", ["OMPI_COMM_WORLD_", "PMI_", "MV2_COMM_WORLD_"])
def test_an_mpi_launch_is_known_before_accelerate_starts(monkeypatch, prefix):
    """mpirun (accelerate launch of several CPU processes) sets MPI's variables only; RANK and WORLD_SIZE come when
    accelerate starts, after the checks that count processes: a resume was refused as written by 2 processes, and
    a sweep ran whole in every process."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(prefix + "SIZE", "2")
    monkeypatch.setenv(prefix + "RANK", "1")
    assert distributed.launched_processes() == 2 and distributed.process_rank() == 1
    assert not distributed.is_first_process()


def test_a_command_of_one_process_is_refused_under_mpirun(monkeypatch, capsys):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    from dynakd.cli import main

    assert main(["report", "no-such-folder"]) == 2
    assert "dynakd: error: [rank 1] dynakd report runs in one process" in capsys.readouterr().err


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
@pytest.mark.parametrize("fails", [False, True])
def test_a_command_closes_its_process_group_when_every_process_finished(monkeypatch, fails):
    """A launched command closes the default group once every process finished (NCCL asks for it; see also
    ``end_process``). After an error it stays open: another process may still be in a collective, which closing
    would hang."""
    from dynakd import cli
    from dynakd.errors import DynaKDError

    def run(args):
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        if fails:
            raise DynaKDError("a failure of this process")

    monkeypatch.setattr(cli, "_run", run)
    try:
        assert cli.main(["report", "a-sweep"]) == (2 if fails else 0)
        assert dist.is_initialized() == fails
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch_env(launched: bool) -> dict[str, str]:
    """This environment without a launcher's process count, or with two processes (no group is made)."""
    env = {k: v for k, v in os.environ.items() if k not in distributed.SIZE_VARS}
    return {**env, "WORLD_SIZE": "2"} if launched else env


# A process that ends with distributed.end_process: exit handlers and a thread that must finish, and output left in
# the streams' buffers (no newline, not flushed).
ENDING = """
import atexit, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from dynakd.distributed import end_process

folder = Path(sys.argv[1])
atexit.register(lambda: (folder / "atexit").write_text("ran"))
threading.Thread(target=lambda: (time.sleep(0.5), (folder / "thread").write_text("done"))).start()
POOL = ThreadPoolExecutor(2)  # (idle workers that are not daemons, as inductor's compile pool keeps)
POOL.submit(lambda: (time.sleep(0.5), (folder / "pool").write_text("done")))
sys.stdout.write("buffered")
end_process(3)
"""


@pytest.mark.parametrize("launched", [False, True])
def test_a_process_ends_with_its_status_exit_handlers_threads_and_output(tmp_path, launched):
    """``end_process``: a process of a launched run ends without the interpreter's finalisation, where a gloo group
    that other objects keep alive could abort it (a gloo worker taking the GIL there: "terminate called without an
    active exception", after an FSDP run that succeeded). What finalisation does that matters still happens: the exit
    handlers run, threads that are not daemons finish, a thread pool's task finishes and its idle workers are shut
    down (joining them by hand waited for ever), buffered output comes out, and the status is the command's. One
    process (no launcher) exits as ever."""
    proc = subprocess.run([sys.executable, "-c", ENDING, str(tmp_path)], env=launch_env(launched),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "buffered"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == (tmp_path / "pool").read_text() == "done"


FAILING = """
import sys
from dynakd import cli

def fails(args):
    import dynakd.distributed  # (as a command's run loads it before any collective)
    raise RuntimeError("a collective failed")
cli._run = fails
cli.run(["report", "a-sweep"])
"""


@pytest.mark.parametrize("launched", [False, True])
def test_an_unexpected_error_ends_a_launched_process_too(launched):
    """An exception that ``main`` does not turn into a message (a collective's, an out-of-memory): with its traceback
    and status 1, through ``end_process`` in a launched run (finalisation is where gloo's worker can abort), raised as
    ever in one process."""
    proc = subprocess.run([sys.executable, "-c", FAILING], env=launch_env(launched), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" in proc.stderr and "RuntimeError: a collective failed" in proc.stderr


def test_help_ends_without_loading_torch():
    """``dynakd --help`` (and ``--version``, a usage error) end in argparse's exit before any process group, launched
    or not: ``run`` lets it through without loading torch to ask (a second where a twentieth did)."""
    code = "import sys\nfrom dynakd import cli\ntry:\n    cli.run(['--help'])\nexcept SystemExit as e:\n" \
           "    print(e.code, 'torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], env=launch_env(True), capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.splitlines()[-1] == "0 False", proc.stderr


def test_ddp_looks_for_unused_parameters_only_where_a_step_may_leave_some():
    """DDP was told to look for parameters no term reached at every step (the Trainer's default for a transformers
    model), and each process warned it had found none. It is told not to where a term that reads the logits weighs
    something at every step; it looks where none may (staged dynamics without a logit term: stage 1 leaves the head
    without a gradient, and DDP failed at the second step) or where the architecture never reads some parameters in
    classifying (XLNet's mask_emb)."""
    from types import SimpleNamespace

    from dynakd.config import build_config
    from dynakd.runner import find_unused

    assert find_unused(build_config({"method": "full"})) is False
    assert find_unused(build_config({"method": "kd", "staged": 0.5})) is False  # (the logit term throughout)
    assert find_unused(build_config({"method": "dynamics", "staged": 0.5})) is True
    assert find_unused(build_config({"method": "full", "task_weight": 0, "alpha": {"kind": "linear", "start": 1,
                                                                                    "end": 0}})) is True
    xlnet = SimpleNamespace(config=SimpleNamespace(model_type="xlnet"))
    assert find_unused(build_config({"method": "full"}), xlnet) is True
    assert find_unused(build_config({"method": "dynamics", "staged": 0.5, "ddp_find_unused_parameters": False})) \
        is False  # (as given)
