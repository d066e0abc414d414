"""The model card (README.md) saved beside every trained model: Hub metadata, provenance, results, how to rerun."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from dynakd.card import write_model_card
from dynakd.cli import main
from dynakd.config import build_config
from dynakd.data.tasks import get_task

from .test_cli import FAST, distill_args


def test_a_distilled_model_has_a_card_that_reruns_it(tiny_teacher, tmp_path, capsys):
    teacher = shutil.copytree(tiny_teacher, tmp_path / "teacher")
    ModelCard("---\nbase_model: google-bert/bert-base-uncased\nlicense: apache-2.0\n---\n# teacher\n").save(
        teacher / "README.md")
    out = tmp_path / "student"
    assert main(distill_args(teacher, out, "--method", "kd")) == 0
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-classification"
    assert "knowledge-distillation" in card.data.tags
    assert card.data.base_model == "google-bert/bert-base-uncased"  # passed on from the teacher's own card
    assert card.data.license == "apache-2.0"  # so is the license the weights came under
    # the scores are of part of a split, and the card says so
    assert ("Scored on 32 rows (a seeded subset: the first 32 after datasets' `shuffle(seed=0)`, data_seed 0) of the "
            "evaluation split, not the whole split") in card.text
    assert "| training rows | 48, a seeded subset (the first 48 after datasets' `shuffle(seed=0)`, data_seed 0) |" \
        in card.text
    assert card.data.datasets is None and card.data.eval_results is None  # the synthetic corpus: nothing to publish
    assert ("distilled with DynaKD from the teacher `teacher` (a local folder, fine-tuned from "
            "`google-bert/bert-base-uncased`)") in card.text and "method `kd`" in card.text
    assert str(tmp_path) not in card.text  # the machine's paths stay off a card that may be published
    assert "| split | metric | this model | teacher |" in card.text and "| validation | accuracy |" in card.text
    # the card says the run can be trained again from its dynakd.yaml: it can
    again = tmp_path / "again"
    assert main(["distill", "--config", str(out / "dynakd.yaml"), "--output", str(again), "--no-progress"]) == 0
    assert (again / "README.md").is_file()
    assert "started from 2 evenly spaced teacher layers (1 and 4, counted from 1; student_layer_ids 0, 3)" \
        in card.text  # (which ones: it said not)
    # what each model is: a teacher and a student of two architectures and widths said nothing of them
    assert "(teacher BertForSequenceClassification, 4 layers x 32; student BertForSequenceClassification, 2 layers " \
        "x 32.)" in card.text
    assert "logit-KD temperature" in card.text
    assert "| batch size | 16 |" in card.text


def test_a_finetuned_model_names_its_hub_base(tiny_teacher, tmp_path):
    out = tmp_path / "ft"
    assert main(["finetune", "--model", str(tiny_teacher), "--task", "sst2", *FAST, "--output", str(out)]) == 0
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model is None and card.data.license is None  # a local folder without a card
    assert "fine-tuned with DynaKD from" in card.text and "knowledge-distillation" not in card.data.tags


def scored_card(tmp_path, task: str, evaluated: dict, **cfg) -> ModelCard:
    config = build_config({"task": task, "teacher": "org/teacher", "student_layers": 2, **cfg})
    metrics = {"eval": evaluated, "teacher_eval": {k: v if v is None else v + 0.01 for k, v in evaluated.items()},
               "model": {"layers": 2, "parameters": 4_000_000}, "train": {"processes": 1}}
    (tmp_path / "out").mkdir(exist_ok=True)
    return ModelCard.load(write_model_card(tmp_path / "out", "distill", config, get_task(task), metrics))


def test_whole_public_validation_splits_become_hub_results(tmp_path):
    card = scored_card(tmp_path, "mnli", {"loss": 0.5, "validation_matched_accuracy": 0.81,
                                          "validation_mismatched_accuracy": 0.82})
    assert card.data.base_model == "org/teacher" and card.data.datasets == ["nyu-mll/glue"]
    results = {(r.dataset_type, r.dataset_config, r.dataset_split, r.metric_type): r.metric_value
               for r in card.data.eval_results}
    assert results == {("nyu-mll/glue", "mnli", "validation_matched", "accuracy"): 0.81,
                       ("nyu-mll/glue", "mnli", "validation_mismatched", "accuracy"): 0.82}
    assert "| validation_matched | accuracy | 0.81 | 0.82 |" in card.text
    squad = scored_card(tmp_path, "squad", {"exact_match": 70.5, "f1": 80.25})
    assert {(r.dataset_type, r.metric_type, r.metric_value) for r in squad.data.eval_results} == {
        ("rajpurkar/squad", "exact_match", 70.5), ("rajpurkar/squad", "f1", 80.25)}
    assert squad.data.pipeline_tag == "question-answering"
    # transformers 5 has no question-answering pipeline: the card loads the model class instead
    assert "AutoModelForQuestionAnswering.from_pretrained(" in squad.text and "pipeline(" not in squad.text


def test_a_data_dir_is_published_as_glue_only_where_its_files_hold_glues_rows(tmp_path):
    """A copy of GLUE's files (as many rows as the hub's validation split) is GLUE's; files of one's own in its layout,
    or a copy with a row skipped, are not (a user's walkthrough, 2026-12-07: 60 rows were published as GLUE MNLI)."""
    glue = scored_card(tmp_path, "sst2", {"accuracy": 0.8}, data_dir=str(tmp_path / "data"))
    assert glue.data.eval_results is None and glue.data.datasets is None  # (rows not recorded: not claimed)
    for rows, published in (({"validation": 872}, True), ({"validation": 871}, False)):
        config = build_config({"task": "sst2", "teacher": "org/teacher", "student_layers": 2,
                               "data_dir": str(tmp_path / "data")})
        metrics = {"eval": {"accuracy": 0.8}, "eval_split_rows": rows, "model": {"layers": 2, "parameters": 4e6}}
        card = ModelCard.load(write_model_card(tmp_path / "out", "distill", config, get_task("sst2"), metrics))
        assert (card.data.eval_results is not None) == published
        assert (card.data.datasets == ["nyu-mll/glue"]) == published
        assert ("on GLUE SST-2" in card.text) == published
        assert ("SST-2 files of the local folder `data`" in card.text) == (not published)
    assert "871 rows in validation, where GLUE's holds 872): these are not the dataset's published" in card.text


def test_scores_on_part_of_a_split_are_not_published_as_the_datasets(tmp_path):
    card = scored_card(tmp_path, "sst2", {"accuracy": 0.9}, max_eval_samples=100)
    assert card.data.eval_results is None and card.data.datasets == ["nyu-mll/glue"] and not card.data.model_name
    assert "| validation | accuracy | 0.9 | 0.91 |" in card.text  # the text still shows them
    card = scored_card(tmp_path, "sst2", {"accuracy": 0.9}, dev_split=0.5)
    assert card.data.eval_results is None
    assert "on 50% of the GLUE SST-2 validation split" in card.text
    assert "| validation (50% held out) | accuracy | 0.9 | 0.91 |" in card.text


def test_a_users_file_split_for_dev_and_mixed_precision_are_named(tmp_path, monkeypatch):
    """A csv/json file cut by --dev-split was called 'the GLUE csv validation split'; a bf16 run's scores come from
    bf16; ``--output .`` gave the card an empty title."""
    card = scored_card(tmp_path, "csv", {"accuracy": 0.9}, validation_file="d.csv", dev_split=0.5, text_columns=["t"])
    assert "on 50% of `d.csv`" in card.text
    card = scored_card(tmp_path, "csv", {"accuracy": 0.9}, train_file="d.csv", dev_split=0.5, text_columns=["t"])
    assert "on 50% of `d.csv`" in card.text
    assert "| mixed precision | bf16 |" in scored_card(tmp_path, "sst2", {"accuracy": 0.9}, bf16=True).text
    monkeypatch.chdir(tmp_path / "out")
    config = build_config({"task": "sst2", "teacher": "org/teacher", "student_layers": 2})
    card = ModelCard.load(write_model_card(Path("."), "distill", config, get_task("sst2"), {"eval": {}}))
    assert card.text.lstrip().startswith("# out\n")


def test_a_score_that_could_not_be_computed_is_no_published_result(tmp_path, monkeypatch):
    """A correlation on constant predictions (NaN; null in metrics.json) went into the card's model-index as .nan and
    its table as nan; a teacher given as `.` was named ``."""
    card = scored_card(tmp_path, "stsb", {"pearson": float("nan"), "spearmanr": None})
    assert card.data.eval_results is None
    assert "| validation | pearson | n/a (could not be computed) |" in card.text
    from dynakd.card import model_ref

    (tmp_path / "teacher").mkdir()
    monkeypatch.chdir(tmp_path / "teacher")
    assert model_ref(".") == "`teacher` (a local folder)"


def test_a_pushed_card_is_headed_by_its_repository_and_cuts_inputs_as_training_did(tmp_path):
    """A pushed card's title was its local folder's name (`# out` on the hub page of me/my-model); its snippet let
    the pipeline read past the run's max_seq_length (other scores than the card's; an error past 512 tokens); a
    multi-class file's metric id was macro_f1, which the Hub does not know."""
    card = scored_card(tmp_path, "sst2", {"accuracy": 0.9}, push_to_hub="me/my-model", max_seq_length=64)
    assert card.text.lstrip().startswith("# my-model\n") and card.data.model_name == "my-model"
    assert 'pipeline("text-classification", model="me/my-model", truncation=True, max_length=64)' in card.text
    squad = scored_card(tmp_path, "squad", {"exact_match": 70.5, "f1": 80.25}, max_seq_length=384)
    assert 'tokenizer(question, context, truncation="only_second", max_length=384, stride=128,' in squad.text
    config = build_config({"task": "csv", "teacher": "org/teacher", "student_layers": 2, "train_file": "d.csv",
                           "text_columns": ["t"]})
    card = ModelCard.load(write_model_card(tmp_path / "out", "distill", config, get_task("csv", num_labels=3),
                                           {"eval": {"accuracy": 0.9, "macro_f1": 0.8}}))
    assert card.data.metrics == ["accuracy", "f1"] and "| validation | macro_f1 | 0.8 |" in card.text


def test_the_length_row_counts_in_the_singular_too(tmp_path):
    assert "| length | 1 epoch |" in scored_card(tmp_path, "sst2", {"accuracy": 0.9}, epochs=1).text  # was "1 epochs"
    assert "| length | 2.5 epochs |" in scored_card(tmp_path, "sst2", {"accuracy": 0.9}, epochs=2.5).text
    assert "| length | 1 step |" in scored_card(tmp_path, "sst2", {"accuracy": 0.9}, max_steps=1).text


def test_hub_metric_ids_and_student_layer_ids(tmp_path):
    card = scored_card(tmp_path, "stsb", {"pearson": 0.8, "spearmanr": 0.79}, student_layers=None,
                       student_layer_ids=[0, 5], method="dynamics", gradient_accumulation_steps=2)
    assert "| batch size | 64 (32 per device x 2 accumulation step(s) x 1 process(es)) |" in card.text
    assert card.data.metrics == ["pearsonr", "spearmanr"]
    assert {r.metric_type for r in card.data.eval_results} == {"pearsonr", "spearmanr"}
    assert "started from teacher layers 1 and 6, counted from 1; student_layer_ids 0, 5." in card.text \
        and "layer aligner `ot`" in card.text
    assert "temperature" not in card.text  # method dynamics has no logit KD


class FakeHub:
    """Stands in for ``HfApi`` (no network in tests): records what would be created and uploaded."""

    calls: list = []

    def whoami(self):
        return {"name": "me"}

    def repo_info(self, repo_id):
        raise HTTPError(f"404 Client Error: Repository Not Found for url: https://huggingface.co/api/models/{repo_id}",
                        404)

    def create_repo(self, repo_id, **kwargs):
        from huggingface_hub import RepoUrl

        self.calls.append(("create_repo", repo_id, kwargs))
        return RepoUrl(f"https://huggingface.co/{repo_id if '/' in repo_id else 'me/' + repo_id}")

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))


@pytest.fixture
def online(monkeypatch):
    import huggingface_hub

    from dynakd import hub

    FakeHub.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    monkeypatch.setattr(hub, "offline_unless_reachable", lambda: False)
    return monkeypatch


def uploaded(kwargs: dict) -> list[str]:
    """The files of an ``upload_folder`` call's folder that its patterns let through, as the hub client filters."""
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(kwargs["folder_path"])
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(files, allow_patterns=kwargs.get("allow_patterns"),
                                    ignore_patterns=kwargs.get("ignore_patterns")))


def test_push_to_hub_uploads_the_finished_folder(tiny_teacher, tmp_path, online, capsys):
    """A bare repository name was uploaded as it was (create_repo made user/name; the upload named no owner), and the
    card named it so; a file of the user's beside the run (a log, notes holding a token) was published, and the
    commit message (public) named the teacher by its absolute path."""
    out = tmp_path / "student"
    for mine in ("notes.txt", "notes/secret.model", "tokenizers/x.txt", "backup/model.safetensors"):
        (out / mine).parent.mkdir(parents=True, exist_ok=True)
        (out / mine).write_text("HF_TOKEN=hf_secret")  # (the client's patterns: * crosses /)
    assert main(distill_args(tiny_teacher, out, "--method", "kd", "--push-to-hub", "student", "--hub-private",
                             "--keep-checkpoints", "--save-steps", "2")) == 0
    (create, repo, options), (upload, kwargs) = FakeHub.calls
    assert (create, repo, options) == ("create_repo", "me/student", {"private": True, "exist_ok": True})
    assert upload == "upload_folder" and kwargs["repo_id"] == "me/student" and kwargs["folder_path"] == out
    sent = uploaded(kwargs)
    assert not any(f.startswith(("notes", "tokenizers/", "backup/", "checkpoint-")) for f in sent) and any(
        out.glob("checkpoint-*"))  # kept, not pushed
    assert {"model.safetensors", "config.json", "README.md", "dynakd.yaml", "metrics.json", "tokenizer.json"} <= set(
        sent) and any(f.startswith("runs/") for f in sent)
    assert kwargs["commit_message"] == (f"dynakd distill on sst2: method `kd` from `{tiny_teacher.name}` (a local "
                                        "folder)")
    assert f"pushed {out} to https://huggingface.co/me/student" in capsys.readouterr().out
    assert ('pipeline("text-classification", model="me/student", truncation=True, max_length=32)'
            in (out / "README.md").read_text())
    assert "push_to_hub: null" in (out / "dynakd.yaml").read_text()  # rerunning it from there does not push again


@pytest.mark.parametrize("repo, token, offline, message", [
    ("a/b/c", "hf_test", False, "--push-to-hub 'a/b/c' is not a hub repository id (name or namespace/name)"),
    ("me/student", None, False, "--push-to-hub needs a Hugging Face token: run `hf auth login` or set HF_TOKEN"),
    ("me/student", "hf_test", True, "--push-to-hub needs the hub, which cannot be reached from here (or "
                                    "HF_HUB_OFFLINE is set); train without it and upload the folder later"),
])
def test_a_push_that_cannot_work_is_refused_before_training(tiny_teacher, tmp_path, online, capsys, repo, token,
                                                            offline, message):
    import huggingface_hub

    from dynakd import hub

    online.setattr(huggingface_hub, "get_token", lambda: token)
    online.setattr(hub, "offline_unless_reachable", lambda: offline)
    out = tmp_path / "student"
    assert main(distill_args(tiny_teacher, out, "--push-to-hub", repo)) == 2
    assert message in capsys.readouterr().err and not out.exists() and not FakeHub.calls


class HTTPError(Exception):
    """Like the hub client's HTTP errors, which carry the response."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.response = type("Response", (), {"status_code": status})()


def test_a_refused_token_is_found_before_training(tiny_teacher, tmp_path, online, capsys):
    def refuse(self):
        raise HTTPError("401 Client Error: Unauthorized for url: https://huggingface.co/api/whoami-v2", 401)

    online.setattr(FakeHub, "whoami", refuse)
    out = tmp_path / "student"
    assert main(distill_args(tiny_teacher, out, "--push-to-hub", "me/student")) == 2
    err = capsys.readouterr().err
    assert ("--push-to-hub: the hub refused the token (401 Client Error: Unauthorized for url: "
            "https://huggingface.co/api/whoami-v2); run `hf auth login` again or set HF_TOKEN") in err
    assert not out.exists()


def test_a_connection_that_fails_the_token_check_is_not_blamed_on_the_token(tiny_teacher, tmp_path, online, capsys):
    """Behind a proxy (no reachability check) a proxy that was down was reported as a refused token."""
    def fail(self):
        raise ConnectError("[Errno 111] Connection refused")

    online.setattr(FakeHub, "whoami", fail)
    assert main(distill_args(tiny_teacher, tmp_path / "student", "--push-to-hub", "me/student")) == 2
    err = capsys.readouterr().err
    assert ("--push-to-hub: the hub could not check the token ([Errno 111] Connection refused); check the connection "
            "(and proxy settings)") in err and "hf auth login" not in err


def test_a_private_push_to_an_existing_public_repository_is_refused_before_training(tiny_teacher, tmp_path, online,
                                                                                   capsys):
    """--hub-private went on in silence to a public repository (create_repo keeps an existing one's visibility)."""
    def info(self, repo_id):
        assert repo_id == "me/student"  # the whole id, after the token's user was added
        return type("Info", (), {"private": False})()

    online.setattr(FakeHub, "repo_info", info)
    out = tmp_path / "student"
    assert main(distill_args(tiny_teacher, out, "--push-to-hub", "student", "--hub-private")) == 2
    assert ("--hub-private: me/student exists and is public, and a push does not change that"
            in capsys.readouterr().err) and not out.exists() and not FakeHub.calls
    assert main(distill_args(tiny_teacher, out, "--method", "kd", "--push-to-hub", "student")) == 0  # not private


def test_a_private_push_is_not_sent_to_a_repository_that_may_be_public(tiny_teacher, tmp_path, online, capsys):
    """Any failure of the visibility check (a timeout, a 5xx) counted as 'not public' and the run went on; and a
    repository made public during training got the private run's files."""
    def unsure(self, repo_id):
        raise ConnectError("timed out")

    online.setattr(FakeHub, "repo_info", unsure)
    out = tmp_path / "student"
    assert main(distill_args(tiny_teacher, out, "--push-to-hub", "student", "--hub-private")) == 2
    assert ("--hub-private: cannot tell whether me/student exists and is public (timed out)"
            in capsys.readouterr().err) and not out.exists()

    answers = iter([HTTPError("404 Client Error", 404), type("Info", (), {"private": False})()])

    def made_public(self, repo_id):  # absent before training, public by the upload
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    online.setattr(FakeHub, "repo_info", made_public)
    assert main(distill_args(tiny_teacher, out, "--method", "kd", "--push-to-hub", "student", "--hub-private")) == 2
    err = capsys.readouterr().err
    assert (f"the model is saved in {out}, but not pushed: me/student is public, and the run asked for a private "
            "repository; make it private on the hub, then upload with `hf upload me/student") in err
    assert [call[0] for call in FakeHub.calls] == ["create_repo"] and (out / "model.safetensors").is_file()


class ConnectError(Exception):
    """Like the hub client's connection errors (httpx's), which are not OSErrors."""


def test_a_failed_push_keeps_the_model_and_says_how_to_retry(tiny_teacher, tmp_path, online, capsys):
    def refuse(self, **kwargs):
        raise ConnectError("[Errno 104] Connection reset by peer")

    online.setattr(FakeHub, "upload_folder", refuse)
    out = tmp_path / "student"
    assert main(distill_args(tiny_teacher, out, "--method", "kd", "--push-to-hub", "me/student")) == 2
    err = capsys.readouterr().err
    assert (f"the model is saved in {out}, but pushing it to me/student failed: [Errno 104] Connection reset by peer; "
            f"retry with `hf upload me/student {out} --include=") in err and " --include=dynakd.yaml " in err
    assert "'--exclude=checkpoint-*'" in err and "--private" not in err  # (a private run's retry stays private)
    assert (out / "model.safetensors").is_file()


def test_the_cards_usage_shows_a_pair_and_says_what_a_regression_score_is():
    """A pair's two texts go in one dict (given as two strings the pipeline reads two inputs); a regression model's
    score is its prediction, not a probability."""
    from dynakd.card import _usage
    from dynakd.data import get_task

    def usage(task, length):
        return _usage(get_task(task), "runs/s", build_config({"task": task, "max_seq_length": length}))

    pair = usage("mrpc", 128)
    assert pair[-1] == 'classifier({"text": "<sentence1>", "text_pair": "<sentence2>"})  # a pair: sentence1 first'
    regression = usage("stsb", 128)
    assert regression[-1] == "# regression: each answer's score is the predicted value (no softmax)"
    assert not any("text_pair" in line or "regression" in line for line in usage("sst2", 64))


def test_evaluates_section_names_a_train_file_that_dev_split_cut(tmp_path):
    """A csv run of a train file alone (``dev_split`` holds its evaluation rows out) was said scored "of GLUE csv"."""
    from dynakd.card import add_evaluation

    (tmp_path / "README.md").write_text("# m\n\n## Training\n\nx\n")
    cfg = build_config({"task": "csv", "train_file": str(tmp_path / "reviews.csv"), "dev_split": 0.1})
    add_evaluation(tmp_path, cfg, get_task("csv"), {"eval": {"accuracy": 0.5}})
    text = (tmp_path / "README.md").read_text()
    assert "of `reviews.csv` (csv)" in text and "GLUE" not in text


def test_a_task_only_student_is_not_called_distilled_and_a_hand_written_map_is_named(tmp_path):
    """From a user's walkthrough (2026-12-07): a `task` run's card said the student was distilled from the teacher,
    and a fixed map given as align.layers was named only as `fixed`."""
    task = scored_card(tmp_path, "sst2", {"accuracy": 0.8}, method="task")
    assert ("student trained with DynaKD on GLUE SST-2 with the task's loss alone (method `task`, no distillation), "
            "built from layers of `org/teacher`.") in task.text and "distilled" not in task.text
    fixed = scored_card(tmp_path, "sst2", {"accuracy": 0.8}, align={"name": "fixed", "layers": [1, 4]})
    assert "method `full`, layer aligner `fixed` (teacher layers 1, 4, 1-based)." in fixed.text
    drawn = scored_card(tmp_path, "sst2", {"accuracy": 0.8}, align={"name": "fixed", "fixed_map": "random"}, seed=3)
    assert "method `full`, layer aligner `fixed` (the random map drawn by seed 3)." in drawn.text


def test_a_distilled_student_named_as_a_teacher_is_not_called_fine_tuned(tmp_path):
    """From a user's walkthrough (2026-12-07): a student distilled from another student's folder named that folder
    'fine-tuned from' the hub model its weights came from."""
    from dynakd.card import model_ref

    scored_card(tmp_path, "sst2", {"accuracy": 0.8})  # (a distilled student's card, in tmp_path / "out")
    assert model_ref(str(tmp_path / "out")) == ("`out` (a local folder, a student distilled with DynaKD; its "
                                                "weights started from `org/teacher`)")


def test_a_small_models_size_is_not_called_zero(tmp_path):
    """A user's walkthrough: a tiny model's card said it was a "0.0M-parameter" student."""
    from dynakd.card import write_model_card

    config = build_config({"task": "sst2", "teacher": "org/teacher", "student_layers": 2})
    metrics = {"eval": {"accuracy": 0.5}, "model": {"layers": 2, "parameters": 51_234}, "train": {"processes": 1}}
    (tmp_path / "out").mkdir()
    text = write_model_card(tmp_path / "out", "distill", config, get_task("sst2"), metrics).read_text()
    assert "2-layer, 0.0512M-parameter student" in text
    from dynakd.card import parameters_said

    assert [parameters_said(n) for n in (15_616_130, 999_600_000, 1.1e9)] == ["15.6M", "1B", "1.1B"]  # (not 1e+03M)
