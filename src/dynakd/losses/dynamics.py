"""Feature-dynamics losses: how representations move, compared in width-free forms (method.md).

Four components, each a cost matrix ``[Ls, Lt]`` between every student layer and every teacher layer:
deviation from a reference, layer-to-layer change, sample-to-sample relations and input sensitivity.
An aligner's plan ``P [Ls, Lt]`` weights the costs: the loss of student layer ``m`` is ``sum_l P[m, l] cost(m, l)``.

Reference: "Beyond Logits: Aligning Feature Dynamics for Effective Knowledge Distillation" (ACL 2025); forms from
similarity-preserving KD (Tung & Mori 2019), RKD (Park et al. 2019) and FSP flow matrices (Yim et al. 2017).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..features import StackedHidden, class_token
from . import forms as F
from .grams import gram_costs
from .planfirst import PlanFirst, plan_loss

Hidden = Sequence[torch.Tensor]  # L+1 tensors [B, T, d]; index 0 is the embedding output
Gather = Callable[[torch.Tensor, torch.Tensor | None, int], tuple[torch.Tensor, torch.Tensor | None]]


POOLINGS = ("mean", "cls", "tokens")
DISTANCES = ("mse", "cosine")
RELATION_PAIRS = ("all", "adjacent")


@dataclass
class DynamicsOptions:
    """Which components and forms to compute; mirrors ``DynamicsConfig`` without training state (the distiller
    builds it from the config; the component weights and the reference stay with the distiller).

    Checked when made, like the config: a misspelt name would otherwise compute the default (or nothing)."""

    components: Sequence[str] = ("deviation", "layer_change", "relations")
    forms: Sequence[str] = ("direction", "magnitude")
    distance: str = "mse"
    pooling: str = "mean"
    relation_pairs: str = "all"
    relation_angle: bool = False
    # token groups' costs under the plan (plan_first) and mse: computed a few windows at a time where the forms of a
    # batch would pass this many MiB (grams.windowed_costs); 0: all at once; None: by the features' device
    # (grams.WINDOW_MIB)
    window_mib: float | None = None
    weights: None = None  # (was a field; component weights are the Distiller's: dynamics.weights)

    def __post_init__(self):
        from ..config import COMPONENTS, FORMS

        if self.weights is not None:
            raise ValueError("DynamicsOptions takes no weights: the pure functions return each component's term "
                             "unweighted; weigh them yourself, or set dynamics.weights in the Distiller's config")

        if self.window_mib is not None and not 0 <= self.window_mib < float("inf"):
            raise ValueError(f"DynamicsOptions.window_mib must be a number >= 0 (0: all windows at once), got "
                             f"{self.window_mib}")
        for values, valid, what in ((self.components, COMPONENTS, "components"), (self.forms, FORMS, "forms"),
                                    ((self.distance,), DISTANCES, "distance"), ((self.pooling,), POOLINGS, "pooling"),
                                    ((self.relation_pairs,), RELATION_PAIRS, "relation_pairs")):
            unknown = [v for v in values if v not in valid]
            if unknown:
                raise ValueError(f"DynamicsOptions.{what}: {', '.join(map(repr, unknown))} is not one of "
                                 f"{', '.join(valid)}")


def pool(
    hidden: Hidden, mask: torch.Tensor, pooling: str = "mean", cls_index: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack layers into ``X [L+1, G, N, d]`` with a group mask ``[G, N]`` (see ``forms``).

    ``mean``: masked mean over tokens, one group of B samples. ``cls``: each sample's class token, at ``cls_index
    [B]`` (a decoder's last real token: ``Features.cls_index``) or the first token when None. ``tokens``: one group
    per sample, its real tokens as items.
    """
    x = _pooler(mask, pooling, cls_index)(hidden)
    if pooling == "tokens":
        return x, mask.bool()
    return x, torch.ones(1, x.shape[2], dtype=torch.bool, device=x.device)


def sample_tokens(mask: torch.Tensor, k: int) -> torch.Tensor | None:
    """``k`` positions per row of ``mask [G, T]``, drawn at random among its real tokens (all of them, then padding,
    where a row has ``k`` or fewer), in order: the tokens ``cut_tokens`` keeps for token-level forms
    (``dynamics.token_sample``). None where ``T <= k``: every token is kept."""
    if mask.shape[1] <= k:
        return None
    keys = torch.rand(mask.shape, device=mask.device).masked_fill_(~mask.bool(), 2.0)  # real tokens draw below 1
    return keys.topk(k, dim=1, largest=False, sorted=False).indices.sort(dim=1).values


def cut_tokens(hidden: Hidden, index: torch.Tensor) -> Hidden:
    """Hidden states ``L+1 x [G, T, d]`` at each row's positions ``index [G, K]``: ``L+1 x [G, K, d]``. A stack
    (``features.StackedHidden``) is gathered into a stack laid out as it was, scratch (a copy the costs may centre);
    other states are indexed layer by layer, whose backward keeps the positions alone (a gather's would keep the
    stack of every token it read)."""
    if isinstance(hidden, StackedHidden):  # [G, L+1, T, d]
        at = index[:, None, :, None].expand(-1, hidden.stack.shape[1], -1, hidden.stack.shape[-1])
        return StackedHidden(hidden.stack.gather(2, at), scratch=True)
    rows = torch.arange(index.shape[0], device=index.device)[:, None]
    return [h[rows, index] for h in hidden]


def _pooler(
    mask: torch.Tensor, pooling: str, cls_index: torch.Tensor | None = None, groups_first: bool = False
) -> Callable[[Hidden], torch.Tensor]:
    """``pool`` without the group mask, for any hidden states that share ``mask`` (its weights are computed once).
    ``groups_first``: token features laid out ``[B, L+1, T, d]`` (the teacher's, centred in place by ``grams.py``),
    still indexed ``[L+1, B, T, d]``."""
    if pooling == "tokens" and groups_first:  # (states stacked so already, features.stack_hidden: not copied again)
        return lambda hidden: (hidden.stack if isinstance(hidden, StackedHidden) else
                               torch.stack(tuple(hidden), dim=1).float()).transpose(0, 1)
    if pooling == "tokens":
        return lambda hidden: torch.stack(tuple(hidden)).float()  # [L+1, B, T, d]
    # Pooled forms pool each layer before stacking: stacking first copies every layer's token states at once, the
    # largest transient of a `full` step (a 6-layer teacher: 7 x B x T x d floats).
    if pooling == "cls":
        return lambda hidden: torch.stack([class_token(h, cls_index).float() for h in hidden]).unsqueeze(1)
    w = mask.bool().float()
    w = (w / w.sum(1, keepdim=True).clamp_min(1.0)).unsqueeze(1)  # [B, 1, T]: the weights of a masked mean
    return lambda hidden: torch.stack([torch.bmm(w, h.float()) for h in hidden]).transpose(1, 2)  # [L+1, 1, B, d]


def _shape_costs(
    vs, vt, gmask, opts: DynamicsOptions, *, base_s=None, base_t=None, paired=False, center=True
) -> torch.Tensor:
    """Direction (Gram of the centred vectors) and magnitude costs between vectors ``vs`` and ``vt``.

    With ``base_*`` the magnitude is relative to the norm of the base representation (relative update size),
    otherwise to the mean norm of the group. ``paired``: the teacher side is ``[Ls, Lt, ...]``.
    """
    counts = F.cell_counts(gmask, vs)
    cost_fn = F.paired_costs if paired else F.layer_costs
    terms = []
    if "direction" in opts.forms:
        gs = F.direction(F.masked_center(vs, gmask) if center else vs, gmask)
        gt = F.direction(F.masked_center(vt, gmask) if center else vt, gmask)
        terms.append(cost_fn(gs, gt, counts["direction"], distance=opts.distance))
    if "magnitude" in opts.forms:
        if base_s is None:
            ms, mt = F.magnitude(vs, gmask), F.magnitude(vt, gmask)
        else:
            ms = vs.norm(dim=-1) / base_s.norm(dim=-1).clamp_min(F.EPS)
            mt = vt.norm(dim=-1) / base_t.norm(dim=-1).clamp_min(F.EPS)
            if gmask is not None:
                ms, mt = ms * gmask, mt * gmask
        terms.append(cost_fn(ms, mt, counts["magnitude"], distance=opts.distance))
    return sum(terms[1:], terms[0]) if terms else 0.0


def deviation_costs(xs, xt, gmask, opts: DynamicsOptions, ref_s=None, ref_t=None) -> torch.Tensor:
    """Deviation of each sample from a reference (batch mean, or given ``ref [L+1, d]``), per layer pair."""
    ds = F.deviation(xs[1:], gmask, None if ref_s is None else ref_s[1:])
    dt = F.deviation(xt[1:], gmask, None if ref_t is None else ref_t[1:])
    return _shape_costs(ds, dt, gmask, opts, center=False)


def layer_change_costs(xs, xt, gmask, opts: DynamicsOptions, anchors: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Student step ``m-1 -> m`` against teacher change ``anchors[m-1] -> l`` for every teacher layer ``l``.

    ``anchors[k]`` is the teacher layer (0 = embeddings) matched to student layer ``k``, for ``k = 0..Ls-1``.
    """
    base_s = xs[:-1]
    vs = xs[1:] - base_s  # [Ls, G, N, d]
    base_t = xt[torch.as_tensor(anchors, device=xt.device)].unsqueeze(1)  # [Ls, 1, G, N, d]
    vt = xt[1:].unsqueeze(0) - base_t  # [Ls, Lt, G, N, d]
    return _shape_costs(vs, vt, gmask, opts, base_s=base_s, base_t=base_t, paired=True)


def relation_costs(xs, xt, gmask, opts: DynamicsOptions) -> torch.Tensor:
    """Sample-to-sample difference structure (RKD distance form; optionally angles), per layer pair."""
    xs, xt = xs[1:], xt[1:]
    relation = F.adjacent_distances if opts.relation_pairs == "adjacent" else F.distances
    n_pairs = F.pair_count(gmask, xs, opts.relation_pairs)
    total = F.layer_costs(relation(xs, gmask), relation(xt, gmask), n_pairs, distance=opts.distance)
    return total + angle_costs(xs, xt, gmask, opts) if opts.relation_angle else total


def angle_costs(xs, xt, gmask, opts: DynamicsOptions) -> torch.Tensor:
    """The relations' RKD angle form (``relation_angle``) of layers ``xs [Ls, G, N, d]`` and ``xt``, per layer pair."""
    g, n = xs.shape[-3], xs.shape[-2]
    n_angles = g * n**3 if gmask is None else gmask.sum(-1).pow(3).sum()
    return F.layer_costs(F.angles(xs, gmask), F.angles(xt, gmask), n_angles, distance=opts.distance)


def sensitivity_costs(xs, xt, xs_pert, xt_pert, gmask, opts: DynamicsOptions) -> torch.Tensor:
    """How each layer's representation responds to a shared input perturbation, per layer pair."""
    return _shape_costs(xs_pert[1:] - xs[1:], xt_pert[1:] - xt[1:], gmask, opts, base_s=xs[1:], base_t=xt[1:])


@dataclass
class Pooled:
    """Both models' features as the forms read them (``X [L+1, G, N, d]``): ``gmask [G, N]`` marks the valid items,
    None when all are; ``*_p`` are the perturbed inputs' (the sensitivity component).

    ``teacher_scratch``: ``xt`` was made for the costs alone (``pool_features`` sets it for token features it stacked
    itself, cut to sampled tokens, or that came stacked as scratch: ``features.StackedHidden``), so ``pooled_costs``
    may centre the teacher's features in it rather than in a copy, a tensor of the teacher's hidden states' size
    fewer, after the components that read ``xt`` otherwise (angle, sensitivity). Unless a reference is given, that
    uses the features up: ``xt`` becomes None (``pooled_costs`` takes it, and lets it go once the Grams and the layer
    change are made of it), and a second ``pooled_costs`` on them is refused (pool again)."""

    xs: torch.Tensor
    xt: torch.Tensor | None
    gmask: torch.Tensor | None = None
    xs_p: torch.Tensor | None = None
    xt_p: torch.Tensor | None = None
    teacher_scratch: bool = False


def pool_features(
    student: Hidden,
    teacher: Hidden,
    *,
    mask: torch.Tensor,
    opts: DynamicsOptions,
    teacher_mask: torch.Tensor | None = None,
    perturbed: tuple[Hidden, Hidden] | None = None,
    teacher_pooled: torch.Tensor | None = None,
    gather: Gather | None = None,
    cls_index: torch.Tensor | None = None,
    teacher_cls_index: torch.Tensor | None = None,
    tokens: torch.Tensor | None = None,
) -> Pooled:
    """The first half of ``dynamics_costs`` (its arguments): the features pooled, gathered if asked."""
    if teacher_mask is not None and opts.pooling == "tokens" and teacher_mask.shape != mask.shape:  # (shapes only)
        raise ValueError(f"teacher_mask {list(teacher_mask.shape)} is not the student's mask {list(mask.shape)}: a "
                         "tokenisation of the teacher's own is for pooled forms only, token-level forms (pooling "
                         "'tokens') compare both models token by token, on one tokenisation")
    if tokens is not None and opts.pooling != "tokens":
        raise ValueError(f"tokens picks positions of token-level features (pooling 'tokens'), not of pooling "
                         f"{opts.pooling!r}")
    held = getattr(teacher, "tokens", None)  # (a stack of some positions alone: features.stack_hidden)
    if held is not None and held is not tokens:
        raise ValueError("the teacher's states are stacked at positions of their own (StackedHidden.tokens): give "
                         "those as tokens, or the states of every token")
    if tokens is not None:  # the forms of these tokens alone: each model's states cut to them first
        student, mask = cut_tokens(student, tokens), mask.gather(1, tokens)
        with torch.no_grad():  # (the teacher's cut states are copies of their own: scratch, Pooled.teacher_scratch)
            teacher = teacher if held is not None else cut_tokens(teacher, tokens)
            teacher_p = None if perturbed is None else cut_tokens(perturbed[1], tokens)
        if perturbed is not None:  # (the student's perturbed states keep their gradient)
            perturbed = (cut_tokens(perturbed[0], tokens), teacher_p)
    pool_s = _pooler(mask, opts.pooling, cls_index)
    if teacher_mask is None and teacher_cls_index is cls_index and opts.pooling != "tokens":  # pooled alike
        pool_t = pool_s
    else:
        pool_t = _pooler(mask if teacher_mask is None else teacher_mask, opts.pooling, teacher_cls_index,
                         groups_first=True)
    xs = pool_s(student)
    with torch.no_grad():
        xt = pool_t(teacher) if teacher_pooled is None else teacher_pooled.float().unsqueeze(1)  # [Lt+1, G, N, d]
    gmask = mask.bool() if opts.pooling == "tokens" else None
    xs_p = xt_p = None
    if "sensitivity" in opts.components:
        if perturbed is None:  # (the term would be dropped without a word)
            raise ValueError("the sensitivity component needs perturbed=(student, teacher) hidden states of the "
                             "perturbed inputs")
        xs_p = pool_s(perturbed[0])
        with torch.no_grad():
            xt_p = pool_t(perturbed[1])
    if gather is not None:  # (gmask None: every item valid; it stays None where the gather pads nothing)
        xs, gathered = gather(xs, gmask, 2)
        xt = gather(xt, gmask, 2)[0]
        if xs_p is not None:
            xs_p, xt_p = gather(xs_p, gmask, 2)[0], gather(xt_p, gmask, 2)[0]
        gmask = gathered
    # (pooled features are small: their copy is not worth a Pooled that one call uses up; states stacked ahead are
    # the caller's, scratch where it says so)
    scratch = opts.pooling == "tokens" and teacher_pooled is None and getattr(teacher, "scratch", True)
    return Pooled(xs, xt, gmask, xs_p, xt_p, teacher_scratch=scratch)


def pooled_costs(
    pooled: Pooled,
    opts: DynamicsOptions,
    anchors: Sequence[int] | torch.Tensor,
    refs: tuple[torch.Tensor, torch.Tensor] | None = None,
    plan_first: bool = False,
    ahead: tuple[torch.Tensor, dict[str, float]] | None = None,
) -> dict[str, torch.Tensor | PlanFirst]:
    """The second half of ``dynamics_costs``: one cost matrix per enabled component from pooled features. Shapes and
    the options alone decide its operators (no host sync), so it can be replayed from a CUDA graph (``cudagraphs``).

    The deviation, layer-change and relations costs come from Gram matrices (``grams.py``), with or without a mask:
    the same costs as ``vector_costs`` computes from the forms' definitions, without the teacher's change vectors
    ``[Ls, Lt, G, N, d]`` (token-level dynamics made them the largest tensors of a step). Features marked
    ``teacher_scratch`` may be used up (``Pooled``). ``plan_first``: as ``dynamics_costs``. ``ahead``: the plan the
    costs will be weighed under, known before them, and the components' weights relative to each other in the loss
    (``grams.windowed_costs``: costs in windows take one pass)."""
    xs, gmask = pooled.xs, pooled.gmask
    # The components not from Grams first: the Gram path may centre the teacher's features in place (Pooled).
    angle = angle_costs(xs[1:], unused(pooled)[1:], gmask, opts) \
        if "relations" in opts.components and opts.relation_angle else None
    sensitivity = sensitivity_costs(xs, unused(pooled), pooled.xs_p, pooled.xt_p, gmask, opts) \
        if "sensitivity" in opts.components else None
    # Centred in place, what is left are not the features any more: taken out of ``pooled`` (and held in no name
    # here), so the Gram path lets them go once it has made what it needs of them.
    costs = gram_costs(xs, _take_teacher(pooled, refs), gmask, opts, anchors, refs, pooled.teacher_scratch, plan_first,
                       ahead=ahead)
    if angle is not None:
        costs["relations"] = costs["relations"] + angle
    if sensitivity is not None:
        costs["sensitivity"] = sensitivity
    if missing := [c for c in opts.components if c not in costs]:  # (a name added to COMPONENTS alone was dropped)
        raise ValueError(f"component(s) {', '.join(missing)} gave no cost: a component needs its branch in "
                         "pooled_costs as well as its name in config.COMPONENTS (README: 'Adding a loss')")
    return costs


def _take_teacher(pooled: Pooled, refs) -> torch.Tensor | list[torch.Tensor]:
    """The teacher's features of ``pooled``; where the Gram path uses them up (``Pooled``), taken out of it, in a list
    that ``gram_costs`` empties (a call's argument itself stays referenced by the caller until the call returns in
    Python 3.10)."""
    xt = unused(pooled)
    if pooled.teacher_scratch and refs is None:
        pooled.xt = None
        return [xt]
    return xt


def unused(pooled: Pooled) -> torch.Tensor:
    """The teacher's features of ``pooled``, refused where an earlier ``pooled_costs`` used them up (``Pooled``)."""
    if pooled.xt is None:
        raise ValueError("these pooled features were used up by an earlier pooled_costs, which centred the teacher's "
                         "in place (Pooled.teacher_scratch): pool the hidden states again, or set teacher_scratch "
                         "False to keep them")
    return pooled.xt


def vector_costs(
    pooled: Pooled,
    opts: DynamicsOptions,
    anchors: Sequence[int] | torch.Tensor,
    refs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """``pooled_costs`` from the forms' vectors, as method.md defines them (``deviation_costs``,
    ``layer_change_costs``, ``relation_costs``): the reference the Gram path is tested against
    (``tests/unit/test_unmasked_forms.py``), slower and larger."""
    xs, xt, gmask = pooled.xs, unused(pooled), pooled.gmask
    costs = {}
    if "deviation" in opts.components:
        ref_s, ref_t = refs if refs is not None else (None, None)
        costs["deviation"] = deviation_costs(xs, xt, gmask, opts, ref_s, ref_t)
    if "layer_change" in opts.components:
        costs["layer_change"] = layer_change_costs(xs, xt, gmask, opts, anchors)
    if "relations" in opts.components:
        costs["relations"] = relation_costs(xs, xt, gmask, opts)
    if "sensitivity" in opts.components:
        costs["sensitivity"] = sensitivity_costs(xs, xt, pooled.xs_p, pooled.xt_p, gmask, opts)
    return costs


def dynamics_costs(
    student: Hidden,
    teacher: Hidden,
    *,
    mask: torch.Tensor,
    opts: DynamicsOptions,
    anchors: Sequence[int] | torch.Tensor,
    teacher_mask: torch.Tensor | None = None,
    refs: tuple[torch.Tensor, torch.Tensor] | None = None,
    perturbed: tuple[Hidden, Hidden] | None = None,
    teacher_pooled: torch.Tensor | None = None,
    gather: Gather | None = None,
    cls_index: torch.Tensor | None = None,
    teacher_cls_index: torch.Tensor | None = None,
    plan_first: bool = False,
    ahead: tuple[torch.Tensor, dict[str, float]] | None = None,
    tokens: torch.Tensor | None = None,
) -> dict[str, torch.Tensor | PlanFirst]:
    """One cost matrix ``[Ls, Lt]`` per enabled component (gradients flow to the student side only).

    ``teacher_mask`` is the teacher's own attention mask when it tokenises differently (pooled forms only).
    ``cls_index`` and ``teacher_cls_index [B]``: each model's class token for ``cls`` pooling where it is not the
    first (a decoder's: ``Features.cls_index``).
    ``teacher_pooled [Lt+1, B, d]`` replaces ``teacher`` with features pooled ahead of time (the teacher cache).
    ``gather(x, gmask, dim)`` widens the items of pooled features (e.g. to every process's batch) before the forms;
    it returns them with their mask, and gets and may return None for a mask where every item is valid.
    Pooled features form one group of valid items unless a gather pads them: the forms then get no mask
    (``forms``, ``grams``).
    ``plan_first``: for a plan that takes no gradient from the costs, the deviation, layer-change and relations costs
    of token groups come as ``PlanFirst`` costs (``planfirst.py``), compared under the plan in ``plan_loss``: a
    smaller backward (``cost_value`` gives their values, for the aligner).
    ``ahead``: with ``plan_first``, the plan ``[Ls, Lt]`` the costs will be weighed under, known before them, and the
    weights ``{component: w}`` the loss gives the components relative to each other (1 where not given): costs
    computed in windows (``DynamicsOptions.window_mib``) then take their values and gradient in one pass; the loss
    must weigh them so (one factor for all), which the backward checks.
    ``tokens [B, K]``: token-level forms of these positions of each sample alone (``sample_tokens``), where the
    ``[B, T, T]`` forms of every token cost too much (``dynamics.token_sample``); ``mask`` still marks which are real.
    ``pool_features`` then ``pooled_costs``.
    """
    pooled = pool_features(student, teacher, mask=mask, opts=opts, teacher_mask=teacher_mask, perturbed=perturbed,
                           teacher_pooled=teacher_pooled, gather=gather, cls_index=cls_index,
                           teacher_cls_index=teacher_cls_index, tokens=tokens)
    return pooled_costs(pooled, opts, anchors, refs, plan_first, ahead)


def feature_dynamics_loss(
    student: Hidden,
    teacher: Hidden | None,
    *,
    mask: torch.Tensor | None = None,
    plan: torch.Tensor,
    opts: DynamicsOptions | None = None,
    **kwargs,
) -> dict[str, torch.Tensor]:
    """Named, unweighted dynamics terms ``{"dyn/<component>": scalar}`` under a fixed plan ``[Ls, Lt]``.

    The convenience entry point for custom training loops. ``student`` and ``teacher``: each model's ``L + 1`` hidden
    states ``[B, T, d]``, index 0 the embedding output (``output_hidden_states``' tuple whole), so ``Ls`` and ``Lt``
    are one less than their lengths. ``mask [B, T]``: the student's real tokens (None: every token; a teacher of its
    own tokenisation gives ``teacher_mask``). ``plan``: rows that sum to 1 (``plan_loss`` averages the student
    layers' costs; ``align.sinkhorn``'s rows sum to ``1 / Ls``: multiply it by ``Ls``). ``anchors`` default to each
    student layer's highest-mass teacher layer in ``plan``. States, masks and plan that do not fit each other are
    refused (``ValueError``). ``teacher`` may be None where ``teacher_pooled`` gives its features pooled ahead.
    """
    if teacher is None and kwargs.get("teacher_pooled") is None:
        raise ValueError("give the teacher's hidden states, or its features pooled ahead as teacher_pooled")
    teacher = () if teacher is None else teacher
    layers = (len(student) - 1, len(kwargs["teacher_pooled"]) - 1 if kwargs.get("teacher_pooled") is not None
              else len(teacher) - 1)
    F.check_layers("plan", plan.shape, layers)
    rows = plan.detach().float().sum(1)
    if not torch.allclose(rows, torch.ones_like(rows), atol=1e-3):
        sums = [round(float(r), 4) for r in rows]
        raise ValueError(f"each row of the plan sums to 1 (a student layer's weights over the teacher's), got sums "
                         f"{sums}; align.sinkhorn's rows sum to 1 / Ls: multiply it by Ls")
    mask = _checked_states(student, teacher, mask, kwargs.get("teacher_mask"), kwargs.get("teacher_pooled"))
    opts = opts or DynamicsOptions()
    kwargs.setdefault("anchors", anchors_from_plan(plan))
    kwargs.setdefault("plan_first", True)  # (the plan is given)
    costs = dynamics_costs(student, teacher, mask=mask, opts=opts, **kwargs)
    return {f"dyn/{k}": plan_loss(plan, c) for k, c in costs.items()}


def _checked_states(student: Hidden, teacher: Hidden, mask: torch.Tensor | None, teacher_mask: torch.Tensor | None,
                    teacher_pooled: torch.Tensor | None) -> torch.Tensor:
    """``feature_dynamics_loss``'s states and masks, refused where they do not fit each other (else an error deep in
    a batched product, or none); ``mask`` None: every token of the student's states counts."""
    def shape(x) -> list[int]:
        return list(x.shape) if isinstance(x, torch.Tensor) else [type(x).__name__]

    states = [("student", h) for h in student] + [("teacher", h) for h in teacher if teacher_pooled is None]
    for who, h in states:
        if not isinstance(h, torch.Tensor) or h.dim() != 3:
            raise ValueError(f"each hidden state is [batch, tokens, width] (output_hidden_states' tuple, index 0 the "
                             f"embedding output), got {shape(h)} in the {who}'s")
    size = list(student[0].shape[:2])
    if mask is None:
        mask = torch.ones(size, dtype=torch.long, device=student[0].device)
    if list(mask.shape) != size:
        raise ValueError(f"mask {shape(mask)} is not the student's [batch, tokens] {size}")
    if teacher_pooled is None:
        t_size = list(teacher[0].shape[:2])
        if t_size[0] != size[0]:
            raise ValueError(f"the teacher's states hold {t_size[0]} samples and the student's {size[0]}: the same "
                             "batch goes through both models")
        if teacher_mask is None and t_size != size:
            raise ValueError(f"the teacher's states are [batch, tokens] {t_size} and the student's {size}: give "
                             "teacher_mask for a teacher of its own tokenisation (pooled forms only)")
        if teacher_mask is not None and list(teacher_mask.shape) != t_size:
            raise ValueError(f"teacher_mask {shape(teacher_mask)} is not the teacher's [batch, tokens] {t_size}")
    return mask


def anchors_from_plan(plan: torch.Tensor) -> torch.Tensor:
    """Teacher start layer of each student step: 0 (embeddings) for the first, then the argmax of the plan row.

    Stays on the plan's device (no host sync in the training step).
    """
    first = torch.zeros(1, dtype=torch.long, device=plan.device)
    return torch.cat([first, plan[:-1].argmax(dim=1) + 1])
