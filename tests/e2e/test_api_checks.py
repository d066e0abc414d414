"""The Python API in a user's own transformers flow: Trainer features keep working under ``DistillationTrainer``, and
what cannot work is said in one line instead of training on something else."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from safetensors.torch import load_file
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    TrainingArguments,
)

from dynakd import (
    AlignConfig,
    DistillationCollator,
    DistillationTrainer,
    DistillConfig,
    Distiller,
    DynaKDError,
    build_config,
    build_student,
    capture,
    split_inputs,
)


def _rows(tokenizer, n=32, pairs=False, keep_text=False):
    texts = [f"film {i} was {'good' if i % 2 else 'dull'}" for i in range(n)]
    data = Dataset.from_dict({"sentence": texts, "label": [i % 2 for i in range(n)]})
    encode = (lambda b: tokenizer(b["sentence"], b["sentence"])) if pairs else (lambda b: tokenizer(b["sentence"]))
    return data.map(encode, batched=True, remove_columns=[] if keep_text else ["sentence"])


def _args(out, **kw):
    return TrainingArguments(output_dir=str(out), per_device_train_batch_size=8, report_to=[], use_cpu=True,
                             disable_tqdm=True, **kw)


def _distiller(cfg=None, **kw):
    return Distiller(build_config(cfg or {"method": "kd"}), student_layers=2, teacher_layers=4, student_width=32,
                     teacher_width=32, **kw)


def test_load_best_model_at_end_and_save_total_limit(tiny_teacher, tmp_path):
    """The Trainer looked for the best checkpoint in the staging folder a checkpoint is written into: it recorded a
    path deleted once the checkpoint was in place, so the best model was never loaded and rotation deleted it."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    scores = iter([0.9, 0.1, 0.2])  # the best at step 2
    args = _args(tmp_path, max_steps=6, eval_strategy="steps", eval_steps=2, save_steps=2, learning_rate=1e-2,
                 load_best_model_at_end=True, metric_for_best_model="score", save_total_limit=2)
    rows = _rows(tokenizer)
    trainer = DistillationTrainer(model=build_student(teacher, 2), teacher=teacher, distiller=_distiller(), args=args,
                                  train_dataset=rows, eval_dataset=rows,
                                  data_collator=DataCollatorWithPadding(tokenizer),
                                  compute_metrics=lambda p: {"score": next(scores)})
    trainer.train()
    best = tmp_path / "checkpoint-2"
    assert trainer.state.best_model_checkpoint == str(best)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-6"]  # best kept
    saved = load_file(best / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in trainer.model.state_dict().items() if k in saved)
    recorded = json.loads((tmp_path / "checkpoint-6" / "trainer_state.json").read_text())["best_model_checkpoint"]
    assert recorded == str(best)  # what a resumed run reads


def test_a_column_only_the_teacher_takes_reaches_it(tiny_teacher, tmp_path):
    """One tokenisation, a BERT teacher and a DistilBERT student: the Trainer kept only the student's columns, so the
    teacher read sentence pairs without their segment ids."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    student = DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=tokenizer.vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=128))
    seen = {}
    for who, model in (("teacher", teacher), ("student", student)):
        # every forward's inputs (the first is capture's probe of the model, two tokens without segment ids)
        model.register_forward_pre_hook(lambda m, a, kw, who=who: seen.setdefault(who, set()).update(kw),
                                        with_kwargs=True)
    trainer = DistillationTrainer(model=student, teacher=teacher, distiller=_distiller({"method": "full"}),
                                  args=_args(tmp_path, max_steps=1, save_strategy="no"),
                                  train_dataset=_rows(tokenizer, 8, pairs=True),
                                  data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    assert "token_type_ids" in seen["teacher"] and "token_type_ids" not in seen["student"]


def test_label_smoothing_reaches_the_task_term_and_compute_loss_func_is_refused(tiny_teacher, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    student = build_student(teacher, 2)
    common = dict(model=student, teacher=teacher, train_dataset=_rows(tokenizer, 8),
                  data_collator=DataCollatorWithPadding(tokenizer))
    trainer = DistillationTrainer(distiller=_distiller({"method": "task"}), **common,
                                  args=_args(tmp_path, max_steps=1, label_smoothing_factor=0.5))
    batch = next(iter(trainer.get_train_dataloader()))
    student.train()
    torch.manual_seed(0)  # the same dropout for both
    loss = trainer.compute_loss(student, batch)
    torch.manual_seed(0)
    logits = student(**{k: v for k, v in batch.items() if k != "labels"}).logits
    assert torch.allclose(loss, F.cross_entropy(logits, batch["labels"], label_smoothing=0.5), atol=1e-6)
    with pytest.raises(DynaKDError, match="compute_loss_func would go unused"):
        DistillationTrainer(distiller=_distiller(), args=_args(tmp_path), compute_loss_func=lambda *a, **k: 0,
                            **common)
    with pytest.raises(DynaKDError, match="label smoothing applies to classification labels, not to regression"):
        _distiller({"method": "kd", "task": "stsb"}, regression=True, label_smoothing=0.1)


def test_the_distiller_says_what_does_not_fit(tiny_teacher):
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    three = AutoModelForSequenceClassification.from_pretrained(tiny_teacher, num_labels=3,
                                                               ignore_mismatched_sizes=True).eval()
    student = build_student(teacher, 2)
    batch = dict(AutoTokenizer.from_pretrained(tiny_teacher)(["a good film", "a dull one"], padding=True,
                                                             return_tensors="pt"))
    s, t, labels = capture(student, batch), capture(teacher, batch), torch.tensor([1, 0])
    with pytest.raises(DynaKDError, match="the teacher predicts 3 label"):
        _distiller()(s, capture(three, batch), labels, progress=0.0)
    with pytest.raises(DynaKDError, match="built with regression=True: a regression head has one output"):
        _distiller({"method": "kd", "task": "stsb"}, regression=True)(s, t, labels, progress=0.0)
    with pytest.raises(DynaKDError, match="the batch has no labels"):
        _distiller()(s, t, None, progress=0.0)
    with pytest.raises(DynaKDError, match="'sensitivity' component needs both models' features of a perturbed"):
        _distiller({"method": "full", "dynamics": {"components": ["deviation", "sensitivity"]}})(s, t, labels, 0.0)
    mask = batch["attention_mask"].clone()
    mask[0, -1] = 0
    other = dict(batch, attention_mask=mask)  # the teacher read other tokens
    with pytest.raises(DynaKDError, match="method 'static' compares hidden states token by token, but the teacher's "
                                          "batch holds other tokens"):
        _distiller({"method": "static"})(s, capture(teacher, other), labels, progress=0.0)
    with pytest.raises(DynaKDError, match="did you mean 'full'"):  # a config built without build_config is checked
        Distiller(DistillConfig(method="ful"), student_layers=2, teacher_layers=4, student_width=32, teacher_width=32)
    with pytest.raises(DynaKDError, match="align.eps must be >= 0.0001"):
        Distiller(DistillConfig(method="full", align=AlignConfig(eps=0.0)), student_layers=2, teacher_layers=4,
                  student_width=32, teacher_width=32)
    with pytest.raises(DynaKDError, match="a student of one layer has nothing to compare it with"):
        Distiller(build_config({"method": "full", "align": {"name": "attention", "relative": True}}), student_layers=1,
                  teacher_layers=4, student_width=32, teacher_width=32)
    with pytest.raises(DynaKDError, match="the config's task squad is extractive QA: pass qa=True"):
        Distiller(build_config({"task": "squad"}), student_layers=2, teacher_layers=4, student_width=32,
                  teacher_width=32)
    with pytest.raises(DynaKDError, match=r"Distiller\(qa=True\) needs a config of an extractive QA task"):
        _distiller(qa=True)
    # from the Python walkthrough of 2026-12-06: an IndexError from the cross-entropy, schedules read at their end or
    # start, and failures inside torch
    for bad in ([2, 1], [-3, 0]):
        with pytest.raises(DynaKDError, match=f"^the batch holds label {bad[0]}, but the models predict 2 classes "
                                              r"\(0 to 1; -100 for a row without one\)"):
            _distiller()(s, t, torch.tensor(bad), progress=0.0)
    assert _distiller()(s, t, torch.tensor([-100, 1]), progress=0.0).loss.isfinite()  # a row without a label
    for progress in (1.5, -0.1, float("nan"), 100):
        with pytest.raises(DynaKDError, match=r"^progress is the fraction of training done, in \[0, 1\], got "):
            _distiller()(s, t, labels, progress=progress)
    for key, value in (("student_layers", 0), ("teacher_width", -1), ("teacher_layers", 2.5), ("student_width", True)):
        with pytest.raises(DynaKDError, match=f"^{key} must be a whole number >= 1, got {value!r}$"):
            Distiller(build_config({"method": "kd"}), **{"student_layers": 2, "teacher_layers": 4, "student_width": 32,
                                                         "teacher_width": 32, key: value})
    with pytest.raises(DynaKDError, match="capture needs the batch's attention_mask"):
        capture(student, {"input_ids": batch["input_ids"]})
    with pytest.raises(DynaKDError, match="split_inputs"):
        capture(student, dict(batch, teacher_input_ids=batch["input_ids"]))


def _features(tiny_teacher, **kw):
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    student = build_student(teacher, 2)
    batch = dict(AutoTokenizer.from_pretrained(tiny_teacher)(["a good film", "a dull one"], padding=True,
                                                             return_tensors="pt"))
    return capture(student, batch, **kw), capture(teacher, batch, **kw), torch.tensor([1, 0])


def test_a_method_with_teacher_terms_needs_the_teachers_features(tiny_teacher):
    """teacher=None trained kd (or full, ...) on the task term alone, without a word."""
    s, _, labels = _features(tiny_teacher)
    with pytest.raises(DynaKDError, match="method 'kd' compares the student with the teacher: pass the teacher's "
                                          "features"):
        _distiller()(s, None, labels, progress=0.0)
    assert set(_distiller({"method": "task"})(s, None, labels, progress=0.0).terms) == {"task"}


def test_features_without_hidden_states_after_the_first_batch_are_named(tiny_teacher):
    """Only the first batch was checked: a later one without hidden states failed in torch.stack."""
    full = _distiller({"method": "full"})
    full(*_features(tiny_teacher), progress=0.0)
    with pytest.raises(DynaKDError, match="the student's features hold no hidden states"):
        full(*_features(tiny_teacher, hidden=False), progress=0.1)


def test_regression_follows_the_configs_task(tiny_teacher):
    """regression= was taken whatever the config's task (qa= was checked), and a classification distiller truncated
    labels that are not whole numbers."""
    with pytest.raises(DynaKDError, match=r"Distiller\(regression=True\) needs a config of a regression task"):
        _distiller(regression=True)
    with pytest.raises(DynaKDError, match="the config's task stsb is regression: pass regression=True"):
        _distiller({"method": "kd", "task": "stsb"})
    assert _distiller({"method": "kd", "task": "csv"}, regression=True).regression  # a file's labels decide
    s, t, _ = _features(tiny_teacher)
    with pytest.raises(DynaKDError, match="the batch holds label 0.5, not a class, and this Distiller was built with "
                                          "regression=False"):
        _distiller()(s, t, torch.tensor([1.0, 0.5]), progress=0.0)


def test_two_tokenizers_in_your_own_trainer(tiny_teacher, tmp_path):
    """The README's recipe: the teacher's encoding under teacher_* keys, DistillationCollator (which also takes a
    'label' column); a token-level method on such batches is refused instead of comparing other tokens."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    rows = _rows(tokenizer, 8)
    rows = rows.add_column("teacher_input_ids", rows["input_ids"])
    rows = rows.add_column("teacher_attention_mask", rows["attention_mask"])
    batch = DistillationCollator(tokenizer, tokenizer)([dict(r) for r in rows.select(range(4))])
    student_inputs, teacher_inputs, labels = split_inputs(batch)
    assert labels.tolist() == [0, 1, 0, 1] and set(teacher_inputs) == {"input_ids", "attention_mask"}

    def trainer(method, same_tokenizer):
        return DistillationTrainer(model=build_student(teacher, 2), teacher=teacher,
                                   distiller=_distiller({"method": method}, same_tokenizer=same_tokenizer),
                                   args=_args(tmp_path / method, max_steps=1, save_strategy="no"), train_dataset=rows,
                                   data_collator=DistillationCollator(tokenizer, tokenizer))

    trainer("full", same_tokenizer=False).train()
    with pytest.raises(DynaKDError, match="but the batch gives the teacher a tokenisation of its own"):
        trainer("static", same_tokenizer=True).train()


def test_one_encoding_for_two_vocabularies_is_named(tiny_teacher, tmp_path, capsys):
    """Both models reading one encoding: ids past the teacher's vocabulary failed inside its embedding (an IndexError
    traceback); vocabularies of other sizes, which one tokenizer seldom gives, trained without a word."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    size = teacher.get_input_embeddings().num_embeddings
    student = build_student(teacher, 2)
    student.resize_token_embeddings(size + 16)

    def train(rows, out):
        DistillationTrainer(model=student, teacher=teacher, distiller=_distiller({"method": "full"}),
                            train_dataset=rows, args=_args(tmp_path / out, max_steps=1, save_strategy="no"),
                            data_collator=DataCollatorWithPadding(tokenizer)).train()

    train(_rows(tokenizer, 8), "fits")
    assert f"note: the teacher's vocabulary holds {size} tokens and the student's {size + 16}, and both read " \
           "the batch's one encoding: if they tokenize differently, give the teacher an encoding of its own" \
           in capsys.readouterr().out
    rows = _rows(tokenizer, 8).map(lambda r: {"input_ids": [*r["input_ids"][:-1], size + 3, r["input_ids"][-1]],
                                              "attention_mask": [1, *r["attention_mask"]]})
    with pytest.raises(DynaKDError, match=f"^the batch's input ids reach {size + 3}, but the teacher's vocabulary "
                                          f"holds {size} \\(the student's {size + 16}\\): the models tokenize "
                                          "differently; give the teacher an encoding of its own: teacher_\\* columns"):
        train(rows, "past")
    # another padding token, seldom one tokenizer's (an MPNet teacher's 1 beside a BERT student's 0 read every id 4
    # off, with a hedged note), but a multilingual MiniLM of XLM-R's tokenizer keeps a BERT config's 0: a note
    pad = teacher.config.pad_token_id
    student.config.pad_token_id = pad + 1
    train(_rows(tokenizer, 8), "pads")
    assert f"note: the teacher's vocabulary holds {size} tokens and the student's {size + 16}; its padding token is " \
           f"id {pad} and the student's {pad + 1}, and both read the batch's one encoding: if they tokenize " \
           "differently, give the teacher an encoding of its own" in capsys.readouterr().out


def test_the_teacher_cache_in_your_own_trainer(tiny_teacher, tmp_path, capsys):
    """A cache serves the pooling the distiller reads; a method it cannot serve is refused up front. A teacher pass
    shows a bar of rows when asked (the runner asks unless --no-progress), and none by default."""
    from dynakd.cache import TeacherCache, build_cache, live_dataset_mean

    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    rows = _rows(tokenizer, 8, keep_text=True)  # the texts still there: a teacher pass reads the encodings only
    collator = DataCollatorWithPadding(tokenizer)
    mean = live_dataset_mean(teacher, rows, collator, batch_size=3, device="cpu", pooling="mean", progress=True)
    assert mean.shape == (5, 32)
    err = capsys.readouterr().err
    assert "teacher mean: 100%" in err and "8/8" in err
    rows = rows.remove_columns(["sentence"]).add_column("example_id", list(range(8)))
    build_cache(tmp_path / "cache", teacher, rows, collator, batch_size=4, device="cpu", dtype="float32",
                fingerprints={})
    assert "teacher cache" not in capsys.readouterr().err
    cache = TeacherCache(tmp_path / "cache").use(("mean",))

    def trainer(cfg):
        return DistillationTrainer(model=build_student(teacher, 2), teacher=teacher, distiller=_distiller(cfg),
                                   args=_args(tmp_path / "run", max_steps=1, save_strategy="no"), train_dataset=rows,
                                   data_collator=collator, teacher_cache=cache)

    trainer({"method": "full", "dynamics": {"pooling": "cls"}}).train()  # the cache read 'cls' for it
    with pytest.raises(DynaKDError, match="the teacher cache cannot stand in for the teacher here: method 'static'"):
        trainer({"method": "static"})
    # rows the cache was not built for: other rows (an IndexError in the collator, or another row's outputs read)
    from dynakd.cache import data_fingerprint

    build_cache(tmp_path / "stamped", teacher, rows, collator, batch_size=4, device="cpu", dtype="float32",
                fingerprints={"data_fingerprint": data_fingerprint(rows, ["input_ids"])})
    others = _rows(tokenizer, 16).add_column("example_id", list(range(16)))

    def read_for(data, folder="stamped", cache=None, cfg=None):
        return DistillationTrainer(model=build_student(teacher, 2), teacher=teacher, distiller=_distiller(cfg),
                                   args=_args(tmp_path / "run", max_steps=1, save_strategy="no"), train_dataset=data,
                                   data_collator=collator, teacher_cache=cache or TeacherCache(tmp_path / folder))

    read_for(rows)
    read_for(rows.select([3, 1, 2, 0, 7, 6, 5, 4]))  # its rows in another order, each with its own id
    read_for(rows.select([5, 2]))  # some of them
    with pytest.raises(DynaKDError, match=r"train_dataset's example_id 15 names no row of teacher cache .*, which "
                                          r"holds 8: the cache was built from other rows"):
        read_for(others, "cache")
    with pytest.raises(DynaKDError, match=r"was made for other training data \([0-9a-f]+ != [0-9a-f]+\)"):
        read_for(rows.select(range(7, -1, -1)).remove_columns("example_id").add_column("example_id", list(range(8))))
    with pytest.raises(DynaKDError, match="teacher_cache reads each row's outputs by its 'example_id' column, which "
                                          "train_dataset lacks"):
        read_for(rows.remove_columns("example_id"))
    # a cache checked against some rows (prepare_teacher_cache vouches for them) skipped the check of any others
    stamped = TeacherCache(tmp_path / "stamped")
    stamped.vouch(rows)
    read_for(rows, cache=stamped)
    with pytest.raises(DynaKDError, match=r"was made for other training data \([0-9a-f]+ != [0-9a-f]+\)"):
        read_for(rows.select(range(7, -1, -1)).remove_columns("example_id").add_column("example_id", list(range(8))),
                 cache=stamped)
    # two trainers given one cache read each their own poolings (the last one's were read by both)
    pkd = read_for(rows, cache=stamped, cfg={"method": "pkd"})
    mean = read_for(rows, cache=stamped, cfg={"method": "dynamics"})
    assert pkd.data_collator.cache.poolings == ("cls",) and mean.data_collator.cache.poolings == ("mean",)


def test_what_each_model_takes_is_told_only_where_it_can_be(tiny_teacher):
    """A transformers model names its inputs (its **kwargs carry attention options); a wrapper of one's own whose
    **kwargs may pass inputs on is given everything, as before."""
    from dynakd.features import forward_columns

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    assert {"input_ids", "attention_mask", "token_type_ids"} <= forward_columns(teacher)

    class Wrapper(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None, **kwargs):
            return teacher(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    assert forward_columns(Wrapper()) == set()


@pytest.mark.parametrize("hidden_weight,token_sample", [(None, None), (1.0, None), (None, 3)])
def test_the_trainer_stacks_the_teachers_states_once_for_token_level_dynamics(tiny_teacher, tmp_path, hidden_weight,
                                                                             token_sample):
    """Token-level dynamics get the live teacher's states stacked once (``features.stack_hidden``), which the costs
    take and let go; not where ``hidden_weight`` reads the states after the costs. With ``token_sample`` the stack
    holds the sampled positions alone (the costs cut the student's states to the same: unit/test_token_sample.py)."""
    from dynakd.features import StackedHidden

    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    cfg = {"method": "full", "dynamics": {"pooling": "tokens", "token_sample": token_sample}}
    distiller = _distiller(cfg | ({"hidden_weight": hidden_weight} if hidden_weight else {}))
    seen, feature_terms = [], distiller.feature_terms

    def spy(s, t, perturbed):
        handed = t.hidden
        if token_sample:  # (rows of more tokens than the sample: the stack holds 3 of each)
            assert handed.stack.shape[2] == 3 < s.hidden[0].shape[1] and handed.tokens.shape == (s.mask.shape[0], 3)
        out = feature_terms(s, t, perturbed)
        seen.append((type(handed), t.hidden == ()))
        return out

    distiller.feature_terms = spy
    DistillationTrainer(model=build_student(teacher, 2), teacher=teacher, distiller=distiller,
                        args=_args(tmp_path, max_steps=2, save_strategy="no"), train_dataset=_rows(tokenizer),
                        data_collator=DataCollatorWithPadding(tokenizer)).train()
    assert seen == ([(tuple, False)] * 2 if hidden_weight else [(StackedHidden, True)] * 2)
