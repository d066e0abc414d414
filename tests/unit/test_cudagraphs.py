"""``cuda_graphs``: the pooled dynamics replayed from CUDA graphs recorded per shape (``dynakd.cudagraphs``).

On CPU the recording is stood in for by the function itself (``make_graphed_callables`` needs a GPU): what is
checked here is which inputs reach a recording, when one is made and when the eager path is taken; the replay
itself is checked against eager on a GPU (the last test, skipped elsewhere).
"""

from __future__ import annotations

import pytest
import torch

from dynakd import cudagraphs
from dynakd.config import DistillConfig, build_config, validate
from dynakd.cudagraphs import GraphedDynamics
from dynakd.distiller import Distiller
from dynakd.errors import DynaKDError
from dynakd.features import Features
from dynakd.losses import DynamicsOptions
from dynakd.losses.dynamics import pool_features, pooled_costs

ALL = ("deviation", "layer_change", "relations", "sensitivity")


def pooled(batch: int, seed: int = 0, *, device="cpu", sensitivity=True, grad=True):
    g = torch.Generator().manual_seed(seed)

    def hidden(layers, width, requires_grad):
        return tuple(torch.randn(batch, 5, width, generator=g).to(device).requires_grad_(requires_grad)
                     for _ in range(layers + 1))

    s, t = hidden(2, 8, grad), hidden(4, 12, False)
    pert = (hidden(2, 8, grad), hidden(4, 12, False)) if sensitivity else None
    opts = DynamicsOptions(components=ALL if sensitivity else ALL[:3])
    mask = torch.ones(batch, 5, dtype=torch.long, device=device)
    p = pool_features(s, t, mask=mask, opts=opts, perturbed=pert)
    for x in (p.xs, p.xs_p):
        if x is not None and x.requires_grad:
            x.retain_grad()  # (pooled from the hidden states: not a leaf)
    return p, opts


@pytest.fixture
def recorded(monkeypatch):
    """Recordings stood in for by the function itself, on CPU tensors; returns the sample inputs of each."""
    samples = []

    def record(fn, sample_args):
        samples.append(sample_args)
        return fn

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", record)
    monkeypatch.setattr(GraphedDynamics, "applies", staticmethod(lambda p: torch.is_grad_enabled()
                                                                 and p.xs.requires_grad))
    return samples


def test_off_a_gpu_the_costs_are_computed_eagerly():
    p, opts = pooled(6)
    graphed, anchors = GraphedDynamics(opts), torch.tensor([0, 2])
    refs = (torch.randn(3, 8), torch.randn(5, 12))
    got, want = graphed(p, anchors, refs), pooled_costs(p, opts, anchors, refs)
    assert list(got) == list(want) == list(ALL)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert graphed.graphs == {}  # nothing recorded


def test_one_recording_per_shape_with_every_input(recorded):
    """A batch size is recorded once; a new one (the last, smaller batch) once more; the recording gets copies of
    every tensor input (references, anchors, perturbed features) with the gradient flags of the real ones."""
    p, opts = pooled(6)
    graphed, anchors, refs = GraphedDynamics(opts), torch.tensor([0, 2]), (torch.randn(3, 8), torch.randn(5, 12))
    for seed in range(3):
        p, _ = pooled(6, seed)
        got, want = graphed(p, anchors, refs), pooled_costs(p, opts, anchors, refs)
        assert all(torch.allclose(got[k], want[k]) for k in want)
    assert len(recorded) == 1
    sample = recorded[0]
    assert len(sample) == 7  # xs, xt, anchors, ref_s, ref_t, xs_p, xt_p (no mask: one group of valid items)
    assert [t.requires_grad for t in sample] == [True, False, False, False, False, True, False]
    assert all(t.grad_fn is None for t in sample)  # copies, not the step's own tensors
    graphed(pooled(4)[0], anchors, refs)
    graphed(pooled(4)[0], anchors, None)  # without references: another set of inputs
    assert len(recorded) == 3 and len(recorded[2]) == 5


def test_gradients_reach_the_student_as_eagerly(recorded):
    p, opts = pooled(6)
    graphed, anchors = GraphedDynamics(opts), torch.tensor([0, 1])
    sum(graphed(p, anchors).values()).sum().backward()
    got = [x.grad.clone() for x in (p.xs, p.xs_p)]
    q, _ = pooled(6)
    sum(pooled_costs(q, opts, anchors).values()).sum().backward()
    assert all(torch.allclose(a, b.grad) for a, b in zip(got, (q.xs, q.xs_p)))


def test_without_gradients_and_past_the_cap_nothing_is_recorded(recorded, monkeypatch):
    p, opts = pooled(6, grad=False)
    graphed, anchors = GraphedDynamics(opts), torch.tensor([0, 1])
    graphed(p, anchors)  # evaluation: the student's features take no gradient
    with torch.no_grad():
        graphed(pooled(6)[0], anchors)
    assert recorded == []
    monkeypatch.setattr(cudagraphs, "MAX_GRAPHS", 2)
    for batch in (3, 4, 5, 6):
        graphed(pooled(batch)[0], anchors)
    assert len(recorded) == 2 and len(graphed.graphs) == 2  # the other shapes ran eagerly


def features(batch, layers, width, seed, grad):
    g = torch.Generator().manual_seed(seed)
    hidden = tuple(torch.randn(batch, 5, width, generator=g).requires_grad_(grad) for _ in range(layers + 1))
    return Features(logits=torch.randn(batch, 2, generator=g).requires_grad_(grad), hidden=hidden,
                    mask=torch.ones(batch, 5, dtype=torch.long))


@pytest.mark.parametrize("reference", ["batch", "ema"])
def test_the_distiller_gives_the_eager_loss(recorded, reference):
    """The Distiller pools, then hands the pooled features to the recording: same terms, same student gradients."""
    outs = []
    for graphs in (False, True):
        cfg = build_config({"method": "full", "cuda_graphs": graphs, "dynamics": {"reference": reference}})
        distiller = Distiller(cfg, student_layers=2, teacher_layers=4, student_width=8, teacher_width=12).train()
        s, t = features(6, 2, 8, 0, True), features(6, 4, 12, 1, False)
        out = distiller(s, t, torch.tensor([0, 1, 0, 1, 1, 0]), progress=0.3)
        out.loss.backward()
        outs.append((out, s.hidden[1].grad))
    (eager, eager_grad), (graphed, graphed_grad) = outs
    assert len(recorded) == 1
    assert eager.terms.keys() == graphed.terms.keys()
    assert all(torch.allclose(eager.terms[k], graphed.terms[k]) for k in eager.terms)
    assert torch.allclose(eager_grad, graphed_grad)


def test_settings_it_cannot_record_are_refused():
    with pytest.raises(DynaKDError, match="choose one of cuda_graphs and torch_compile"):
        validate(DistillConfig(cuda_graphs=True, torch_compile=True))
    with pytest.raises(DynaKDError, match="pooling 'tokens' would need a graph per padded length"):
        validate(DistillConfig(cuda_graphs=True, dynamics={"pooling": "tokens"}))
    with pytest.raises(DynaKDError, match="pooling 'tokens'"):
        build_config({"task": "squad", "cuda_graphs": True})  # QA pools by token by default
    assert build_config({"method": "kd", "cuda_graphs": True}).cuda_graphs  # nothing to record: a note, not an error
    assert Distiller(build_config({"method": "kd", "cuda_graphs": True}), student_layers=2, teacher_layers=4,
                     student_width=8, teacher_width=12).graphed is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("batch, refs", [(6, False), (32, True)])
def test_replayed_graphs_match_eager_on_a_gpu(batch, refs):
    """Real recordings: three steps of new inputs in the same static buffers, then a smaller batch; the costs and the
    gradients of both student inputs (features and perturbed features). At 32 samples with references, the batch of
    the bench, whose pairwise distances take cdist's matrix-product path (over 25 rows)."""
    _, opts = pooled(batch)
    graphed, anchors = GraphedDynamics(opts), torch.tensor([0, 2], device="cuda")
    g = torch.Generator().manual_seed(9)
    references = (torch.randn(3, 8, generator=g).cuda(), torch.randn(5, 12, generator=g).cuda()) if refs else None
    for n, seed in ((batch, 0), (batch, 1), (batch, 2), (batch - 2, 3)):
        p, _ = pooled(n, seed, device="cuda")
        got = graphed(p, anchors, references)
        sum(c.sum() for c in got.values()).backward()
        q, _ = pooled(n, seed, device="cuda")
        want = pooled_costs(q, opts, anchors, references)
        sum(c.sum() for c in want.values()).backward()
        assert all(torch.allclose(got[k], want[k], rtol=1e-4, atol=1e-6) for k in want)
        assert torch.allclose(p.xs.grad, q.xs.grad, rtol=1e-4, atol=1e-6)
        assert torch.allclose(p.xs_p.grad, q.xs_p.grad, rtol=1e-4, atol=1e-6)
    assert len(graphed.graphs) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("aligner, reference", [("ot", "batch"), ("attention", "ema")])
def test_the_distiller_trains_as_eagerly_on_a_gpu(aligner, reference):
    """Real recordings inside the Distiller, over several optimizer steps: the same terms, the same student
    gradients and the same distiller parameters (learned attention) as the eager Distiller from the same start."""
    runs = []
    for graphs in (False, True):
        torch.manual_seed(0)
        cfg = build_config({"method": "full", "cuda_graphs": graphs, "align": {"name": aligner,
                            "learned": aligner == "attention"}, "dynamics": {"reference": reference}})
        distiller = Distiller(cfg, student_layers=2, teacher_layers=4, student_width=8, teacher_width=12)
        distiller = distiller.cuda().train()
        params = list(distiller.parameters())
        opt = torch.optim.SGD(params, lr=0.1) if params else None
        terms, grads = [], []
        for step, batch in enumerate((6, 6, 6, 4)):
            s, t = features(batch, 2, 8, step, True), features(batch, 4, 12, 100 + step, False)
            s, t = (Features(logits=f.logits.detach().cuda().requires_grad_(f.logits.requires_grad),
                             hidden=tuple(h.detach().cuda().requires_grad_(h.requires_grad) for h in f.hidden),
                             mask=f.mask.cuda()) for f in (s, t))
            out = distiller(s, t, torch.randint(0, 2, (batch,), generator=torch.Generator().manual_seed(step)).cuda(),
                            progress=step / 4)
            out.loss.backward()
            terms.append({k: v.detach().clone() for k, v in out.terms.items()})
            grads.append(s.hidden[1].grad.clone())
            if opt is not None:
                opt.step()
                opt.zero_grad()
        runs.append((terms, grads, [p.detach().clone() for p in params], distiller.graphed))
    (eager_terms, eager_grads, eager_params, _), (terms, grads, params, graphed) = runs
    assert graphed is not None and len(graphed.graphs) == 2
    for want, got in zip(eager_terms, terms):
        assert want.keys() == got.keys()
        assert all(torch.allclose(want[k], got[k], rtol=1e-4, atol=1e-6) for k in want)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(eager_grads, grads))
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(eager_params, params))
