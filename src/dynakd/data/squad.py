"""Extractive QA (SQuAD v1.1): loading, windowed preprocessing and span postprocessing.

Loading: the hub copy (``rajpurkar/squad``) or local files in the official SQuAD v1.1 JSON format
(``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers"}]}]}]}``), flattened to
one row per question with the hub's columns ``id``, ``title``, ``context``, ``question`` and
``answers = {"text": [...], "answer_start": [...]}``, or files of such rows (``read_squad_json``).
``train_articles = N`` splits one file by article, deterministically: the first ``N`` articles in file order train,
the others evaluate.

Preprocessing follows the standard recipe of transformers' ``run_qa.py`` example (rewritten here; the example is a
script, not an importable API): question + context windows of ``max_seq_length`` tokens overlapping by
``doc_stride`` tokens, character offsets from a fast tokenizer, and an answer that does not fit in a window labelled
as that window's CLS token (the first token, the last for a model that puts it last such as XLNet, position 0 for a
tokenizer without one). Postprocessing picks, for each question, the best valid span over all its windows.
"""

from __future__ import annotations

import collections
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict, Features, Value
from datasets import Sequence as Seq

from dynakd import hub
from dynakd.data.fingerprint import map_fingerprint, tokenizer_state
from dynakd.distributed import note
from dynakd.errors import DynaKDError, first_line
from dynakd.features import CONTEXT_MASK

SQUAD_FEATURES = Features({
    "id": Value("string"),
    "title": Value("string"),
    "context": Value("string"),
    "question": Value("string"),
    "answers": {"text": Seq(Value("string")), "answer_start": Seq(Value("int32"))},
})


# ----------------------------------------------------------------------------------------------- loading
def read_squad_json(path: str) -> list[dict[str, Any]]:
    """The articles of a SQuAD v1.1 file, each ``{"title", "rows": [flat question rows]}``: the official layout, or
    flat rows as the datasets library holds SQuAD (``id``, ``title``, ``context``, ``question``, ``answers = {"text":
    [...], "answer_start": [...]}``) in JSON lines (``Dataset.to_json``), a JSON list, or a list under ``"data"``
    (run_qa.py's JSON: ``load_dataset("json", field="data")``), whose articles are its runs of rows of one title."""
    if not os.path.isfile(path):
        raise DynaKDError(f"SQuAD file not found: {path}")
    try:
        items = _items(path)
        if items and all(isinstance(x, dict) and "question" in x for x in items):  # flat rows
            return _articles_of_rows(items)
        return [{"title": a.get("title", ""), "rows": _rows(a)} for a in items]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DynaKDError(f"{path} is not in the SQuAD v1.1 JSON format ({type(e).__name__}: {e}); DynaKD reads "
                          'the official layout, one JSON object {"data": [{"title": ..., "paragraphs": [{"context": '
                          '..., "qas": [{"id": ..., "question": ..., "answers": [{"text": ..., "answer_start": ...}]}]}'
                          ']}]}, or flat rows {"id", "title", "context", "question", "answers": {"text": [...], '
                          '"answer_start": [...]}} (the datasets library\'s SQuAD: JSON lines, a JSON list, or a list '
                          'under "data")') from None


def _items(path: str) -> list[Any]:
    """The file's articles or rows: ``data`` of a JSON object, a JSON list, or a JSON object a line."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        doc = json.loads(text)
    except ValueError as whole:  # JSON lines, or a broken JSON file: named by the error of reading it whole
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            doc = [json.loads(line) for line in lines]
        except ValueError:
            raise whole from None
        if len(lines) < 2:
            raise
    if isinstance(doc, dict):
        doc = [doc] if "question" in doc else doc["data"]  # (one flat row: a file of JSON lines of one line)
    if not isinstance(doc, list):
        raise TypeError(f"'data' is a {type(doc).__name__}, not a list of articles")
    return doc


def _articles_of_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat question rows as articles: each run of consecutive rows of one title (``--train-articles`` splits by
    them), their answers as the datasets library holds them or as a list of ``{"text", "answer_start"}``."""
    articles: list[dict[str, Any]] = []
    for row in rows:
        answers = row.get("answers", [])
        if isinstance(answers, dict):
            text, start = list(answers["text"]), [int(a) for a in answers["answer_start"]]
            if len(text) != len(start):
                raise ValueError(f"question {row['id']!r}: its answers hold {len(text)} text(s) and {len(start)} "
                                 "answer_start(s)")
        else:
            text, start = [a["text"] for a in answers], [int(a["answer_start"]) for a in answers]
        title = str(row.get("title") or "")
        flat = {"id": str(row["id"]), "title": title, "context": row["context"], "question": row["question"],
                "answers": {"text": text, "answer_start": start}}
        if not articles or articles[-1]["title"] != title:
            articles.append({"title": title, "rows": []})
        articles[-1]["rows"].append(flat)
    return articles


def _rows(article: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for paragraph in article["paragraphs"]:
        for qa in paragraph["qas"]:
            answers = qa.get("answers", [])
            rows.append({
                "id": str(qa["id"]),
                "title": article.get("title", ""),
                "context": paragraph["context"],
                "question": qa["question"],
                "answers": {"text": [a["text"] for a in answers],
                            "answer_start": [int(a["answer_start"]) for a in answers]},
            })
    return rows


def _to_dataset(articles: list[dict[str, Any]], where: str) -> Dataset:
    rows = [row for article in articles for row in article["rows"]]
    if not rows:  # (datasets fails on an empty list with its features: a traceback about keys)
        raise DynaKDError(f"{where} holds no questions")
    return Dataset.from_list(rows, features=SQUAD_FEATURES)


def load_squad(
    *,
    train_file: str | None = None,
    validation_file: str | None = None,
    train_articles: int | None = None,
    splits: Sequence[str] = ("train", "validation"),
) -> DatasetDict:
    """SQuAD splits ``train`` / ``validation`` from local files, a by-article split of ``train_file``, or the hub."""
    if train_articles is not None:
        if not train_file:
            raise DynaKDError("--train-articles splits the --train-file by article: give --train-file")
        if validation_file:
            raise DynaKDError("--train-articles takes the evaluation articles from --train-file: "
                              "drop --validation-file")
        articles = read_squad_json(train_file)
        if not 0 < train_articles < len(articles):
            raise DynaKDError(f"--train-articles must be in 1..{len(articles) - 1} ({train_file} has {len(articles)})")
        parts = {"train": articles[:train_articles], "validation": articles[train_articles:]}
        where = {"train": f"the training articles of {train_file}",
                 "validation": f"the evaluation articles of {train_file}"}
        if "validation" in splits:
            _check_scorable(parts["validation"], where["validation"])
        if "train" in splits:
            _check_trainable(parts["train"], where["train"])
        return DatasetDict({s: _to_dataset(parts[s], where[s]) for s in splits})
    if train_file or validation_file:
        files = {"train": train_file, "validation": validation_file}
        missing = [s for s in splits if not files[s]]
        if missing:
            if missing[0] == "train":  # (--train-articles splits a --train-file: no stand-in for one)
                raise DynaKDError("--task squad with local files needs --train-file")
            raise DynaKDError("--task squad with local files needs --validation-file (or --train-articles N, to "
                              "evaluate on the --train-file's articles after the first N)")
        articles = {s: read_squad_json(files[s]) for s in splits}
        if "validation" in articles:
            _check_scorable(articles["validation"], validation_file)
        if "train" in articles:
            _check_trainable(articles["train"], train_file)
        return DatasetDict({s: _to_dataset(articles[s], files[s]) for s in splits})
    return _load_hub(splits)


def _check_scorable(articles: list[dict[str, Any]], where: str) -> None:
    """Questions the v1.1 metric can score: each with a gold answer (SQuAD 2.0's unanswerable ones have none, and
    would end the run in the metric after training) and an id of its own (predictions are keyed by id: two questions
    sharing one would be scored against each other's answers)."""
    rows = [row for article in articles for row in article["rows"]]
    unanswered = [row["id"] for row in rows if not row["answers"]["text"]]
    if unanswered:
        raise DynaKDError(f"{where}: {len(unanswered)} question(s) without a gold answer (first: id "
                          f"{unanswered[0]!r}); SQuAD v1.1 scoring needs one per question (SQuAD 2.0's unanswerable "
                          "questions are not supported): remove them from the evaluation file")
    seen: set[str] = set()
    twice = next((row["id"] for row in rows if row["id"] in seen or seen.add(row["id"])), None)
    if twice is not None:
        raise DynaKDError(f"{where}: question id {twice!r} names more than one question; ids must be unique")


def _check_trainable(articles: list[dict[str, Any]], where: str) -> None:
    """Say how many training questions have no answer (SQuAD 2.0's unanswerable ones, an ``answers`` key spelt
    otherwise), or a first answer whose text is not at its ``answer_start``: they train every window to point at no
    answer, or at the span found at ``answer_start`` (as transformers' run_qa.py trains them, without a word; BERT's
    run_squad.py said "Could not find answer"). Refused where no question has an answer: nothing to learn but "no
    answer"."""
    rows = [row for article in articles for row in article["rows"]]
    unanswered = [row["id"] for row in rows if not row["answers"]["text"]]
    if rows and len(unanswered) == len(rows):
        raise DynaKDError(f"{where}: none of its {len(rows)} question(s) has an answer (each needs \"answers\": "
                          '[{"text": ..., "answer_start": ...}]); every window would learn "no answer"')
    if unanswered:
        note(f"{where}: {len(unanswered)} of {len(rows)} training question(s) have no answer (first: id "
             f"{unanswered[0]!r}); they train their windows to point at no answer (SQuAD 2.0's unanswerable questions "
             "are not supported)")
    misplaced = [row for row in rows if row["answers"]["text"] and not _found(row)]
    outside = [row for row in misplaced if not _inside(row)]  # (no window holds the span: labelled "no answer")
    if outside:
        row = outside[0]
        text, start = row["answers"]["text"][0], row["answers"]["answer_start"][0]
        note(f"{where}: {len(outside)} of {len(rows)} training answer(s) lie outside their context (first: id "
             f"{row['id']!r}, {text!r} at {start}, in a context of {len(row['context'])} characters); they train "
             "their windows to point at no answer: an answer_start counts characters of the context from 0")
    if misplaced := [row for row in misplaced if _inside(row)]:
        row = misplaced[0]
        text, start = row["answers"]["text"][0], row["answers"]["answer_start"][0]
        there = row["context"][max(start, 0): max(start + len(text), 0)]
        note(f"{where}: {len(misplaced)} of {len(rows)} training answer(s) are not at their answer_start (first: id "
             f"{row['id']!r}, {text!r}; the context at {start} reads {there!r}); they train the span found there: an "
             "answer_start counts characters of the context from 0")


def _inside(row: dict[str, Any]) -> bool:
    """Whether a row's first answer, as long as its text from its ``answer_start``, reaches into its context: a span
    wholly outside it is in no window (``prepare_train_features`` labels it "no answer"), one partly outside is cut
    to the context."""
    text, start = row["answers"]["text"][0], row["answers"]["answer_start"][0]
    return start < len(row["context"]) and start + len(text) > 0


def _found(row: dict[str, Any]) -> bool:
    """Whether a row's first answer (the one training reads) is its context's text at its ``answer_start``."""
    text, start = row["answers"]["text"][0], row["answers"]["answer_start"][0]
    return 0 <= start and row["context"][start: start + len(text)] == text


def _load_hub(splits: Sequence[str]) -> DatasetDict:
    import datasets

    try:
        hub.offline_unless_reachable()
        data = datasets.load_dataset("rajpurkar/squad")
    except Exception as e:  # noqa: BLE001 - offline, missing, or a changed hub layout: one message
        reason = first_line(e)
        raise DynaKDError(
            f"cannot load SQuAD from the hub ({reason}); pass --train-file/--validation-file (SQuAD v1.1 JSON)"
        ) from None
    return DatasetDict({s: data[s].select_columns(list(SQUAD_FEATURES)) for s in splits})


# ----------------------------------------------------------------------------------------------- preprocessing
@dataclass
class QAEval:
    """What postprocessing needs besides the logits: the examples, and per window its example and offsets."""

    examples: Dataset  # id, context, answers
    features: Dataset  # model inputs only, in window order (what the Trainer predicts on)
    example_ids: list[str]  # [N windows]
    offsets: list[list[tuple[int, int] | None]]  # [N windows][T]; None outside the context
    n_best: int = 20
    max_answer_length: int = 30

    def __repr__(self) -> str:  # (the dataclass's printed every window's offsets: thousands of tuples)
        return (f"QAEval(questions={len(self.examples)}, windows={len(self.example_ids)}, n_best={self.n_best}, "
                f"max_answer_length={self.max_answer_length})")


def _windows(tokenizer, examples: dict[str, list], max_length: int, stride: int):
    if not getattr(tokenizer, "is_fast", False):
        raise DynaKDError("extractive QA needs a fast tokenizer (character offsets); this model's tokenizer is slow")
    pad_on_right = tokenizer.padding_side == "right"
    questions = _cut_questions(tokenizer, [q.lstrip() for q in examples["question"]], max_length, stride)
    first, second = (questions, examples["context"]) if pad_on_right else (examples["context"], questions)
    try:
        enc = tokenizer(first, second, truncation="only_second" if pad_on_right else "only_first",
                        max_length=max_length, stride=stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True, padding=False)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - the tokenizer's own errors, as one line (a Rust panic is no Exception)
        reason = first_line(e)
        where = f"max_seq_length {max_length}, doc_stride {stride}"
        raise DynaKDError(f"cannot cut SQuAD windows ({where}): {reason}") from None
    return enc, 1 if pad_on_right else 0


# BERT's max_query_length: no more of a question than this (no question of SQuAD v1.1's dev set has more than 38
# MiniLM tokens)
MAX_QUESTION_TOKENS = 64


def _cut_questions(tokenizer, questions: list[str], max_length: int, stride: int) -> list[str]:
    """Questions cut to at most ``MAX_QUESTION_TOKENS`` tokens and to what leaves a window room for more context than
    the stride. Without the first cut a long question left each window a few new context tokens: a 300-word question
    at 128/32 made 126 windows. Leading spaces only waste room."""
    room = _question_room(tokenizer, max_length, stride)
    if room < 1:
        raise DynaKDError(f"max_seq_length {max_length} leaves no room for a question with doc_stride {stride}")
    limit = min(room, MAX_QUESTION_TOKENS)
    offsets = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [_cut(tokenizer, q, offs, limit) if len(offs) > limit else q for q, offs in zip(questions, offsets)]


def _question_room(tokenizer, max_length: int, stride: int) -> int:
    """The tokens a window leaves its question, so that it holds more context than the stride overlaps."""
    return max_length - stride - tokenizer.num_special_tokens_to_add(pair=True) - 1


# The windows whose cut questions were noted, once a run (it encodes its evaluation set again for the teacher):
# emptied as each run starts (``forget_notes``), as a Python caller's second run cuts them again
_NOTED_CUTS: set[tuple[int, int, int]] = set()


def forget_notes() -> None:
    _NOTED_CUTS.clear()


def _note_cut_questions(data: DatasetDict, tokenizer, max_length: int, stride: int) -> None:
    """Say how many questions the windows' room cuts below BERT's 64 tokens: a ``doc_stride`` near ``max_seq_length``
    left "What is the name of one type of modern primality test?" as "what is the name", without a word."""
    room = _question_room(tokenizer, max_length, stride)
    # (room < 1: refused when cut; the room is the tokenizer's too: its special tokens)
    if not 1 <= room < MAX_QUESTION_TOKENS or (max_length, stride, room) in _NOTED_CUTS:
        return
    _NOTED_CUTS.add((max_length, stride, room))
    questions = [q.lstrip() for ds in data.values() for q in ds["question"]]
    cut = [q for q, ids in zip(questions, tokenizer(questions, add_special_tokens=False)["input_ids"])
           if len(ids) > room]
    if cut:
        note(f"max_seq_length {max_length} with doc_stride {stride} leaves a question {room} token(s): {len(cut)} of "
             f"{len(questions)} question(s) are cut to them (first: {cut[0]!r}); a smaller --doc-stride keeps them "
             "whole")


def _cut(tokenizer, question: str, offsets: list[tuple[int, int]], limit: int) -> str:
    """``question`` cut to at most ``limit`` tokens. Offsets count characters, and one character can be several tokens
    (Hangul under accent stripping, ``€`` under byte-level BPE): a cut after token ``limit`` kept the rest of its
    character's tokens, the window then had no more room than the stride, and the tokenizer panicked. Each retry
    cuts where the first token past the limit begins."""
    cut = question[: offsets[limit - 1][1]]
    while True:
        offsets = tokenizer(cut, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) <= limit:
            return cut
        cut = cut[: min(offsets[limit][0], len(cut) - 1)]


def prepare_train_features(examples: dict[str, list], tokenizer, max_length: int, stride: int) -> dict[str, list]:
    """Windows with ``labels = [start, end]`` token positions of the first gold answer, or ``[cls, cls]`` (the
    window's CLS token wherever it is, its first token outside the context without one) when the answer is not wholly
    inside the window; ``context_mask`` marks context tokens."""
    enc, context_id = _windows(tokenizer, examples, max_length, stride)
    samples = enc["overflow_to_sample_mapping"]
    seqs = [enc.sequence_ids(i) for i in range(len(samples))]  # (read by both passes below)
    # per example, the characters its context tokens cover over all its windows (in either order: a tokenizer that
    # truncates from the left gives the last window first): an answer reaching into characters the tokenizer drops at
    # an end of its context is clipped to them, and is then wholly inside the window holding that end
    covered = {}
    for i, offsets in enumerate(enc["offset_mapping"]):
        chars = [o for o, s in zip(offsets, seqs[i]) if s == context_id and o[0] < o[1]]
        if chars:
            lo, hi = covered.get(samples[i], (chars[0][0], chars[-1][1]))
            covered[samples[i]] = min(lo, chars[0][0]), max(hi, chars[-1][1])
    labels, context = [], []
    for i, (offsets, seq) in enumerate(zip(enc["offset_mapping"], seqs)):
        context.append([int(s == context_id) for s in seq])
        answers = examples["answers"][samples[i]]
        cls = _no_answer(enc["input_ids"][i], seqs[i], tokenizer.cls_token_id, context_id)
        if not answers["answer_start"] or samples[i] not in covered:
            labels.append([cls, cls])
            continue
        lo, hi = covered[samples[i]]
        # an answer's own spaces at its ends are no token's: one starting on a space was in no window that began at
        # its first word
        text = answers["text"][0]
        start_char = answers["answer_start"][0] + len(text) - len(text.lstrip())
        end_char = answers["answer_start"][0] + len(text.rstrip())
        span = answer_tokens(offsets, seq, context_id, max(start_char, lo), min(end_char, hi))
        labels.append(list(span) if span else [cls, cls])
    out = {k: v for k, v in enc.items() if k not in ("offset_mapping", "overflow_to_sample_mapping")}
    return {**out, "labels": labels, CONTEXT_MASK: context}


def _no_answer(ids: list[int], seq_ids: list, cls_id: int | None, context_id: int) -> int:
    """Where a window without its answer points: its CLS token wherever it is, else its first token outside the
    context. Position 0 was a context token for a tokenizer without CLS that puts the context first."""
    if cls_id is not None and cls_id in ids:
        return ids.index(cls_id)
    return next((t for t, s in enumerate(seq_ids) if s != context_id), 0)


def answer_tokens(offsets, seq_ids, context_id: int, start_char: int, end_char: int) -> tuple[int, int] | None:
    """Token positions ``(start, end)`` of the first and last context tokens holding characters of
    ``[start_char, end_char)``, or None when the span is not wholly inside this window (or no token holds any of it).
    A character the tokenizer drops belongs to no token (a combining accent in NFD text, Arabic tanwin, a zero-width
    space): the first token reaching past an answer ending in one was the next word."""
    ctx = [t for t, s in enumerate(seq_ids) if s == context_id and offsets[t][0] < offsets[t][1]]
    if not ctx or offsets[ctx[0]][0] > start_char or offsets[ctx[-1]][1] < end_char:
        return None
    inside = [t for t in ctx if offsets[t][1] > start_char and offsets[t][0] < end_char]
    return (inside[0], inside[-1]) if inside else None


def prepare_eval_features(examples: dict[str, list], tokenizer, max_length: int, stride: int) -> dict[str, list]:
    """Windows with their example ``squad_id`` and ``offset_mapping`` (None outside the context)."""
    enc, context_id = _windows(tokenizer, examples, max_length, stride)
    ids, offsets = [], []
    for i, offs in enumerate(enc["offset_mapping"]):
        seq = enc.sequence_ids(i)
        ids.append(examples["id"][enc["overflow_to_sample_mapping"][i]])
        offsets.append([list(o) if s == context_id else None for o, s in zip(offs, seq)])
    out = {k: v for k, v in enc.items() if k not in ("offset_mapping", "overflow_to_sample_mapping")}
    return {**out, "squad_id": ids, "offset_mapping": offsets}


def encode_squad(data: DatasetDict, tokenizer, max_length: int, stride: int, *, n_best: int = 20,
                 max_answer_length: int = 30) -> tuple[DatasetDict, dict[str, QAEval]]:
    """Windows of every split: ``train`` for training (with labels), the others for evaluation (model inputs only,
    plus a ``QAEval`` per split for postprocessing)."""
    if stride >= max_length:
        raise DynaKDError(f"doc_stride ({stride}) must be smaller than max_seq_length ({max_length})")
    _note_cut_questions(data, tokenizer, max_length, stride)
    encoded, evals = {}, {}
    kwargs = {"tokenizer": tokenizer, "max_length": max_length, "stride": stride}
    # the windows' cache key: the rows, this module's code (the window functions and their helpers), the tokenizer and
    # the lengths (datasets would hash the functions and fn_kwargs, tokenizer and all)
    settings = (tokenizer_state(tokenizer), max_length, stride)
    for split, ds in data.items():
        if split == "train":
            encoded[split] = ds.map(prepare_train_features, batched=True, remove_columns=ds.column_names,
                                    fn_kwargs=kwargs, desc="SQuAD train windows",
                                    new_fingerprint=map_fingerprint(ds, sys.modules[__name__], "train", *settings))
            continue
        feats = ds.map(prepare_eval_features, batched=True, remove_columns=ds.column_names, fn_kwargs=kwargs,
                       desc="SQuAD eval windows",
                       new_fingerprint=map_fingerprint(ds, sys.modules[__name__], "eval", *settings))
        inputs = feats.remove_columns(["squad_id", "offset_mapping"])
        offsets = [[tuple(o) if o is not None else None for o in row] for row in feats["offset_mapping"]]
        evals[split] = QAEval(ds, inputs, list(feats["squad_id"]), offsets, n_best, max_answer_length)
        encoded[split] = inputs
    return DatasetDict(encoded), evals


# ----------------------------------------------------------------------------------------------- postprocessing
def best_spans(qa: QAEval, start_logits: np.ndarray, end_logits: np.ndarray) -> dict[str, str]:
    """Question id -> predicted answer text: over every window of a question, the ``n_best`` highest start and end
    logits are paired; a pair is valid when both tokens lie in the context, ``start <= end`` and the span has at most
    ``max_answer_length`` tokens; the valid pair with the highest ``start + end`` logit wins ("" if none is valid).

    ``start_logits`` / ``end_logits``: ``[N windows, T]``, possibly padded past a window's length (any value there is
    ignored, since those positions have no offsets).
    """
    windows = collections.defaultdict(list)
    for i, qid in enumerate(qa.example_ids):
        windows[qid].append(i)
    contexts = dict(zip(qa.examples["id"], qa.examples["context"]))
    predictions = {}
    for qid, context in contexts.items():
        best, text = -np.inf, ""
        for i in windows.get(qid, []):
            offsets = qa.offsets[i]
            span = _best_in_window(start_logits[i], end_logits[i], offsets, qa.n_best, qa.max_answer_length)
            if span is not None and span[0] > best:
                best, (s, e) = span[0], span[1:]
                text = context[offsets[s][0] : offsets[e][1]]
        predictions[qid] = text
    return predictions


def _best_in_window(start, end, offsets, n_best: int, max_answer_length: int) -> tuple[float, int, int] | None:
    n = len(offsets)
    starts = [int(t) for t in np.argsort(start[:n])[::-1][:n_best]]
    ends = [int(t) for t in np.argsort(end[:n])[::-1][:n_best]]
    best = None
    for s in starts:
        for e in ends:
            if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                continue
            score = float(start[s] + end[e])
            if best is None or score > best[0]:
                best = (score, s, e)
    return best


def gold_answers(examples: Dataset) -> dict[str, list[str]]:
    """Question id -> its gold answer texts (the references of the SQuAD metric)."""
    return {qid: list(a["text"]) for qid, a in zip(examples["id"], examples["answers"])}
