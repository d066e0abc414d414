"""``dynakd``: one entry point, one sub-command per job. Wiring only: parse flags, build the config, call the runner.

Errors a user can fix are printed as one line (``dynakd: error: ...``) with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

from ..errors import DynaKDError
from .options import (
    DATA_FLAGS,
    EVALUATE_SWITCHES,
    METHOD_FLAGS,
    RUN_FOLDER_SWITCHES,
    SWITCHES,
    TRAIN_FLAGS,
    add_common,
    add_flags,
    config_from_args,
    given_settings,
)

BENCH_TRAIN_FLAGS = ("--batch-size", "--seed", "--torch-compile-mode")  # the training flags a bench reads
# What a bench reads of the data (it trains a few steps of sentence classification and evaluates nothing), with its
# own defaults
BENCH_DATA_FLAGS = {
    "--task": ("task", str, "GLUE sentence-classification task (sst2 mrpc qnli mnli qqp rte cola stsb) or csv / json "
                            "(default sst2)"),
    "--train-file": ("train_file", str, "training file for --task csv/json"),
    **{k: DATA_FLAGS[k] for k in ("--text-columns", "--label-column")},
    "--data-dir": ("data_dir", str, "folder in the GLUE TSV layout (DIR/SST-2/train.tsv ...); default: the "
                                    "synthetic corpus"),
    "--max-seq-length": ("max_seq_length", int, "truncate inputs to this many tokens (default 64)"),
    "--max-train-samples": ("max_train_samples", int, "a fixed seeded subset of the training rows (default 2048)"),
}
BENCH_DEFAULTS = {"student_layers": 2, "max_seq_length": 64, "max_train_samples": 2048, "max_eval_samples": 1}
BENCH_FLAGS = [BENCH_DATA_FLAGS, {k: TRAIN_FLAGS[k] for k in BENCH_TRAIN_FLAGS},
               {"--student-layers": ("student_layers", int, "student built from the teacher's layers (default 2)")}]
FINETUNE_DATA_FLAGS = {k: v for k, v in DATA_FLAGS.items() if k != "--transfer-samples"}  # labelled rows only
# What scoring a model reads: no training rows besides those a dev split or SQuAD's articles hold out.
EVALUATE_FLAGS = {
    **{k: v for k, v in DATA_FLAGS.items() if k not in ("--max-train-samples", "--transfer-samples")},
    # a DynaKD run folder lends its own task, data and input length (rundir.evaluation_defaults)
    "--task": ("task", str, "GLUE task (sst2 mrpc qnli mnli qqp rte cola stsb), squad (extractive QA) or csv / json "
                            "(default: the task a DynaKD run folder was trained on, else sst2)"),
    "--dev-split": ("dev_split", float, "score the part of dev that a run trained with --dev-split F held out (a "
                                        "DynaKD run folder's own by default)"),
    "--max-seq-length": ("max_seq_length", int, "truncate inputs to this many tokens (default: a DynaKD run "
                                                "folder's, else 128)"),
    "--output": ("output", str, "folder for metrics.json (default: the model folder, under the key 'evaluate')"),
    "--seed": TRAIN_FLAGS["--seed"],
    "--dataloader-num-workers": ("dataloader_num_workers", int, "worker processes that collate batches (default "
                                                                "0: the scoring process)"),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dynakd")
    except PackageNotFoundError:  # run from a source tree without installing
        from .. import __version__

        return __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynakd", description="Feature-dynamics knowledge distillation for transformers."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("finetune", help="fine-tune a model on a task (the teacher, or a task-only student)")
    add_common(p, "--model", SWITCHES.keys() - {"--cuda-graphs"})  # (no dynamics to replay)
    add_flags(p, FINETUNE_DATA_FLAGS, TRAIN_FLAGS)

    p = sub.add_parser("distill", aliases=["distil"], help="distil a fine-tuned teacher into a smaller student")
    add_common(p)
    p.add_argument("--teacher", default=None, help="fine-tuned teacher folder or hub id")
    add_flags(p, DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS)

    p = sub.add_parser("evaluate", help="score a model folder on a task; prints and writes metrics.json")
    add_common(p, "--model", EVALUATE_SWITCHES)
    add_flags(p, EVALUATE_FLAGS)

    p = sub.add_parser("ablate", help="run a sweep of distillation runs from a YAML file (resumable), then report")
    p.add_argument("--config", required=True,
                   help="sweep file: name, output, base, teacher, grid, smoke (see benchmarks/)")
    p.add_argument("--output", default=None, help="sweep folder (default: the file's 'output', else runs/NAME)")
    p.add_argument("--smoke", action="store_true",
                   help="shrink data and steps to a quick check of the sweep (seconds to minutes)")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="run every N-th cell from the K-th, so N processes (e.g. one per GPU) share a sweep folder")

    p = sub.add_parser("report", help="rebuild report.md and the plots of a sweep folder from its results.jsonl")
    p.add_argument("folder", help="sweep folder holding results.jsonl")

    p = sub.add_parser("bench", help="time training steps of task, kd and full (each aligner), with and without cache",
                       description="Times full training steps of each method (and aligner), with the live teacher "
                                   "and with the teacher-output cache (built in a temporary folder), after a warm-up; "
                                   "prints median and spread, peak memory and operators per step, ratios to the "
                                   "student alone (task).")
    add_common(p, switches=SWITCHES.keys() - RUN_FOLDER_SWITCHES)  # one JSON file: no run folder to resume
    p.add_argument("--teacher", default=None, help="teacher folder or hub id (default: the packaged MiniLM-L6)")
    add_flags(p, *BENCH_FLAGS)
    p.add_argument("--output", default=None, help="JSON file for the results (default: print only)")
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

    p = sub.add_parser("demo", help="offline demo: fine-tune MiniLM, distil 2-layer students with kd and full, compare")
    p.add_argument("--task", default="sst2", choices=("sst2", "squad"), help="sst2 (default) or squad")
    p.add_argument("--train-file", default=None,
                   help="squad: a SQuAD v1.1 JSON file, split by article (80%% train); default: the hub")
    p.add_argument(
        "--data-dir", default=None, help="GLUE folder with SST-2 (default: the hub if reachable, else synthetic)"
    )
    p.add_argument("--output", default="dynakd-demo", help="folder for the three runs (default ./dynakd-demo)")
    p.add_argument("--max-train-samples", type=int, default=None,
                   help="training sentences (sst2, default 4000) or questions (squad, default 2000)")
    p.add_argument("--epochs", type=float, default=None, help="epochs for teacher and students (default 1 and 2)")
    p.add_argument("--synthetic", action="store_true", help="force the built-in synthetic corpus")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.commands = sub.choices  # each command's own parser, for _parse's messages
    return parser


def _quiet_libraries() -> None:
    """Keep the Trainer's progress bar; hide the weight-loading and dataset-mapping bars."""
    import datasets
    import transformers

    # e.g. "newly initialized head" reports: DynaKD says itself what a checkpoint lacks, where it matters (models.py)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


# Commands that launch their own runs (or time one process): not under torchrun / accelerate launch.
SINGLE_PROCESS = ("demo", "ablate", "report", "bench")


def _run(args: argparse.Namespace) -> None:
    from .. import runner
    from ..distributed import is_first_process, launched_processes

    _quiet_libraries()
    if args.command in SINGLE_PROCESS and launched_processes() > 1:
        # each would run whole in every process (a sweep's cells twice, or waiting on each other's locks for ever)
        hint = {"ablate": "; to share a sweep out, run shards side by side: dynakd ablate --shard K/N (README: Sweeps)",
                "bench": "; it times one process's step"}.get(args.command, "")
        raise DynaKDError(f"dynakd {args.command} runs in one process: launch it without torchrun or accelerate "
                          f"launch{hint}")
    if args.command == "demo":
        from ..demo import run_demo

        run_demo(
            args.output,
            task=args.task,
            data_dir=args.data_dir,
            train_file=args.train_file,
            synthetic=args.synthetic,
            max_train_samples=args.max_train_samples,
            epochs=args.epochs,
            progress=not args.no_progress,
        )
        return
    if args.command == "bench":
        _bench(args)
        return
    if args.command in ("ablate", "report"):
        from ..experiments.ablate import CellsFailed, load_sweep, parse_shard, run_sweep
        from ..experiments.report import build_report

        if args.command == "report":
            print(f"report: {build_report(args.folder)}")
            return
        shard, failed = parse_shard(args.shard), None  # (the shard checked before the sweep file is read)
        try:
            results = run_sweep(load_sweep(args.config, smoke=args.smoke, output=args.output), shard)
        except CellsFailed as e:  # the other cells' report first, then the failures
            results, failed = e.results, e
        if shard[1] > 1:  # the other shards may still run: one report, when all are done
            print(f"shard {shard[0]}/{shard[1]} done; when every shard is: dynakd report {results.parent}")
        elif results.is_file():
            try:
                print(f"report: {build_report(results.parent)}")
            except DynaKDError as e:  # (the failed cells are the error to end on)
                if not failed:
                    raise
                print(f"note: no report: {e}", file=sys.stderr, flush=True)
        if failed:
            raise failed
        return
    if args.command == "finetune":
        cfg = config_from_args(args, [FINETUNE_DATA_FLAGS, TRAIN_FLAGS])
        result = runner.finetune(cfg)
    elif args.command == "distill":
        from ..rundir import note_not_read, teacher_task

        extra = {"teacher": args.teacher} if args.teacher else {}
        groups = [DATA_FLAGS, TRAIN_FLAGS, METHOD_FLAGS]
        given = given_settings(args, groups)
        cfg = config_from_args(args, groups, defaults=teacher_task(extra.get("teacher") or given.get("teacher"),
                                                                    given), **extra)
        note_not_read(cfg, given)
        result = runner.distill(cfg)
    else:
        from ..rundir import evaluation_defaults

        # a model folder DynaKD wrote is scored on its task and data, with the input length (and QA windows) it was
        # trained with, unless the command says otherwise
        given = given_settings(args, [EVALUATE_FLAGS])
        model = given.get("model")  # --model, or the model a --config names (checked whole below)
        saved = evaluation_defaults(os.path.expanduser(str(model)), given) if model else {}
        cfg = config_from_args(args, [EVALUATE_FLAGS], defaults=saved)
        result = runner.evaluate(cfg)
    scores = ", ".join(f"{k}={v:.4f}" for k, v in result.metrics["eval"].items() if _is_score(k, v))
    teacher = ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.get("teacher_eval", {}).items() if _is_score(k, v))
    if is_first_process():  # one report from a multi-process run
        print(f"{args.command}: {scores}" + (f"\nteacher: {teacher}" if teacher else "")
              + f"\nwritten to {result.output}")


def _bench(args: argparse.Namespace) -> None:
    from ..demo import teacher_base
    from ..experiments.bench import run_bench

    if args.epoch and (args.steps is not None or args.warmup is not None):
        raise DynaKDError("--epoch times one whole epoch, its first steps included: --steps and --warmup do not apply")

    out = args.output
    args.output = None  # the bench writes a JSON file, not a run folder
    defaults = {"teacher": teacher_base(), **BENCH_DEFAULTS}  # --teacher over a --config or --set one, as flags are
    cfg = config_from_args(args, BENCH_FLAGS, defaults=defaults, **({"teacher": args.teacher} if args.teacher else {}))
    run_bench(cfg, methods=names(args.methods, "--methods"), aligners=names(args.aligners, "--aligners"),
              steps=30 if args.steps is None else args.steps, warmup=5 if args.warmup is None else args.warmup,
              output=Path(out) if out else None, epoch=args.epoch,
              repeats=(1 if args.epoch else 3) if args.repeats is None else args.repeats)


def names(value: str, flag: str) -> list[str]:
    """A comma-separated list of names; an empty one (a stray comma) is refused rather than read as a name."""
    parts = [part.strip() for part in value.split(",")]
    if not all(parts):
        raise DynaKDError(f"{flag} {value!r} holds an empty name (a stray comma?)")
    return parts


def _is_score(key: str, value) -> bool:
    return isinstance(value, float) and not key.endswith(("runtime", "per_second", "loss"))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse; an unknown flag is reported by its command's parser (its usage, not the top level's), with the closest
    flag of that command or the commands that do take it."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # (argparse has no public way to list a parser's flags: its option-string table has been stable for years)
        commands = parser.commands
        own = commands[args.command]
        hints = []
        for flag in (x.split("=")[0] for x in extra if x.startswith("--")):
            close = difflib.get_close_matches(flag, own._option_string_actions, n=1, cutoff=0.7)
            elsewhere = sorted({name for name, p in commands.items() if flag in p._option_string_actions} - {"distil"})
            if close:
                hints.append(f"did you mean {close[0]}?")
            elif elsewhere:
                hints.append(f"{flag} is an option of {', '.join(elsewhere)}")
        own.error(f"unrecognized arguments: {' '.join(extra)}" + (f" ({'; '.join(hints)})" if hints else ""))
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    args.command = {"distil": "distill"}.get(args.command, args.command)  # the alias runs the command it names
    try:
        _run(args)
    except DynaKDError as e:
        # under a launcher each process may stop on its own: say which (most say the same; process 0 is the one read)
        from ..distributed import launched_processes  # (loaded by then: errors come from _run)

        rank = f"[rank {os.environ.get('RANK', '?')}] " if launched_processes() > 1 else ""
        print(f"dynakd: error: {rank}{e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dynakd: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
