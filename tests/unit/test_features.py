"""Feature capture of encoders and decoder-only models (``features.capture``): tiny models built in memory."""

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
)

from dynakd import Distiller
from dynakd.features import capture
from dynakd.losses.dynamics import DynamicsOptions, dynamics_costs, pool


def tiny(family: str, seed: int = 0, layers: int = 3):
    """A random classifier of ``family`` (hidden 16), in eval mode; a decoder pads with token 1."""
    torch.manual_seed(seed)
    if family == "gpt2":
        config = GPT2Config(vocab_size=40, n_embd=16, n_layer=layers, n_head=2, n_positions=32, pad_token_id=1)
        return GPT2ForSequenceClassification(config).eval()
    if family == "llama":
        config = LlamaConfig(vocab_size=40, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                             num_key_value_heads=1, intermediate_size=32, max_position_embeddings=32, pad_token_id=1)
        return LlamaForSequenceClassification(config).eval()
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    return BertForSequenceClassification(config).eval()


def batch(lengths: list[int], *, left: bool = False, width: int = 6) -> dict[str, torch.Tensor]:
    """Rows of ``lengths`` real tokens padded with token 1 on the right (or left), every row starting with token 5."""
    ids = torch.ones(len(lengths), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    gen = torch.Generator().manual_seed(0)
    for i, n in enumerate(lengths):
        cols = slice(width - n, width) if left else slice(0, n)
        ids[i, cols] = torch.cat([torch.tensor([5]), torch.randint(6, 40, (n - 1,), generator=gen)])
        mask[i, cols] = 1
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("left", [False, True])
def test_a_decoders_class_token_is_its_last_real_token_whichever_side_it_pads(family, left):
    """Under causal attention the first token sees only itself: `cls` pooling and PKD read the same vector for every
    row that starts with the same token (the dynamics' deviations were exactly 0). A decoder's classifier reads the
    last real token; so do they now, with left padding too (a Llama tokenizer's side)."""
    model, inputs = tiny(family), batch([6, 3, 4, 2], left=left)
    with torch.no_grad():
        f, teacher = capture(model, inputs), capture(tiny(family, seed=1), inputs)
    distiller = Distiller({"method": "full", "dynamics": {"pooling": "cls"}}, student_layers=3, teacher_layers=3,
                          student_width=16, teacher_width=16).train()
    assert distiller(f, teacher, torch.tensor([0, 1, 0, 1]), 0.5).terms["dyn/deviation"] > 0  # was exactly 0

    last = torch.tensor([5] * 4) if left else torch.tensor([5, 2, 3, 1])
    assert torch.equal(f.cls_index, last)
    rows = torch.arange(4)
    for h, c in zip(f.hidden, f.class_tokens()):
        assert torch.equal(c[:, 0], h[rows, last])
    x, _ = pool(f.hidden, f.mask, "cls", f.cls_index)  # [L+1, 1, B, d]
    assert torch.equal(x[:, 0], torch.stack([h[rows, last] for h in f.hidden]))
    assert (x[1:, 0] - x[1:, 0].mean(1, keepdim=True)).norm(dim=-1).min() > 1e-3  # every row its own vector


@pytest.mark.parametrize("family", ["bloom", "mpt"])
def test_a_decoder_whose_attention_does_not_say_it_is_causal_is_read_as_one(family):
    """BLOOM's and MPT's attention modules carry no ``is_causal`` (transformers 5): read as encoders, their class
    token was the first, which sees no other token (every row starting with one token had one `cls` vector). Their
    outputs say they are causal; the probe leaves the training mode and random state as they were."""
    from transformers import BloomConfig, BloomForSequenceClassification, MptConfig, MptForSequenceClassification

    from dynakd.features import capture_rule

    torch.manual_seed(0)
    if family == "bloom":
        model = BloomForSequenceClassification(BloomConfig(vocab_size=40, hidden_size=16, n_layer=2, n_head=2,
                                                           pad_token_id=1))
    else:
        model = MptForSequenceClassification(MptConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2,
                                                       pad_token_id=1))
    model.train()
    state = torch.random.get_rng_state()
    assert capture_rule(model).causal and model.training and torch.equal(torch.random.get_rng_state(), state)
    with torch.no_grad():
        f = capture(model.eval(), batch([6, 3, 4, 2]))
    assert torch.equal(f.cls_index, torch.tensor([5, 2, 3, 1]))


def test_an_encoders_class_token_is_its_first():
    with torch.no_grad():
        f = capture(tiny("bert"), batch([6, 3, 4, 2]))
    assert f.cls_index is None and all(torch.equal(c, h[:, :1]) for c, h in zip(f.class_tokens(), f.hidden))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_pre_ln_models_top_layer_is_its_last_block_before_the_final_norm(family):
    """transformers returns a pre-LN model's top layer after its final norm (GPT-2's ln_f, Llama's norm) and every
    other layer as a raw block output: the top layer's change measured the norm (a student of the teacher's first
    two layers cost ~1e3 against those very layers). The top layer is now the last block's own output."""
    from dynakd.students import build_student

    teacher, inputs = tiny(family, layers=4), batch([6, 4, 5, 6])
    kept = []
    block = teacher.transformer.h[-1] if family == "gpt2" else teacher.model.layers[-1]
    handle = block.register_forward_hook(lambda module, args, out: kept.append(out))
    with torch.no_grad():
        raw = teacher(**inputs, output_hidden_states=True).hidden_states
        f = capture(teacher, inputs)
    handle.remove()
    assert all(torch.equal(a, b) for a, b in zip(f.hidden[:-1], raw[:-1]))
    assert torch.equal(f.hidden[-1], kept[-1]) and not torch.equal(f.hidden[-1], raw[-1])

    student = build_student(teacher, layer_ids=[0, 1]).eval()  # its layers are the teacher's first two
    with torch.no_grad():
        s = capture(student, inputs)
        costs = dynamics_costs(s.hidden, f.hidden, mask=inputs["attention_mask"], opts=DynamicsOptions(),
                               anchors=[0, 1])
    assert costs["layer_change"][1, 1] < 1e-6  # its step 1 -> 2 is the teacher's
    # one capture hook on a student's last block, its own: the teacher's came with the copy of its last block, and
    # stayed beside it
    from dynakd.features import _LastBlock

    student = build_student(teacher, layer_ids=[0, 3]).eval()
    with torch.no_grad():
        capture(student, inputs)
    assert len([h for m in student.modules() for h in m._forward_hooks.values() if isinstance(h, _LastBlock)]) == 1


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_an_encoder_is_captured_as_transformers_returns_it_and_no_random_draw_moves():
    """Nothing of the decoders' rule reaches an encoder: its hidden states as returned, its first token as class
    token, no hook left on it; and deciding the rule (a forward of the model, at the first capture) draws nothing
    from the random stream, so a training step's dropout masks are those it always had."""
    model, inputs = tiny("bert").train(), batch([6, 3, 4, 2])
    torch.manual_seed(3)
    want, after = model(**inputs, output_hidden_states=True), torch.rand(2)
    hooks = hook_count(model)  # (transformers' own, which record the hidden states, once it has given them)
    torch.manual_seed(3)
    f = capture(model, inputs)
    assert torch.equal(torch.rand(2), after) and hook_count(model) == hooks
    assert all(torch.equal(a, b) for a, b in zip(f.hidden, want.hidden_states))


def test_the_first_capture_of_a_decoder_draws_nothing_from_the_random_stream():
    """A decoder's first capture runs the model once more to find its final norm, under a forked random state."""
    model, inputs = tiny("gpt2").train(), batch([6, 3, 4, 2])
    torch.manual_seed(3)
    want, after = model(**inputs, output_hidden_states=True), torch.rand(2)
    torch.manual_seed(3)
    f = capture(model, inputs)
    assert torch.equal(torch.rand(2), after)
    assert all(torch.equal(a, b) for a, b in zip(f.hidden[:-1], want.hidden_states[:-1]))


def test_the_sensitivity_component_reads_no_logit_of_the_perturbed_forwards():
    """A decoder's classifier given inputs_embeds finds no padding token and reads the last position: those logits are
    wrong, and nothing may read them."""
    from dynakd.features import perturbed_embeddings

    inputs = batch([6, 3, 4, 2])
    student, teacher = tiny("gpt2"), tiny("gpt2", seed=1)
    distiller = Distiller({"method": "full", "dynamics": {"components": ["deviation", "sensitivity"]}},
                          student_layers=3, teacher_layers=3, student_width=16, teacher_width=16).train()
    with torch.no_grad():
        s, t = capture(student, inputs), capture(teacher, inputs)
        perturbed = [capture(m, inputs, inputs_embeds=perturbed_embeddings(m, inputs["input_ids"], 0.1, 0,
                                                                           inputs["attention_mask"]))
                     for m in (student, teacher)]
    for p in perturbed:
        p.logits = torch.full_like(p.logits, float("nan"))
    out = distiller(s, t, torch.tensor([0, 1, 0, 1]), 0.5, perturbed=tuple(perturbed))
    assert torch.isfinite(out.loss) and out.terms["dyn/sensitivity"] > 0


def test_a_decoder_teachers_cache_holds_its_features_as_captured_live(tmp_path):
    """The teacher cache pools what a live decoder teacher gives (last real token, top layer before the final norm),
    and its fingerprint says so: a cache built before, of the first token and the normed top layer, is not reused."""
    import hashlib
    import json

    from datasets import Dataset

    from dynakd.cache import teacher_fingerprint, teacher_pass

    teacher, inputs = tiny("gpt2"), batch([6, 3, 4, 2])
    kept = []
    handle = teacher.transformer.h[-1].register_forward_hook(lambda module, args, out: kept.append(out))
    with torch.no_grad():
        raw = teacher(**inputs, output_hidden_states=True).hidden_states
    handle.remove()
    live = (*raw[:-1], kept[-1])  # the top layer before ln_f
    rows = [{k: v[i][m.bool()].tolist() for k, v in inputs.items()}
            for i, m in enumerate(inputs["attention_mask"])]

    def collate(features):
        padded = batch([len(r["input_ids"]) for r in features])
        for i, r in enumerate(features):
            padded["input_ids"][i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
        return padded

    ((order, _, pooled),) = teacher_pass(teacher, Dataset.from_list(rows), collate, batch_size=4, device="cpu")
    back = torch.as_tensor(order).argsort()  # to row order
    last = torch.stack([h[torch.arange(4), torch.tensor([5, 2, 3, 1])] for h in live], 1)  # [B, L+1, d]
    assert torch.allclose(pooled["cls"][back], last, atol=1e-6)
    assert torch.allclose(pooled["mean"][back][:, -1], pool(live, inputs["attention_mask"])[0][-1, 0], atol=1e-6)

    config = teacher.config.to_dict()
    for key in ("_name_or_path", "id2label", "label2id"):
        config.pop(key, None)
    before = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())  # as computed until now
    for name, tensor in sorted(teacher.state_dict().items()):
        before.update(name.encode())
        before.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    assert teacher_fingerprint(teacher) != before.hexdigest()[:16]


def test_an_xlnet_classifier_pads_on_the_left_and_its_class_token_is_its_last_real_token():
    """XLNet's classifier reads the last position whatever the mask (``summary_type: last``): batches padded on the
    right gave a shorter row a pad's logits, not its own, and its class token (``cls`` pooling, PKD) was its first
    token. Its batches pad on the left now (its relative positions give a row the same outputs there as alone)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast, XLNetConfig, XLNetForSequenceClassification

    from dynakd.data.prepare import DistillationCollator, padding_side

    torch.manual_seed(0)
    xlnet = XLNetForSequenceClassification(XLNetConfig(vocab_size=40, d_model=16, n_layer=2, n_head=2, d_inner=32,
                                                       pad_token_id=1)).eval()
    assert padding_side(xlnet) == padding_side(None, xlnet) == "left"
    assert padding_side(xlnet, qa=True) == padding_side(tiny("bert"), None) == "right"  # (QA counts from the left)
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[PAD]": 1, "[UNK]": 0}, "[UNK]")),
                                  pad_token="[PAD]")
    rows = [[5, 9, 12, 7, 3], [5, 20, 3]]
    collate = DistillationCollator(tok, None, pad_to_multiple_of=None, sides=(padding_side(xlnet),) * 2)
    padded = collate([{"input_ids": r, "attention_mask": [1] * len(r), "label": 0} for r in rows])
    assert padded["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    features = capture(xlnet, {k: v for k, v in padded.items() if k != "labels"}, hidden=True)
    with torch.no_grad():
        for i, r in enumerate(rows):
            alone = xlnet(input_ids=torch.tensor([r]), output_hidden_states=True)
            torch.testing.assert_close(features.logits[i], alone.logits[0])
            torch.testing.assert_close(features.class_tokens()[-1][i, 0], alone.hidden_states[-1][0, -1])


def test_the_sensitivity_noise_follows_a_rows_real_tokens_whichever_side_it_pads():
    """The noise went by a token's position in the padded batch: a row padded on the left (XLNet's batches) drew
    another noise beside a longer row than alone. It goes by the position from the row's first real token."""
    from dynakd.features import perturbed_embeddings

    model = tiny("bert")
    noises = []
    for left in (False, True):
        inputs = batch([3, 6], left=left)
        with torch.no_grad():
            emb = model.get_input_embeddings()(inputs["input_ids"])
            noises.append(perturbed_embeddings(model, inputs["input_ids"], 0.1, 0, inputs["attention_mask"],
                                               length=8) - emb)
    right, left = noises
    torch.testing.assert_close(left[0, 3:], right[0, :3])
    torch.testing.assert_close(left[1], right[1])
