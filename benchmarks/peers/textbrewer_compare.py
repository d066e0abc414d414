"""DynaKD next to TextBrewer: the same teacher, student, data and loss, one training epoch each, timed.

The loss is TextBrewer's closest preset to a DynaKD method: hard-label cross-entropy + logit KD (temperature 2) +
hidden-state MSE through a learned linear projection on a fixed layer map (TinyBERT's uniform map, teacher layers
3 and 6 for a 2-layer student of a 6-layer teacher). In DynaKD that is ``--method static --align fixed``.

Both tools get the same student (built from the teacher's layers with the same seed), the same tokenised data
(DynaKD's collator, dynamic padding, random batches of 32), AdamW at the same learning rate with linear decay after
6% warm-up, gradient clipping at 1.0, fp32. Runs alternate (TextBrewer, DynaKD, ...) so all see the same machine
load; each run is one epoch timed end to end (data loading, teacher and student passes, optimiser steps). DynaKD is
also timed with its defaults on top: length-grouped batches, then the teacher-output cache as well (its teacher pass
over the data included in the time).

    pip install textbrewer
    python benchmarks/peers/textbrewer_compare.py --teacher runs/b1-pilot-L2/teacher-seed42 \
        --data-dir ../shared/data/glue --samples 4000 --repeats 2 --output benchmarks/peers/cpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np
import torch
import transformers
from torch.utils.data import DataLoader
from transformers import Trainer, get_linear_schedule_with_warmup
from transformers.trainer_callback import PrinterCallback

import dynakd
from dynakd.cache import prepare_teacher_cache
from dynakd.config import build_config
from dynakd.data.load import load_data
from dynakd.data.prepare import DistillationCollator, tokenize
from dynakd.experiments.bench import processor_name
from dynakd.features import EXAMPLE_ID
from dynakd.models import load_classifier, load_tokenizer
from dynakd.runner import build_distiller, training_args
from dynakd.students import build_student
from dynakd.trainer import DistillationTrainer

TEACHER_LAYERS_FOR = {2: [3, 6], 3: [2, 4, 6]}  # 1-based, TinyBERT's uniform map (dynakd.align.fixed.fixed_map)


def dev_accuracy(model, data, collator, batch_size: int = 64) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for batch in DataLoader(data, batch_size=batch_size, collate_fn=collator):
            labels = batch.pop("labels")
            correct += int((model(**batch).logits.argmax(-1) == labels).sum())
    return 100.0 * correct / len(data)


def run_textbrewer(cfg, teacher, data, collator, tmp: Path) -> dict:
    import textbrewer
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig

    torch.manual_seed(cfg.seed)
    student = build_student(teacher, cfg.student_layers)
    for model in (teacher, student):
        model.config.output_hidden_states = True
    width_s, width_t = student.config.hidden_size, teacher.config.hidden_size
    # DynaKD's loss, term for term: its logit term is T^2 KL (TextBrewer's soft cross-entropy differs from KL by the
    # teacher's entropy, a constant, and carries no T^2), and its hidden term the mean over the student's layers
    # (plan_loss), where TextBrewer sums its matches; the MSE itself is the same masked mean over tokens and width
    layers = TEACHER_LAYERS_FOR[cfg.student_layers]
    matches = [
        {"layer_T": lt, "layer_S": m + 1, "feature": "hidden", "loss": "hidden_mse",
         "weight": cfg.beta.start / len(layers), "proj": ["linear", width_s, width_t]}
        for m, lt in enumerate(layers)
    ]
    distill_config = DistillationConfig(temperature=cfg.temperature, hard_label_weight=1.0, kd_loss_type="ce",
                                        kd_loss_weight=cfg.temperature**2, intermediate_matches=matches)
    train_config = TrainingConfig(device="cpu" if not torch.cuda.is_available() else "cuda", log_dir=str(tmp / "tb"),
                                  output_dir=str(tmp / "tb-out"), ckpt_frequency=1, ckpt_epoch_frequency=1)

    def adaptor(batch, out):
        return {"logits": out.logits, "hidden": out.hidden_states, "inputs_mask": batch["attention_mask"],
                "losses": out.loss}

    distiller = GeneralDistiller(train_config=train_config, distill_config=distill_config, model_T=teacher,
                                 model_S=student, adaptor_T=adaptor, adaptor_S=adaptor)
    g = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(data["train"], batch_size=cfg.batch_size, shuffle=True, collate_fn=collator, generator=g)
    # The Trainer's parameter groups: no weight decay on biases and LayerNorm weights. TextBrewer adds the projection's
    # parameters to the optimiser itself with the first group's settings: no decay either, as DynaKD's distiller has.
    decay = set(Trainer.get_decay_parameter_names(None, student))
    named = list(student.named_parameters())
    optimizer = torch.optim.AdamW([{"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
                                   {"params": [p for n, p in named if n in decay], "weight_decay": cfg.weight_decay}],
                                  lr=cfg.lr)
    steps = len(loader)
    start = time.perf_counter()
    distiller.train(optimizer, loader, num_epochs=1, scheduler_class=get_linear_schedule_with_warmup,
                    scheduler_args={"num_warmup_steps": int(cfg.warmup_ratio * steps), "num_training_steps": steps},
                    max_grad_norm=cfg.max_grad_norm)
    seconds = time.perf_counter() - start
    for model in (teacher, student):
        model.config.output_hidden_states = False
    return {"tool": f"textbrewer {textbrewer.__version__}", "epoch_s": round(seconds, 1), "steps": steps,
            "dev_accuracy": round(dev_accuracy(student, data["validation"], collator), 2)}


def run_dynakd(cfg, task, teacher, data, collator, tmp: Path, cache: bool, grouped: bool = False) -> dict:
    cfg = dataclasses.replace(cfg, teacher_cache=str(tmp / "cache") if cache else "off", group_by_length=grouped)
    torch.manual_seed(cfg.seed)
    student = build_student(teacher, cfg.student_layers)
    distiller = build_distiller(cfg, student, teacher, task, same_tok=True)
    args = dataclasses.replace(training_args(cfg, tmp / "dynakd"), report_to=[], eval_strategy="no",
                               logging_steps=10**9)
    train = data["train"]
    start = time.perf_counter()
    teacher_cache = prepare_teacher_cache(cfg, teacher, train, collator, args.device) if cache else None
    if teacher_cache is not None:
        train = train.add_column(EXAMPLE_ID, list(range(len(train))))
    trainer = DistillationTrainer(model=student, args=args, train_dataset=train, data_collator=collator,
                                  teacher=teacher, distiller=distiller, teacher_cache=teacher_cache)
    trainer.remove_callback(PrinterCallback)
    out = trainer.train()
    seconds = time.perf_counter() - start
    return {"tool": f"dynakd {dynakd.__version__}" + (" + length-grouped batches" if grouped else "")
            + (" + teacher cache" if cache else ""),
            "epoch_s": round(seconds, 1), "steps": out.global_step,
            "dev_accuracy": round(dev_accuracy(student, data["validation"], collator), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True, help="a fine-tuned SST-2 teacher folder")
    p.add_argument("--data-dir", default="../shared/data/glue")
    p.add_argument("--samples", type=int, default=4000, help="training sentences (a fixed subset)")
    p.add_argument("--student-layers", type=int, default=2, choices=sorted(TEACHER_LAYERS_FOR))
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--output", type=Path, default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = build_config({"teacher": a.teacher, "task": "sst2", "data_dir": a.data_dir, "max_train_samples": a.samples,
                        "max_seq_length": 64, "batch_size": 32, "lr": 1e-4, "epochs": 1, "seed": 1,
                        "student_layers": a.student_layers, "method": "static", "align": {"name": "fixed"},
                        "temperature": 2.0, "beta": 1.0, "progress": False, "output": "unused"})
    task, data = load_data(cfg)
    teacher = load_classifier(cfg.teacher, task)
    tokenizer = load_tokenizer(cfg.teacher)
    data = tokenize(data, tokenizer, cfg.max_seq_length)
    data["train"] = data["train"].remove_columns([c for c in data["train"].column_names if c == EXAMPLE_ID])
    collator = DistillationCollator(tokenizer, None, task.is_regression, pad_to_multiple_of=None)
    runs = []
    with tempfile.TemporaryDirectory(prefix="dynakd-peers-") as tmp:
        for r in range(a.repeats):
            for name, fn in (("textbrewer", lambda t: run_textbrewer(cfg, teacher, data, collator, t)),
                             ("dynakd", lambda t: run_dynakd(cfg, task, teacher, data, collator, t, cache=False)),
                             ("dynakd-grouped",
                              lambda t: run_dynakd(cfg, task, teacher, data, collator, t, cache=False, grouped=True)),
                             ("dynakd-grouped-cache",
                              lambda t: run_dynakd(cfg, task, teacher, data, collator, t, cache=True, grouped=True))):
                sub = Path(tmp) / f"{name}-{r}"
                sub.mkdir()
                runs.append({"name": name, "repeat": r, **fn(sub)})
                print(json.dumps(runs[-1]), flush=True)
    summary = {name: {"median_epoch_s": round(median(x["epoch_s"] for x in runs if x["name"] == name), 1),
                      "mean_dev_accuracy": round(float(np.mean([x["dev_accuracy"] for x in runs if x["name"] == name])),
                                                 2)}
               for name in dict.fromkeys(x["name"] for x in runs)}
    base = summary["textbrewer"]["median_epoch_s"]
    for s in summary.values():
        s["ratio_to_textbrewer"] = round(s["median_epoch_s"] / base, 3)
    result = {"summary": summary, "runs": runs,
              "setup": {"teacher": a.teacher, "samples": a.samples, "student_layers": a.student_layers,
                        "batch_size": 32, "max_seq_length": 64, "repeats": a.repeats,
                        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else processor_name(),
                        "seed": cfg.seed, "lr": cfg.lr, "temperature": cfg.temperature, "beta": cfg.beta.start,
                        "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
                        "transformers": transformers.__version__, "date": time.strftime("%Y-%m-%d")}}
    print(json.dumps(summary, indent=1))
    if a.output:
        a.output.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
