"""Body of the 2-process collectives test. Spawned workers import only torch and the two modules under test (by
file, not through the ``dynakd`` package, whose import of transformers would cost seconds per process)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.distributed as dist

SRC = Path(__file__).resolve().parents[2] / "src" / "dynakd"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def modules():
    """``(distributed, forms)``: from this checkout's sources, else from the installed package."""
    if (SRC / "distributed.py").is_file():
        return _load("dynakd_distributed", SRC / "distributed.py"), _load("dynakd_forms", SRC / "losses" / "forms.py")
    from dynakd import distributed
    from dynakd.losses import forms

    return distributed, forms


def gram_loss(forms, x: torch.Tensor) -> torch.Tensor:
    """A batch-level loss (cosine structure of all rows), like the dynamics forms."""
    return forms.direction(x, torch.ones(x.shape[0], dtype=torch.bool)).pow(2).mean()


def worker(rank: int, world: int, init_file: str) -> None:
    distributed, forms = modules()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        values = [torch.full((2, 3), float(rank)), torch.tensor(rank)]  # a projection's weights, a step count
        distributed.broadcast_from_first(values)
        assert torch.equal(values[0], torch.zeros(2, 3)) and values[1].item() == 0

        p = torch.nn.Parameter(torch.zeros(3))
        p.grad = torch.full((3,), float(rank))
        distributed.average_gradients([p])
        assert torch.equal(p.grad, torch.full((3,), 0.5))

        # the common value; the gradient each process passes back, averaged (a plan's part in the mean loss)
        cost = torch.tensor([1.0 + rank], requires_grad=True)
        synced = distributed.synced_cost(cost)
        (synced * (1.0 + 2 * rank)).sum().backward()
        assert synced.item() == 1.5 and cost.grad.item() == 2.0

        assert not distributed.all_true(torch.tensor(rank == 0))

        # Unequal batches (3 and 2 rows): the gathered rows are the global batch, and the gradient each process
        # gets, averaged over processes as DDP does, is the single-process gradient of the global loss.
        full = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
        mine = (full[:3] if rank == 0 else full[3:]).clone().requires_grad_(True)
        x, mask = distributed.gather_items(mine[None], torch.ones(1, len(mine), dtype=torch.bool), 1)
        assert mask.shape == (1, 6) and mask.sum() == 5
        rows = x[0][mask[0]]
        assert torch.equal(rows.detach(), full)
        gram_loss(forms, rows).backward()
        reference = full.clone().requires_grad_(True)
        gram_loss(forms, reference).backward()
        expected = reference.grad[:3] if rank == 0 else reference.grad[3:]
        torch.testing.assert_close(mine.grad / world, expected)

        # Every item valid (mask None): unequal batches get a mask of their padding; equal ones keep None, the forms'
        # mask-free path, with gradients as above.
        x, mask = distributed.gather_items(mine[None].detach(), None, 1)
        assert mask is not None and mask.shape == (1, 6) and mask.sum() == 5
        mine = full[2 * rank:2 * rank + 2].clone().requires_grad_(True)
        x, mask = distributed.gather_items(mine[None], None, 1)
        assert mask is None and torch.equal(x[0].detach(), full[:4])
        gram_loss(forms, x[0]).backward()
        reference = full[:4].clone().requires_grad_(True)
        gram_loss(forms, reference).backward()
        torch.testing.assert_close(mine.grad / world, reference.grad[2 * rank:2 * rank + 2])
    finally:
        dist.destroy_process_group()


def waiting_worker(rank: int, world: int, init_file: str, group_timeout_s: float, marker: str, slow: int = 0) -> None:
    """Process ``slow`` takes longer in ``first_process_first`` than the process group's timeout: process 0 (filling
    the cache) or another (filling its own machine's cache, one not shared); the others must wait for it (not fail)
    and must find what process 0 wrote."""
    import time
    from datetime import timedelta

    distributed, _ = modules()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=group_timeout_s))
    try:
        with distributed.first_process_first():
            if rank == slow:
                time.sleep(group_timeout_s + 2)
            if rank == 0:
                Path(marker).write_text("built")
            else:
                assert Path(marker).read_text() == "built"
        dist.barrier()  # the process group still works, with its own timeout
    finally:
        dist.destroy_process_group()
