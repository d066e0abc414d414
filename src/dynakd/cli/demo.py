"""``dynakd demo``: the offline demo (fine-tune MiniLM, distil 2-layer students with kd and full, compare)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
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


def run(args: argparse.Namespace) -> None:
    from ..demo import run_demo

    run_demo(args.output, task=args.task, data_dir=args.data_dir, train_file=args.train_file,
             synthetic=args.synthetic, max_train_samples=args.max_train_samples, epochs=args.epochs,
             progress=not args.no_progress)
