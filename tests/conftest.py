"""Shared fixtures: tiny random BERT models with a real WordPiece tokenizer, built in seconds."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_finish(session):
    """The test files' imports are loaded by now (torch, transformers, ~500k objects that live as long as the
    process; a model class transformers loads later is not): freeze them out of the garbage collector's sight. The
    Trainer's ``train`` runs a full ``gc.collect()`` (accelerate's ``free_memory``), which walked them all, ~0.3 s a
    run, hundreds of runs in a session."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True, scope="session")
def _cache_root(tmp_path_factory):
    """Teacher-output caches of the test runs go to a temporary folder, never the user's cache."""
    os.environ["DYNAKD_CACHE"] = str(tmp_path_factory.mktemp("dynakd-cache"))


@pytest.fixture(autouse=True)
def _teacher_scores_of_the_test(tmp_path_factory, monkeypatch):
    """Each test's recorded teacher scores in a folder of its own: the session's tiny teacher is the same files in
    every test, so a test would read the scores another test recorded (teacher_scores)."""
    from dynakd import teacher_scores

    root = tmp_path_factory.mktemp("teacher-scores")
    monkeypatch.setattr(teacher_scores, "scores_root", lambda: root)


def make_tiny_bert(
    folder: Path,
    *,
    layers: int = 4,
    hidden: int = 32,
    num_labels: int = 2,
    seed: int = 0,
    classifier: bool = True,
    reverse_vocab: bool = False,
    dropout: float = 0.1,
) -> Path:
    """Save a tiny random BERT (classifier or bare encoder) and a tokenizer over the synthetic corpus' words."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

    from dynakd.data import SYNTHETIC_VOCAB_WORDS

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({w.lower() for w in SYNTHETIC_VOCAB_WORDS} | set(",.!?'"), reverse=reverse_vocab)
    vocab = {token: i for i, token in enumerate(specials + words)}
    BertTokenizer(vocab=vocab).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(specials) + len(words),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        num_labels=num_labels,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config) if classifier else BertModel(config)
    model.save_pretrained(folder)
    return folder


def make_tiny_gpt2(folder: Path, *, layers: int = 4, eos: str | None = "</s>", pad: str | None = None) -> Path:
    """Save a tiny random GPT-2 classifier whose config names no padding token, and a word-level tokenizer over the
    synthetic corpus' words with an end-of-sequence token and no padding token unless given (as GPT-2's own)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast

    from dynakd.data import SYNTHETIC_VOCAB_WORDS

    specials = [token for token in ("<unk>", eos, pad) if token]
    words = sorted({w.lower() for w in SYNTHETIC_VOCAB_WORDS} | set(",.!?'"))
    inner = Tokenizer(models.WordLevel({t: i for i, t in enumerate(specials + words)}, unk_token="<unk>"))
    inner.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=inner, unk_token="<unk>", eos_token=eos, pad_token=pad,
                            model_input_names=["input_ids", "attention_mask"]).save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(specials) + len(words), n_embd=32, n_layer=layers, n_head=2, n_positions=64,
                        num_labels=2, pad_token_id=None)
    GPT2ForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "teacher", layers=4, hidden=32)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "encoder", layers=2, hidden=16, classifier=False)


@pytest.fixture
def function_hashing(monkeypatch) -> list:
    """DynaKD's functions and the tokenizers that datasets' fingerprinting hashes from now on (a map's function and
    its arguments, unless the map names its fingerprint); each is answered by a KeyboardInterrupt, as a Ctrl-C landing
    there, which datasets' bare ``except:`` swallows (the map goes on with a random fingerprint): a test asserts the
    list stays empty."""
    import inspect

    from datasets.fingerprint import Hasher

    hashed, original = [], Hasher.hash.__func__

    def holds_code(value) -> bool:
        if isinstance(value, dict):
            return any(map(holds_code, value.values()))
        own = inspect.isfunction(value) and value.__module__.startswith("dynakd")
        return own or hasattr(value, "get_vocab")

    def spy(cls, value):
        if holds_code(value):
            hashed.append(value)
            raise KeyboardInterrupt
        return original(cls, value)

    monkeypatch.setattr(Hasher, "hash", classmethod(spy))
    return hashed
