"""Token-level dynamics on a sample of each window's tokens (``dynamics.token_sample``): which tokens are drawn, that
the costs are those of the states cut to them, and that the distiller draws them in training alone."""

from __future__ import annotations

import pytest
import torch

from dynakd.config import build_config
from dynakd.errors import DynaKDError
from dynakd.features import StackedHidden
from dynakd.losses import DynamicsOptions, dynamics_costs, grams, plan_loss
from dynakd.losses.dynamics import cut_tokens, sample_tokens
from dynakd.losses.planfirst import Windowed
from tests.unit.test_losses import DS, DT, LS, LT, B, distiller, features, perturb, ragged_mask, rand_hidden

T = 7


def test_sample_tokens_draws_real_tokens_in_order():
    mask = ragged_mask(T)  # rows of 7, 5, 6 and 3 real tokens
    torch.manual_seed(0)
    draws = [sample_tokens(mask, 4) for _ in range(20)]
    for index in draws:
        assert index.shape == (B, 4)
        assert torch.equal(index, index.sort(dim=1).values) and all(len(set(row.tolist())) == 4 for row in index)
        real = mask.gather(1, index).bool()
        assert real[:3].all()  # rows with more than 4 real tokens: 4 of them
        assert real[3].sum() == 3  # a row of 3: all three, then one padding position
    assert len({tuple(i.flatten().tolist()) for i in draws}) > 1  # drawn anew each time
    assert {int(p) for i in draws for p in i[0]} == set(range(T))  # any real token may be drawn
    assert sample_tokens(mask, T) is None and sample_tokens(mask, T + 3) is None  # every token kept


@pytest.mark.parametrize("stacked", [False, True])
def test_cut_tokens_keeps_the_layout_and_only_the_positions(stacked):
    layers = [torch.randn(B, T, 5, requires_grad=not stacked) for _ in range(3)]
    hidden = StackedHidden(torch.stack(layers, dim=1).detach(), scratch=False) if stacked else layers
    index = torch.tensor([[0, 2, 3], [1, 4, 6], [0, 1, 2], [2, 5, 6]])
    got = cut_tokens(hidden, index)
    for h, g in zip(layers, got):
        assert torch.equal(g, torch.stack([h[r, index[r]] for r in range(B)]))
    if stacked:  # a stack of its own, laid out as the stack was, that the costs may centre
        assert isinstance(got, StackedHidden) and got.scratch and got.stack.shape == (B, 3, 3, 5)
    else:  # each layer indexed: its backward keeps the positions, not every token's states
        assert all(g.grad_fn.name() == "IndexBackward0" for g in got)


def cut(hidden, index):
    """Each row's states at ``index`` alone: what the forms of the sampled tokens must equal."""
    return tuple(torch.stack([h[g, index[g]] for g in range(h.shape[0])]) for h in hidden)


PATHS = ("tensors", "plan_first", "windows", "windows_plan_ahead")


@pytest.mark.parametrize("components", [("deviation", "layer_change", "relations"), ("sensitivity",)])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("stacked", [False, True])
def test_costs_of_sampled_tokens_are_those_of_the_states_cut_to_them(monkeypatch, components, path, stacked):
    """Every way the costs are computed (the cost tensors, under the plan, in windows with the plan after or before
    the costs): the loss and the student's gradient of the sampled tokens are those of the states cut to them."""
    monkeypatch.setattr(grams, "JOINT_BYTES", 0)  # (plan-first costs for these small groups too)
    t_len, k = 40, 20  # (tokens enough that windows save: a window's forms outweigh the teacher's features)
    opts = DynamicsOptions(components, pooling="tokens", window_mib=1e-6 if path.startswith("windows") else 0)
    anchors, plan = [0, 2, 4], torch.rand(LS, LT, generator=torch.Generator().manual_seed(5))
    ahead = (plan, {}) if path == "windows_plan_ahead" and "sensitivity" not in components else None
    plan_first = path != "tensors"
    s, t = rand_hidden(LS, DS, 0, t_len, requires_grad=True), rand_hidden(LT, DT, 1, t_len)
    pert_s = tuple(h.requires_grad_(True) for h in perturb([h.detach() for h in s], 2))  # (a forward of their own)
    pert = (pert_s, perturb(t, 3)) if "sensitivity" in components else None
    mask = ragged_mask(t_len)  # the last row: 3 real tokens, so 17 padding positions among its 20
    torch.manual_seed(4)
    index = sample_tokens(mask, k)
    teacher = StackedHidden(torch.stack(t, dim=1).clone(), scratch=False) if stacked else t
    got = dynamics_costs(s, teacher, mask=mask, opts=opts, anchors=anchors, perturbed=pert, tokens=index,
                         plan_first=plan_first, ahead=ahead)
    if path.startswith("windows") and "sensitivity" not in components:
        assert all(isinstance(c, Windowed) for c in got.values())  # (else the windows are not what is tested)
    got_loss = sum(plan_loss(plan, c) for c in got.values())
    got_loss.backward()
    got_grads = [h.grad.clone() for h in s]
    got_grads_p = [h.grad.clone() if h.grad is not None else None for h in pert_s]

    s_cut = tuple(h.detach().clone().requires_grad_(True) for h in cut(s, index))
    pert_s_cut = tuple(h.detach().clone().requires_grad_(True) for h in cut(pert_s, index))
    pert_cut = (pert_s_cut, cut(pert[1], index)) if pert else None
    want = dynamics_costs(s_cut, cut(t, index), mask=mask.gather(1, index), opts=DynamicsOptions(components,
                          pooling="tokens", window_mib=0), anchors=anchors, perturbed=pert_cut, plan_first=False)
    want_loss = sum(plan_loss(plan, c) for c in want.values())
    want_loss.backward()
    torch.testing.assert_close(got_loss, want_loss)
    for h, got_grad, want_cut in zip(s + pert_s, got_grads + got_grads_p, s_cut + pert_s_cut):
        if want_cut.grad is None:  # (the perturbed states, where no component reads them)
            assert got_grad is None and pert is None
            continue
        want_grad = torch.zeros_like(h)
        for g in range(B):
            want_grad[g, index[g]] = want_cut.grad[g]
        torch.testing.assert_close(got_grad, want_grad, rtol=1e-4, atol=1e-6)  # none to the tokens left out
    if stacked:
        assert torch.equal(teacher.stack, torch.stack(t, dim=1))  # not scratch: the teacher's states untouched


def test_tokens_are_refused_for_pooled_features():
    s, t = rand_hidden(LS, DS, 0, T), rand_hidden(LT, DT, 1, T)
    with pytest.raises(ValueError, match="pooling 'tokens'"):
        dynamics_costs(s, t, mask=ragged_mask(T), opts=DynamicsOptions(pooling="mean"), anchors=[0, 2, 4],
                       tokens=torch.zeros(B, 2, dtype=torch.long))


def test_the_distiller_samples_tokens_in_training_alone(monkeypatch):
    from dynakd import distiller as distiller_module

    drawn = []
    real = distiller_module.sample_tokens

    def spy(mask, k):
        drawn.append(k)
        return real(mask, k)

    monkeypatch.setattr(distiller_module, "sample_tokens", spy)
    s, t = features(LS, DS, 0), features(LT, DT, 1)
    labels = torch.tensor([0, 1, 2, 1])

    def loss(extra, training):
        d = distiller({"dynamics": {"pooling": "tokens", **extra}})
        d.train(training)
        torch.manual_seed(0)
        return d(s, t, labels, progress=0.5).loss

    every = loss({}, True)
    assert drawn == []
    sampled = loss({"token_sample": 4}, True)
    assert drawn == [4] and not torch.allclose(sampled, every)
    torch.testing.assert_close(loss({"token_sample": 4}, False), loss({}, False))  # evaluation: every token
    assert drawn == [4]
    torch.testing.assert_close(loss({"token_sample": T}, True), every)  # as many as there are: all of them


@pytest.mark.parametrize("dynamics,message", [
    ({"pooling": "mean", "token_sample": 64}, "not for pooling 'mean'"),
    ({"pooling": "tokens", "token_sample": 2}, ">= 3"),
    ({"pooling": "tokens", "token_sample": 16, "relation_pairs": "adjacent"}, "neighbouring tokens"),
    ({"pooling": "tokens", "token_sample": True}, "expected int"),
])
def test_token_sample_is_checked(dynamics, message):
    with pytest.raises(DynaKDError, match=message):
        build_config({"method": "full"}, {"dynamics": dynamics})


def test_token_sample_resolves_with_pooling_auto():
    assert build_config({"method": "full", "task": "squad"}, {"dynamics": {"token_sample": 64}}).dynamics.pooling \
        == "tokens"
    with pytest.raises(DynaKDError, match="not for pooling 'mean'"):
        build_config({"method": "full", "task": "sst2"}, {"dynamics": {"token_sample": 64}})
    assert build_config({"method": "kd", "task": "sst2"}, {"dynamics": {"token_sample": 64}})  # no dynamics: unread


def test_the_distiller_samples_the_teacher_states_it_stacked(monkeypatch):
    """The trainer's teacher comes stacked as scratch (``Distiller.ready_teacher``), the sample's positions alone,
    drawn there once for both models: the same draw, the same loss as from its states as they were."""
    from dynakd import distiller as distiller_module

    drawn = []
    real = distiller_module.sample_tokens
    monkeypatch.setattr(distiller_module, "sample_tokens", lambda mask, k: drawn.append(k) or real(mask, k))
    s, labels, losses = features(LS, DS, 0), torch.tensor([0, 1, 2, 1]), []
    for stacked in (False, True):
        d = distiller({"dynamics": {"pooling": "tokens", "token_sample": 4}})
        t = features(LT, DT, 1)
        torch.manual_seed(0)
        if stacked:
            t = d.ready_teacher(t)
            assert isinstance(t.hidden, StackedHidden) and t.hidden.scratch
            assert t.hidden.stack.shape == (B, LT + 1, 4, DT) and t.hidden.tokens.shape == (B, 4)
        losses.append(d(s, t, labels, progress=0.5).loss)
    torch.testing.assert_close(losses[0], losses[1])
    assert drawn == [4, 4]  # once a step


def test_a_teacher_stacked_at_a_sample_is_read_at_that_sample_alone():
    from dynakd.features import Features, stack_hidden
    from dynakd.losses.dynamics import pool_features

    s, t = rand_hidden(LS, DS, 0, T), rand_hidden(LT, DT, 1, T)
    index = sample_tokens(ragged_mask(T), 4)
    feats = Features(torch.zeros(B, 2), tuple(t), None)
    stack_hidden(feats, scratch=True, tokens=index)
    torch.testing.assert_close(feats.hidden.stack, cut_tokens(StackedHidden(torch.stack(t, dim=1)), index).stack)
    for other in (None, index.clone()):  # read at every token, or at other positions: refused
        with pytest.raises(ValueError, match="positions of their own"):
            pool_features(s, feats.hidden, mask=ragged_mask(T), opts=DynamicsOptions(pooling="tokens"), tokens=other)


def test_tokens_are_drawn_among_those_the_dynamics_see(monkeypatch):
    """Under ``qa_tokens: context`` the tokens are drawn among the context's: the mask they are drawn from is the
    dynamics' (``Distiller.dynamics_masks``)."""
    from dynakd import distiller as distiller_module
    from dynakd.config import DistillConfig, validate
    from dynakd.distiller import Distiller
    from dynakd.features import Features

    seen = []
    real = distiller_module.sample_tokens
    monkeypatch.setattr(distiller_module, "sample_tokens", lambda mask, k: seen.append(mask) or real(mask, k))
    mask = torch.ones(2, 8, dtype=torch.long)
    context = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1, 1, 1]])
    cfg = validate(DistillConfig(task="squad", method="full", max_seq_length=64,
                                 dynamics={"qa_tokens": "context", "token_sample": 3}))
    d = Distiller(cfg, student_layers=1, teacher_layers=2, student_width=8, teacher_width=8, qa=True).train()
    s = Features(torch.zeros(2, 8, 2), tuple(torch.randn(2, 8, 8) for _ in range(2)), mask, context=context)
    t = Features(torch.zeros(2, 8, 2), tuple(torch.randn(2, 8, 8) for _ in range(3)), mask, context=context)
    d.dynamics_costs(s, t, None)
    assert len(seen) == 1 and torch.equal(seen[0], context)
