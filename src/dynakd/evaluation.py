"""Evaluation in the Trainer: ``QAEvaluationMixin`` scores extractive QA over all the windows of each question (as
transformers' ``QuestionAnsweringTrainer`` example does) and keeps evaluation from moving the training's random
streams; ``EvalTrainer`` is a plain ``Trainer`` with it, for scoring a model (``dynakd evaluate``, a teacher)."""

from __future__ import annotations

import random
import time

import numpy as np
import torch
from torch.utils.data import Sampler, SequentialSampler
from transformers import Trainer
from transformers.trainer_utils import has_length, speed_metrics

from .data.squad import QAEval, best_spans, gold_answers
from .metrics import squad_metrics

# What a model returns beside its predictions when its config asks (``output_hidden_states``, ``output_attentions``):
# every layer's outputs for every example, which evaluation would gather over the whole dev set (and ``torch.cat``
# cannot join the attention maps of batches of other lengths). The scores read the logits alone.
EXTRA_OUTPUTS = ("hidden_states", "attentions")


class LongestFirst(Sampler):
    """The rows of ``ids`` longest first, rows of one length in dataset order: the same order every evaluation."""

    def __init__(self, ids: list[list[int]]):
        self.order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


class QAEvaluationMixin:
    """Extractive QA evaluation, as transformers' ``QuestionAnsweringTrainer`` example does it: predict the start and
    end logits of every window, pick each question's best span over all its windows (``best_spans``), score the
    answers with the official SQuAD metric. Classification (``qa_eval`` None) uses the Trainer's own ``evaluate``."""

    qa_eval: QAEval | None = None
    qa_predictions: dict[str, str] | None = None  # the last QA evaluation's answer to each question, by its id
    # evaluate() reads classification rows longest first (_get_eval_sampler; the dynakd commands set it), else in
    # the dataset's order, which a compute_metrics of one's own may pair with its rows; predict() keeps that order
    eval_longest_first: bool = False

    def _get_eval_sampler(self, eval_dataset):
        # transformers 5 groups evaluation batches by length whenever training does (train_sampling_strategy
        # "group_by_length"), with a random order of groups, which returns predictions in another order than the
        # dataset's. QA postprocessing maps window i to its question and offsets (shuffled windows gave a MiniLM
        # teacher F1 6 instead of 50): QA keeps dataset order, and so does classification unless eval_longest_first.
        # The commands' classification metrics do not mind the order (labels travel with the predictions): rows
        # longest first, in a fixed order, pad a batch to rows of about its length (SST-2's dev set at batches of
        # 64: 23,512 token positions against 44,448 in dataset order).
        if eval_dataset is None or not has_length(eval_dataset):
            return None
        if self.args.world_size > 1:
            return None  # accelerate shards it
        if (not self.eval_longest_first or self.qa_eval is not None
                or "input_ids" not in getattr(eval_dataset, "column_names", ())):
            return SequentialSampler(eval_dataset)
        return LongestFirst(eval_dataset["input_ids"][:])

    def predict(self, *args, **kwargs):
        """The Trainer's ``predict``: row i of the predictions is row i of the dataset, whatever
        ``eval_longest_first`` says."""
        longest, self.eval_longest_first = self.eval_longest_first, False
        try:
            return super().predict(*args, **kwargs)
        finally:
            self.eval_longest_first = longest

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """The Trainer's evaluation (QA: over whole questions), leaving the random streams as they were: its data
        loader draws a seed from the global generator, so evaluating would otherwise change the training that follows
        (dropout, the next epoch's order): results would depend on how often a run evaluates, and a run resumed from
        a checkpoint saved just before an evaluation would not replay it."""
        cuda = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=cuda):
            return self._evaluate_keeping_rng(eval_dataset, self._ignored_outputs(ignore_keys), metric_key_prefix)

    def _ignored_outputs(self, ignore_keys: list[str] | None) -> list[str]:
        """The outputs evaluation leaves out of the predictions: ``ignore_keys``, else the model's (as the Trainer
        takes them: ``keys_to_ignore_at_inference``, else its cache), and the ``EXTRA_OUTPUTS`` a config may ask
        for, so that the predictions are the logits (QA: the start and end logits) whatever the config says."""
        if ignore_keys is None:
            config = getattr(self.model, "config", None)
            ignore_keys = [] if config is None else list(getattr(config, "keys_to_ignore_at_inference",
                                                                  ("cache", "past_key_values")))
        return [*ignore_keys, *(k for k in EXTRA_OUTPUTS if k not in ignore_keys)]

    def _evaluate_keeping_rng(self, eval_dataset, ignore_keys, metric_key_prefix: str) -> dict[str, float]:
        qa = self.qa_eval
        if qa is None or isinstance(eval_dataset, dict):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        dataset = qa.features if eval_dataset is None else eval_dataset
        if len(dataset) != len(qa.example_ids):
            raise ValueError(f"QA evaluation of {len(dataset)} windows, but qa_eval describes {len(qa.example_ids)}")
        start = time.time()
        compute, self.compute_metrics = self.compute_metrics, None  # the logits of windows are no scores yet
        try:
            output = self.evaluation_loop(self.get_eval_dataloader(dataset), description="Evaluation",
                                          prediction_loss_only=False, ignore_keys=ignore_keys,
                                          metric_key_prefix=metric_key_prefix)
        finally:
            self.compute_metrics = compute
        start_logits, end_logits = output.predictions[:2]  # [N windows, T] each (padded with -100 past a window)
        self.qa_predictions = best_spans(qa, start_logits, end_logits)
        scores = squad_metrics(self.qa_predictions, gold_answers(qa.examples))
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in scores.items()}
        metrics.update({k: v for k, v in output.metrics.items() if not k.endswith(("_runtime", "_per_second"))})
        metrics.update(speed_metrics(metric_key_prefix, start, num_samples=len(qa.examples)))
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


class EvalTrainer(QAEvaluationMixin, Trainer):
    """A plain ``Trainer`` that also evaluates extractive QA (``qa_eval``)."""

    def __init__(self, *args, qa_eval: QAEval | None = None, **kwargs):
        # The Trainer seeds every generator when built (set_seed(args.seed)): scoring a model (dynakd.evaluate(), a
        # teacher) would reset the caller's random streams to seed 42
        py_state, np_state = random.getstate(), np.random.get_state()
        # (CUDA's too where it is not yet initialised: set_seed would replace the seed queued for it; the Trainer
        # initialises it anyway, to move the model there)
        cuda = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        try:
            with torch.random.fork_rng(devices=cuda):
                super().__init__(*args, **kwargs)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        self.qa_eval = qa_eval
        # Under FSDP or DeepSpeed (set for the whole process by the launcher) this trainer inherits the plugin, and the
        # Trainer would shard the evaluated model (the frozen teacher, a full replica per process). FSDP2 raises "a
        # model and optimizer must be passed together to Accelerator.prepare()", DeepSpeed ZeRO-2 "ZeRO inference only
        # makes sense with ZeRO Stage 3". Evaluate it unwrapped instead (each process scores its part of the eval set
        # and the Trainer gathers the predictions, as under DDP).
        self.is_fsdp_enabled = self.is_deepspeed_enabled = False
        self._move_model_to_device(self.model, self.args.device)  # the Trainer left it in place for the plugin
