"""Data-parallel consistency of the distiller's own state (no-ops in a single process).

The Trainer wraps only the student in DDP; the distiller is not a model the Trainer knows, so its learned
parameters, running buffers and batch statistics are kept consistent here with plain ``torch.distributed``
collectives (wrapping it in DDP would need its forward to run through the wrapper, and its buffers are updated by
running means rather than broadcast from rank 0).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import NoReturn

import torch
import torch.distributed as dist
from accelerate.utils import get_int_from_env

# What a launcher tells each process, before any process group exists: torchrun and accelerate set RANK, WORLD_SIZE
# and LOCAL_RANK; under mpirun (accelerate launch of several CPU processes) only MPI's own variables are set until
# accelerate starts, which reads them in this order (accelerate.utils.environment)
RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
LOCAL_RANK_VARS = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")


def process_rank() -> int:
    """This process's number in a launched run, or 0."""
    return get_int_from_env(RANK_VARS, 0)


def is_first_process() -> bool:
    """Process 0 of a launched run, or the only process: the one that prints notes and reports and pushes."""
    return process_rank() == 0


def note(text: str) -> None:
    """Say ``note: text`` (``notes.say``) from the first process alone: every process of a launched run comes to the
    same notes."""
    if is_first_process():
        from .notes import say  # (here: the collectives test loads this file alone, and says no note)

        say(text)


def is_first_on_machine() -> bool:
    """Process 0 of its machine, or the only process: the one that shows a machine's own work."""
    return get_int_from_env(LOCAL_RANK_VARS, 0) == 0


def launched_processes() -> int:
    """The processes a launcher started, or 1."""
    return get_int_from_env(SIZE_VARS, 1)


def check_one_gpu_per_process() -> None:
    """Refuse one process that sees several GPUs: the Trainer would split each batch over them with
    ``nn.DataParallel``, so the batch forms would compare a GPU's share of a batch, the records would say one process
    with ``--batch-size`` rows where each step took that many per GPU, and a resume could not tell."""
    from .errors import DynaKDError  # (here: the collectives test loads this file alone, outside the package)

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus > 1 and launched_processes() == 1:
        raise DynaKDError(f"this process sees {gpus} GPUs: launch one process per GPU (torchrun --nproc-per-node "
                          f"{gpus} -m dynakd.cli ..., or accelerate launch; README: Several GPUs and machines), or "
                          "choose one GPU with CUDA_VISIBLE_DEVICES=0")


FIRST_PROCESS_WAIT_S = 6 * 3600


@contextmanager
def first_process_first(timeout_s: float = FIRST_PROCESS_WAIT_S) -> Iterator[None]:
    """Run the body on process 0 first and then on the others, as the Trainer's ``main_process_first(local=False)``
    does, but with a wait of its own.

    Process 0 may fill a teacher cache for longer than the process group's timeout (transformers' 30 minutes), so
    the others wait at a barrier of a gloo group made for this wait, whose timeout is ``timeout_s``: every other
    collective keeps the group's timeout, and a real hang still fails in minutes, not hours. Written here because
    transformers and accelerate wait on the default group only. All then wait at that barrier once more, for the
    slowest body: other machines' first processes fill caches of their own (together, after process 0) when the
    machines share no cache folder, and process 0, gone on to the process group's collectives, failed after 30 minutes
    of it. A process that fails in the body leaves the others waiting until its exit breaks their barrier (gloo's
    error) or the launcher (torchrun, accelerate launch) stops them; its own message says why.
    """
    if world_size() == 1:
        yield
        return
    group = dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout_s))
    first = dist.get_rank() == 0
    if not first:
        dist.barrier(group=group)
    yield
    if first:
        dist.barrier(group=group)  # the others' turn
    dist.barrier(group=group)  # every body done
    dist.barrier()  # every process out of that barrier before any closes the group under another's feet
    dist.destroy_process_group(group)


def close_process_group() -> None:
    """Close the default process group at the end of a command that every process finished: NCCL asks for it, and a
    group that no other object holds stops its threads here (``end_process`` says why that matters). Not after an
    error: another process may still be in a collective, which closing would hang (torchtitan closes on success only,
    too). Written here because the Trainer leaves the group open (accelerate closes it in ``end_training`` only)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def end_process(code: int) -> NoReturn:
    """End this process with exit status ``code``; a process of a launched run without the interpreter's
    finalisation, once what finalisation does first is done: its threads (thread pools shut down, threads that are
    not daemons joined), its exit handlers (``atexit``: loggers, trackers, temporary folders) and a flush of its
    streams.

    Why: a gloo process group outlives ``destroy_process_group`` when other objects hold it (FSDP2's device meshes,
    kept by DTensor's caches), and so do its worker threads. A worker that finishes a collective drops its last
    reference to the work, whose tensors belong to Python objects; if the interpreter is finalising by then, taking
    the GIL ends the thread inside a C++ destructor, and the process aborts: "terminate called without an active
    exception", after a run that succeeded (seen in 1 of ~95 FSDP runs under load; core dump: the worker in
    ``~AsyncBarrierWork``, the main thread in ``Py_FinalizeEx``). Closing the group cannot stop threads another
    object keeps (``shutdown`` and ``abort`` leave gloo's running), and no public API drops DTensor's caches, so
    the process ends before finalisation, as pytorch/pytorch#179291 proposed doing for process groups at exit.
    One process (no launcher): ``sys.exit``, as ever. A script of one's own that trains under a launcher can end
    with it too."""
    if launched_processes() <= 1:
        sys.exit(code)
    import atexit
    import threading

    # (no public names for either: what finalisation runs first. threading._shutdown shuts thread pools down, which
    # concurrent.futures registers with it, then joins the threads that are not daemons; joining them by hand would
    # wait for ever on a pool's idle workers, such as inductor's compile pool)
    threading._shutdown()
    atexit._run_exitfuncs()  # (logging's flush among them)
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):  # (a closed stream or a broken pipe must not turn the exit into finalisation)
            stream.flush()
    with suppress(Exception):  # C's own buffers too (a library's printf: NCCL_DEBUG's lines), as exit() flushes them
        import ctypes

        ctypes.CDLL(None).fflush(None)
    os._exit(code)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` over processes (a new tensor, no gradient; ``t`` itself in a single process)."""
    if world_size() == 1:
        return t
    out = t.detach().clone()
    dist.all_reduce(out)
    return out


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """The average of ``t`` over processes."""
    return all_reduce_sum(t) / world_size()


def all_true(flag: torch.Tensor) -> bool:
    """True when ``flag`` (a bool scalar) is true on every process; one host sync."""
    if world_size() == 1:
        return bool(flag)
    out = flag.to(torch.int32).reshape(1)
    dist.all_reduce(out, op=dist.ReduceOp.MIN)
    return bool(out)


def broadcast_from_first(tensors) -> None:
    """Copy process 0's values of ``tensors`` to every process, in place. Every process must pass the same tensors in
    the same order."""
    if world_size() == 1:
        return
    for t in tensors:
        dist.broadcast(t.data, src=0)


def average_gradients(params) -> None:
    """Average ``.grad`` over processes (what DDP does for the student), in place. Every process must pass the same
    parameters in the same order."""
    if world_size() == 1:
        return
    for p in params:
        if p.grad is None:  # unused here but maybe not elsewhere: every process must join every all-reduce
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad.div_(world_size())


def synced_cost(cost: torch.Tensor) -> torch.Tensor:
    """``cost`` averaged over processes, so every process computes the same alignment plan (and so the same running
    plan). A plan that takes a gradient from its cost (OT's ``plan_grad``) passes each process's back
    averaged over processes: the gradient of the plan's part in the mean loss is ``J^T c_mean`` on every process,
    where each process's own ``J^T c`` missed it (4.4% off in a reviewer's two-process check)."""
    if world_size() == 1:
        return cost
    return _SyncedCost.apply(cost)


class _SyncedCost(torch.autograd.Function):
    """The mean over processes forward and backward (every process runs both: the plan is the same on all, and so is
    whether it takes a gradient)."""

    @staticmethod
    def forward(ctx, cost: torch.Tensor) -> torch.Tensor:
        return all_reduce_mean(cost.detach())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return all_reduce_mean(grad.contiguous())


def gather_items(
    x: torch.Tensor, mask: torch.Tensor | None, dim: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Concatenate ``x`` of every process along ``dim`` (the item axis of ``mask [G, N]``), process 0 first.

    Batches of unequal size are padded to the largest; the returned mask marks the padding invalid. A mask of None
    (every item valid) stays None where no process pads, so the forms keep their mask-free path (``losses.grams``).
    Gradients flow back to each process's own items (``_GatherWithGrad``).
    """
    if world_size() == 1:
        return x, mask
    n = torch.tensor([x.shape[dim]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    sizes = torch.cat(sizes).tolist()  # (the host needs them: the padding's shape)
    pad = max(sizes) - x.shape[dim]
    if mask is None and min(sizes) < max(sizes):  # (where no process pads, the mask stays None)
        mask = torch.ones(x.shape[dim - 1], x.shape[dim], dtype=torch.bool, device=x.device)
    if pad:
        shape = list(x.shape)
        shape[dim] = pad
        x = torch.cat([x, x.new_zeros(shape)], dim)
        mask = torch.cat([mask, mask.new_zeros(mask.shape[0], pad)], -1)
    parts = _GatherWithGrad.apply(x) if x.requires_grad else _plain_gather(x)
    if mask is None:
        return torch.cat(parts, dim), None
    masks = _plain_gather(mask.to(torch.uint8))
    return torch.cat(parts, dim), torch.cat(masks, -1).bool()


def _plain_gather(t: torch.Tensor) -> list[torch.Tensor]:
    parts = [torch.empty_like(t) for _ in range(world_size())]
    dist.all_gather(parts, t.contiguous())
    return parts


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums every process's gradient for this process's part. Written here because
    ``torch.distributed.nn.functional.all_gather`` is deprecated in favour of private functional collectives whose
    names change between torch releases."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(_plain_gather(x))

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        total = torch.stack(grads)
        dist.all_reduce(total)
        return total[dist.get_rank()]
