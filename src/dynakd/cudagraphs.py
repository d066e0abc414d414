"""The dynamics losses replayed from CUDA graphs (``cuda_graphs: true``, ``--cuda-graphs``), without torch.compile.

A small student's step on a large GPU is launch-bound: each kernel of the dynamics (~100 forward and ~150 backward,
of ~190 and ~220 operators, the rest views) costs a launch (~25 us on an H200), where their arithmetic takes
microseconds (benchmarks/speed/RESULTS.md). ``torch.cuda.make_graphed_callables`` records those operators once and
then replays them as two graphs a step, one forward and one backward, inside one autograd node.

Only the forms are recorded: pooling stays eager, so a graph's shapes are those of the pooled features ``[L+1, 1, B,
d]``, which the batch size alone decides, not the padded length; a run records one graph for its batch size and one
for a smaller last batch (token-level dynamics, whose shapes follow the padded length, are refused:
``config.checks``). torch.compile's CUDA graphs (``--torch-compile-mode reduce-overhead``) record the dynamics per
padded length instead, through inductor.

Eager instead, with the same result: off a CUDA device, without gradients (evaluation), and past ``MAX_GRAPHS``
shapes. Batches gathered from several processes (``dynamics.gather``) and padded (unequal batches) are recorded
with their mask as an input.

A recording's outputs live in its own buffers, which its next replay overwrites: each call's backward must run before
the next call of the same shape, as in a training step (``DistillationTrainer``, gradient accumulation included). A
custom loop that sums the losses of two calls before one backward must leave ``cuda_graphs`` off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .losses.dynamics import DynamicsOptions, Pooled, pooled_costs, unused

MAX_GRAPHS = 8  # each keeps its own inputs, outputs and memory pool; a run needs one or two


class GraphedDynamics:
    """``pooled_costs`` for ``opts``, replayed from a CUDA graph recorded per input shape."""

    def __init__(self, opts: DynamicsOptions):
        self.opts = opts
        self.graphs: dict[tuple, Callable] = {}

    def __call__(
        self,
        pooled: Pooled,
        anchors: Sequence[int] | torch.Tensor,
        refs: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        unused(pooled)  # (features an earlier call used up are refused, not recorded)
        if not self.applies(pooled) or not isinstance(anchors, torch.Tensor):
            return pooled_costs(pooled, self.opts, anchors, refs)
        ref_s, ref_t = refs if refs is not None else (None, None)
        args = (pooled.xs, pooled.xt, pooled.gmask, anchors, ref_s, ref_t, pooled.xs_p, pooled.xt_p)
        given = tuple(a is not None for a in args)
        tensors = tuple(a for a in args if a is not None)
        key = (given, *((tuple(t.shape), t.dtype, t.device, t.requires_grad) for t in tensors))
        graphed = self.graphs.get(key)
        if graphed is None:
            if len(self.graphs) >= MAX_GRAPHS:
                return pooled_costs(pooled, self.opts, anchors, refs)
            graphed = self.graphs[key] = self._record(given, tensors)
        return graphed(*tensors)

    @staticmethod
    def applies(pooled: Pooled) -> bool:
        """Whether these features can be replayed: on CUDA, training (the student side takes gradients)."""
        return pooled.xs.is_cuda and torch.is_grad_enabled() and pooled.xs.requires_grad

    def _record(self, given: tuple[bool, ...], tensors: tuple[torch.Tensor, ...]) -> Callable:
        opts = self.opts

        def costs(*flat: torch.Tensor) -> dict[str, torch.Tensor]:
            it = iter(flat)
            xs, xt, gmask, anchors, ref_s, ref_t, xs_p, xt_p = (next(it) if g else None for g in given)
            refs = None if ref_s is None else (ref_s, ref_t)
            return pooled_costs(Pooled(xs, xt, gmask, xs_p, xt_p), opts, anchors, refs)

        # Samples of the same shapes and gradient flags: make_graphed_callables runs them a few times while warming up.
        samples = tuple(t.detach().clone().requires_grad_(t.requires_grad) for t in tensors)
        return torch.cuda.make_graphed_callables(costs, samples)
