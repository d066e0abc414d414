"""Aligners: fixed maps, attention and optimal transport on random cost matrices (method.md)."""

from __future__ import annotations

import random

import pytest
import torch

from dynakd.align import (
    AttentionAligner,
    FixedAligner,
    OTAligner,
    build_aligner,
    fixed_map,
    one_hot_plan,
    sinkhorn,
    uniform_map,
    uniform_plan,
)
from dynakd.config import AlignConfig
from dynakd.errors import DynaKDError


def rand_cost(ls, lt, seed=0):
    return torch.rand(ls, lt, generator=torch.Generator().manual_seed(seed))


def is_non_decreasing(values):
    return all(a <= b for a, b in zip(values, values[1:]))


# ----------------------------------------------------------------------------------------------- fixed
@pytest.mark.parametrize(
    "ls,lt,expected",
    [(2, 6, [3, 6]), (3, 6, [2, 4, 6]), (6, 12, [2, 4, 6, 8, 10, 12]), (4, 6, [2, 3, 5, 6]), (4, 4, [1, 2, 3, 4])],
)
def test_uniform_map(ls, lt, expected):
    assert uniform_map(ls, lt) == expected
    assert fixed_map(ls, lt) == expected
    assert fixed_map(ls, lt, "uniform") == expected


@pytest.mark.parametrize(
    "ls,lt,mode,expected",
    [
        (3, 6, "skip", [2, 4, 6]),
        (6, 12, "skip", [2, 4, 6, 8, 10, 12]),
        (4, 6, "skip", [1, 2, 3, 4]),
        (3, 6, "last", [4, 5, 6]),
        (2, 12, "last", [11, 12]),
        (2, 6, "reversed", [6, 3]),
        (3, 6, "reversed", [6, 4, 2]),
    ],
)
def test_skip_last_and_reversed_maps(ls, lt, mode, expected):
    assert fixed_map(ls, lt, mode) == expected


def test_explicit_layer_list():
    assert fixed_map(3, 6, layers=[6, 4, 2]) == [6, 4, 2]
    torch.testing.assert_close(FixedAligner(3, 6, layers=[6, 4, 2]).fixed, one_hot_plan([6, 4, 2], 6))


@pytest.mark.parametrize("layers", [[1, 2], [1, 2, 3, 4], [0, 2, 4], [2, 4, 7], [-1, 2, 3]])
def test_bad_explicit_list_raises(layers):
    with pytest.raises(DynaKDError, match="align.layers"):
        fixed_map(3, 6, layers=layers)
    with pytest.raises(DynaKDError):
        FixedAligner(3, 6, layers=layers)


def test_a_student_deeper_than_the_teacher_repeats_teacher_layers_in_the_uniform_map():
    """A deeper --student is allowed (README); the fixed map refused it, so static and pkd could not train it."""
    assert fixed_map(6, 4) == [1, 1, 2, 3, 3, 4] and fixed_map(9, 4)[0] == 1
    assert fixed_map(6, 4, "reversed") == [4, 3, 3, 2, 1, 1]
    for mode in ("skip", "last"):
        with pytest.raises(DynaKDError, match=f"align.fixed_map {mode} picks 6 of the teacher's layers, but it has 4"):
            fixed_map(6, 4, mode)


@pytest.mark.parametrize("ls,lt", [(2, 6), (3, 6), (4, 6), (6, 12)])
def test_fixed_plan_is_one_hot_uniform_and_ignores_cost(ls, lt):
    aligner = FixedAligner(ls, lt)
    expected = uniform_plan(ls, lt)
    assert (expected.sum(1) == 1).all() and ((expected == 0) | (expected == 1)).all()
    for seed in range(3):
        torch.testing.assert_close(aligner(rand_cost(ls, lt, seed)), expected)
    torch.testing.assert_close(aligner(-100 * torch.eye(ls, lt)), expected)
    torch.testing.assert_close(aligner.running_plan, expected)


# ----------------------------------------------------------------------------------------------- attention
@pytest.mark.parametrize("ls,lt", [(2, 6), (4, 6), (6, 12)])
@pytest.mark.parametrize("tau", [0.05, 0.1, 1.0])
def test_attention_rows_sum_to_one_and_prefer_low_cost(ls, lt, tau):
    cost = rand_cost(ls, lt)
    plan = AttentionAligner(ls, lt, tau=tau)(cost)
    torch.testing.assert_close(plan.sum(1), torch.ones(ls))
    assert (plan >= 0).all()
    assert torch.equal(plan.argmax(1), cost.argmin(1))
    for m in range(ls):  # weights are ordered inversely to costs
        order = cost[m].argsort()
        assert is_non_decreasing((-plan[m, order]).tolist())


@pytest.mark.parametrize("factor", [1e-3, 0.5, 7.0, 1e4])
def test_attention_invariant_to_cost_scale(factor):
    cost = rand_cost(3, 6)
    aligner = AttentionAligner(3, 6)
    torch.testing.assert_close(aligner(factor * cost), aligner(cost), rtol=1e-5, atol=1e-6)


def early_layers_cheapest(ls: int, lt: int) -> torch.Tensor:
    """Costs where the first teacher layers are the cheapest for every student layer alike (as on real costs,
    benchmarks/maps-L2), and each student layer is relatively closest to the teacher layer of its own depth."""
    base = torch.linspace(0.5, 1.5, lt)[None, :].repeat(ls, 1)  # early teacher layers cheapest, whatever the row
    own = torch.tensor([round((m + 1) * lt / ls) - 1 for m in range(ls)])
    return base - 0.1 * torch.nn.functional.one_hot(own, lt)


@pytest.mark.parametrize("ls,lt", [(2, 6), (3, 6), (4, 12)])
def test_attention_mends_the_pull_to_early_layers(ls, lt):
    cost = early_layers_cheapest(ls, lt)
    assert (AttentionAligner(ls, lt)(cost).argmax(1) == 0).all()  # every row on the first teacher layer
    own = [round((m + 1) * lt / ls) - 1 for m in range(ls)]
    assert AttentionAligner(ls, lt, relative=True)(cost).argmax(1).tolist() == own
    rows = AttentionAligner(ls, lt, prior=10.0)(cost).argmax(1).tolist()
    assert is_non_decreasing(rows) and rows[0] < lt // 2 <= rows[-1]


@pytest.mark.parametrize("kw", [{"relative": True}, {"prior": 1.0}])
def test_attention_options_keep_rows_and_scale_invariance(kw):
    cost = rand_cost(3, 6)
    aligner = AttentionAligner(3, 6, **kw)
    plan = aligner(cost)
    torch.testing.assert_close(plan.sum(1), torch.ones(3))
    torch.testing.assert_close(aligner(7.0 * cost), plan, rtol=1e-5, atol=1e-6)


def test_relative_attention_needs_two_student_layers():
    with pytest.raises(ValueError, match="2 layers or more"):
        AttentionAligner(1, 6, relative=True)


# ----------------------------------------------------------------------------------------------- ot
@pytest.mark.parametrize("ls,lt", [(2, 6), (3, 6), (4, 12), (6, 12), (3, 3)])
@pytest.mark.parametrize("eps", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sinkhorn_marginals_are_uniform(ls, lt, eps, seed):
    plan = sinkhorn(rand_cost(ls, lt, seed), eps=eps)
    assert plan.shape == (ls, lt) and (plan >= 0).all()
    torch.testing.assert_close(plan.sum(1), torch.full((ls,), 1 / ls), atol=1e-3, rtol=0)
    torch.testing.assert_close(plan.sum(0), torch.full((lt,), 1 / lt), atol=1e-3, rtol=0)


@pytest.mark.parametrize("ls,lt", [(2, 6), (3, 6), (6, 12)])
@pytest.mark.parametrize("eps", [0.2, 0.5])
def test_ot_plan_rows_sum_to_one(ls, lt, eps):
    for seed in range(3):
        plan = OTAligner(ls, lt, eps=eps)(rand_cost(ls, lt, seed))
        torch.testing.assert_close(plan.sum(1), torch.ones(ls), atol=1e-3, rtol=0)


@pytest.mark.parametrize("ls,lt", [(2, 6), (3, 3), (6, 12)])
def test_rows_sum_to_one_at_default_eps(ls, lt):
    for seed in range(3):
        cost = rand_cost(ls, lt, seed)
        torch.testing.assert_close(sinkhorn(cost).sum(1), torch.full((ls,), 1 / ls), atol=1e-3, rtol=0)
        torch.testing.assert_close(OTAligner(ls, lt)(cost).sum(1), torch.ones(ls), atol=1e-3, rtol=0)


@pytest.mark.parametrize("ls,lt", [(2, 6), (3, 6), (4, 6), (6, 12)])
def test_ot_order_prior_gives_monotone_plan(ls, lt):
    plan = OTAligner(ls, lt, prior=10.0)(torch.ones(ls, lt))
    rows = plan.argmax(1).tolist()
    assert is_non_decreasing(rows)
    assert rows[0] < lt // 2 <= rows[-1]  # early student layers prefer early teacher layers


def test_ot_plan_without_grad_on_cost_device():
    cost = rand_cost(3, 6).requires_grad_()
    plan = OTAligner(3, 6)(cost)
    assert plan.device == cost.device and not plan.requires_grad
    with_grad = OTAligner(3, 6, plan_grad=True)(cost)
    assert with_grad.requires_grad
    with_grad.sum().backward()
    assert cost.grad is not None


@pytest.mark.parametrize("aligner", [OTAligner(3, 6), AttentionAligner(3, 6)], ids=["ot", "attention"])
def test_running_plan_moves_in_train_mode_only(aligner):
    start = aligner.running_plan.clone()
    torch.testing.assert_close(start, uniform_plan(3, 6))
    aligner.train()
    aligner(rand_cost(3, 6, 1))
    moved = aligner.running_plan.clone()
    assert not torch.equal(moved, start)
    torch.testing.assert_close(moved.sum(1), torch.ones(3), atol=5e-3, rtol=0)
    aligner.eval()
    aligner(rand_cost(3, 6, 2))
    assert torch.equal(aligner.running_plan, moved)


# ----------------------------------------------------------------------------------------------- build
@pytest.mark.parametrize(
    "cfg,cls",
    [
        (AlignConfig(name="fixed"), FixedAligner),
        (AlignConfig(name="fixed", fixed_map="last"), FixedAligner),
        (AlignConfig(name="attention", tau=0.3, learned=True), AttentionAligner),
        (AlignConfig(name="attention", order_prior=0.5, relative=True), AttentionAligner),
        (AlignConfig(name="ot", eps=0.2, iters=20, order_prior=1.0), OTAligner),
    ],
)
def test_build_aligner(cfg, cls):
    aligner = build_aligner(cfg, 3, 6)
    assert type(aligner) is cls
    assert aligner.n_student == 3 and aligner.n_teacher == 6
    plan = aligner(rand_cost(3, 6))
    assert plan.shape == (3, 6)
    if cls is FixedAligner:
        assert fixed_map(3, 6, cfg.fixed_map) == (plan.argmax(1) + 1).tolist()
    elif cls is AttentionAligner:
        assert (aligner.tau, aligner.prior, aligner.relative) == (cfg.tau, cfg.order_prior, cfg.relative)
        assert (aligner.query is not None) == cfg.learned
        if cfg.learned:
            assert aligner.query.shape == (3, 6)
    else:
        assert (aligner.eps, aligner.iters, aligner.prior, aligner.plan_grad) == (0.2, 20, 1.0, False)


def test_warm_started_sinkhorn_converges_faster_than_cold():
    from dynakd.align.ot import sinkhorn_dual

    gen = torch.Generator().manual_seed(0)
    cost = torch.rand(2, 6, generator=gen)
    ref = sinkhorn(cost, 0.05, 500)
    _, g = sinkhorn_dual(cost, 0.05, 500)
    drifted = cost + 0.005 * torch.rand(2, 6, generator=gen)
    ref2 = sinkhorn(drifted, 0.05, 500)
    warm, _ = sinkhorn_dual(drifted, 0.05, 5, g)
    cold = sinkhorn(drifted, 0.05, 5)
    assert (warm - ref2).abs().max() < 0.2 * (cold - ref2).abs().max()
    assert torch.allclose(sinkhorn(cost, 0.05, 50, g), ref, atol=1e-5)  # a converged start stays converged


def test_ot_aligner_keeps_its_potential_in_training_only():
    aligner = OTAligner(2, 6)
    cost = torch.rand(2, 6, generator=torch.Generator().manual_seed(1))
    aligner.eval()
    aligner(cost)
    assert not aligner.potential.any()
    aligner.train()
    aligner(cost)
    assert aligner.potential.abs().sum() > 0 and "potential" in aligner.state_dict()


@pytest.mark.parametrize("ls,lt", [(2, 6), (3, 6), (4, 12), (6, 12)])
def test_sinkhorn_on_the_host_matches_the_torch_loop(ls, lt):
    """Without gradient the plan is solved with numpy; with gradient in torch: the same plan and potential."""
    from dynakd.align.ot import sinkhorn_dual

    cost, start = rand_cost(ls, lt, 0), torch.randn(lt)
    host_plan, host_g = sinkhorn_dual(cost, 0.05, 20, start)
    torch_plan, torch_g = sinkhorn_dual(cost.clone().requires_grad_(), 0.05, 20, start)
    assert host_plan.dtype == torch.float32 and host_plan.device == cost.device and not host_plan.requires_grad
    torch.testing.assert_close(host_plan, torch_plan.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(host_g, torch_g.detach(), atol=1e-5, rtol=1e-5)


def test_an_unknown_aligner_name_is_refused():
    """(It used to become OT without a word; the config refuses unknown names first, this guards a new aligner that
    is named in the config but has no branch in build_aligner.)"""
    from dynakd.align import build_aligner

    with pytest.raises(ValueError, match="no aligner named 'mine'"):
        build_aligner(AlignConfig(name="mine"), 2, 4)


@pytest.mark.parametrize("aligner", [OTAligner(3, 6), AttentionAligner(3, 6), OTAligner(3, 6, plan_grad=True)])
def test_one_non_finite_cost_does_not_stay_in_the_running_state(aligner):
    """A custom loop may skip a step whose loss is not finite (a GradScaler does) and go on: OT's warm-start
    potential and every aligner's running plan kept that step's NaN, and every later OT plan was NaN."""
    aligner.train()
    aligner(rand_cost(3, 6, 0))
    bad = rand_cost(3, 6, 1)
    bad[0, 2] = float("inf")
    aligner(bad)
    plan = aligner(rand_cost(3, 6, 2))
    assert plan.isfinite().all() and aligner.running_plan.isfinite().all()
    assert aligner.running_plan.sum(1).allclose(torch.ones(3))
    if isinstance(aligner, OTAligner):
        assert aligner.potential.isfinite().all()


@pytest.mark.parametrize("scale", [1e-10, 1e-20, 1e20])
def test_plans_do_not_depend_on_the_scale_of_tiny_costs(scale):
    """Costs were divided by max(mean, 1e-8): below 1e-8 (a late dynamics term) they were left unscaled, as if eps and
    tau were 1e8 times larger, and the plans went flat."""
    cost = rand_cost(3, 6, 3)
    for make in (lambda: OTAligner(3, 6), lambda: AttentionAligner(3, 6)):
        torch.testing.assert_close(make().eval()(cost * scale), make().eval()(cost), rtol=1e-4, atol=1e-5)


def test_a_checkpoint_of_another_fixed_map_is_refused():
    """The map is the config's: loading a checkpoint of another one replaced it without a word."""
    saved = FixedAligner(2, 6, layers=[1, 2]).state_dict()
    with pytest.raises(DynaKDError, match=r"the checkpoint's fixed layer map is \[1, 2\], this run's \[5, 6\]"):
        FixedAligner(2, 6, layers=[5, 6]).load_state_dict(saved)
    FixedAligner(2, 6, layers=[1, 2]).load_state_dict(saved)


def test_the_guard_costs_nothing_under_the_trainer_and_the_fixed_map_moves_nothing():
    """The guard against non-finite plans added operators to every step (fixed 3 -> 9, attention 10 -> 16, OT 20 ->
    32 a call), where DistillationTrainer restores the state itself; the fixed map averaged a plan that never moves."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops += 1
            return func(*args, **(kwargs or {}))

    def ops(aligner, keep):
        aligner.train()
        aligner.keep_finite = keep
        cost = rand_cost(2, 6)
        with Count() as count:
            aligner(cost)
        return count.ops

    assert ops(FixedAligner(2, 6), True) == 0
    for make in (lambda: AttentionAligner(2, 6), lambda: OTAligner(2, 6)):
        assert ops(make(), False) < ops(make(), True)


@pytest.mark.parametrize("aligner", [OTAligner(3, 6, plan_every=3), AttentionAligner(3, 6, plan_every=3)],
                         ids=["ot", "attention"])
def test_a_plan_is_held_for_plan_every_batches_in_training(aligner):
    """``plan_every`` N: the plan of one training batch's costs serves the N - 1 after it, known before their costs
    (``ahead``); evaluation computes its own plans and leaves the count alone."""
    aligner.train()
    assert aligner.ahead() is None  # (no plan yet)
    first = aligner(rand_cost(3, 6, 0))
    held = aligner.ahead()
    torch.testing.assert_close(held, first)
    running = aligner.running_plan.clone()
    for seed in (1, 2):
        assert aligner.ahead() is held
        assert aligner(rand_cost(3, 6, seed)) is held  # (the costs are not read)
    torch.testing.assert_close(aligner.running_plan, running)  # (held batches add nothing to the running plan)
    aligner.eval()
    assert aligner.ahead() is None
    fresh = aligner(rand_cost(3, 6, 7))
    assert not torch.equal(fresh, held)
    aligner.train()
    assert aligner.ahead() is None  # (three batches served: the next computes its own)
    new = aligner(rand_cost(3, 6, 3))
    assert not torch.allclose(new, first)
    torch.testing.assert_close(aligner.held_plan, new)
    assert int(aligner.held_for) == 1


def test_a_held_plan_and_its_count_go_with_the_checkpoint():
    a = OTAligner(2, 4, plan_every=4).train()
    a(rand_cost(2, 4, 0))
    a(rand_cost(2, 4, 1))
    b = OTAligner(2, 4, plan_every=4).train()
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(b.ahead(), a.ahead())
    b(rand_cost(2, 4, 2))
    b(rand_cost(2, 4, 3))
    assert b.ahead() is None  # (four batches: one computed, three held)
    assert "held_plan" not in OTAligner(2, 4).state_dict()  # (plan_every 1: the state as before)


def test_the_fixed_map_is_known_ahead_always():
    a = FixedAligner(2, 4)
    for mode in (a.train, a.eval):
        mode()
        assert a.ahead() is a.fixed and a(rand_cost(2, 4)) is a.fixed


def test_plan_every_refuses_a_plan_with_its_own_gradient():
    with pytest.raises(ValueError, match="plan_every must be 1"):
        OTAligner(2, 4, plan_grad=True, plan_every=2)
    with pytest.raises(ValueError, match="plan_every must be 1"):
        AttentionAligner(2, 4, learned=True, plan_every=2)
    with pytest.raises(ValueError, match="plan_every must be >= 1"):
        OTAligner(2, 4, plan_every=0)


def test_a_plan_that_is_not_finite_is_not_held():
    """A custom loop skips the step of a non-finite plan and goes on: the next batch computes its own plan rather than
    reuse the last one held. Under the trainer (``keep_finite`` off) the run stops there anyway."""
    a = OTAligner(2, 4, plan_every=3).train()
    a(rand_cost(2, 4, 0))
    kept = a.held_plan.clone()
    a._held_for = 3  # (the hold is over: the next batch computes)
    a(torch.full((2, 4), float("nan")))
    assert a.ahead() is None and torch.equal(a.held_plan, kept)
    a(rand_cost(2, 4, 1))
    assert a.ahead() is not None


def test_a_held_plan_is_a_new_tensor_each_time():
    """A loop that back-propagates two batches at once holds what each read: the next plan is not written over it."""
    a = AttentionAligner(2, 4, plan_every=2).train()
    cost = rand_cost(2, 4, 0).requires_grad_()
    first = a(cost)
    held = a(rand_cost(2, 4, 1))
    loss = (held * cost).sum()
    a(rand_cost(2, 4, 2))  # (a new plan to hold)
    loss.backward()
    assert held is not a.held_plan and torch.equal(held, first.detach())


def test_an_aligner_of_ones_own_plugs_into_the_distiller():
    """``Distiller(aligner=...)``: a subclass of ``Aligner`` in place of the config's, its plan the one the loss
    weighs; one built for other depths, a method that compares no layers, or no ``Aligner`` are refused."""
    from dynakd import Distiller, build_config
    from dynakd.align import Aligner
    from dynakd.features import Features

    class Greedy(Aligner):  # each student layer takes the teacher layer of least cost
        cost_gradient = False

        def plan(self, cost):
            return one_hot_plan(cost.detach().argmin(dim=1), self.n_teacher)

    def feats(layers, width, seed):
        g = torch.Generator().manual_seed(seed)
        return Features(torch.randn(4, 2, generator=g), [torch.randn(4, 5, width, generator=g)
                                                          for _ in range(layers + 1)], torch.ones(4, 5))

    dims = dict(student_layers=2, teacher_layers=4, student_width=8, teacher_width=16)
    distiller = Distiller(build_config({"method": "full"}), aligner=Greedy(2, 4), **dims)
    out = distiller(feats(2, 8, 0), feats(4, 16, 1), torch.tensor([0, 1, 0, 1]), progress=0.0)
    assert isinstance(distiller.aligner, Greedy) and out.loss.isfinite()
    assert out.plan.sum(1).tolist() == [1.0, 1.0] and set(out.plan.flatten().tolist()) == {0.0, 1.0}
    with pytest.raises(DynaKDError, match="^the aligner was built for 3 student and 4 teacher layers; this Distiller "
                                          "has 2 and 4$"):
        Distiller(build_config({"method": "full"}), aligner=Greedy(3, 4), **dims)
    with pytest.raises(DynaKDError, match="^method 'kd' compares no layers, so it reads no aligner"):
        Distiller(build_config({"method": "kd"}), aligner=Greedy(2, 4), **dims)
    with pytest.raises(DynaKDError, match=r"^aligner= takes an instance of dynakd.align.Aligner \(its plan\(cost\) "
                                          "method\\), got type"):
        Distiller(build_config({"method": "full"}), aligner=Greedy, **dims)


def test_a_random_map_is_drawn_by_the_seed_distinct_and_in_order():
    """``fixed_map: random``: the control that asks whether it matters which layers are matched (anchors.md: automatic
    alignment must beat the uniform, last-k and random maps); the same seed the same map, in every process."""
    maps = {seed: fixed_map(3, 12, "random", seed=seed) for seed in range(20)}
    for got in maps.values():
        assert got == sorted(set(got)) and len(got) == 3 and 1 <= got[0] and got[-1] <= 12
    assert len({tuple(m) for m in maps.values()}) > 10  # seeds draw other maps
    first = fixed_map(3, 12, "random", seed=7)
    torch.manual_seed(1)
    random.seed(1)
    assert fixed_map(3, 12, "random", seed=7) == first  # the global generators play no part
    assert fixed_map(6, 6, "random", seed=3) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(DynaKDError, match="align.fixed_map random picks 6 of the teacher's layers, but it has 4"):
        fixed_map(6, 4, "random")


def test_a_distiller_draws_its_random_map_by_the_run_seed():
    from dynakd import Distiller, build_config

    def aligner(seed):
        cfg = build_config({"method": "full", "seed": seed, "align": {"name": "fixed", "fixed_map": "random"}})
        return Distiller(cfg, student_layers=2, teacher_layers=6, student_width=8, teacher_width=16).aligner

    maps = {seed: [int(i) + 1 for i in aligner(seed).fixed.argmax(1)] for seed in (1, 2)}
    assert aligner(1).described == "the random map drawn by seed 1"  # (its picture's title, alignment.json's "map")
    assert FixedAligner(2, 6).described == "the uniform map"
    assert maps == {seed: fixed_map(2, 6, "random", seed=seed) for seed in (1, 2)} and maps[1] != maps[2]
    aligner(1).load_state_dict(aligner(1).state_dict())  # a resume draws the map its checkpoint holds
    with pytest.raises(DynaKDError, match="the checkpoint's fixed layer map is"):
        aligner(2).load_state_dict(aligner(1).state_dict())


def test_the_card_names_what_moves_a_plan():
    from dynakd.card import method_label
    from dynakd.config import build_config

    def said(align):
        return method_label(build_config({"method": "full", "align": align}))

    assert said({"name": "attention", "relative": True, "order_prior": 0.5}) == (
        "method `full`, layer aligner `attention` (costs relative to each teacher layer's mean over the student "
        "layers, order prior 0.5)")
    assert said({"name": "ot", "order_prior": 1.0}) == "method `full`, layer aligner `ot` (order prior 1)"
    assert said({"name": "attention", "tau": 0.3}) == "method `full`, layer aligner `attention`"
