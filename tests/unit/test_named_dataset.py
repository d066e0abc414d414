"""Task 'dataset': a dataset by name (the hub's, or a local folder), read through datasets.load_dataset /
load_from_disk, its splits and columns chosen and its ClassLabel names kept."""

from __future__ import annotations

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from dynakd.config import build_config, validate
from dynakd.data.load import load_data
from dynakd.errors import DynaKDError

ROWS = 12


def _rows(labels):
    return {"text": [f"good {i}" if i % 2 else f"bad {i}" for i in range(ROWS)], "label": labels,
            "idx": list(range(ROWS))}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A folder save_to_disk wrote, as imdb's splits are: train and test labelled neg/pos, unsupervised unlabelled."""
    folder = tmp_path_factory.mktemp("data") / "reviews"
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"]), "idx": Value("int32")})
    labelled = _rows([i % 2 for i in range(ROWS)])
    DatasetDict({"train": Dataset.from_dict(labelled, features=features),
                 "test": Dataset.from_dict(labelled, features=features),
                 "unsupervised": Dataset.from_dict(_rows([-1] * ROWS), features=features)}).save_to_disk(folder)
    return folder


def _load(**settings):
    return load_data(validate(build_config({"task": "dataset", **settings})))


def test_a_saved_dataset_keeps_its_class_names_and_finds_its_text_column(saved, capsys):
    task, data = _load(dataset=str(saved), eval_split="test")
    assert task.name == "dataset" and task.num_labels == 2 and task.label_names == ("neg", "pos")
    assert {k: len(v) for k, v in data.items()} == {"train": ROWS, "validation": ROWS}
    assert data["train"].column_names == ["text_a", "label"]  # (idx, numbers, is no text column)
    assert data["train"]["text_a"][:2] == ["bad 0", "good 1"]
    assert "text column 'text'" in capsys.readouterr().out


def test_split_expressions_and_a_dev_split(saved):
    _, data = _load(dataset=str(saved), train_split="train[:50%]", eval_split="test[2:5]")
    assert {k: len(v) for k, v in data.items()} == {"train": ROWS // 2, "validation": 3}
    _, data = _load(dataset=str(saved), eval_split="train", dev_split=0.5)
    assert len(data["train"]) + len(data["validation"]) == ROWS


def test_a_folder_of_data_files(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    for split in ("train", "validation"):
        Dataset.from_dict({"review": ["a", "b", "c", "d"], "stars": [1.0, 2.5, 3.0, 4.5]}).to_csv(
            folder / f"{split}.csv", index=False)
    task, data = _load(dataset=str(folder), text_columns=["review"], label_column="stars")
    assert task.is_regression and len(data["validation"]) == 4


@pytest.mark.parametrize("settings, words", [
    ({}, ["split validation", "Unknown split", "--eval-split test", "--dev-split 0.9"]),
    ({"eval_split": "test", "train_split": "trian"}, ["split trian", "--train-split"]),
    ({"eval_split": "unsupervised"}, ["(unsupervised split) holds rows without a label (-1", "--eval-split"]),
    ({"eval_split": "test", "train_split": "unsupervised"}, ["without a label (-1", "--train-split"]),
    ({"eval_split": "test", "dataset_config": "plain_text"}, ["has no configs: leave --dataset-config"]),
    ({"eval_split": "test", "text_columns": ["body"]}, ["no column 'body'", "text, label, idx"]),
])
def test_what_a_dataset_is_refused_for(saved, settings, words):
    with pytest.raises(DynaKDError) as e:
        _load(dataset=str(saved), **settings)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_a_hub_dataset_out_of_reach_is_said(monkeypatch):
    monkeypatch.setattr("dynakd.hub.offline", lambda: True)
    monkeypatch.setattr("dynakd.hub.offline_unless_reachable", lambda: True)

    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'someone/reviews' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr("datasets.load_dataset", unreachable)
    with pytest.raises(DynaKDError, match="dataset someone/reviews.*not in the local Hugging Face cache"):
        _load(dataset="someone/reviews")


@pytest.mark.parametrize("settings, message", [
    ({"task": "dataset"}, "--task dataset needs --dataset NAME"),
    ({"task": "dataset", "dataset": "imdb", "train_file": "a.csv"}, "not --train-file: files of your own"),
    ({"task": "dataset", "dataset": "imdb", "synthetic": True}, "choose one of --synthetic and --dataset"),
    ({"task": "sst2", "dataset": "imdb"}, "--dataset names a dataset of your own, which --task dataset reads"),
    ({"task": "csv", "eval_split": "test"}, "--eval-split names a dataset of your own"),
])
def test_dataset_settings_belong_to_task_dataset(settings, message):
    with pytest.raises(DynaKDError, match=message):
        validate(build_config(settings))


def test_a_models_other_names_read_a_datasets_classes_by_their_ids(saved, tmp_path, capsys):
    from transformers import BertConfig

    model = tmp_path / "model"
    BertConfig(architectures=["BertForSequenceClassification"], id2label={0: "NEGATIVE", 1: "POSITIVE"},
               label2id={"NEGATIVE": 0, "POSITIVE": 1}).save_pretrained(model)
    task, data = load_data(validate(build_config({"task": "dataset", "dataset": str(saved), "eval_split": "test"})),
                           labels_of=str(model))
    assert task.label_names == ("NEGATIVE", "POSITIVE") and data["validation"]["label"][:2] == [0, 1]
    assert "read by their ids, neg as NEGATIVE, pos as POSITIVE" in capsys.readouterr().out


def test_label_names_the_dataset_does_not_number_are_matched_by_name(tmp_path):
    """Labels written as text (no ClassLabel) were numbered in sorted order and then read by those ids against a
    model's other names: 'great' as negative, a score inverted."""
    from transformers import BertConfig

    folder = tmp_path / "words"
    DatasetDict({"validation": Dataset.from_dict({"text": ["a", "b"], "rating": ["terrible", "great"]})}
                ).save_to_disk(folder)
    model = tmp_path / "model"
    BertConfig(architectures=["BertForSequenceClassification"], id2label={0: "negative", 1: "positive"},
               label2id={"negative": 0, "positive": 1}).save_pretrained(model)
    cfg = validate(build_config({"task": "dataset", "dataset": str(folder), "label_column": "rating"}))
    with pytest.raises(DynaKDError, match="'great', 'terrible' of the data are not among the labels"):
        load_data(cfg, train=False, labels_of=str(model))


@pytest.mark.parametrize("train, validation, message", [
    (["neg", "pos"], [0, 1], "holds names in .*train split.* but numbers in"),
    (ClassLabel(names=["neg", "pos"]), ["neg", "pos"], "holds classes \\(a ClassLabel\\) in .* but plain values"),
])
def test_labels_of_two_kinds_in_two_splits_are_refused(tmp_path, train, validation, message):
    """Names in one split and numbers in the other made a head of four classes, two never trained."""
    folder = tmp_path / "mixed"
    splits = {}
    for split, labels in (("train", train), ("validation", validation)):
        if isinstance(labels, ClassLabel):
            features = Features({"text": Value("string"), "label": labels})
            splits[split] = Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}, features=features)
        else:
            splits[split] = Dataset.from_dict({"text": ["a", "b"], "label": labels})
    DatasetDict(splits).save_to_disk(folder)
    with pytest.raises(DynaKDError, match=message):
        _load(dataset=str(folder))


def test_a_local_folder_is_recorded_by_its_absolute_path_and_a_missing_one_is_named(saved, monkeypatch):
    monkeypatch.chdir(saved.parent)
    cfg = validate(build_config({"task": "dataset", "dataset": saved.name}))
    assert cfg.dataset == str(saved)  # (found from anywhere: a relative one was looked up on the hub elsewhere)
    with pytest.raises(DynaKDError, match="^dataset folder not found: ./nothere$"):
        _load(dataset="./nothere")


def test_a_train_split_beside_a_dev_split_is_refused(saved):
    with pytest.raises(DynaKDError, match="--dev-split cuts the evaluation split .* --train-split train\\[:6\\] would "
                                          "go unread"):
        validate(build_config({"task": "dataset", "dataset": str(saved), "train_split": "train[:6]",
                               "dev_split": 0.5}))


def test_a_single_split_save_to_disk_folder_is_its_train_split(tmp_path):
    """Dataset.save_to_disk (one split, state.json) went to load_dataset, which refused it for load_from_disk."""
    folder = tmp_path / "single"
    Dataset.from_dict({"text": [f"t{i}" for i in range(10)], "label": [i % 2 for i in range(10)]}).save_to_disk(folder)
    _, data = _load(dataset=str(folder), eval_split="train", dev_split=0.5)
    assert len(data["train"]) + len(data["validation"]) == 10


@pytest.mark.parametrize("names", [["negative", "neutral", "positive"], ["pos", "negative"]])
def test_a_classlabel_is_read_by_ids_only_against_as_many_labels_none_of_them_its_own(saved, tmp_path, names):
    """neg, pos against a 3-label model read pos as neutral; against pos, negative they read pos as negative."""
    from transformers import BertConfig

    model = tmp_path / "model"
    BertConfig(architectures=["BertForSequenceClassification"], id2label=dict(enumerate(names)),
               label2id={n: i for i, n in enumerate(names)}).save_pretrained(model)
    cfg = validate(build_config({"task": "dataset", "dataset": str(saved), "eval_split": "test"}))
    with pytest.raises(DynaKDError, match="of the data are not among the labels"):
        load_data(cfg, train=False, labels_of=str(model))


def test_a_run_lends_its_dataset_split_and_cut_as_a_file_runs_do(tmp_path, monkeypatch):
    """A run's dataset folder moved (its recorded absolute path gone) and given again stood for other data: the run's
    dev split was dropped while its eval_split train was lent, which scored the rows it trained on; another dataset
    given took the run's config and split."""
    import yaml

    from dynakd.lending import evaluation_defaults

    run = tmp_path / "run"
    run.mkdir()
    (run / "dynakd.yaml").write_text(yaml.safe_dump({"task": "dataset", "dataset": str(tmp_path / "gone"),
                                                     "dataset_config": "plain", "eval_split": "train",
                                                     "dev_split": 0.1, "output": str(run)}))
    (tmp_path / "d").mkdir()
    monkeypatch.chdir(tmp_path)
    lent = evaluation_defaults(run, {"dataset": "d"}, say=lambda line: None)
    assert lent["dev_split"] == 0.1 and lent["eval_split"] == "train"  # (the folder given stands for the one gone)
    for recorded in (tmp_path / "gone", tmp_path / "d"):  # (a hub name given is other data, beside either)
        (run / "dynakd.yaml").write_text(yaml.safe_dump({"task": "dataset", "dataset": str(recorded),
                                                         "dataset_config": "plain", "eval_split": "train",
                                                         "dev_split": 0.1, "output": str(run)}))
        lent = evaluation_defaults(run, {"dataset": "rotten_tomatoes"}, say=lambda line: None)
        assert not {"dataset_config", "eval_split", "dev_split"} & set(lent)


@pytest.mark.parametrize("trained, scored, said", [
    ("train", "train", True), ("train[:90%]", "train", True), ("train", "train[90%:]", True),
    ("train[:90%]", "train[90%:]", False), ("train", "test", False),
])
def test_evaluating_a_dataset_run_on_the_rows_it_trained_on_is_noted(tmp_path, trained, scored, said):
    import yaml

    from dynakd.lending import evaluation_defaults

    run = tmp_path / "run"
    run.mkdir()
    (run / "dynakd.yaml").write_text(yaml.safe_dump({"task": "dataset", "dataset": "someone/reviews",
                                                     "train_split": trained, "eval_split": "test"}))
    lines = []
    evaluation_defaults(run, {"eval_split": scored}, say=lines.append)
    assert any("scores rows it trained on" in line for line in lines) is said, lines
