"""Feature capture: logits, hidden states and masks of any Hugging Face model, in one ``Features`` type.

HF models return every layer with ``output_hidden_states=True``. Two things a decoder-only model (GPT-2, Llama,
Qwen2, ...) returns differ from an encoder's, and ``capture`` evens them out (``CaptureRule``, decided once per model):

- its class token is the last real token, not the first: under causal attention the first token sees only itself, so
  its vector depends on the first token id alone (the model's own classifier reads the last one);
- a pre-LN model with a final norm (GPT-2's ``ln_f``, Llama's ``norm``, ModernBERT's ``final_norm``) returns the top
  layer after that norm and every other layer as a raw block output, so the top layer's change would measure the norm.
  Its last entry is taken from the last block by a forward hook instead.

XLNet, an encoder, puts its class token last too (its classifier reads the last position, ``summary_type: last``):
its batches pad on the left (``data.prepare.padding_side``) and its class token is the last real one.

An encoder (BERT, RoBERTa, ...) gets neither: no hook, its states as transformers returns them. Batches may hold a
second tokenisation for the teacher under keys prefixed ``teacher_`` (when the two models use different tokenizers).
"""

from __future__ import annotations

import functools
import inspect
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

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
    cls_index: torch.Tensor | None = None  # [B] position of each row's class token; None: the first (an encoder's)

    def pooled_layers(self, pooling: str) -> torch.Tensor | None:
        """Cached pooled features ``[L+1, B, d]`` for ``pooling``, or None to pool ``hidden`` live."""
        return None if self.pooled is None else self.pooled[pooling]

    def class_tokens(self) -> tuple[torch.Tensor, ...]:
        """Per-layer class-token vectors shaped ``[B, 1, d]`` (live or cached): an encoder's first token, a causal
        model's last real one (``cls_index``)."""
        if self.pooled is not None:
            return tuple(c.unsqueeze(1) for c in self.pooled["cls"])
        return tuple(class_token(h, self.cls_index).unsqueeze(1) for h in self.hidden)


class StackedHidden(tuple):
    """Hidden states ``L+1 x [B, T, d]`` as views of one float32 tensor ``stack [B, L+1, T, d]``, laid out as
    token-level dynamics read a teacher's (``losses.dynamics.pool_features`` takes it as it is, where it stacks a tuple
    into a copy). ``scratch``: made for one step's costs alone, which may overwrite it (centre it in place).
    ``tokens [B, K]``: the positions of each row it holds, where it holds a sample of them (``T`` is then ``K``); None:
    every token."""

    stack: torch.Tensor
    scratch: bool
    tokens: torch.Tensor | None

    def __new__(cls, stack: torch.Tensor, scratch: bool = False, tokens: torch.Tensor | None = None) -> StackedHidden:
        hidden = super().__new__(cls, stack.unbind(1))
        hidden.stack, hidden.scratch, hidden.tokens = stack, scratch, tokens
        return hidden


def stack_hidden(feats: Features, scratch: bool = False, tokens: torch.Tensor | None = None) -> None:
    """Replace ``feats.hidden`` with a ``StackedHidden`` of the same states in float32, each layer let go once it is
    copied: where nothing else holds them, the states and their stack are never both whole, as they are where the
    dynamics stack a tuple (a 6-layer teacher of width 384 on 32 sentences of 59 tokens: 19 MiB; 12 layers of width
    768 on SQuAD's 32 windows of 384 tokens: 468 MiB). ``scratch``: as ``StackedHidden``'s (the trainer's teacher:
    nothing reads it after the costs). ``tokens [B, K]``: only these positions of each row are stacked (a sample of
    them, ``dynamics.token_sample``: 64 of 384 tokens copy a sixth of the states)."""
    layers, feats.hidden = list(feats.hidden), ()
    first = layers[0]
    size = first.shape[1] if tokens is None else tokens.shape[1]
    stack = torch.empty(first.shape[0], len(layers), size, first.shape[2], dtype=torch.float32, device=first.device)
    rows = None if tokens is None else torch.arange(first.shape[0], device=first.device)[:, None]
    for i in range(len(layers)):
        stack[:, i].copy_(layers[i] if tokens is None else layers[i][rows, tokens])
        layers[i] = None
    feats.hidden = StackedHidden(stack, scratch, tokens)


def class_token(h: torch.Tensor, cls_index: torch.Tensor | None) -> torch.Tensor:
    """Each row's class token ``[B, d]`` of states ``h [B, T, d]``: position ``cls_index [B]``, the first if None."""
    if cls_index is None:
        return h[:, 0]
    return h[torch.arange(h.shape[0], device=h.device), cls_index]


def last_real_tokens(mask: torch.Tensor) -> torch.Tensor:
    """Each row's last real position ``[B]`` under ``mask [B, T]``, whichever side the padding is on (a decoder's
    classifier reads the same token)."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions * mask.bool()).argmax(1)


class _LastBlock:
    """A forward hook on a model's last block that keeps the block's output while ``capture`` runs the model (and
    nothing otherwise: the user's own forwards hold no tensor here)."""

    def __init__(self):
        self.on, self.output = False, None

    def __call__(self, module, args, output):
        if self.on:
            self.output = output[0] if isinstance(output, (tuple, list)) else output  # (OpenAI-GPT's: a list)

    @contextmanager
    def recording(self):
        self.on = True
        try:
            yield
        finally:
            self.on = False

    def take(self) -> torch.Tensor | None:
        output, self.output = self.output, None
        return output


def drop_capture_hooks(model: nn.Module) -> None:
    """Remove the hooks ``capture`` left on ``model`` (a decoder's last block: ``_LastBlock``), from a copy of a
    captured model (``students.build_student``), whose own comes at its first capture."""
    for module in model.modules():
        for key, hook in list(module._forward_hooks.items()):
            if isinstance(hook, _LastBlock):
                del module._forward_hooks[key]


@dataclass(frozen=True)
class CaptureRule:
    """How ``capture`` reads one model: ``causal`` (its class token is the last real token: a decoder's, or XLNet's,
    ``class_token_last``) and ``last_block`` (the hook whose output replaces ``hidden_states[-1]``, which is taken after
    a final norm; None for encoders)."""

    causal: bool
    last_block: _LastBlock | None

    @property
    def changes(self) -> bool:
        """Whether the features differ from transformers' outputs (what a teacher cache built before the rule held)."""
        return self.causal or self.last_block is not None

    def run(self, model: nn.Module, kwargs: dict[str, Any], hidden: bool):
        """``model(**kwargs)`` and its hidden states (``()`` unless ``hidden``), the last one per this rule."""
        if self.last_block is None:
            out = model(**kwargs, output_hidden_states=hidden, return_dict=True)
            return out, tuple(out.hidden_states) if hidden else ()
        with self.last_block.recording():
            out = model(**kwargs, output_hidden_states=hidden, return_dict=True)
        raw = self.last_block.take()
        return out, (*out.hidden_states[:-1], raw) if hidden else ()


# One rule per model object, under its own key and its wrapper's (DDP, FSDP1, DeepSpeed, torch.compile): a step looks
# it up in a dict; weak keys, so a rule goes with its model.
_RULES: weakref.WeakKeyDictionary[nn.Module, CaptureRule] = weakref.WeakKeyDictionary()


def capture_rule(model: nn.Module) -> CaptureRule:
    """The ``CaptureRule`` of ``model`` (or of the model inside its wrappers), decided at the first call.

    Causal: a decoder's attention modules say ``is_causal = True`` (transformers 5), an encoder's False or nothing;
    where none says so, a second forward of two tokens tells (``_probe``: BLOOM's, MPT's attention say nothing).
    A final norm: the first forward tells whether ``hidden_states[-1]`` is the last block's output (hooks a caller
    registered on the model see the probe's forwards too). Where it is
    not, the hook stays on the block for good: a model compiled later is traced with it (``torch.compile`` does not see
    hooks added or removed after tracing), and FSDP2 keeps the block's identity. An encoder keeps no hook."""
    rule = _RULES.get(model)
    if rule is None:
        from accelerate.utils import extract_model_from_parallel

        inner = extract_model_from_parallel(model, keep_torch_compile=False)
        rule = _RULES.get(inner)
        if rule is None:
            # the probes run the model as its caller does, sharded where it is (FSDP, DeepSpeed), but not compiled
            said = any(getattr(m, "is_causal", False) is True for m in inner.modules())
            causal, last_block = _probe(inner, getattr(model, "_orig_mod", model), said)
            rule = CaptureRule(causal or class_token_last(inner), last_block)
        _RULES[model] = _RULES[inner] = rule
    return rule


def class_token_last(model: nn.Module) -> bool:
    """Whether ``model``'s classifier reads the last position whatever the mask (``summary_type: last``: XLNet's), so
    its class token is the last real one and its batches pad on the left."""
    return getattr(getattr(model, "config", None), "summary_type", None) == "last"


def _probe(model: nn.Module, runner: nn.Module, causal: bool) -> tuple[bool, _LastBlock | None]:
    """What ``model``'s outputs tell from forwards of two tokens, ``[[1, 2]]`` (and ``[[1, 3]]`` where its attention
    does not say it is causal: ``causal`` False). Whether it attends causally: its first position's output does not
    change with the later token (BLOOM's, MPT's, OpenAI-GPT's attention say nothing in transformers 5, and were read
    as encoders, their class token the first, which sees no other). And a hook on its last block where its
    ``hidden_states[-1]`` is not that block's output, else None (and no hook stays). ``runner`` runs ``model``
    (through its distributed wrapper, if any) in ``eval()``, without gradient; the modes and the random state are
    left as they were. A model that returns no hidden states (one of one's own) is read as it returns its outputs."""
    from .students import find_layers

    try:
        block = find_layers(model)[2][-1]
    except (DynaKDError, AttributeError):  # no one list of blocks (a model of one's own): its states as returned
        block = None
    hook = _LastBlock()
    handle = None if block is None else block.register_forward_hook(hook)
    modes = {m: m.training for m in model.modules()}
    device = next(model.parameters()).device
    rng = torch.random.fork_rng(devices=[] if device.type == "cpu" else [device], device_type=device.type)
    outputs = []
    try:
        model.eval()
        with torch.no_grad(), rng:
            for last in (2,) if causal else (2, 3):
                ids = torch.tensor([[1, last]], device=device)
                with hook.recording():
                    states = runner(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True,
                                    return_dict=True).hidden_states
                outputs.append((states, hook.take()))
    finally:
        hook.take()  # (where a forward failed: the hook holds no tensor)
        for m, training in modes.items():
            m.train(training)
    states, raw = outputs[0]
    if not causal and states and outputs[1][0]:
        causal = torch.equal(states[-1][:, 0], outputs[1][0][-1][:, 0])
    if handle is not None and states and raw is not None and raw.shape == states[-1].shape \
            and not torch.equal(raw, states[-1]):
        return causal, hook
    if handle is not None:
        handle.remove()
    return causal, None


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
    (``teacher_*``) is refused: ``split_inputs(batch)`` gives each model its part.

    A decoder's features follow ``capture_rule`` (module docstring): the top layer before its final norm, and
    ``cls_index`` at each row's last real token (padding on either side). With ``inputs_embeds`` (the sensitivity
    component's perturbed input) a decoder's classifier finds no padding (it looks for the pad token among the input
    ids) and its logits are those of the last position, padding or not: only the hidden states of such a capture are
    read (``Distiller.dynamics_costs``)."""
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
    rule = capture_rule(model)
    out, hs = rule.run(model, kwargs, hidden)
    mask = inputs["attention_mask"]
    return Features(logits=output_logits(out), hidden=hs, mask=mask, context=inputs.get(CONTEXT_MASK),
                    cls_index=last_real_tokens(mask) if rule.causal else None)


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
    if getattr(out, "logits", None) is None:  # (an AttributeError of the output class's before)
        raise DynaKDError(f"the model's output ({type(out).__name__}) has no logits: DynaKD distils models with a task "
                          "head (AutoModelForSequenceClassification, AutoModelForQuestionAnswering, a causal LM), not "
                          "a base AutoModel; load it with its head, or fine-tune one first (dynakd finetune)")
    return out.logits


def perturbed_embeddings(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    std: float,
    seed: int,
    mask: torch.Tensor | None = None,
    *,
    width: int | None = None,
    length: int | None = None,
) -> torch.Tensor:
    """Input embeddings plus Gaussian noise scaled by their RMS over the real tokens (``mask [B, T]``; padding would
    set the scale otherwise: a fresh student's pad embedding is 0), drawn from a seeded generator.

    Teacher and student that draw with the same ``seed``, ``width`` and ``length`` share the perturbation (method.md's
    "shared" noise): each token's noise is drawn in ``width`` dimensions (the narrower model's embedding width; None:
    this model's own) at its position among ``length`` (the longest a batch can be, e.g. ``max_seq_length``; None:
    this batch's), counted from its row's first real token (``mask``; padding on the left, XLNet's, shifts them), so
    how a batch is padded leaves it as it is. A model wider than ``width`` takes the noise through
    a fixed map with orthonormal rows (``shared_noise_map``), scaled so that its expected squared norm per coordinate
    stays 1: the noise at any two positions then has the same inner products in both models, up to one scale per
    model, which is all that forms invariant to width and rotation can tell apart. The noise goes by position: models
    of two tokenizers share it where their tokens line up.
    """
    emb = model.get_input_embeddings()(input_ids)  # [B, T, d]
    (b, t, d), k = emb.shape, width or emb.shape[-1]
    if k > d:
        raise ValueError(f"perturbed_embeddings: width {k} is wider than the model's embeddings ({d}); give the "
                         "narrower model's width")
    gen, length = torch.Generator(device="cpu").manual_seed(seed), length or t
    noise = torch.randn((b, length, k), generator=gen)[:, :t]  # (a position's draw, whatever the padding)
    if t > length:  # (positions past ``length``: drawn after, so the first ``length`` stay as they are)
        noise = torch.cat([noise, torch.randn((b, t - length, k), generator=gen)], dim=1)
    noise = noise.to(emb.device)
    if mask is not None:  # rows padded on the left (on the device, without reading the mask on the host)
        lead = (mask.cumsum(1) == 0).sum(1)
        at = (torch.arange(t, device=emb.device) - lead[:, None]).clamp_min(0)  # (a pad reads a real token's: masked)
        noise = noise.gather(1, at[..., None].expand(-1, -1, k))
    if k < d:  # (on the embeddings' device, in float32)
        noise = noise @ shared_noise_map(k, d, emb.device) * (d / k) ** 0.5
    noise = noise.to(emb.dtype)
    sq = emb.detach().float().pow(2).mean(-1)  # [B, T]
    if mask is not None:
        m = mask.to(sq.dtype)
        rms = ((sq * m).sum() / m.sum().clamp_min(1.0)).sqrt()
    else:
        rms = sq.mean().sqrt()
    return emb + std * rms.to(emb.dtype) * noise


def embedding_width(model: torch.nn.Module) -> int:
    """The width of a model's input embeddings (``inputs_embeds``' last dimension)."""
    emb = model.get_input_embeddings()
    return getattr(emb, "embedding_dim", None) or emb.weight.shape[-1]


@functools.lru_cache(maxsize=8)
def shared_noise_map(k: int, d: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A fixed ``[k, d]`` float32 map with orthonormal rows (the same in every process and run), from
    ``k``-dimensional noise to a model of width ``d > k``, on ``device``: the Q factor of a seeded Gaussian matrix."""
    gaussian = torch.randn((d, k), generator=torch.Generator(device="cpu").manual_seed(k * 100_003 + d))
    return torch.linalg.qr(gaussian.double())[0].T.float().contiguous().to(device)
