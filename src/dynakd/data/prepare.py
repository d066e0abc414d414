"""Tokenised datasets and the collator: each model gets its own inputs.

When teacher and student tokenise differently, every example carries a second encoding under ``teacher_*`` keys and
the collator pads both; otherwise one encoding serves both, and each model takes the inputs it accepts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from datasets import DatasetDict

from ..distributed import is_first_process, note
from ..errors import DynaKDError
from ..features import CONTEXT_MASK, EXAMPLE_ID, HIDDEN_LABEL, NON_MODEL_KEYS, TEACHER_PREFIX, class_token_last
from ..notes import tell
from .fingerprint import map_fingerprint, tokenizer_state

# Text that tells tokenizers of one vocabulary apart: case, accents, other scripts, spacing, symbols, a web address
# and a handle (BERTweet-style normalisers), words of 60 and 160 characters (WordPiece reads up to
# max_input_chars_per_word, 100 by default, then gives [UNK]), and a pair
# (where the special tokens go, token types)
_PROBES = ["Café NAÏVE résumé, it's 3.14!", "中文 テスト 한국어 ℃ 🙂", "tabs\tand  double  spaces", "ﬁ ① Ａ",
           "see https://example.com/a?b=1 @someone #tag", "good" * 15, "good" * 40]
_PROBE_PAIR = (["Who wrote it?"], ["Ünïcode text."])


def same_tokenizer(a, b, *, qa: bool = False) -> bool:
    """True when two tokenizers encode alike: same vocabulary and special tokens, the same truncation side (and for
    extractive QA the same padding side, which orders question and context in its windows: batches themselves always
    pad on the right), and the same encodings of probe texts (lower-casing, accents, splitting: one vocabulary may
    encode "café" as ``café`` or ``[UNK]``), each asked for the inputs either names. Encodings are compared rather than
    settings: two spellings of one normalizer are the same. Their input names may differ: DistilBERT's tokenizer is
    BERT's without ``token_type_ids`` (``shared_tokenizer`` says which one then encodes for both)."""
    if a is b:
        return True
    names = {*a.model_input_names, *b.model_input_names}
    return (
        a.get_vocab() == b.get_vocab()
        and a.all_special_tokens == b.all_special_tokens
        and a.truncation_side == b.truncation_side
        and (not qa or a.padding_side == b.padding_side)
        and (probes := _encodings(a, names)) is not None and probes == _encodings(b, names)
    )


def shared_tokenizer(student, teacher, *, qa: bool = False):
    """The tokenizer whose encoding both models read, or None when each needs its own (``teacher`` None: the
    student's). Of two that encode alike (``same_tokenizer``), the one whose input names hold the other's: a BERT
    teacher's, beside its DistilBERT student's without ``token_type_ids``; each model then takes the inputs it
    accepts. The student's when their names agree."""
    if teacher is None or student is teacher:
        return student
    if not same_tokenizer(student, teacher, qa=qa):
        return None
    names = {*student.model_input_names, *teacher.model_input_names}
    return next((t for t in (student, teacher) if set(t.model_input_names) == names), None)


def _encodings(tokenizer, names: set[str]) -> list[dict[str, Any]] | None:
    asked = {"return_token_type_ids": "token_type_ids" in names, "return_attention_mask": "attention_mask" in names}
    try:
        return [dict(tokenizer(_PROBES, **asked)), dict(tokenizer(*_PROBE_PAIR, **asked))]
    except Exception:  # noqa: BLE001 - e.g. a vocabulary without an unknown token: not shown the same
        return None


def tokenize(data: DatasetDict, tokenizer, max_length: int, teacher_tokenizer=None) -> DatasetDict:
    """Encode ``text_a`` (and ``text_b``) for the student and, if given, for the teacher; ``label`` -> ``labels``."""

    def encode(batch: dict[str, list]) -> dict[str, Any]:
        texts = (batch["text_a"],) + ((batch["text_b"],) if "text_b" in batch else ())
        enc = dict(tokenizer(*texts, truncation=True, max_length=max_length))
        if teacher_tokenizer is not None:
            t_enc = teacher_tokenizer(*texts, truncation=True, max_length=max_length)
            enc.update({TEACHER_PREFIX + k: v for k, v in t_enc.items()})
        enc["labels"] = batch["label"]
        return enc

    # what encode reads besides the rows (datasets would hash the closure, tokenizers and all, for this)
    teacher_state = None if teacher_tokenizer is None else tokenizer_state(teacher_tokenizer)
    settings = [tokenizer_state(tokenizer), max_length, teacher_state, TEACHER_PREFIX]
    return DatasetDict({
        split: ds.map(encode, batched=True, remove_columns=ds.column_names, desc="tokenizing",
                      new_fingerprint=map_fingerprint(ds, encode, *settings))
        for split, ds in data.items()
    })


def note_cut_rows(data: DatasetDict, max_length: int) -> None:
    """Say how many rows of each split fill every position up to ``max_length``: their ends are cut (the tokenizer's
    truncation says nothing; 2,000-word rows trained on their first 64 tokens without a word). A row that fits
    exactly counts too: it cannot be told apart here without encoding every row again."""
    import pyarrow.compute as pc

    full = {split: int(pc.sum(pc.greater_equal(pc.list_value_length(ds.with_format("arrow")["input_ids"]),
                                               max_length)).as_py() or 0) for split, ds in data.items() if len(ds)}
    if said := [f"{n:,} of {len(data[split]):,} {split} rows" for split, n in full.items() if n]:
        note(f"{', '.join(said)} fill all {max_length} tokens of max_seq_length: cut there, or exactly that long (a "
             "longer --max-seq-length keeps more of the cut ones, at more cost per step)")


def empty_examples(ds) -> list[int]:
    """The rows of ``ds`` whose texts are all empty: whitespace, or invisible format characters (zero-width spaces,
    a byte-order mark), which a tokenizer reads as nothing as well."""
    text_columns = [c for c in ("text_a", "text_b") if c in ds.column_names]
    rows = zip(*(ds[c] for c in text_columns))
    return [i for i, texts in enumerate(rows) if not any(t and _visible(t) for t in texts)]


def _visible(text: str) -> bool:
    import unicodedata

    return bool(text.strip()) and any(not c.isspace() and unicodedata.category(c) != "Cf" for c in text)


def drop_empty(data: DatasetDict, train_split: str = "train", source: tuple[str, Any] | None = None) -> DatasetDict:
    """Refuse a split without a single non-empty example; drop empty examples from the training split.

    An example whose texts are all empty (or whitespace) has no tokens besides special ones (none at all for
    tokenizers without special tokens, i.e. an all-padding row): it has no features to distil. Eval splits keep
    such rows, since the official metrics count every row. ``source``: the name of the file the training rows came
    from, and its rows before a subset or a dev split drew from them, whose empty ones the note names, so that a user
    finds them (the positions in a drawn subset are no place in the file).
    """
    for split, ds in data.items():
        empty = empty_examples(ds)
        if len(empty) == len(ds):
            what = "has no examples" if not len(ds) else f"has only empty examples ({len(ds)} rows without text)"
            raise DynaKDError(f"the {split} split {what}")
        if empty and split == train_split:
            where, whole = source or ("the training data", ds)
            rows = empty if whole is ds else empty_examples(whole)  # (the whole file read only where it has some)
            named = ", ".join(str(i + 1) for i in rows[:5]) + (", ..." if len(rows) > 5 else "")
            drawn = "" if len(rows) == len(empty) else f" of the {len(ds)} drawn"
            if is_first_process():  # (every process of a launched run drops the same rows)
                tell(f"skipping {len(empty)} empty training example(s){drawn} ({where} has {len(rows)} row(s) "
                     f"without text: data rows {named}, counting from 1 after any header)")
            data[split] = ds.select(sorted(set(range(len(ds))) - set(empty)))
    return data


def check_labels(data: DatasetDict, num_labels: int, regression: bool) -> None:
    """Every label must be a class the model can predict (or be hidden: a transfer row)."""
    if regression:
        return
    for split, ds in data.items():
        labels = np.asarray(ds["label"])
        labels = labels[labels != HIDDEN_LABEL]
        if len(labels) and (labels.min() < 0 or labels.max() >= num_labels):
            bad = int(labels.max() if labels.max() >= num_labels else labels.min())
            raise DynaKDError(
                f"{split} split has label {bad}, outside the model's range 0..{num_labels - 1} ({num_labels} labels)"
            )


def fraction(labels: torch.Tensor) -> float | None:
    """The first label that is not a whole number (a regression target given as a class), None if none is."""
    if not labels.is_floating_point():
        return None
    bad = labels[labels != labels.round()]
    return bad[0].item() if bad.numel() else None


def pad_multiple(cfg, device: torch.device | str) -> int | None:
    """The multiple a run's batches pad to (``pad_to_multiple_of``; unset: 8 on a CUDA device or under torch.compile,
    else none, see ``DistillConfig``), for the collator of its training, evaluation and teacher-cache pass alike."""
    if cfg.pad_to_multiple_of is not None:
        return None if cfg.pad_to_multiple_of == 1 else cfg.pad_to_multiple_of
    return 8 if torch.device(device).type == "cuda" or cfg.torch_compile else None


def padding_side(*models, qa: bool = False) -> str:
    """The side the batches of ``models`` (those that take them; None: none) pad on: the left where a classifier reads
    the last position whatever the mask (XLNet's, ``features.class_token_last``; its relative positions give a row the
    same outputs padded on the left as alone, and on the right it read a pad), else the right
    (``DistillationCollator``). QA's heads read every position, which QA's labels count from the left: the right."""
    return "left" if not qa and any(m is not None and class_token_last(m) for m in models) else "right"


class DistillationCollator:
    """Pads the student's (and the teacher's) encodings separately. Labels (a ``labels`` or ``label`` entry) become
    float tensors with ``regression=True``, long with ``False`` (a label that is not a whole number is then refused),
    and with ``None`` keep their kind as the Trainer's collators do: float labels (STS-B's) float, integers long.
    A batch pads to a multiple of ``pad_to_multiple_of`` (tensor cores' tiles; 8 unless given, where
    ``DataCollatorWithPadding`` pads to the longest row: ``None``; on a CPU 8 only adds work, ``pad_multiple``) unless
    that passes ``max_length``: for a model whose limit is no multiple of 8 (66 positions), a batch of its longest
    inputs padded to 72 failed inside the model. ``sides``: the sides the student's and the teacher's encodings pad on
    (``padding_side``), the right unless given."""

    def __init__(self, tokenizer, teacher_tokenizer=None, regression: bool | None = None,
                 pad_to_multiple_of: int | None = 8, max_length: int | None = None,
                 sides: tuple[str, str] = ("right", "right")):
        self.tokenizer, self.teacher_tokenizer, self.sides = tokenizer, teacher_tokenizer, sides
        self.regression, self.multiple, self.max_length = regression, pad_to_multiple_of, max_length

    def _multiple(self, rows: list[dict[str, Any]]) -> int | None:
        m = self.multiple
        if m and self.max_length and rows and "input_ids" in rows[0]:
            longest = max(len(r["input_ids"]) for r in rows)
            return m if -(-longest // m) * m <= self.max_length else None
        return m

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        def is_student_key(k: str) -> bool:
            return k not in NON_MODEL_KEYS and k != "label" and not k.startswith(TEACHER_PREFIX)

        student = [{k: v for k, v in f.items() if is_student_key(k)} for f in features]
        # Batches pad on the right whatever the tokenizer's side (XLNet's classifiers aside, ``padding_side``): QA's
        # answer positions and offsets count from the left, and a model that numbers positions from 0 whatever the
        # padding (BERT's, GPT-2's) gives a left-padded row other outputs beside a longer row than alone, so the
        # teacher's outputs (and the cache built in batches of other rows) would depend on the batch; the first token
        # (cls pooling, pkd) would be a pad.
        batch = dict(self.tokenizer.pad(student, pad_to_multiple_of=self._multiple(student), return_tensors="pt",
                                        padding_side=self.sides[0]))
        if self.teacher_tokenizer is not None:
            n = len(TEACHER_PREFIX)
            teacher = [{k[n:]: v for k, v in f.items() if k.startswith(TEACHER_PREFIX)} for f in features]
            padded = self.teacher_tokenizer.pad(teacher, pad_to_multiple_of=self._multiple(teacher),
                                                return_tensors="pt", padding_side=self.sides[1])
            batch.update({TEACHER_PREFIX + k: v for k, v in padded.items()})
        # absent from QA evaluation windows; [2] start/end positions for QA training; 'label' as the Trainer's own
        # collators take it
        label = next((k for k in ("labels", "label") if k in features[0]), None)
        if label:
            batch["labels"] = self._labels([f[label] for f in features])
        if CONTEXT_MASK in features[0]:
            batch[CONTEXT_MASK] = self._pad_mask([list(f[CONTEXT_MASK]) for f in features], batch["input_ids"].shape[1])
        if EXAMPLE_ID in features[0]:
            batch[EXAMPLE_ID] = torch.tensor([f[EXAMPLE_ID] for f in features], dtype=torch.long)
        return batch

    def _labels(self, values: list) -> torch.Tensor:
        """Float32 for regression targets, long for classes and positions (see the class)."""
        labels = torch.tensor(values)
        regression = labels.is_floating_point() if self.regression is None else self.regression
        if regression:
            return labels.float()
        if (bad := fraction(labels)) is not None:
            raise DynaKDError(f"label {bad:g} is not a class, and this DistillationCollator was built with "
                              "regression=False: pass regression=True (or None) for regression targets")
        return labels.long()

    @staticmethod
    def _pad_mask(rows: list[list[int]], length: int) -> torch.Tensor:
        """Pad 0/1 rows on the right to ``length`` (as QA windows are): ``[B, length]``."""
        return torch.tensor([r + [0] * (length - len(r)) for r in rows])
