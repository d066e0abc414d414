"""SQuAD: loading and the by-article split, windows that round-trip every gold answer, best-span postprocessing,
the official metric on hand-computed cases, and the QA logit losses."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from dynakd.config import DistillConfig, validate
from dynakd.data.prepare import DistillationCollator
from dynakd.data.squad import (
    QAEval,
    best_spans,
    encode_squad,
    load_squad,
    prepare_eval_features,
    prepare_train_features,
)
from dynakd.data.tasks import get_task
from dynakd.errors import DynaKDError
from dynakd.features import CONTEXT_MASK
from dynakd.losses import qa_logit_kd_loss, qa_task_loss
from dynakd.metrics import primary_metric, squad_metrics
from tests.squad_fixture import LONG_ANSWER, make_tiny_qa_bert, squad_articles, write_squad

MAX_LEN, STRIDE = 48, 16


@pytest.fixture(scope="module")
def squad_file(tmp_path_factory):
    return write_squad(tmp_path_factory.mktemp("squad") / "tiny.json")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = make_tiny_qa_bert(tmp_path_factory.mktemp("qa") / "m", layers=1, hidden=8)
    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def examples(squad_file):
    return load_squad(train_file=str(squad_file), validation_file=str(squad_file))["validation"]


def windows(examples, tokenizer):
    """Per window: (question row, labels, offsets) with train and eval preprocessing side by side."""
    batch = examples.to_dict()
    train = prepare_train_features(batch, tokenizer, MAX_LEN, STRIDE)
    ev = prepare_eval_features(batch, tokenizer, MAX_LEN, STRIDE)
    assert len(train["input_ids"]) == len(ev["input_ids"]) and train["input_ids"] == ev["input_ids"]
    rows = {qid: i for i, qid in enumerate(batch["id"])}
    return [(rows[qid], lab, off, ctx) for qid, lab, off, ctx in
            zip(ev["squad_id"], train["labels"], ev["offset_mapping"], train[CONTEXT_MASK])]


def test_load_flattens_every_question_and_splits_by_article(squad_file):
    n_questions = sum(len(p["qas"]) for a in squad_articles() for p in a["paragraphs"])
    full = load_squad(train_file=str(squad_file), validation_file=str(squad_file))
    assert len(full["train"]) == len(full["validation"]) == n_questions
    split = load_squad(train_file=str(squad_file), train_articles=3)
    assert set(split["train"]["title"]) == {"Paris", "Zürich", "Mill"}
    assert set(split["validation"]["title"]) == {"Rivers"}
    assert split["validation"][0]["answers"] == {"text": ["six"], "answer_start": [24]}
    with pytest.raises(DynaKDError, match="1..3"):
        load_squad(train_file=str(squad_file), train_articles=4)
    with pytest.raises(DynaKDError, match="not found"):
        load_squad(train_file=str(squad_file.parent / "missing.json"), validation_file=str(squad_file))


def test_malformed_file_is_one_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"title": "x", "paragraphs": [{"qas": [{"id": "1", "answers": []}]}]}]}))
    with pytest.raises(DynaKDError, match="SQuAD v1.1 JSON format"):
        load_squad(train_file=str(bad), validation_file=str(bad))
    with pytest.raises(DynaKDError, match="SQuAD file not found: .*missing.json"):
        load_squad(train_file=str(tmp_path / "missing.json"), validation_file=str(bad))
    with pytest.raises(DynaKDError, match=r"--task squad with local files needs --validation-file \(or "
                                          r"--train-articles N, to evaluate on the --train-file's articles after the "
                                          r"first N\)$"):
        load_squad(train_file=str(bad))
    with pytest.raises(DynaKDError, match=r"^--task squad with local files needs --train-file$"):
        load_squad(validation_file=str(bad))  # (--train-articles splits a --train-file: it was offered instead)
    with pytest.raises(DynaKDError, match="--train-articles takes the evaluation articles from --train-file: drop "
                                          "--validation-file"):
        load_squad(train_file=str(bad), validation_file=str(bad), train_articles=1)


def test_a_slow_tokenizer_is_refused_for_qa(examples):
    slow = SimpleNamespace(is_fast=False, padding_side="right")
    with pytest.raises(DynaKDError, match="extractive QA needs a fast tokenizer"):
        prepare_train_features(examples[:2], slow, MAX_LEN, STRIDE)


def test_windows_round_trip_every_gold_answer(examples, tokenizer):
    found, crossing = set(), 0
    for row, (s, e), offsets, ctx in windows(examples, tokenizer):
        ex = examples[row]
        start = ex["answers"]["answer_start"][0]
        gold = ex["answers"]["text"][0]
        end = start + len(gold)
        inside = [o for o in offsets if o is not None]
        if s == 0 and e == 0:  # labelled as the first token: the answer is not wholly inside this window
            assert not (inside[0][0] <= start and inside[-1][1] >= end)
            crossing += inside[0][0] < end and inside[-1][1] > start  # partly inside: a window border cuts it
            continue
        assert ex["context"][offsets[s][0] : offsets[e][1]] == gold  # exact original characters (unicode too)
        assert ctx[s] == ctx[e] == 1 and offsets[s] is not None and offsets[e] is not None
        found.add(ex["id"])
    assert found == set(examples["id"])  # every question's answer is labelled in at least one window
    assert crossing > 0  # some answers fall across a window border
    per_question = np.bincount([w[0] for w in windows(examples, tokenizer)])
    assert per_question.max() >= 4  # the long context needs several windows


def test_unicode_answers_keep_their_characters(examples, tokenizer):
    spans = {}
    for row, (s, e), offsets, _ in windows(examples, tokenizer):
        if s:
            spans[examples[row]["id"]] = examples[row]["context"][offsets[s][0] : offsets[e][1]]
    assert spans["z1"] == "Zürich" and spans["z2"] == "Zürichsee" and spans["z3"] == "北京"
    assert spans["z4"] == "café culture" and spans["m4"] == LONG_ANSWER


def _qa_eval(examples, tokenizer, max_answer_length=30):
    _, evals = encode_squad({"validation": examples}, tokenizer, MAX_LEN, STRIDE, max_answer_length=max_answer_length)
    return evals["validation"]


def _peaked(qa: QAEval, spans: dict[int, tuple[int, int, float]], pad: int = 3):
    """Logits [N, T + pad] (padded like the Trainer's) that are 0 except at the given window's start/end."""
    t = max(len(o) for o in qa.offsets) + pad
    start, end = np.zeros((len(qa.offsets), t)), np.zeros((len(qa.offsets), t))
    for i, (s, e, v) in spans.items():
        start[i, s] += v
        end[i, e] += v
    return start, end


def _context(examples, qid: str) -> str:
    return examples[list(examples["id"]).index(qid)]["context"]


def _token(qa: QAEval, window: int, context: str, *, starts: str = "", ends: str = "") -> int | None:
    """The context token of ``window`` where ``starts`` begins (or where ``ends`` ends), or None."""
    for t, o in enumerate(qa.offsets[window]):
        if o is None:
            continue
        if (starts and context[o[0] :].startswith(starts)) or (ends and context[: o[1]].endswith(ends)):
            return t
    return None


def test_best_span_over_all_windows(examples, tokenizer):
    qa = _qa_eval(examples, tokenizer)
    ctx = _context(examples, "m1")
    mill = [i for i, q in enumerate(qa.example_ids) if q == "m1"]
    assert len(mill) >= 4
    anna = _token(qa, mill[0], ctx, starts="Anna")  # "Anna Berg" lies in the first window
    later = next(t for t, o in enumerate(qa.offsets[mill[2]]) if o is not None)
    start, end = _peaked(qa, {mill[0]: (anna, anna + 1, 10.0), mill[2]: (later, later, 8.0)})
    assert best_spans(qa, start, end)["m1"] == "Anna Berg"
    start, end = _peaked(qa, {mill[0]: (anna, anna + 1, 5.0), mill[2]: (later, later, 8.0)})  # a later window wins
    assert best_spans(qa, start, end)["m1"] == ctx[qa.offsets[mill[2]][later][0] : qa.offsets[mill[2]][later][1]]


def test_question_padding_and_overlong_spans_are_never_predicted(examples, tokenizer):
    qa = _qa_eval(examples, tokenizer, max_answer_length=8)
    i = qa.example_ids.index("p1")
    start, end = _peaked(qa, {i: (1, 2, 50.0)})  # tokens of the question: no offsets, never an answer
    start[i, -1] = end[i, -1] = 100.0  # past the window (the Trainer pads with -100; any value is ignored)
    pred = best_spans(qa, start, end)["p1"]
    assert pred and pred in _context(examples, "p1") and not pred.lower().startswith("what")
    # the long gold answer (11 tokens) is longer than max_answer_length 8: its exact span is never predicted
    ctx = _context(examples, "m4")
    j = next(k for k, q in enumerate(qa.example_ids) if q == "m4"
             and _token(qa, k, ctx, starts="reading") is not None and _token(qa, k, ctx, ends="trade") is not None)
    s, e = _token(qa, j, ctx, starts="reading"), _token(qa, j, ctx, ends="trade")
    assert ctx[qa.offsets[j][s][0] : qa.offsets[j][e][1]] == LONG_ANSWER and e - s + 1 > 8
    start, end = _peaked(qa, {j: (s, e, 20.0)})
    pred = best_spans(qa, start, end)["m4"]
    assert pred != LONG_ANSWER and len(tokenizer(pred, add_special_tokens=False)["input_ids"]) <= 8


def test_no_valid_span_gives_empty_answer(examples, tokenizer):
    qa = _qa_eval(examples, tokenizer)
    qa.n_best = 1
    i = qa.example_ids.index("p1")
    start, end = _peaked(qa, {i: (0, 0, 9.0)})  # best start and end: the [CLS] token, never an answer
    assert best_spans(qa, start, end)["p1"] == ""


@pytest.mark.parametrize(
    "pred,golds,em,f1",
    [
        ("The Eiffel Tower!", ["eiffel tower"], 1.0, 1.0),  # case, punctuation and articles are normalised away
        ("in 1889 Paris", ["1889"], 0.0, 0.5),  # P = 1/3, R = 1: F1 = 2 * (1/3) / (4/3)
        ("Champ de Mars tower", ["the Champ de Mars."], 0.0, 6 / 7),  # P = 3/4, R = 1
        ("Black Sea", ["the Black Sea", "Sea"], 1.0, 1.0),  # max over the gold answers
        ("Sea", ["the Black Sea", "an ocean"], 0.0, 2 / 3),  # P = 1, R = 1/2
        ("Zürich", ["zürich"], 1.0, 1.0),  # lower-cased, accents kept
        ("the", ["Danube"], 0.0, 0.0),  # only an article: empty after normalisation
        ("", ["six"], 0.0, 0.0),
        ("", ["."], 1.0, 0.0),  # both normalise to nothing: the official v1.1 script gives EM 1, F1 0 (v2: F1 1)
        ("a", ["the"], 1.0, 0.0),
    ],
)
def test_squad_metric_hand_computed(pred, golds, em, f1):
    scores = squad_metrics({"q": pred}, {"q": golds})
    assert scores["exact_match"] == pytest.approx(em) and scores["f1"] == pytest.approx(f1, abs=1e-6)


def test_squad_metric_averages_and_unanswered_score_zero():
    refs = {"a": ["1889"], "b": ["Paris"], "c": ["six"]}
    scores = squad_metrics({"a": "in 1889 Paris", "b": "paris"}, refs)  # c unanswered
    assert scores["exact_match"] == pytest.approx(1 / 3, abs=1e-6)
    assert scores["f1"] == pytest.approx((0.5 + 1.0 + 0.0) / 3, abs=1e-6)
    assert primary_metric(get_task("squad")) == "f1"


def test_qa_losses_mask_padding_and_reach_the_student_only():
    torch.manual_seed(0)
    s = torch.randn(3, 2, 7, requires_grad=True)
    t = torch.randn(3, 2, 7, requires_grad=True)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[0, 5:] = 0
    assert qa_logit_kd_loss(t.detach(), t.detach(), mask=mask).abs() < 1e-6
    base = qa_logit_kd_loss(s, t, mask=mask, temperature=2.0)
    s2, t2 = s.detach().clone(), t.detach().clone()
    s2[0, :, 5:], t2[0, :, 5:] = 30.0, -30.0  # padding positions: any value changes nothing
    assert torch.allclose(qa_logit_kd_loss(s2, t2, mask=mask, temperature=2.0), base)
    base.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None
    assert s.grad[0, :, 5:].abs().sum() == 0
    positions = torch.tensor([[1, 3], [0, 0], [6, 6]])
    ce = (torch.nn.functional.cross_entropy(s[1:, 0], positions[1:, 0])
          + torch.nn.functional.cross_entropy(s[1:, 1], positions[1:, 1])) / 2
    assert torch.allclose(qa_task_loss(s[1:], positions[1:], mask=mask[1:]), ce)
    assert torch.isfinite(qa_task_loss(s2, positions, mask=mask))


def test_collator_pads_context_mask_and_labels(examples, tokenizer):
    feats = prepare_train_features(examples[:3], tokenizer, MAX_LEN, STRIDE)
    rows = [{k: v[i] for k, v in feats.items()} for i in range(3)]
    batch = DistillationCollator(tokenizer)(rows)
    assert batch[CONTEXT_MASK].shape == batch["input_ids"].shape and batch["labels"].shape == (3, 2)
    assert (batch[CONTEXT_MASK] <= batch["attention_mask"]).all()
    assert (batch[CONTEXT_MASK].sum(1) > 0).all()


def test_qa_windows_pad_on_the_right_whatever_the_tokenizers_side(examples, tokenizer):
    """Answer positions and offsets count from a window's left end: a left-padding tokenizer (XLNet's, or one set so)
    shifted every window shorter than its batch's longest."""
    import copy

    feats = prepare_train_features(examples[:3], tokenizer, MAX_LEN, STRIDE)
    rows = [{k: v[i] for k, v in feats.items()} for i in range(3)]
    n = len(rows[0]["input_ids"])  # the first window made shorter than the others
    rows[0] = {k: v[: n - 8] if isinstance(v, list) and len(v) == n else v for k, v in rows[0].items()}
    left = copy.deepcopy(tokenizer)
    left.padding_side = "left"
    a, b = DistillationCollator(tokenizer)(rows), DistillationCollator(left)(rows)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len({len(r["input_ids"]) for r in rows}) > 1 and (a["attention_mask"][:, 0] == 1).all()
    windows = [{k: v for k, v in r.items() if k not in (CONTEXT_MASK, "labels")} for r in rows]  # as evaluation's
    a, b = DistillationCollator(tokenizer)(windows), DistillationCollator(left)(windows)
    assert all(torch.equal(a[k], b[k]) for k in a) and (a["attention_mask"][:, 0] == 1).all()


def test_config_for_squad():
    cfg = validate(DistillConfig(task="squad", max_seq_length=64))
    assert cfg.dynamics.pooling == "tokens" and cfg.stride() == 32
    assert validate(DistillConfig(task="sst2")).dynamics.pooling == "mean"
    with pytest.raises(DynaKDError, match="doc_stride"):
        validate(DistillConfig(task="squad", max_seq_length=64, doc_stride=64))


def test_question_longer_than_the_window_is_cut(tokenizer):
    ex = {"id": ["x"], "question": ["who " * 60 + "built the mill?"], "context": ["Anna Berg built the mill."],
          "answers": [{"text": ["Anna Berg"], "answer_start": [0]}]}
    feats = prepare_train_features(ex, tokenizer, 32, 8)
    assert all(len(ids) <= 32 for ids in feats["input_ids"]) and [0, 1] not in feats["labels"]
    with pytest.raises(DynaKDError, match="no room"):
        prepare_train_features(ex, tokenizer, 12, 8)


def test_demo_splits_a_squad_file_by_article(squad_file):
    from dynakd.demo import choose_squad_data

    keys, source = choose_squad_data(str(squad_file), synthetic=False)
    assert keys == {"train_file": str(squad_file), "train_articles": 3} and "3 of 4 articles" in source
    with pytest.raises(DynaKDError, match="no synthetic QA corpus"):
        choose_squad_data(None, synthetic=True)


def test_dynamics_see_the_context_tokens_when_asked():
    from dynakd.distiller import Distiller
    from dynakd.features import Features

    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]])
    context = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 0, 0]])
    feats = Features(torch.zeros(2, 2, 6), (), mask, context=context)
    for tokens, want in (("all", mask), ("context", context)):
        cfg = validate(DistillConfig(task="squad", max_seq_length=64, dynamics={"qa_tokens": tokens}))
        d = Distiller(cfg, student_layers=1, teacher_layers=2, student_width=8, teacher_width=8, qa=True)
        s_mask, t_mask = d.dynamics_masks(feats, feats)
        assert torch.equal(s_mask, want) and torch.equal(t_mask, want)


def test_evaluation_files_the_v1_metric_cannot_score_are_refused(tmp_path, squad_file):
    """SQuAD 2.0's unanswerable questions ended the run in the metric, after training; two questions sharing an id
    were scored against each other's answers."""
    data = json.loads(squad_file.read_text())
    last = data["data"][-1]["paragraphs"][0]["qas"]  # the last article: the evaluation part of a by-article split
    unanswerable = copy.deepcopy(data)
    unanswerable["data"][-1]["paragraphs"][0]["qas"][0]["answers"] = []
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps(unanswerable))
    with pytest.raises(DynaKDError, match=rf"1 question\(s\) without a gold answer \(first: id '{last[0]['id']}'\)"):
        load_squad(validation_file=str(v2), splits=("validation",))
    with pytest.raises(DynaKDError, match="the evaluation articles of .* without a gold answer"):
        load_squad(train_file=str(v2), train_articles=len(data["data"]) - 1)
    load_squad(train_file=str(v2), validation_file=str(squad_file))  # training may have them
    twice = copy.deepcopy(data)
    twice["data"][-1]["paragraphs"][0]["qas"][1]["id"] = last[0]["id"]
    (tmp_path / "twice.json").write_text(json.dumps(twice))
    with pytest.raises(DynaKDError, match=f"question id '{last[0]['id']}' names more than one question"):
        load_squad(validation_file=str(tmp_path / "twice.json"), splits=("validation",))


def test_a_long_question_is_cut_to_64_tokens(tokenizer):
    """A long question left each window a few new context tokens (a 300-word question at 128/32: 126 windows)."""
    from dynakd.data.squad import MAX_QUESTION_TOKENS, _cut_questions

    cut = _cut_questions(tokenizer, ["who " * 100 + "built the mill?"], 256, 32)[0]
    assert len(tokenizer(cut, add_special_tokens=False)["input_ids"]) == MAX_QUESTION_TOKENS == 64


KOREAN_QUESTION = "제50회 슈퍼볼에서 아메리칸 풋볼 콘퍼런스를 대표하여 우승한 팀은 어느 팀입니까?"


def _korean_example() -> dict[str, list]:
    context = " ".join(f"word{i}" for i in range(200))
    return {"id": ["ko"], "question": [KOREAN_QUESTION], "context": [context],
            "answers": [{"text": ["word5"], "answer_start": [context.index("word5")]}]}


def test_a_question_of_many_token_characters_is_cut_to_fit():
    """One character can be several tokens (Hangul under MiniLM's accent stripping: 한 -> ᄒ ##ᅡ ##ᆫ): the cut by
    character offsets kept the rest of a character's tokens, the window had no more room than the stride, and a
    Korean question at MiniLM's defaults (128/64) ended ``finetune`` in a Rust panic."""
    from dynakd.data.squad import _cut_questions
    from dynakd.packaged import resolve

    minilm = AutoTokenizer.from_pretrained(resolve("minilm"))
    room = 128 - 64 - minilm.num_special_tokens_to_add(pair=True) - 1
    assert len(minilm(KOREAN_QUESTION, add_special_tokens=False)["input_ids"]) > room
    cut = _cut_questions(minilm, [KOREAN_QUESTION], 128, 64)[0]
    assert KOREAN_QUESTION.startswith(cut) and len(minilm(cut, add_special_tokens=False)["input_ids"]) <= room
    feats = prepare_train_features(_korean_example(), minilm, 128, 64)
    assert len(feats["input_ids"]) > 1 and all(len(ids) <= 128 for ids in feats["input_ids"])


def test_a_tokenizer_panic_is_one_error(monkeypatch):
    """The tokenizers library panics (a BaseException, not an Exception) where a window has no more context room than
    the stride; that is the same one-line error as the tokenizer's other failures, not a Rust backtrace."""
    from dynakd.data import squad
    from dynakd.packaged import resolve

    monkeypatch.setattr(squad, "_cut_questions", lambda tokenizer, questions, *_: questions)  # the uncut question
    with pytest.raises(DynaKDError, match="cannot cut SQuAD windows .*stride"):
        prepare_train_features(_korean_example(), AutoTokenizer.from_pretrained(resolve("minilm")), 128, 64)


@pytest.mark.parametrize("side", ["right", "left"])
def test_an_answer_ending_in_a_dropped_character_ends_at_its_last_token(tokenizer, side):
    """A character the tokenizer drops (here a combining accent: NFD ``cafe\u0301``, accents stripped) belongs to no
    token: the label ran on to the next word ("café culture"), and an answer ending the context in one was in no
    window. A tokenizer truncating from the left gives the windows last first."""
    tok = copy.deepcopy(tokenizer)
    tok.truncation_side = side
    context = "Its cafe\u0301 culture dates to the 1700s. " + LONG_ANSWER + " and the cafe\u0301"
    ex = {"id": ["mid", "end"], "question": ["What culture?"] * 2, "context": [context] * 2,
          "answers": [{"text": ["cafe\u0301"], "answer_start": [context.index("cafe")]},
                      {"text": ["cafe\u0301"], "answer_start": [context.rindex("cafe")]}]}
    train = prepare_train_features(ex, tok, 24, 8)
    ev = prepare_eval_features(ex, tok, 24, 8)
    assert len(set(ev["squad_id"])) == 2 and len(ev["squad_id"]) > 2  # several windows per question
    spans = {}
    for qid, (s, e), offsets in zip(ev["squad_id"], train["labels"], ev["offset_mapping"]):
        if s:
            spans.setdefault(qid, set()).add((offsets[s][0], context[offsets[s][0] : offsets[e][1]]))
    assert spans == {"mid": {(context.index("cafe"), "cafe")}, "end": {(context.rindex("cafe"), "cafe")}}


def test_a_custom_loop_carries_the_context_tokens_to_the_dynamics():
    """``split_inputs`` keeps a batch's ``context_mask`` and ``capture`` takes it as the features' context (it used to
    drop it, and ``qa_tokens: context`` then saw every token without a word); without one, the Distiller says so."""
    from transformers import BertConfig, BertForQuestionAnswering

    from dynakd.distiller import Distiller
    from dynakd.features import Features, capture, split_inputs

    model = BertForQuestionAnswering(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=16)).eval()
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]])
    context = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 0, 0]])
    batch = {"input_ids": torch.randint(1, 50, (2, 6)), "attention_mask": mask, "context_mask": context,
             "start_positions": torch.tensor([2, 3]), "end_positions": torch.tensor([3, 3])}
    student_inputs, teacher_inputs, _ = split_inputs(batch)
    s = capture(model, student_inputs)
    assert torch.equal(s.context, context) and torch.equal(capture(model, teacher_inputs).context, context)
    cfg = validate(DistillConfig(task="squad", max_seq_length=64, dynamics={"qa_tokens": "context"}))
    d = Distiller(cfg, student_layers=1, teacher_layers=1, student_width=8, teacher_width=8, qa=True)
    assert torch.equal(d.dynamics_masks(s, s)[0], context)
    bare = Features(s.logits, s.hidden, mask)
    with pytest.raises(DynaKDError, match="qa_tokens 'context' needs the batch's context_mask"):
        d.dynamics_masks(bare, bare)


def test_windows_are_fingerprinted_without_hashing_the_tokenizer(examples, tokenizer, function_hashing):
    """encode_squad gives map its own fingerprint (datasets hashed the tokenizer, swallowing a Ctrl-C then)."""
    def fingerprints(stride: int) -> list[str]:
        encoded, _ = encode_squad({"train": examples, "validation": examples}, tokenizer, MAX_LEN, stride)
        return [encoded["train"]._fingerprint, encoded["validation"]._fingerprint]

    first = fingerprints(STRIDE)
    assert not function_hashing
    assert fingerprints(STRIDE) == first and len({*first, *fingerprints(STRIDE // 2)}) == 4


def test_a_file_without_questions_is_refused(tmp_path, squad_file):
    """`{"data": []}` ended in a traceback from datasets (keys mismatch) where an empty csv or GLUE file is refused."""
    for body in ({"data": []}, {"data": [{"title": "t", "paragraphs": []}]}):
        (tmp_path / "empty.json").write_text(json.dumps(body))
        with pytest.raises(DynaKDError, match=f"^{tmp_path / 'empty.json'} holds no questions$"):
            load_squad(validation_file=str(tmp_path / "empty.json"), splits=("validation",))
        with pytest.raises(DynaKDError, match="holds no questions"):
            load_squad(train_file=str(tmp_path / "empty.json"), validation_file=str(squad_file))


def test_an_answer_with_spaces_at_its_ends_is_labelled_in_a_window_that_begins_at_it(tokenizer):
    """An answer given with its spaces (``answer_start`` on the space before it) was in no window whose context began
    at its first word, the space lying before the window's first character: here the only window holding it whole."""
    context = " ".join(f"w{i}" for i in range(40))
    ex = {"id": ["q"], "question": ["Which?"], "context": [context], "answers": [{"text": ["w0"], "answer_start": [0]}]}
    second = [o for o in prepare_eval_features(ex, tokenizer, 24, 8)["offset_mapping"][1] if o is not None]
    whole = context[second[0][0]:second[-1][1]]  # the second window's context, which no other window holds whole
    ex["answers"] = [{"text": [f" {whole} "], "answer_start": [second[0][0] - 1]}]
    train = prepare_train_features(ex, tokenizer, 24, 8)
    ev = prepare_eval_features(ex, tokenizer, 24, 8)
    spans = {context[offs[s][0]:offs[e][1]] for (s, e), offs in zip(train["labels"], ev["offset_mapping"]) if s}
    assert spans == {ex["answers"][0]["text"][0].strip()}


def test_a_window_without_its_answer_points_outside_the_context_without_a_cls_token(tokenizer):
    """Without a CLS token such windows pointed at position 0, a context token where the context comes first."""
    from dynakd.data.squad import _no_answer

    assert _no_answer([5, 101, 7], [None, None, 1], 101, 1) == 1  # the CLS token, wherever it is
    assert _no_answer([5, 6, 7, 8], [0, 0, None, 1], None, 0) == 2  # context first: the first token after it
    assert _no_answer([5, 6, 7], [0, 1, 1], None, 1) == 0  # question first: its first token


def test_training_answers_not_at_their_offsets_or_missing_are_noted(tmp_path, squad_file, capsys):
    """A wrong ``answer_start`` trained another span, and questions without answers (a key spelt ``answer``, SQuAD
    2.0's unanswerable ones) trained "no answer", without a word; where no question had one, every window did."""
    context = "Hamburg is the second largest city in Germany, on the river Elbe."

    def write(name, *qas):
        path = tmp_path / name
        path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": context, "qas": list(qas)}]}]}))
        return str(path)

    good = {"id": "2", "question": "Which river?", "answers": [{"text": "Elbe", "answer_start": context.index("Elbe")}]}
    train = write("train.json", {"id": "1", "question": "Which city?", "answers": [{"text": "Hamburg",
                                                                                     "answer_start": 5}]},
                  good, {"id": "3", "question": "Which sea?", "answers": []})
    load_squad(train_file=train, validation_file=str(squad_file))
    out = capsys.readouterr().out
    assert f"note: {train}: 1 of 3 training question(s) have no answer (first: id '3')" in out
    assert f"note: {train}: 1 of 3 training answer(s) are not at their answer_start (first: id '1', 'Hamburg'; the " \
        "context at 5 reads 'rg is t'); they train the span found there" in out
    far = write("far.json", good, {"id": "4", "question": "Which city?", "answers": [{"text": "Hamburg",
                                                                                    "answer_start": 99999}]})
    load_squad(train_file=far, validation_file=str(squad_file))  # (it was said to train "the span found there")
    assert capsys.readouterr().out == (
        f"note: {far}: 1 of 2 training answer(s) lie outside their context (first: id '4', 'Hamburg' at 99999, in a "
        f"context of {len(context)} characters); they train their windows to point at no answer: an answer_start "
        "counts characters of the context from 0\n")
    load_squad(train_file=write("fine.json", good), validation_file=str(squad_file))
    assert "note" not in capsys.readouterr().out
    misspelt = write("misspelt.json", {"id": "1", "question": "Which city?",
                                       "answer": [{"text": "Hamburg", "answer_start": 0}]})
    with pytest.raises(DynaKDError, match=f"{misspelt}: none of its 1 question\\(s\\) has an answer"):
        load_squad(train_file=misspelt, validation_file=str(squad_file))


def test_flat_rows_are_read_as_the_datasets_library_writes_them(tmp_path, squad_file):
    """run_qa.py's flat JSON lines were refused with "Extra data: line 2 column 1" alone, then told a layout; a QA user
    of the datasets library holds SQuAD as flat rows (Dataset.to_json writes JSON lines; run_qa.py reads a list under
    "data"): read as the official layout is, each run of rows of one title an article."""
    official = load_squad(train_file=str(squad_file), validation_file=str(squad_file))
    rows = official["train"].to_list()
    assert len({r["title"] for r in rows}) > 1  # (articles to split)
    lines, listed, data = tmp_path / "train.jsonl", tmp_path / "list.json", tmp_path / "data.json"
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    listed.write_text(json.dumps(rows))
    data.write_text(json.dumps({"version": "1.1", "data": [
        r | {"answers": [{"text": t, "answer_start": a} for t, a in zip(r["answers"]["text"],
                                                                       r["answers"]["answer_start"])]}
        for r in rows]}))  # (answers as the official layout lists them, per row)
    for path in (lines, listed, data):
        read = load_squad(train_file=str(path), validation_file=str(path))
        assert read["train"].to_list() == rows and read["validation"].to_list() == rows
        split = load_squad(train_file=str(path), train_articles=1)
        assert split["train"].to_list() == [r for r in rows if r["title"] == rows[0]["title"]]
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(rows[0]) + "\n")
    assert load_squad(validation_file=str(one), splits=("validation",))["validation"].to_list() == rows[:1]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n" + json.dumps({k: v for k, v in rows[1].items() if k != "id"}) + "\n")
    with pytest.raises(DynaKDError, match=rf"^{bad} is not in the SQuAD v1.1 JSON format \(KeyError: 'id'\); DynaKD "
                                          r'reads the official layout, .* or flat rows \{"id", "title", "context", '):
        load_squad(validation_file=str(bad), splits=("validation",))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"data": {"title": "t"}}))
    with pytest.raises(DynaKDError, match=r"\(TypeError: 'data' is a dict, not a list of articles\)"):
        load_squad(validation_file=str(other), splits=("validation",))


def test_questions_a_large_stride_cuts_are_noted(examples, tokenizer, capsys):
    """A doc_stride near max_seq_length left each question a few tokens, without a word."""
    from datasets import DatasetDict

    data = DatasetDict({"validation": examples})
    encode_squad(data, tokenizer, 32, 8)  # (room for 20 question tokens: the fixture's questions fit)
    assert "note" not in capsys.readouterr().out
    encode_squad(data, tokenizer, 32, 24)  # (room for 4)
    out = capsys.readouterr().out
    assert "note: max_seq_length 32 with doc_stride 24 leaves a question 4 token(s): " in out
    assert f"of {len(examples)} question(s) are cut to them (first: " in out and "a smaller --doc-stride" in out


def test_a_qa_evaluation_prints_its_size_not_its_offsets():
    """From a QA user's walkthrough (2026-12-07): print(qa_eval) showed every window's offsets."""
    from datasets import Dataset

    from dynakd.data.squad import QAEval

    qa = QAEval(examples=Dataset.from_dict({"id": ["a", "b"]}), features=Dataset.from_dict({"input_ids": [[1]] * 3}),
                example_ids=["a", "a", "b"], offsets=[[(0, 1)] * 384] * 3)
    assert repr(qa) == "QAEval(questions=2, windows=3, n_best=20, max_answer_length=30)"
