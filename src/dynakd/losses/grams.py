"""Pooled dynamics of one group of valid items, from Gram matrices: the path ``pooled_costs`` takes when every item is
valid (pooled features of one process, or gathered from equal batches: the default).

``forms.py`` builds each form from feature vectors and suits every case (masks, token groups). With one group of
valid items the same forms follow from inner products between the samples of a batch, in about as many operators
as there, but smaller ones that allocate less:

- deviation: the Gram ``G`` of the deviations gives the direction form, ``G_ij / (|d_i| |d_j|)``;
- relations: the distances come from the Gram of the centred features (the deviations' with the batch reference),
  ``|x_i - x_j|^2 = G_ii + G_jj - 2 G_ij``, without ``cdist``;
- layer change, teacher side: the change ``x_l - x_a`` from the anchor ``a`` of each student step to every teacher
  layer ``l`` has the centred Gram ``G_ll + G_aa - G_la - G_al`` (the direction form: its diagonal gives the
  norms), and the magnitude form's uncentred norms come from each sample's inner products between its own layers;
  the ``[Ls, Lt, N, d]`` changes are never built. Allocating them cost more than their arithmetic on a 2-core CPU
  (benchmarks/speed/RESULTS.md). Those sums keep the rounding of their terms, so a change below it counts as none:
  a repeated layer or a layer's change to itself, which the change vectors give as 0, and any change under
  ``_above_rounding``'s cut-off (~0.6% of the features' size at width 384, ~1% at 4096; MiniLM-L6's pooled features
  change by 56-74% of their centred size between neighbouring layers);
- past the Grams every form is width-free, so both models' forms are computed at once, one operator for the two.
  The teacher's rows take no gradient of their own, but the backward of those shared operators runs over them too
  (with zeros): a trade against the forward operators saved;
- under ``mse`` the forms of a component are compared as one vector (each scaled by its count of cells), one
  comparison per component instead of one per form.

The costs are those of ``forms.py`` to rounding, gradients too (``tests/unit/test_unmasked_forms.py`` compares them
with the masked path). Only shapes and options decide the operators (no host sync), as ``cudagraphs`` needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import forms as F

# Squared distances below this count as this, so the square root's gradient stays finite: distances under 1e-6 (the
# diagonal, identical samples) read as 1e-6. ``cdist`` returns 0 there; the difference is below float32's rounding.
TINY = 1e-12


def gram_costs(
    xs: torch.Tensor,
    xt: torch.Tensor,
    opts,
    anchors: Sequence[int] | torch.Tensor,
    refs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Cost matrices ``[Ls, Lt]`` of the deviation, layer-change and relations components in ``opts`` (those it
    enables) from pooled features ``xs [Ls+1, N, ds]`` (with gradients) and ``xt [Lt+1, N, dt]``, every item valid.
    ``anchors``, ``refs``: as ``pooled_costs``. The relations' angle form is left to the caller."""
    ref_s, ref_t = refs if refs is not None else (None, None)
    ls, lt, n = xs.shape[0] - 1, xt.shape[0] - 1, xs.shape[-2]
    student = _student_grams(xs, ref_s, opts)
    with torch.no_grad():
        teacher = _teacher_grams(xt, ref_t, opts, anchors)
    # both models in one tensor, the student's rows first: [Ls + Lt, ...] and, for the layer change, [Ls + Ls*Lt, ...]
    both = {k: torch.cat([v, teacher[k].flatten(0, teacher[k].dim() - v.dim())]) for k, v in student.items()}
    cells = {"direction": n * n, "magnitude": n}
    pairs = n - 1 if opts.relation_pairs == "adjacent" else n * (n - 1)
    costs = {}
    if "deviation" in opts.components:
        forms = _shape_forms(both["dev_gram"], both["dev_norms"], None, opts)
        costs["deviation"] = _compare(forms, [cells[f] for f in _forms(opts)], ls, None, opts.distance)
    if "layer_change" in opts.components:
        forms = _shape_forms(both.get("change_gram"), both.get("change_norms"), both.get("change_size"), opts)
        costs["layer_change"] = _compare(forms, [cells[f] for f in _forms(opts)], ls, lt, opts.distance)
    if "relations" in opts.components:
        gram = both.get("centred_gram", both.get("dev_gram"))
        costs["relations"] = _compare([_distances(gram, opts)], [pairs], ls, None, opts.distance)
    return costs


def _forms(opts) -> list[str]:
    """The shape forms on, in the order they are built and compared."""
    return [f for f in ("direction", "magnitude") if f in opts.forms]


def _student_grams(x: torch.Tensor, ref: torch.Tensor | None, opts) -> dict[str, torch.Tensor]:
    """What the student's forms are made of (as ``_teacher_grams`` lists), its changes built: they are small."""
    centred = x - x.mean(-2, keepdim=True)  # every layer: the deviations (batch reference) and the centred changes
    out = _deviation_gram(x, centred[1:], _gram(centred[1:], ref, opts), ref, opts)
    if "layer_change" in opts.components:
        if "direction" in opts.forms:
            change = centred[1:] - centred[:-1]  # the centred change of each step
            out["change_gram"], out["change_norms"] = change @ change.transpose(-1, -2), change.norm(dim=-1)
        if "magnitude" in opts.forms:
            out["change_size"] = (x[1:] - x[:-1]).norm(dim=-1) / x[:-1].norm(dim=-1).clamp_min(F.EPS)
    return out


def _teacher_grams(
    x: torch.Tensor, ref: torch.Tensor | None, opts, anchors: Sequence[int] | torch.Tensor
) -> dict[str, torch.Tensor]:
    """What the teacher's forms are made of: ``dev_gram [Lt, N, N]`` and ``dev_norms [Lt, N]`` (the deviations'
    Gram and norms), and for the layer change from the anchor of each student step to every teacher layer, from
    Grams, ``change_gram [Ls, Lt, N, N]`` (centred), ``change_norms [Ls, Lt, N]`` (its vectors' norms) and
    ``change_size [Ls, Lt, N]`` (the magnitude form)."""
    centred = x - x.mean(-2, keepdim=True)
    change_direction = "layer_change" in opts.components and "direction" in opts.forms
    gram = centred @ centred.transpose(-1, -2) if change_direction else None  # [Lt+1, N, N]
    out = _deviation_gram(x, centred[1:], gram[1:] if change_direction else _gram(centred[1:], ref, opts), ref, opts)
    if "layer_change" in opts.components:
        a = torch.as_tensor(anchors, device=x.device)
        lt, ls, n = x.shape[0] - 1, a.shape[0], x.shape[-2]
        if change_direction:
            # every layer l >= 1 against every anchor, in one product: [Lt*N, d] x [d, Ls*N] -> [Ls, Lt, N(l), N(a)]
            cross = (centred[1:].flatten(0, 1) @ centred[a].flatten(0, 1).T).view(lt, n, ls, n).permute(2, 0, 1, 3)
            sq = gram.diagonal(dim1=-2, dim2=-1)  # [Lt+1, N]
            change = gram[1:] + gram[a].unsqueeze(1) - cross - cross.transpose(-1, -2)  # Gram of the centred changes
            # A change below the rounding of that sum, which the direction would scale up to any size, is none: a
            # layer's change to itself, a repeated layer, and any change under _above_rounding's cut-off.
            itself = (torch.arange(1, lt + 1, device=x.device) == a.unsqueeze(1)).unsqueeze(-1)  # [Ls, Lt, 1]
            real = _above_rounding(change.diagonal(dim1=-2, dim2=-1), sq[1:] + sq[a].unsqueeze(1), x) & ~itself
            out["change_gram"] = change * (real.unsqueeze(-1) & real.unsqueeze(-2))
            out["change_norms"] = out["change_gram"].diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()
        if "magnitude" in opts.forms:
            layers = x.transpose(0, 1)  # [N, Lt+1, d]
            dots = torch.bmm(layers, layers.transpose(1, 2))  # each sample's inner products between its layers
            sq = dots.diagonal(dim1=1, dim2=2)  # [N, Lt+1]
            base = sq[:, a]  # [N, Ls]
            scale = sq[:, 1:].unsqueeze(1) + base.unsqueeze(2)
            change = scale - 2 * dots[:, a, 1:]  # [N, Ls, Lt]: |x_l - x_a|^2
            change = change * _above_rounding(change, scale, x)  # (as the direction's)
            size = change.clamp_min(0).sqrt() / base.sqrt().clamp_min(F.EPS).unsqueeze(2)
            out["change_size"] = size.permute(1, 2, 0)
    return out


def _above_rounding(square: torch.Tensor, scale: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Where a squared norm computed as a sum of inner products, ``scale`` their size, lies above that sum's rounding:
    a dot product of width ``d`` errs by ~``sqrt(d)`` units of the dtype's precision, and the margin is 8x that. In
    float32 the cut-off is a change of ~0.6% of the features' size at width 384, ~0.7% at 768, ~1.1% at 4096 (for
    the magnitude form, of the uncentred features, whose mean the layers share)."""
    return square > (8 * x.shape[-1] ** 0.5 * torch.finfo(x.dtype).eps) * scale


def _gram(centred: torch.Tensor, ref: torch.Tensor | None, opts) -> torch.Tensor | None:
    """The Gram ``[L, N, N]`` of centred features ``[L, N, d]`` where the relations, or the deviation from the batch
    mean, read it."""
    needed = "relations" in opts.components or ("deviation" in opts.components and ref is None)
    return centred @ centred.transpose(-1, -2) if needed else None


def _deviation_gram(
    x: torch.Tensor, centred: torch.Tensor, gram: torch.Tensor | None, ref: torch.Tensor | None, opts
) -> dict[str, torch.Tensor]:
    """The deviation's Gram ``dev_gram [L, N, N]`` (of layers 1.. of ``x [L+1, N, d]`` from the reference) and norms
    ``dev_norms [L, N]``, and the relations' Gram ``centred_gram`` where it is another one. ``centred``: those layers
    centred, ``[L, N, d]``; ``gram``: their Gram (``_gram``), the deviations' with the batch reference."""
    out = {}
    if "deviation" in opts.components:
        dev = centred if ref is None else x[1:] - ref[1:, None, :].to(x.dtype)
        out = {"dev_gram": gram if ref is None else dev @ dev.transpose(-1, -2), "dev_norms": dev.norm(dim=-1)}
    if "relations" in opts.components and (ref is not None or "deviation" not in opts.components):
        # distances do not move with the reference, but a reference far from the batch leaves them to the rounding of
        # large inner products: the centred features' Gram keeps them
        out["centred_gram"] = gram
    return out


def _shape_forms(gram, norms, size, opts) -> list[torch.Tensor]:
    """The direction form (from the Gram and norms) and the magnitude form (``size``, or the norms over their mean)."""
    forms = []
    if "direction" in opts.forms:
        norms_at_least = norms.clamp_min(F.EPS)  # as F.direction's normalisation takes them
        forms.append(gram / (norms_at_least.unsqueeze(-1) * norms_at_least.unsqueeze(-2)))
    if "magnitude" in opts.forms:
        forms.append(size if size is not None else F.relative(norms, None))
    return forms


def _distances(gram: torch.Tensor, opts) -> torch.Tensor:
    """The relations' form from a Gram: distances ``[L, N, N]`` over their mean off the diagonal (RKD), or between
    neighbours ``(i, i+1)`` only, ``[L, N-1]``."""
    sq = gram.diagonal(dim1=-2, dim2=-1)  # [L, N]
    if opts.relation_pairs == "adjacent":
        dist = (sq[:, 1:] + sq[:, :-1] - 2 * gram.diagonal(1, dim1=-2, dim2=-1)).clamp_min(TINY).sqrt()
        return F.relative(dist, None)
    return F.normalised_distances((sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2 * gram).clamp_min(TINY).sqrt(), None)


def _compare(forms: list[torch.Tensor], counts: list[int], ls: int, lt: int | None, distance: str) -> torch.Tensor:
    """Cost ``[Ls, Lt]`` of one component from its forms, both models' in each (the student's ``ls`` rows first):
    the sum over the forms of ``F.layer_costs`` (``F.paired_costs`` where ``lt`` is given: the teacher's rows then
    hold ``[Ls, Lt]`` forms, one per student step). Under ``mse`` the forms go as one vector, each scaled by one over
    the root of its count of cells: the squared distance of the whole is then the sum of the forms' mean squared
    distances."""
    if distance == "mse" and len(forms) > 1:
        forms, counts = [torch.cat([f.flatten(1) * c**-0.5 for f, c in zip(forms, counts)], 1)], [1]
    terms = []
    for form, count in zip(forms, counts):
        a, b = form[:ls], form[ls:].detach()  # (the teacher's rows depend on the teacher's features alone)
        if lt is None:
            terms.append(F.layer_costs(a, b, count, distance=distance))
        else:
            terms.append(F.paired_costs(a, b.reshape(ls, lt, *b.shape[1:]), count, distance=distance))
    return sum(terms[1:], terms[0]) if terms else 0.0  # (no form on: as forms.py's path)
