"""Students built from a teacher by keeping k of its layers (DistilBERT-style initialisation)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from dynakd.errors import DynaKDError
from dynakd.students import build_student, default_layer_ids


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    config = BertConfig(
        num_hidden_layers=4, hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_size=100
    )
    return BertForSequenceClassification(config).eval()


def layer_state(model, i):
    return model.bert.encoder.layer[i].state_dict()


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (2, 7), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize(
    "n,k,expected",
    [(12, 6, [0, 2, 4, 7, 9, 11]), (12, 4, [0, 4, 7, 11]), (4, 2, [0, 3]), (4, 4, [0, 1, 2, 3]), (12, 1, [11])],
)
def test_default_layer_ids(n, k, expected):
    assert default_layer_ids(n, k) == expected


@pytest.mark.parametrize("k,layer_ids", [(2, None), (3, None), (None, [1, 2]), (None, [3, 0]), (2, [0, 2])])
def test_keeps_the_chosen_layers(teacher, k, layer_ids):
    student = build_student(teacher, k=k, layer_ids=layer_ids)
    ids = layer_ids if layer_ids is not None else default_layer_ids(4, k)
    assert student.config.num_hidden_layers == len(ids) == len(student.bert.encoder.layer)
    assert student.config.dynakd_teacher_layers == ids
    for new, old in enumerate(ids):
        assert_same_state(layer_state(student, new), layer_state(teacher, old))
    assert_same_state(student.bert.embeddings.state_dict(), teacher.bert.embeddings.state_dict())
    assert_same_state(student.classifier.state_dict(), teacher.classifier.state_dict())
    assert teacher.config.num_hidden_layers == 4 and len(teacher.bert.encoder.layer) == 4
    assert student.bert.encoder.layer[0] is not teacher.bert.encoder.layer[ids[0]]  # a copy, not shared


def test_student_runs_and_matches_a_truncated_teacher(teacher):
    student = build_student(teacher, layer_ids=[0, 1]).eval()
    with torch.no_grad():
        s = student(**inputs(), output_hidden_states=True)
        t = teacher(**inputs(), output_hidden_states=True)
    assert len(s.hidden_states) == 3
    for a, b in zip(s.hidden_states, t.hidden_states[:3]):  # the first two blocks are the teacher's
        torch.testing.assert_close(a, b)


def test_save_and_reload_round_trip(teacher, tmp_path):
    student = build_student(teacher, k=2).eval()
    student.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == 2 and len(reloaded.bert.encoder.layer) == 2
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs()).logits, student(**inputs()).logits)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 5},
        {},
        {"layer_ids": [0, 4]},
        {"layer_ids": [-1, 2]},
        {"layer_ids": [1, 1]},
        {"k": 3, "layer_ids": [0, 1]},
        {"k": 0},  # a student of no layers trained (build_student skipped the config's check)
        {"k": -1},
        {"k": 1.5},  # a raw TypeError
        {"layer_ids": []},
        {"layer_ids": [0.0, 1]},
        {"layer_ids": [True, 2]},
    ],
)
def test_bad_requests_raise(teacher, kwargs):
    with pytest.raises(DynaKDError):
        build_student(teacher, **kwargs)


def test_numpy_integers_name_layers(teacher):
    import numpy as np

    assert build_student(teacher, np.int64(2)).config.dynakd_teacher_layers == [0, 3]
    assert build_student(teacher, layer_ids=[np.int64(0), np.int32(2)]).config.dynakd_teacher_layers == [0, 2]


def test_sequence_limit_from_the_model_or_the_tokenizer():
    """A model without a position table and a tokenizer without a limit (1e30) set no limit; else the smaller one."""
    from types import SimpleNamespace

    from dynakd.models import check_seq_length

    unlimited = SimpleNamespace(model_max_length=int(1e30))
    check_seq_length(4096, unlimited, SimpleNamespace(config=SimpleNamespace()))
    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=512))
    with pytest.raises(DynaKDError, match="limit of 256 tokens"):
        check_seq_length(300, SimpleNamespace(model_max_length=256), model)
    check_seq_length(512, unlimited, model)


def test_a_half_precision_checkpoint_loads_and_trains_in_float32(tmp_path):
    """transformers 5 keeps a checkpoint's saved dtype; a bfloat16 teacher gave a bfloat16 student whose updates
    rounded away (and a crash in the float32 projections of ``static``). Models load in float32."""
    from dynakd.data.tasks import get_task
    from dynakd.models import load_qa_model, load_task_model
    from tests.conftest import make_tiny_bert

    folder = make_tiny_bert(tmp_path / "t", layers=2)
    AutoModelForSequenceClassification.from_pretrained(folder).to(torch.bfloat16).save_pretrained(folder)
    assert AutoModelForSequenceClassification.from_pretrained(folder).dtype == torch.bfloat16  # the library default
    teacher = load_task_model(str(folder), get_task("sst2"))
    assert {p.dtype for p in teacher.parameters()} == {torch.float32}
    assert {p.dtype for p in build_student(teacher, 1).parameters()} == {torch.float32}
    assert {p.dtype for p in load_qa_model(str(folder)).parameters()} == {torch.float32}


def test_a_student_that_would_reload_as_another_model_is_refused(tmp_path):
    """ModernBERT builds its first layer without an attention norm: a student whose first layer is a copy of a later
    one trained with that norm, and reloaded from its folder without it (logits off by ~4, one load-report line)."""
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    config = ModernBertConfig(num_hidden_layers=4, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                              vocab_size=100, pad_token_id=0, global_attn_every_n_layers=2)
    teacher = ModernBertForSequenceClassification(config).eval()
    with pytest.raises(DynaKDError, match=r"a ModernBertForSequenceClassification student of teacher layers \[1, 3\] "
                                          r"would reload as another model \(.*layers\.0\.attn_norm.* differs"):
        build_student(teacher, layer_ids=[1, 3])
    student = build_student(teacher, layer_ids=[0, 3]).eval()  # the first layer first: reloads as trained
    student.save_pretrained(tmp_path)
    again = ModernBertForSequenceClassification.from_pretrained(tmp_path).eval()
    x = inputs()
    torch.testing.assert_close(again(**x).logits, student(**x).logits)


def test_per_layer_config_lists_shrink_with_the_layers(tmp_path):
    """Longformer checks len(config.attention_window) == num_hidden_layers when it loads: a student kept the
    teacher's list and trained, then its folder would not load."""
    from transformers import LongformerConfig, LongformerForSequenceClassification

    config = LongformerConfig(num_hidden_layers=4, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                              vocab_size=100, attention_window=[4, 4, 8, 8], max_position_embeddings=64)
    student = build_student(LongformerForSequenceClassification(config).eval(), layer_ids=[0, 3])
    assert student.config.attention_window == [4, 8]
    student.save_pretrained(tmp_path)
    LongformerForSequenceClassification.from_pretrained(tmp_path)


def smollm3(no_rope_layers: list[int]):
    from transformers import SmolLM3Config, SmolLM3ForSequenceClassification

    torch.manual_seed(0)
    config = SmolLM3Config(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                           num_key_value_heads=1, intermediate_size=64, pad_token_id=0, no_rope_layers=no_rope_layers)
    return SmolLM3ForSequenceClassification(config).eval()


def test_a_per_layer_flag_that_changes_no_weight_shrinks_with_the_layers(tmp_path):
    """SmolLM3 reads no_rope_layers by layer index: a student of layers [0, 3] kept the teacher's [1, 1, 1, 0], so its
    second layer trained without rotary embeddings and reloaded with them (same weights, other logits)."""
    student = build_student(smollm3([1, 1, 1, 0]), layer_ids=[0, 3]).eval()
    assert student.config.no_rope_layers == [1, 0]
    student.save_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert [layer.self_attn.use_rope for layer in again.model.layers] == [1, 0]
    x = {"input_ids": inputs()["input_ids"][:1]}  # (one row: the model finds its last token by the pad id)
    with torch.no_grad():
        torch.testing.assert_close(again(**x).logits, student(**x).logits)


def test_a_per_layer_setting_the_config_would_lose_is_refused_by_name():
    """A per-layer entry DynaKD does not know to shrink changes no weight: comparing names and shapes let the student
    through, to reload other than it trained."""
    from dynakd.students import check_reloads

    student = build_student(smollm3([1, 1, 1, 0]), layer_ids=[0, 3])
    student.config.no_rope_layers = [1, 1]  # as an unknown per-layer entry is left: the first layers' values
    with pytest.raises(DynaKDError, match=r"^a SmolLM3ForSequenceClassification student of teacher layers \[0, 3\] "
                                          r"would reload as another model \(model\.layers\.1\.self_attn\.use_rope "
                                          r"is 0 here, 1 reloaded: a per-layer setting"):
        check_reloads(student, [0, 3])


@pytest.mark.parametrize("layer_ids", [[0, 3], [1, 2], [3, 0, 1]])
def test_a_gpt_neo_student_keeps_its_layers_kinds_and_reloads(tmp_path, layer_ids):
    """GPT-Neo spells its layers' kinds in runs (attention_types), counted for the teacher's depth: a student's
    config failed to load with the teacher's runs, and was refused. The runs now name the kept layers' kinds, which
    build the same attention (a local layer's window) when the folder loads: same logits."""
    from transformers import GPTNeoConfig, GPTNeoForSequenceClassification

    torch.manual_seed(0)
    config = GPTNeoConfig(vocab_size=100, hidden_size=32, num_layers=4, num_heads=2, window_size=3,
                          attention_types=[[["global", "local"], 2]], bos_token_id=0, eos_token_id=0, pad_token_id=0)
    student = build_student(GPTNeoForSequenceClassification(config).eval(), layer_ids=layer_ids).eval()
    kinds = [["global", "local"][i % 2] for i in layer_ids]
    assert student.config.attention_layers == kinds
    student.save_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert [block.attn.attention_type for block in again.transformer.h] == kinds
    x = {"input_ids": torch.randint(1, 100, (1, 9), generator=torch.Generator().manual_seed(1))}
    with torch.no_grad():
        torch.testing.assert_close(again(**x).logits, student(**x).logits)


def test_a_student_whose_config_would_not_load_is_refused_with_the_reason(monkeypatch):
    """A per-layer list the config checks when it loads, and DynaKD did not shrink (here Qwen2's layer_types, taken
    off the known lists): refused with the config's own reason, not saved to fail later."""
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    from dynakd import students

    monkeypatch.setattr(students, "PER_LAYER_CONFIG", tuple(k for k in students.PER_LAYER_CONFIG if k != "layer_types"))
    config = Qwen2Config(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=64, layer_types=["full_attention"] * 4)
    with pytest.raises(DynaKDError, match=r"^a Qwen2ForSequenceClassification student of teacher layers \[0, 3\] "
                                          r"would reload as another model: its config would not load \(.*"
                                          r"layer_types"):
        build_student(Qwen2ForSequenceClassification(config).eval(), layer_ids=[0, 3])


def test_only_the_named_per_layer_lists_shrink():
    """A list as long as the teacher is deep is not per layer for that: DeBERTa's pos_att_type names the relative
    attention's two parts, and a 2-layer teacher's student would have lost one."""
    from transformers import DebertaConfig, DebertaForSequenceClassification

    config = DebertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, relative_attention=True, pos_att_type=["c2p", "p2c"])
    student = build_student(DebertaForSequenceClassification(config).eval(), layer_ids=[1])
    assert student.config.pos_att_type == ["c2p", "p2c"]


def test_layers_kept_in_parallel_lists_are_refused_not_half_cut():
    """XLM keeps attentions, layer norms and feed-forwards in four lists: only one was cut, and the student's first
    forward failed with an IndexError."""
    from transformers import XLMConfig, XLMForSequenceClassification

    teacher = XLMForSequenceClassification(XLMConfig(n_layers=4, emb_dim=32, n_heads=2, vocab_size=100))
    with pytest.raises(DynaKDError, match="XLMForSequenceClassification keeps each layer's parts in 4 parallel lists"):
        build_student(teacher, 2)


def test_a_half_precision_teacher_gives_a_float32_student(teacher):
    import copy

    student = build_student(copy.deepcopy(teacher).to(torch.bfloat16), 2)  # (a copy: the fixture stays float32)
    assert all(p.dtype == torch.float32 for p in student.parameters())


def albert(groups: int):
    from transformers import AlbertConfig, AlbertForSequenceClassification

    torch.manual_seed(0)
    config = AlbertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                          intermediate_size=64, embedding_size=16, num_hidden_groups=groups)
    return AlbertForSequenceClassification(config).eval()


@pytest.mark.parametrize("layer_ids", [[0, 1], [0, 3], [2, 3]])
def test_an_albert_with_a_group_of_weights_per_layer_gives_a_student_that_reloads(tmp_path, layer_ids):
    """ALBERT with num_hidden_groups == num_hidden_layers keeps one group of weights per layer: the student's config
    kept the teacher's group count, which asked for 4 groups of its 2 layers (refused, with the advice to keep the
    first layer first, or a student that indexed groups it lacked)."""
    teacher = albert(groups=4)
    student = build_student(teacher, layer_ids=layer_ids).eval()
    assert student.config.num_hidden_layers == student.config.num_hidden_groups == 2
    student.save_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert again.config.num_hidden_groups == 2
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs()).logits, student(**inputs()).logits)


@pytest.mark.parametrize("groups, sets", [(1, "one set"), (2, "2 sets")])
def test_an_albert_whose_layers_share_weights_is_refused_with_the_ways_round(groups, sets):
    """ALBERT's layers share one group of weights by default: there is no layer to keep apart ("cannot find the 4
    transformer layers" said nothing of why, nor of --student)."""
    with pytest.raises(DynaKDError, match=rf"^AlbertForSequenceClassification shares {sets} of weights among its 4 "
                                          rf"layers \(num_hidden_groups {groups}\), so no layer can be kept alone: .*"
                                          r"smaller num_hidden_layers .* --student, or give another smaller model "
                                          r"with --student$"):
        build_student(albert(groups), 2)


def test_a_funnel_whose_config_refuses_a_new_depth_is_refused_in_one_line():
    """Funnel's depth is the sum of its block_sizes: its config raised NotImplementedError (a traceback) when the
    student's depth was set."""
    from transformers import FunnelConfig, FunnelForSequenceClassification

    config = FunnelConfig(vocab_size=100, block_sizes=[1, 1, 1], d_model=32, n_head=2, d_head=16, d_inner=64)
    with pytest.raises(DynaKDError, match=r"^FunnelForSequenceClassification takes its depth from other settings of "
                                          r"its config \(FunnelConfig cannot set num_hidden_layers\).* --student$"):
        build_student(FunnelForSequenceClassification(config), 2)


def test_a_student_that_would_reload_otherwise_is_named_with_its_article():
    """The message read "a AlbertForSequenceClassification student"."""
    from dynakd.students import check_reloads

    student = build_student(albert(groups=4), layer_ids=[0, 3])
    student.config.num_hidden_groups = 4  # as the student's config said before it counted its own layers
    with pytest.raises(DynaKDError, match=r"^an AlbertForSequenceClassification student of teacher layers \[0, 3\]"):
        check_reloads(student, [0, 3])


def test_a_dropout_rate_changed_after_loading_is_no_setting_to_refuse():
    """The reload check compared dropout rates too: a teacher whose config was told `hidden_dropout_prob = 0` after it
    was built (a common way to train a student without dropout) gave students refused as 'a per-layer setting'."""
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(BertConfig(num_hidden_layers=4, hidden_size=32, num_attention_heads=2,
                                                       intermediate_size=64, vocab_size=100))
    teacher.config.hidden_dropout_prob = teacher.config.attention_probs_dropout_prob = 0.0
    student = build_student(teacher, 2)
    assert student.config.num_hidden_layers == 2


def test_a_student_that_keeps_every_teacher_layer_is_said_to_be_as_large(capsys):
    """README's example keeps 6 layers of a 12-layer BERT; given the 6-layer MiniLM it built a student as large as
    the teacher without a word."""
    from dynakd.students import resolve_layer_ids

    assert resolve_layer_ids(6, 6, say=True) == [0, 1, 2, 3, 4, 5]
    assert capsys.readouterr().out == ("note: --student-layers keeps all 6 of the teacher's layers: the student is as "
                                       "large as the teacher; fewer layers make a smaller one\n")
    assert resolve_layer_ids(2, None, [1, 0], say=True) == [1, 0]
    assert "note: --student-layer-ids keeps all 2 of the teacher's layers" in capsys.readouterr().out
    resolve_layer_ids(6, 3, say=True)
    resolve_layer_ids(6, 6)  # (a check, not the build: says nothing)
    assert capsys.readouterr().out == ""
