"""Feature capture: logits, hidden states and masks of any Hugging Face model, in one ``Features`` type.

HF models return every layer with ``output_hidden_states=True``, so no hooks are needed. Batches may hold a second
tokenisation for the teacher under keys prefixed ``teacher_`` (when the two models use different tokenizers).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from .errors import DynaKDError

TEACHER_PREFIX = "teacher_"
EXAMPLE_ID = "example_id"  # row of the training set, the key into the teacher cache
CONTEXT_MASK = "context_mask"  # extractive QA: 1 on the context tokens of a window
NON_MODEL_KEYS = ("labels", EXAMPLE_ID, CONTEXT_MASK)
CACHED_PREFIX = "cached_teacher."  # batch keys of teacher outputs read from the cache by the data pipeline (cache.py)
# The label of a transfer row (a training row whose label is hidden, so that only the teacher supervises it):
# PyTorch's cross-entropy ignore index. Regression labels are hidden as NaN.
HIDDEN_LABEL = -100


@dataclass
class Features:
    """What a loss reads of one model on one batch: ``capture(model, batch)`` fills it from a live model, the teacher
    cache from its stored outputs (pooled per-layer features instead of hidden states)."""

    logits: torch.Tensor  # [B, C]; extractive QA: [B, 2, T] (start and end logits over the tokens)
    hidden: tuple[torch.Tensor, ...]  # L+1 x [B, T, d]; 0 = embedding output; empty when read from a cache
    mask: torch.Tensor | None  # [B, T]; None when read from a cache
    pooled: dict[str, torch.Tensor] | None = None  # cached teacher: {"mean" | "cls": [L+1, B, d]}
    context: torch.Tensor | None = None  # extractive QA: [B, T] context-token mask (a subset of ``mask``)

    def pooled_layers(self, pooling: str) -> torch.Tensor | None:
        """Cached pooled features ``[L+1, B, d]`` for ``pooling``, or None to pool ``hidden`` live."""
        return None if self.pooled is None else self.pooled[pooling]

    def first_tokens(self) -> tuple[torch.Tensor, ...]:
        """Per-layer first-token vectors shaped ``[B, 1, d]`` (live or cached)."""
        if self.pooled is not None:
            return tuple(c.unsqueeze(1) for c in self.pooled["cls"])
        return tuple(h[:, :1] for h in self.hidden)


def model_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The entries of a (split) batch that go to the model's ``forward``: all but ``labels``, ``example_id`` and
    ``context_mask``."""
    return {k: v for k, v in inputs.items() if k not in NON_MODEL_KEYS}


def split_inputs(batch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """``(student_inputs, teacher_inputs, labels)``; the teacher reuses the student's inputs if it has none.

    Each part keeps the batch's ``context_mask`` (extractive QA), which ``capture`` takes as the features' context
    tokens and does not pass to the model."""
    labels = batch.get("labels")
    dropped = ("labels", EXAMPLE_ID)
    student = {k: v for k, v in batch.items() if not k.startswith((TEACHER_PREFIX, CACHED_PREFIX)) and k not in dropped}
    teacher = {k[len(TEACHER_PREFIX) :]: v for k, v in batch.items() if k.startswith(TEACHER_PREFIX)}
    teacher = {k: v for k, v in teacher.items() if k not in dropped}
    return student, teacher or student, labels


def capture(model: torch.nn.Module, inputs: dict[str, Any], *, hidden: bool = True, inputs_embeds=None) -> Features:
    """Run ``model`` on the model inputs of ``inputs`` and collect its logits and (optionally) all hidden states.
    Entries that are not model inputs (``labels``, ``example_id``, ``context_mask``) are left out of the call; a
    ``context_mask`` becomes the features' ``context``. A batch holding the teacher's own tokenisation
    (``teacher_*``) is refused: ``split_inputs(batch)`` gives each model its part."""
    if "attention_mask" not in inputs:
        raise DynaKDError("capture needs the batch's attention_mask (which tokens are padding): tokenize with "
                          "return_attention_mask=True, or collate with DataCollatorWithPadding")
    if any(k.startswith((TEACHER_PREFIX, CACHED_PREFIX)) for k in inputs):
        raise DynaKDError("this batch holds the teacher's inputs or outputs too (teacher_* / cached_teacher.* "
                          "entries): student_inputs, teacher_inputs, labels = dynakd.split_inputs(batch), then "
                          "capture each model with its own")
    kwargs = model_inputs(inputs)
    if inputs_embeds is not None:
        kwargs.pop("input_ids", None)
        kwargs["inputs_embeds"] = inputs_embeds
    out = model(**kwargs, output_hidden_states=hidden, return_dict=True)
    hs = tuple(out.hidden_states) if hidden else ()
    return Features(logits=output_logits(out), hidden=hs, mask=inputs["attention_mask"],
                    context=inputs.get(CONTEXT_MASK))


def forward_columns(model: torch.nn.Module) -> set[str]:
    """The named arguments of a model's ``forward`` (the columns the Trainer would keep for it); empty when they
    cannot be told: a model of one's own whose ``**kwargs`` may pass more on (transformers' models take ``**kwargs``
    for attention options, not inputs), or a wrapper that names none."""
    from transformers import PreTrainedModel

    params = inspect.signature(model.forward).parameters.values()
    if not isinstance(model, PreTrainedModel) and any(p.kind == p.VAR_KEYWORD for p in params):
        return set()
    names = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return names if names & {"input_ids", "inputs_embeds"} else set()


def output_logits(out) -> torch.Tensor:
    """``out.logits`` ``[B, C]``, or for a question-answering output its start and end logits ``[B, 2, T]``."""
    if getattr(out, "start_logits", None) is not None:
        return torch.stack((out.start_logits, out.end_logits), dim=1)
    return out.logits


def perturbed_embeddings(
    model: torch.nn.Module, input_ids: torch.Tensor, std: float, seed: int, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Input embeddings plus Gaussian noise scaled by their RMS over the real tokens (``mask [B, T]``; padding would
    set the scale otherwise: a fresh student's pad embedding is 0), drawn from a seeded generator.

    Teacher and student draw with the same seed so their perturbations are shared in distribution and position.
    """
    emb = model.get_input_embeddings()(input_ids)  # [B, T, d]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(emb.shape, generator=gen).to(emb)
    sq = emb.detach().float().pow(2).mean(-1)  # [B, T]
    if mask is not None:
        m = mask.to(sq.dtype)
        rms = ((sq * m).sum() / m.sum().clamp_min(1.0)).sqrt()
    else:
        rms = sq.mean().sqrt()
    return emb + std * rms.to(emb.dtype) * noise
