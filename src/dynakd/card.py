"""The model card (``README.md``) saved beside every trained model, as transformers' example scripts write one.

The Hub renders it and reads its metadata: where the weights came from (``base_model``), the task, the dataset and,
when the scores are those of a whole public validation split, the results (``model-index``). The text says how the
model was made (teacher, method, aligner, data, training settings) and how it scored next to its teacher. Built with
``huggingface_hub``'s ``ModelCardData`` and ``EvalResult``, which write the metadata in the Hub's format. Not the
Trainer's ``create_model_card``: its card describes one model fine-tuned on one dataset and has no place for the
teacher, the method or the teacher's scores.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from . import atomic, jsonfile, packaged
from .align.base import options_said
from .align.fixed import map_said
from .config import DistillConfig
from .data.named import is_path
from .data.tasks import TaskSpec, rows_not_glues
from .errors import DynaKDError

CARD_NAME = "README.md"
HUB_DATASETS = {"squad": ("rajpurkar/squad", "plain_text", "SQuAD v1.1")}  # otherwise GLUE: nyu-mll/glue
HUB_METRICS = {"pearson": "pearsonr", "macro_f1": "f1"}  # the Hub's metric ids where DynaKD's names differ


def write_model_card(out: Path, command: str, cfg: DistillConfig, task: TaskSpec, metrics: dict[str, Any]) -> Path:
    """Write ``out/README.md`` for a finished ``finetune`` or ``distill`` run; returns its path."""
    scores = _scores(metrics.get("eval", {}), task, cfg)
    rows = metrics.get("eval_split_rows")
    results = _eval_results(scores, task) if _whole_public_split(cfg, task, rows) else None
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=task_type(task),
        tags=["dynakd", "knowledge-distillation"] if command == "distill" else ["dynakd"],
        base_model=base_model(cfg.model if command == "finetune" else cfg.student or cfg.teacher),
        license=license_of(cfg.model if command == "finetune" else cfg.student or cfg.teacher),
        datasets=[_hub_dataset(task)[0]] if _public_data(cfg, task, rows)
        else _hub_id(cfg) if task.reads_dataset else None,
        metrics=[HUB_METRICS.get(m, m) for m in task.metrics],
        model_name=_title(out, cfg) if results else None,  # names the results
        eval_results=results,
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(out, command, cfg, task, metrics, scores)}")
    path = out / CARD_NAME
    card.save(path)
    return path


EVALUATED = "## Scored with `dynakd evaluate`"  # the card's section of the latest score `evaluate` filed beside a run's


def add_evaluation(out: Path, cfg: DistillConfig, task: TaskSpec, evaluated: dict[str, Any],
                   split_rows: dict[str, int] | None = None) -> None:
    """Put ``evaluate``'s scores of a run's model into the run's card, in a section of their own before "Training"
    (replacing an earlier one): ``metrics.json`` held them under ``evaluate`` while the card showed the run's scores
    alone, of the rows the run was scored on (a subset, say). A folder without a DynaKD card keeps what it has.
    ``split_rows``: the evaluation files' rows (``metrics.json``'s ``eval_split_rows``)."""
    path = out / CARD_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return
    if "\n## Training\n" not in text:  # (not a card this wrote)
        return
    scores = _scores(evaluated, task, cfg)
    rows = [f"| {split} | {metric} | {_shown(value)} |" for (split, metric), value in scores.items()]
    # (what this dev_split holds out: the run's own, lent, or the command's, of a run that held out none)
    held = f"the {1 - cfg.dev_split:.0%} of the evaluation split that dev_split {cfg.dev_split:g} holds out" \
        if cfg.dev_split else None
    on = _evaluated_on(cfg, task) or held or "the whole evaluation split"  # (a dev split's part was said "whole")
    own = cfg.validation_file or cfg.train_file  # (a train file alone: dev_split holds its evaluation rows out)
    data = (f"`{Path(own).name}`" if own else "synthetic data" if cfg.synthetic
            else _named_dataset(cfg, cfg.eval_split) if task.reads_dataset
            else _local_glue(cfg, task) if _own_rows(cfg, task, split_rows)
            else _hub_dataset(task)[2])  # (which may not be the run's own: evaluate scores what it is given)
    precision = f", under {cfg.precision()} autocast" if cfg.bf16 or cfg.fp16 else ""
    section = [EVALUATED, "", f"Scored on {on} of {data} ({task.name}), inputs cut at {cfg.max_seq_length} tokens"
               f"{precision} (`metrics.json`, under `evaluate`):", "", "| split | metric | score |", "|---|---|---|",
               *rows, "", ""]
    if EVALUATED in text:  # an earlier score's section goes
        start = text.index(EVALUATED)
        text = text[:start] + text[text.index("\n## ", start) + 1:]
    at = text.index("## Training\n")
    atomic.write_text(path, text[:at] + "\n".join(section) + text[at:])


def base_model(name: str | None) -> str | None:
    """The hub id the weights started from: ``name`` itself when it is a hub id, else the ``base_model`` of the local
    folder's own card (a teacher that ``dynakd finetune`` trained from a hub model names it), else None."""
    if not name:
        return None
    if hub := packaged.hub_id(name):  # a package's copy of a hub checkpoint (e.g. MiniLM), or its alias
        return hub
    folder = Path(name).expanduser()
    if not folder.exists():
        return name
    found = _card_field(folder, "base_model")
    return found if isinstance(found, str) else None


def license_of(name: str | None) -> str | None:
    """The license the weights came under, as the card of the folder they were loaded from says (a packaged
    checkpoint's card, or a local folder's, which a DynaKD run passes on); None for a hub id (not fetched)."""
    if not name:
        return None
    try:
        folder = Path(packaged.resolve(name)).expanduser()
    except DynaKDError:  # a packaged alias whose package is missing: nothing to pass on
        return None
    found = _card_field(folder, "license")
    return found if isinstance(found, str) else None


def _card_field(folder: Path, field: str):
    """A metadata field of the model card in ``folder``, or None (a folder path is never sent to the hub)."""
    if not (folder / CARD_NAME).is_file():
        return None
    try:
        return getattr(ModelCard.load(folder / CARD_NAME).data, field, None)
    except Exception:  # noqa: BLE001 - a card another tool wrote in another shape: no provenance to pass on
        return None


def model_ref(name: str) -> str:
    """A model as the card names it: a hub id as it is; a local folder by its name (the card may be published, the
    machine's paths are not), with the hub model it was fine-tuned from when its own card says."""
    if hub := packaged.hub_id(name):
        return f"`{hub}`"
    if not Path(name).expanduser().exists():
        return f"`{name}`"
    folder = Path(name).expanduser()
    base = base_model(name)
    if "knowledge-distillation" in (_card_field(folder, "tags") or []):  # (a student DynaKD distilled: not fine-tuned)
        # (not "distilled from X weights", which read as distilled from X: X is where its weights started)
        weights = f"; its weights started from `{base}`" if base else ""
        return f"`{_name(folder)}` (a local folder, a student distilled with DynaKD{weights})"
    return f"`{_name(folder)}` (a local folder{f', fine-tuned from `{base}`' if base else ''})"


def _shape(name: str) -> str | None:
    """A local model's architecture and size from its config, ``MPNetForSequenceClassification, 12 layers x 768``;
    None where it is not on this machine (a hub id is not fetched for a card) or says no such thing."""
    from .models import local_config

    config = local_config(name)
    width = getattr(config, "hidden_size", None)
    if config is None or not (config.architectures and width):
        return None
    layers = config.num_hidden_layers
    return f"{config.architectures[0]}, {layers} layer{'s' if layers != 1 else ''} x {width}"


def _public_data(cfg: DistillConfig, task: TaskSpec, rows: dict[str, int] | None = None) -> bool:
    """Trained on a GLUE task or SQuAD: from the hub, or a ``data_dir`` whose evaluation files hold the hub splits'
    rows (a copy of GLUE's files); not a user's files, GLUE-layout files of other rows, or the synthetic corpus."""
    return not (cfg.synthetic or task.is_user_data or cfg.train_file or cfg.validation_file
                or _own_rows(cfg, task, rows))


def _whole_public_split(cfg: DistillConfig, task: TaskSpec, rows: dict[str, int] | None = None) -> bool:
    """Scores that may be published as the dataset's: its whole validation split, nothing held out of it."""
    return _public_data(cfg, task, rows) and not (cfg.dev_split or cfg.max_eval_samples or cfg.train_articles)


def _own_rows(cfg: DistillConfig, task: TaskSpec, rows: dict[str, int] | None) -> str | None:
    """Where a ``data_dir``'s evaluation files are not GLUE's own, what they held against GLUE's splits (``60 rows in
    validation_matched, where GLUE's holds 9815; ...``); None for the hub's rows or a copy of GLUE's files. Files
    whose rows are not known (a record written before 2026-12-07) count as one's own: a user's GLUE-layout files were
    published as GLUE's validation split (a user's walkthrough)."""
    if not cfg.data_dir or cfg.synthetic or not task.reads_data_dir:
        return None
    return rows_not_glues(task, rows)


def _local_glue(cfg: DistillConfig, task: TaskSpec) -> str:
    """GLUE-layout files of one's own, as the card names them: ``MNLI files of the local folder `data```."""
    return f"{task.glue_dir} files of the local folder `{_name(Path(cfg.data_dir))}`"


def _named_dataset(cfg: DistillConfig, split: str) -> str:
    """A dataset by name (task 'dataset') as the card names it: ``the `imdb` dataset (split `train`)``, a folder by
    its own name."""
    name = cfg.dataset if _hub_id(cfg) else _name(Path(cfg.dataset))
    config = f", config `{cfg.dataset_config}`" if cfg.dataset_config else ""
    return f"the `{name}` dataset (split `{split}`{config})"


def _hub_id(cfg: DistillConfig) -> list[str] | None:
    """The card's ``datasets`` of a hub dataset by name (task 'dataset'; a local folder is none)."""
    if not cfg.dataset:
        return None
    local = os.path.isdir(os.path.expanduser(cfg.dataset)) or is_path(cfg.dataset)  # (a folder moved since)
    return None if local else [cfg.dataset]


def _hub_dataset(task: TaskSpec) -> tuple[str, str, str]:
    """``(hub id, config, display name)`` of a public task's dataset."""
    return HUB_DATASETS.get(task.name, ("nyu-mll/glue", task.name, f"GLUE {task.glue_dir or task.name}"))


def _scores(evaluated: dict[str, Any], task: TaskSpec, cfg: DistillConfig) -> dict[tuple[str, str], float]:
    """``{(split, metric): value}`` of the task's metrics (MNLI's keys name their split: ``validation_matched_``)."""
    scores = {}
    for key, value in evaluated.items():
        for metric in task.metrics:
            if key == metric or key.endswith(f"_{metric}"):
                split = key[: -len(metric) - 1] if key != metric else task.eval_splits[0]
                if task.reads_dataset:  # (the dataset's own split: DynaKD calls the one it scores "validation")
                    split = cfg.eval_split
                if cfg.dev_split:  # the rest of the split the model trained on part of
                    split = f"{split} ({1 - cfg.dev_split:.0%} held out)"
                scores[(split, metric)] = math.nan if value is None else float(value)  # null: not computable
    return scores


def _eval_results(scores: dict[tuple[str, str], float], task: TaskSpec) -> list[EvalResult] | None:
    hub_id, config, name = _hub_dataset(task)
    results = [
        EvalResult(task_type=task_type(task), dataset_type=hub_id, dataset_name=name, dataset_config=config,
                   dataset_split=split, metric_type=HUB_METRICS.get(metric, metric), metric_value=round(value, 4))
        for (split, metric), value in scores.items()
        if math.isfinite(value)  # a score that could not be computed is no result to publish
    ]
    return results or None


def parameters_said(n: float) -> str:
    """A parameter count as cards, notes and tables give it: 3 significant digits, in millions below a billion
    (``15.6M``, ``0.0512M``: a tiny model's is not 0.0M), else in billions (``1.1B``, not ``1.1e+03M``)."""
    return f"{n / 1e9:.3g}B" if n >= 999.5e6 else f"{n / 1e6:.3g}M"


def method_label(cfg: DistillConfig) -> str:
    """``method `full`, layer aligner `ot``` (the aligner only for methods that match layers)."""
    align = cfg.resolved_align()
    layers = ""
    if align.name == "fixed" and align.layers:
        layers = f" (teacher layers {', '.join(map(str, align.layers))}, 1-based)"
    elif align.name == "fixed" and align.fixed_map != "uniform":  # alignment.json holds the layers
        layers = f" ({map_said(align.fixed_map, cfg.seed)})"
    elif align.name in ("attention", "ot"):  # (what changes the layers a plan prefers; tau or eps only sharpen it)
        said = options_said(align.name == "attention" and align.relative, align.order_prior)
        layers = f" ({said})" if said else ""
    aligner = f", layer aligner `{align.name}`{layers}" if cfg.terms["feature"] else ""
    return f"method `{cfg.method}`{aligner}"


def _title(out: Path, cfg: DistillConfig) -> str:
    """The model's name: its hub repository's when it is pushed (the page it heads), else its folder's."""
    return (cfg.push_to_hub or _name(out)).split("/")[-1]


def _name(out: Path) -> str:
    """A folder's name, also for ``.`` (``--output .``, a teacher given as ``.``), whose ``name`` is empty."""
    return out.name or out.resolve().name


def task_type(task: TaskSpec) -> str:
    return "question-answering" if task.is_qa else "text-classification"


def _kept_layers(out: Path) -> str:
    """`` (1 and 4 ...)``: the teacher layers a student built from them kept, as its config.json records them
    (``dynakd_teacher_layers``); empty when it does not."""
    ids = jsonfile.field(out / "config.json", "dynakd_teacher_layers")
    return f" ({_layers_said(ids)})" if isinstance(ids, list) and ids else ""


def _layers_said(ids: list[int]) -> str:
    """Teacher layers by their 0-based ids, as the alignment plot and the logged alignment count them (from 1) and as
    ``student_layer_ids`` takes them: ``1 and 4, counted from 1; student_layer_ids 0, 3``.
    (A user read "0, 5" in the card beside teacher layer 1 to 6 in the plot, a user's walkthrough of 2026-12-07.)"""
    ones = [str(i + 1) for i in ids]
    said = ones[0] if len(ones) == 1 else f"{', '.join(ones[:-1])} and {ones[-1]}"
    return f"{said}, counted from 1; student_layer_ids {', '.join(map(str, ids))}"


def _body(out: Path, command: str, cfg: DistillConfig, task: TaskSpec, metrics: dict[str, Any],
          scores: dict[tuple[str, str], float]) -> str:
    model = metrics.get("model", {})
    size = f"{model['layers']}-layer, {parameters_said(model['parameters'])}-parameter " if model else ""
    own = cfg.train_file or (cfg.validation_file if cfg.dev_split else None)  # a user's file: named by itself
    own_rows = _own_rows(cfg, task, metrics.get("eval_split_rows"))  # (GLUE-layout files of other rows)
    data = ("the built-in synthetic sentiment corpus" if cfg.synthetic
            else f"{cfg.dev_split:.0%} of {_named_dataset(cfg, cfg.eval_split)}" if task.reads_dataset and cfg.dev_split
            else _named_dataset(cfg, cfg.train_split) if task.reads_dataset
            else f"{cfg.dev_split:.0%} of `{Path(own).name}`" if own and cfg.dev_split
            else f"`{Path(own).name}`" if own
            else f"{cfg.dev_split:.0%} of the evaluation rows of the {_local_glue(cfg, task)}" if own_rows and
            cfg.dev_split
            else _local_glue(cfg, task) if own_rows
            else f"{cfg.dev_split:.0%} of the {_hub_dataset(task)[2]} validation split" if cfg.dev_split
            else _hub_dataset(task)[2])
    if command == "distill" and cfg.method == "task":  # (the teacher gave its layers, and no signal)
        origin = (f"a {size}student trained with DynaKD on {data} with the task's loss alone (method `task`, no "
                  f"distillation), built from layers of {model_ref(cfg.teacher)}.")
    elif command == "distill":
        origin = f"a {size}student distilled with DynaKD from the teacher {model_ref(cfg.teacher)} on {data}: "
        origin += f"{method_label(cfg)}."
        start = (model_ref(cfg.student) if cfg.student
                 else f"teacher layers {_layers_said(cfg.student_layer_ids)}" if cfg.student_layer_ids
                 else f"{cfg.student_layers} evenly spaced teacher layers{_kept_layers(out)}" if cfg.student_layers != 1
                 else f"1 teacher layer{_kept_layers(out)}")
        origin += f" The student started from {start}."
        shapes = [f"{role} {shape}" for role, name in (("teacher", cfg.teacher), ("student", str(out)))
                  if (shape := _shape(name))]
        origin += f" ({'; '.join(shapes)}.)" if len(shapes) == 2 else ""  # (two architectures and widths may differ)
    else:
        origin = f"a {size}model fine-tuned with DynaKD from {model_ref(cfg.model)} on {data}."
    lines = [f"# {_title(out, cfg)}", "", f"This is {origin}", "", "## Results", ""]
    lines += _results_table(metrics, scores, task, cfg)
    scored = _evaluated_on(cfg, task)
    if own_rows:
        files = f"the {1 - cfg.dev_split:.0%} of the evaluation rows held out" if cfg.dev_split \
            else "the evaluation files"
        lines += ["", f"Scored on {scored or files} of the local folder, whose rows are not GLUE's "
                      f"({own_rows}): these are not the dataset's published scores."]
    elif scored:
        lines += ["", f"Scored on {scored}, not the whole split: these are not the dataset's published scores."]
    lines += ["", "## Training", "", "| setting | value |", "|---|---|"]
    train = metrics.get("train", {})
    settings = [("length", f"{cfg.max_steps} step{'s' * (cfg.max_steps != 1)}" if cfg.max_steps > 0
                           else f"{cfg.epochs:g} epoch{'s' * (cfg.epochs != 1)}"),
                ("batch size", _batch(cfg, train.get("processes", 1))),
                ("learning rate", f"{cfg.lr:g}"), ("seed", cfg.seed), ("max sequence length", cfg.max_seq_length)]
    if task.is_qa:
        settings.append(("window overlap (doc stride)", cfg.stride()))
    if command == "distill" and cfg.terms["logit"]:
        settings.append(("logit-KD temperature", f"{cfg.temperature:g}"))
    if cfg.max_train_samples:
        settings.append((f"training {_rows(task)}", f"{cfg.max_train_samples}, a seeded subset "
                                                   f"({_subset(cfg.max_train_samples, cfg.data_seed)})"))
    if cfg.bf16 or cfg.fp16:  # the scores above were computed under the same autocast
        settings.append(("mixed precision", cfg.precision()))
    if cfg.transfer_samples and command == "distill":
        settings.append(("transfer rows (teacher labels only)", cfg.transfer_samples))
    if scored:
        settings.append(("evaluated on", scored))
    lines += [f"| {k} | {v} |" for k, v in settings]
    # a model of its own code (config.json's auto_map, saved beside it) loads with trust_remote_code, whatever the run
    # was given: a flag given to a model without any would teach readers to trust code needlessly
    own_code = jsonfile.field(out / "config.json", "auto_map") is not None
    again = " with `--trust-remote-code` (the model's own code)" if own_code else ""
    lines += ["", f"Every setting is in `dynakd.yaml`: `dynakd {command} --config dynakd.yaml --output NEW_FOLDER`"
              f"{again}, started where the run was (relative paths in it are relative to that folder), trains it "
              "again. `metrics.json` holds the scores.", "", "## Use", "", "```python",
              *_usage(task, cfg.push_to_hub or "path/to/" + _name(out), cfg, own_code), "```", ""]
    return "\n".join(lines)


def _evaluated_on(cfg: DistillConfig, task: TaskSpec) -> str | None:
    """The part of an evaluation split the scores are of, when it is not the whole split (a held-out ``dev_split``
    part is named with the data already)."""
    part = (f"the articles of `{Path(cfg.train_file).name}` after the first {cfg.train_articles}"
            if cfg.train_articles and cfg.train_file else None)
    if cfg.max_eval_samples:  # data.subsample: the seeded order's first rows
        part = (f"{cfg.max_eval_samples} {_rows(task)} (a seeded subset: "
                f"{_subset(cfg.max_eval_samples, cfg.data_seed)}) of " + (part or "the evaluation split"))
    return part


def _subset(n: int, seed: int) -> str:
    """Which rows a seeded subset of ``n`` holds (``data.subsample``), as one can draw them again."""
    return f"the first {n} after datasets' `shuffle(seed={seed})`, data_seed {seed}"


def _rows(task: TaskSpec) -> str:
    return "questions" if task.is_qa else "rows"


def _usage(task: TaskSpec, where: str, cfg: DistillConfig, own_code: bool = False) -> list[str]:
    """Loading code that runs on current transformers (whose pipelines no longer include question answering), and
    that cuts inputs where training and scoring did (the tokenizer's own limit is the base model's, often 512). For
    extractive QA, the answer as scoring picked it: the best span of context tokens over every window of a long
    context (``squad.postprocess``, in a few lines: the card is read by people without DynaKD)."""
    max_length = cfg.max_seq_length
    own = ", trust_remote_code=True" if own_code else ""
    if task.is_qa:
        return ["import torch",
                "from transformers import AutoModelForQuestionAnswering, AutoTokenizer", "",
                f'tokenizer = AutoTokenizer.from_pretrained("{where}"{own})',
                f'model = AutoModelForQuestionAnswering.from_pretrained("{where}"{own})', "",
                "def answer(question, context):",
                f"    # trained and scored on windows of {max_length} tokens overlapping by {cfg.stride()}: a long "
                "context takes",
                "    # several, and the answer is the best span of context tokens over all of them",
                '    enc = tokenizer(question, context, truncation="only_second", '
                f"max_length={max_length}, stride={cfg.stride()},",
                "                    return_overflowing_tokens=True, return_offsets_mapping=True, padding=True,",
                '                    return_tensors="pt")',
                '    offsets = enc.pop("offset_mapping").tolist()',
                '    enc.pop("overflow_to_sample_mapping")',
                "    with torch.no_grad():",
                "        out = model(**enc)",
                "    best = (float(\"-inf\"), 0, 0)",
                "    for w in range(len(offsets)):",
                "        ctx = {i for i, s in enumerate(enc.sequence_ids(w)) if s == 1}",
                f"        top_s = out.start_logits[w].topk({cfg.n_best}).indices.tolist()",
                f"        top_e = out.end_logits[w].topk({cfg.n_best}).indices.tolist()",
                "        for i in top_s:",
                "            for j in top_e:",
                f"                if i in ctx and j in ctx and i <= j < i + {cfg.max_answer_length}:",
                "                    score = float(out.start_logits[w, i] + out.end_logits[w, j])",
                "                    if score > best[0]:",
                "                        best = (score, offsets[w][i][0], offsets[w][j][1])",
                "    return context[best[1]:best[2]]"]
    lines = ["from transformers import pipeline", "",
             f"# trained and scored on the first {max_length} tokens of each input",
             f'classifier = pipeline("text-classification", model="{where}", truncation=True, '
             f"max_length={max_length}{own})"]
    if task.is_pair:  # (a pair given as two strings would be read as two inputs)
        first, second = task.text_columns
        lines.append(f'classifier({{"text": "<{first}>", "text_pair": "<{second}>"}})  # a pair: {first} first')
    if task.is_regression:
        lines.append("# regression: each answer's score is the predicted value (no softmax)")
    return lines


def _batch(cfg: DistillConfig, processes: int) -> str:
    """The effective batch, and how it is made when it is more than one device's batch."""
    steps, total = cfg.gradient_accumulation_steps, cfg.batch_size * cfg.gradient_accumulation_steps * processes
    if total == cfg.batch_size:
        return str(total)
    return f"{total} ({cfg.batch_size} per device x {steps} accumulation step(s) x {processes} process(es))"


def _shown(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "n/a (could not be computed)"


def _results_table(metrics: dict[str, Any], scores: dict[tuple[str, str], float], task: TaskSpec,
                   cfg: DistillConfig) -> list[str]:
    if not scores:
        return ["No scores were recorded."]
    teacher = _scores(metrics.get("teacher_eval", {}), task, cfg)
    rows = ["| split | metric | this model |" + (" teacher |" if teacher else ""),
            "|---|---|---|" + ("---|" if teacher else "")]
    for key, value in scores.items():
        cells = [*key, _shown(value)] + ([_shown(teacher[key]) if key in teacher else ""] if teacher else [])
        rows.append("| " + " | ".join(cells) + " |")
    return rows
