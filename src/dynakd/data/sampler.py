"""The training order of length-grouped batches."""

from __future__ import annotations

import numpy as np
import torch
from transformers.trainer_pt_utils import LengthGroupedSampler


def derived_seed(seed: int, *keys: int) -> int:
    """A seed of its own for each ``keys`` (an epoch; a micro-batch and a process), mixed by numpy's SeedSequence
    rather than added (seed s + epoch e would be seed s + e's epoch 0); ``seed`` itself while every key is 0, so runs
    that never reach another key repeat those made before the keys existed."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0]) if any(keys) else seed


class EpochLengthGroupedSampler(LengthGroupedSampler):
    """transformers' length-grouped order (``group_by_length``), drawn from the seed and the epoch rather than from
    the global generator. The Trainer's own random sampler is seeded per epoch (accelerate); this one was not, so a run
    resumed after its first epoch drew another order for the epoch it resumed in and skipped the wrong batches
    (some rows twice, others never). ``DistillationTrainer`` sets the epoch before each one (``_run_epoch``)."""

    def __init__(self, batch_size: int, *, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch))
        return super().__iter__()
