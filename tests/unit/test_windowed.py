"""Token groups' costs a few windows at a time (``dynamics.window_mib``, ``grams.windowed_costs``): the same terms and
gradients as all at once, one pass in the backward for every component, less memory, nothing left for the
collector."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from dynakd.config import build_config
from dynakd.errors import DynaKDError
from dynakd.losses import DynamicsOptions, dynamics_costs, grams, plan_loss
from dynakd.losses.planfirst import PlanFirst, Windowed
from tests.unit.test_losses import COMPONENTS, DS, DT, FORMS, LS, LT, distiller, features, ragged_mask, rand_hidden
from tests.unit.test_plan_first import random_states

T = 24  # (tokens enough that a window's forms, T x T each, outweigh the teacher's features, T x 12: windows save)
TINY = 1e-6  # MiB: one window a chunk


@pytest.fixture
def token_groups(monkeypatch):
    """Plan-first costs for these tiny token groups (past ``JOINT_BYTES``, which tiny ones do not pass)."""
    monkeypatch.setattr(grams, "JOINT_BYTES", 0)


def terms_and_gradients(opts, plan, refs=None, weights=(1.0, 2.0, 3.0), ahead=False):
    """Each component's term, and the gradient to the student's states of the terms weighed each its own way (as the
    distiller weighs them; None: left out of the loss, as the distiller leaves out a term that weighs 0). ``ahead``:
    the plan and those weights given before the costs (one pass in windows)."""
    s, t = rand_hidden(LS, DS, 0, T, requires_grad=True), rand_hidden(LT, DT, 1, T)
    names = [c for c in ("deviation", "layer_change", "relations") if c in opts.components]
    relative = {k: 0.0 if w is None else w for k, w in zip(names, weights)}
    costs = dynamics_costs(s, t, mask=ragged_mask(T), opts=opts, anchors=torch.tensor([0, 2, 4]), refs=refs,
                           plan_first=True, ahead=(plan, relative) if ahead else None)
    terms = {k: plan_loss(plan, c) for k, c in costs.items()}
    sum(w * v for w, v in zip(weights, terms.values()) if w is not None).backward()  # (None: left out, as 0 is)
    return costs, {k: v.detach() for k, v in terms.items()}, [h.grad for h in s]


def options(comp="default", forms="both", window_mib=0.0, distance="mse"):
    components, pairs, angle = COMPONENTS[comp] if comp != "default" else (
        ("deviation", "layer_change", "relations"), "all", False)
    return DynamicsOptions(components, FORMS[forms], distance, "tokens", pairs, angle, window_mib=window_mib)


@pytest.mark.parametrize("comp", ["default", "deviation", "layer_change", "relations_all", "relations_adjacent",
                                  "relations_angle"])
@pytest.mark.parametrize("forms", FORMS)
@pytest.mark.parametrize("chunk", ["one", "per_step"])
@pytest.mark.parametrize("ahead", [False, True], ids=["plan_after", "plan_ahead"])
def test_windowed_terms_and_gradients_are_those_of_the_whole_batch(token_groups, monkeypatch, comp, forms, chunk,
                                                                   ahead):
    if chunk == "per_step":  # the layer change's teacher forms (and its magnitude's products) a step at a time
        monkeypatch.setattr(grams, "CHUNK_BYTES", 1)
    plan = torch.rand(LS, LT, generator=torch.Generator().manual_seed(3))
    passes, gradient = [], grams.Windows.gradient  # (the backward's second pass over the windows)
    monkeypatch.setattr(grams.Windows, "gradient", lambda *a: (passes.append(1), gradient(*a))[1])
    costs, terms, grads = terms_and_gradients(options(comp, forms, TINY), plan, ahead=ahead)
    assert all(isinstance(c, Windowed) for c in costs.values())  # (else the comparison below proves nothing)
    assert len(passes) == (0 if ahead else 1)
    _, want_terms, want_grads = terms_and_gradients(options(comp, forms), plan)
    assert terms.keys() == want_terms.keys()
    for k, want in want_terms.items():
        torch.testing.assert_close(terms[k], want, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, want_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_windows_of_several_groups_and_a_reference(token_groups):
    """Chunks of three windows (the last one shorter), against the running references the distiller passes."""
    g = torch.Generator().manual_seed(5)
    refs = (torch.randn(LS + 1, DS, generator=g), torch.randn(LT + 1, DT, generator=g))
    plan = torch.rand(LS, LT, generator=g)
    # the forms of one window, in MiB: three of them (and a half) make a chunk
    window = sum((LS * LT + LS if c == "layer_change" else LT + LS) for c in ("deviation", "layer_change",
                                                                                "relations")) * T * T * 4 / 2**20
    xs, xt = torch.zeros(LS + 1, 4, T, DS), torch.zeros(LT + 1, 4, T, DT)
    assert grams.window_groups(xs, xt, options(window_mib=3.5 * window)) == 3
    costs, terms, grads = terms_and_gradients(options(window_mib=3.5 * window), plan, refs)
    assert all(isinstance(c, Windowed) for c in costs.values())
    assert len(next(iter(costs.values())).windows.parts) == 2  # groups 0-2, then 3
    _, want_terms, want_grads = terms_and_gradients(options(), plan, refs)
    for k, want in want_terms.items():
        torch.testing.assert_close(terms[k], want, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, want_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_windows_only_where_the_forms_pass_the_budget_and_under_mse(token_groups):
    plan = torch.rand(LS, LT)
    for opts in (options(window_mib=1.0), options(window_mib=0.0), options(window_mib=TINY, distance="cosine")):
        costs, _, _ = terms_and_gradients(opts, plan)
        assert all(type(c) is PlanFirst for c in costs.values()), opts  # (cosine: a norm over every window)


def test_every_component_takes_its_gradient_in_one_pass(token_groups, monkeypatch):
    passes, computed = [], []
    gradient, plan_term = grams.Windows.gradient, grams.plan_loss
    monkeypatch.setattr(grams.Windows, "gradient",
                        lambda self, xs, xt, w: (passes.append(list(w)), gradient(self, xs, xt, w))[1])
    monkeypatch.setattr(grams, "plan_loss", lambda plan, cost: (computed.append(1), plan_term(plan, cost))[1])
    plan = torch.rand(LS, LT, generator=torch.Generator().manual_seed(3))
    _, _, grads = terms_and_gradients(options(window_mib=TINY), plan, weights=(1.0, None, 3.0))
    assert len(passes) == 1
    # each component weighed as the loss weighs it; the one left out gets no gradient and is not computed
    assert [None if w is None else float(w) for w in passes[0]] == [1.0, None, 3.0]
    assert len(computed) == 2 * 4  # two components, four windows
    _, _, want = terms_and_gradients(options(), plan, weights=(1.0, None, 3.0))
    for got, expect in zip(grads, want):
        torch.testing.assert_close(got, expect, rtol=1e-4, atol=1e-6)


def test_the_backward_computes_float32_forms_under_autocast(token_groups):
    """A custom loop may call backward inside autocast: the chunks' forms are float32 there too, as in the forward."""
    plan = torch.rand(LS, LT, generator=torch.Generator().manual_seed(3))
    want = terms_and_gradients(options(), plan)[2]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = terms_and_gradients(options(window_mib=TINY), plan)[2]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


def test_a_second_order_gradient_is_refused(token_groups):
    s, t = rand_hidden(LS, DS, 0, T, requires_grad=True), rand_hidden(LT, DT, 1, T)
    costs = dynamics_costs(s, t, mask=ragged_mask(T), opts=options(window_mib=TINY), anchors=[0, 2, 4],
                           plan_first=True)
    plan = torch.rand(LS, LT)
    loss = sum(plan_loss(plan, c) for c in costs.values())
    (g,) = torch.autograd.grad(loss, s[1], create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        torch.autograd.grad(g.sum(), s[1])


def test_one_plan_for_every_component(token_groups):
    s, t = rand_hidden(LS, DS, 0, T, requires_grad=True), rand_hidden(LT, DT, 1, T)
    costs = dynamics_costs(s, t, mask=ragged_mask(T), opts=options(window_mib=TINY), anchors=[0, 2, 4],
                           plan_first=True)
    plan_loss(torch.rand(LS, LT), costs["deviation"])
    with pytest.raises(ValueError, match="take one plan for all their components"):
        plan_loss(torch.rand(LS, LT), costs["relations"])


def test_a_learned_plan_takes_its_gradient_from_the_values(token_groups):
    grads = []
    for window_mib in (TINY, 0.0):
        plan = torch.rand(LS, LT, generator=torch.Generator().manual_seed(0)).requires_grad_()
        terms_and_gradients(options(window_mib=window_mib), plan)
        grads.append(plan.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)


def test_windows_hold_one_chunk_of_forms():
    """The peak of the costs, forward and backward, at 8 windows of 96 tokens (4 x 12 layers): the forms of one window
    at a time (with the teacher's features kept for the backward) against those of all eight."""
    from dynakd.experiments.bench import TensorMemory

    student, teacher, made, mask, plan = random_states(8, 96, 4, 12)
    peaks, grads = {}, {}
    for window_mib in (0.0, TINY):
        with TensorMemory(made) as meter:
            costs = dynamics_costs(student, teacher, mask=mask, opts=DynamicsOptions(pooling="tokens",
                                                                                     window_mib=window_mib),
                                   anchors=[0, 3, 6, 9], plan_first=True)
            loss = sum(plan_loss(plan, c) for c in costs.values())
            del costs
            loss.backward()
        peaks[window_mib] = meter.peak
        grads[window_mib] = [h.grad.clone() for h in student]
        for h in student:
            h.grad = None
    assert peaks[TINY] < 0.5 * peaks[0.0]
    for got, want in zip(grads[TINY], grads[0.0]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


def test_the_teacher_features_go_once_the_backward_has_run(token_groups):
    """The backward's node saves what the windows need, and lets it go once it has run: the teacher's stacked states
    live until then, not until the step is done, and no cycle keeps them for the collector."""
    from dynakd.features import StackedHidden

    s = rand_hidden(LS, DS, 0, T, requires_grad=True)
    stack = torch.stack(rand_hidden(LT, DT, 1, T), 1)
    stacked = weakref.ref(stack)
    teacher = StackedHidden(stack, scratch=True)
    del stack
    costs = dynamics_costs(s, teacher, mask=ragged_mask(T), opts=options(window_mib=TINY), anchors=[0, 2, 4],
                           plan_first=True)
    del teacher
    windows, plan = weakref.ref(next(iter(costs.values())).windows), torch.rand(LS, LT)
    loss = sum(plan_loss(plan, c) for c in costs.values())
    del costs
    gc.disable()
    try:
        assert stacked() is not None  # (read again in the backward)
        loss.backward()
        assert stacked() is None
        del loss
        assert windows() is None
    finally:
        gc.enable()


def test_the_distiller_takes_its_windows_from_the_config(token_groups, monkeypatch):
    made = []
    windowed = grams.windowed_costs
    monkeypatch.setattr(grams, "windowed_costs", lambda *a: (made.append(1), windowed(*a))[1])
    d = distiller({"dynamics": {"pooling": "tokens", "window_mib": TINY}})
    assert d.opts.window_mib == TINY
    s, t = features(LS, DS, 0, requires_grad=True, t=T), features(LT, DT, 1, t=T)
    out = d(s, t, torch.tensor([0, 1, 2, 1]), progress=0.5)
    out.loss.backward()
    assert made == [1]
    whole = distiller({"dynamics": {"pooling": "tokens", "window_mib": 0}})
    s2, t2 = features(LS, DS, 0, requires_grad=True, t=T), features(LT, DT, 1, t=T)
    want = whole(s2, t2, torch.tensor([0, 1, 2, 1]), progress=0.5)
    want.loss.backward()
    torch.testing.assert_close(out.loss, want.loss)
    for got, expect in zip(s.hidden, s2.hidden):
        torch.testing.assert_close(got.grad, expect.grad, rtol=1e-4, atol=1e-7)
    assert build_config({}).dynamics.window_mib is None  # (by the device: grams.window_budget)
    for bad, message in ((-1, "must be a number >= 0"), (float("inf"), "must be a finite number")):
        with pytest.raises(DynaKDError, match=f"dynamics.window_mib {message}"):
            build_config({"dynamics": {"window_mib": bad}})
    with pytest.raises(ValueError, match="DynamicsOptions.window_mib must be a number >= 0"):
        DynamicsOptions(window_mib=-1.0)


def test_no_windows_where_they_would_keep_more_than_they_save(token_groups):
    """Windows keep the teacher's features to the backward: where a window's forms are smaller than they are (few
    tokens, a wide teacher), the forms of the other windows save less than that, and the batch is taken whole."""
    opts = options(window_mib=TINY)
    assert grams.window_groups(torch.zeros(LS + 1, 4, T, DS), torch.zeros(LT + 1, 4, T, DT), opts) == 1
    assert grams.window_groups(torch.zeros(LS + 1, 4, T, DS), torch.zeros(LT + 1, 4, T, 40 * T), opts) == 4


def test_unset_windows_follow_the_device():
    """Unset, windows of 32 MiB on a CPU, where they took less time over a SQuAD epoch than all at once, and all at
    once elsewhere (a GPU's launches; not yet measured there); a number given holds on every device."""
    unset = DynamicsOptions(pooling="tokens")
    assert unset.window_mib is None
    assert grams.window_budget(unset, torch.zeros(1)) == 32.0
    assert grams.window_budget(unset, torch.zeros(1, device="meta")) == 0.0
    for given in (0.0, 8.0):
        opts = DynamicsOptions(pooling="tokens", window_mib=given)
        assert grams.window_budget(opts, torch.zeros(1)) == grams.window_budget(opts, torch.zeros(1, device="meta"))
    # at SQuAD's scale (32 windows of 384 tokens, 2 x 6 layers) a CPU takes them one at a time; the meta device
    # (standing for a GPU: shapes alone) takes the batch whole
    for device, per in (("meta", 32), ("cpu", 1)):  # (expanded: the shapes of a batch without its bytes)
        xs, xt = (torch.zeros(n, 32, 1, 1, device=device).expand(n, 32, 384, 384) for n in (3, 7))
        assert grams.window_groups(xs, xt, unset) == per


def test_a_plan_known_ahead_takes_the_weights_it_was_given(token_groups):
    """With the plan known ahead, the gradient is taken with the values, for the components' relative weights: a loss
    that weighs them so (any common factor, a component left out where its weight is 0) gets the whole batch's
    gradient; one that weighs them otherwise is refused, not given a wrong gradient."""
    plan = torch.rand(LS, LT, generator=torch.Generator().manual_seed(4))
    _, _, want = terms_and_gradients(options(), plan, weights=(0.5, None, 1.5))
    s, t = rand_hidden(LS, DS, 0, T, requires_grad=True), rand_hidden(LT, DT, 1, T)
    relative = {"deviation": 1.0, "layer_change": 0.0, "relations": 3.0}
    costs = dynamics_costs(s, t, mask=ragged_mask(T), opts=options(window_mib=TINY), anchors=torch.tensor([0, 2, 4]),
                           plan_first=True, ahead=(plan, relative))
    terms = {k: plan_loss(plan, c) for k, c in costs.items()}
    (0.5 * terms["deviation"] + 1.5 * terms["relations"]).backward()
    for got, expect in zip([h.grad for h in s], want):
        torch.testing.assert_close(got, expect, rtol=1e-4, atol=1e-6)
    for weights in ((1.0, 1.0, 1.0), (1.0, None, None)):
        costs = dynamics_costs(s, t, mask=ragged_mask(T), opts=options(window_mib=TINY), anchors=[0, 2, 4],
                               plan_first=True, ahead=(plan, relative))
        terms = list(plan_loss(plan, c) for c in costs.values())
        with pytest.raises(ValueError, match="took their gradient with the plan known ahead"):
            sum(w * v for w, v in zip(weights, terms) if w is not None).backward()
    costs = dynamics_costs(s, t, mask=ragged_mask(T), opts=options(window_mib=TINY), anchors=[0, 2, 4],
                           plan_first=True, ahead=(plan, relative))
    with pytest.raises(ValueError, match="took their gradient under the plan given as ahead="):  # (another plan)
        plan_loss(plan + 0.01, costs["deviation"])
    for h in s:  # an equal copy of the plan given is the same plan: the same gradient as under the plan itself
        h.grad = None
    costs = dynamics_costs(s, t, mask=ragged_mask(T), opts=options(window_mib=TINY), anchors=[0, 2, 4],
                           plan_first=True, ahead=(plan, relative))
    (0.5 * plan_loss(plan.clone(), costs["deviation"]) + 1.5 * plan_loss(plan.clone(), costs["relations"])).backward()
    for got, expect in zip([h.grad for h in s], want):
        torch.testing.assert_close(got, expect, rtol=1e-4, atol=1e-6)


def test_a_plan_known_ahead_lets_the_teacher_go_with_the_pass(token_groups):
    """One pass: the teacher's stacked states are not kept for the backward."""
    from dynakd.features import StackedHidden

    s = rand_hidden(LS, DS, 0, T, requires_grad=True)
    stack = torch.stack(rand_hidden(LT, DT, 1, T), 1)
    stacked = weakref.ref(stack)
    teacher = StackedHidden(stack, scratch=True)
    del stack
    plan = torch.rand(LS, LT)
    costs = dynamics_costs(s, teacher, mask=ragged_mask(T), opts=options(window_mib=TINY), anchors=[0, 2, 4],
                           plan_first=True, ahead=(plan, {}))
    del teacher
    gc.disable()
    try:
        assert stacked() is None
    finally:
        gc.enable()
    sum(plan_loss(plan, c) for c in costs.values()).backward()
    assert all(h.grad is not None for h in s[1:])


def test_no_gradient_no_second_pass(token_groups):
    """Under no_grad (evaluation) a plan given ahead changes nothing: the values alone."""
    plan = torch.rand(LS, LT)
    s, t = rand_hidden(LS, DS, 0, T), rand_hidden(LT, DT, 1, T)
    with torch.no_grad():
        got = dynamics_costs(s, t, mask=ragged_mask(T), opts=options(window_mib=TINY), anchors=[0, 2, 4],
                             plan_first=True, ahead=(plan, {}))
        want = dynamics_costs(s, t, mask=ragged_mask(T), opts=options(), anchors=[0, 2, 4], plan_first=True)
    for k, c in want.items():
        torch.testing.assert_close(got[k].value, c.value, rtol=1e-5, atol=1e-6)


def test_the_distiller_passes_a_held_plan_ahead(token_groups, monkeypatch):
    """``align.plan_every``: the batches that reuse a held plan take their windows in one pass, with the same terms and
    gradients as two; the batch that computes the plan takes two (its costs come first)."""
    passes, gradient = [], grams.Windows.gradient  # (the backward's second pass over the windows)
    monkeypatch.setattr(grams.Windows, "gradient", lambda *a: (passes.append(1), gradient(*a))[1])

    def two_batches(one_pass: bool) -> list:
        d = distiller({"dynamics": {"pooling": "tokens", "window_mib": TINY, "weights": {"relations": 2.0}},
                       "align": {"plan_every": 2}}).train()
        if not one_pass:
            d._ahead = lambda: None
        got = []
        for seed in (0, 1):
            s, t = features(LS, DS, seed, requires_grad=True, t=T), features(LT, DT, 10 + seed, t=T)
            out = d(s, t, torch.tensor([0, 1, 2, 1]), progress=0.5)
            out.loss.backward()
            got.append((out.loss.detach(), {k: v.detach() for k, v in out.terms.items()}, [h.grad for h in s.hidden]))
        return got

    results = two_batches(one_pass=True)
    assert len(passes) == 1
    want = two_batches(one_pass=False)
    assert len(passes) == 3
    for (loss, terms, grads), (want_loss, want_terms, want_grads) in zip(results, want):
        torch.testing.assert_close(loss, want_loss)
        for k, v in want_terms.items():
            torch.testing.assert_close(terms[k], v)
        for g, w in zip(grads, want_grads):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-7)


def test_no_plan_ahead_under_term_balancing_and_the_count_restored_with_the_state():
    d = distiller({"dynamics": {"pooling": "tokens"}, "align": {"plan_every": 3}, "balance": True}).train()
    d.aligner(torch.rand(LS, LT))
    assert d.aligner.ahead() is not None and d._ahead() is None  # (balancing divides by the values)
    d = distiller({"dynamics": {"pooling": "tokens"}, "align": {"plan_every": 3}}).train()
    d.aligner(torch.rand(LS, LT))
    snapshot = d.snapshot()
    d.aligner(torch.rand(LS, LT))
    d.aligner(torch.rand(LS, LT))
    assert d._ahead() is None
    d.restore(snapshot)  # (a step that stopped: as the trainer restores it)
    plan, relative = d._ahead()
    assert plan is d.aligner.held_plan and relative == {"deviation": 1.0, "layer_change": 1.0, "relations": 1.0}


def test_a_held_plan_sums_no_cost_over_processes(monkeypatch):
    """Every process holds the same plan, computed from costs summed over them: the batches that reuse it sum none."""
    synced = []
    monkeypatch.setattr("dynakd.distiller.distributed.synced_cost", lambda c: (synced.append(1), c)[1])
    d = distiller({"align": {"plan_every": 3}}).train()
    for seed in range(4):
        d(features(LS, DS, seed, requires_grad=True), features(LT, DT, 10 + seed), torch.tensor([0, 1, 2, 1]),
          progress=0.5)
    assert len(synced) == 2  # (batches 1 and 4)


@pytest.mark.parametrize("ahead", [False, True], ids=["plan_after", "plan_ahead"])
def test_a_chunk_under_joint_bytes_takes_its_costs_as_tensors(ahead):
    """The default ``JOINT_BYTES``: chunks of three windows (96 tokens, 12 teacher layers) pass it and compare under
    the plan, the last chunk of two does not and gets tensor costs with their graph. Both kinds sum to the whole
    batch's terms and gradient, in one pass or two (the one-pass values are taken without their graph)."""
    student, teacher, _, mask, plan = random_states(8, 96, 4, 12)
    three, two = (grams._gram_bytes(torch.zeros(13, g, 96, 1)) for g in (3, 2))  # (a chunk's teacher Grams)
    assert three > grams.JOINT_BYTES > two
    group = (4 * 12 + 4 + 12 + 4 + 12 + 4) * 96 * 96 * 4 / 2**20  # a window's forms, MiB
    anchors = [0, 3, 6, 9]
    got = {}
    for window_mib in (3.5 * group, 0.0):
        opts = DynamicsOptions(pooling="tokens", window_mib=window_mib)
        costs = dynamics_costs(student, teacher, mask=mask, opts=opts, anchors=anchors, plan_first=True,
                               ahead=(plan, {}) if ahead and window_mib else None)
        if window_mib:
            assert [len(range(8)[p]) for p in next(iter(costs.values())).windows.parts] == [3, 3, 2]
        terms = {k: plan_loss(plan, c) for k, c in costs.items()}
        sum(terms.values()).backward()
        got[window_mib] = ({k: v.detach() for k, v in terms.items()}, [h.grad.clone() for h in student])
        for h in student:
            h.grad = None
    (terms, grads), (want_terms, want_grads) = got.values()
    for k, v in want_terms.items():
        torch.testing.assert_close(terms[k], v, rtol=1e-5, atol=1e-6)
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-7)


def test_the_distiller_takes_one_pass_under_the_fixed_map(token_groups, monkeypatch):
    """The fixed map is known before every batch's costs: one pass, the terms and gradient of two."""
    passes, gradient = [], grams.Windows.gradient
    monkeypatch.setattr(grams.Windows, "gradient", lambda *a: (passes.append(1), gradient(*a))[1])
    results = []
    for one_pass in (True, False):
        d = distiller({"dynamics": {"pooling": "tokens", "window_mib": TINY}, "align": {"name": "fixed"}}).train()
        if not one_pass:
            d._ahead = lambda: None
        s, t = features(LS, DS, 0, requires_grad=True, t=T), features(LT, DT, 1, t=T)
        out = d(s, t, torch.tensor([0, 1, 2, 1]), progress=0.5)
        out.loss.backward()
        results.append((out.loss.detach(), [h.grad for h in s.hidden]))
    assert passes == [1]  # (the second distiller's)
    torch.testing.assert_close(results[0][0], results[1][0])
    for g, w in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-7)


def test_a_second_backward_of_one_pass_gives_the_same_gradient(token_groups):
    """``retain_graph``: the gradient taken ahead is kept for a second backward, not scaled in place by the first."""
    s, t = rand_hidden(LS, DS, 0, T, requires_grad=True), rand_hidden(LT, DT, 1, T)
    plan = torch.rand(LS, LT)
    costs = dynamics_costs(s, t, mask=ragged_mask(T), opts=options(window_mib=TINY), anchors=[0, 2, 4],
                           plan_first=True, ahead=(plan, {}))
    loss = 2 * sum(plan_loss(plan, c) for c in costs.values())
    loss.backward(retain_graph=True)
    first = s[1].grad.clone()
    loss.backward()
    torch.testing.assert_close(s[1].grad, 2 * first)


def test_a_copy_of_a_plan_with_nan_is_the_same_plan():
    """``torch.equal`` calls a plan holding NaN another plan than its copy (a review): values compared NaN for NaN,
    shapes first (no broadcast)."""
    plan = torch.tensor([[0.5, float("nan")], [1.0, 0.0]])
    assert grams._same_values(plan, plan.clone()) and grams._same_values(plan, plan.double())
    assert not grams._same_values(plan, plan.nan_to_num()) and not grams._same_values(plan, plan[:1])
    third = torch.full((2, 3), 1 / 3)  # a rounded copy is another plan, either way round
    assert not grams._same_values(third, third.half()) and not grams._same_values(third.half(), third)
