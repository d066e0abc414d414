"""Width-free forms of a set of vectors, and pairwise layer costs between such forms.

Every form takes ``X [..., G, N, d]`` with a validity mask ``[G, N]``: G groups of N items each. Pooled dynamics use
one group whose items are the samples of a batch (G = 1, N = B); token-level dynamics use one group per sample whose
items are its tokens (G = B, N = T). Masked items contribute nothing. A mask of None means every item is valid: the
forms then skip the masking, which on a GPU is mostly kernel launches. All forms are invariant to the hidden width,
to an orthogonal rotation and to a global scaling of the features.

Reference: Tung & Mori 2019 (similarity-preserving KD, batch Gram matrices); Park et al. 2019 (RKD distance and
angle forms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-6


def check_layers(name: str, shape, layers: tuple[int, int]) -> None:
    """Refuse a plan (or a mask of pairs) ``name`` of another shape than ``layers``, the student's and teacher's
    layer counts that the hidden states give: a cost of the wrong shape broadcast against it without a word."""
    if tuple(shape) != tuple(layers):
        raise ValueError(f"{name} {list(shape)} does not match the layers: the hidden states give a student of "
                         f"{layers[0]} and a teacher of {layers[1]} layers (each model's L + 1 hidden states, index 0 "
                         f"the embedding output), so {name} is {list(layers)}")


def masked_center(x: torch.Tensor, mask: torch.Tensor | None, in_place: bool = False) -> torch.Tensor:
    """Subtract the mean over the valid items of each group; masked items 0. ``x [..., G, N, d]``, ``mask [G, N]``.
    ``in_place``: in ``x`` itself (no gradient through it)."""
    if mask is None:
        mean = x.mean(-2, keepdim=True)
        return x.sub_(mean) if in_place else x - mean
    m = mask.to(x.dtype).unsqueeze(-1)  # [G, N, 1]
    masked = x.mul_(m) if in_place else x * m
    mean = masked.sum(-2, keepdim=True) / m.sum(-2, keepdim=True).clamp_min(1.0)  # [..., G, 1, d]
    return (x.sub_(mean) if in_place else x - mean).mul_(m)  # (in place: one copy of x where a product makes two)


def deviation(x: torch.Tensor, mask: torch.Tensor | None, ref: torch.Tensor | None) -> torch.Tensor:
    """Each item's deviation from ``ref [..., d]`` (one per layer of ``x [..., G, N, d]``), or from its group's mean
    when None; masked items 0."""
    if ref is None:
        return masked_center(x, mask)
    dev = x - ref[..., None, None, :].to(x.dtype)
    return dev if mask is None else dev * mask.to(x.dtype).unsqueeze(-1)


def direction(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Cosine-similarity structure ``[..., G, N, N]`` of the rows of ``x``; masked rows and columns are 0."""
    u = F.normalize(x, dim=-1, eps=EPS)
    if mask is not None:
        u = u * mask.to(x.dtype).unsqueeze(-1)
    return u @ u.transpose(-1, -2)


def relative(norms: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Norms divided by their mean over the valid items of the group: ``[..., G, N]``, masked items 0."""
    if mask is None:
        return norms / norms.mean(-1, keepdim=True).clamp_min(EPS)
    m = mask.to(norms.dtype)
    mean = (norms * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp_min(1.0)
    return norms * m / mean.clamp_min(EPS)


def magnitude(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``||x_i|| / mean_j ||x_j||`` per group: ``[..., G, N]``."""
    return relative(x.norm(dim=-1), mask)


def distances(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Pairwise distances normalised by their mean over valid off-diagonal pairs (RKD distance form).

    The diagonal is zeroed explicitly: for N > 25 ``cdist`` takes a matrix-product path whose self-distances are not
    exactly 0.
    """
    return normalised_distances(torch.cdist(x, x), mask)


def normalised_distances(d: torch.Tensor, mask: torch.Tensor | None, in_place: bool = False) -> torch.Tensor:
    """Pairwise distances ``d [..., G, N, N]`` with the diagonal zeroed, over their mean over valid off-diagonal pairs
    (RKD's normalisation); masked pairs 0. ``in_place``: in ``d`` itself (no gradient through it)."""
    n = d.shape[-1]
    if mask is None:
        eye = torch.eye(n, dtype=torch.bool, device=d.device)
        d = d.masked_fill_(eye, 0.0) if in_place else d.masked_fill(eye, 0.0)
        mean = (d.sum((-1, -2), keepdim=True) / max(n * (n - 1), 1)).clamp_min(EPS)
    else:
        pair = pair_mask(mask).to(d.dtype)
        d = d.mul_(pair) if in_place else d * pair
        mean = (d.sum((-1, -2), keepdim=True) / pair.sum((-1, -2), keepdim=True).clamp_min(1.0)).clamp_min(EPS)
    return d.div_(mean) if in_place else d / mean


def adjacent_distances(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Distances between neighbours ``(i, i+1)`` only, normalised by their mean (the cheap relation form)."""
    d = (x[..., 1:, :] - x[..., :-1, :]).norm(dim=-1)  # [..., G, N-1]
    return relative(d, None if mask is None else mask[..., 1:] & mask[..., :-1])


def angles(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Cosines of the angles between difference vectors ``x_i - x_j`` and ``x_k - x_j`` (RKD angle form).

    Costs O(N^3) memory per group: meant for pooled dynamics with moderate batches.
    """
    e = F.normalize(x.unsqueeze(-3) - x.unsqueeze(-2), dim=-1, eps=EPS)  # [..., G, N(j), N(i), d]
    cos = e @ e.transpose(-1, -2)  # [..., G, N(j), N(i), N(k)]
    if mask is None:
        return cos
    m = mask.to(x.dtype)
    valid = m[:, :, None, None] * m[:, None, :, None] * m[:, None, None, :]
    return cos * valid


def cell_counts(mask: torch.Tensor | None, x: torch.Tensor) -> dict[str, torch.Tensor | int]:
    """Valid cells of the direction and magnitude forms of ``x [..., G, N, d]``; known from the shape without a mask
    (a Python number: no tensor operator)."""
    if mask is None:
        g, n = x.shape[-3], x.shape[-2]
        return {"direction": g * n * n, "magnitude": g * n}
    outer = mask.unsqueeze(-1) & mask.unsqueeze(-2)
    return {"direction": outer.sum(), "magnitude": mask.sum()}


def pair_count(mask: torch.Tensor | None, x: torch.Tensor, pairs: str = "all") -> torch.Tensor | int:
    """Valid pairs of the relations' distance form of ``x [..., G, N, d]``: every ordered pair of two items
    (``all``), or neighbours (``adjacent``)."""
    g, n = x.shape[-3], x.shape[-2]
    if pairs == "adjacent":
        return g * (n - 1) if mask is None else (mask[..., 1:] & mask[..., :-1]).sum()
    return g * n * (n - 1) if mask is None else pair_mask(mask).sum()


def pair_mask(mask: torch.Tensor) -> torch.Tensor:
    """Valid (i, j) pairs with i != j: ``[G, N, N]`` bool."""
    eye = torch.eye(mask.shape[-1], dtype=torch.bool, device=mask.device)
    return mask.unsqueeze(-1) & mask.unsqueeze(-2) & ~eye


def layer_costs(
    a: torch.Tensor, b: torch.Tensor, n_valid: torch.Tensor | int, *, distance: str = "mse"
) -> torch.Tensor:
    """Discrepancy between every student form ``a[m]`` and teacher form ``b[l]``: ``[Ls, Lt]``.

    ``a [Ls, *S]`` and ``b [Lt, *S]`` hold forms of the same shape whose masked cells are already 0; ``n_valid`` is
    the number of valid cells, so ``mse`` is the mean squared difference over valid cells only (padding never
    changes it). ``cosine`` is 1 - cosine similarity of the flattened forms (two zero forms: 0).
    Computed with matrix products, never an ``[Ls, Lt, *S]`` tensor.
    """
    a = a.flatten(1).float()
    b = b.flatten(1).float()
    if distance == "cosine":
        na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1)  # [Ls, 1], [Lt]
        return _cosine_distance(a @ b.T, na, nb)
    # |a|^2 + |b|^2 - 2 a.b; the teacher's |b|^2 from its norms, no temporary its size (token groups' forms: the
    # largest tensors of a step)
    sq = torch.addmm((a * a).sum(1, keepdim=True) + torch.linalg.vector_norm(b, dim=1).square(), a, b.T, alpha=-2)
    return sq.clamp_min(0.0) / at_least_one(n_valid)


def paired_costs(
    a: torch.Tensor, b: torch.Tensor, n_valid: torch.Tensor | int, *, distance: str = "mse"
) -> torch.Tensor:
    """Like ``layer_costs`` when the teacher side already depends on the student layer: ``b [Ls, Lt, *S]``."""
    a = a.flatten(1).float().unsqueeze(1)  # [Ls, 1, K]
    b = b.flatten(2).float()  # [Ls, Lt, K]
    if distance == "cosine":
        return _cosine_distance((a * b).sum(-1), a.norm(dim=-1), b.norm(dim=-1))
    if not torch.is_grad_enabled():  # (values alone, planfirst.py: one temporary the teacher side's size, not two)
        return (a - b).square_().sum(-1) / at_least_one(n_valid)
    return ((a - b) ** 2).sum(-1) / at_least_one(n_valid)


def weighed(weights: torch.Tensor, b: torch.Tensor, distance: str = "mse", paired: bool = False) -> torch.Tensor:
    """The teacher's forms summed under weights ``W [Ls, Lt]``: ``sum_l W_ml b_l`` of ``b [Lt, *S]``, or with
    ``paired`` of ``b [Ls, Lt, *S]``, which depend on the student's layer (``paired_costs``); under ``cosine`` of the
    unit forms, ``b_l / |b_l|``. ``[Ls, K]`` (``planfirst.py``)."""
    b = b.flatten(2 if paired else 1).float()
    if distance == "cosine":
        weights = weights / b.norm(dim=-1).clamp_min(EPS)
    return torch.bmm(weights.unsqueeze(1), b).squeeze(1) if paired else weights @ b


def plan_surrogate(
    a: torch.Tensor, summed: torch.Tensor, rows: torch.Tensor, n_valid: torch.Tensor | int, *, distance: str = "mse"
) -> torch.Tensor:
    """A scalar of value 0 whose gradient to the student's forms ``a [Ls, *S]`` is that of ``sum_ml W_ml C_ml``
    (``layer_costs``, ``paired_costs``) under weights ``W`` without gradient, from the teacher's forms summed under
    them, ``summed`` (``weighed``), and ``rows [Ls] = sum_l W_ml`` (``planfirst.py``)."""
    a = a.flatten(1).float()
    if distance == "cosine":
        s = -((a * summed).sum(1) / a.norm(dim=1).clamp_min(EPS)).sum()
    else:  # the gradient of a . (w a - 2 B) is 2 (w a - B)
        s = (a * (rows.unsqueeze(1) * a - 2 * summed)).sum() / at_least_one(n_valid)
    return s - s.detach()


def _cosine_distance(dot: torch.Tensor, na: torch.Tensor, nb: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity from the dot products and norms; two zero forms (a batch of one sample has no deviation
    and no relations) are the same form, at distance 0, not 1 (a constant that only shifted the loss)."""
    both_zero = (na == 0) & (nb == 0)
    return (1.0 - dot / (na * nb).clamp_min(EPS)).masked_fill(both_zero, 0.0)


def at_least_one(n: torch.Tensor | int) -> torch.Tensor | int:
    """A cell count as a divisor; a count known from the shapes stays a Python number (no tensor operator)."""
    return n.clamp_min(1) if isinstance(n, torch.Tensor) else max(n, 1)
