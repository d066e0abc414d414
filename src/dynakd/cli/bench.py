"""``dynakd bench``: time training steps of task, kd and full (each aligner), with and without the teacher cache."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..errors import DynaKDError
from .options import (
    DATA_FLAGS,
    RUN_FOLDER_SWITCHES,
    SWITCHES,
    TRAIN_FLAGS,
    add_common,
    add_flags,
    config_from_args,
    given_settings,
)

BENCH_TRAIN_FLAGS = ("--batch-size", "--seed", "--torch-compile-mode")  # the training flags a bench reads
# What a bench reads of the data (it trains a few steps of sentence classification or extractive QA and evaluates
# nothing), with its own defaults
BENCH_DATA_FLAGS = {
    "--task": ("task", str, "GLUE sentence-classification task (sst2 mrpc qnli mnli qqp rte cola stsb), csv / json, "
                            "dataset (--dataset), or squad (extractive QA) (default sst2)"),
    "--train-file": ("train_file", str, "training file for --task csv/json, or a SQuAD v1.1 json file for squad"),
    **{k: DATA_FLAGS[k] for k in ("--dataset", "--dataset-config", "--train-split", "--text-columns",
                                  "--label-column")},
    "--data-dir": ("data_dir", str, "folder in the GLUE TSV layout (DIR/SST-2/train.tsv ...); default: the "
                                    "synthetic corpus"),
    "--max-seq-length": ("max_seq_length", int, "truncate inputs to this many tokens (default 64; squad: windows of "
                                                "384, as SQuAD is usually trained)"),
    "--max-train-samples": ("max_train_samples", int, "a fixed seeded subset of the training rows (default 2048)"),
}
BENCH_DEFAULTS = {"student_layers": 2, "max_seq_length": 64, "max_train_samples": 2048, "max_eval_samples": 1}
QA_WINDOW = 384  # bench's window length for extractive QA: the one SQuAD is trained with (BERT's, the paper's)
BENCH_FLAGS = [BENCH_DATA_FLAGS, {k: TRAIN_FLAGS[k] for k in BENCH_TRAIN_FLAGS},
               {"--student-layers": ("student_layers", int, "student built from the teacher's layers (default 2)")}]


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time training steps of task, kd and full (each aligner), with and without cache",
                       description="Times full training steps of each method (and aligner), with the live teacher "
                                   "and with the teacher-output cache (built in a temporary folder), after a warm-up; "
                                   "prints median and spread, peak memory and operators per step, ratios to the "
                                   "student alone (task).")
    add_common(p, switches=SWITCHES.keys() - RUN_FOLDER_SWITCHES)  # one JSON file: no run folder to resume
    p.add_argument("--teacher", default=None, help="teacher folder or hub id (default: the packaged MiniLM-L6)")
    add_flags(p, *BENCH_FLAGS)
    p.add_argument("--output", default=None,
                   help="JSON file for the results, and their chart beside it (.png; default: print only)")
    p.add_argument("--methods", default="task,kd,full", help="comma-separated methods (default task,kd,full)")
    p.add_argument("--aligners", default="fixed,attention,ot",
                   help="comma-separated aligners for layer methods (default fixed,attention,ot)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per configuration (default 30)")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps (default 5)")
    p.add_argument("--repeats", type=int, default=None,
                   help="times each configuration is run, interleaved with the others (default 3; 1 with --epoch)")
    p.add_argument("--epoch", action="store_true",
                   help="time one whole epoch over the training rows per configuration instead of --steps steps "
                        "(the teacher pass that fills the cache timed apart)")


def run(args: argparse.Namespace) -> None:
    from ..data.tasks import get_task
    from ..demo import teacher_base
    from ..experiments.bench import run_bench

    if args.epoch and (args.steps is not None or args.warmup is not None):
        raise DynaKDError("--epoch times one whole epoch, its first steps included: --steps and --warmup do not apply")

    out = args.output
    args.output = None  # the bench writes a JSON file, not a run folder
    defaults = {"teacher": teacher_base(), **BENCH_DEFAULTS}  # --teacher over a --config or --set one, as flags are
    given = given_settings(args, BENCH_FLAGS)
    if get_task(str(given.get("task") or "sst2")).is_qa and given.get("max_seq_length") is None:
        defaults["max_seq_length"] = QA_WINDOW  # a QA step is timed on the windows a QA run trains on
    cfg = config_from_args(args, BENCH_FLAGS, defaults=defaults, **({"teacher": args.teacher} if args.teacher else {}))
    try:
        run_bench(cfg, methods=names(args.methods, "--methods"), aligners=names(args.aligners, "--aligners"),
                  steps=30 if args.steps is None else args.steps, warmup=5 if args.warmup is None else args.warmup,
                  output=Path(out) if out else None, epoch=args.epoch,
                  repeats=(1 if args.epoch else 3) if args.repeats is None else args.repeats)
    except DynaKDError as e:  # (the data's advice names distill's flag, which bench lacks: its setting it takes)
        said = re.sub(r"--dev-split (\S+)", r"--set dev_split=\1", str(e))
        if said == str(e):
            raise
        raise DynaKDError(said) from None


def names(value: str, flag: str) -> list[str]:
    """A comma-separated list of names; an empty one (a stray comma) is refused rather than read as a name."""
    parts = [part.strip() for part in value.split(",")]
    if not all(parts):
        raise DynaKDError(f"{flag} {value!r} holds an empty name (a stray comma?)")
    return parts
