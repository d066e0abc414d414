"""Loading teachers, students and tokenizers through the Auto classes, with one-line errors."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoModelForSequenceClassification, AutoTokenizer

from . import hub, packaged
from .data.tasks import TaskSpec, is_classifier, named_labels
from .distributed import is_first_process
from .errors import DynaKDError, first_line
from .students import STUDENT_FLAGS, build_student, resolve_layer_ids


def _cannot_load(what: str, name: str, e: Exception) -> DynaKDError:
    """The loader's reason; for a hub-id-shaped name that is also no folder here, a word on relative paths (a
    ``runs/teacher`` from a ``dynakd.yaml`` written in another folder reaches the hub as an id)."""
    hint = ""
    if name.count("/") == 1 and not Path(name).exists() and not name.startswith(("/", ".", "~")):
        hint = (f" (if '{name}' is meant as a folder: there is none in {Path.cwd()}; a relative path counts from the "
                "folder the command runs in, a path in a saved dynakd.yaml from the one its run ran in)")
    return DynaKDError(f"cannot load {what} from '{name}': {first_line(e)}{hint}")


# A tokenizer is saved as one of these (fast: tokenizer.json; slow: its vocabulary; any: tokenizer_config.json).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.model", "spm.model")


def load_tokenizer(name: str):
    name = packaged.resolve(name)
    if Path(name).is_dir() and not any((Path(name) / f).is_file() for f in TOKENIZER_FILES):
        # transformers 5 then builds a tokenizer of a few special tokens: every word read as [UNK], without a word
        raise DynaKDError(f"'{name}' has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...): save the "
                          "tokenizer beside the model (tokenizer.save_pretrained(folder))")
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as e:  # noqa: BLE001 - any failure here is "not a usable model path or id"
        raise _cannot_load("a tokenizer", name, e) from None


def check_model_loads(name: str) -> None:
    """The model's config (one small file) loads: a mistyped path that reads as a hub id is named as such before any
    data loads (offline, ``run/model`` for ``runs/model`` would otherwise fail on the data's hub download first)."""
    model_config(name)


def model_config(name: str):
    name = packaged.resolve(name)
    try:
        return AutoConfig.from_pretrained(name)
    except Exception as e:  # noqa: BLE001
        raise _cannot_load("a model", name, e) from None


def local_depth(name: str) -> int | None:
    """The number of layers of model ``name`` from its config, read from this machine alone (a folder, a packaged
    alias, the hub's cache); None when it is not at hand here, so a check that wants it can be left to later."""
    try:
        config = AutoConfig.from_pretrained(packaged.resolve(name), local_files_only=True)
    except Exception:  # noqa: BLE001 - not at hand (no such folder, not cached, package missing): no answer
        return None
    depth = getattr(config, "num_hidden_layers", None)
    return depth if isinstance(depth, int) else None


def check_model_folder(name: str) -> None:
    """A local path must be a model folder; a name that can only be a path must exist (else the hub would be asked,
    with retries, for a folder mistyped); anything else is taken as a hub id (``name`` or ``namespace/name``)."""
    name = packaged.resolve(name)
    path = Path(name)
    try:
        has_config = (path / "config.json").is_file()
        exists = has_config or path.exists()
    except OSError as e:  # e.g. a folder without read permission: pathlib raises rather than answering False
        raise DynaKDError(f"cannot read the model folder '{name}': {e.strerror or first_line(e)}") from None
    if exists:
        if not has_config:
            raise DynaKDError(f"'{name}' is not a model folder (no config.json)")
        return
    in_local_folder = len(path.parts) > 1 and Path(path.parts[0]).is_dir()  # runs/teacher, with ./runs here
    if name.startswith(("/", ".", "~")) or name.count("/") > 1 or in_local_folder:
        raise DynaKDError(f"model folder not found: {name}")
    hub.offline_unless_reachable()  # a hub id: fail (or read the cache) at once rather than after retries


# Every model loads in float32, whatever its checkpoint was saved in: transformers 5 keeps the saved dtype ("auto"), and
# a student copied from a bfloat16 teacher (or a bfloat16 model fine-tuned) would train in bfloat16, where most
# updates round away; mixed precision is the Trainer's autocast over float32 weights (--bf16, --fp16).
FLOAT32 = torch.float32


def load_task_model(name: str, task: TaskSpec, *, new_head_ok: bool = True, replace_head: bool = False):
    """The model for ``task``: a question-answering model for extractive QA, else a sequence classifier."""
    if task.is_qa:
        return load_qa_model(name, new_head_ok=new_head_ok)
    return load_classifier(name, task, new_head_ok=new_head_ok, replace_head=replace_head)


def load_qa_model(name: str, *, new_head_ok: bool = True):
    """An ``AutoModelForQuestionAnswering``. A base encoder gets a new (start, end) head unless ``new_head_ok`` is
    false (a teacher or a model to evaluate must have been fine-tuned for QA)."""
    check_model_folder(name)
    config = model_config(name)
    is_qa = any(a.endswith("ForQuestionAnswering") for a in (config.architectures or []))
    if not is_qa and not new_head_ok:
        raise DynaKDError(f"'{name}' has no question-answering head: fine-tune it first with `dynakd finetune`")
    try:
        return AutoModelForQuestionAnswering.from_pretrained(packaged.resolve(name), dtype=FLOAT32)
    except Exception as e:  # noqa: BLE001
        raise _cannot_load("a model", name, e) from None


def load_classifier(name: str, task: TaskSpec, *, new_head_ok: bool = True, replace_head: bool = False):
    """A sequence classifier for ``task``. A base encoder gets a new head; a classifier must match the label count,
    unless ``replace_head`` (finetune), which gives one of another count a new head of the task's size (as run_glue's
    ``--ignore_mismatched_sizes``): a teacher, a student or a model to score must already predict the task's labels."""
    check_model_folder(name)
    kwargs = {"num_labels": task.num_labels}
    if task.is_regression:
        kwargs["problem_type"] = "regression"
    config = model_config(name)
    classifier = is_classifier(config)
    mismatched = classifier and config.num_labels != task.num_labels
    if mismatched and not replace_head:
        raise DynaKDError(f"'{name}' predicts {config.num_labels} labels but task {task.name} has {task.num_labels}: "
                          f"fine-tune it on the task first with `dynakd finetune` (a new {task.num_labels}-label head)")
    if not classifier and not new_head_ok:
        raise DynaKDError(f"'{name}' has no classification head: fine-tune it first with `dynakd finetune`")
    if mismatched:
        # the old head's weights are dropped for a freshly initialised one; its loss follows the task (a regression
        # checkpoint's saved problem_type would give a classifier's new head a regression loss), and its labels are
        # the new head's defaults unless the task names them (below); id2label gives the count (with num_labels too,
        # transformers warns of the old head's)
        kwargs.pop("num_labels")
        kwargs.update(ignore_mismatched_sizes=True,
                      problem_type="regression" if task.is_regression else "single_label_classification",
                      id2label={i: f"LABEL_{i}" for i in range(task.num_labels)},
                      label2id={f"LABEL_{i}": i for i in range(task.num_labels)})
        if is_first_process():
            print(f"note: {name} has a {config.num_labels}-label classification head; finetune replaces it with a new "
                  f"{task.num_labels}-label head for {task.name}", flush=True)
    own = named_labels(config) if classifier and not mismatched else []  # a new head keeps none of the old names
    named = [x.lower() for x in own] == [x.lower() for x in task.label_names or ()]
    order = None  # the head's output for each of the task's labels, when it names them in another order
    if task.label_names and not task.is_regression and not named:
        # the task's names in config.json, so `pipeline(...)` says "positive" rather than "LABEL_1" (as run_glue.py
        # does); they follow the task's label order, which training on the task gives the head. A classifier that
        # names its labels as the task does (in any case) keeps its spelling.
        if own and sorted(x.lower() for x in own) == sorted(x.lower() for x in task.label_names):
            # the same labels in another order (a hub MNLI model says CONTRADICTION, NEUTRAL, ENTAILMENT): as
            # run_glue.py maps labels through the model's label2id, the head's outputs are put in the task's order
            order = [[x.lower() for x in own].index(label.lower()) for label in task.label_names]
        elif own and is_first_process():
            print(f"note: {name} names its labels {', '.join(own)}; this run uses task {task.name}'s: "
                  f"{', '.join(task.label_names)}", flush=True)
        kwargs["id2label"] = dict(enumerate(task.label_names))
        kwargs["label2id"] = {label: i for i, label in enumerate(task.label_names)}
    try:
        model = AutoModelForSequenceClassification.from_pretrained(packaged.resolve(name), dtype=FLOAT32, **kwargs)
    except Exception as e:  # noqa: BLE001
        raise _cannot_load("a model", name, e) from None
    if order is not None:
        _reorder_head(model, order, name)
        if is_first_process():
            print(f"note: {name} orders its labels {', '.join(own)}; its head now gives them in task {task.name}'s "
                  f"order: {', '.join(task.label_names)}", flush=True)
    return model


@torch.no_grad()
def _reorder_head(model, order: list[int], name: str) -> None:
    """Permute the output rows of a classifier's last linear layer so that output ``i`` is the old ``order[i]``,
    checked on one input: heads differ by architecture (``classifier``, ``classifier.out_proj``, ``score``)."""
    n = len(order)
    outputs = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == n]
    probe = torch.arange(1, 5).unsqueeze(0) % max(int(getattr(model.config, "vocab_size", 5) or 5), 2)
    was_training = model.training
    model.eval()  # (dropout off: the same input gives the same outputs)
    before = model(input_ids=probe).logits
    if outputs:
        head = outputs[-1]
        head.weight.copy_(head.weight[order])
        if head.bias is not None:
            head.bias.copy_(head.bias[order])
    reordered = bool(outputs) and torch.allclose(model(input_ids=probe).logits, before[:, order], atol=1e-5)
    model.train(was_training)
    if not reordered:
        raise DynaKDError(f"'{name}' names the task's labels in another order, and its head's outputs could not be "
                          "put in the task's order: fine-tune it on the task first")


def check_seq_length(max_seq_length: int, tokenizer, model) -> None:
    """Inputs longer than the model's position table fail deep inside the model: refuse them up front."""
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    known = [x for x in limits if isinstance(x, int) and 0 < x < 10**6]  # tokenizers without a limit say 1e30
    limit = min(known, default=None)
    if limit is not None and max_seq_length > limit:
        raise DynaKDError(f"max_seq_length {max_seq_length} exceeds the model's limit of {limit} tokens")


def check_student_request(cfg, teacher_name: str | None, *, depth: int | None = None,
                          names: tuple[str, str, str] = STUDENT_FLAGS) -> None:
    """Check ``--student-layers`` / ``--student-layer-ids`` against the teacher's depth (``depth``, else read from
    ``teacher_name``'s config; neither: only that one student is named), before loading weights. ``names`` spell
    the student, its layer count and its layer ids in messages: the command's flags, or a sweep file's keys."""
    student, k_name, ids_name = names
    if cfg.student:
        if cfg.student_layers or cfg.student_layer_ids:  # both would name the student: refuse rather than pick one
            raise DynaKDError(f"choose one of {student} (a checkpoint) and {k_name} / {ids_name} (a student built "
                              "from the teacher's layers)")
        return
    if depth is None and teacher_name is None:
        return
    n = depth if depth is not None else model_config(teacher_name).num_hidden_layers
    resolve_layer_ids(n, cfg.student_layers, cfg.student_layer_ids, names=(k_name, ids_name))


def load_student(cfg, teacher, task: TaskSpec):
    """``--student M`` (any checkpoint) or a copy of the teacher keeping ``--student-layers`` / ids."""
    if cfg.student:
        return load_task_model(cfg.student, task)
    return build_student(teacher, cfg.student_layers, cfg.student_layer_ids)
