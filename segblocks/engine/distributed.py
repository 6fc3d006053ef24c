"""Distributed set-up from torchrun's environment, DDP wrapping, metric reduction and teardown.

A training loop calls :func:`setup_distributed` once. Under ``torchrun`` (which sets ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``) it joins the process group — NCCL when the process drives a CUDA
device, gloo on CPU — and pins the process to its local GPU. Without those variables it returns a
single-process :class:`DistInfo`, so the same loop runs under ``python train.py`` and under
``torchrun --nproc_per_node 8 train.py``. Multi-node runs use torchrun's own flags (``--nnodes``,
``--node_rank``, ``--rdzv_endpoint``); nothing here is specific to them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import torch
import torch.distributed as torch_dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "DistInfo",
    "all_reduce",
    "barrier",
    "cleanup_distributed",
    "reduce_metrics",
    "setup_distributed",
    "setup_logging",
    "sum_over_ranks",
    "unwrap_model",
    "wrap_ddp",
]

logger = logging.getLogger(__name__)

ReduceOp = Literal["mean", "sum", "max", "min"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank: Global rank in ``[0, world_size)``.
        local_rank: Rank on this node; selects the CUDA device.
        world_size: Number of processes in the job (1 without torchrun).
        device: The device this process computes on.
        backend: ``"nccl"``, ``"gloo"`` or ``None`` when no process group was created.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs and writes checkpoints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when a process group with more than one process is active."""
        return self.backend is not None and self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}: expected an integer, got {raw!r}") from None


def setup_distributed(
    *,
    device: str | torch.device | None = None,
    backend: str | None = None,
    timeout_s: float = 1800.0,
) -> DistInfo:
    """Join the torchrun job described by the environment, or run as a single process.

    Args:
        device: ``"cuda"``, ``"cpu"`` or an explicit device. ``None`` picks CUDA when available.
            Under torchrun a CUDA process uses ``cuda:{LOCAL_RANK}``.
        backend: Process-group backend; ``None`` picks ``"nccl"`` for CUDA and ``"gloo"`` for CPU.
        timeout_s: Timeout of collective operations, in seconds.

    Returns:
        The :class:`DistInfo` of this process.

    Raises:
        ValueError: If the torchrun variables are inconsistent or ``device`` is unknown.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"RANK/WORLD_SIZE: expected 0 <= RANK < WORLD_SIZE, got {rank}/{world_size}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type not in ("cuda", "cpu"):
        raise ValueError(f"device: expected 'cuda' or 'cpu', got {device!r}")
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank if dev.index is None else dev.index)
        torch.cuda.set_device(dev)
    if world_size == 1:
        return DistInfo(rank=0, local_rank=0, world_size=1, device=dev, backend=None)
    if backend is None:
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend=backend,
            timeout=timedelta(seconds=timeout_s),
            device_id=dev if dev.type == "cuda" else None,
        )
    info = DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=dev, backend=backend)
    logger.info("rank %d/%d on %s (%s)", rank, world_size, dev, backend)
    return info


def setup_logging(dist: DistInfo, *, level: int = logging.INFO) -> None:
    """Configure the root logger so that only rank 0 prints informational messages.

    Other ranks keep errors, which a crash on any rank must not hide.

    Args:
        dist: This process's :class:`DistInfo`.
        level: Level for rank 0.
    """
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if dist.world_size > 1:
        fmt = f"[rank {dist.rank}] " + fmt
    logging.basicConfig(level=level if dist.is_main else logging.ERROR, format=fmt, force=True)


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the plain model under DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers.

    Args:
        model: A module, possibly wrapped.

    Returns:
        The innermost module, whose ``state_dict`` keys carry no wrapper prefix.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    while True:
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif isinstance(inner := getattr(model, "_orig_mod", None), nn.Module):
            model = inner
        else:
            return model


def wrap_ddp(model: nn.Module, dist: DistInfo, **ddp_kwargs: Any) -> nn.Module:
    """Wrap ``model`` in ``DistributedDataParallel`` when the job has more than one process.

    The model must already be on ``dist.device``. DDP broadcasts rank 0's parameters and buffers
    at construction, so every rank starts from the same weights.

    Args:
        model: The model to train, on ``dist.device``.
        dist: This process's :class:`DistInfo`.
        **ddp_kwargs: Passed to ``DistributedDataParallel`` (e.g. ``find_unused_parameters=True``).

    Returns:
        The wrapped model, or ``model`` itself for a single process.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if not dist.is_distributed:
        return model
    device_ids = [dist.device.index] if dist.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, **ddp_kwargs)


def barrier(dist: DistInfo) -> None:
    """Wait for every rank (no-op for a single process).

    Args:
        dist: the run's distributed set-up (from :func:`setup_distributed`).
    """
    if dist.is_distributed:
        torch_dist.barrier()


_TORCH_OPS = {"sum": "SUM", "mean": "SUM", "max": "MAX", "min": "MIN"}


def all_reduce(tensor: Tensor, dist: DistInfo, *, op: ReduceOp = "sum") -> Tensor:
    """Reduce ``tensor`` across ranks and return the result (the input is left untouched).

    Use it for evaluation sums such as confusion matrices ``[K, K]`` or per-class counts ``[K]``.

    Args:
        tensor: Any tensor on ``dist.device``; same shape on every rank.
        dist: This process's :class:`DistInfo`.
        op: ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``.

    Returns:
        The reduced tensor, same shape as ``tensor``.

    Raises:
        TypeError: If ``tensor`` is not a tensor.
        ValueError: If ``op`` is unknown.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"tensor: expected a torch.Tensor, got {type(tensor).__name__}")
    if op not in _TORCH_OPS:
        raise ValueError(f"op: expected one of {sorted(_TORCH_OPS)}, got {op!r}")
    out = tensor.detach().clone()
    if not dist.is_distributed:
        return out
    torch_dist.all_reduce(out, op=getattr(torch_dist.ReduceOp, _TORCH_OPS[op]))
    if op == "mean":
        out = out / dist.world_size
    return out


def sum_over_ranks(value: int, device: torch.device | str = "cpu") -> int:
    """The sum of an integer count over all ranks (the value itself outside ``torchrun``).

    For evaluation loops that count what their shard saw (images, segments) and have no
    :class:`DistInfo` at hand.

    Args:
        value: this rank's count.
        device: where the collective runs (the model's device under NCCL).

    Returns:
        The total over ranks.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return int(value)
    total = torch.tensor([int(value)], dtype=torch.int64, device=device)
    torch_dist.all_reduce(total)
    return int(total.item())


def reduce_metrics(
    metrics: Mapping[str, float | Tensor], dist: DistInfo, *, op: ReduceOp = "mean"
) -> dict[str, float]:
    """Reduce a dict of scalar metrics across ranks in one collective and return Python floats.

    This synchronises with the host once; call it at logging intervals, not every step.

    Args:
        metrics: Scalar metrics (floats or 0-d / single-element tensors), same keys on every rank.
        dist: This process's :class:`DistInfo`.
        op: ``"mean"`` (default), ``"sum"``, ``"max"`` or ``"min"``.

    Returns:
        ``{name: reduced value}`` with the same keys, in the same order.

    Raises:
        TypeError: If a value is neither a number nor a tensor.
        ValueError: If a tensor value has more than one element, or ``op`` is unknown.
    """
    if op not in _TORCH_OPS:
        raise ValueError(f"op: expected one of {sorted(_TORCH_OPS)}, got {op!r}")
    if not metrics:
        return {}
    values: list[Tensor] = []
    for name, value in metrics.items():
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise ValueError(
                    f"metrics[{name!r}]: expected a scalar tensor, got shape {tuple(value.shape)}"
                )
            values.append(value.detach().reshape(()).to(dist.device, torch.float64))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values.append(torch.tensor(float(value), dtype=torch.float64, device=dist.device))
        else:
            raise TypeError(f"metrics[{name!r}]: expected a float or a tensor, got {type(value).__name__}")
    stacked = all_reduce(torch.stack(values), dist, op=op)
    return dict(zip(metrics.keys(), stacked.tolist()))


def cleanup_distributed() -> None:
    """Destroy the process group if one was created (safe to call in every case)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
