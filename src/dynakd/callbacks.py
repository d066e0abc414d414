"""The ``DistillationTrainer``'s callbacks: the distiller's own gradients (averaged, clipped, zeroed as the Trainer does
for its model's) and the alignment plan written at each evaluation (``alignment.json``, ``alignment.png``)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import TrainerCallback

from . import distributed, jsonfile
from .distiller import Distiller


class DistillerGradients(TrainerCallback):
    """The Trainer averages (DDP), clips and zeroes the gradients of its model only. The distiller's own parameters
    (projections, learned queries) get the same here, once per optimizer step: averaged over processes, clipped to
    ``max_grad_norm`` (as a group of their own) and zeroed after the step. They start from process 0's values, as
    DDP makes the student do: each process initialised them from its own random state."""

    def __init__(self, distiller: Distiller):
        self.distiller = distiller

    def on_train_begin(self, args, state, control, **kwargs):
        # as the Trainer zeroes its model's: a former train() stopped mid-accumulation (a non-finite loss) left some
        self.distiller.zero_grad(set_to_none=True)
        distributed.broadcast_from_first([*self.distiller.parameters(), *self.distiller.buffers()])

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        # a step whose layer terms weighed 0 (staged's second stage) gave them no gradient: the optimizer skips them,
        # on every process alike (zeros averaged in would move them through Adam's momentum under a launcher only)
        if not self.distiller.layer_terms_at(state.global_step / max(1, state.max_steps)):
            return
        params = [p for p in self.distiller.parameters() if p.requires_grad]
        distributed.average_gradients(params)
        with_grad = [p for p in params if p.grad is not None]
        if with_grad and args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(with_grad, args.max_grad_norm)

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.distiller.zero_grad(set_to_none=True)


class StepsOfThisRun(TrainerCallback):
    """The logging, evaluation and saving cadence of this command, also when it resumes: the Trainer restores them
    from the checkpoint's ``trainer_state.json`` (after computing them from its arguments), so a run resumed with
    another ``--eval-steps`` kept the old one, which the run folder lets a resume change."""

    def on_train_begin(self, args, state, control, **kwargs):
        state.compute_steps(args, state.max_steps)


class LastStepLogged(TrainerCallback):
    """The last training step logs its loss terms whatever ``logging_steps`` says: a run of fewer steps than it (20
    steps, logged every 25) logged the first step alone, so TensorBoard showed no term's course, nor where it ended."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps and args.logging_strategy != "no":
            control.should_log = True


class AlignmentCallback(TrainerCallback):
    """Writes the aligner's plan as ``alignment.json`` and ``alignment.png`` into the output folder at each
    evaluation and at the end of training, and adds the picture to the TensorBoard logs (``alignment``, one per
    evaluation: the files keep only the last)."""

    def __init__(self, trainer):  # a DistillationTrainer
        self.trainer = trainer

    def save(self, args, state) -> None:
        aligner = self.trainer.distiller.aligner
        if aligner is None or not state.is_world_process_zero:
            return
        pixels = save_alignment(
            aligner.running_plan.detach().cpu(),
            Path(args.output_dir),
            step=state.global_step,
            aligner=type(aligner).__dict__.get("name") or type(aligner).__name__,  # a subclass: its class name
            averaged=not hasattr(aligner, "fixed"),  # (a fixed map, a subclass's too: its map, not a running mean)
            tracked=(getattr(aligner, "tracked", None), getattr(aligner, "momentum", 0.9)),
            started=self._copied_from(aligner),
            described=getattr(aligner, "described", None),
        )
        if (writer := self._tensorboard()) is not None:
            writer.add_image("alignment", pixels, state.global_step, dataformats="HWC")

    def _tensorboard(self):
        """The writer of the Trainer's TensorBoard callback (``report_to`` tensorboard), once it is open."""
        from transformers.integrations import TensorBoardCallback

        found = (c for c in self.trainer.callback_handler.callbacks if isinstance(c, TensorBoardCallback))
        return getattr(next(found, None), "tb_writer", None)

    def _copied_from(self, aligner) -> list[int] | None:
        """The teacher layer (1-based: a plan's column) each student layer was copied from, for a student built from
        this run's teacher (``students.build_student`` records the 0-based ids in its config); else None."""
        ids = getattr(getattr(self.trainer.model, "config", None), "dynakd_teacher_layers", None)
        built_here = self.trainer.distiller.cfg.student is None  # (a --student folder's ids are of its own teacher)
        if not built_here or not isinstance(ids, list) or len(ids) != aligner.n_student:
            return None
        return [int(i) + 1 for i in ids]

    def on_evaluate(self, args, state, control, **kwargs):
        self.save(args, state)

    def on_train_end(self, args, state, control, **kwargs):
        self.save(args, state)


def save_alignment(plan: torch.Tensor, out_dir: str | Path, *, step: int, aligner: str, averaged: bool = True,
                   tracked: tuple[int | None, float] | None = None, started: list[int] | None = None,
                   described: str | None = None, fixed_as: str | None = None):
    """Write ``alignment.json`` and ``alignment.png`` (``averaged``: the plan is a running mean, not a fixed map;
    ``tracked``: how many plans it holds, and the momentum of its average; ``started``: the teacher layer, 1-based,
    each student layer was copied from, where it was built from the teacher's; ``described``: which fixed map it is,
    ``the random map drawn by seed 1`` (``map``), or what else than the costs moves a running plan, ``order prior 1``
    (``settings``); ``fixed_as``, its name before 2026-12-08, still works); returns the picture's pixels."""
    described = described if described is not None else fixed_as
    from .plots import plot_alignment

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "aligner": aligner,
        "step": step,
        "plan": [[round(float(v), 5) for v in row] for row in plan],
        "rows": "student layers 1..Ls",
        "columns": "teacher layers 1..Lt",
    }
    held = None
    if averaged and tracked is not None and tracked[0] is not None:  # how much of the starting map it still is
        held = tracked[0], tracked[1] ** tracked[0]
        record.update(plans_averaged=held[0], start_map_weight=round(held[1], 4))
    if started is not None:
        record["student_copied_from"] = list(started)
    if described is not None:
        record["settings" if averaged else "map"] = described
    (out_dir / "alignment.json").write_text(jsonfile.dumps(record, indent=1))
    return plot_alignment(plan, out_dir / "alignment.png", title=f"{aligner} alignment (step {step})",
                          averaged=averaged, held=held, started=started, described=described)
