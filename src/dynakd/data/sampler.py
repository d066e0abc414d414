"""The training order of length-grouped batches."""

from __future__ import annotations

import numpy as np
import torch
from transformers.trainer_pt_utils import LengthGroupedSampler


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
        # epoch e of seed s must not be epoch 0 of seed s + e (runs of seeds 1-3 would share most of their batches);
        # epoch 0 keeps the seed it always had, so one-epoch runs repeat earlier ones
        seed = self.seed if self.epoch == 0 else int(
            np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0])
        self.generator = torch.Generator().manual_seed(seed)
        return super().__iter__()
