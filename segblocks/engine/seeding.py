"""Deterministic seeding per rank and per data-loader worker.

Seeds are derived with :class:`numpy.random.SeedSequence` from the run's seed and a key such as the
rank, so that rank 1 of a run seeded 0 never replays rank 0 of a run seeded 1.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["derive_seed", "preserved_rng", "seed_everything", "seed_worker"]


def derive_seed(seed: int, *keys: int) -> int:
    """Derive an independent 31-bit seed from ``seed`` and integer ``keys`` (rank, worker, ...).

    Args:
        seed: The run's base seed, a non-negative integer.
        *keys: Non-negative integers that name the stream.

    Returns:
        A seed in ``[0, 2**31)``.

    Raises:
        TypeError: If ``seed`` or a key is not an integer.
        ValueError: If ``seed`` or a key is negative.
    """
    for name, value in (("seed", seed), *((f"keys[{i}]", k) for i, k in enumerate(keys))):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name}: expected a non-negative int, got {value}")
    state = np.random.SeedSequence([int(seed), *(int(k) for k in keys)]).generate_state(1, np.uint32)
    return int(state[0]) & 0x7FFFFFFF


def seed_everything(seed: int, *, rank: int = 0) -> int:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and every CUDA device) for this rank.

    Args:
        seed: The run's base seed.
        rank: This process's global rank; each rank gets its own stream.

    Returns:
        The seed actually used, ``derive_seed(seed, rank)``.

    Raises:
        TypeError: If ``seed`` or ``rank`` is not an integer.
        ValueError: If either is negative.
    """
    used = derive_seed(seed, rank)
    random.seed(used)
    np.random.seed(used)  # noqa: NPY002 (the global stream user code draws from)
    torch.manual_seed(used)  # also seeds every CUDA device
    return used


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` for ``DataLoader``: seed ``random`` and NumPy from the worker's torch seed.

    PyTorch gives every worker the seed ``base_seed + worker_id``, where ``base_seed`` comes from the
    loader's generator; seeding the other libraries from it keeps their streams distinct per rank
    (the generator is seeded per rank) and per worker.

    Args:
        worker_id: The worker's index, passed by ``DataLoader``.
    """
    worker_seed = torch.initial_seed() % 2**32
    random.seed(worker_seed)
    np.random.seed(derive_seed(worker_seed, worker_id))  # noqa: NPY002


@contextmanager
def preserved_rng(device: torch.device | str | None = None) -> Iterator[None]:
    """Restore torch's, NumPy's and Python's global random generators when the block ends.

    An evaluation in the middle of training may draw random numbers (a ``DataLoader``'s base seed,
    a sampler, a click simulator); inside this block it leaves the training's later draws as they
    would have been without it.

    Args:
        device: the training's device; a CUDA device's generator is restored too.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()  # noqa: NPY002 (the global stream user code draws from)
    device = torch.device(device) if device is not None else None
    cuda = []
    if device is not None and device.type == "cuda":  # "cuda" alone is the current device
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)  # noqa: NPY002
