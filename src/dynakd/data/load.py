"""A run's data, as its config asks: the task's splits (GLUE, csv/json files, SQuAD), a dev split cut from one file,
labels numbered as the trained model numbers them, seeded subsets and the transfer set; then the model inputs."""

from __future__ import annotations

from typing import Any

from ..config import DistillConfig
from ..distributed import is_first_process, note
from ..errors import DynaKDError
from ..models import model_config
from ..notes import tell
from . import (
    follow_model_labels,
    get_task,
    infer_task_from_data,
    load_task_data,
    split_dev,
    subsample,
    subsample_with_transfer,
)
from .prepare import drop_empty, tokenize
from .squad import encode_squad, load_squad
from .tasks import TaskSpec


def load_data(cfg: DistillConfig, *, train: bool = True, labels_of: str | None = None) -> tuple[TaskSpec, Any]:
    """The task spec and its (subsampled) eval splits, and the train split unless ``train`` is false. ``labels_of``:
    a trained classifier whose labels csv/json files are numbered by (the teacher, or the model evaluated)."""
    task = get_task(cfg.task)
    if task.is_qa:
        splits = ("train", *task.eval_splits) if train else task.eval_splits
        data = load_squad(train_file=cfg.train_file, validation_file=cfg.validation_file,
                          train_articles=cfg.train_articles, splits=splits)
        return task, _subsample_splits(cfg, task, data, train)
    if cfg.train_articles is not None:
        raise DynaKDError("--train-articles splits a SQuAD file by article; it applies to --task squad only")
    train_file, validation_file = cfg.train_file, cfg.validation_file
    if task.is_user_data and cfg.dev_split is not None and not task.reads_dataset:  # one file, cut in two
        if train_file and validation_file:
            raise DynaKDError("--dev-split cuts one file into training and evaluation rows; give --train-file alone, "
                              "not with --validation-file")
        train_file, validation_file = None, train_file or validation_file
    if task.is_user_data and not task.reads_dataset and \
            ((train and cfg.dev_split is None and not train_file) or not validation_file):
        need = "--train-file and --validation-file" if train else "--validation-file"
        raise DynaKDError(f"--task {task.name} needs {need}, or one file with --dev-split F (train on that fraction "
                          "of its rows, evaluate on the rest)")
    data = load_task_data(
        task,
        data_dir=cfg.data_dir,
        train_file=train_file,
        validation_file=validation_file,
        text_columns=cfg.text_columns,
        label_column=cfg.label_column,
        dataset=(cfg.dataset, cfg.dataset_config, {"train": cfg.train_split, "validation": cfg.eval_split}),
        synthetic=cfg.synthetic,
        seed=cfg.data_seed,
        splits=("train", *task.eval_splits) if train and cfg.dev_split is None else task.eval_splits,
    )
    task = infer_task_from_data(task, data, cfg.text_columns, model_numbers=labels_of is not None)
    loaded = {split: len(data[split]) for split in task.eval_splits}  # (the files' rows, kept: GLUE's own or not)
    if labels_of is not None and task.is_user_data:
        task, data = follow_model_labels(task, data, model_config(labels_of), labels_of,
                                         by_ids=getattr(data, "ids_of_its_own", False))
    # the training rows' source and its empty rows, before a dev split or a subset draws from it (drop_empty's note)
    whole = data["train"] if "train" in data else data[task.eval_splits[0]] if cfg.dev_split is not None else None
    source = None if whole is None else (_source_name(task, cfg, train_file or validation_file), whole)
    if cfg.dev_split is not None:  # no train set: cut one from the (single, validated) eval split
        data = split_dev(data, task.eval_splits[0], cfg.dev_split, cfg.data_seed)
    if task.is_user_data and is_first_process():
        if not task.is_regression and "train" in data:
            _note_one_class_a_row(data["train"], cfg.label_column)
        what = cfg.dataset if task.reads_dataset else f"{task.name} data"
        tell(f"{what}: {describe_labels(task, data, cfg.label_column)}")
    if cfg.dev_split is not None and not train:
        data.pop("train")
    cut = _subsample_splits(cfg, task, data, train)
    kept = drop_empty(cut, source=source)
    kept.full_eval_rows = cut.full_eval_rows  # (a DatasetDict of its own)
    kept.loaded_eval_rows = loaded
    return task, kept


def _source_name(task: TaskSpec, cfg: DistillConfig, path: str | None) -> str:
    """The training rows' file, as a user would look for it: their own file, GLUE's (its dev file with --dev-split),
    or the split."""
    if task.reads_dataset:
        return f"{cfg.dataset}'s {cfg.eval_split if cfg.dev_split is not None else cfg.train_split} split"
    if task.is_user_data and path:
        return path
    which = "dev" if cfg.dev_split is not None else "train"
    if cfg.data_dir and not cfg.synthetic:
        return f"{task.name}'s {which} file in {cfg.data_dir}"
    return f"{task.name}'s {which} split"


# Fewer training rows than this may each have a class of their own without a word (a toy file)
ONE_CLASS_A_ROW = 20


def _note_one_class_a_row(train, column: str) -> None:
    """A label column whose every training row is a class of its own: the text (or an id) named as the label trained
    a head of one class per row without a word. A note, not a refusal: one-shot data has such labels too."""
    rows = len(train)
    if rows >= ONE_CLASS_A_ROW and len(train.unique("label")) == rows:
        note(f"column '{column}' gives each of the {rows} training rows a class of its own: if it holds text or ids, "
             "not labels, --label-column names the column of labels")


SHOWN_CLASSES = 20  # class names a run lists (a label column of sentences, a quoting slip, listed 3 KB of them)


def describe_labels(task: TaskSpec, data, column: str) -> str:
    """What a csv/json task made of its label column (floats: regression; integers: class ids; strings: names), and
    the classes with no training rows (integer ids skipped, or a name seen only in the evaluation file)."""
    if task.is_regression:
        return (f"regression on column '{column}' (its values are written as decimals; write whole numbers for "
                "class ids)")
    names = task.label_names or tuple(str(i) for i in range(task.num_labels))
    text = f"{task.num_labels} classes from column '{column}': {_listed(names)}"
    if "train" in data:
        missing = [names[i] for i in sorted(set(range(task.num_labels)) - set(data["train"].unique("label")))]
        if missing:
            text += f"; no training rows for {_listed(missing)}"
    return text


def _listed(names) -> str:
    """The first ``SHOWN_CLASSES`` names, a name with a comma quoted (one can tell them apart), and how many more."""
    shown = [repr(n) if "," in n else n for n in names[:SHOWN_CLASSES]]
    return ", ".join(shown) + (f", ... ({len(names) - SHOWN_CLASSES} more)" if len(names) > SHOWN_CLASSES else "")


def _subsample_splits(cfg: DistillConfig, task: TaskSpec, data, train: bool):
    """Seeded subsets of examples (for QA: of questions, before they are cut into windows)."""
    if train and cfg.transfer_samples:  # validated: a classification or regression task, max_train_samples set
        data["train"] = subsample_with_transfer(data["train"], cfg.max_train_samples, cfg.transfer_samples,
                                                cfg.data_seed, regression=task.is_regression)
    elif train:
        data["train"] = subsample(data["train"], cfg.max_train_samples, cfg.data_seed)
    # each evaluation split's rows before the cut (runner.scored_as: a cap at or above them scored the whole split)
    sizes = {split: len(data[split]) for split in task.eval_splits}
    for split in task.eval_splits:
        data[split] = subsample(data[split], cfg.max_eval_samples, cfg.data_seed)
    data.full_eval_rows = sizes
    return data


def encode(cfg: DistillConfig, task: TaskSpec, data, tokenizer, teacher_tokenizer=None):
    """Model inputs of every split, and for extractive QA the postprocessing data of its eval split (else None)."""
    if not task.is_qa:
        return tokenize(data, tokenizer, cfg.max_seq_length, teacher_tokenizer), None
    encoded, evals = encode_squad(data, tokenizer, cfg.max_seq_length, cfg.stride(), n_best=cfg.n_best,
                                  max_answer_length=cfg.max_answer_length)
    return encoded, evals.get(task.eval_splits[0])
