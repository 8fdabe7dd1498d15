"""Training batches that depend only on (seed, epoch, rank).

The order of every epoch is drawn from its own generator, never from torch's global RNG, so a
run resumed from an end-of-epoch checkpoint sees exactly the batches an uninterrupted run would,
and every process of a distributed run agrees on the epoch's batches before taking its share.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from several integers (seed, epoch, rank, ...), well mixed."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


class EpochBatchSampler(Sampler[list[int]]):
    """Shuffled batches, optionally length-bucketed; ``set_epoch`` picks the epoch's order.

    With ``pool_batches`` the shuffled order is cut into pools of that many batches, each pool is
    sorted by length and batched, and the batches are shuffled: less padding, still varied batches.
    With ``world_size`` > 1 each rank takes every ``world_size``-th batch (the same count on every
    rank; the last few batches of an epoch may be dropped so no rank waits for another).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        pool_batches: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.lengths = torch.as_tensor(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool = batch_size * pool_batches if pool_batches else None
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch))
        order = torch.randperm(len(self.lengths), generator=generator)
        if self.pool is None:
            return [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        batches = []
        for start in range(0, len(order), self.pool):
            pool = order[start : start + self.pool]
            pool = pool[torch.argsort(self.lengths[pool], stable=True)]
            batches += [pool[i : i + self.batch_size].tolist() for i in range(0, len(pool), self.batch_size)]
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def __len__(self) -> int:
        total = (len(self.lengths) + self.batch_size - 1) // self.batch_size
        return total // self.world_size if self.world_size > 1 else total

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches()
        if self.world_size > 1:
            batches = batches[self.rank :: self.world_size][: len(self)]
        yield from batches
