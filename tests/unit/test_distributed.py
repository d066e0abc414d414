"""The collectives that keep the distiller consistent across processes, on a 2-process gloo group."""

from __future__ import annotations

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
def test_other_processes_wait_for_the_first_past_the_group_timeout(tmp_path):
    """Process 0 filling a teacher cache may outlast the process group's timeout (30 minutes in a run, 4 s here):
    the others wait at a barrier of their own instead of failing (a barrier of the process group fails here), and
    the process group works on afterwards."""
    marker = tmp_path / "cache"
    mp.spawn(waiting_worker, args=(2, str(tmp_path / "init"), 4.0, str(marker)), nprocs=2, join=True)
    assert marker.read_text() == "built"


def test_single_process_is_a_no_op():
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    assert distributed.world_size() == 1 and distributed.synced_cost(t) is t
    x, m = distributed.gather_items(t[None, :, None], torch.ones(1, 2, dtype=torch.bool), 1)
    assert x.shape == (1, 2, 1) and m.all()
    with distributed.first_process_first():  # no process group: the body runs, nothing waits
        pass
