"""Resumable, atomic, pickle-free training checkpoints.

A checkpoint is a directory ``<checkpoint_dir>/step_00001000/`` holding

- ``model.safetensors``: the model's state dict (loadable on its own with :func:`load_weights`);
- ``training_state.safetensors``: the tensors of the optimizer, scheduler, scaler and RNG states;
- ``state.json``: the step, the run's config and every non-tensor part of those states;
- ``manifest.json``: the size and SHA-256 of each file, written last.

Rank 0 writes everything into a hidden staging directory, flushes it to disk, and renames it into
place, so a checkpoint either exists complete or not at all. Loading checks the manifest, parses
every file and checks that the model and optimizer fit *before* touching them: a truncated, corrupt,
unsafe or foreign checkpoint is refused with a clear message and never half-loaded, and
``resume=True`` falls back to the newest checkpoint that passes.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import os
import random
import re
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from safetensors.torch import save_file
from torch import Tensor, nn

from .distributed import DistInfo, barrier, unwrap_model
from .serialization import encode_state, fsync_dir, sha256_file, untie, write_json
from .weights import CheckpointError, looks_like_pickle

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "find_latest_checkpoint",
    "list_checkpoints",
    "save_checkpoint",
    "verify_checkpoint",
]

logger = logging.getLogger(__name__)

FORMAT, VERSION = "segblocks.checkpoint", 1
MODEL_FILE, TENSORS_FILE, STATE_FILE, MANIFEST_FILE = (
    "model.safetensors",
    "training_state.safetensors",
    "state.json",
    "manifest.json",
)
_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """What a loaded checkpoint tells the training loop.

    Attributes:
        path: The checkpoint directory.
        step: Optimizer steps completed when it was written; the loop continues from here.
        config: The run's config as saved (plain JSON values).
        extra: Anything else the loop saved with ``extra=`` (e.g. the best score so far).
    """

    path: Path
    step: int
    config: Any
    extra: Any


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, (np.generic, torch.dtype, torch.device)):
        return value.item() if isinstance(value, np.generic) else str(value)
    raise TypeError(f"config: cannot store a {type(value).__name__} in JSON")


def _rng_state() -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (the global stream user code draws from)
        "torch": torch.get_rng_state(),
        "cuda": cuda,
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_manifest(staging: Path, step: int, names: list[str]) -> None:
    files = {
        name: {"bytes": (staging / name).stat().st_size, "sha256": sha256_file(staging / name)}
        for name in names
    }
    write_json(staging / MANIFEST_FILE, {"format": FORMAT, "version": VERSION, "step": step, "files": files})


def list_checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """Checkpoint directories (``step_N``) in ``checkpoint_dir``, oldest first.

    Args:
        checkpoint_dir: The run's checkpoint directory (may not exist yet).

    Returns:
        Paths sorted by step; their contents are not verified (see :func:`verify_checkpoint`).
    """
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(
    checkpoint_dir: str | Path,
    *,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    config: Any = None,
    extra: Any = None,
    dist: DistInfo | None = None,
    keep_last: int | None = None,
) -> Path:
    """Write a checkpoint of the run after ``step`` optimizer steps (call it on every rank).

    Every rank contributes its RNG state; rank 0 writes the files atomically and, with
    ``keep_last``, then deletes the oldest checkpoints.

    Args:
        checkpoint_dir: The run's checkpoint directory (created if needed).
        step: Optimizer steps completed.
        model: The model, possibly DDP-wrapped.
        optimizer: The optimizer.
        scheduler: The learning-rate scheduler.
        scaler: The gradient scaler.
        config: The run's config: a dataclass or JSON-compatible mapping.
        extra: More JSON-compatible state or tensors (nested containers allowed).
        dist: This process's :class:`DistInfo` (``None`` for a single process).
        keep_last: Keep only this many newest checkpoints (``None`` keeps all).

    Returns:
        The checkpoint directory ``<checkpoint_dir>/step_<step>``.

    Raises:
        ValueError: If ``step`` < 0 or ``keep_last`` < 1.
        TypeError: If ``config``/``extra`` or the model's state hold unsupported objects.
    """
    if not isinstance(step, int) or step < 0:
        raise ValueError(f"step: expected an int >= 0, got {step!r}")
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last: expected None or an int >= 1, got {keep_last!r}")
    dist = dist or DistInfo()
    root = Path(checkpoint_dir)
    final = root / f"step_{step:08d}"
    rng_states: list[Any] = [_rng_state()]
    if dist.is_distributed:
        rng_states = [None] * dist.world_size
        torch_dist.all_gather_object(rng_states, _rng_state())
    if dist.is_main:
        _write_checkpoint(
            root, final, step, unwrap_model(model), optimizer, scheduler, scaler, config, extra, rng_states
        )
        if keep_last is not None:
            older = [p for p in list_checkpoints(root) if p != final and _step_of(p) < step]
            for old in older[: max(0, len(older) - (keep_last - 1))]:
                shutil.rmtree(old, ignore_errors=True)
        logger.info("saved checkpoint %s", final)
    barrier(dist)
    return final


def _step_of(path: Path) -> int:
    match = _STEP_DIR.match(path.name)
    return int(match.group(1)) if match else -1


def _write_checkpoint(
    root: Path,
    final: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    scaler: torch.amp.GradScaler | None,
    config: Any,
    extra: Any,
    rng_states: list[Any],
) -> None:
    model_state = {}
    for key, value in model.state_dict().items():
        if not isinstance(value, Tensor):
            raise TypeError(f"model.state_dict()[{key!r}]: expected a tensor, got {type(value).__name__}")
        model_state[key] = value.detach().to("cpu").contiguous()
    tensors: dict[str, Tensor] = {}
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "step": step,
        "model_class": type(model).__qualname__,
        "world_size": len(rng_states),
        "torch_version": torch.__version__,
        "created_unix": time.time(),
        "config": json.loads(json.dumps(config, default=_json_default)),
        "optimizer": encode_state(optimizer.state_dict(), tensors, "optimizer") if optimizer else None,
        "scheduler": encode_state(scheduler.state_dict(), tensors, "scheduler") if scheduler else None,
        "scaler": encode_state(scaler.state_dict(), tensors, "scaler") if scaler else None,
        "rng": encode_state(rng_states, tensors, "rng"),
        "extra": encode_state(extra, tensors, "extra"),
    }
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".step_*.tmp-*"):  # left by a crash during an earlier write
        shutil.rmtree(stale, ignore_errors=True)
    staging = root / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    save_file(untie(model_state), staging / MODEL_FILE, metadata={"format": FORMAT})
    save_file(untie(tensors), staging / TENSORS_FILE, metadata={"format": FORMAT})
    for name in (MODEL_FILE, TENSORS_FILE):
        with open(staging / name, "rb+") as handle:
            os.fsync(handle.fileno())
    write_json(staging / STATE_FILE, meta)
    _write_manifest(staging, step, [MODEL_FILE, TENSORS_FILE, STATE_FILE])
    fsync_dir(staging)
    if final.exists():  # re-saving a step (e.g. after resuming from an older checkpoint)
        old = root / f".{final.name}.tmp-old-{uuid.uuid4().hex[:8]}"
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(final)
    fsync_dir(root)


def _check_entry(file: Path, entry: Any, data: bytes | None) -> None:
    if not isinstance(entry, dict) or not file.is_file():
        raise CheckpointError(f"{file}: listed in the manifest but missing")
    size = len(data) if data is not None else file.stat().st_size
    if size != entry.get("bytes"):
        raise CheckpointError(
            f"{file}: truncated or altered ({size} bytes, the manifest says {entry.get('bytes')})"
        )
    digest = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(file)
    if digest != entry.get("sha256"):
        raise CheckpointError(f"{file}: corrupt (its SHA-256 differs from the manifest)")


def _read_manifest(path: Path) -> dict[str, Any]:
    if path.is_file():
        with open(path, "rb") as handle:
            head = handle.read(8)
        hint = (
            " It looks like a pickle / torch.save file: segblocks never unpickles checkpoints; to "
            "initialise weights from it use load_weights(), which loads with torch.load(weights_only=True)."
            if looks_like_pickle(head)
            else ""
        )
        raise CheckpointError(
            f"{path}: is a file, expected a checkpoint directory with {MANIFEST_FILE}.{hint}"
        )
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"{path}: incomplete, {MANIFEST_FILE} is missing (the write did not finish)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} manifest")
        files, step = manifest["files"], manifest["step"]
        if not isinstance(files, dict) or not isinstance(step, int):
            raise ValueError("bad 'files' or 'step' entry")
    except (ValueError, KeyError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{manifest_path}: corrupt manifest ({err})") from None
    for name in files:
        if Path(name).name != name or name == MANIFEST_FILE:
            raise CheckpointError(f"{manifest_path}: invalid file name {name!r}")
    for required in (MODEL_FILE, TENSORS_FILE, STATE_FILE):
        if required not in files:
            raise CheckpointError(f"{manifest_path}: does not list {required}")
    return manifest


def verify_checkpoint(path: str | Path) -> int:
    """Check a checkpoint's files against its manifest (sizes and SHA-256) without loading them.

    Args:
        path: A checkpoint directory.

    Returns:
        The checkpoint's step.

    Raises:
        CheckpointError: If the checkpoint is incomplete, truncated or corrupt.
    """
    path = Path(path)
    manifest = _read_manifest(path)
    for name, entry in manifest["files"].items():
        _check_entry(path / name, entry, None)
    return int(manifest["step"])


def find_latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The newest checkpoint in ``checkpoint_dir`` that verifies; broken ones are skipped with a warning.

    Args:
        checkpoint_dir: The run's checkpoint directory.

    Returns:
        Its path, or ``None`` when there is no valid checkpoint.
    """
    for path in reversed(list_checkpoints(checkpoint_dir)):
        try:
            verify_checkpoint(path)
        except CheckpointError as err:
            logger.warning("skipping checkpoint: %s", err)
            continue
        return path
    return None
