"""Costs that wait for the plan (``losses/planfirst.py``): the same terms and gradients as the cost tensors, a smaller
backward, and the distiller takes them where its aligner's plan reads the costs without gradient."""

from __future__ import annotations

import pytest
import torch

from dynakd.align import build_aligner
from dynakd.config import build_config
from dynakd.losses import DynamicsOptions, dynamics_costs, feature_dynamics_loss, grams, plan_loss
from dynakd.losses.dynamics import anchors_from_plan
from dynakd.losses.planfirst import PlanFirst
from tests.unit.test_losses import COMPONENTS, DS, DT, FORMS, LS, LT, B, distiller, features, ragged_mask, rand_hidden

T = 7


@pytest.fixture
def token_groups(monkeypatch):
    """Plan-first costs for these tiny token groups (they take it past ``JOINT_BYTES``, which tiny ones do not
    pass)."""
    monkeypatch.setattr(grams, "JOINT_BYTES", 0)


def terms_and_gradients(opts, plan_first, plan, seed=0):
    s, t = rand_hidden(LS, DS, seed, T, requires_grad=True), rand_hidden(LT, DT, seed + 1, T)
    anchors = torch.tensor([0, 2, 4])
    costs = dynamics_costs(s, t, mask=ragged_mask(T), opts=opts, anchors=anchors, plan_first=plan_first)
    terms = {k: plan_loss(plan, c) for k, c in costs.items()}
    sum(terms.values()).backward()
    return costs, {k: v.detach() for k, v in terms.items()}, [h.grad for h in s]


@pytest.mark.parametrize("comp", [c for c in COMPONENTS if c != "sensitivity"])
@pytest.mark.parametrize("forms", FORMS)
@pytest.mark.parametrize("distance", ["mse", "cosine"])
@pytest.mark.parametrize("chunk", ["one", "per_step"])
def test_plan_first_terms_and_gradients_are_those_of_the_cost_tensors(token_groups, monkeypatch, comp, forms,
                                                                      distance, chunk):
    if chunk == "per_step":  # the layer change's teacher forms (and its magnitude's products) a step at a time
        monkeypatch.setattr(grams, "CHUNK_BYTES", 1)
    components, pairs, angle = COMPONENTS[comp]
    opts = DynamicsOptions(components, FORMS[forms], distance, "tokens", pairs, angle)
    plan = torch.rand(LS, LT, generator=torch.Generator().manual_seed(3))
    costs, terms, grads = terms_and_gradients(opts, True, plan)
    assert all(isinstance(c, PlanFirst) for c in costs.values())  # (else the comparison below proves nothing)
    _, want_terms, want_grads = terms_and_gradients(opts, False, plan)
    for k, want in want_terms.items():
        torch.testing.assert_close(terms[k], want, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, want_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_plan_first_leaves_pooled_features_and_small_token_groups_to_the_tensors():
    plan = torch.rand(LS, LT)
    for pooling in ("mean", "tokens"):  # (these tiny token groups stay under JOINT_BYTES)
        costs, _, _ = terms_and_gradients(DynamicsOptions(pooling=pooling), True, plan)
        assert all(isinstance(c, torch.Tensor) for c in costs.values())


def test_a_plan_first_cost_is_used_up_by_its_plan_loss(token_groups):
    s, t = rand_hidden(LS, DS, 0, T, requires_grad=True), rand_hidden(LT, DT, 1, T)
    costs = dynamics_costs(s, t, mask=ragged_mask(T), opts=DynamicsOptions(pooling="tokens"), anchors=[0, 2, 4],
                           plan_first=True)
    plan = torch.rand(LS, LT)
    plan_loss(plan, costs["deviation"])
    with pytest.raises(ValueError, match="used up by an earlier plan_loss"):
        plan_loss(plan, costs["deviation"])


def test_a_learned_plan_takes_its_gradient_from_the_values(token_groups):
    """The plan's own gradient (a learned attention query's) is the costs', as a tensor cost gives it."""
    grads = []
    for plan_first in (True, False):
        plan = torch.rand(LS, LT, generator=torch.Generator().manual_seed(0)).requires_grad_()
        _, _, _ = terms_and_gradients(DynamicsOptions(pooling="tokens"), plan_first, plan)
        grads.append(plan.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)


def test_feature_dynamics_loss_compares_under_its_plan(token_groups):
    s, t = rand_hidden(LS, DS, 0, T), rand_hidden(LT, DT, 1, T)
    plan = torch.rand(LS, LT)
    plan = plan / plan.sum(1, keepdim=True)  # (rows that sum to 1: the plans feature_dynamics_loss takes)
    terms = feature_dynamics_loss(s, t, mask=ragged_mask(T), plan=plan, opts=DynamicsOptions(pooling="tokens"))
    want = {f"dyn/{k}": plan_loss(plan, c) for k, c in dynamics_costs(
        s, t, mask=ragged_mask(T), opts=DynamicsOptions(pooling="tokens"), anchors=anchors_from_plan(plan)).items()}
    as_tensors = feature_dynamics_loss(s, t, mask=ragged_mask(T), plan=plan, opts=DynamicsOptions(pooling="tokens"),
                                       plan_first=False)
    assert terms.keys() == want.keys() == as_tensors.keys()
    for k in want:
        torch.testing.assert_close(terms[k], want[k])
        torch.testing.assert_close(as_tensors[k], want[k])


def random_states(g: int, n: int, ls: int, lt: int):
    """Random hidden states of ``g`` windows of ``n`` tokens (a student of ``ls`` layers, width 32, and a teacher of
    ``lt``, width 48), the module that marks them as there before a ``TensorMemory``, every token valid, a uniform
    plan."""
    gen = torch.Generator().manual_seed(0)
    student = [torch.randn(g, n, 32, generator=gen).requires_grad_() for _ in range(ls + 1)]
    teacher = [torch.randn(g, n, 48, generator=gen) for _ in range(lt + 1)]
    made = torch.nn.Module()
    for i, h in enumerate(student + teacher):
        made.register_buffer(f"h{i}", h)
    return student, teacher, made, torch.ones(g, n, dtype=torch.long), torch.full((ls, lt), 1 / lt)


def test_the_backward_keeps_less_under_the_plan():
    """What the forward leaves to the backward: the layer change's comparisons with every teacher layer, ``[Ls, Lt,
    G, N, N]``, and the teacher's other forms ``[Lt, ...]``, against ``[Ls, ...]`` per form under the plan (4
    windows of 96 tokens, 4 x 12 layers: the token groups pass ``JOINT_BYTES`` as they are)."""
    from dynakd.experiments.bench import TensorMemory

    g, n, ls, lt = 4, 96, 4, 12
    student, teacher, made, mask, plan = random_states(g, n, ls, lt)
    kept = {}
    for plan_first in (False, True):
        with TensorMemory(made) as meter:
            costs = dynamics_costs(student, teacher, mask=mask, opts=DynamicsOptions(pooling="tokens"),
                                   anchors=[0, 3, 6, 9], plan_first=plan_first)
            loss = sum(plan_loss(plan, c) for c in costs.values())
            del costs
            kept[plan_first] = meter.live
        loss.backward()
    change = ls * lt * g * n * n * 4  # the layer change's kept differences, bytes
    assert kept[True] < kept[False] - change


@pytest.mark.parametrize("align,plan_grad,expected", [("ot", False, False), ("ot", True, True),
                                                       ("attention", False, False), ("fixed", False, False)])
def test_aligners_say_whether_their_plan_takes_the_costs_gradient(align, plan_grad, expected):
    cfg = build_config({"align": {"name": align, "plan_grad": plan_grad}})
    assert build_aligner(cfg.align, LS, LT).cost_gradient is expected


def test_the_distiller_asks_its_aligner_each_time():
    d = distiller({"dynamics": {"pooling": "tokens"}})
    assert d.plan_first
    d.aligner.plan_grad = True  # (the plan now takes the costs' gradient: they must come as tensors)
    assert not d.plan_first


@pytest.mark.parametrize("plan_grad,plan_first", [(False, True), (True, True), (False, False)])
def test_the_distiller_waits_for_the_plan_where_it_takes_no_gradient(token_groups, monkeypatch, plan_grad,
                                                                      plan_first):
    """Token-level dynamics in a step: plan-first costs under OT's plan without gradient, the cost tensors with it
    or with ``dynamics.plan_first`` off; the same loss and gradients as the tensors either way."""
    from dynakd.losses import dynamics

    seen, results = [], []
    for force_tensors in (False, True):

        def spy(pooled, opts, anchors, refs, plan_first, ahead=None, *, force_tensors=force_tensors):
            costs = dynamics.pooled_costs(pooled, opts, anchors, refs, plan_first and not force_tensors, ahead)
            seen.append({type(c) for c in costs.values()})
            return costs

        d = distiller({"dynamics": {"pooling": "tokens", "plan_first": plan_first}, "align": {"plan_grad": plan_grad}})
        monkeypatch.setattr("dynakd.distiller.pooled_costs", spy)
        s, t = features(LS, DS, 0, requires_grad=True), features(LT, DT, 1)
        out = d(s, t, torch.tensor([0, 1, 2, 1]), progress=0.5)
        out.loss.backward()
        results.append((out.loss.detach(), [h.grad for h in s.hidden]))
    assert seen[0] == ({PlanFirst} if plan_first and not plan_grad else {torch.Tensor}) and seen[1] == {torch.Tensor}
    torch.testing.assert_close(results[0][0], results[1][0])
    for got, want in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


# ----------------------------------------------------------------------------------------------- the teacher's states
def test_stack_hidden_lets_each_layer_go_and_keeps_their_values():
    import weakref

    from dynakd.features import Features, StackedHidden, stack_hidden

    hidden = tuple(torch.randn(4, 9, 12).half() for _ in range(6))
    alive, want = [weakref.ref(h) for h in hidden], [h.float() for h in hidden]
    feats = Features(torch.zeros(4, 2), hidden, torch.ones(4, 9, dtype=torch.long))
    del hidden
    stack_hidden(feats, scratch=True)
    assert isinstance(feats.hidden, StackedHidden) and feats.hidden.scratch
    assert feats.hidden.stack.shape == (4, 6, 9, 12) and feats.hidden.stack.dtype == torch.float32
    assert all(ref() is None for ref in alive)
    assert all(torch.equal(got, w) for got, w in zip(feats.hidden, want))


@pytest.mark.parametrize("scratch", [False, True])
@pytest.mark.parametrize("plan_first", [False, True])
def test_teacher_states_stacked_ahead_are_read_as_they_are_and_let_go_as_scratch(token_groups, scratch, plan_first):
    """``StackedHidden`` states are the pooled features themselves (no copy); as scratch the costs centre them in
    place and let them go once the Grams and the layer change are made of them, before the other forms (a step's
    peak on short sentences); else they stay as they were. The costs are those of a tuple of the same states."""
    import weakref

    from dynakd.features import StackedHidden
    from dynakd.losses.dynamics import pool_features, pooled_costs

    s, t = rand_hidden(LS, DS, 0, T, requires_grad=True), rand_hidden(LT, DT, 1, T)
    opts, anchors, plan = DynamicsOptions(pooling="tokens"), [0, 2, 4], torch.rand(LS, LT)
    stack = torch.stack(t, dim=1)
    pooled = pool_features(s, StackedHidden(stack.clone() if scratch else stack, scratch), mask=ragged_mask(T),
                           opts=opts)
    assert pooled.teacher_scratch is scratch and pooled.xt.transpose(0, 1).is_contiguous()
    alive = weakref.ref(pooled.xt)
    seen = []
    real = grams._other_forms

    def spy(grams_, gmask, opts_):  # (the deviation's and relations' forms: the features may be gone by then)
        seen.append(alive() is None)
        return real(grams_, gmask, opts_)

    grams._other_forms = spy
    try:
        got = pooled_costs(pooled, opts, anchors, plan_first=plan_first)
    finally:
        grams._other_forms = real
    assert seen and all(seen) is scratch
    want = dynamics_costs(s, t, mask=ragged_mask(T), opts=opts, anchors=anchors)
    for k in want:
        torch.testing.assert_close(plan_loss(plan, got[k]), plan_loss(plan, want[k]))
    if not scratch:
        assert torch.equal(stack, torch.stack(t, dim=1))


def test_the_distiller_takes_the_teacher_states_it_may_stack():
    from dynakd.distiller import _taken_if_scratch
    from dynakd.features import Features, StackedHidden

    assert distiller({"dynamics": {"pooling": "tokens"}}).stacks_teacher
    assert not distiller({"dynamics": {"pooling": "mean"}}).stacks_teacher
    assert not distiller({"dynamics": {"pooling": "tokens"}, "torch_compile": True}).stacks_teacher
    for scratch in (False, True):
        feats = Features(torch.zeros(B, 2), StackedHidden(torch.zeros(B, 3, T, 4), scratch), None)
        hidden = _taken_if_scratch(feats)
        assert len(hidden) == 3 and (feats.hidden == ()) is scratch
