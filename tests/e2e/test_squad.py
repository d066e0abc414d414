"""Extractive QA end to end on the tiny SQuAD fixture: finetune -> distill (kd, full) -> evaluate through the CLI,
``dynakd ablate`` with ``--task squad``, and the errors a user can hit."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding, TrainingArguments
from transformers.modeling_outputs import QuestionAnsweringModelOutput

from dynakd.cli import main
from dynakd.config import build_config
from dynakd.data.squad import answer_tokens, encode_squad, load_squad
from dynakd.evaluation import EvalTrainer
from dynakd.metrics import squad_metrics
from tests.squad_fixture import make_tiny_qa_bert, write_squad

FAST = ["--task", "squad", "--max-seq-length", "48", "--doc-stride", "16", "--max-steps", "3", "--batch-size", "8",
        "--no-progress", "--logging-steps", "1"]


@pytest.fixture(scope="module")
def squad_file(tmp_path_factory) -> Path:
    return write_squad(tmp_path_factory.mktemp("squad") / "tiny.json")


@pytest.fixture(scope="module")
def qa_encoder(tmp_path_factory) -> Path:
    return make_tiny_qa_bert(tmp_path_factory.mktemp("qa") / "encoder", layers=4, hidden=32, qa=False)


def test_squad_ablate_finetune_distill_evaluate(qa_encoder, squad_file, tmp_path, capsys):
    """``dynakd ablate`` fine-tunes a QA teacher from a bare encoder (new head), distils kd and full students
    (token-level dynamics on the context tokens) on a by-article split, reports F1; then ``dynakd evaluate``."""
    start = time.perf_counter()
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "tiny-squad",
        "output": str(tmp_path / "out"),
        "base": {"task": "squad", "train_file": str(squad_file), "train_articles": 3, "max_seq_length": 48,
                 "doc_stride": 16, "max_steps": 2, "batch_size": 8, "max_answer_length": 5, "n_best": 5,
                 "dynamics": {"qa_tokens": "context"}},
        "teacher": {"model": str(qa_encoder)},
        "grid": {"method": ["kd", "full"], "student_layers": [2], "seed": [1]},
    }))
    assert main(["ablate", "--config", str(sweep)]) == 0
    out = tmp_path / "out"
    teacher = next(out.glob("teacher-seed*"))
    assert AutoModelForQuestionAnswering.from_pretrained(teacher).config.architectures == ["BertForQuestionAnswering"]
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert {r["method"] for r in records} == {"kd", "full"}
    for r in records:
        assert set(r["eval"]) >= {"exact_match", "f1"} and 0 <= r["eval"]["f1"] <= 1
        assert 0 <= r["teacher_eval"]["f1"] <= 1
    full = next(Path(r["output"]) for r in records if r["method"] == "full")
    resolved = yaml.safe_load((full / "dynakd.yaml").read_text())
    assert resolved["dynamics"]["qa_tokens"] == "context"
    assert resolved["dynamics"]["pooling"] == "auto" and build_config(resolved).dynamics.pooling == "tokens"  # QA's
    assert "Dev f1" in (out / "report.md").read_text()
    # each question's answer, by id, as the official script reads them: they give the run's scores
    dev = load_squad(train_file=str(squad_file), train_articles=3)["validation"]
    gold = {row["id"]: row["answers"]["text"] for row in dev}
    answers = json.loads((full / "eval_predictions.json").read_text())
    assert set(answers) == set(gold) and all(isinstance(a, str) for a in answers.values())
    scored = json.loads((full / "metrics.json").read_text())["eval"]
    assert {k: scored[k] for k in ("exact_match", "f1")} == pytest.approx(squad_metrics(answers, gold))
    # the model card's code answers as the run's scoring did: over every window (it read the first window alone)
    card = (full / "README.md").read_text()
    assert "| window overlap (doc stride) | 16 |" in card
    code = card.split("```python\n")[1].split("```")[0]
    code = re.sub(r'"path/to/[^"]*"', repr(str(full)), code)
    space: dict = {}
    exec(code, space)  # noqa: S102 - the card's own snippet, as a reader runs it
    assert {row["id"]: space["answer"](row["question"], row["context"]) for row in dev} == answers
    capsys.readouterr()
    assert main(["evaluate", "--model", str(full), "--task", "squad", "--train-file", str(squad_file),
                 "--train-articles", "3", "--no-progress"]) == 0
    assert "f1=" in capsys.readouterr().out
    assert json.loads((full / "evaluate_predictions.json").read_text()) == answers  # (beside the run's own)
    scored = json.loads((full / "metrics.json").read_text())["evaluate"]  # windows as the run was trained with
    assert (scored["max_seq_length"], scored["doc_stride"]) == (48, 16)
    assert (scored["n_best"], scored["max_answer_length"]) == (5, 5)  # how answers were read: the run's own
    assert main(["evaluate", "--model", str(full), "--task", "squad", "--train-file", str(squad_file),
                 "--train-articles", "3", "--no-progress", "--max-seq-length", "40"]) == 0
    scored = json.loads((full / "metrics.json").read_text())["evaluate"]  # another length: its default overlap
    assert (scored["max_seq_length"], scored["doc_stride"]) == (40, 20)
    assert (f"note: {full} was trained on windows of 48 tokens overlapping by 16; these windows of 40 overlap by "
            "their length's default (give --doc-stride 16 for the run's overlap)") in capsys.readouterr().out
    assert time.perf_counter() - start < 120  # about 10 s on an idle machine; generous for a busy one


def test_squad_errors(qa_encoder, squad_file, tiny_teacher, tmp_path, capsys):
    data = ["--train-file", str(squad_file), "--train-articles", "3"]
    # a teacher without a QA head
    assert main(["distill", "--teacher", str(tiny_teacher), "--student-layers", "1", "--output",
                 str(tmp_path / "a"), *data, *FAST]) == 2
    assert "no question-answering head" in capsys.readouterr().err
    teacher = make_tiny_qa_bert(tmp_path / "qa-teacher", layers=2, hidden=16)
    # a student with another tokenizer: start/end logits are per token, so QA needs one tokenizer
    assert main(["distill", "--teacher", str(teacher), "--student", str(tiny_teacher), "--method", "kd",
                 "--output", str(tmp_path / "b"), *data, *FAST]) == 2
    assert "share a tokenizer" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(teacher), "--student-layers", "1", "--output", str(tmp_path / "c"),
                 "--train-articles", "9", "--train-file", str(squad_file), *FAST]) == 2
    assert "--train-articles must be in 1..3" in capsys.readouterr().err
    assert main(["finetune", "--model", str(qa_encoder), "--output", str(tmp_path / "d"), "--task", "squad",
                 "--max-seq-length", "32", "--doc-stride", "32", *data]) == 2
    assert "doc_stride" in capsys.readouterr().err


def test_demo_runs_squad(qa_encoder, squad_file, tmp_path, monkeypatch, capsys):
    from dynakd import demo

    monkeypatch.setattr(demo, "teacher_base", lambda: str(qa_encoder))
    monkeypatch.setattr(demo, "SQUAD_DEFAULTS", {**demo.SQUAD_DEFAULTS, "max_seq_length": 48, "doc_stride": 16,
                                                 "batch_size": 8, "max_steps": 2})
    results = demo.run_demo(str(tmp_path / "demo"), task="squad", train_file=str(squad_file), progress=False)
    assert set(results) == {"teacher", "kd", "full"}
    out = capsys.readouterr().out
    assert "dev f1" in out and "3 of 4 articles train" in out and "replacing the demo runs" not in out
    demo.run_demo(str(tmp_path / "demo"), task="squad", train_file=str(squad_file), progress=False)
    assert f"(replacing the demo runs already in {tmp_path / 'demo'})" in capsys.readouterr().out


def test_hub_unreachable_is_one_error():
    from dynakd.data.squad import load_squad
    from dynakd.errors import DynaKDError

    with pytest.raises(DynaKDError, match="--train-file/--validation-file"):
        load_squad()  # the tests run offline (HF_DATASETS_OFFLINE=1)


class OracleQA(torch.nn.Module):
    """Start/end logits that point at the gold span of each window it has been shown (found by its tokens)."""

    def __init__(self, spans: dict[tuple[int, ...], tuple[int, int]]):
        super().__init__()
        self.spans, self.dummy = spans, torch.nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        start, end = torch.zeros(input_ids.shape), torch.zeros(input_ids.shape)
        for i, row in enumerate(input_ids.tolist()):
            span = self.spans.get(tuple(t for t, m in zip(row, attention_mask[i].tolist()) if m))
            if span is not None:
                start[i, span[0]], end[i, span[1]] = 10.0, 10.0
        return QuestionAnsweringModelOutput(start_logits=start + self.dummy, end_logits=end + self.dummy)


def test_qa_evaluation_keeps_window_order_with_grouped_batches(qa_encoder, squad_file, tmp_path):
    """A model that answers every window perfectly scores EM 100 through the trainer, with training batches grouped
    by length (transformers then groups evaluation batches too unless DynaKD keeps them in order)."""
    tokenizer = AutoTokenizer.from_pretrained(qa_encoder)
    data = load_squad(train_file=str(squad_file), train_articles=1)
    _, evals = encode_squad(data, tokenizer, 48, 16, n_best=5, max_answer_length=30)
    qa = evals["validation"]
    spans, starts = {}, dict(zip(qa.examples["id"], qa.examples["answers"]))
    for i, qid in enumerate(qa.example_ids):
        answer = starts[qid]
        first, text = answer["answer_start"][0], answer["text"][0]
        offsets = qa.offsets[i]
        seq = [0 if o is None else 1 for o in offsets]
        span = answer_tokens([o or (0, 0) for o in offsets], seq, 1, first, first + len(text))
        if span is not None:
            spans[tuple(qa.features[i]["input_ids"])] = span
    assert len({len(x) for x in qa.features["input_ids"]}) > 1  # windows of several lengths, so grouping reorders
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=2, report_to=[],
                             train_sampling_strategy="group_by_length", use_cpu=True)
    trainer = EvalTrainer(model=OracleQA(spans), args=args, qa_eval=qa,
                          data_collator=DataCollatorWithPadding(tokenizer))
    metrics = trainer.evaluate()
    assert metrics["eval_exact_match"] == pytest.approx(1.0) and metrics["eval_f1"] == pytest.approx(1.0)


def test_a_qa_model_whose_config_returns_hidden_states_is_scored_on_its_spans(squad_file, tmp_path, monkeypatch):
    """With output_hidden_states and output_attentions in its config, a QA model's predictions held every layer's
    outputs beside the start and end logits, gathered over all windows (attention maps of windows of other lengths
    would stop that on torch.cat). The start and end logits alone are gathered now, and it scores as without them."""
    from transformers import AutoConfig, Trainer

    gathered = []

    def evaluation_loop(self, *args, **kwargs):
        output = Trainer.evaluation_loop(self, *args, **kwargs)
        gathered.append(len(output.predictions))
        return output

    monkeypatch.setattr(EvalTrainer, "evaluation_loop", evaluation_loop)

    plain = make_tiny_qa_bert(tmp_path / "plain")
    extra = make_tiny_qa_bert(tmp_path / "extra")
    config = AutoConfig.from_pretrained(extra)
    config.output_hidden_states = config.output_attentions = True
    config.save_pretrained(extra)
    scores = []
    for model in (plain, extra):
        assert main(["evaluate", "--model", str(model), "--task", "squad", "--max-seq-length", "48", "--doc-stride",
                     "16", "--no-progress", "--train-file", str(squad_file), "--train-articles", "3", "--set",
                     "eval_batch_size=2"]) == 0
        scores.append(json.loads((model / "metrics.json").read_text())["eval"])
    assert (scores[1]["exact_match"], scores[1]["f1"]) == (scores[0]["exact_match"], scores[0]["f1"])
    assert gathered == [2, 2]


def test_a_qa_student_trains_and_scores_in_a_distillation_trainer(squad_file, tmp_path):
    """README's own-Trainer path for extractive QA, with the Trainer's defaults: a QA model's forward names its labels
    start_positions and end_positions, so remove_unused_columns dropped the windows' ``labels`` ("the batch has no
    labels"); ``qa_eval`` scores whole questions."""
    from dynakd import DistillationCollator, DistillationTrainer, Distiller, build_student

    folder = make_tiny_qa_bert(tmp_path / "teacher", layers=2)
    teacher, tokenizer = AutoModelForQuestionAnswering.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    student = build_student(teacher, 1)
    encoded, evals = encode_squad(load_squad(train_file=str(squad_file), train_articles=3), tokenizer, 48, 16)
    distiller = Distiller(build_config({"method": "full", "task": "squad"}), qa=True, student_layers=1,
                          teacher_layers=2, student_width=32, teacher_width=32)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4,
                             report_to=[], use_cpu=True)
    trainer = DistillationTrainer(model=student, teacher=teacher, distiller=distiller, args=args,
                                  train_dataset=encoded["train"], eval_dataset=encoded["validation"],
                                  data_collator=DistillationCollator(tokenizer), qa_eval=evals["validation"])
    assert trainer.train().global_step == 2
    scores = trainer.evaluate()
    assert 0 <= scores["eval_f1"] <= 1 and set(trainer.qa_predictions) == set(evals["validation"].examples["id"])


def test_a_qa_run_that_trained_nothing_after_its_checkpoint_scores_again_for_its_answers():
    """Resumed from its last step's checkpoint, a run trains nothing and reused that step's logged scores, so it had
    no answers to write (eval_predictions.json)."""
    from dynakd.runner import _final_eval

    class Trainer:
        qa_eval, qa_predictions, eval_dataset = object(), None, None
        state = type("State", (), {"log_history": [{"step": 4, "eval_runtime": 1.0, "eval_f1": 0.5}]})()

        def evaluate(self):
            self.qa_predictions = {"q1": "an answer"}
            return {"eval_f1": 0.5}

    trainer = Trainer()
    assert _final_eval(trainer, 4) == {"eval_f1": 0.5} and trainer.qa_predictions == {"q1": "an answer"}
    assert _final_eval(trainer, 4) == {"eval_runtime": 1.0, "eval_f1": 0.5}  # (with its answers: the logged scores)
