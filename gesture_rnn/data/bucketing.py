"""Length-bucketed batches: sequences of similar length together, so a packed GRU batch runs
fewer time steps, reshuffled every epoch so the model still sees varied batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class BucketBatchSampler(Sampler[list[int]]):
    """Shuffle, cut into pools of ``pool_batches`` batches, sort each pool by length, batch it,
    then shuffle the order of all batches. Uses torch's global RNG (seeded by ``seed``)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, pool_batches: int = 20) -> None:
        self.lengths = torch.as_tensor(lengths)
        self.batch_size = batch_size
        self.pool = batch_size * pool_batches

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.pool):
            pool = order[start : start + self.pool]
            pool = pool[torch.argsort(self.lengths[pool], stable=True)]
            batches += [pool[i : i + self.batch_size].tolist() for i in range(0, len(pool), self.batch_size)]
        for index in torch.randperm(len(batches)).tolist():
            yield batches[index]
