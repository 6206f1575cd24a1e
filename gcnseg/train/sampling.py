"""The order of training samples: a function of (seed, epoch), and each sample's
augmentation a function of (seed, epoch, index), whatever the number of processes or
data workers. So a resumed run repeats exactly what the uninterrupted run would have
done, and N processes with batch B see the same global batches as one process with
batch N*B."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler


class SeededSamples(Dataset):
    """Each item is fetched as ``(index, seed)``: augmentation runs under its own seed."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


class EpochSampler(Sampler):
    """This process's share of one epoch, from ``start`` batches on.

    The permutation depends only on (seed, epoch); process ``rank`` takes every
    ``world``-th sample, so the global batch is the same for any process count.
    """

    def __init__(self, n: int, batch: int, rank: int, world: int, seed: int, epoch: int, start: int = 0) -> None:
        self.n, self.batch, self.rank, self.world = n, batch, rank, world
        self.seed, self.epoch, self.start = seed, epoch, start

    def steps(self) -> int:
        return self.n // (self.batch * self.world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g)[: self.steps() * self.batch * self.world]
        global_order = perm.view(-1, self.world)  # row t: samples t*world .. t*world+world-1
        mine = global_order[:, self.rank].tolist()
        base = (self.seed * 7919 + self.epoch) * 1_000_003
        for i in mine[self.start * self.batch :]:
            yield i, base + i

    def __len__(self) -> int:
        return (self.steps() - self.start) * self.batch
