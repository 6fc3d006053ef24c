"""Distributed samplers and data loaders for iteration-based training and sharded evaluation.

Training is counted in optimizer steps, as in Mask2Former, so the training sampler is an endless
stream: the concatenation of one shuffled permutation of the dataset per epoch. Rank ``r`` of ``W``
reads positions ``r, r + W, r + 2W, ...`` of that stream, hence the ranks' local batches of step
``s`` together hold exactly the global batch a single process would read at step ``s``, and a
resumed run restarts the stream where it stopped (``start``) instead of at the beginning of an
epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .distributed import DistInfo
from .seeding import derive_seed, seed_worker

__all__ = ["InfiniteSampler", "ShardedSampler", "build_eval_loader", "build_train_loader"]


def _check_rank(rank: int, world_size: int) -> None:
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size: expected an int >= 1, got {world_size!r}")
    if not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank: expected an int in [0, {world_size}), got {rank!r}")


class InfiniteSampler(Sampler[int]):
    """Endless, resumable, rank-sharded stream of dataset indices.

    Args:
        size: Number of items in the dataset.
        shuffle: Permute each epoch (seeded by ``seed`` and the epoch number) or go in order.
        seed: Seed of the permutations; must be the same on every rank.
        rank: This process's global rank.
        world_size: Number of processes.
        start: Number of indices this rank has already consumed (``step * local_batch_size``
            when resuming after ``step`` steps).

    Raises:
        ValueError: If ``size`` < 1, ``start`` < 0 or ``rank``/``world_size`` are inconsistent.
    """

    def __init__(
        self,
        size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size: expected an int >= 1, got {size!r}")
        _check_rank(rank, world_size)
        if not isinstance(start, int) or start < 0:
            raise ValueError(f"start: expected an int >= 0, got {start!r}")
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start

    def _epoch(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.size)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
        return torch.randperm(self.size, generator=generator)

    def __iter__(self) -> Iterator[int]:
        position = self.rank + self.world_size * self.start  # position in the global stream
        epoch, offset = divmod(position, self.size)
        order = self._epoch(epoch)
        while True:
            while offset < self.size:
                yield int(order[offset])
                offset += self.world_size
            epoch += 1
            offset -= self.size
            order = self._epoch(epoch)


class ShardedSampler(Sampler[int]):
    """Rank ``r`` of ``W`` reads items ``r, r + W, ...`` in order, with no padding or duplicates.

    Unlike ``DistributedSampler`` it never repeats items to even out the shards, so sums of
    evaluation statistics across ranks count every item exactly once.

    Args:
        size: Number of items in the dataset.
        rank: This process's global rank.
        world_size: Number of processes.

    Raises:
        ValueError: If ``size`` < 0 or ``rank``/``world_size`` are inconsistent.
    """

    def __init__(self, size: int, *, rank: int = 0, world_size: int = 1) -> None:
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"size: expected an int >= 0, got {size!r}")
        _check_rank(rank, world_size)
        self.size = size
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))


def _dataset_size(dataset: Dataset[Any]) -> int:
    if not isinstance(dataset, Sized):
        raise TypeError(f"dataset: expected a map-style dataset with __len__, got {type(dataset).__name__}")
    return len(dataset)


def build_train_loader(
    dataset: Dataset[Any],
    *,
    batch_size: int,
    dist: DistInfo,
    seed: int,
    start_step: int = 0,
    shuffle: bool = True,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    pin_memory: bool = False,
) -> DataLoader[Any]:
    """An endless training loader whose step ``s`` batch is the same whether resumed or not.

    Args:
        dataset: A map-style dataset.
        batch_size: Per-rank batch size (the global batch is ``batch_size * dist.world_size``).
        dist: This process's :class:`DistInfo`.
        seed: The run's base seed (same on every rank).
        start_step: Optimizer steps already done; the stream skips ``start_step * batch_size`` items.
        shuffle: Shuffle each epoch.
        num_workers: Data-loading worker processes.
        collate_fn: Batch collation (default: PyTorch's).
        pin_memory: Pin host memory for faster copies to CUDA.

    Returns:
        A ``DataLoader`` to iterate with ``next()`` or ``zip(range(start, total), loader)``.

    Raises:
        TypeError: If ``dataset`` has no length.
        ValueError: If ``batch_size`` < 1 or ``start_step`` < 0.
    """
    size = _dataset_size(dataset)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    if not isinstance(start_step, int) or start_step < 0:
        raise ValueError(f"start_step: expected an int >= 0, got {start_step!r}")
    sampler = InfiniteSampler(
        size,
        shuffle=shuffle,
        seed=seed,
        rank=dist.rank,
        world_size=dist.world_size,
        start=start_step * batch_size,
    )
    generator = torch.Generator().manual_seed(derive_seed(seed, dist.rank, start_step))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        drop_last=True,
        worker_init_fn=seed_worker,
        generator=generator,
        persistent_workers=num_workers > 0,
    )


def build_eval_loader(
    dataset: Dataset[Any],
    *,
    batch_size: int,
    dist: DistInfo,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    pin_memory: bool = False,
) -> DataLoader[Any]:
    """An evaluation loader over this rank's shard (every item read once across all ranks).

    It has its own random generator: a ``DataLoader`` without one draws its workers' base seed from
    torch's global generator each time it is iterated, so an evaluation in the middle of training
    would shift every later random draw of the training step (point sampling, dropout), and a run
    evaluated every N steps would train differently from the same run evaluated only at the end.

    Args:
        dataset: A map-style dataset.
        batch_size: Per-rank batch size.
        dist: This process's :class:`DistInfo`.
        num_workers: Data-loading worker processes.
        collate_fn: Batch collation (default: PyTorch's).
        pin_memory: Pin host memory for faster copies to CUDA.

    Returns:
        A finite ``DataLoader``.

    Raises:
        TypeError: If ``dataset`` has no length.
        ValueError: If ``batch_size`` < 1.
    """
    size = _dataset_size(dataset)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    sampler = ShardedSampler(size, rank=dist.rank, world_size=dist.world_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(derive_seed(0, dist.rank)),
    )
