"""Loading teachers, students and models to score: weights a checkpoint lacks, padding, the usable input length."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dynakd.data.tasks import get_task
from dynakd.errors import DynaKDError
from dynakd.models import check_seq_length, load_task_model
from tests.conftest import make_tiny_bert, make_tiny_gpt2

SST2, SQUAD = get_task("sst2"), get_task("squad")


def drop_weights(folder: Path, *parts: str) -> Path:
    """Remove from the folder's checkpoint every weight whose name holds one of ``parts``."""
    weights = load_file(folder / "model.safetensors")
    kept = {k: v for k, v in weights.items() if not any(p in k for p in parts)}
    assert len(kept) < len(weights)
    save_file(kept, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_a_teacher_or_model_to_score_without_all_its_weights_is_refused(tmp_path, capsys):
    """A classifier whose pooler was left out, or whose file holds 2 of the 4 layers its config says, loaded with
    random weights in their place, without a word (the library's report is silenced)."""
    no_pooler = drop_weights(make_tiny_bert(tmp_path / "no-pooler", layers=2), "pooler")
    with pytest.raises(DynaKDError, match=r"^'.*no-pooler' does not hold every weight its config describes: 2 missing "
                                          r"\(bert\.pooler\.dense\.bias, bert\.pooler\.dense\.weight\); they would be "
                                          r"random: use its complete checkpoint"):
        load_task_model(str(no_pooler), SST2, new_head_ok=False)
    cut = drop_weights(make_tiny_bert(tmp_path / "cut", layers=4), "layer.2.", "layer.3.")
    with pytest.raises(DynaKDError, match=r"32 missing \(bert\.encoder\.layer\.2\.attention\.output\.LayerNorm\.bias, "
                                          r".* and 29 more\)"):
        load_task_model(str(cut), SST2, new_head_ok=False)
    # a config that says wider feed-forward layers than the file holds: the library re-initialises them
    wide = make_tiny_bert(tmp_path / "wide", layers=1)
    config = json.loads((wide / "config.json").read_text())
    (wide / "config.json").write_text(json.dumps({**config, "intermediate_size": 128}))
    with pytest.raises(DynaKDError, match=r"describes: 3 of another shape \(bert\.encoder\.layer\.0\.intermediate\."
                                          r"dense\.bias, bert\.encoder\.layer\.0\.intermediate\.dense\.weight, "
                                          r"bert\.encoder\.layer\.0\.output\.dense\.weight\); they would be random"):
        load_task_model(str(wide), SST2, new_head_ok=False)
    with pytest.raises(DynaKDError, match="describes: 3 of another shape"):  # a student too: its config is not its own
        load_task_model(str(wide), SST2)
    # a complete classifier loads without a word
    load_task_model(str(make_tiny_bert(tmp_path / "whole", layers=2)), SST2, new_head_ok=False)
    assert capsys.readouterr().out == ""


def test_a_model_to_train_may_lack_its_head_and_is_told_of_a_missing_body(tmp_path, capsys):
    """A base encoder's new head (fine-tuning, a --student) is expected: one note for it (a reviewer missed the
    "newly initialized" transformers says, which DynaKD silences), nothing for a BERT saved without its pooler (read
    by the classification head alone); a student whose body lacks weights trains them from random, with a note; a
    classifier of another label count given a new head by finetune has a note of its own."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    base = tmp_path / "base"
    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32), add_pooling_layer=False).save_pretrained(base)
    for task in (SST2, SQUAD):
        load_task_model(str(base), task)
    assert capsys.readouterr().out == (
        f"note: {base} has no classification head: it trains a new 2-label head for sst2, initialised at random\n"
        f"note: {base} has no question-answering head: it trains a new start/end head, initialised at random\n")
    three = make_tiny_bert(tmp_path / "three", layers=1, num_labels=3)
    load_task_model(str(three), SST2, replace_head=True)
    assert "note: " + str(three) + "'s head predicts 3 labels" in capsys.readouterr().out  # (the note it had before)
    student = drop_weights(make_tiny_bert(tmp_path / "student", layers=2), "layer.1.", "classifier")
    load_task_model(str(student), SST2)
    out = capsys.readouterr().out
    assert out == (f"note: {student} lacks 16 of its weights (bert.encoder.layer.1.attention.output.LayerNorm.bias, "
                   "bert.encoder.layer.1.attention.output.LayerNorm.weight, bert.encoder.layer.1.attention.output."
                   "dense.bias and 13 more): they start random and train with the rest\n")  # (its head: not named)


def test_a_tokenizer_without_a_padding_token_pads_with_its_end_of_sequence_token(tmp_path, capsys):
    """GPT-2's tokenizer has no padding token ("Asking to pad but the tokenizer does not have a padding token"), and
    its classifier's config none ("Cannot handle batch sizes > 1 if no padding token is defined"): both were
    tracebacks. The end-of-sequence token pads, the config takes its id; with neither, a clear error."""
    from transformers import AutoTokenizer

    from dynakd.models import ready_to_pad

    model = load_task_model(str(make_tiny_gpt2(tmp_path / "m")), SST2)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "m")
    ready_to_pad(model, tokenizer, "m")
    eos = tokenizer.convert_tokens_to_ids("</s>")
    assert tokenizer.pad_token == "</s>" and model.config.pad_token_id == eos
    assert capsys.readouterr().out == (
        "note: m: its tokenizer has no padding token: it pads with </s> (its end-of-sequence token); its config names "
        f"no padding token: it takes the tokenizer's (</s>, id {eos})\n")
    batch = tokenizer(["good film", "a bad and boring film"], padding=True, return_tensors="pt")
    assert model.eval()(**batch).logits.shape == (2, 2)
    # a tokenizer with a padding token gives the config its id, silently for a student copied from its teacher
    model = load_task_model(str(make_tiny_gpt2(tmp_path / "p", pad="<pad>")), SST2)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "p")
    ready_to_pad(model, tokenizer, "p", say=False)
    assert model.config.pad_token_id == tokenizer.pad_token_id and capsys.readouterr().out == ""
    # neither model nor tokenizer names one
    model = load_task_model(str(make_tiny_gpt2(tmp_path / "n", eos=None)), SST2)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "n")
    with pytest.raises(DynaKDError, match=r"^'n' has no padding token, in its tokenizer or its config, nor an "
                                          r"end-of-sequence token to pad with: give its tokenizer one"):
        ready_to_pad(model, tokenizer, "n")


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "camembert", "mpnet", "bert"])
def test_the_sequence_limit_leaves_out_the_positions_an_offset_table_skips(family):
    """RoBERTa and its kin number positions from pad_token_id + 1: a 66-row table holds 64 tokens (pad id 1), and 66
    passed the check to fail in the first step ("index 66 is out of bounds"). BERT's table holds all 66."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.for_model(family, vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=66, pad_token_id=1)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    limit = 66 if family == "bert" else 64
    unlimited = type("Tokenizer", (), {"model_max_length": int(1e30)})()
    check_seq_length(limit, unlimited, model)
    with pytest.raises(DynaKDError, match=f"max_seq_length {limit + 1} exceeds the model's limit of {limit} tokens"):
        check_seq_length(limit + 1, unlimited, model)
    ids = torch.full((1, limit), 5)
    model(input_ids=ids, attention_mask=torch.ones_like(ids))  # the longest input the check allows runs


def test_the_size_on_disk_counts_the_weight_files_alone(tmp_path):
    """A run folder's training_args.bin (and a checkpoint's optimizer, a tokenizer's files) are no part of the
    model's size."""
    from dynakd.rundir import describe_model

    folder = make_tiny_bert(tmp_path / "m", layers=1)
    model = load_task_model(str(folder), SST2)
    weights = (folder / "model.safetensors").stat().st_size
    (folder / "training_args.bin").write_bytes(b"0" * 2**21)
    assert describe_model(model, folder)["size_mb"] == round(weights / 2**20, 1)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")  # the older format is counted
    assert describe_model(model, folder)["size_mb"] == round(weights / 2**20, 1)


def test_a_hub_model_offline_is_refused_with_the_models_at_hand(tmp_path, monkeypatch):
    """The README's first examples name hub models: offline, the message says what can be given instead."""
    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DynaKDError, match=r"^cannot load a model from 'no-such-model-here': there is no such folder "
                                          r"in .*, and the hub, where it would name a model, cannot be reached from "
                                          r"here: give a model folder, or minilm, "):
        load_task_model("no-such-model-here", get_task("sst2"))



def test_offline_a_failure_other_than_not_found_keeps_its_reason(tmp_path, monkeypatch):
    """Offline, every failure to load a name that is no folder here was said as 'no such folder', a model of an
    architecture transformers does not know in the local hub cache too."""
    from huggingface_hub import constants

    import dynakd.models as models

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def unknown(*args, **kwargs):
        raise ValueError("The checkpoint you are trying to load has model type `newarch`, which is not recognised")

    monkeypatch.setattr(models.AutoConfig, "from_pretrained", unknown)
    with pytest.raises(DynaKDError, match=r"^cannot load a model from 'org/cached': The checkpoint you are trying to "
                                          r"load has model type `newarch`"):
        models.model_config("org/cached")
