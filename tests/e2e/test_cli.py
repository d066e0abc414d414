"""End-to-end runs of the CLI on tiny models: every method, finetune -> distill -> evaluate, in seconds each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from transformers import AutoModelForSequenceClassification

from dynakd.cli import main
from dynakd.errors import DynaKDError
from dynakd.students import default_layer_ids

FAST = [
    "--synthetic",
    "--max-train-samples",
    "48",
    "--max-eval-samples",
    "32",
    "--max-steps",
    "3",
    "--batch-size",
    "16",
    "--max-seq-length",
    "32",
    "--no-progress",
    "--logging-steps",
    "1",
]


def distill_args(teacher: Path, out: Path, *extra: str) -> list[str]:
    return [
        "distill",
        "--teacher",
        str(teacher),
        "--student-layers",
        "2",
        "--task",
        "sst2",
        *FAST,
        "--output",
        str(out),
        *extra,
    ]


def tensorboard_tags(run: Path, kind: str = "scalars") -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for event_file in run.glob("runs/**/events.out.tfevents.*"):
        acc = EventAccumulator(str(event_file))
        acc.Reload()
        tags |= set(acc.Tags()[kind])
    return tags


@pytest.mark.parametrize(
    "method, align, terms",
    [
        ("task", "fixed", ["task"]),
        ("kd", "fixed", ["task", "logit"]),
        ("static", "fixed", ["task", "logit", "static"]),
        ("pkd", "attention", ["task", "logit", "pkd"]),
        ("dynamics", "ot", ["task", "dyn/deviation", "dyn/layer_change", "dyn/relations"]),
        ("full", "ot", ["task", "logit", "dyn/deviation", "dyn/layer_change", "dyn/relations"]),
        ("full", "attention", ["task", "logit", "dyn/deviation"]),
        ("full", "fixed", ["task", "logit", "dyn/relations"]),
    ],
)
def test_distill_every_method(tiny_teacher, tmp_path, method, align, terms):
    out = tmp_path / "run"
    assert main(distill_args(tiny_teacher, out, "--method", method, "--align", align)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == method and metrics["align"] == (align if method not in ("task", "kd") else None)
    assert metrics["versions"]["dynakd"] and metrics["versions"]["torch"]  # (the code that made it)
    assert 0.0 <= metrics["eval"]["accuracy"] <= 1.0
    assert "accuracy" in metrics["teacher_eval"]
    assert metrics["model"]["layers"] == 2 and metrics["train"]["steps"] == 3
    reloaded = AutoModelForSequenceClassification.from_pretrained(out)
    assert reloaded.config.num_hidden_layers == 2
    assert yaml.safe_load((out / "dynakd.yaml").read_text())["method"] == method
    has_plan = method not in ("task", "kd")
    assert (out / "alignment.png").is_file() == has_plan
    if has_plan:
        record = json.loads((out / "alignment.json").read_text())
        plan = record["plan"]
        assert len(plan) == 2 and len(plan[0]) == 4
        assert record["student_copied_from"] == [i + 1 for i in default_layer_ids(4, 2)]  # (outlined in the picture)
        assert all(abs(sum(row) - 1) < 1e-3 for row in plan)
    tags = tensorboard_tags(out)
    assert {f"train/loss/{t}" for t in terms} <= tags
    groups = {t if t in ("task", "logit") else "feature" for t in terms}
    assert {f"train/weight/{g}" for g in groups} <= tags
    # the alignment's course: the picture at each evaluation, the matched teacher layers at each log
    assert ("alignment" in tensorboard_tags(out, "images")) == has_plan
    assert ({"train/align/student_1", "train/align/student_2"} <= tags) == has_plan


def test_the_logs_go_where_report_to_says(tiny_teacher, tmp_path, monkeypatch, capsys):
    """The trackers were TensorBoard's alone: an HF user's wandb or mlflow got nothing. ``none`` writes no logs; a
    tracker transformers does not know, or one not installed here, is refused before any model loads."""
    from transformers.integrations import integration_utils

    from dynakd.config import build_config

    out = tmp_path / "run"
    assert main(distill_args(tiny_teacher, out, "--report-to", "none")) == 0
    assert not (out / "runs").exists() and (out / "alignment.png").is_file()
    assert yaml.safe_load((out / "dynakd.yaml").read_text())["report_to"] == ["none"]
    # how the logs go changes no weight: the same run, finished
    capsys.readouterr()
    assert main(distill_args(tiny_teacher, out, "--report-to", "tensorboard")) == 2
    assert "already holds this run, finished" in capsys.readouterr().err
    with pytest.raises(DynaKDError, match=r"report_to: unknown 'wandbb' \(valid: .*\); did you mean 'wandb'\?"):
        build_config({"report_to": "wandbb"})
    with pytest.raises(DynaKDError, match=r"report_to: none stands alone \(report_to: none\), not beside other "):
        build_config({"report_to": "none,tensorboard"})
    monkeypatch.setattr(integration_utils, "get_available_reporting_integrations", lambda: ["tensorboard"])
    with pytest.raises(DynaKDError, match=r"report_to mlflow: its package is not installed here \(installed "
                                          r"trackers: tensorboard\)"):
        build_config({"report_to": "tensorboard,mlflow"})


def test_finetune_distill_evaluate_chain(tiny_encoder, tmp_path, capsys):
    teacher = tmp_path / "teacher"
    assert main(["finetune", "--model", str(tiny_encoder), "--task", "sst2", *FAST, "--output", str(teacher)]) == 0
    assert json.loads((teacher / "metrics.json").read_text())["command"] == "finetune"
    student = tmp_path / "student"
    assert main(distill_args(teacher, student, "--method", "full", "--student-layer-ids", "0,1")) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(student),
                "--task",
                "sst2",
                "--synthetic",
                "--max-eval-samples",
                "32",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "evaluate: accuracy=" in printed
    # without progress bars the Trainer printed its raw evaluation dict (for a distill's teacher too, unlabelled)
    assert "eval_loss" not in printed
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["command"] == "distill" and "accuracy" in metrics["evaluate"]["eval"]
    assert metrics["evaluate"]["max_seq_length"] == 32  # the length the run was trained at, read from its folder
    assert main(["evaluate", "--model", str(student), "--task", "sst2", "--synthetic", "--max-eval-samples", "32",
                 "--no-progress", "--max-seq-length", "64"]) == 0
    assert json.loads((student / "metrics.json").read_text())["evaluate"]["max_seq_length"] == 64


def test_a_run_shorter_than_the_logging_interval_logs_every_term(tiny_teacher, tmp_path):
    out = tmp_path / "run"  # 3 steps, logging every 25 (the default): the first step is logged all the same
    assert main(distill_args(tiny_teacher, out, "--method", "full", "--logging-steps", "25")) == 0
    assert {"train/loss/task", "train/loss/logit", "train/loss/dyn/relations", "train/weight/feature"} <= \
        tensorboard_tags(out)


def test_a_model_trained_on_another_task_is_noted(tmp_path, capsys):
    from dynakd.lending import note_other_task

    (tmp_path / "dynakd.yaml").write_text("task: sst2\n")
    note_other_task(tmp_path, "sst2", "teacher")
    assert capsys.readouterr().out == ""
    note_other_task(tmp_path, "mrpc", "teacher")
    assert capsys.readouterr().out == f"note: the teacher {tmp_path} was trained on task sst2, this run is on mrpc\n"


def test_config_file_and_overrides(tiny_teacher, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "method": "full",
                "align": {"name": "ot", "eps": 0.2},
                "dynamics": {"distance": "cosine", "reference": "ema"},
                "beta": {"kind": "cosine", "start": 5.0, "end": 0.0},
            }
        )
    )
    out = tmp_path / "run"
    args = distill_args(tiny_teacher, out, "--config", str(config), "--set", "align.iters=7", "--method", "dynamics")
    assert main(args) == 0
    resolved = yaml.safe_load((out / "dynakd.yaml").read_text())
    assert resolved["method"] == "dynamics"  # the flag beats the file
    assert resolved["align"] == {**resolved["align"], "name": "ot", "eps": 0.2, "iters": 7}
    assert resolved["dynamics"]["distance"] == "cosine" and resolved["beta"]["kind"] == "cosine"
    # the resolved config is itself a valid --config
    again = tmp_path / "again"
    assert main(distill_args(tiny_teacher, again, "--config", str(out / "dynakd.yaml"))) == 0


def test_dataset_reference_and_sensitivity(tiny_teacher, tmp_path):
    out = tmp_path / "run"
    args = distill_args(
        tiny_teacher,
        out,
        "--set",
        "dynamics.reference=dataset",
        "--set",
        "dynamics.components=[deviation,layer_change,relations,sensitivity]",
    )
    assert main(args) == 0
    assert "train/loss/dyn/sensitivity" in tensorboard_tags(out)


@pytest.mark.parametrize("compiled", [
    False,
    pytest.param(True, marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=(
        "a GPU check (benchmarks/gpu/h200.sh tests-gpu): compiling takes ~2 min on this CPU, where it held when "
        "checked by hand (benchmarks/LOG.md, 2026-12-04)"))),
])
def test_the_sensitivity_forwards_share_their_dropout(compiled, tiny_teacher, tmp_path, monkeypatch):
    """The perturbed forward draws the clean forward's dropout masks, so the two differ by the perturbation alone: with
    a vanishing one the student's features stay put. With masks of their own they moved by ~0.24 of their norm (the
    teacher, in eval mode, by nothing), so the term compared the student's dropout with the teacher's sensitivity.
    A compiled student too: inductor draws its dropout seeds from the forked generator, at each call."""
    from dynakd.distiller import Distiller

    seen, forward = [], Distiller.forward

    def spy(self, student, teacher, labels, progress, perturbed=None):
        if perturbed is not None:
            seen.append([(c.detach(), p.detach()) for c, p in zip(student.hidden, perturbed[0].hidden)])
        return forward(self, student, teacher, labels, progress, perturbed)

    monkeypatch.setattr(Distiller, "forward", spy)
    args = distill_args(tiny_teacher, tmp_path / "run", "--set", "dynamics.components=[relations,sensitivity]",
                        "--set", "dynamics.sensitivity_noise=1e-6", *(["--torch-compile"] if compiled else []))
    assert main(args) == 0
    assert seen and all((p - c).norm() <= 1e-3 * c.norm() for step in seen for c, p in step[1:])


def test_perturbations_are_scaled_by_the_real_tokens():
    """The noise is std x the RMS of the real tokens' embeddings: padding (a fresh student's pad row is 0) used to
    shrink it by the batch's share of padding."""
    import torch

    from dynakd.features import perturbed_embeddings

    emb = torch.nn.Embedding(10, 4, padding_idx=0)
    model = torch.nn.Module()
    model.get_input_embeddings = lambda: emb
    ids = torch.tensor([[3, 4, 5, 0, 0, 0], [6, 7, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        clean = emb(ids)
        noise = perturbed_embeddings(model, ids, 0.1, seed=7, mask=mask) - clean
        real = clean[mask.bool()].pow(2).mean().sqrt()
        drawn = torch.randn(clean.shape, generator=torch.Generator().manual_seed(7))
        assert torch.allclose(noise, 0.1 * real * drawn, atol=1e-6)
        assert not torch.allclose(perturbed_embeddings(model, ids, 0.1, seed=7) - clean, noise)  # all positions


def test_the_perturbation_is_shared_across_widths_and_padding():
    """Teacher and student share one perturbation (method.md): each drew noise of its own width from the offsets of
    its own padded tensor, unrelated noises where the widths differ, and another draw for every real token when a
    batch was padded further. Drawn at the narrower width for every position of the longest batch, the wider model
    taking it through a fixed map with orthonormal rows, the noise of any two tokens has the same inner products in
    both, up to a scale, and padding changes no real token's noise."""
    import torch

    from dynakd.features import perturbed_embeddings, shared_noise_map

    def model(width):
        emb = torch.nn.Embedding(10, width, padding_idx=0)
        m = torch.nn.Module()
        m.get_input_embeddings = lambda: emb
        return m

    narrow, wide = model(4), model(8)
    ids = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]])
    mask = (ids != 0).long()
    padded, padded_mask = torch.nn.functional.pad(ids, (0, 3)), torch.nn.functional.pad(mask, (0, 3))
    with torch.no_grad():
        def noise(m, ids, mask):
            clean = m.get_input_embeddings()(ids)
            rms = clean[mask.bool()].pow(2).mean().sqrt()
            return (perturbed_embeddings(m, ids, 0.1, 7, mask, width=4, length=16) - clean) / (0.1 * rms)

        n, w = noise(narrow, ids, mask), noise(wide, ids, mask)
        real = mask.bool()
        torch.testing.assert_close(w[real] @ w[real].T, 2.0 * n[real] @ n[real].T, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(w, 2.0**0.5 * n @ shared_noise_map(4, 8))
        for m, drawn in ((narrow, n), (wide, w)):  # more padding: every real token's noise as it was
            again = noise(m, padded, padded_mask)
            torch.testing.assert_close(again[:, :4][real], drawn[real])
        # a batch longer than `length` (a collator of one's own): the first `length` positions keep their noise
        short = perturbed_embeddings(narrow, ids, 0.1, 7, mask, width=4, length=4) - narrow.get_input_embeddings()(ids)
        longer = perturbed_embeddings(narrow, padded, 0.1, 7, padded_mask, width=4, length=4)
        longer = longer - narrow.get_input_embeddings()(padded)
        torch.testing.assert_close(longer[:, :4][real], short[real])
        with pytest.raises(ValueError, match="width 8 is wider than the model's embeddings"):
            perturbed_embeddings(narrow, ids, 0.1, 7, mask, width=8)
    q = shared_noise_map(4, 8)
    torch.testing.assert_close(q @ q.T, torch.eye(4))


def test_tokens_pooling(tiny_teacher, tmp_path):
    out = tmp_path / "run"
    assert main(distill_args(tiny_teacher, out, "--set", "dynamics.pooling=tokens", "--align", "attention")) == 0


def test_teacher_and_student_with_different_tokenizers(tiny_teacher, tmp_path, capsys):
    from tests.conftest import make_tiny_bert

    student = make_tiny_bert(tmp_path / "student", layers=2, hidden=16, reverse_vocab=True)
    args = ["distill", "--teacher", str(tiny_teacher), "--student", str(student), "--task", "sst2", *FAST]
    assert main([*args, "--method", "full", "--output", str(tmp_path / "full")]) == 0
    assert json.loads((tmp_path / "full" / "metrics.json").read_text())["model"]["hidden_size"] == 16
    assert "student_copied_from" not in json.loads((tmp_path / "full" / "alignment.json").read_text())
    assert "note: the teacher and the student tokenize differently: the rows are encoded for each" in \
        capsys.readouterr().out  # (a reviewer found nothing said of it)
    assert main([*args, "--method", "static", "--output", str(tmp_path / "static")]) == 2
    assert "must share a tokenizer" in capsys.readouterr().err
    assert main([*args, "--set", "hidden_weight=1", "--output", str(tmp_path / "hidden")]) == 2
    assert "hidden_weight compares hidden states token by token" in capsys.readouterr().err
    # what works across two tokenizers is said with the refusal; pkd across two widths says how it compares them
    assert main([*args, "--method", "static", "--output", str(tmp_path / "static")]) == 2
    assert "across two, use method kd, pkd, dynamics or full with pooled dynamics" in capsys.readouterr().err
    from dynakd.config import build_config
    from dynakd.distiller import check_compatible

    with pytest.raises(DynaKDError, match="token by token: teacher and student must share a tokenizer; use a student "
                                          "that shares the teacher's tokenizer"):  # (QA: no method works across two)
        check_compatible(build_config({"task": "squad", "method": "kd"}), same_tokenizer=False, qa=True)
    assert main([*args, "--method", "pkd", "--output", str(tmp_path / "pkd")]) == 0
    assert "note: the student's width (16) is not the teacher's (32): method pkd compares their states through a " \
        "learned linear map per student layer" in capsys.readouterr().out


def make_tiny_distilbert(folder: Path, teacher: Path) -> Path:
    """A tiny random DistilBERT classifier with the BERT ``teacher``'s tokenizer as DistilBERT's own is: the same
    vocabulary and encodings, without token_type_ids among its input names."""
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(teacher, model_input_names=["input_ids", "attention_mask"])
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=tokenizer.vocab_size, dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=128,
    )).save_pretrained(folder)
    return folder


def test_a_distilbert_student_shares_the_tokenizer_of_its_bert_teacher(tiny_teacher, tmp_path, monkeypatch):
    """DistilBERT's tokenizer lacks only BERT's token_type_ids: it counted as another tokenizer, so the data was
    encoded twice and token-level terms were refused (teacher and student must share a tokenizer). Now one encoding
    serves both, and each model takes what it accepts: the teacher its segment ids on sentence pairs, the student
    none."""
    import functools

    from transformers import AutoTokenizer, BertForSequenceClassification, DistilBertForSequenceClassification

    from tests.unit.test_data import qnli_dev_only

    seen: dict[str, set[str]] = {"teacher": set(), "student": set()}
    for who, cls in (("teacher", BertForSequenceClassification), ("student", DistilBertForSequenceClassification)):
        def forward(self, *args, _forward=cls.forward, _who=who, **kwargs):
            seen[_who].update(kwargs)
            return _forward(self, *args, **kwargs)
        monkeypatch.setattr(cls, "forward", functools.wraps(cls.forward)(forward))  # (its signature: its columns)
    student, out = make_tiny_distilbert(tmp_path / "student", tiny_teacher), tmp_path / "run"
    args = ["distill", "--teacher", str(tiny_teacher), "--student", str(student), "--task", "qnli", "--data-dir",
            str(qnli_dev_only(tmp_path / "glue")), "--dev-split", "0.5", "--max-steps", "2", "--batch-size", "8",
            "--max-seq-length", "32", "--no-progress", "--set", "dynamics.pooling=tokens", "--output", str(out)]
    assert main(args) == 0
    assert "token_type_ids" in seen["teacher"] and "token_type_ids" not in seen["student"]
    assert AutoTokenizer.from_pretrained(out).model_input_names == ["input_ids", "attention_mask"]  # its own


def write_mnli(root: Path) -> Path:
    header = "index\tpromptID\tpairID\tgenre\ts1bp\ts2bp\ts1p\ts2p\tsentence1\tsentence2\tlabel1\tgold_label\n"
    rows = [
        ("the film is good", "the film is great", "entailment"),
        ("the plot is bad", "the plot is fine", "contradiction"),
        ("the cast is here", "the cast is tired", "neutral"),
    ] * 8
    (root / "MNLI").mkdir(parents=True)
    for name in ("train", "dev_matched", "dev_mismatched"):
        lines = [f"{i}\t0\t0\tfiction\t-\t-\t-\t-\t{a}\t{b}\t{y}\t{y}\n" for i, (a, b, y) in enumerate(rows)]
        (root / "MNLI" / f"{name}.tsv").write_text(header + "".join(lines))
    return root


def test_glue_dir_with_two_eval_splits(tmp_path):
    from tests.conftest import make_tiny_bert

    teacher = make_tiny_bert(tmp_path / "t", layers=2, hidden=16, num_labels=3)
    glue = write_mnli(tmp_path / "glue")
    out = tmp_path / "run"
    args = [
        "distill",
        "--teacher",
        str(teacher),
        "--student-layers",
        "1",
        "--task",
        "mnli",
        "--data-dir",
        str(glue),
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--no-progress",
        "--output",
        str(out),
    ]
    assert main(args) == 0
    record = json.loads((out / "metrics.json").read_text())
    scores = record["eval"]
    assert "validation_matched_accuracy" in scores and "validation_mismatched_accuracy" in scores
    # the files' rows are recorded, and files in GLUE's layout of other rows than GLUE's are not published as its
    # validation splits (a user's walkthrough of 2026-12-07: the card's model-index claimed GLUE MNLI results)
    assert record["eval_split_rows"] == {"validation_matched": 24, "validation_mismatched": 24}
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")
    assert card.data.eval_results is None and card.data.datasets is None
    assert "on MNLI files of the local folder `glue`" in card.text
    assert ("of the local folder, whose rows are not GLUE's (24 rows in validation_matched, where GLUE's holds 9815; "
            "24 rows in validation_mismatched, where GLUE's holds 9832)") in card.text


def test_two_eval_splits_are_scored_once_at_the_last_step(tmp_path, monkeypatch):
    """MNLI's last evaluation, where the Trainer ran one at the last step, gives the final scores: it was run again
    (a second pass over ~20k dev rows, and each score twice at the last step in TensorBoard; a user's walkthrough)."""
    from dynakd.trainer import DistillationTrainer
    from tests.conftest import make_tiny_bert

    calls, evaluate = [], DistillationTrainer.evaluate

    def counted(self, eval_dataset=None, *args, **kwargs):
        if eval_dataset is None:  # (a dict of sets evaluates each through this again, with the set given)
            calls.append(self.state.global_step)
        return evaluate(self, eval_dataset, *args, **kwargs)

    monkeypatch.setattr(DistillationTrainer, "evaluate", counted)
    teacher = make_tiny_bert(tmp_path / "t", layers=2, hidden=16, num_labels=3)
    out = tmp_path / "run"
    args = ["distill", "--teacher", str(teacher), "--student-layers", "1", "--task", "mnli", "--data-dir",
            str(write_mnli(tmp_path / "glue")), "--max-steps", "2", "--eval-steps", "1", "--batch-size", "8",
            "--no-progress", "--output", str(out)]
    assert main(args) == 0
    assert calls == [1, 2]  # (the Trainer's evaluations; none after them)
    scores = json.loads((out / "metrics.json").read_text())["eval"]
    assert {"validation_matched_accuracy", "validation_mismatched_accuracy"} <= set(scores)


def test_same_seed_same_result(tiny_encoder, tmp_path):
    """A new classification head is initialised from the run's seed, whatever ran before in the process."""
    import torch

    losses = []
    for i in range(2):
        torch.manual_seed(1000 + i)  # a different global RNG state before each run
        out = tmp_path / f"run{i}"
        assert main(["finetune", "--model", str(tiny_encoder), "--task", "sst2", *FAST, "--output", str(out)]) == 0
        losses.append(json.loads((out / "metrics.json").read_text())["eval"]["loss"])
    assert losses[0] == losses[1]


def test_version_module_entry_point_and_the_distil_alias(tiny_teacher, tmp_path, capsys):
    import subprocess
    import sys

    import dynakd

    run = subprocess.run([sys.executable, "-m", "dynakd", "--version"], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == f"dynakd {dynakd.__version__}"
    out = tmp_path / "run"
    assert main(["distil", *distill_args(tiny_teacher, out, "--method", "kd")[1:]]) == 0  # British spelling
    assert json.loads((out / "metrics.json").read_text())["command"] == "distill"


def test_a_run_of_ones_own_glue_layout_files_moved_is_not_scored_on_the_hubs_rows(tiny_encoder, tmp_path, capsys):
    """A run's GLUE folder not found from here: evaluate (and distill from it as the teacher) fell back to the hub's
    GLUE with a note, right for a copy of GLUE's files, other rows for files of one's own (a user's walkthrough)."""
    from tests.unit.test_data import qnli_dev_only

    glue, run = qnli_dev_only(tmp_path / "glue"), tmp_path / "run"
    (glue / "QNLI" / "train.tsv").write_bytes((glue / "QNLI" / "dev.tsv").read_bytes())
    args = ["--task", "qnli", "--data-dir", str(glue), "--max-steps", "1", "--max-seq-length", "32", "--no-progress"]
    assert main(["finetune", "--model", str(tiny_encoder), *args, "--save-steps", "1", "--keep-checkpoints",
                 "--output", str(run)]) == 0
    assert main(["finetune", "--model", str(tiny_encoder), *args, "--dev-split", "0.5", "--output",
                 str(tmp_path / "cut")]) == 0
    assert json.loads((run / "metrics.json").read_text())["eval_split_rows"] == {"validation": 40}
    glue.rename(tmp_path / "moved")
    capsys.readouterr()
    for model in (run, run / "checkpoint-1"):  # (a checkpoint reads its run's record, as it lends its settings)
        assert main(["evaluate", "--model", str(model), "--no-progress"]) == 2
        assert (f"{model} was trained on data_dir {glue}, not found from here (a relative path counts from the "
                "folder it ran in), whose files were not GLUE's (40 rows in validation, where GLUE's holds 5463): "
                "give --data-dir (the hub's GLUE rows are not the run's)") in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path / "cut"), "--no-progress"]) == 2  # (its dev split's refusal)
    assert "(--dev-split 0.5), not found from here" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(run), "--student-layers", "1", "--no-progress", "--output",
                 str(tmp_path / "student")]) == 2
    assert f"the teacher {run} was fine-tuned on data_dir {glue}, not found from here" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(run), "--data-dir", str(tmp_path / "moved"), "--no-progress"]) == 0


def test_evaluate_scores_a_dev_split_run_on_the_part_it_held_out(tiny_teacher, tmp_path, capsys):
    from tests.unit.test_data import qnli_dev_only

    glue, out = qnli_dev_only(tmp_path / "glue"), tmp_path / "run"
    args = ["--task", "qnli", "--data-dir", str(glue), "--max-seq-length", "32", "--no-progress"]
    assert main(["distill", "--teacher", str(tiny_teacher), "--student-layers", "1", "--method", "kd", "--dev-split",
                 "0.5", "--max-steps", "2", "--batch-size", "8", *args, "--output", str(out)]) == 0
    trained = json.loads((out / "metrics.json").read_text())["eval"]
    assert main(["evaluate", "--model", str(out), *args]) == 0  # no --dev-split: the run folder's
    scored = json.loads((out / "metrics.json").read_text())["evaluate"]
    assert scored["dev_split"] == 0.5 and scored["eval"]["accuracy"] == trained["accuracy"]
    (tmp_path / "eval.yaml").write_text(f"model: {out}\n")  # the model named by a config file: the same
    assert main(["evaluate", "--config", str(tmp_path / "eval.yaml"), *args]) == 0
    assert json.loads((out / "metrics.json").read_text())["evaluate"]["dev_split"] == 0.5
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--no-progress"]) == 0  # the run's task and data, unasked
    assert (f"evaluate: task qnli, data_dir {glue}, max_seq_length 32, dev_split 0.5 (as {out} was trained)"
            in capsys.readouterr().out)
    scored = json.loads((out / "metrics.json").read_text())["evaluate"]
    assert scored["task"] == "qnli" and scored["eval"]["accuracy"] == trained["accuracy"]
    # the card says which part, of which rows (it said "the whole evaluation split" of GLUE QNLI; a review)
    card = (out / "README.md").read_text()
    assert ("Scored on the 50% of the evaluation split that dev_split 0.5 holds out of QNLI files of the local folder "
            "`glue`") in card
    assert "Scored on the 50% of the evaluation rows held out of the local folder, whose rows are not GLUE's" in card
    # another task: none of the run's data, nor the part of its dev set it held out
    assert main(["evaluate", "--model", str(out), "--task", "sst2", "--synthetic", "--no-progress"]) == 0
    scored = json.loads((out / "metrics.json").read_text())["evaluate"]
    assert scored["task"] == "sst2" and "dev_split" not in scored
    # another run's folder is refused (test_evaluate_files_a_score_under_its_own_model_only); a fresh folder gets
    # the score alone
    other = tmp_path / "other"
    other.mkdir()
    (other / "dynakd.yaml").write_text("task: qnli\n")
    assert main(["evaluate", "--model", str(out), "--no-progress", "--output", str(tmp_path / "fresh")]) == 0
    assert json.loads((tmp_path / "fresh" / "metrics.json").read_text())["command"] == "evaluate"
    capsys.readouterr()  # an unfinished run: a metrics.json would mark it finished
    assert main(["evaluate", "--model", str(out), "--no-progress", "--output", str(other)]) == 2
    assert "holds an unfinished run: a metrics.json written there would mark it finished" in capsys.readouterr().err


def test_evaluate_of_a_model_not_in_a_local_folder_needs_an_output(tmp_path, capsys, monkeypatch):
    """A hub id or an alias: its metrics.json would make ./org/name, a folder that later commands naming the model
    would take for a broken model folder."""
    from dynakd import runner

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "check_model_loads", lambda model: None)  # as a hub model online would
    assert main(["evaluate", "--model", "org/hub-model", "--synthetic", "--no-progress"]) == 2
    assert "org/hub-model is not a local folder to write metrics.json into: give --output DIR" in \
        capsys.readouterr().err
    assert not (tmp_path / "org").exists()


@pytest.mark.parametrize("recorded", [{"task": "csv", "train_file": "all.csv", "dev_split": 0.5},
                                      {"task": "squad", "train_file": "all.csv", "train_articles": 9}])
def test_evaluate_refuses_the_file_a_run_cut_given_under_another_flag(recorded, tmp_path, monkeypatch):
    """The run's training file given as --validation-file was the command's own data: scored whole, half of it rows
    the run trained on (csv with --dev-split; SQuAD with --train-articles), without a word."""
    from dynakd.lending import evaluation_defaults

    monkeypatch.chdir(tmp_path)
    for name in ("all.csv", "other.csv"):
        (tmp_path / name).write_text("text,label\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "dynakd.yaml").write_text(yaml.safe_dump(recorded))
    cut = next(f"--{k.replace('_', '-')} {v}" for k, v in recorded.items() if k in ("dev_split", "train_articles"))
    with pytest.raises(DynaKDError, match=rf"all.csv is the train file {run} trained on part of \({cut}\): scored "
                                          "whole, the score would count rows it trained on; leave --validation-file "
                                          "out to score the part it held out, or give a file of other rows"):
        evaluation_defaults(run, {"validation_file": str(tmp_path / "all.csv")})
    evaluation_defaults(run, {"validation_file": "other.csv"})  # other rows: the command's own
    evaluation_defaults(run, {"train_file": "all.csv"})  # the run's own file under its own flag: the run's cut


def test_a_run_folder_lends_its_data_to_commands_in_another_folder(tmp_path, monkeypatch, capsys):
    """A relative data path counts from the folder the run ran in, which its recorded ``output`` gives: from another
    folder the run's file was not found, and given as --validation-file it was scored whole, rows the run trained on
    included, without a word. Where the file is gone from there, the one of that name here is read, with a note."""
    from dynakd.lending import evaluation_defaults, teacher_task

    (tmp_path / "all.csv").write_text("text,label\n")
    (tmp_path / "elsewhere").mkdir()
    run = tmp_path / "runs" / "run"
    run.mkdir(parents=True)
    (run / "dynakd.yaml").write_text(yaml.safe_dump({"task": "csv", "train_file": "all.csv", "dev_split": 0.5,
                                                     "output": "runs/run"}))
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(DynaKDError, match=r"\.\./all.csv is the train file \.\./runs/run trained on part of"):
        evaluation_defaults("../runs/run", {"validation_file": "../all.csv"})
    (tmp_path / "elsewhere" / "all.csv").write_text("other rows\n")  # a file of the same name here: not the run's
    assert evaluation_defaults("../runs/run", {})["train_file"] == "../all.csv"
    assert "evaluate: task csv, train_file ../all.csv, dev_split 0.5" in capsys.readouterr().out
    assert teacher_task("../runs/run", {}, say=lambda line: None)["train_file"] == "../all.csv"
    (run / "checkpoint-2").mkdir()  # a checkpoint lends its run's settings, from its run's folder
    assert evaluation_defaults("../runs/run/checkpoint-2", {})["train_file"] == "../all.csv"
    # the run's file gone from the folder it ran in: the one of that name here is read, and said so
    (tmp_path / "all.csv").rename(tmp_path / "kept.csv")
    assert evaluation_defaults("../runs/run/checkpoint-2", {})["train_file"] == "all.csv"
    said = (f"note: ../runs/run/checkpoint-2 ran in {tmp_path}, which holds no train_file all.csv now: the one of "
            "that name here is read (give --train-file for other files); the dev rows --dev-split 0.5 held out are "
            "cut from it: a copy of other rows or order holds out others\n")
    assert said in capsys.readouterr().out
    lines = []
    teacher_task("../runs/run", {}, say=lines.append)
    assert f"note: the teacher ../runs/run ran in {tmp_path}, which holds no train_file all.csv now" in lines[-1]
    (tmp_path / "kept.csv").rename(tmp_path / "all.csv")
    # a folder moved since (its path no longer ends with the recorded output): the folder it ran in is not known,
    # and the path counts from here, as before
    (tmp_path / "elsewhere" / "all.csv").unlink()
    moved = tmp_path / "moved"
    run.rename(moved)
    assert evaluation_defaults(moved, {"train_file": "../all.csv"})["dev_split"] == 0.5  # given for the lost one
    with pytest.raises(DynaKDError, match=r"moved was trained on part of train_file all.csv \(--dev-split 0.5\), "
                                          "not found from here"):
        evaluation_defaults(moved, {})


def test_a_squad_file_given_for_one_lost_keeps_the_articles_the_run_held_out(tmp_path, monkeypatch, capsys):
    """SQuAD's --train-file given in place of the run's, not found from here (as the note asks): the run's
    --train-articles still cut it, for evaluate and for a student of the teacher; they were dropped with the lost
    path, and the command then failed for want of evaluation data."""
    from dynakd.lending import evaluation_defaults, teacher_task

    monkeypatch.chdir(tmp_path)
    (tmp_path / "squad.json").write_text("{}")
    run = tmp_path / "run"
    run.mkdir()
    (run / "dynakd.yaml").write_text(yaml.safe_dump({"task": "squad", "train_file": "gone/squad.json",
                                                     "train_articles": 40}))
    assert evaluation_defaults(run, {"train_file": "squad.json"})["train_articles"] == 40
    assert "train_articles 40" in capsys.readouterr().out
    lent = teacher_task(str(run), {"train_file": "squad.json"}, say=lambda line: None)
    assert lent["task"] == "squad" and lent["train_articles"] == 40
    assert "train_articles" not in evaluation_defaults(run, {})  # no file at all: nothing to cut them from


def test_a_synthetic_run_that_recorded_a_data_folder_lends_no_folder(tmp_path, monkeypatch):
    """A run of the synthetic corpus could record --data-dir beside --synthetic (refused since): what it lends
    ``evaluate`` and ``distill`` leaves the folder out, which the synthetic corpus left unread."""
    from dynakd.lending import evaluation_defaults, teacher_task

    monkeypatch.chdir(tmp_path)
    (tmp_path / "glue").mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "dynakd.yaml").write_text(yaml.safe_dump({"task": "sst2", "synthetic": True, "data_dir": "glue",
                                                     "data_seed": 3}))
    lent = evaluation_defaults(run, {})
    assert lent["synthetic"] is True and "data_dir" not in lent
    lent = teacher_task(str(run), {}, say=lambda line: None)
    assert lent["synthetic"] is True and lent["data_seed"] == 3 and "data_dir" not in lent
    # a SQuAD run (or one of csv files) could record a data_dir it never read: its file is lent, not the folder
    (tmp_path / "squad.json").write_text("{}")
    (run / "dynakd.yaml").write_text(yaml.safe_dump({"task": "squad", "train_file": "squad.json", "data_dir": "glue",
                                                     "train_articles": 3}))
    assert evaluation_defaults(run, {}) == {"task": "squad", "train_file": "squad.json", "train_articles": 3}
    assert "data_dir" not in teacher_task(str(run), {}, say=lambda line: None)


def test_what_a_run_folder_lends_evaluate(tmp_path, monkeypatch, capsys):
    from dynakd.lending import evaluation_defaults

    monkeypatch.chdir(tmp_path)
    for name in ("all.csv", "other.csv", "squad.json"):
        (tmp_path / name).write_text("x")
    run = tmp_path / "run"
    run.mkdir()

    def lent(saved: dict, **given):
        (run / "dynakd.yaml").write_text(yaml.safe_dump(saved))
        return evaluation_defaults(run, given)

    csv_run = {"task": "csv", "train_file": "all.csv", "dev_split": 0.5, "data_seed": 1, "text_columns": ["t"]}
    assert lent(csv_run) == csv_run
    assert f"evaluate: task csv, train_file all.csv, dev_split 0.5 (as {run} was trained)" in capsys.readouterr().out
    other = lent(csv_run, validation_file="other.csv")  # the command's own file: all of it, not the run's cut
    assert other == {"task": "csv", "text_columns": ["t"]}
    assert lent({"task": "sst2", "data_dir": "../glue"}) == {"task": "sst2"}  # not there from here: not lent
    assert f"note: {run} was trained on data_dir ../glue, not found from here" in capsys.readouterr().out
    # lost training and evaluation files: scoring reads the evaluation file alone, and the note asks for it alone
    assert lent({"task": "csv", "train_file": "gone.csv", "validation_file": "gone-dev.csv"}) == {"task": "csv"}
    assert ("was trained on validation_file gone-dev.csv, not found from here (a relative path counts from the "
            "folder the run ran in); give --validation-file\n") in capsys.readouterr().out
    # a QA run's windows: their length said beside their overlap, as distill's line says them (not the default's)
    squad_run = {"task": "squad", "train_file": "squad.json", "train_articles": 3, "max_seq_length": 48,
                 "doc_stride": 16}
    assert lent(squad_run)["max_seq_length"] == 48
    assert (f"evaluate: task squad, train_file squad.json, train_articles 3, max_seq_length 48, doc_stride 16 (as "
            f"{run} was trained)") in capsys.readouterr().out
    assert lent({**squad_run, "max_seq_length": 128})["max_seq_length"] == 128
    assert "train_articles 3, doc_stride 16 (as" in capsys.readouterr().out
    from dynakd.lending import teacher_task

    said = []
    assert "max_seq_length" not in teacher_task(str(run), {}, say=said.append)  # (the default: not lent, not said)
    assert "max_seq_length" not in said[-1]
    (run / "dynakd.yaml").write_text(yaml.safe_dump(squad_run))
    assert teacher_task(str(run), {}, say=said.append)["max_seq_length"] == 48
    assert said[-1] == (f"distill: task squad, train_file squad.json, train_articles 3, max_seq_length 48, "
                        f"doc_stride 16 (as the teacher {run} was fine-tuned)")
    squad = lent({"task": "squad", "train_file": "squad.json", "train_articles": 3}, train_articles=2)
    assert squad["train_file"] == "squad.json" and "train_articles" not in squad  # the command's count, the file
    assert lent({"task": "SST-2", "data_dir": "."}, task="sst2")["data_dir"] == "."  # an older folder's spelling
    # the run's own file spelt otherwise, or standing in for a recorded path lost from here: still the run's cut
    assert lent(csv_run, train_file=str(tmp_path / "all.csv"))["data_seed"] == 1
    assert lent({**csv_run, "train_file": "gone/all.csv"}, train_file="all.csv")["dev_split"] == 0.5
    assert "dev_split" in lent(csv_run, synthetic=False)  # a false switch names no data
    with pytest.raises(DynaKDError, match=r"held out 0.5 of dev as data_seed 1 chose it; data_seed 2 holds out "
                                          r"other rows, so the score would count rows it trained on"):
        lent(csv_run, data_seed=2)  # another seed cuts other rows, some of which the run trained on
    with pytest.raises(DynaKDError, match=r"held out 0.5 of dev; dev_split 0.3 holds out other rows"):
        lent(csv_run, dev_split=0.3)
    assert lent(csv_run, data_seed=2, validation_file="other.csv")["task"] == "csv"  # data of its own: no cut
    assert "dev_split" not in lent(csv_run, train_file="a" * 300 + ".csv")  # a name the OS refuses: no crash
    monkeypatch.setenv("HOME", str(tmp_path))
    assert "dev_split" not in lent({**csv_run, "train_file": "~/all.csv"}, train_file="other.csv")  # ~ both sides
    with pytest.raises(DynaKDError, match=r"was trained on part of data_dir \.\./glue \(--dev-split 0\.5\), not "
                                          r"found from here .* give --data-dir so the part it held out"):
        lent({"task": "qnli", "data_dir": "../glue", "dev_split": 0.5})  # not the hub's copy: its rows may differ
    glue_run = {"task": "sst2", "data_dir": ".", "dev_split": 0.5}
    assert "dev_split" not in lent(glue_run, synthetic=True)  # the synthetic corpus: the run's cut means nothing


def test_evaluate_keeps_a_runs_overlap_at_its_own_length_and_says_what_it_scores(tmp_path, capsys):
    from dynakd.lending import evaluation_defaults

    run = tmp_path / "run"
    run.mkdir()
    (run / "dynakd.yaml").write_text("task: squad\nmax_seq_length: 128\ndoc_stride: 32\nmax_eval_samples: 24\n")
    assert evaluation_defaults(run, {"max_seq_length": 128})["doc_stride"] == 32  # the run's own length
    assert "doc_stride 32" in capsys.readouterr().out
    assert "doc_stride" not in evaluation_defaults(run, {"max_seq_length": 256})  # chosen for another length
    (run / "dynakd.yaml").write_text("task: squad\nmax_seq_length: 48\ndoc_stride: 16\n")
    assert "doc_stride" not in evaluation_defaults(run, {"max_seq_length": None})  # --set max_seq_length=: 128
    (run / "dynakd.yaml").write_text("task: squad\nmax_seq_length: 128\ndoc_stride: 32\nmax_eval_samples: 24\n")
    assert (f"note: {run} was scored on a seeded subset of 24 evaluation rows (--max-eval-samples 24); this scores "
            "them all" in capsys.readouterr().out)
    evaluation_defaults(run, {"max_eval_samples": 24})
    assert "--max-eval-samples" not in capsys.readouterr().out
    # the run's padding, which moves a score's last bits (padded to 16 to match its cached twin, scored so again)
    (run / "dynakd.yaml").write_text("task: sst2\nmax_seq_length: 64\npad_to_multiple_of: 16\n")
    assert evaluation_defaults(run, {})["pad_to_multiple_of"] == 16
    assert "pad_to_multiple_of" not in evaluation_defaults(run, {"pad_to_multiple_of": 8})


def test_evaluate_checks_a_squad_overlap_against_the_runs_length(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "dynakd.yaml").write_text("task: squad\nmax_seq_length: 256\n")
    assert main(["evaluate", "--model", str(run), "--task", "squad", "--doc-stride", "200", "--validation-file",
                 str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err  # past the config (200 < the run's 256, not the default 128) to the model folder
    assert "doc_stride" not in err and "is not a model folder" in err


def test_distill_takes_the_task_of_a_dynakd_teacher_and_prints_its_scores(tiny_teacher, tmp_path, capsys):
    """Without --task, a teacher fine-tuned on mrpc was distilled on the default sst2 (with a note only); and the
    teacher's scores, in metrics.json and the card, were not printed beside the student's."""
    from dynakd.lending import teacher_task

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "dynakd.yaml").write_text("task: mrpc\n")
    assert teacher_task(str(teacher), {}) == {"task": "mrpc"}
    assert f"distill: task mrpc (as the teacher {teacher} was fine-tuned)" in capsys.readouterr().out
    assert teacher_task(str(teacher), {"task": "sst2"}) == {} and teacher_task("org/hub-model", {}) == {}
    assert teacher_task(str(teacher), {"task": None}) == {}  # --set task=: the default task, said; nothing lent
    # and the teacher's data, unless the command names its own: a student trains and is scored where its teacher was
    (tmp_path / "all.csv").write_text("t,y\na,1\n")
    (teacher / "dynakd.yaml").write_text(yaml.safe_dump({
        "task": "csv", "train_file": str(tmp_path / "all.csv"), "text_columns": ["t"], "label_column": "y",
        "dev_split": 0.2, "data_seed": 3, "max_train_samples": 100}))
    lent = {"train_file": str(tmp_path / "all.csv"), "text_columns": ["t"], "label_column": "y", "dev_split": 0.2,
            "data_seed": 3}
    assert teacher_task(str(teacher), {}) == {"task": "csv", **lent}  # (not its subset: a setting, not a place)
    said = capsys.readouterr().out
    assert (f"distill: task csv, train_file {tmp_path / 'all.csv'}, text_columns ['t'], label_column y, dev_split 0.2 "
            f"(as the teacher {teacher} was fine-tuned)") in said
    # (the teacher's score printed beside the student's was of other rows than its own metrics.json's, without a word)
    assert (f"note: the teacher {teacher} was fine-tuned on a seeded subset of 100 training rows (--max-train-samples "
            "100); this run reads them all (give --max-train-samples 100 for the same rows)") in said
    assert teacher_task(str(teacher), {"task": "csv", "max_train_samples": 50}) == lent  # its own task, named
    assert "subset" not in capsys.readouterr().out
    # a distilled student as the teacher (from a user's walkthrough, 2026-12-07: it was said to be fine-tuned)
    student = tmp_path / "student"
    student.mkdir()
    (student / "dynakd.yaml").write_text("task: mrpc\nmethod: kd\nmax_train_samples: 100\n")
    teacher_task(str(student), {})
    said = capsys.readouterr().out
    assert f"distill: task mrpc (as the teacher {student} was distilled)" in said
    assert f"note: the teacher {student} was distilled on a seeded subset of 100 training rows" in said
    (tmp_path / "t2").mkdir()  # its subset was drawn with a data_seed of its own, not lent without a dev split
    (tmp_path / "t2" / "dynakd.yaml").write_text("task: sst2\nmax_train_samples: 100\nmax_eval_samples: 20\n"
                                                 "data_seed: 7\n")
    teacher_task(str(tmp_path / "t2"), {})
    said = capsys.readouterr().out
    assert "give --max-train-samples 100 --set data_seed=7 for the same rows" in said
    assert "was scored on a seeded subset of 20 evaluation rows (--max-eval-samples 20)" in said
    assert teacher_task(str(teacher), {"train_file": "mine.csv"}) == {"task": "csv"}  # data of the command's own
    # the teacher's own file named again is not data of the command's own: the rows it held out are still lent
    spelt = {k: v for k, v in lent.items() if k != "train_file"}
    assert teacher_task(str(teacher), {"train_file": str(tmp_path / "all.csv")}) == {"task": "csv", **spelt}
    assert teacher_task(str(teacher), {"task": "sst2"}) == {}
    # another data_seed cuts other rows: the student would be scored on rows the teacher trained on
    assert teacher_task(str(teacher), {"data_seed": 3})["dev_split"] == 0.2  # its own seed, said again
    with pytest.raises(DynaKDError, match=rf"^the teacher {teacher} held out 0.2 of dev as data_seed 3 chose it; "
                                          r"data_seed 4 holds out other rows, so the student would be scored on rows "
                                          r"the teacher trained on: leave data_seed out or give 3$"):
        teacher_task(str(teacher), {"data_seed": 4})
    with pytest.raises(DynaKDError, match=rf"^the teacher {teacher} held out 0.2 of dev; dev_split 0.3 holds out "
                                          r"other rows, so the student would be scored on rows the teacher trained "
                                          r"on: leave dev_split out or give 0.2$"):
        teacher_task(str(teacher), {"dev_split": 0.3})  # another fraction: other rows too
    (tmp_path / "all.csv").unlink()  # the rows the teacher held out cannot be told: refused, not cut from others
    with pytest.raises(DynaKDError, match="so that the student does not train on the rows the teacher held out"):
        teacher_task(str(teacher), {})
    (teacher / "dynakd.yaml").write_text(yaml.safe_dump({"task": "sst2", "data_dir": "../glue", "label_column": "label",
                                                         "synthetic": False}))
    assert teacher_task(str(teacher), {}) == {"task": "sst2"}  # no default (label_column) lent, nor a lost folder
    out = capsys.readouterr().out
    assert f"distill: task sst2 (as the teacher {teacher} was fine-tuned)" in out
    assert "fine-tuned on data_dir ../glue, not found from here (a relative path counts from the folder it ran in); " \
           "give --data-dir" in out
    (teacher / "dynakd.yaml").write_text(yaml.safe_dump({"task": "sst2", "synthetic": True, "data_seed": 5}))
    assert teacher_task(str(teacher), {}) == {"task": "sst2", "synthetic": True, "data_seed": 5}  # the same corpus
    out = tmp_path / "student"
    assert main(distill_args(tiny_teacher, out, "--method", "kd")) == 0
    printed = capsys.readouterr().out
    assert "\nteacher: accuracy=" in printed and printed.index("distill: accuracy=") < printed.index("teacher:")


def test_distill_takes_the_input_length_and_qa_windows_of_a_dynakd_teacher(tmp_path, capsys):
    """A SQuAD teacher fine-tuned on other windows was distilled, and scored as "teacher:", on the default ones, with
    no word: its score there was not its own, and a teacher of 384 tokens taught on 128-token windows."""
    from dynakd.lending import teacher_task

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "dynakd.yaml").write_text("task: squad\nmax_seq_length: 256\ndoc_stride: 96\nn_best: 10\n")
    assert teacher_task(str(teacher), {}) == {"task": "squad", "max_seq_length": 256, "doc_stride": 96, "n_best": 10}
    assert (f"distill: task squad, max_seq_length 256, doc_stride 96, n_best 10 (as the teacher {teacher} was "
            "fine-tuned)") in capsys.readouterr().out
    assert teacher_task(str(teacher), {"max_seq_length": 384}) == {"task": "squad", "n_best": 10}  # (overlap: length)
    assert teacher_task(str(teacher), {"doc_stride": 64, "task": "squad"}) == {"max_seq_length": 256, "n_best": 10}
    assert teacher_task(str(teacher), {"task": "sst2"}) == {}  # another task: nothing of the teacher's
    (teacher / "dynakd.yaml").write_text("task: sst2\nmax_seq_length: 64\n")
    assert teacher_task(str(teacher), {"train_file": "mine.csv"}) == {"task": "sst2", "max_seq_length": 64}


def test_evaluate_says_what_it_scored_and_will_not_lose_a_record(tiny_teacher, tmp_path, capsys):
    """A subset is written down as one; a metrics.json the score cannot be added to is named before anything loads
    (it was a JSON traceback after the scoring)."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_teacher, model)
    (model / "metrics.json").write_text("[1, 2]")
    args = ["evaluate", "--model", str(model), "--task", "sst2", "--synthetic", "--no-progress"]
    assert main(args) == 2
    assert f"{model / 'metrics.json'} is not a metrics record DynaKD can add to" in capsys.readouterr().err
    (model / "metrics.json").unlink()
    assert main([*args, "--max-eval-samples", "8"]) == 0
    record = json.loads((model / "metrics.json").read_text())
    assert (record["max_eval_samples"], record["data_seed"]) == (8, 0)
    assert record["model_name_or_path"] == str(model)


def test_finetune_gives_a_classifier_of_another_label_count_a_new_head(tmp_path, capsys):
    """``finetune`` of a 3-label classifier on SST-2 was refused (`predicts 3 labels but task sst2 has 2`) with no way
    forward; it now starts from a new head of the task's size, as run_glue's --ignore_mismatched_sizes does. distill
    and evaluate still refuse such a model: its head cannot score the task."""
    from transformers import AutoConfig

    from tests.conftest import make_tiny_bert

    tiny3 = make_tiny_bert(tmp_path / "tiny3", layers=2, num_labels=3)
    config = AutoConfig.from_pretrained(tiny3)
    config.id2label = {0: "contradiction", 1: "neutral", 2: "entailment"}
    config.label2id = {v: k for k, v in config.id2label.items()}
    config.save_pretrained(tiny3)
    out = tmp_path / "run"
    assert main(["finetune", "--model", str(tiny3), "--task", "sst2", *FAST, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    note = f"note: {tiny3}'s head predicts 3 labels; finetune replaces it with a new 2-label head for sst2"
    assert printed.count(note) == 1 and "names its labels" not in printed
    saved = AutoConfig.from_pretrained(out)
    assert saved.num_labels == 2 and saved.id2label == {0: "negative", 1: "positive"}
    for command in (["evaluate", "--model", str(tiny3)], distill_args(tiny3, tmp_path / "student")[:-2]):
        assert main([*command, "--task", "sst2", "--synthetic", "--output", str(tmp_path / "other")]) == 2
        assert "predicts 3 labels but task sst2 has 2" in capsys.readouterr().err


def test_evaluate_files_a_score_under_its_own_model_only(tiny_teacher, tmp_path, capsys):
    """--output naming another model's run filed the score in that run's record, where it read as its own; the record
    did not name the model it scored, and a score in a folder of its own was replaced without a word."""
    run = tmp_path / "run"
    assert main(distill_args(tiny_teacher, run, "--method", "kd")) == 0
    args = ["evaluate", "--model", str(tiny_teacher), "--task", "sst2", "--synthetic", "--no-progress"]
    capsys.readouterr()
    assert main([*args, "--output", str(run)]) == 2
    assert f"--output {run} holds the run of another model: the score of {tiny_teacher} would be filed in that " \
           "run's record" in capsys.readouterr().err
    assert "evaluate" not in json.loads((run / "metrics.json").read_text())
    assert main(["evaluate", "--model", f"{run}/", "--output", str(run), "--no-progress"]) == 0  # its own, spelt so
    assert json.loads((run / "metrics.json").read_text())["evaluate"]["model_name_or_path"] == f"{run}/"
    scores = tmp_path / "scores"
    assert main([*args, "--output", str(scores)]) == 0
    assert main([*args, "--output", str(scores)]) == 0
    assert f"note: replacing the earlier score in {scores / 'metrics.json'}" in capsys.readouterr().out


def test_a_decoder_whose_tokenizer_has_no_padding_token_distils_and_its_student_reloads(tmp_path, capsys):
    """GPT-2 pads with nothing of its own: the first batch failed with "Asking to pad but the tokenizer does not have
    a padding token" (or, with one, "Cannot handle batch sizes > 1 if no padding token is defined"). It pads with its
    end-of-sequence token, and the saved student's tokenizer and config say so: it reloads and batches."""
    from transformers import AutoTokenizer

    from tests.conftest import make_tiny_gpt2

    teacher, out = make_tiny_gpt2(tmp_path / "gpt2"), tmp_path / "run"
    assert main(distill_args(teacher, out)) == 0
    printed = capsys.readouterr().out
    assert f"note: {teacher}: its tokenizer has no padding token: it pads with </s>" in printed
    student, tokenizer = AutoModelForSequenceClassification.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert tokenizer.pad_token == "</s>" and student.config.pad_token_id == tokenizer.pad_token_id
    batch = tokenizer(["a good film", "bad"], padding=True, return_tensors="pt")
    assert student.eval()(**batch).logits.shape == (2, 2)


def with_config(model: Path, folder: Path, **settings: Any) -> Path:
    """A copy of ``model`` whose config says ``settings`` too."""
    import shutil

    from transformers import AutoConfig

    shutil.copytree(model, folder)
    config = AutoConfig.from_pretrained(folder)
    for key, value in settings.items():
        setattr(config, key, value)
    config.save_pretrained(folder)
    return folder


def test_a_model_whose_config_returns_hidden_states_is_scored_on_its_logits(tiny_teacher, tmp_path, capsys):
    """A checkpoint whose config sets output_hidden_states (or output_attentions) returns them beside the logits: the
    predictions were a tuple and `evaluate` stopped on a numpy traceback (with attention maps of batches of other
    lengths, on one of torch.cat), as did the evaluation in training. It is scored on its logits, as run_glue does,
    and the extra outputs are not gathered over the dev set (every layer's, for every example)."""
    import numpy as np
    from transformers import EvalPrediction

    from dynakd.data import get_task
    from dynakd.runner import _metric_fn

    model = with_config(tiny_teacher, tmp_path / "model", output_hidden_states=True, output_attentions=True)
    scored = []
    for folder in (tiny_teacher, model):
        assert main(["evaluate", "--model", str(folder), "--task", "sst2", "--synthetic", "--max-eval-samples", "32",
                     "--max-seq-length", "32", "--no-progress", "--set", "eval_batch_size=8", "--output",
                     str(tmp_path / f"ev-{folder.name}")]) == 0
        scored.append(json.loads((tmp_path / f"ev-{folder.name}" / "metrics.json").read_text())["eval"])
    assert scored[1]["accuracy"] == scored[0]["accuracy"] and scored[1]["loss"] == pytest.approx(scored[0]["loss"])
    # the teacher scored, the student (of its config) evaluated in training and saved: transformers 5 saves no model
    # whose config asks for attention maps from sdpa attention, and the student copied its teacher's (a traceback)
    run = tmp_path / "run"
    assert main(distill_args(model, run, "--method", "kd", "--eval-steps", "2")) == 0
    record = json.loads((run / "metrics.json").read_text())
    assert 0 <= record["eval"]["accuracy"] <= 1 and record["teacher_eval"]["accuracy"] == scored[0]["accuracy"]
    saved = json.loads((run / "config.json").read_text())
    assert not saved.get("output_attentions") and not saved.get("output_hidden_states")
    assert "config asks every forward for output_hidden_states and output_attentions: off here" in \
        capsys.readouterr().out
    logits, labels = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([1, 1])  # predictions gathered whole: logits first
    assert _metric_fn(get_task("sst2"))(EvalPrediction((logits, np.zeros((2, 3, 4))), labels))["accuracy"] == 0.5


def test_evaluate_describes_the_model_as_a_run_does_and_returns_what_it_wrote(tiny_teacher, tmp_path):
    """evaluate's metrics.json held the model's path under `model`, where a run's record (and the RunResult evaluate
    returned) describes the model (parameters, layers, ...): the file and the result disagreed. Both hold the
    record now, the description under `model` and the path under `model_name_or_path`; a run folder's record written
    before (the path under `evaluate.model`) is still added to."""
    import shutil

    from dynakd import evaluate

    model = tmp_path / "model"
    shutil.copytree(tiny_teacher, model)
    result = evaluate({"model": str(model), "task": "sst2", "synthetic": True, "max_eval_samples": 8,
                       "progress": False})
    record = json.loads((model / "metrics.json").read_text())
    assert record == json.loads(json.dumps(result.metrics))
    assert record["model"]["layers"] == 4 and record["model"]["parameters"] > 0
    assert record["model_name_or_path"] == str(model) and record["command"] == "evaluate"
    run = tmp_path / "run"
    assert main(distill_args(tiny_teacher, run, "--method", "kd")) == 0
    earlier = json.loads((run / "metrics.json").read_text())
    old = {"command": "evaluate", "task": "sst2", "seed": 42, "eval": {"accuracy": 0.5}, "model": str(run)}
    (run / "metrics.json").write_text(json.dumps(earlier | {"evaluate": old}))
    result = evaluate({"model": str(run), "task": "sst2", "synthetic": True, "max_eval_samples": 8, "progress": False})
    record = json.loads((run / "metrics.json").read_text())
    assert record == earlier | {"evaluate": json.loads(json.dumps(result.metrics))}
    assert record["evaluate"]["model"] == record["model"] and record["evaluate"]["model_name_or_path"] == str(run)


def test_what_a_teacher_lends_is_said_once_the_config_is_accepted(tmp_path, capsys):
    """A distill command whose config is refused for a reason of its own says that alone: the lines on what the
    teacher's run lent came first, as if the run were starting. An accepted one says them (evaluate alike)."""
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "dynakd.yaml").write_text("task: mrpc\n")
    (teacher / "config.json").write_text("{}")  # (a model folder's form: a folder without one is named at once)
    assert main(["distill", "--teacher", str(teacher), "--lr", "-1", "--output", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert "lr" in err and "as the teacher" not in out
    from dynakd.runner import _lending

    cfg = _lending({"teacher": str(teacher)}, "distill")
    assert cfg.task == "mrpc" and "distill: task mrpc (as the teacher" in capsys.readouterr().out


def test_distill_says_when_a_config_file_gives_method_task(capsys):
    """A fine-tune's saved dynakd.yaml reused to distil gives method task: the student learned from labels alone, the
    teacher loaded and scored beside it, without a word."""
    import argparse

    from dynakd.cli.distill import _note_task_from_a_file
    from dynakd.config import build_config

    def note(cfg, **args) -> str:
        _note_task_from_a_file(argparse.Namespace(**({"config": "ft.yaml", "method": None, "set": []} | args)), cfg)
        return capsys.readouterr().out

    task = build_config({"method": "task", "teacher": "runs/t"})
    assert note(task) == ("note: ft.yaml gives method task: the student learns from labels alone, and the teacher "
                          "runs/t is scored beside it but teaches it nothing; give --method kd or full to distil\n")
    assert note(task, method="task") == note(task, set=["method=task"]) == note(task, config=None) == ""  # asked for
    assert note(build_config({"method": "kd", "teacher": "runs/t"})) == ""


def test_evaluate_given_a_runs_own_record_scores_where_it_would_without_it(tmp_path):
    """`evaluate --config runs/full/dynakd.yaml --model runs/kd` was refused for "--output runs/full holds the run of
    another model", an --output the command never gave: the file's output is its run's folder."""
    import argparse

    from dynakd.cli.evaluate import _a_runs_own_record

    run = tmp_path / "full"
    run.mkdir()
    (run / "dynakd.yaml").write_text(f"output: {run}\n")

    def own(config, output=None, sets=(), model="runs/kd") -> bool:
        return _a_runs_own_record(argparse.Namespace(config=str(config), output=output, set=list(sets), model=model))

    assert not own(run / "dynakd.yaml")  # an unfinished run: no record of a finished one (metrics.json)
    (run / "metrics.json").write_text("{}")
    assert own(run / "dynakd.yaml")
    assert not own(run / "dynakd.yaml", output="scores") and not own(run / "dynakd.yaml", sets=["output=x"])
    assert not own(run / "dynakd.yaml", model=None)  # the file's own model: its run's folder guards it
    (run / "dynakd.yaml").write_text("output: elsewhere/full\n")  # spelt from the folder the run ran in
    assert not own(run / "dynakd.yaml")
    (run / "dynakd.yaml").write_text(f"output: {tmp_path.name}/full\n")
    assert own(run / "dynakd.yaml")
    (tmp_path / "eval.yaml").write_text(f"output: {run}\n")  # a config file of one's own: its output is meant
    assert not own(tmp_path / "eval.yaml")
    (tmp_path / "scores").mkdir()  # ... so is one named dynakd.yaml beside an earlier score, for another folder
    (tmp_path / "scores" / "metrics.json").write_text("{}")
    (tmp_path / "scores" / "dynakd.yaml").write_text(f"output: {run}\n")
    assert not own(tmp_path / "scores" / "dynakd.yaml")


def test_old_records_of_data_a_run_never_read_compare_as_today(tmp_path, capsys):
    """A SQuAD run's record from before its unread GLUE folder was refused, and before its pooling was saved as
    ``auto``, is today's run: a resume compared it as another (data_dir, dynamics); an empty data path counts from
    nowhere; a recorded task spelt "SST-2" is no other task than sst2."""
    from dynakd.config import build_config
    from dynakd.lending import note_other_task
    from dynakd.rundir import config_differences, paths_from_where_it_ran

    old = {"task": "squad", "train_file": "a.json", "data_dir": "glue", "dynamics": {"pooling": "tokens"}}
    assert config_differences(old, build_config({"task": "squad", "train_file": "a.json"})) == []
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    saved = {"task": "sst2", "data_dir": "", "output": "runs/r"}
    assert paths_from_where_it_ran(saved, run) == saved  # (not the folder it ran in)
    (run / "dynakd.yaml").write_text("task: SST-2\n")
    note_other_task(run, "sst2", "teacher")
    assert capsys.readouterr().out == ""
    note_other_task(run, "mrpc", "teacher")
    assert f"note: the teacher {run} was trained on task sst2, this run is on mrpc" in capsys.readouterr().out


def test_a_run_resumed_from_another_folder_is_the_same_run(tmp_path, monkeypatch):
    """`--config ../a/runs/x/dynakd.yaml --output ../a/runs/x` from another folder: the file's data, found from
    there, was compared with the record's spelt from here, and the run refused as another (differs in: train_file).
    So was its teacher (a job requeued from another folder was told to --overwrite, which deletes its checkpoints)."""
    from dynakd.config import build_config, save_config
    from dynakd.rundir import check_output

    (tmp_path / "a" / "runs" / "x").mkdir(parents=True)
    (tmp_path / "a" / "teacher").mkdir()
    (tmp_path / "a" / "train.csv").write_text("text,label\n")
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    record = build_config({"task": "csv", "train_file": "train.csv", "teacher": "teacher", "student_layers": 1,
                           "output": "runs/x"})
    save_config(record, tmp_path / "a" / "runs" / "x" / "dynakd.yaml")
    (tmp_path / "a" / "runs" / "x" / "checkpoint-1").mkdir()  # (one stopped before it gives way to another run)
    monkeypatch.chdir(tmp_path / "b")
    again = build_config(record, train_file="../a/train.csv", teacher="../a/teacher", output="../a/runs/x")
    assert check_output(again, "distill") == Path("../a/runs/x")
    assert check_output(build_config(again, teacher=str(tmp_path / "a" / "teacher")), "distill") == Path("../a/runs/x")
    with pytest.raises(DynaKDError, match=r"differs in: train_file \.\./a/train\.csv -> \.\./b\.csv\)"):
        check_output(build_config(again, train_file="../b.csv"), "distill")
    (tmp_path / "b" / "teacher").mkdir()  # the same name here is another folder
    with pytest.raises(DynaKDError, match=r"differs in: teacher \.\./a/teacher -> teacher\)"):
        check_output(build_config(again, teacher="teacher"), "distill")


def test_metrics_json_says_what_was_compared_on_what(tiny_teacher, tmp_path):
    """metrics.json named neither the teacher nor the rows it was scored on: beside `evaluate`'s record of the whole
    dev set, a run's 200-row score read as the same thing."""
    out = tmp_path / "run"
    assert main(distill_args(tiny_teacher, out, "--max-eval-samples", "16")) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["teacher"] == str(tiny_teacher) and record["student"] is None
    assert (record["max_eval_samples"], record["data_seed"]) == (16, 0)


def test_evaluate_of_a_run_puts_its_scores_into_the_runs_card(tiny_teacher, tmp_path, capsys):
    """The run's card showed the run's scores alone (of its 16 dev rows, say) after `evaluate` scored the model on the
    whole split: the latest such score now has a section of its own, before "Training"."""
    out = tmp_path / "run"
    assert main(distill_args(tiny_teacher, out)) == 0
    before = (out / "README.md").read_text()
    assert "Scored with `dynakd evaluate`" not in before
    for rows in ("12", "8"):
        assert main(["evaluate", "--model", str(out), "--max-eval-samples", rows, "--no-progress"]) == 0
    card = (out / "README.md").read_text()
    assert card.count("## Scored with `dynakd evaluate`") == 1  # the latest one
    section = card[card.index("## Scored with"):card.index("## Training")]
    assert ("Scored on 8 rows (a seeded subset: the first 8 after datasets' `shuffle(seed=0)`, data_seed 0) of the "
            "evaluation split of synthetic data (sst2), inputs "
            "cut at") in section
    accuracy = json.loads((out / "metrics.json").read_text())["evaluate"]["eval"]["accuracy"]
    assert f"| validation | accuracy | {accuracy:.4g} |" in section
    assert card.replace(section, "") == before  # the rest as the run wrote it


def test_a_cap_at_or_above_the_evaluation_split_is_the_whole_split(tiny_teacher, tmp_path, capsys):
    """From a QA user's walkthrough (2026-12-07): --max-eval-samples 60 on a file of 60 questions scored them all, and
    the card called them a seeded subset, not the whole split, and a run from the model was told to cap its rows."""
    from huggingface_hub import ModelCard

    from dynakd.lending import teacher_task

    (tmp_path / "train.csv").write_text("t,y\n" + "".join(f"film {i} was {'good' if i % 2 else 'dull'},{i % 2}\n"
                                                          for i in range(16)))
    (tmp_path / "dev.csv").write_text("t,y\ngood film,1\ndull film,0\nfine,1\nbad,0\n")
    out = tmp_path / "ft"
    assert main(["finetune", "--model", str(tiny_teacher), "--task", "csv", "--train-file", str(tmp_path / "train.csv"),
                 "--validation-file", str(tmp_path / "dev.csv"), "--text-columns", "t", "--label-column", "y",
                 "--max-eval-samples", "4", "--max-steps", "2", "--no-progress", "--output", str(out)]) == 0
    assert "max_eval_samples" not in json.loads((out / "metrics.json").read_text())
    assert "not the whole split" not in ModelCard.load(out / "README.md").text
    capsys.readouterr()
    teacher_task(str(out), {})
    assert "subset" not in capsys.readouterr().out
    assert main(["evaluate", "--model", str(out), "--max-eval-samples", "3", "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["evaluate"]["max_eval_samples"] == 3  # (a subset: said)


def test_report_prints_run_folders_side_by_side(tiny_teacher, tmp_path, capsys):
    """From a user's walkthrough (2026-12-07): two runs made by hand, `kd` and `full`, had no table but one's own:
    report read a sweep's folder alone ("no results.jsonl ... run dynakd ablate first")."""
    for name, extra in (("kd", ["--method", "kd"]), ("full", ["--lr", "1e-4"])):
        assert main(distill_args(tiny_teacher, tmp_path / "runs" / name, *extra)) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "runs" / "kd"), str(tmp_path / "runs" / "full")]) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert lines[0] == "| run | method | lr | accuracy | teacher accuracy | layers | parameters | steps | train s |"
    for line, name, lr in ((lines[2], "kd", "5e-05"), (lines[3], "full", "0.0001")):
        metrics = json.loads((tmp_path / "runs" / name / "metrics.json").read_text())
        assert line.startswith(f"| {name} | {name} | {lr} | {100 * metrics['eval']['accuracy']:.2f} | "
                               f"{100 * metrics['teacher_eval']['accuracy']:.2f} | 2 | ")
        assert f" | {metrics['train']['steps']} | {metrics['train']['runtime_s']:.1f} |" in line
    assert "one seed a row" in lines[5]
    assert main(["report", str(tmp_path / "runs" / "kd"), str(tmp_path / "runs" / "kd") + "/"]) == 0
    once = capsys.readouterr().out.splitlines()  # one run named twice: one row
    assert once[2].startswith("| kd | kd | ") and once[3] == ""
    assert main(["report", str(tmp_path / "runs")]) == 0  # a folder of runs: the same table, the runs by name
    assert capsys.readouterr().out.splitlines()[2:4] == [lines[3], lines[2]]
    assert main(["report", str(tmp_path / "runs" / "kd"), str(tmp_path / "runs")]) == 2
    assert f"{tmp_path / 'runs'} holds no readable metrics.json: not a finished run" in capsys.readouterr().err
    # runs of two tasks: a table each
    (tmp_path / "other").mkdir()
    for f in ("dynakd.yaml", "metrics.json"):
        text = (tmp_path / "runs" / "kd" / f).read_text()
        (tmp_path / "other" / f).write_text(text.replace("sst2", "mrpc") if f == "dynakd.yaml" else
                                            json.dumps(json.loads(text) | {"task": "mrpc"}))
    assert main(["report", str(tmp_path / "runs" / "kd"), str(tmp_path / "other")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## mrpc\n\n| run | method |") and "\n## sst2\n\n| run | method |" in out
    # every score of the teacher beside the run's (MRPC's F1 too: the teacher's main score alone was shown, a user's
    # walkthrough), and a fine-tuned model's row named by its command, not the method task of its dynakd.yaml
    record = json.loads((tmp_path / "other" / "metrics.json").read_text())
    record["eval"]["f1"] = record["teacher_eval"]["f1"] = 0.5
    (tmp_path / "other" / "metrics.json").write_text(json.dumps(record | {"command": "finetune"}))
    assert main(["report", str(tmp_path / "other")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "| f1 | accuracy | teacher f1 | teacher accuracy |" in table[0]
    assert table[2].startswith("| other | finetune | ")
    assert table[2].count("| 50.00 |") == 2
    # runs of the same settings and length: not said to differ in their length (a review, 2026-12-07)
    import shutil

    shutil.copytree(tmp_path / "runs" / "kd", tmp_path / "again")
    assert main(["report", str(tmp_path / "runs" / "kd"), str(tmp_path / "again")]) == 0
    assert "- The runs' settings (`dynakd.yaml`) do not differ in what they train.\n" in capsys.readouterr().out
    saved = yaml.safe_load((tmp_path / "again" / "dynakd.yaml").read_text())
    saved["student_layers"], saved["max_steps"] = 1, saved["max_steps"] + 1  # (nor, of other depths, not differ)
    (tmp_path / "again" / "dynakd.yaml").write_text(yaml.safe_dump(saved))
    assert main(["report", str(tmp_path / "runs" / "kd"), str(tmp_path / "again")]) == 0  # (trained alike: steps,
    assert "do not differ in what they train." in capsys.readouterr().out  # layers as recorded, say epochs and steps)
    record = json.loads((tmp_path / "again" / "metrics.json").read_text())
    record["model"]["layers"], record["train"]["steps"] = 1, record["train"]["steps"] + 1
    (tmp_path / "again" / "metrics.json").write_text(json.dumps(record))
    assert main(["report", str(tmp_path / "runs" / "kd"), str(tmp_path / "again")]) == 0
    assert "differ only in `max_steps`, `student_layers` (the layers and steps columns)." in capsys.readouterr().out


def test_report_of_runs_names_a_setting_one_run_left_unset(tmp_path, capsys):
    """A setting unset in one run and set in another (max_train_samples, hidden_weight, dynamics.token_sample) was
    left out of the table, which then said the settings did not differ (a review, 2026-12-07)."""
    for name, extra in (("a", {}), ("b", {"max_train_samples": 500, "hidden_weight": 1.0})):
        run = tmp_path / name
        run.mkdir()
        (run / "dynakd.yaml").write_text(yaml.safe_dump({"task": "sst2", "method": "full", **extra}))
        (run / "metrics.json").write_text(json.dumps({"task": "sst2", "eval": {"accuracy": 0.8}}))
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("| run | method | hidden_weight | max_train_samples | accuracy | layers | parameters | steps | "
                        "train s |")
    assert lines[2] == "| a | full | unset | unset | 80.00 |  |  |  |  |"
    assert lines[3] == "| b | full | 1 | 500 | 80.00 |  |  |  |  |"  # (hidden_weight's schedule: constant 1)
    assert not any("do not differ" in line for line in lines)
    # the models (a user's walkthrough): a student of the teacher's layers as such, a model a command took none of
    for name, extra in (("c", {"teacher": "t"}), ("d", {"teacher": "t", "student": "/x/minilm"}),
                        ("e", {"model": "m", "method": "task"})):
        run = tmp_path / "models" / name
        run.mkdir(parents=True)
        (run / "dynakd.yaml").write_text(yaml.safe_dump({"task": "sst2", "method": "full", **extra}))
        (run / "metrics.json").write_text(json.dumps({"task": "sst2", "eval": {"accuracy": 0.8}}))
    assert main(["report", str(tmp_path / "models")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| run | method | teacher | student | model | accuracy |")
    assert [line.split(" | ")[2:5] for line in lines[2:5]] == [["t", "teacher's layers", "none"],  # (said unset)
                                                                ["t", "minilm", "none"], ["none", "none", "m"]]


def test_report_of_runs_gives_an_aligners_setting_only_where_the_aligner_reads_it(tmp_path, capsys):
    """OT runs showed attention's align.relative in the table (a user's walkthrough, 2026-12-08): noted as unread
    when they ran, and no difference between two runs."""
    for name, align in (("att", {"name": "attention", "relative": True}), ("att0", {"name": "attention"}),
                        ("ot", {"name": "ot", "relative": True, "order_prior": 1.0})):
        run = tmp_path / name
        run.mkdir()
        (run / "dynakd.yaml").write_text(yaml.safe_dump({"task": "sst2", "method": "full", "align": align}))
        (run / "metrics.json").write_text(json.dumps({"task": "sst2", "eval": {"accuracy": 0.8}}))
    assert main(["report", *(str(tmp_path / n) for n in ("att", "att0", "ot"))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| run | method | align.name | align.relative | align.order_prior | accuracy |")
    assert [line.split(" | ")[2:5] for line in lines[2:5]] == [["attention", "true", "0.0"],
                                                                ["attention", "false", "0.0"], ["ot", "-", "1.0"]]


def test_a_teacher_and_a_report_folder_given_with_a_tilde_are_found(tiny_teacher, tmp_path, monkeypatch, capsys):
    """From a batch user's walkthrough (2026-12-07): `--teacher=~/T` (which the shell leaves as written) was "model
    folder not found: ~/T", and `dynakd report '~/run'` "no folder", while --output and --data-dir expanded it."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "T").symlink_to(tiny_teacher)
    assert main(distill_args("~/T", "~/run")) == 0
    assert (tmp_path / "run" / "model.safetensors").is_file()
    capsys.readouterr()
    assert main(["report", "~/run"]) == 0
    assert capsys.readouterr().out.startswith("| run |")
