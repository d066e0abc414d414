"""``DistillationTrainer``: a ``transformers.Trainer`` subclass whose loss is the distiller's.

Mixed precision, gradient accumulation, checkpoints, logging, progress bars and multi-process launch all come from
the Trainer. This class adds: a frozen teacher in ``eval()`` under ``no_grad`` (never wrapped by DDP, since it is not
the Trainer's model), the distiller's parameters (projections, learned aligner queries) in the optimizer with their
gradients averaged over processes, a log entry for every loss term and every scheduled weight (averaged over
processes), the distiller's state in every checkpoint, checkpoints written atomically, a stop with the last good
state saved when the loss is not finite, and (``evaluation.QAEvaluationMixin``) the SQuAD evaluation over all the
windows of each question. Its callbacks live in ``callbacks``, its training order in ``data.sampler``.
"""

from __future__ import annotations

import math
import shutil
from collections import defaultdict
from collections.abc import Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from transformers import Trainer
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from . import distributed
from .cache import CacheReadingCollator, cache_blocker, cached_features, poolings_for
from .callbacks import AlignmentCallback, DistillerGradients, LastStepLogged, StepsOfThisRun
from .checkpoints import (
    DISTILLER_OPTIMIZER,
    STAGING,
    check_launch,
    io_reason,
    launch_record,
    load_distiller_state,
    publish,
    rotate,
    save_distiller_state,
    save_launch,
)
from .data.sampler import EpochLengthGroupedSampler, derived_seed
from .data.squad import QAEval
from .distiller import OWN_PARAMS, Distiller, across_tokenizers
from .errors import DynaKDError
from .evaluation import QAEvaluationMixin
from .features import (
    CACHED_PREFIX,
    CONTEXT_MASK,
    EXAMPLE_ID,
    NON_MODEL_KEYS,
    TEACHER_PREFIX,
    Features,
    capture,
    embedding_width,
    forward_columns,
    model_inputs,
    output_logits,
    perturbed_embeddings,
    split_inputs,
)
from .notes import say


def check_own_optimizer(optimizer, distiller: Distiller) -> None:
    """An optimizer given to the trainer (``optimizers=``) must already hold the distiller's trainable parameters:
    added to it, they would join after the caller's scheduler was built, which then fails on its first step."""
    if optimizer is None:
        return
    present = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if any(p.requires_grad and id(p) not in present for p in distiller.parameters()):
        raise DynaKDError(f"the optimizer passed in optimizers= lacks the distiller's own parameters ({OWN_PARAMS}): "
                          "build it over list(model.parameters()) + list(distiller.parameters()), or let the Trainer "
                          "build it")


def _needs_teacher(method: str) -> str:
    return (f"method '{method}' needs the teacher: pass teacher=..., or a teacher_cache and training rows with an "
            f"'{EXAMPLE_ID}' column")


def _accepted(inputs: dict, columns: set[str]) -> dict:
    """The entries of ``inputs`` for a model whose ``forward`` takes ``columns``, with those that are no model's
    input but ``capture`` reads (``context_mask``); all of them when its columns cannot be told (empty)."""
    if not columns:
        return inputs
    return {k: v for k, v in inputs.items() if k in columns or k in NON_MODEL_KEYS}


DOMINANT = 100  # a term adding this many times the task term's part of the loss is noted (_note_dominant_term)


class DistillationTrainer(QAEvaluationMixin, Trainer):
    """A ``transformers.Trainer`` whose loss is a ``Distiller``'s: pass the student as ``model``, a fine-tuned
    ``teacher`` (run in ``eval()`` under ``no_grad``, its ``requires_grad`` as given; None for the ``task`` method) and
    ``distiller=Distiller(cfg, ...)``, with your own ``TrainingArguments``, datasets and collator (the columns
    distillation reads are kept whatever ``remove_unused_columns`` says). Every loss term and weight is logged,
    checkpoints carry the distiller's state and ``train(resume_from_checkpoint=...)`` restores it.
    ``teacher_cache``: a ``TeacherCache`` whose outputs replace the live teacher in training (the dataset then needs
    an ``example_id`` column); ``qa_eval``: extractive-QA evaluation data; ``save_on_non_finite``: whether a
    non-finite loss saves the last good state as a checkpoint (None: unless ``save_strategy`` is "no").
    ``dynakd.distill`` builds all of this from one config.

    Labels are read from the batch's ``labels`` (``TrainingArguments.label_names`` is left at its default). An
    optimizer of your own (``optimizers=``) must hold ``distiller.parameters()`` beside the student's. A distiller
    used by one trainer carries its running state (references, running plan, term balance, projections) into the
    next trainer given it, which sets its label smoothing anew; build a new one for an independent run."""

    # compute_loss returns a per-batch mean, so the Trainer divides it by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args,
        teacher: torch.nn.Module | None = None,
        distiller: Distiller,
        teacher_cache=None,
        qa_eval: QAEval | None = None,
        save_on_non_finite: bool | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.qa_eval = qa_eval
        self._check_arguments(distiller)
        # the Trainer's label smoother never sees the distiller's task term; set each time (a distiller may be reused)
        distiller.set_label_smoothing(self.args.label_smoothing_factor)
        if (distiller.cfg.dynamics.gather and distiller.feature == "dynamics" and distiller.opts.pooling == "tokens"
                and self.args.world_size > 1 and self.args.process_index == 0):
            say("token-level dynamics compare the tokens of each window, so dynamics.gather is not read: each "
                "process averages over its own windows")
        self.save_on_non_finite = self.args.save_strategy != "no" if save_on_non_finite is None else save_on_non_finite
        self._reads_cache = teacher_cache is not None
        self._cache_folder = teacher_cache.folder if teacher_cache is not None else None  # (named by _check_finite)
        if teacher_cache is not None:  # training batches then carry the teacher's outputs (cache.py)
            if reason := cache_blocker(distiller.cfg):
                raise DynaKDError(f"the teacher cache cannot stand in for the teacher here: {reason}; pass the "
                                  "teacher without teacher_cache")
            teacher_cache = teacher_cache.use(poolings_for(distiller.cfg))  # the pooled features this distiller reads
            teacher_cache.check_rows(self.train_dataset)
            self.data_collator = CacheReadingCollator(self.data_collator, teacher_cache)
        elif teacher is None and distiller.cfg.method != "task" and not isinstance(self.data_collator,
                                                                                  CacheReadingCollator):
            raise DynaKDError(_needs_teacher(distiller.cfg.method))  # (here, not at the first step)
        self.model_accepts_loss_kwargs = False
        self.teacher = teacher
        self.distiller = distiller.to(self.args.device)
        distiller._own_params_at_start = None  # (its optimizer is checked here: check_own_optimizer, create_optimizer)
        if distiller.aligner is not None:  # a non-finite loss restores the distiller's state here, and stops
            distiller.aligner.keep_finite = False
        if teacher is not None:  # (its parameters keep their requires_grad, the caller's: it runs under no_grad)
            teacher.to(self.args.device).eval()
        self._init_state()
        self.add_callback(AlignmentCallback(self))
        self.add_callback(DistillerGradients(distiller))
        self.add_callback(StepsOfThisRun())
        self.add_callback(LastStepLogged())
        self._check_sharding(distiller)

    def _check_arguments(self, distiller: Distiller) -> None:
        """Refuse what the Trainer was given that this trainer would not read: a loss function of its own, labels under
        other names, an optimizer without the distiller's parameters."""
        if self.compute_loss_func is not None:
            raise DynaKDError("DistillationTrainer's loss is its distiller's (task, logit and feature terms), so "
                              "compute_loss_func would go unused; add a term to the Distiller instead (README: "
                              "'Adding a loss')")
        if (names := self.args.label_names) is not None and list(names) != ["labels"]:
            # the distiller and evaluation read 'labels' (split_inputs); other names were ignored, or failed later
            raise DynaKDError(f"label_names {names}: DistillationTrainer reads the batch's 'labels' (a 'label' column "
                              "becomes it in the Trainer's collators); rename the column, e.g. "
                              f"dataset.rename_column('{names[0] if names else 'label'}', 'labels'), and leave "
                              "label_names unset")
        check_own_optimizer(self.optimizer, distiller)

    def _check_sharding(self, distiller: Distiller) -> None:
        """Refuse FSDP version 1 and DeepSpeed where the distiller has parameters of its own to train."""
        own_params = any(p.requires_grad for p in distiller.parameters())
        if self.is_fsdp_enabled and not self._fsdp2 and own_params:
            # FSDP1 checkpoints the optimizer by the model's parameter names; only the FSDP2 path is built and tested
            raise DynaKDError(
                f"FSDP version 1 cannot checkpoint the distiller's own parameters ({OWN_PARAMS}); set fsdp_version: 2 "
                "in the accelerate config"
            )
        if self.is_deepspeed_enabled and own_params:
            # DeepSpeed optimises only the parameters of the model it wraps (and may build the optimizer itself)
            raise DynaKDError(
                f"DeepSpeed cannot train the distiller's own parameters ({OWN_PARAMS}); use a parameter-free method "
                "and aligner, or DDP / FSDP"
            )

    def _init_state(self) -> None:
        """The trainer's own running state: logged terms, the snapshot a non-finite loss restores, each model's
        columns."""
        # since the last log: each term's sum over micro-batches, each weighted by its part of its optimizer step
        # (1 / its micro-batches), and the parts of the values that are not there at every micro-batch (_accumulate)
        self._term_sums: dict[str, float | torch.Tensor] = defaultdict(float)
        # the terms this run computes: each logs what it added (weighted/), 0 in a window where it was not computed
        self._terms_seen: set[str] = set()
        self._term_parts: dict[str, float] = defaultdict(float)
        self._term_steps = 0.0
        self._dominance_said = False  # (note_dominant_term: once a run)
        self._staging: Path | None = None
        # The distiller's running state before the current optimizer step, all its micro-batches: what a non-finite
        # loss puts back (_check_finite)
        self._snapshot, self._snapshot_step = None, None
        self._micro_batch = 0  # of the current optimizer step
        self._epoch_sampler: EpochLengthGroupedSampler | None = None  # the training order of group_by_length
        # each model's forward arguments, under remove_unused_columns (_set_signature_columns_if_needed)
        self._student_columns: set[str] | None = None
        self._teacher_columns: set[str] = set()
        self._one_encoding_checked = False  # (_check_one_encoding)
        # whether the tokenizers were found to agree (the dynakd commands compare them): no note on vocabulary sizes
        self.tokenizers_compared = False

    def _set_signature_columns_if_needed(self) -> None:
        """With ``remove_unused_columns`` (the Trainer's default) the Trainer keeps only the columns the student's
        ``forward`` takes; distillation also reads the ``labels`` (a QA model's forward names its own, start and end
        positions, and a QA batch's ``labels`` went), the ``example_id`` that keys a teacher cache, the teacher's own
        tokenisation (``teacher_*``: without it the teacher would read the student's tokens) and QA's
        ``context_mask``. Dropped, the run trained on something else without a word."""
        if self._signature_columns is None:
            super()._set_signature_columns_if_needed()
            self._student_columns = set(self._signature_columns)
            # one encoding for both: what only the teacher takes stays too (a BERT teacher's token_type_ids beside a
            # DistilBERT student), and compute_loss hands it to the teacher alone
            self._teacher_columns = forward_columns(self.teacher) if self.teacher is not None else set()
            own = {*self._student_columns, *self._teacher_columns, "input_ids", "attention_mask", "token_type_ids",
                   "position_ids"}
            teacher_only = sorted(self._teacher_columns - self._student_columns)
            self._signature_columns += [*(["labels"] if "labels" not in self._signature_columns else []), EXAMPLE_ID,
                                        CONTEXT_MASK, *teacher_only, *sorted(TEACHER_PREFIX + c for c in own)]

    def _model_inputs(self, inputs) -> tuple[dict, dict, torch.Tensor | None]:
        """``split_inputs``, each model given only what its ``forward`` takes of an encoding that serves both (a BERT
        teacher's token_type_ids beside a DistilBERT student: one tokenizer, two sets of input names; the columns
        kept for either model under ``remove_unused_columns``)."""
        student_inputs, teacher_inputs, labels = split_inputs(inputs)
        if self._student_columns is None:  # (set from the Trainer's signature columns under remove_unused_columns)
            self._student_columns = forward_columns(self.accelerator.unwrap_model(self.model))  # (FSDP1 wraps it)
            self._teacher_columns = forward_columns(self.teacher) if self.teacher is not None else set()
        if teacher_inputs is student_inputs:
            if not self._one_encoding_checked and self.teacher is not None and self.model.training:
                self._check_one_encoding(student_inputs.get("input_ids"))
            teacher_inputs = _accepted(student_inputs, self._teacher_columns)
        return _accepted(student_inputs, self._student_columns), teacher_inputs, labels

    def _check_one_encoding(self, ids: torch.Tensor | None) -> None:
        """Once, where both models read one encoding: that both vocabularies hold its ids (a larger id failed inside
        the smaller embedding as an IndexError, or a device assert), and a note where the two differ in size or name
        other padding tokens, which models of one tokenizer seldom do (an MPNet teacher beside a BERT student, pads 1
        and 0, read every id 4 off with a hedged note; a multilingual MiniLM student of XLM-R's tokenizer has a BERT
        config's pad 0, so no refusal), unless the tokenizers were found to agree (``tokenizers_compared``, as the
        ``dynakd`` commands find; a device sync, once)."""
        self._one_encoding_checked = True
        student = self.accelerator.unwrap_model(self.model)
        own = ("give the teacher an encoding of its own: teacher_* columns from its tokenizer, collated with "
               "DistillationCollator(tokenizer, teacher_tokenizer) (README, Python API); if they share one, set "
               "trainer.tokenizers_compared = True")
        pads = {role: getattr(getattr(model, "config", None), "pad_token_id", None)
                for role, model in (("teacher", self.teacher), ("student", student))}
        sizes = {"teacher": _vocabulary(self.teacher), "student": _vocabulary(student)}
        other_pads = None not in pads.values() and pads["teacher"] != pads["student"]
        if ids is None or ((None in sizes.values() or len(set(sizes.values())) == 1) and not other_pads):
            return
        smaller = min(sizes, key=lambda role: sizes[role] or 0)
        if None not in sizes.values() and (largest := int(ids.max())) >= sizes[smaller]:
            other = "student" if smaller == "teacher" else "teacher"
            raise DynaKDError(f"the batch's input ids reach {largest}, but the {smaller}'s vocabulary holds "
                              f"{sizes[smaller]} (the {other}'s {sizes[other]}): the models tokenize differently; "
                              f"{own}")
        if not self.tokenizers_compared:
            differ = [f"vocabulary holds {sizes['teacher']} tokens and the student's {sizes['student']}"
                      if sizes["teacher"] != sizes["student"] and None not in sizes.values() else "",
                      f"padding token is id {pads['teacher']} and the student's {pads['student']}" if other_pads
                      else ""]
            distributed.note(f"the teacher's {'; its '.join(filter(None, differ))}, and both read the batch's one "
                             f"encoding: if they tokenize differently, {own}")

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model) if model is not None else super().create_optimizer()
        if not self._fsdp2:  # FSDP2: added in create_scheduler, see there
            self._add_distiller_params(optimizer)
        return optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        # FSDP2: accelerate's prepare(model, optimizer) swaps every optimizer parameter for the model's sharded one
        # and raises KeyError ("A parameter in the optimizer couldn't be switched to its sharded version") on the
        # distiller's own. They join the optimizer here instead: after prepare, before the scheduler that sets their
        # learning rate.
        if self._fsdp2:
            self._add_distiller_params(optimizer if optimizer is not None else self.optimizer)
        return super().create_scheduler(num_training_steps, optimizer)

    def _add_distiller_params(self, optimizer) -> None:
        extra = [p for p in self.distiller.parameters() if p.requires_grad]
        present = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if extra and not any(id(p) in present for p in extra):  # projections and learned queries would otherwise
            optimizer.add_param_group({"params": extra, "weight_decay": 0.0})  # silently never train

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler:
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            # groups of the global batch (the Trainer's are of one process's): then N processes of batch B share out
            # the order one process of batch N x B draws, and a multi-process run reproduces a single-process one
            size = sampler.batch_size * self.args.world_size
            sampler = self._epoch_sampler = EpochLengthGroupedSampler(size, lengths=sampler.lengths, seed=seed)
        return sampler

    def _run_epoch(self, *args, **kwargs):
        # The Trainer passes the epoch to the sampler through the data loader, which does not reach it in a
        # multi-process run (accelerate's BatchSamplerShard) or after skip_first_batches (a resumed epoch); here the
        # epoch is known.
        epoch = kwargs.get("epoch", args[1] if len(args) > 1 else None)
        if self.state.global_step >= self.state.max_steps > 0:
            # resumed from a checkpoint of the last step (killed while evaluating or saving at the end): nothing is
            # left to train, but the Trainer's loop tests the step count only after a step, so it trained one more
            self.control.should_training_stop = True
            return None
        if self._epoch_sampler is not None and epoch is not None:
            self._epoch_sampler.set_epoch(epoch)
        return super()._run_epoch(*args, **kwargs)

    @property
    def _fsdp2(self) -> bool:
        return getattr(self.accelerator, "is_fsdp2", False)

    @property
    def progress(self) -> float:
        return self.state.global_step / max(1, self.state.max_steps)

    def _prepare_input(self, data):
        """As the Trainer's, but the teacher's outputs read from the cache keep their dtype: under DeepSpeed the Trainer
        casts every floating-point entry of a batch to the engine's, and bf16 would round the cache's features again
        (twice the error of a live bf16 teacher's, where the cache's teacher is meant to be the closer to float32)."""
        if isinstance(data, Mapping) and any(str(k).startswith(CACHED_PREFIX) for k in data):
            return type(data)({k: v.to(device=self.args.device) if str(k).startswith(CACHED_PREFIX) else
                               self._prepare_input(v) for k, v in data.items()})
        return super()._prepare_input(data)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # num_items_in_batch goes unused (loss_is_scaled_for_ga): the batch forms (Gram and relation matrices) compare
        # a micro-batch's samples with each other, so the loss is a per-micro-batch mean, not a sum over items.
        student_inputs, teacher_inputs, labels = self._model_inputs(inputs)
        if not model.training:  # evaluation: the student alone, as users will run it, scored by the task term
            out = model(**model_inputs(student_inputs))  # (QA models take start/end positions, not labels)
            loss = self.distiller.task_term(Features(output_logits(out), (), student_inputs.get("attention_mask")),
                                            labels)
            return (loss, out) if return_outputs else loss
        if self.distiller.token_level and any(k.startswith(TEACHER_PREFIX) for k in inputs):
            raise DynaKDError(f"{self.distiller.token_level}, but the batch gives the teacher a tokenisation of its "
                              f"own ({TEACHER_PREFIX}* columns): {across_tokenizers(self.distiller.qa)}")
        self.distiller.train()
        needs_hidden = self.distiller.layer_terms_at(self.progress)  # (not where the layer terms weigh 0)
        sensitivity = self._sensitivity and needs_hidden
        teacher = cached_features(inputs)
        if teacher is None and self.distiller.cfg.method != "task":
            if self.teacher is None:  # (batches of a collator that adds the cached outputs to some rows only)
                raise DynaKDError(_needs_teacher(self.distiller.cfg.method))
            # The teacher first: its forward's temporaries, and its token states where pooled dynamics read them
            # pooled (pooled at once), never sit beside the student's activations (it draws no random numbers; a
            # sample of the tokens, dynamics.token_sample, is drawn here, before the student's forward)
            teacher = self.distiller.ready_teacher(self._teacher_capture(teacher_inputs, hidden=needs_hidden))
        # The sensitivity component runs the student again on perturbed embeddings, from the random state of this
        # forward (restored after it): both draw the same dropout masks, so they differ by the perturbation alone. With
        # masks of their own, dropout made ~8x the perturbation's difference on a tiny BERT, against a teacher in eval.
        # (Not where it is not run: the next forward would draw this one's masks again.)
        device = self.args.device
        with (torch.random.fork_rng(devices=[] if device.type == "cpu" else [device], device_type=device.type)
              if sensitivity else nullcontext()):  # (nothing added to a step without the component)
            student = capture(model, student_inputs, hidden=needs_hidden)
        if CONTEXT_MASK in inputs:  # extractive QA: the context tokens (one tokenizer, so the teacher's too)
            student.context = inputs[CONTEXT_MASK]
            if teacher is not None:
                teacher.context = inputs[CONTEXT_MASK]
        step = (id(self.state), self.state.global_step)  # each train() call has a state of its own
        if self._snapshot_step != step:  # the step's first micro-batch (gradient accumulation)
            self._snapshot, self._snapshot_step, self._micro_batch = self.distiller.snapshot(), step, 0
        else:
            self._micro_batch += 1
        perturbed = self._perturbed(model, student_inputs, teacher_inputs) if teacher is not None and sensitivity \
            else None
        out = self.distiller(student, teacher, labels, self.progress, perturbed=perturbed)
        self._check_finite(out, self._snapshot, inputs)
        self._accumulate(out)
        return (out.loss, student) if return_outputs else out.loss

    def _check_finite(self, out, before: dict, inputs: Mapping | None = None) -> None:
        """Stop on a non-finite loss (one host sync per step), after saving the last good state: the weights are
        still those of the last finished step, since this runs before the backward pass (and with gradient
        accumulation before the optimizer step), and the distiller's running state goes back to ``before`` the step's
        first micro-batch. Where the step read a teacher cache (``inputs``: its batch), the advice names it."""
        if distributed.all_true(torch.isfinite(out.loss.detach())):
            return
        self.distiller.restore(before)
        terms = {k: float(v.detach()) for k, v in out.terms.items()}
        bad = [k for k, v in terms.items() if not math.isfinite(v)]
        total = float(out.loss.detach())
        what = (f"term '{bad[0]}' is {terms[bad[0]]}" if bad else f"the weighted total is {total}" if not
                math.isfinite(total) else "the loss of another process is not finite (see its message)")
        step = self.state.global_step
        advice = self._cache_advice(inputs) or \
            "lower the learning rate (lr) or the term's weight, or check the data, and train again"
        if not self.save_on_non_finite:
            why = "save_strategy 'no'" if self.args.save_strategy == "no" else "save_on_non_finite=False"
            raise DynaKDError(f"non-finite loss at step {step + 1}: {what}; the model and distiller hold the last good "
                              f"state (step {step}), not saved ({why}); {advice}")
        # not over a regular checkpoint of this step, saved at its end with the random state of a step boundary (the
        # state now is mid-step); decided alike on every process, whatever each one's disk shows
        # (the state's interval: a fraction of the run in the arguments, e.g. 0.25, made a number of steps)
        if not (step > 0 and self.args.save_strategy == "steps" and self.state.save_steps > 0
                and step % self.state.save_steps == 0):
            self._save_checkpoint(self.model, trial=None)
        saved = Path(self.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}"
        raise DynaKDError(
            f"non-finite loss at step {step + 1}: {what}; the last good state (step {step}) is saved in {saved}; "
            f"{advice} with overwrite or into another output folder (a resumed run would repeat the step; the "
            "checkpoint is there to inspect)"
        )

    def _cache_advice(self, inputs: Mapping | None) -> str | None:
        """What to do about a non-finite loss of a step that read a teacher cache, or None for a live teacher. The
        cache is not checksummed (a whole-file hash at each start would read gigabytes), so one damaged in place at
        its size is read as it is: the batch's cached values are checked here, on the failing step alone (a check
        of every batch would cost each step a pass over its features)."""
        if self._cache_folder is None or inputs is None or CACHED_PREFIX + "logits" not in inputs:
            return None
        cached = [v for k, v in inputs.items() if str(k).startswith(CACHED_PREFIX)]
        rows = torch.zeros(len(cached[0]), dtype=torch.bool, device=cached[0].device)
        for v in cached:
            rows |= ~torch.isfinite(v.float()).flatten(1).all(1)
        folder = self._cache_folder
        if not rows.any():  # (its values are finite: the cache is the less likely cause, but still one)
            return (f"lower the learning rate (lr) or the term's weight, or check the data (and the teacher cache "
                    f"{folder} this run reads: delete it to rebuild, or pass --teacher-cache off), and train again")
        ids = inputs[EXAMPLE_ID][rows.to(inputs[EXAMPLE_ID].device)].tolist() if EXAMPLE_ID in inputs else []
        named = f" (training row{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids[:5]))}" + \
            (", ...)" if len(ids) > 5 else ")") if ids else ""
        return (f"the teacher cache {folder} holds non-finite values for this batch{named}: it was damaged since it "
                "was built (or the teacher gives them); delete that folder to rebuild it, or pass --teacher-cache "
                "off, and train again")

    @property
    def _sensitivity(self) -> bool:
        """Whether the input-sensitivity component is on (off by default): it needs the models' perturbed forwards."""
        return self.distiller.feature == "dynamics" and "sensitivity" in self.distiller.cfg.dynamics.components

    def _perturbed(self, model, student_inputs, teacher_inputs):
        """Extra forwards for the input-sensitivity component, from the random state of the student's clean forward."""
        cfg = self.distiller.cfg
        # noise of their own for each micro-batch and process (the first of a step on process 0 keeps the seed it
        # always had, so single-process runs repeat exactly), from the run's seed: the Trainer's (a command's config
        # gives both the same one; a Python caller's TrainingArguments(seed=...) varies the noise too)
        seed = derived_seed(self.args.seed * 1_000_003 + self.state.global_step, self._micro_batch,
                            self.args.process_index)
        std, mask, student = cfg.dynamics.sensitivity_noise, student_inputs.get("attention_mask"), \
            self.accelerator.unwrap_model(model)
        # one noise for both (features.perturbed_embeddings): drawn at the narrower model's width, for every position
        # of the longest batch, so neither the widths nor the padding give the models noises of their own
        shared = dict(width=min(embedding_width(student), embedding_width(self.teacher)), length=cfg.max_seq_length)
        s_emb = perturbed_embeddings(student, student_inputs["input_ids"], std, seed, mask, **shared)
        s = capture(model, student_inputs, inputs_embeds=s_emb)
        with torch.no_grad():
            t_emb = perturbed_embeddings(self.teacher, teacher_inputs["input_ids"], std, seed,
                                         teacher_inputs.get("attention_mask"), **shared)
        return s, self._teacher_capture(teacher_inputs, inputs_embeds=t_emb)

    def _teacher_capture(self, teacher_inputs, **kwargs):
        """The frozen teacher's features: eval mode, no graph, under the student's mixed precision (the Trainer's
        autocast wraps the prepared student alone), for every forward of the teacher in a step."""
        self.teacher.eval()
        with torch.no_grad(), self.accelerator.autocast():
            return capture(self.teacher, teacher_inputs, **kwargs)

    def train(self, *args, **kwargs):
        self._clear_terms()  # terms of micro-batches after a former call's last log are not this call's
        # every term of the method, from the first log: one that weighs 0 there (a feature weight rising from 0)
        # logs what it added, 0, rather than starting its curve at the first log that computed it
        self._terms_seen = set(self.distiller.term_names())
        self._snapshot, self._snapshot_step = None, None  # (keyed by id(state), which a new state may reuse)
        try:
            return super().train(*args, **kwargs)
        except BaseException:
            self._close_writers()
            raise

    def _close_writers(self) -> None:
        """Close the TensorBoard writer of a ``train()`` that failed: transformers' callback closes it at the end of
        training alone, and each failed run in one process (a notebook's, a sweep's cell) left its writer's thread
        running."""
        for callback in self.callback_handler.callbacks:
            if (writer := getattr(callback, "tb_writer", None)) is not None:
                writer.close()
                callback.tb_writer = None

    def _accumulate(self, out) -> None:
        """Add a micro-batch's terms, weighted as the Trainer weights its loss: a step's micro-batches share it (an
        epoch's last step may have fewer), and the log is the mean over steps. A term (``loss/``), a scheduled or a
        component's weight (``weight/``) and a balance divisor (``balance/``) are the mean over the micro-batches
        that had them (layer terms are not computed where they weigh 0: ``staged``'s second stage, a warm-up's first
        step). What each term added to the loss (``weighted/``) counts 0 where it added nothing, so those sum to the
        logged loss, where a weight that changes within the window keeps the product of the means from doing so."""
        share = 1 / getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps)
        self._term_steps += share
        # tensors: no device sync until the values are logged
        used = {f"loss/{name}": value.detach() for name, value in out.terms.items()}
        for name, value in out.weighted.items():
            self._term_sums[f"weighted/{name}"] += value.detach() * share
        self._terms_seen.update(out.terms)  # (a term of one's own distiller's too; one weighing 0 added 0: log())
        # (a group's weight is logged while it weighs 0 too: where staged's second stage begins, say)
        used.update({f"weight/{name}": float(out.weights[name]) for name in self.distiller.groups()})
        used.update({f"weight/{name}": self.distiller.component_weight(name) for name in self._terms_seen
                     if name.startswith("dyn/")})
        # balance: each term is divided by its running magnitude, there from the term's first value on
        used.update({f"balance/{name}": magnitude for name, magnitude in self.distiller.magnitudes.items()})
        for key, value in used.items():
            self._term_sums[key] += value * share
            self._term_parts[key] += share

    def _clear_terms(self) -> None:
        self._term_sums.clear()
        self._term_parts.clear()
        self._term_steps = 0.0

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        """Add the mean of every loss term and scheduled weight since the last training log (over processes too:
        every process logs the same terms, so one collective gathers them)."""
        if "loss" in logs and self._term_steps:
            for name in self._terms_seen:  # weighing 0 or not computed in this window (staged's stages): 0 added,
                self._term_sums.setdefault(f"weighted/{name}", 0.0)  # where the curve had stopped at its last value
            names = sorted(self._term_sums)
            device = self.args.device
            sums = torch.stack([torch.as_tensor(self._term_sums[k], dtype=torch.float32, device=device) for k in names])
            parts = torch.tensor([self._term_parts.get(k, self._term_steps) for k in names], device=device)
            sums, parts = distributed.all_reduce_sum(torch.cat([sums, parts])).split(len(names))
            means = sums / parts
            # six significant digits (not decimals: a small dynamics term, ~1e-6, rounded to 0 or one digit)
            logs.update({k: float(f"{v:.6g}") for k, v in zip(names, means.tolist())})
            self._clear_terms()
            logs.update(self._matched_layers())
            self._note_dominant_term(logs)
        super().log(logs, *args, **kwargs)

    def _note_dominant_term(self, logs: dict[str, float]) -> None:
        """Say so, once a run, when one term adds ``DOMINANT`` times what the task term adds to the loss
        (``Distiller.dominance_note``)."""
        task = logs.get("weighted/task") or 0.0
        others = {k.removeprefix("weighted/"): v for k, v in logs.items() if k.startswith("weighted/")
                  and k != "weighted/task" and math.isfinite(v)}
        if self._dominance_said or not math.isfinite(task) or task <= 0 or not others:
            return
        name, value = max(others.items(), key=lambda kv: kv[1])
        if value >= DOMINANT * task:
            self._dominance_said = True
            distributed.note(f"at step {self.state.global_step} {self.distiller.dominance_note(name, value, task)}")

    def _matched_layers(self) -> dict[str, float]:
        """``align/student_<m>``: the teacher layer (1-based) student layer ``m`` is matched to, the running plan's
        mean over its row (the same in every process): the alignment's course in TensorBoard, between pictures."""
        if (aligner := self.distiller.aligner) is None:
            return {}
        plan = aligner.running_plan.detach().float().cpu()
        matched = plan @ torch.arange(1, plan.shape[1] + 1, dtype=plan.dtype)
        return {f"align/student_{m}": round(float(v), 4) for m, v in enumerate(matched, 1)}

    # ----------------------------------------------------------------------------------------------- checkpoints
    # FSDP2: the Trainer saves and loads the optimizer through torch.distributed.checkpoint, which names each optimizer
    # parameter by its path in the model and fails on the distiller's own (KeyError in _get_optim_state_dict). Their
    # group is taken out of the optimizer meanwhile, and its state goes to a file of its own.
    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        with self._distiller_group_apart() as part:
            super()._save_optimizer_and_scheduler(output_dir)
        if part is not None and self.args.should_save:
            torch.save(part, Path(output_dir) / DISTILLER_OPTIMIZER)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        """Also the distiller's state (references, running plan, term balance, projections): the Trainer calls this
        once, with the checkpoint it resumes from, whoever called ``train(resume_from_checkpoint=...)``."""
        if checkpoint:
            check_launch(Path(checkpoint), self._launch())
            load_distiller_state(self.distiller, Path(checkpoint))
        with self._distiller_group_apart() as part:
            super()._load_optimizer_and_scheduler(checkpoint)
            saved = Path(checkpoint) / DISTILLER_OPTIMIZER if checkpoint else None
            if part is not None and saved is not None and saved.is_file():
                part.update(torch.load(saved, map_location="cpu", weights_only=True))

    @contextmanager
    def _distiller_group_apart(self):
        """Under FSDP2, the optimizer without the distiller's parameter group while the block runs; yields that group's
        part of the optimizer state, ``{"group": its settings (the scheduled lr too), "state": one dict per
        parameter}`` (replace them to load a state), else None."""
        opt, ids = self.optimizer, {id(p) for p in self.distiller.parameters()}
        where = [] if opt is None or not self._fsdp2 else [
            i for i, g in enumerate(opt.param_groups) if any(id(p) in ids for p in g["params"])]
        if not where:
            yield None
            return
        group = opt.param_groups.pop(where[0])
        part = {"group": {k: v for k, v in group.items() if k != "params"},
                "state": [opt.state.pop(p, {}) for p in group["params"]]}
        try:
            yield part
        finally:
            group.update(part["group"])
            opt.param_groups.insert(where[0], group)
            for p, s in zip(group["params"], part["state"]):
                if s:
                    opt.state[p] = {k: v.to(p.device) if torch.is_tensor(v) and k != "step" else v
                                    for k, v in s.items()}

    def _launch(self) -> dict[str, int | bool]:
        """How the run's batches are made: a resume must see them made alike (the global batch sets the schedule);
        and whether they carried a teacher cache's outputs (a resume that reads the teacher another way says so)."""
        args = self.args
        return launch_record(args.world_size, args.per_device_train_batch_size, args.gradient_accumulation_steps,
                             teacher_cache=self._reads_cache)

    def _get_output_dir(self, trial) -> str:
        return str(self._staging) if self._staging is not None else super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        """The Trainer's checkpoint plus the distiller's state, written into a staging folder and renamed into
        place once complete: transformers 5 writes ``checkpoint-N`` in place, and a process killed mid-write would
        leave a folder that looks like the newest checkpoint."""
        root = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        self._staging = root / f"{STAGING}{name}"
        try:
            super()._save_checkpoint(model, trial)  # every process writes its own RNG state
            moved = self._best_in_root(root)
            if self.args.should_save:
                save_distiller_state(self.distiller, self._staging / name)
                save_launch(self._staging / name, self._launch())
                if moved:  # the Trainer wrote its state with the staging path in it
                    self.state.save_to_json(str(self._staging / name / TRAINER_STATE_NAME))
            self.accelerator.wait_for_everyone()
            if self.args.should_save:
                publish(self._staging / name, root / name)
                shutil.rmtree(self._staging, ignore_errors=True)
                rotate(root, self.args.save_total_limit, self.state.best_model_checkpoint)
        except (OSError, RuntimeError) as e:  # RuntimeError: torch.save's zip writer on a full disk
            shutil.rmtree(self._staging, ignore_errors=True)
            reason = io_reason(e)
            raise DynaKDError(f"cannot write {name} to {root}: {reason}; earlier checkpoints are intact") from None
        finally:
            self._staging = None
        self.accelerator.wait_for_everyone()

    def _best_in_root(self, root: Path) -> bool:
        """Point ``best_model_checkpoint`` (``load_best_model_at_end``, and the checkpoint ``save_total_limit`` keeps)
        at ``root/checkpoint-N``: the Trainer looks for the best checkpoint in the folder it saves into, the staging
        folder here, so it recorded a path deleted after publishing (the best model was then never loaded at the end,
        and rotation deleted it), or, for an older best, kept that stale path. True when the path changed."""
        step = self.state.best_global_step
        if not step:
            return False
        best = root / f"{PREFIX_CHECKPOINT_DIR}-{step}"
        if step != self.state.global_step and not best.is_dir():  # that checkpoint is gone (rotated out)
            return False
        changed = self.state.best_model_checkpoint != str(best)
        self.state.best_model_checkpoint = str(best)
        return changed


def _vocabulary(model) -> int | None:
    """The rows of a model's input embeddings (None where it does not say)."""
    try:
        return model.get_input_embeddings().num_embeddings
    except (AttributeError, NotImplementedError):
        return None
