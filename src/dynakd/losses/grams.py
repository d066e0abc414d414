"""The deviation, layer-change and relations costs from Gram matrices: the path ``pooled_costs`` takes, with or
without a mask (pooled features: one group of samples; token-level dynamics: one group per window, its tokens the
items; a gather's padding: masked items).

``dynamics.vector_costs`` builds each form from feature vectors, as method.md defines them. The same forms follow
from inner products between the items of a group, in about as many operators, but smaller ones that allocate less:

- deviation: the Gram ``G`` of the deviations gives the direction form, ``G_ij / (|d_i| |d_j|)``;
- relations: the distances come from the Gram of the centred features (the deviations' with the batch reference),
  ``|x_i - x_j|^2 = G_ii + G_jj - 2 G_ij``, without ``cdist``;
- layer change, teacher side: the change ``x_l - x_a`` from the anchor ``a`` of each student step to every teacher
  layer ``l`` has the centred Gram ``G_ll + G_aa - G_la - G_al`` (the direction form: its diagonal gives the
  norms), and the magnitude form's uncentred norms come from each item's inner products between its own layers;
  the ``[Ls, Lt, G, N, d]`` changes are never built. On pooled features, allocating them cost more than their
  arithmetic on a 2-core CPU; on token groups they were the largest tensors of a step (benchmarks/speed/RESULTS.md).
  Those sums keep the rounding of their terms, so a change below it counts as none: a repeated layer or a layer's
  change to itself, which the change vectors give as 0, and any change under ``_above_rounding``'s cut-off (~0.6% of
  the features' size at width 384, ~1% at 4096; MiniLM-L6's pooled features change by 56-74% of their centred size
  between neighbouring layers). The teacher's forms are built in place, under ``no_grad``;
- the deviation's and relations' forms are width-free past the Grams, so where they are small (``JOINT_BYTES``:
  pooled features) both models' are computed at once, one operator for the two. The teacher's rows take no gradient
  of their own, but the backward of those shared operators runs over them too (with zeros): a trade against the
  forward operators saved. Larger ones (token groups), and the layer change's ``[Ls, Lt, ...]`` forms always, keep the
  teacher's apart, under ``no_grad``: they would ride through the backward at their size;
- under ``mse`` the deviation's two forms are compared as one vector (each scaled by its count of cells), one
  comparison instead of two.

Token groups' costs may wait for the aligner's plan (``plan_first``, ``planfirst.py``): compared under it, their
backward keeps the teacher's forms summed under the plan, not every layer pair's.

Masked items are zero in every Gram and form, and the counts of cells are the valid ones (``forms.cell_counts``).
The costs are those of ``vector_costs`` to rounding, gradients too (``tests/unit/test_unmasked_forms.py``). Only
shapes and options decide the operators (no host sync), as ``cudagraphs`` needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch.autograd.function import once_differentiable

from . import forms as F
from .planfirst import PlanFirst, Windowed, cost_value, plan_loss

# Squared distances below this count as this, so the square root's gradient stays finite: distances under 1e-6 (the
# diagonal, identical samples) read as 1e-6. ``cdist`` returns 0 there; the difference is below float32's rounding.
TINY = 1e-12

# Both models' deviation and relations forms are computed in one tensor where the teacher's Grams take at most this
# (pooled features: 48 KiB for 12 layers and 32 samples), one operator for the two, which a step of small operators
# is bound by; larger ones (token groups, gathers of many processes) keep the teacher's apart, under no_grad, where
# its rows do not ride through the backward (8 windows of 384 tokens: 0.52-0.59x the peak of those two components).
# Under torch.compile always apart: inductor fuses the operators, and a choice by size would guard on the shapes.
JOINT_BYTES = 2**20

# The teacher's layer-change forms are built at most about this many bytes of change Grams at a time (one student
# step at least): pooled features take one chunk, token groups several, which bounds the temporaries of building them
# (~3x a chunk); what the backward keeps of each chunk stays (a 12-layer teacher, 32 windows of 384 tokens: 216 MiB a
# student step). Chunks of 4 MiB rather than 64 lowered the peak of token-level costs by 27% at 8 windows of 128
# tokens and by a third at 4 of 256, for ~25 operators a chunk (benchmarks/speed/RESULTS.md). Under torch.compile
# one chunk: a count from the shapes would recompile for each new one.
CHUNK_BYTES = 4 * 2**20

# The windows' MiB where ``window_mib`` is unset, by the features' device. On a 2-core CPU, a SQuAD epoch (MiniLM-L6
# -> 2 layers, 32 windows of up to 384 tokens) took 1.30-1.35x `kd`'s time in windows of 32 MiB against 1.69x all at
# once, and peaked at 1.10x `kd`'s memory instead of 1.46x: the host's allocator hands each fresh tensor past 32 MiB
# new pages, and their faults cost more than the windows' second pass (benchmarks/speed/RESULTS.md, 2026-12-06). On a
# GPU each window is ~1,000 operators, launches, and the caching allocator faults no pages: all at once until measured
# there.
WINDOW_MIB = {"cpu": 32.0}


def gram_costs(
    xs: torch.Tensor,
    xt: torch.Tensor | list[torch.Tensor],
    gmask: torch.Tensor | None,
    opts,
    anchors: Sequence[int] | torch.Tensor,
    refs: tuple[torch.Tensor, torch.Tensor] | None = None,
    scratch: bool = False,
    plan_first: bool = False,
    whole: tuple[dict, torch.Tensor | int] | None = None,
    weights: torch.Tensor | None = None,
    values: bool = False,
    ahead: tuple[torch.Tensor, dict[str, float]] | None = None,
) -> dict[str, torch.Tensor | PlanFirst]:
    """Cost matrices ``[Ls, Lt]`` of the deviation, layer-change and relations components in ``opts`` (those it
    enables) from features ``xs [Ls+1, G, N, ds]`` (with gradients) and ``xt [Lt+1, G, N, dt]`` with the group mask
    ``gmask [G, N]`` (None: every item valid). ``anchors``, ``refs``: as ``pooled_costs``. The relations' angle form
    is left to the caller. ``scratch``: ``xt`` was made for these costs alone and may be overwritten: where no
    reference is given and it is laid out groups first (``pool_features``'s token features), it is centred in place,
    not in a copy (``Pooled.teacher_scratch``); given in a one-element list, which this function empties, they are let
    go once the Grams and the layer change are made of them. ``plan_first``: where the teacher's Grams pass
    ``JOINT_BYTES`` (token groups; not under torch.compile), costs that wait for the plan (``PlanFirst``), a smaller
    backward; with it, under ``mse``, where the forms of all groups pass the windows' MiB (``window_budget``), costs
    computed a few groups at a time (``windowed_costs``). ``whole``: the cell and pair counts of a whole batch of
    which these features are some groups (``_counts``; ``windowed_costs``'s chunks). ``weights``: with
    ``plan_first``, the plan's weights ``W = P / Ls`` known ahead (``windowed_costs``'s backward): the teacher's forms
    are summed under them as they are built, and the costs' values are computed with ``values`` (else zeros: only
    their gradient is wanted). ``ahead``: the plan known before the costs and the components' weights relative to
    each other in the loss (``pooled_costs``): costs in windows take their values and gradient in one pass
    (``windowed_costs``)."""
    if isinstance(xt, list):
        xt = xt.pop()
    ref_s, ref_t = refs if refs is not None else (None, None)
    ls, large = xs.shape[0] - 1, _large(xt)
    plan_first = plan_first and large and not torch.compiler.is_compiling()
    ahead = ahead if plan_first and torch.is_grad_enabled() and xs.requires_grad else None  # (no gradient: one pass)
    if plan_first and opts.distance == "mse" and (per := window_groups(xs, xt, opts, ahead is not None)) < xs.shape[1]:
        return windowed_costs(xs, xt, gmask, opts, anchors, refs, per, ahead)
    cells, pairs = whole if whole is not None else _counts(gmask, xs, opts)
    student = _student_grams(xs, gmask, ref_s, opts)
    with torch.no_grad():
        teacher = _teacher_grams(xt, gmask, ref_t, opts, anchors, scratch)
    del xt  # (features the caller let go, in place: the layer change holds them while it needs them)
    costs = {}
    if "layer_change" in opts.components:  # (first: what the teacher's change is built from goes before the rest)
        forms = _shape_forms(student.pop("change_gram", None), student.pop("change_norms", None),
                             student.pop("change_size", None), gmask, opts)
        counts = [cells[f] for f in _forms(opts)]
        costs["layer_change"] = _change_costs(forms, teacher, counts, opts.distance, plan_first, weights, values)
    counts = {"deviation": [cells[f] for f in _forms(opts)]}
    if "relations" in opts.components:
        counts["relations"] = [pairs]
    if large:  # the teacher's forms apart, under no_grad: they do not ride through the backward
        with torch.no_grad():
            forms_t = _other_forms(teacher, gmask, opts)
        teacher.clear()  # its Grams, before the student's forms are made
        for k, forms in _other_forms(student, gmask, opts).items():
            costs[k] = _compare(forms, counts[k], ls, opts.distance, forms_t.pop(k), plan_first, weights, values)
    else:  # both models' forms in one tensor, the student's rows first: [Ls + Lt, ...], one operator for the two
        both = {k: torch.cat([student[k], teacher.pop(k)]) for k in list(teacher)}
        for k, forms in _other_forms(both, gmask, opts).items():
            costs[k] = _compare(forms, counts[k], ls, opts.distance)
    return {k: costs[k] for k in ("deviation", "layer_change", "relations") if k in costs}  # (the components' order)


def _counts(gmask: torch.Tensor | None, xs: torch.Tensor, opts) -> tuple[dict, torch.Tensor | int | None]:
    """The valid cells of the shape forms (``F.cell_counts``) and the relations' valid pairs (``F.pair_count``; None
    without relations) of features ``xs [L+1, G, N, d]``."""
    pairs = F.pair_count(gmask, xs, opts.relation_pairs) if "relations" in opts.components else None
    return F.cell_counts(gmask, xs), pairs


def window_groups(xs: torch.Tensor, xt: torch.Tensor, opts, once: bool = False) -> int:
    """How many groups (windows) a chunk of ``windowed_costs`` takes: as many as keep the forms of both models in a
    chunk to about the windows' MiB (``window_budget``; one at least). Every group (no windows) where that is 0, or
    where windows would save less than they keep: the teacher's features ``xt``, held to the backward (else let go
    once their Grams are made), against the forms of the other chunks (8 windows of 128 tokens, 4 x 12 layers of
    width 768: the forms of a window are about the size of its teacher's features, and windows of 32 MiB peaked at
    1.18x all at once; benchmarks/speed/RESULTS.md); where they take one pass (``once``: a plan known ahead), the
    teacher's features are not held, and windows always save. A group's forms, ``N x N`` each: the teacher's layer
    change ``Ls x Lt``, its deviation and relations ``Lt`` each, the student's ``Ls`` each for the three (from the
    shapes: no operator)."""
    budget, g = window_budget(opts, xs), xs.shape[1]
    if not budget:
        return g
    ls, lt, n = xs.shape[0] - 1, xt.shape[0] - 1, xs.shape[2]
    forms = sum((ls * lt + ls if c == "layer_change" else lt + ls) for c in opts.components
                if c in ("deviation", "layer_change", "relations")) * n * n * xs.element_size()  # bytes a group
    per = max(1, int(budget * 2**20) // max(forms, 1))
    saved = (g - min(per, g)) * forms  # the forms of every chunk but one
    return per if once or saved > xt.numel() * xt.element_size() else g


def window_budget(opts, where: torch.Tensor | torch.device | str) -> float:
    """``opts.window_mib``, or where it is None the default of the device (``WINDOW_MIB``; 0 elsewhere) of ``where``,
    features or a device."""
    if opts.window_mib is not None:
        return opts.window_mib
    return WINDOW_MIB.get(torch.device(getattr(where, "device", where)).type, 0.0)


def windowed_costs(xs: torch.Tensor, xt: torch.Tensor, gmask: torch.Tensor | None, opts,
                   anchors: Sequence[int] | torch.Tensor, refs: tuple[torch.Tensor, torch.Tensor] | None,
                   per: int, ahead: tuple[torch.Tensor, dict[str, float]] | None = None) -> dict[str, Windowed]:
    """``gram_costs`` under ``plan_first`` and ``mse``, ``per`` groups at a time: no chunk's forms outlive it.

    Every form is a group's own (centred, normalised over its items) and an ``mse`` cost is a sum over cells over
    the batch's count of valid cells, so the costs are the sums of the chunks' costs over the whole batch's counts.
    The forward computes the values alone, chunk by chunk without gradient. The backward (``_Deferred``) computes
    each chunk's forms again, the student's with gradient, and their gradient to the student's features of the chunk
    under the plan, every component's weighed as the loss weighs it. So the dynamics hold one chunk's forms at a
    time, whatever the number of windows, for about twice their forward: the teacher's features ``xt`` are kept,
    not centred in place, until the backward. ``refs`` take no gradient here (the distiller's running references
    take none).

    With the plan known before the costs (``ahead``: a fixed map, a plan held from an earlier batch), one pass
    computes both, chunk by chunk: the values, and the gradient to the student's features of the components' plan
    losses weighed as ``ahead`` says relative to each other (``Windows.once``). The teacher's features then go with
    the pass, and the backward scales that gradient (``_Ahead``): a pass fewer over the forms, the teacher's the
    larger part (~40% of their time at 32 windows of 384 tokens, 6 teacher layers: benchmarks/speed/RESULTS.md)."""
    whole = _counts(gmask, xs, opts)
    parts = [slice(start, start + per) for start in range(0, xs.shape[1], per)]
    refs = None if refs is None else (refs[0].detach(), refs[1])
    windows = Windows(gmask, opts, anchors, refs, parts, whole)
    if ahead is not None:
        return windows.once(xs, xt, *ahead)
    values: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for part in parts:
            for k, c in windows.costs(xs[:, part].detach(), xt, part, plan_first=False).items():
                values[k] = c if k not in values else values[k] + c
    windows.names = list(values)
    terms = _Deferred.apply(xs, xt, windows)  # (one node for every component: its backward makes one pass)
    return {k: Windowed(v, terms[i], windows) for i, (k, v) in enumerate(values.items())}


class Windows:
    """How ``windowed_costs`` cuts a batch (the chunks of groups, the whole batch's counts), and the plan, which
    ``Windowed.surrogate`` gives (``take_plan``). The features travel apart, saved by the backward's node, which lets
    them go once it has run."""

    def __init__(self, gmask, opts, anchors, refs, parts: list[slice], whole):
        self.gmask, self.opts, self.anchors, self.refs = gmask, opts, anchors, refs
        self.parts, self.whole, self.names = parts, whole, []
        self.plan: torch.Tensor | None = None  # (the plan given, whose detached copy the backward reads)
        self.ahead = False  # (whether the plan came before the costs: their gradient is taken under it already)

    def costs(self, xs: torch.Tensor, xt: torch.Tensor, part: slice, plan_first: bool,
              weights: torch.Tensor | None = None, values: bool = False) -> dict:
        """One chunk's costs (``xs``: the chunk's; ``xt``: the whole batch's) over the whole batch's counts;
        ``weights``, ``values``: as ``gram_costs``'s."""
        gmask = None if self.gmask is None else self.gmask[part]
        return gram_costs(xs, xt[:, part], gmask, self.opts, self.anchors, self.refs, plan_first=plan_first,
                          whole=self.whole, weights=weights, values=values)

    def once(self, xs: torch.Tensor, xt: torch.Tensor, plan: torch.Tensor,
             relative: dict[str, float]) -> dict[str, Windowed]:
        """``windowed_costs`` under a plan known ahead: each chunk's values and, in the same pass, the gradient to the
        chunk's features of ``sum_k relative[k] plan_loss(plan, cost_k)``, kept whole for the backward (``_Ahead``),
        which scales it by the loss's weight of the components."""
        self.plan, self.ahead = plan, True
        grad, values = self._pass(xs, xt, relative, values=True)
        self.names = list(values)
        terms = _Ahead.apply(xs, grad, [relative.get(k, 1.0) for k in self.names])
        return {k: Windowed(v, terms[i], self) for i, (k, v) in enumerate(values.items())}

    def take_plan(self, plan: torch.Tensor) -> None:
        """The plan every component's gradient is taken under: one for all (the gradients are one pass)."""
        if self.plan is None:
            self.plan = plan
        elif plan is not self.plan and not _same_values(plan, self.plan):  # (an equal copy is the same plan)
            if self.ahead:
                raise ValueError("these windowed costs (dynamics.window_mib) took their gradient under the plan "
                                 "given as ahead=, in the same pass: weigh them under that plan, or compute the "
                                 "costs again with the other plan (or without ahead)")
            raise ValueError("windowed costs (dynamics.window_mib) take one plan for all their components: compute "
                             "the costs again for another plan")

    def gradient(self, xs: torch.Tensor, xt: torch.Tensor, weights: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """The gradient to ``xs`` of ``sum_k weights[k] plan_loss(plan, cost_k)`` (the student's side), chunk by
        chunk; a weight of None (a term the loss left out) leaves its component out."""
        if self.plan is None or all(w is None for w in weights):  # (nothing weighed under a plan: no gradient)
            return torch.zeros_like(xs)
        return self._pass(xs, xt, dict(zip(self.names, weights)))[0]

    def _pass(self, xs: torch.Tensor, xt: torch.Tensor, weights: dict,
              values: bool = False) -> tuple[torch.Tensor, dict]:
        """One pass over the chunks under the plan: the gradient to ``xs`` of ``sum_k weights[k] plan_loss(plan,
        cost_k)`` (a weight of None or 0, or a component without forms, left out; 1 where not given) and, with
        ``values``, the costs' values (without gradient), summed over the chunks."""
        grad, out = torch.zeros_like(xs), {}
        plan = self.plan.detach()
        known = plan / plan.shape[0]  # W = P / Ls, as PlanFirst.surrogate weighs
        # float32 forms, as the distiller's forward computes them, whatever autocast the backward is called under
        with torch.autocast(xs.device.type, enabled=False):
            for part in self.parts:
                x = xs[:, part].detach().requires_grad_()
                with torch.enable_grad():
                    # (a chunk whose teacher's Grams pass no JOINT_BYTES gets tensor costs, with their graph to x)
                    costs = self.costs(x, xt, part, plan_first=True, weights=known, values=values)
                    for k, c in costs.items() if values else ():
                        v = cost_value(c).detach()
                        out[k] = v if k not in out else out[k] + v
                    terms = [w * plan_loss(plan, c) for k, c in costs.items()
                             if _weighs(w := weights.get(k, 1.0)) and isinstance(c, (torch.Tensor, PlanFirst))]
                    if not terms:  # (no form: a cost of 0.0)
                        continue
                    (g,) = torch.autograd.grad(sum(terms[1:], terms[0]), x, allow_unused=True)
                if g is not None:
                    grad[:, part] = g
        return grad, out


def _weighs(w: torch.Tensor | float | None) -> bool:
    """Whether a component's weight leaves it in the loss: not None (left out), not a number 0."""
    return w is not None and not (isinstance(w, (int, float)) and w == 0)


class _Deferred(torch.autograd.Function):
    """A zero per component of ``Windows``, whose backward gives the student's features ``xs`` the gradient of the
    components' plan losses, each weighed by its output's gradient (``Windows.gradient``; an output the loss left out
    gets none, and its component is not computed). Written by hand: autograd would keep every chunk's forms from the
    forward to the backward, which is what windows are for. Both models' features are saved for the backward, which
    lets them go once it has run."""

    @staticmethod
    def forward(ctx, xs: torch.Tensor, xt: torch.Tensor, windows: Windows) -> tuple[torch.Tensor, ...]:
        ctx.windows = windows
        ctx.save_for_backward(xs, xt)
        ctx.set_materialize_grads(False)
        return tuple(xs.new_zeros(()) for _ in windows.names)

    @staticmethod
    @once_differentiable
    def backward(ctx, *weights: torch.Tensor | None):
        xs, xt = ctx.saved_tensors
        return ctx.windows.gradient(xs, xt, weights), None, None


class _Ahead(torch.autograd.Function):
    """A zero per component of ``Windows.once``, whose backward gives the student's features ``xs`` the gradient
    computed with the values, ``grad`` (the components weighed by ``relative``), scaled by the loss's weight of the
    components: each output's gradient must be one factor times its relative weight (the distiller's loss: the
    feature term's weight, any scaling after), which is checked. Written by hand for the reason ``_Deferred`` is."""

    @staticmethod
    def forward(ctx, xs: torch.Tensor, grad: torch.Tensor, relative: list[float]) -> tuple[torch.Tensor, ...]:
        ctx.relative = relative
        ctx.save_for_backward(grad)  # (let go once the backward has run, unless it is to run again)
        ctx.set_materialize_grads(False)
        return tuple(xs.new_zeros(()) for _ in relative)

    @staticmethod
    @once_differentiable
    def backward(ctx, *weights: torch.Tensor | None):
        (grad,) = ctx.saved_tensors
        scale = _common_scale(weights, ctx.relative)
        return (None if scale is None else grad * scale), None, None


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` hold the same values, NaN where NaN is (``torch.equal`` calls a plan with NaN another
    plan than its copy), compared in the wider dtype (a rounded copy is another plan; one host sync)."""
    if a.shape != b.shape:
        return False
    wide = torch.promote_types(a.dtype, b.dtype)
    return torch.allclose(a.to(wide), b.to(wide), rtol=0.0, atol=0.0, equal_nan=True)


def _common_scale(weights: Sequence[torch.Tensor | None], relative: list[float]) -> torch.Tensor | None:
    """The factor ``s`` with ``weights[k] = s relative[k]`` for every component (an output the loss left out: a weight
    of None, as 0); None where every weight is None. Refused where there is none: the gradient was taken ahead for
    those relative weights."""
    if all(w is None for w in weights):
        return None
    some = next(w for w in weights if w is not None)
    given = torch.stack([some.new_zeros(()) if w is None else w for w in weights]).float()
    rel = torch.tensor(relative, dtype=given.dtype, device=given.device)
    first = next((i for i, r in enumerate(relative) if r), None)
    scale = given.new_zeros(()) if first is None else given[first] / relative[first]
    if not torch.allclose(given, scale * rel, rtol=1e-4, atol=0.0):  # (one host sync a step)
        raise ValueError(f"these windowed costs took their gradient with the plan known ahead, for components weighed "
                         f"{relative} relative to each other, but the loss weighed them {given.tolist()}: weigh "
                         "them so, or compute the costs without ahead (pooled_costs) to weigh them freely (a "
                         "Distiller's terms: back-propagate its loss, or set dynamics.window_mib 0 to weigh its "
                         "dyn/* terms your own way)")
    return scale


def _large(xt: torch.Tensor) -> bool:
    """Whether the teacher's Grams ``[Lt, G, N, N]`` pass ``JOINT_BYTES``."""
    return torch.compiler.is_compiling() or _gram_bytes(xt) > JOINT_BYTES


def _gram_bytes(x: torch.Tensor) -> int:
    """The bytes of the Grams ``[L, G, N, N]`` of features ``x [L+1, G, N, d]``: a teacher's, or one student step's
    changes to every teacher layer."""
    return (x.shape[0] - 1) * x.shape[1] * x.shape[2] ** 2 * x.element_size()


def _other_forms(grams: dict, gmask: torch.Tensor | None, opts) -> dict[str, list[torch.Tensor]]:
    """The deviation's and the relations' forms from their Grams (one model's, or both models' joined)."""
    out = {}
    if "deviation" in opts.components:
        out["deviation"] = _shape_forms(grams["dev_gram"], grams["dev_norms"], None, gmask, opts)
    if "relations" in opts.components:
        out["relations"] = [_distances(grams.get("centred_gram", grams.get("dev_gram")), gmask, opts)]
    return out


def _change_costs(forms: list[torch.Tensor], teacher: dict, counts: list, distance: str,
                  plan_first: bool = False, weights: torch.Tensor | None = None,
                  values: bool = False) -> torch.Tensor | PlanFirst:
    """The layer change's cost ``[Ls, Lt]`` from the student's forms and the teacher's (``teacher["change"]``, taken
    out of ``teacher``: this function holds the one reference), built a few student steps at a time
    (``TeacherChange.steps``): each step's row depends on its own forms alone. ``plan_first``: a ``PlanFirst`` cost,
    its values under ``no_grad``; the teacher's forms are kept for the plan to sum (where the tensor costs keep the
    differences from the student's, the same size, for the backward); with the plan's ``weights`` known, summed as
    each chunk is built, and the values with ``values`` (``gram_costs``)."""
    change: TeacherChange | None = teacher.pop("change")
    if not forms:
        return 0.0  # (no form on: as forms.py's path)
    ls, step = forms[0].shape[0], change.steps
    parts = [slice(None)] if step >= ls else [slice(start, start + step) for start in range(0, ls, step)]
    known = plan_first and weights is not None  # (the plan known: each chunk's forms summed now, and gone)
    rows, kept = [], []
    for i, part in enumerate(parts):
        with torch.no_grad():
            built = change.forms(part)
        if i == len(parts) - 1:
            change = None  # (the last chunk built: what it was built from goes before the costs)
        if values or not known:
            with torch.no_grad() if plan_first else contextlib.nullcontext():
                terms = [F.paired_costs(f if len(parts) == 1 else f[part], t, c, distance=distance)
                         for f, t, c in zip(forms, built, counts)]
            rows.append(sum(terms[1:], terms[0]))
        if plan_first:
            with torch.no_grad():
                kept.append([F.weighed(weights[part], t, distance, paired=True) for t in built] if known else built)
    cost = (rows[0] if len(rows) == 1 else torch.cat(rows)) if rows else None
    if known:
        return _summed_cost(weights, forms, counts, distance, [torch.cat(rows) for rows in zip(*kept)], cost)
    if not plan_first:
        return cost

    def weigh(weights: torch.Tensor) -> list[torch.Tensor]:
        summed = []
        for j, part in enumerate(parts):  # (each chunk's forms go once summed)
            summed.append([F.weighed(weights[part], t, distance, paired=True) for t in kept[j]])
            kept[j] = None
        return [torch.cat(rows) for rows in zip(*summed)]

    return PlanFirst(cost, forms, counts, distance, weigh)


def _summed_cost(weights: torch.Tensor, forms: list[torch.Tensor], counts: list, distance: str,
                 summed: list[torch.Tensor], value: torch.Tensor | None = None) -> PlanFirst:
    """A ``PlanFirst`` cost whose teacher's forms were summed under the plan's ``weights``, known ahead
    (``gram_costs``): its ``value`` where computed, else zeros (only its gradient is wanted)."""
    return PlanFirst(weights.new_zeros(weights.shape) if value is None else value, forms, counts, distance,
                     lambda _: summed)


def _forms(opts) -> list[str]:
    """The shape forms on, in the order they are built and compared."""
    return [f for f in ("direction", "magnitude") if f in opts.forms]


def _student_grams(x: torch.Tensor, gmask: torch.Tensor | None, ref: torch.Tensor | None, opts) -> dict:
    """What the student's forms are made of (as ``_teacher_grams`` lists), its changes built: they are small."""
    centred = F.masked_center(x, gmask)  # every layer: the deviations (batch reference) and the centred changes
    out = _deviation_gram(x, centred[1:], _gram(centred[1:], ref, opts), gmask, ref, opts)
    if "layer_change" in opts.components:
        if "direction" in opts.forms:
            change = centred[1:] - centred[:-1]  # the centred change of each step
            out["change_gram"], out["change_norms"] = _grams(change), change.norm(dim=-1)
        if "magnitude" in opts.forms:
            size = (x[1:] - x[:-1]).norm(dim=-1) / x[:-1].norm(dim=-1).clamp_min(F.EPS)
            out["change_size"] = size if gmask is None else size * gmask
    return out


def _teacher_grams(
    x: torch.Tensor,
    gmask: torch.Tensor | None,
    ref: torch.Tensor | None,
    opts,
    anchors: Sequence[int] | torch.Tensor,
    scratch: bool = False,
) -> dict:
    """What the teacher's forms are made of: ``dev_gram [Lt, G, N, N]`` and ``dev_norms [Lt, G, N]`` (the
    deviations' Gram and norms), the relations' ``centred_gram`` where it is another one, and the layer change from
    the anchor of each student step to every teacher layer as a ``TeacherChange`` (``change``), which builds its
    forms by chunks. Under ``no_grad``. ``scratch``: ``x`` may be centred in place (``gram_costs``)."""
    a = torch.as_tensor(anchors, device=x.device)
    size = _change_size(x, gmask, a) if _forms_on("layer_change", "magnitude", opts) else None  # (before centring)
    by_group = _centred_by_group(x, gmask, in_place=scratch and ref is None)  # [G, Lt+1, N, d]; with ref, x is read
    centred = by_group.transpose(0, 1)  # [Lt+1, G, N, d], a view
    change_direction = _forms_on("layer_change", "direction", opts)
    # every layer's Gram, layer 0's too: the layers of one group are a view of ``by_group``, those from 1 on are not
    # (laid out layers first: the forms made from them are compared as vectors)
    gram = _grams(by_group).transpose(0, 1).contiguous() if change_direction or _needs_gram(ref, opts) else None
    out = _deviation_gram(x, centred[1:], None if gram is None else gram[1:], gmask, ref, opts)
    if "layer_change" in opts.components:
        steps = a.shape[0] if torch.compiler.is_compiling() else max(1, CHUNK_BYTES // _gram_bytes(x))
        out["change"] = TeacherChange(by_group, gram, size, opts, a, steps)
    return out


def _forms_on(component: str, form: str, opts) -> bool:
    """Whether ``opts`` computes ``form`` of ``component``."""
    return component in opts.components and form in opts.forms


def _centred_by_group(x: torch.Tensor, gmask: torch.Tensor | None, in_place: bool = False) -> torch.Tensor:
    """The teacher's features ``x [L+1, G, N, d]`` centred over each group's valid items (``F.masked_center``), groups
    first: ``[G, L+1, N, d]``. Then each group's layers are one matrix ``[(L+1)*N, d]`` for the layer change's cross
    products, a view where layers first took a copy of them (a token group's largest tensor but the features).
    ``in_place``: in ``x`` itself where ``x`` is laid out groups first (``pool_features`` stacks the teacher's token
    features so); features laid out otherwise are copied, and the copy centred in place (no gradient)."""
    by_group = x.transpose(0, 1)
    if not by_group.is_contiguous():  # (pooled features, one group, are laid out either way)
        by_group, in_place = by_group.contiguous(), True
    return F.masked_center(by_group, None if gmask is None else gmask[:, None], in_place=in_place)  # (mask [G, 1, N])


class TeacherChange:
    """The teacher's change from the anchor of each student step to every teacher layer, as forms, under ``no_grad``:
    ``forms(steps)`` builds them for some student steps, ``[steps, Lt, G, N, N]`` (direction, from Grams, in place)
    and ``[steps, Lt, G, N]`` (magnitude); ``steps`` is how many a chunk takes (``CHUNK_BYTES``)."""

    def __init__(self, by_group, gram, size, opts, anchors, steps: int):
        """``by_group``, ``gram``: the centred features, groups first, and their Grams; ``size``: the magnitude form
        (``_change_size``); ``steps``: student steps a chunk takes."""
        self.by_group, self.gram, self.size, self.opts, self.a, self.steps = by_group, gram, size, opts, anchors, steps

    def forms(self, steps: slice) -> list[torch.Tensor]:
        """The forms for the student steps ``steps``, in ``_forms``'s order."""
        out = []
        if "direction" in self.opts.forms:
            out.append(self._direction(self.a[steps]))
        if "magnitude" in self.opts.forms:
            out.append(self.size[steps])
        return out

    def _direction(self, a: torch.Tensor) -> torch.Tensor:
        """The direction form ``[len(a), Lt, G, N, N]`` of the centred changes from the anchors ``a``: their Gram is
        ``G_ll + G_aa - G_la - G_al``, the cross terms one product per group, ``[G, Lt*N, d] x [G, d, len(a)*N]``."""
        x, gram = self.by_group, self.gram
        g, lt, n, ls = x.shape[0], x.shape[1] - 1, x.shape[2], a.shape[0]
        layers = self.by_group[:, 1:].flatten(1, 2)  # [G, Lt*N, d], a view
        starts = self.by_group[:, a].flatten(1, 2)  # [G, len(a)*N, d]
        cross = (layers @ starts.transpose(1, 2)).view(g, lt, n, ls, n).permute(3, 1, 0, 2, 4)  # [a, Lt, G, N, N]
        change = cross + cross.transpose(-1, -2)
        del cross, layers, starts
        change = change.neg_().add_(gram[1:]).add_(gram[a].unsqueeze(1))  # the Gram of the centred changes
        # A change below the rounding of that sum, which the direction would scale up to any size, is none: a layer's
        # change to itself, a repeated layer, and any change under _above_rounding's cut-off.
        sq = gram.diagonal(dim1=-2, dim2=-1)  # [Lt+1, G, N]
        itself = (torch.arange(1, lt + 1, device=x.device) == a.unsqueeze(1))[..., None, None]  # [a, Lt, 1, 1]
        real = _above_rounding(change.diagonal(dim1=-2, dim2=-1), sq[1:] + sq[a].unsqueeze(1), x) & ~itself
        change.mul_(real.unsqueeze(-1) & real.unsqueeze(-2))
        norms = change.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt().clamp_min(F.EPS)  # (as F.direction's)
        return change.div_(norms.unsqueeze(-1)).div_(norms.unsqueeze(-2))  # (in place: no second tensor its size)


def _change_size(x: torch.Tensor, gmask: torch.Tensor | None, a: torch.Tensor) -> torch.Tensor:
    """The layer change's magnitude form ``[Ls, Lt, G, N]`` of the teacher: each item's change from the anchor ``a`` of
    each student step to every layer over its size at the anchor, ``|x_l - x_a| / |x_a|``, from each item's inner
    products between its layers (uncentred ``x [Lt+1, G, N, d]``; small). Those products take a copy of the features,
    items first, made a few groups at a time (``CHUNK_BYTES`` of them; one chunk under torch.compile): whole, it was
    where a token-level step on SST-2 batches peaked once the stacked features were let go early
    (benchmarks/speed/RESULTS.md)."""
    g = x.shape[1]
    group_bytes = max(x.numel() * x.element_size() // max(g, 1), 1)  # (from the shape: no operator)
    per = g if torch.compiler.is_compiling() else max(1, CHUNK_BYTES // group_bytes)  # groups a chunk
    if per >= g:  # (one chunk, no slicing: the symbolic shapes of torch.compile too)
        size = _items_change_size(x, a)
    else:
        size = torch.cat([_items_change_size(x[:, start:start + per], a) for start in range(0, g, per)], dim=2)
    return size if gmask is None else size * gmask


def _items_change_size(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``_change_size`` of some groups ``x [Lt+1, G, N, d]``, without the mask."""
    lt, (g, n) = x.shape[0] - 1, x.shape[1:3]
    layers = x.permute(1, 2, 0, 3).flatten(0, 1)  # [G*N, Lt+1, d]
    dots = torch.bmm(layers, layers.transpose(1, 2))  # each item's inner products between its layers
    sq = dots.diagonal(dim1=1, dim2=2)  # [G*N, Lt+1]
    base = sq[:, a]  # [G*N, Ls]
    scale = sq[:, 1:].unsqueeze(1) + base.unsqueeze(2)
    change = scale - 2 * dots[:, a, 1:]  # [G*N, Ls, Lt]: |x_l - x_a|^2
    change = change * _above_rounding(change, scale, x)  # (as the direction's)
    size = (change.clamp_min(0).sqrt() / base.sqrt().clamp_min(F.EPS).unsqueeze(2)).view(g, n, -1, lt)
    return size.permute(2, 3, 0, 1)  # [Ls, Lt, G, N]


def _above_rounding(square: torch.Tensor, scale: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Where a squared norm computed as a sum of inner products, ``scale`` their size, lies above that sum's rounding:
    a dot product of width ``d`` errs by ~``sqrt(d)`` units of the dtype's precision, and the margin is 8x that. In
    float32 the cut-off is a change of ~0.6% of the features' size at width 384, ~0.7% at 768, ~1.1% at 4096 (for
    the magnitude form, of the uncentred features, whose mean the layers share)."""
    return square > (8 * x.shape[-1] ** 0.5 * torch.finfo(x.dtype).eps) * scale


def _gram(centred: torch.Tensor, ref: torch.Tensor | None, opts) -> torch.Tensor | None:
    """The Gram ``[L, G, N, N]`` of centred features ``[L, G, N, d]`` where the relations, or the deviation from the
    batch mean, read it."""
    return _grams(centred) if _needs_gram(ref, opts) else None


def _needs_gram(ref: torch.Tensor | None, opts) -> bool:
    """Whether the relations, or the deviation from the batch mean, read the centred features' Gram."""
    return "relations" in opts.components or ("deviation" in opts.components and ref is None)


def _grams(x: torch.Tensor) -> torch.Tensor:
    """The Gram matrices ``[..., N, N]`` of ``x [..., N, d]``."""
    return x @ x.transpose(-1, -2)


def _deviation_gram(
    x: torch.Tensor,
    centred: torch.Tensor,
    gram: torch.Tensor | None,
    gmask: torch.Tensor | None,
    ref: torch.Tensor | None,
    opts,
) -> dict[str, torch.Tensor]:
    """The deviation's Gram ``dev_gram [L, G, N, N]`` (of layers 1.. of ``x [L+1, G, N, d]`` from the reference) and
    norms ``dev_norms [L, G, N]``, and the relations' Gram ``centred_gram`` where it is another one. ``centred``: those
    layers centred (masked items 0), ``[L, G, N, d]``; ``gram``: their Gram (``_gram``), the deviations' with the
    batch reference."""
    out = {}
    if "deviation" in opts.components:
        dev = centred if ref is None else F.deviation(x[1:], gmask, ref[1:])
        out = {"dev_gram": gram if ref is None else _grams(dev), "dev_norms": dev.norm(dim=-1)}
    if "relations" in opts.components and (ref is not None or "deviation" not in opts.components):
        # distances do not move with the reference, but a reference far from the batch leaves them to the rounding of
        # large inner products: the centred features' Gram keeps them
        out["centred_gram"] = gram
    return out


def _shape_forms(gram, norms, size, gmask, opts) -> list[torch.Tensor]:
    """The direction form (from the Gram and norms) and the magnitude form (``size``, or the norms over their mean)."""
    forms = []
    if "direction" in opts.forms:
        at_least = norms.clamp_min(F.EPS)  # as F.direction's normalisation takes them
        forms.append(gram / (at_least.unsqueeze(-1) * at_least.unsqueeze(-2)))
    if "magnitude" in opts.forms:
        forms.append(size if size is not None else F.relative(norms, gmask))
    return forms


def _distances(gram: torch.Tensor, gmask: torch.Tensor | None, opts) -> torch.Tensor:
    """The relations' form from a Gram ``[L, G, N, N]``: distances ``[L, G, N, N]`` over their mean off the diagonal
    (RKD), or between neighbours ``(i, i+1)`` only, ``[L, G, N-1]``; pairs with a masked item 0."""
    sq = gram.diagonal(dim1=-2, dim2=-1)  # [L, G, N]
    if opts.relation_pairs == "adjacent":
        dist = (sq[..., 1:] + sq[..., :-1] - 2 * gram.diagonal(1, dim1=-2, dim2=-1)).clamp_min(TINY).sqrt()
        return F.relative(dist, None if gmask is None else gmask[..., 1:] & gmask[..., :-1])
    square = torch.add(sq.unsqueeze(-1) + sq.unsqueeze(-2), gram, alpha=-2)  # (one [.., N, N] temporary fewer)
    if torch.is_grad_enabled():
        return F.normalised_distances(square.clamp_min(TINY).sqrt(), gmask)
    # the teacher's: in place, no [.., N, N] temporary (a token group's forms are its largest tensors)
    return F.normalised_distances(square.clamp_min_(TINY).sqrt_(), gmask, in_place=True)


def _compare(forms: list[torch.Tensor], counts: list, ls: int, distance: str,
             teacher: list[torch.Tensor] | None = None, plan_first: bool = False,
             weights: torch.Tensor | None = None, values: bool = False) -> torch.Tensor | PlanFirst:
    """Cost ``[Ls, Lt]`` of one component from its forms: both models' in each (the student's ``ls`` rows first), or
    the student's alone with the teacher's in ``teacher``; the sum over the forms of ``F.layer_costs``. Under ``mse``
    both models' forms go as one vector, each scaled by one over the root of its count of cells: the squared distance
    of the whole is then the sum of the forms' mean squared distances, one comparison for the two forms (pooled
    features: a step of small operators). The teacher's apart are compared form by form: joined, their copy was the
    peak of token groups' costs. ``plan_first`` (the teacher's apart): a ``PlanFirst`` cost, which keeps the
    teacher's forms until the plan sums them; with the plan's ``weights`` known, summed now, and the values with
    ``values`` (``gram_costs``)."""
    if distance == "mse" and len(forms) > 1 and teacher is None:
        scales = [F.at_least_one(c) ** -0.5 for c in counts]
        forms, counts = [torch.cat([f.flatten(1) * c for f, c in zip(forms, scales)], 1)], [1]
    if plan_first and forms:
        known = weights is not None

        def summed(w):  # the teacher's forms summed under plan weights w
            return [F.weighed(w, b, distance) for b in teacher]

        with torch.no_grad():
            terms = [F.layer_costs(a, b, c, distance=distance) for a, b, c in zip(forms, teacher, counts)] \
                if values or not known else None
            value = sum(terms[1:], terms[0]) if terms else None
            if known:
                return _summed_cost(weights, forms, counts, distance, summed(weights), value)
        return PlanFirst(value, forms, counts, distance, summed)
    terms = []
    for i, (form, count) in enumerate(zip(forms, counts)):
        # (the teacher's rows depend on the teacher's features alone)
        a, b = (form[:ls], form[ls:].detach()) if teacher is None else (form, teacher[i])
        terms.append(F.layer_costs(a, b, count, distance=distance))
    return sum(terms[1:], terms[0]) if terms else 0.0  # (no form on: as forms.py's path)
