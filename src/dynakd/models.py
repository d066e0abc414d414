"""Loading teachers, students and tokenizers through the Auto classes, with one-line errors."""

from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from . import hub, packaged
from .data.tasks import TaskSpec, is_classifier, named_labels
from .distributed import note
from .errors import DynaKDError, first_line
from .modelfolder import check_model_folder
from .students import STUDENT_FLAGS, build_student, check_layers_apart, resolve_layer_ids

# Whether transformers may run a model's own code (config.json's auto_map), as run_glue.py's --trust_remote_code: set
# by a command for its run (``remote_code``, in ``runner.run_scope`` and the bench), so that every loader below reads
# it without each caller passing it on. False, not transformers' None: None asks on a terminal and waits for an answer.
_REMOTE_CODE = contextvars.ContextVar("trust_remote_code", default=False)


@contextlib.contextmanager
def remote_code(allowed: bool):
    """Let the loaders run a model's own code (``trust_remote_code``) within this block, or not."""
    token = _REMOTE_CODE.set(bool(allowed))
    try:
        yield
    finally:
        _REMOTE_CODE.reset(token)


def _own_code_refused(e: Exception) -> bool:
    """Whether transformers refused to load a model for code of its own it was not let run."""
    return isinstance(e, ValueError) and "trust_remote_code" in str(e) and not _REMOTE_CODE.get()


def _cannot_load(what: str, name: str, e: Exception) -> DynaKDError:
    """The loader's reason; for a name that is no folder here: offline, that first (the loader's reason is then the
    hub's connection error), with what can be given instead (the README's first examples name hub models); online,
    for a hub-id-shaped name (a ``runs/teacher`` from a ``dynakd.yaml`` written in another folder reaches the hub as
    an id), a word on relative paths."""
    relative = ("a relative path counts from the folder the command runs in, a path in a saved dynakd.yaml from the "
                "one its run ran in")
    if _own_code_refused(e):
        return DynaKDError(f"cannot load {what} from '{name}': it comes with code of its own (its config.json's "
                           "auto_map), which DynaKD runs only when told: read it, then add --trust-remote-code "
                           "(config key trust_remote_code: true; in a sweep file, in its base)")
    if Path(name).exists():
        return DynaKDError(f"cannot load {what} from '{name}': {first_line(e)}")
    if hub.offline() and isinstance(e, OSError):  # not found here, nor reachable (another failure keeps its reason)
        where = "" if Path(name).is_absolute() or name.startswith("~") else f" in {Path.cwd()} ({relative})"
        return DynaKDError(f"cannot load {what} from '{name}': there is no such folder{where}, and the hub, where it "
                           "would name a model, cannot be reached from here: give a model folder, or minilm, the "
                           "all-MiniLM-L6-v2 a pip package installs with DynaKD")
    hint = ""
    if name.count("/") == 1 and not name.startswith(("/", ".", "~")):
        hint = f" (if '{name}' is meant as a folder: there is none in {Path.cwd()}; {relative})"
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
        return AutoTokenizer.from_pretrained(name, trust_remote_code=_REMOTE_CODE.get())
    except Exception as e:  # noqa: BLE001 - any failure here is "not a usable model path or id"
        raise _cannot_load("a tokenizer", name, e) from None


def check_model_loads(name: str):
    """The model's config (one small file) loads, and is of a kind DynaKD distils: a mistyped path that reads as a
    hub id is named as such before any data loads (offline, ``run/model`` for ``runs/model`` would otherwise fail on
    the data's hub download first). Returns the config."""
    config = model_config(name)
    check_architecture(config, name)
    return config


def check_architecture(config, name: str) -> None:
    """Refuse an encoder-decoder (T5, BART): its classifier returns encoder and decoder states apart, not the one
    stack of layers that a student is built from and whose features are compared (it failed in the first step)."""
    if getattr(config, "is_encoder_decoder", False):
        raise DynaKDError(f"'{name}' is an encoder-decoder model ({config.model_type}): DynaKD distils encoders (and "
                          "decoder-only classifiers), one stack of layers; use an encoder such as BERT or RoBERTa")


def model_config(name: str):
    name = packaged.resolve(name)
    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=_REMOTE_CODE.get())
    except Exception as e:  # noqa: BLE001
        raise _cannot_load("a model", name, e) from None


def local_config(name: str):
    """Model ``name``'s config read from this machine alone (a folder, a packaged alias, the hub's cache); None when
    it is not at hand here or names no layer count, so a check that wants it can be left to later."""
    try:
        config = AutoConfig.from_pretrained(packaged.resolve(name), local_files_only=True,
                                            trust_remote_code=_REMOTE_CODE.get())
    except Exception:  # noqa: BLE001 - not at hand (no such folder, not cached, package missing): no answer
        return None
    return config if isinstance(getattr(config, "num_hidden_layers", None), int) else None


# Every model loads in float32, whatever its checkpoint was saved in: transformers 5 keeps the saved dtype ("auto"), and
# a student copied from a bfloat16 teacher (or a bfloat16 model fine-tuned) would train in bfloat16, where most
# updates round away; mixed precision is the Trainer's autocast over float32 weights (--bf16, --fp16).
FLOAT32 = torch.float32


def outputs_said(n: int) -> str:
    """A head's outputs as a message says them: ``3 labels``, ``1 score (a regression head)``."""
    return "1 score (a regression head)" if n == 1 else f"{n} labels"


def _task_said(task: TaskSpec) -> str:
    """A task as a note names it: GLUE's by name, one's own data (csv, json, a dataset by name) as such."""
    return "your data" if task.is_user_data else task.name


def _new_head(task: TaskSpec) -> str:
    """The head a model gets for ``task``: ``a new 2-label head``, ``a new regression head``."""
    return "a new regression head" if task.is_regression else f"a new {task.num_labels}-label head"


def load_task_model(name: str, task: TaskSpec, *, new_head_ok: bool = True, replace_head: bool = False,
                    note_head: bool = True):
    """The model for ``task``: a question-answering model for extractive QA, else a sequence classifier.
    ``note_head``: say so where a base encoder gets a new head (not for a head that trains nothing: the bench's)."""
    if task.is_qa:
        return load_qa_model(name, new_head_ok=new_head_ok, note_head=note_head)
    return load_classifier(name, task, new_head_ok=new_head_ok, replace_head=replace_head, note_head=note_head)


def load_qa_model(name: str, *, new_head_ok: bool = True, note_head: bool = True):
    """An ``AutoModelForQuestionAnswering``. A base encoder gets a new (start, end) head unless ``new_head_ok`` is
    false (a teacher or a model to evaluate must have been fine-tuned for QA)."""
    check_model_folder(name)
    config = model_config(name)
    check_architecture(config, name)
    is_qa = any(a.endswith("ForQuestionAnswering") for a in (config.architectures or []))
    if not is_qa and not new_head_ok:
        raise DynaKDError(f"'{name}' has no question-answering head: fine-tune it first with `dynakd finetune`")
    if not is_qa and note_head:
        _note_new_head(name, "question-answering", "a new start/end head")
    return _from_pretrained(AutoModelForQuestionAnswering, name, trained=not new_head_ok)


def _note_new_head(name: str, kind: str, head: str) -> None:
    """Say that a model without the task's head gets a new one, initialised at random (transformers' own warning,
    "newly initialized", is silenced with its other reports)."""
    note(f"{name} has no {kind} head: it trains {head}, initialised at random")


def load_classifier(name: str, task: TaskSpec, *, new_head_ok: bool = True, replace_head: bool = False,
                    note_head: bool = True):
    """A sequence classifier for ``task``. A base encoder gets a new head; a classifier must match the label count,
    unless ``replace_head`` (finetune), which gives one of another count a new head of the task's size (as run_glue's
    ``--ignore_mismatched_sizes``): a teacher, a student or a model to score must already predict the task's labels."""
    check_model_folder(name)
    kwargs = {"num_labels": task.num_labels}
    if task.is_regression:
        kwargs["problem_type"] = "regression"
    config = model_config(name)
    check_architecture(config, name)
    classifier = is_classifier(config)
    mismatched = classifier and config.num_labels != task.num_labels
    if mismatched and not replace_head:
        wants = "is a regression (1 score)" if task.is_regression else f"has {task.num_labels} labels"
        raise DynaKDError(f"'{name}' predicts {outputs_said(config.num_labels)} but task {task.name} {wants}: "
                          f"fine-tune it on the task first with `dynakd finetune` ({_new_head(task)})")
    if not classifier and not new_head_ok:
        raise DynaKDError(f"'{name}' has no classification head: fine-tune it first with `dynakd finetune`")
    if not classifier and note_head:
        _note_new_head(name, "classification", f"{_new_head(task)} for {_task_said(task)}")
    if mismatched:
        # the old head's weights are dropped for a freshly initialised one (_from_pretrained lets sizes differ); its
        # loss follows the task (a regression checkpoint's saved problem_type would give a classifier's new head a
        # regression loss), and its labels are the new head's defaults unless the task names them (below); id2label
        # gives the count (with num_labels too, transformers warns of the old head's)
        kwargs.pop("num_labels")
        kwargs.update(problem_type="regression" if task.is_regression else "single_label_classification",
                      id2label={i: f"LABEL_{i}" for i in range(task.num_labels)},
                      label2id={f"LABEL_{i}": i for i in range(task.num_labels)})
        note(f"{name}'s head predicts {outputs_said(config.num_labels)}; finetune replaces it with {_new_head(task)} "
             f"for {_task_said(task)}")
    own = named_labels(config) if classifier and not mismatched else []  # a new head keeps none of the old names
    named = [x.strip().lower() for x in own] == [x.lower() for x in task.label_names or ()]  # (own: as saved)
    order = None  # the head's output for each of the task's labels, when it names them in another order
    if task.label_names and not task.is_regression and not named:
        # the task's names in config.json, so `pipeline(...)` says "positive" rather than "LABEL_1" (as run_glue.py
        # does); they follow the task's label order, which training on the task gives the head. A classifier that
        # names its labels as the task does (in any case) keeps its spelling.
        if own and sorted(x.strip().lower() for x in own) == sorted(x.lower() for x in task.label_names):
            # the same labels in another order (a hub MNLI model says CONTRADICTION, NEUTRAL, ENTAILMENT): as
            # run_glue.py maps labels through the model's label2id, the head's outputs are put in the task's order
            order = [[x.strip().lower() for x in own].index(label.lower()) for label in task.label_names]
        elif own:
            note(f"{name} names its labels {', '.join(own)}; this run uses task {task.name}'s: "
                 f"{', '.join(task.label_names)}")
        kwargs["id2label"] = dict(enumerate(task.label_names))
        kwargs["label2id"] = {label: i for i, label in enumerate(task.label_names)}
    model = _from_pretrained(AutoModelForSequenceClassification, name, trained=not new_head_ok, **kwargs)
    if order is not None:
        _reorder_head(model, order, name)
        note(f"{name} orders its labels {', '.join(own)}; its head now gives them in task {task.name}'s "
             f"order: {', '.join(task.label_names)}")
    return model


def _from_pretrained(cls, name: str, *, trained: bool, **kwargs):
    """``cls.from_pretrained`` in float32, with the weights its checkpoint lacks (or holds in another shape) checked,
    which transformers would initialise at random: refused for a ``trained`` model (a teacher, a model to score,
    whose random weights would go unnoticed but for their scores); for a model to train, a note for the body's that
    are missing (it trains anyway), nothing here for the task head's (a base encoder's new head, noted by the
    loaders; finetune's head of another label count), and a body's of another shape refused (its config does not
    describe its weights)."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report: what it lacks is said below, where it matters
    try:
        model, info = cls.from_pretrained(packaged.resolve(name), dtype=FLOAT32, output_loading_info=True,
                                          ignore_mismatched_sizes=True, trust_remote_code=_REMOTE_CODE.get(), **kwargs)
    except Exception as e:  # noqa: BLE001 - any failure here is "not a usable model path or id"
        raise _cannot_load("a model", name, e) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = sorted(info.get("missing_keys") or ())
    reshaped = sorted(key for key, *_ in info.get("mismatched_keys") or ())  # (key, saved shape, model shape)
    # a model to train trains what it lacks, and only its head may differ in shape (finetune's new head)
    refused = {"missing": missing if trained else [],
               "of another shape": reshaped if trained else [k for k in reshaped if not _in_head(model, k)]}
    if parts := [f"{len(keys)} {what} ({_some(keys)})" for what, keys in refused.items() if keys]:
        fix = (", or fine-tune it first with `dynakd finetune`" if trained
               else ": its config.json is not the one its weights were saved with")
        raise DynaKDError(f"'{name}' does not hold every weight its config describes: {' and '.join(parts)}; they "
                          f"would be random: use its complete checkpoint (as save_pretrained writes it){fix}")
    _outputs_on_demand(model, name)
    body = [key for key in missing if not _in_head(model, key)]
    if body:
        note(f"{name} lacks {len(body)} of its weights ({_some(body)}): they start random and train with "
             "the rest")
    return model


def _outputs_on_demand(model, name: str) -> None:
    """Turn off what a config asks every forward to return besides its logits (``output_hidden_states``,
    ``output_attentions``): DynaKD asks for the hidden states where it reads them, attention maps cost memory and time
    in every step, and transformers 5 saves no model whose config asks for them from sdpa attention (a student, a
    copy of its teacher, stopped at the end of training)."""
    asked = [key for key in ("output_hidden_states", "output_attentions") if getattr(model.config, key, False)]
    for key in asked:
        setattr(model.config, key, False)
    if asked:
        note(f"{name}'s config asks every forward for {' and '.join(asked)}: off here (and in a model saved "
             "from it); DynaKD asks for the hidden states where it reads them")


def _in_head(model, key: str) -> bool:
    """Whether weight ``key`` belongs to the task head: outside the base model (``classifier``, ``score``,
    ``qa_outputs``, DeBERTa's pooler) or a pooler in it (BERT's, read by the classification head alone)."""
    prefix = getattr(model, "base_model_prefix", "")
    return not (prefix and key.startswith(prefix + ".")) or "pooler" in key.split(".")


def _some(keys: list[str], n: int = 3) -> str:
    """The first ``n`` of ``keys`` and how many more."""
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


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


def ready_to_pad(model, tokenizer, name: str, *, say: bool = True) -> None:
    """Make batches of ``model``'s inputs paddable, as a Hugging Face user would: a tokenizer without a padding token
    (GPT-2's) pads with the model's own padding token, else its end-of-sequence token; a model whose config names no
    padding token takes the tokenizer's (a decoder's classifier finds each row's last token by it). Both are saved
    with a run, whose folder then reloads and batches. Notes unless ``say`` is false (a student copied from its
    teacher, already noted)."""
    config, notes = model.config, []
    if tokenizer.pad_token is None:
        own = config.pad_token_id
        own = tokenizer.convert_ids_to_tokens(own) if isinstance(own, int) and 0 <= own < len(tokenizer) else None
        pad = own or tokenizer.eos_token
        if pad is None:
            raise DynaKDError(f"'{name}' has no padding token, in its tokenizer or its config, nor an end-of-sequence "
                              "token to pad with: give its tokenizer one (tokenizer.pad_token = ...) and save it "
                              "beside the model (tokenizer.save_pretrained(folder))")
        tokenizer.pad_token = pad
        notes.append(f"its tokenizer has no padding token: it pads with {pad} (its "
                     f"{'config' if own else 'end-of-sequence'} token)")
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id
        notes.append(f"its config names no padding token: it takes the tokenizer's ({tokenizer.pad_token}, id "
                     f"{tokenizer.pad_token_id})")
    if notes and say:
        note(f"{name}: {'; '.join(notes)}")


def position_offset(model) -> int:
    """The rows of ``model``'s position table before its first position: RoBERTa and its kin (XLM-R, CamemBERT,
    MPNet, Longformer) number positions from ``padding_idx + 1``, so ``max_position_embeddings - pad_token_id - 1``
    tokens fit; told by a position table with a padding row (0 for a model without one, e.g. BERT)."""
    size = getattr(model.config, "max_position_embeddings", None)
    for module in model.modules() if isinstance(model, torch.nn.Module) else ():
        table = getattr(module, "position_embeddings", None)
        if isinstance(table, torch.nn.Embedding) and table.padding_idx is not None and table.num_embeddings == size:
            return table.padding_idx + 1
    return 0


def check_seq_length(max_seq_length: int, tokenizer, model) -> None:
    """Inputs longer than the model's position table fail deep inside the model: refuse them up front."""
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int):
        positions -= position_offset(model)
    limits = [positions, getattr(tokenizer, "model_max_length", None)]
    known = [x for x in limits if isinstance(x, int) and 0 < x < 10**6]  # tokenizers without a limit say 1e30
    limit = min(known, default=None)
    if limit is not None and max_seq_length > limit:
        raise DynaKDError(f"max_seq_length {max_seq_length} exceeds the model's limit of {limit} tokens")


def check_student_request(cfg, teacher_name: str | None, *, config=None,
                          names: tuple[str, str, str] = STUDENT_FLAGS) -> None:
    """Check ``--student-layers`` / ``--student-layer-ids`` against the teacher's layers (its ``config``, else read
    from ``teacher_name``'s; neither: only that one student is named), before loading weights. ``names`` spell
    the student, its layer count and its layer ids in messages: the command's flags, or a sweep file's keys."""
    student, k_name, ids_name = names
    if cfg.student:
        if cfg.student_layers or cfg.student_layer_ids:  # both would name the student: refuse rather than pick one
            keys = "; in a --config file student and student_layers / student_layer_ids" \
                if names == STUDENT_FLAGS else ""  # (the two may come from one file, its keys named so)
            raise DynaKDError(f"choose one of {student} (a checkpoint) and {k_name} / {ids_name} (a student built "
                              f"from the teacher's layers{keys})")
        return
    if config is None and teacher_name is None:
        return
    if config is None:
        config = model_config(teacher_name)
    # (its layer count: shared weights' repeats)
    check_layers_apart(config, f"'{teacher_name or config.name_or_path}'", student)
    resolve_layer_ids(config.num_hidden_layers, cfg.student_layers, cfg.student_layer_ids, names=(k_name, ids_name))


def load_student(cfg, teacher, task: TaskSpec):
    """``--student M`` (any checkpoint) or a copy of the teacher keeping ``--student-layers`` / ids."""
    if cfg.student:
        return load_task_model(cfg.student, task)
    return build_student(teacher, cfg.student_layers, cfg.student_layer_ids)
