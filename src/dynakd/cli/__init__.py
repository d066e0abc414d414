"""``dynakd``: one entry point, one sub-command per job, each in a module of its own here (``distill.py`` adds the
``distill`` parser and runs it). Wiring only: parse flags, build the config, call the runner; the flags that several
commands share are in ``options.py``.

Errors a user can fix are printed as one line (``dynakd: error: ...``) with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import os
import signal
import sys
import threading
from typing import NoReturn

from ..bars import close_progress_bars
from ..errors import DynaKDError, Terminated
from . import ablate, bench, demo, distill, evaluate, finetune, report

# One module per command, in the order --help lists them: each adds its parser and runs it (a command that trains or
# scores returns its result, whose scores are printed here)
COMMANDS = {"finetune": finetune, "distill": distill, "evaluate": evaluate, "ablate": ablate, "report": report,
            "bench": bench, "demo": demo}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dynakd")
    except PackageNotFoundError:  # run from a source tree without installing
        from .. import __version__

        return __version__


class _Parser(argparse.ArgumentParser):
    """argparse's parser (each command's too: subparsers take their parent's class) whose usage errors print one
    usage line above the error, not the whole usage: a command's runs to 30 lines (a batch user's walkthrough)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"usage: {self.prog} ... (`{self.prog} --help` lists the options)\n"
                     f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dynakd", description="Feature-dynamics knowledge distillation for transformers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        command.add_parser(sub)
    for p in sub.choices.values():  # a flag's prefix is not the flag: --epoch 1 was read as --epochs 1
        p.allow_abbrev = False
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
    _check_named_models(args)  # (before torch and transformers load: seconds)
    from ..distributed import is_first_process, launched_processes

    _quiet_libraries()
    if args.command in SINGLE_PROCESS and launched_processes() > 1:
        # each would run whole in every process (a sweep's cells twice, or waiting on each other's locks for ever)
        hint = {"ablate": "; to share a sweep out, run shards side by side: dynakd ablate --shard K/N (README: Sweeps)",
                "bench": "; it times one process's step"}.get(args.command, "")
        raise DynaKDError(f"dynakd {args.command} runs in one process: launch it without torchrun or accelerate "
                          f"launch{hint}")
    with _terminated_as_interrupted(launched_processes() <= 1):
        result = COMMANDS[args.command].run(args)
    if result is None:  # (a command that prints its own outcome)
        return
    scores = ", ".join(f"{k}={v:.4f}" for k, v in result.metrics["eval"].items() if _is_score(k, v))
    teacher = ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.get("teacher_eval", {}).items() if _is_score(k, v))
    if is_first_process():  # one report from a multi-process run
        print(f"{args.command}: {scores}" + (f"\nteacher: {teacher}" if teacher else "")
              + f"\nwritten to {result.output}")


def _check_named_models(args: argparse.Namespace) -> None:
    """The model folders the command's flags name (--teacher, --model, --student), checked on this machine: a mistyped
    one is named at once. The runner checks every model again, the config file's too, and asks the hub of hub ids."""
    from ..modelfolder import check_local_name

    for flag in ("teacher", "model", "student"):
        if name := getattr(args, flag, None):
            check_local_name(name)


@contextlib.contextmanager
def _terminated_as_interrupted(alone: bool):
    """While a command runs, a SIGTERM raises ``Terminated``, a Ctrl-C of its own: the command says what it leaves
    (the checkpoint the same command resumes from) where a default SIGTERM ended it without a word. ``alone``: one
    process; a launcher's processes keep the default (their launcher ends them together, and one blocked in a
    collective would not see the exception until its launcher killed it)."""
    if not alone or threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:  # (a handler of the caller's own stays)
        yield
        return

    owner = os.getpid()

    def terminated(signum, frame):
        if os.getpid() != owner:  # a forked child (a worker pool) inherited this handler: it ends as it did before
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated

    signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _is_score(key: str, value) -> bool:
    return isinstance(value, float) and not key.endswith(("runtime", "per_second", "loss"))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse; an unknown flag is reported by its command's parser (its usage, not the top level's), with the closest
    flag of that command or the commands that do take it."""
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    # (argparse suggests no close command name before Python 3.14)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is not None and command not in parser.commands \
            and (close := difflib.get_close_matches(command, list(parser.commands), n=1, cutoff=0.6)):
        parser.error(f"unknown command '{command}' (did you mean {close[0]}?)")
    args, extra = parser.parse_known_args(argv)
    if extra:
        # (argparse has no public way to list a parser's flags: its option-string table has been stable for years)
        commands = parser.commands
        own = commands[args.command]
        hints = []
        for flag in (x.split("=")[0] for x in extra if x.startswith("--")):
            close = difflib.get_close_matches(flag, own._option_string_actions, n=1, cutoff=0.7)
            elsewhere = sorted({name for name, p in commands.items() if flag in p._option_string_actions} - {"distil"})
            if elsewhere:  # (both where both may be meant: --epoch is bench's, or a typo of --epochs)
                hints.append(f"{flag} is an option of {', '.join(elsewhere)}")
            if hint := _setting_hint(flag, own._option_string_actions, commands):
                hints.append(hint)
            elif close:
                hints.append(f"did you mean {close[0]}?")
        # (--set KEY VALUE, two words: the word after the key is left over)
        loose = [(argv[i + 1], argv[i + 2]) for i in range(len(argv) - 2)
                 if argv[i] == "--set" and "=" not in argv[i + 1] and argv[i + 2] in extra]
        if loose:  # (a YAML-minded "KEY: VALUE" or a spaced "KEY =VALUE" too)
            key, value = loose[0][0].rstrip(":"), loose[0][1].lstrip("=")
            hints.append(f"--set takes KEY=VALUE as one word: --set {key}={value}")
        hints = list(dict.fromkeys(hints))  # (one for several flags: --do_train --do_eval)
        own.error(f"unrecognized arguments: {' '.join(extra)}" + (f" ({'; '.join(hints)})" if hints else ""))
    return args


def _setting_hint(flag: str, flags, commands) -> str | None:
    """The hint for a flag that names a setting as transformers does (``--learning-rate``, ``--num_train_epochs``) or
    one DynaKD keeps without a flag in any command (``--weight-decay``): the command's flag for it, else ``--set``;
    None otherwise."""
    from ..config import DistillConfig
    from ..config.layers import HF_NAMES

    name = flag.lstrip("-").replace("-", "_").lower()
    if name in ("do_train", "do_eval", "do_predict"):  # (run_glue.py's switches)
        return "the commands need no --do-*: finetune and distill train, then score; evaluate scores"
    key = HF_NAMES.get(name, name)
    field = next((f for f in dataclasses.fields(DistillConfig) if f.name == key), None)
    if field is None:
        return None
    said = f" DynaKD's name for transformers' {name}" if key != name else ""
    if (own := "--" + key.replace("_", "-")) in flags and own != flag:
        return f"did you mean {own}?{said}"
    if key == "model" and "--teacher" in flags:  # (distill, bench: the model to distil from)
        student = " (--student: a student checkpoint)" if "--student" in flags else ""
        return f"did you mean --teacher? the fine-tuned model to distil from{student}"
    if key == "batch_size" and own not in flags and "--set" in flags:  # (evaluate: scoring's own batch size)
        return "this command scores: its batch size is --set eval_batch_size=N"
    if "--set" in flags and not any(own in p._option_string_actions for p in commands.values()):
        section = ".KEY" if field.name in ("align", "dynamics") else ""  # (sections: a key of theirs)
        return f"give it as --set {key}{section}=..." + (f";{said}" if said else "")
    return None


MEMORY_HINT = ("Lower --batch-size (--gradient-accumulation-steps N keeps the effective batch), train in --bf16 or "
               "--fp16, or, for token-level dynamics (extractive QA's default) on a GPU, compute their costs a few "
               "windows at a time, as a CPU does: --set dynamics.window_mib=32 (README: 'Every option of the method')")


def out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is the device running out of memory: CUDA's (``torch.OutOfMemoryError``), or the host's
    allocator refusing a tensor (a ``RuntimeError`` that says so). Read without importing torch (--help loads none)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(e, getattr(torch, "OutOfMemoryError", ())):
        return True
    return isinstance(e, RuntimeError) and "can't allocate memory" in str(e)


# DDP's words when a parameter of the model it wraps got no gradient (ddp_find_unused_parameters false: the default)
UNUSED_PARAMETERS = "were not used in producing loss"


def unused_parameters(e: BaseException) -> bool:
    return isinstance(e, RuntimeError) and UNUSED_PARAMETERS in str(e)


# How long a launched run's other processes wait, once they have said their error, before they end: the launcher
# (torchrun) stops every process when the first one ends, and process 0, whose line is the one read, often had not
# printed the same error yet
ZERO_FIRST_S = 2.0


def _launched_rank() -> int | None:
    """This process's rank under a launcher, None in a process of its own (distributed not loaded: no group)."""
    distributed = sys.modules.get("dynakd.distributed")
    return distributed.process_rank() if distributed and distributed.launched_processes() > 1 else None


def _rank() -> str:
    """``[rank N] `` under a launcher (each process says what stopped it), else nothing."""
    return "" if (rank := _launched_rank()) is None else f"[rank {rank}] "


def _after_process_zero() -> None:
    if _launched_rank() not in (None, 0):
        import time

        time.sleep(ZERO_FIRST_S)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    args.command = {"distil": "distill"}.get(args.command, args.command)  # the alias runs the command it names
    try:
        _run(args)
    except DynaKDError as e:
        # under a launcher each process may stop on its own: say which (most say the same; process 0 is the one read)
        print(f"dynakd: error: {_rank()}{e}", file=sys.stderr)
        _after_process_zero()
        return 2
    except KeyboardInterrupt as e:  # (and Terminated, a SIGTERM: 128 + 15, as the shell reports it)
        what = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        close_progress_bars()
        print(f"dynakd: {_rank()}{what}" + (f"; {e}" if str(e) else ""), file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except BrokenPipeError:  # the output's reader is gone (`dynakd ... | head`): end as a command that SIGPIPE
        if not (closed := _closed_outputs()):  # killed, without a traceback (Python's recipe, in its signal docs);
            raise  # another pipe's or socket's (a worker's, a tracker's) is a failure of its own
        if sys.stdout in closed:
            _quiet(sys.stdout)
        with contextlib.suppress(OSError):  # (stderr may be the same pipe)
            print(f"dynakd: {_rank()}stopped: its output was closed (Broken pipe)", file=sys.stderr)
        return 141
    except Exception as e:
        if not (out_of_memory(e) or unused_parameters(e)):
            raise
        rank = _rank()  # (each process may run out on its own: say which)
        if unused_parameters(e):
            print(f"dynakd: error: {rank}the model has parameters that no loss term reached, which DDP was told to "
                  "expect none of (a head of a model of one's own that the loss does not read, or every term "
                  "that reads the logits weighing 0): run with --set ddp_find_unused_parameters=true", file=sys.stderr)
        else:
            what = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"dynakd: error: {rank}out of memory ({what}). {MEMORY_HINT}", file=sys.stderr)
        _after_process_zero()
        return 1
    from ..distributed import close_process_group  # (loaded by _run)

    close_process_group()  # every process got here: a launched run's group closes before the process exits
    return 0


def _closed_outputs() -> list:
    """stdout and stderr where each is a pipe whose reader is gone (poll: an error on its write end)."""
    import select

    closed = []
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # (a stream without a descriptor: pytest's)
            poll = select.poll()
            poll.register(stream.fileno(), select.POLLOUT)
            if any(events & select.POLLERR for _, events in poll.poll(0)):
                closed.append(stream)
    return closed


def _quiet(stream) -> None:
    """Point ``stream``'s descriptor at /dev/null: the interpreter flushes it at exit, which would raise again on a
    closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)


def run(argv: list[str] | None = None) -> NoReturn:
    """The ``dynakd`` command (and ``python -m dynakd``): ``main``, then the end of the process
    (``distributed.end_process``: a launched run's processes end without the interpreter's finalisation, failed ones
    too: an exception that ``main`` does not turn into a message is printed with its traceback, status 1)."""
    try:
        code = main(argv)
    except BaseException as e:  # (KeyboardInterrupt and DynaKDError are main's: what else ends a command)
        # (not loaded: no process group was made, as for --help, --version and usage errors, which load no torch)
        distributed = sys.modules.get("dynakd.distributed")
        if distributed is None or distributed.launched_processes() <= 1:
            raise  # (one process: as ever)
        if isinstance(e, SystemExit):  # (sys.exit in a command)
            if e.code is not None and not isinstance(e.code, int):
                print(e.code, file=sys.stderr)
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        elif isinstance(e, KeyboardInterrupt):
            print("dynakd: interrupted", file=sys.stderr)
            code = 130
        else:
            sys.excepthook(type(e), e, e.__traceback__)  # (the hook: a tracker that wraps it sees the failure)
            _after_process_zero()  # (as for DynaKD's own errors: process 0's traceback is the one read)
            code = 1
    distributed = sys.modules.get("dynakd.distributed")
    if distributed is None:  # (not loaded, so no launched run's group: a usage error or a mistyped model folder,
        sys.exit(code)  # which would wait seconds for torch to load)
    distributed.end_process(code)


if __name__ == "__main__":
    run()
