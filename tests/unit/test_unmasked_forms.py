"""The mask-free paths of the forms (``mask=None``: every item valid) against the masked paths with an all-ones mask,
and the costs from Grams (``losses/grams.py``, what ``pooled_costs`` computes) against the costs from the forms'
vectors (``vector_costs``, method.md's definitions), with and without masks."""

from __future__ import annotations

import pytest
import torch

from dynakd.align import uniform_plan
from dynakd.losses import DynamicsOptions, dynamics_costs
from dynakd.losses import forms as F
from dynakd.losses.dynamics import Pooled, anchors_from_plan, plan_loss, pooled_costs, vector_costs
from dynakd.losses.planfirst import PlanFirst, cost_value
from tests.unit.test_losses import COMPONENTS, FORMS  # (components, relation_pairs, relation_angle)

LS, DS, LT, DT, T = 3, 8, 5, 12, 5
ITEMS = (6, 30)  # 30: cdist takes its matrix-product path (N > 25), whose diagonal is not exactly 0


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def close_costs(a, b):
    """Costs, and their gradients, compared: the forms' mean squared distances are taken in float32 whatever the
    features' type (``forms.layer_costs``), as |a|^2 + |b|^2 - 2 a.b, which the Gram path sums over a component's forms
    at once and ``vector_costs`` form by form: float32's rounding of that sum, relative to |a|^2, stays."""
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def hidden(n_layers, b, d, seed):
    """Hidden states in float64: the paths compute the same values in different orders, so the comparison is of
    their mathematics, not of float32's rounding (test_gram_costs_in_float32_on_features_with_a_shared_mean)."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, T, d, generator=g, dtype=torch.float64).requires_grad_() for _ in range(n_layers + 1))


def identity_gather(x, mask, dim):
    """A one-process gather: the features unchanged with an all-ones mask, so the forms take their masked path."""
    return x, torch.ones(x.shape[dim - 1], x.shape[dim], dtype=torch.bool) if mask is None else mask


@pytest.mark.parametrize("form", ["masked_center", "direction", "magnitude", "distances", "adjacent_distances"])
@pytest.mark.parametrize("n", ITEMS)
def test_forms_without_mask_match_all_ones_mask(form, n):
    x = torch.randn(4, 1, n, 7, dtype=torch.float64)
    fn = getattr(F, form)
    close(fn(x, None), fn(x, torch.ones(1, n, dtype=torch.bool)))


def test_angles_without_mask_match_all_ones_mask():
    x = torch.randn(2, 1, 6, 5)
    close(F.angles(x, None), F.angles(x, torch.ones(1, 6, dtype=torch.bool)))


def test_distances_without_mask_exclude_the_diagonal():
    x = torch.randn(2, 1, 40, 16) * 100
    d = F.distances(x, None)
    assert not d.diagonal(dim1=-2, dim2=-1).any()
    close(d.sum((-1, -2)), torch.full((2, 1), 40.0 * 39))


@pytest.mark.parametrize("forms", list(FORMS))
@pytest.mark.parametrize("distance", ["mse", "cosine"])
@pytest.mark.parametrize("refs", [False, True])
@pytest.mark.parametrize(
    "comp,n", [(c, n) for c in COMPONENTS for n in ITEMS if c != "relations_angle" or n == min(ITEMS)]  # angles: O(N^3)
)
def test_costs_and_gradients_without_mask_match_all_ones_mask(comp, n, forms, distance, refs):
    components, pairs, angle = COMPONENTS[comp]
    opts = DynamicsOptions(components, FORMS[forms], distance, "mean", pairs, angle)
    s, t = hidden(LS, n, DS, 0), hidden(LT, n, DT, 1)
    sp, tp = hidden(LS, n, DS, 2), hidden(LT, n, DT, 3)
    mask = torch.ones(n, T, dtype=torch.long)
    mask[0, 3:] = 0
    g = torch.Generator().manual_seed(4)
    kwargs = {
        "mask": mask,
        "opts": opts,
        "anchors": anchors_from_plan(uniform_plan(LS, LT)),
        "perturbed": (sp, tp),
        "refs": (torch.randn(LS + 1, DS, generator=g, dtype=torch.float64),
                 torch.randn(LT + 1, DT, generator=g, dtype=torch.float64)) if refs else None,
    }
    plain = dynamics_costs(s, t, **kwargs)
    masked = dynamics_costs(s, t, gather=identity_gather, **kwargs)
    assert plain.keys() == masked.keys() == {c for c in components}
    grads = []
    for costs in (plain, masked):
        grads.append(torch.autograd.grad(sum(c.sum() for c in costs.values()), s + sp, allow_unused=True))
    for k in plain:
        close_costs(plain[k], masked[k])
    for a, b in zip(*grads):
        assert (a is None) == (b is None)
        if a is not None:
            close_costs(a, b)


def token_mask(groups, items):
    """Several groups: windows of different lengths, one of a single token, one of none. One group: the items of two
    processes whose batches a gather padded, the padding after each process's items."""
    mask = torch.ones(groups, items, dtype=torch.bool)
    if groups > 1:
        mask[0, 4:] = False
        mask[1, 1:] = False
        mask[2, :] = False
    else:
        mask[0, items // 2 - 3:items // 2] = False
        mask[0, -1:] = False
    return mask


@pytest.mark.parametrize("large", [None, 1, 2])
@pytest.mark.parametrize("forms", list(FORMS))
@pytest.mark.parametrize("distance", ["mse", "cosine"])
@pytest.mark.parametrize("refs", [False, True])
@pytest.mark.parametrize("mask", ["tokens", "padded", "none"])
@pytest.mark.parametrize("comp", [c for c in COMPONENTS if c not in ("relations_angle", "sensitivity")])
def test_gram_costs_and_gradients_match_the_vector_forms(monkeypatch, comp, mask, refs, distance, forms, large):
    """``pooled_costs`` (Grams) against ``vector_costs`` (the forms' vectors) in float64: token groups with padding
    (``pooling: tokens``), one group with items a gather padded, and one group every item valid. ``large``: as Grams
    past ``JOINT_BYTES`` and ``CHUNK_BYTES`` (long token windows) take them, the teacher's forms apart from the
    student's and its layer-change forms this many student steps at a time (2 of 3: a last chunk of one)."""
    components, pairs, angle = COMPONENTS[comp]
    opts = DynamicsOptions(components, FORMS[forms], distance, "tokens" if mask == "tokens" else "mean", pairs, angle)
    g, n = (4, 9) if mask == "tokens" else (1, 30)
    if large:
        from dynakd.losses import grams

        monkeypatch.setattr(grams, "CHUNK_BYTES", large * LT * g * n * n * 8)  # (one step's change Grams, float64)
        monkeypatch.setattr(grams, "JOINT_BYTES", 0)
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(LS + 1, g, n, DS, generator=gen, dtype=torch.float64).requires_grad_()
    xt = torch.randn(LT + 1, g, n, DT, generator=gen, dtype=torch.float64)
    gmask = None if mask == "none" else token_mask(g, n)
    ref = (torch.randn(LS + 1, DS, generator=gen, dtype=torch.float64),
           torch.randn(LT + 1, DT, generator=gen, dtype=torch.float64)) if refs else None
    anchors = torch.tensor([0, 2, 5])  # (5: the teacher's last layer, whose change to itself is none)
    fast, exact = (f(Pooled(xs, xt, gmask), opts, anchors, ref) for f in (pooled_costs, vector_costs))
    # costs that wait for the plan (large: past JOINT_BYTES), summed under a plan of Ls everywhere (plan_loss's mean)
    plan_first = pooled_costs(Pooled(xs, xt, gmask), opts, anchors, ref, plan_first=True)
    # the teacher's features as pool_features hands them over (laid out groups first, its own), centred in place
    # (one group: in xt itself, which transposing leaves contiguous)
    scratch = Pooled(xs, xt.transpose(0, 1).contiguous().transpose(0, 1), gmask, teacher_scratch=True)
    in_place = pooled_costs(scratch, opts, anchors, ref)
    assert fast.keys() == exact.keys() == in_place.keys() == plan_first.keys() == set(components)
    for k in exact:
        grad = torch.autograd.grad(exact[k].sum(), xs)[0]
        for costs in (fast, in_place):
            close_costs(costs[k], exact[k])
            close_costs(torch.autograd.grad(costs[k].sum(), xs)[0], grad)
        assert isinstance(plan_first[k], PlanFirst) == bool(large)
        summed = plan_loss(torch.full((LS, LT), float(LS), dtype=torch.float64), plan_first[k])
        close_costs(cost_value(plan_first[k]), exact[k])
        close_costs(torch.autograd.grad(summed, xs)[0], grad)


@pytest.mark.parametrize("refs", [False, True])
@pytest.mark.parametrize("anchors", [[0, 1, 2], [0, 3, 5]])
@pytest.mark.parametrize("scale", [0.0, 20.0, 100.0])
def test_gram_costs_in_float32_on_features_with_a_shared_mean(anchors, scale, refs):
    """float32 as training runs, on pooled features like a transformer's: a mean shared by the samples of a layer,
    up to 100x their spread, which the Grams must not lose (they work on centred features), and anchors equal to
    teacher layers, whose change to themselves is 0 (a Gram sum leaves rounding there); with references at 0, far from
    the features, too. Against the vector forms in float64 (their costs are taken in float32 in both)."""
    n, ds, dt = 32, 48, 64
    g = torch.Generator().manual_seed(0)

    def pooled(layers, d):
        return scale * torch.randn(layers + 1, 1, 1, d, generator=g, dtype=torch.float64) + torch.randn(
            layers + 1, 1, n, d, generator=g, dtype=torch.float64)

    xs, xt = pooled(LS, ds), pooled(LT, dt)
    opts, a = DynamicsOptions(), torch.tensor(anchors)
    ref = (torch.zeros(LS + 1, ds, dtype=torch.float64), torch.zeros(LT + 1, dt, dtype=torch.float64)) if refs else None
    fast = pooled_costs(Pooled(xs.float(), xt.float()), opts, a, None if ref is None else tuple(r.float() for r in ref))
    exact = vector_costs(Pooled(xs, xt), opts, a, ref)
    assert fast.keys() == exact.keys()
    for k in exact:
        close_costs(fast[k], exact[k])


@pytest.mark.parametrize("distance", ["mse", "cosine"])
@pytest.mark.parametrize("change", [0.0, 1e-4])
@pytest.mark.parametrize("masked", [False, True])
def test_a_teacher_change_below_rounding_counts_as_none(distance, change, masked):
    """A teacher layer that repeats the one before (change 0) or all but repeats it (1e-4 of its size): the Gram sums
    leave rounding larger than such a change, which the direction form would scale up without bound. It counts as no
    change: a repeated layer gives the vector forms' costs, a near-repeat finite costs and gradients of their size.
    With a mask too (the same path serves token groups)."""
    n, d = 32, 384
    g = torch.Generator().manual_seed(0)
    xt = torch.randn(LT + 1, 1, n, d, generator=g)
    xt[3] = xt[2] + change * torch.randn(1, n, d, generator=g)
    xs = torch.randn(LS + 1, 1, n, d, generator=g).requires_grad_()
    opts, anchors = DynamicsOptions(distance=distance), torch.tensor([0, 2, 3])
    pooled = Pooled(xs, xt, token_mask(1, n) if masked else None)
    fast, exact = (f(pooled, opts, anchors)["layer_change"] for f in (pooled_costs, vector_costs))
    (g_fast,), (g_exact,) = (torch.autograd.grad(c.sum(), xs) for c in (fast, exact))
    if change == 0:
        close_costs(fast, exact)
        close_costs(g_fast, g_exact)
    assert fast.isfinite().all() and fast.abs().max() <= 2 * exact.abs().max()
    assert g_fast.norm() <= 2 * g_exact.norm()


@pytest.mark.parametrize("pooling", ["mean", "tokens"])
def test_compiled_dynamics_compile_once_for_every_batch_shape(pooling):
    """``compile_dynamics`` compiles with dynamic shapes so that new batch sizes and lengths do not recompile: the
    Gram path's choices by size (``JOINT_BYTES``, ``CHUNK_BYTES``) are fixed under torch.compile, where a count from
    the shapes guarded on them and recompiled for almost every new batch (the recompile limit then left the dynamics
    uncompiled). Dynamo's own ``eager`` backend: the guards are dynamo's, no code is generated."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    opts = DynamicsOptions(pooling=pooling)
    compiled = torch.compile(dynamics_costs, dynamic=True, backend="eager")
    anchors = anchors_from_plan(uniform_plan(LS, LT))
    for b, t in [(4, 10), (4, 16), (6, 20), (5, 9)]:  # (no size equal to another input's: duck sizing would guard it)
        g = torch.Generator().manual_seed(b * t)
        s = [torch.randn(b, t, DS, generator=g, requires_grad=True) for _ in range(LS + 1)]
        te = [torch.randn(b, t, DT, generator=g) for _ in range(LT + 1)]
        mask = torch.ones(b, t, dtype=torch.long)
        mask[0, t // 2:] = 0
        got = compiled(s, te, mask=mask, opts=opts, anchors=anchors)
        want = dynamics_costs(s, te, mask=mask, opts=opts, anchors=anchors)
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])


@pytest.mark.parametrize("pooling", ["tokens", "mean", "cached"])
def test_token_features_of_the_teacher_are_centred_in_place(pooling):
    """Token-level dynamics: ``pool_features`` stacks the teacher's layers groups first, as its own, and the Grams
    centre them there: no copy of the teacher's token features (the largest of a token step's tensors but the
    models'). That uses them up: a second call on them is refused, not computed from centred features. Pooled
    features are small and stay as they are, and those the teacher cache pooled are the cache's: never overwritten.
    (The costs of the in-place path: ``test_gram_costs_and_gradients_match_the_vector_forms``.)"""
    from dynakd.experiments.bench import TensorMemory
    from dynakd.losses.dynamics import pool_features

    b, d = 4, 512  # (wide: the teacher's features outweigh its Grams, as a window's tokens do)
    s, t = hidden(LS, b, DS, 0), tuple(h.detach() for h in hidden(LT, b, d, 1))
    mask = torch.ones(b, T, dtype=torch.long)
    mask[1:, 3:] = 0
    opts = DynamicsOptions(pooling="tokens" if pooling == "tokens" else "mean")
    anchors = torch.tensor([0, 2, 5])
    kw = dict(mask=mask, opts=opts)
    if pooling == "cached":
        kw["teacher_pooled"] = torch.stack([h.mean(1) for h in t])  # [Lt+1, B, d]: as the cache's rows
    pooled = pool_features(s, t, **kw)
    assert pooled.teacher_scratch is (pooling == "tokens")
    if pooling != "tokens":
        before = pooled.xt.clone()
        pooled_costs(pooled, opts, anchors)
        assert torch.equal(pooled.xt, before)
        return
    assert pooled.xt.transpose(0, 1).is_contiguous()  # groups first
    size = pooled.xt.numel() * pooled.xt.element_size()
    pooled_costs(pooled, opts, anchors)
    assert pooled.xt is None
    for again in (pooled_costs, vector_costs):
        with pytest.raises(ValueError, match="used up"):
            again(pooled, opts, anchors)
    # (the direction form alone: the layer change's magnitude form takes a transient copy of the features first)
    opts = DynamicsOptions(forms=["direction"], pooling="tokens")
    peaks = {}
    for scratch in (False, True):
        pooled = pool_features(s, t, **kw)
        pooled.teacher_scratch = scratch
        with TensorMemory() as meter:
            costs = pooled_costs(pooled, opts, anchors)
        peaks[scratch] = meter.peak
        assert costs.keys() == {"deviation", "layer_change", "relations"}
    assert peaks[False] - peaks[True] >= size


def test_the_angle_and_sensitivity_forms_read_the_teacher_before_it_is_centred():
    """``pooled_costs`` computes the components that read the teacher's features themselves (the relations' angle
    form, sensitivity) before the Gram path centres those features in place: the costs of token features used up so
    are those of features kept."""
    from dynakd.losses.dynamics import pool_features

    b = 3
    s, t = hidden(LS, b, DS, 0), tuple(h.detach() for h in hidden(LT, b, DT, 1))
    perturbed = (hidden(LS, b, DS, 2), tuple(h.detach() for h in hidden(LT, b, DT, 3)))
    mask = torch.ones(b, T, dtype=torch.long)
    mask[1:, 3:] = 0
    opts = DynamicsOptions(("deviation", "layer_change", "relations", "sensitivity"), relation_angle=True,
                           pooling="tokens")
    anchors = torch.tensor([0, 2, 5])
    used = pool_features(s, t, mask=mask, opts=opts, perturbed=perturbed)
    kept = pool_features(s, t, mask=mask, opts=opts, perturbed=perturbed)
    kept.teacher_scratch = False
    got, want = pooled_costs(used, opts, anchors), pooled_costs(kept, opts, anchors)
    assert used.xt is None and kept.xt is not None
    assert list(got) == list(want) == ["deviation", "layer_change", "relations", "sensitivity"]
    for k in want:
        close(got[k], want[k])
