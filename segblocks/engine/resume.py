"""Loading a checkpoint into a run, all or nothing, and picking which one to resume from."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import (
    FORMAT,
    MODEL_FILE,
    STATE_FILE,
    TENSORS_FILE,
    VERSION,
    Checkpoint,
    _check_entry,
    _read_manifest,
    _set_rng_state,
    list_checkpoints,
)
from .distributed import DistInfo, unwrap_model
from .serialization import decode_state
from .weights import CheckpointError, check_state_dict_fits, read_safetensors

__all__ = ["load_checkpoint", "resume"]

logger = logging.getLogger(__name__)


def _check_optimizer_fits(state: dict[str, Any], optimizer: torch.optim.Optimizer, source: str) -> None:
    saved_groups = state.get("param_groups")
    if not isinstance(saved_groups, list) or not isinstance(state.get("state"), dict):
        raise CheckpointError(f"{source}: the optimizer state is malformed")
    groups = optimizer.param_groups
    saved_sizes = [len(g.get("params", [])) for g in saved_groups]
    sizes = [len(g["params"]) for g in groups]
    if saved_sizes != sizes:
        raise CheckpointError(
            f"{source}: the optimizer does not fit: parameter groups of sizes {saved_sizes} in the "
            f"checkpoint vs {sizes} here (a different model, or different frozen parameters?)"
        )
    by_id: dict[int, Tensor] = {}
    for saved_group, group in zip(saved_groups, groups):
        by_id.update(zip(saved_group["params"], group["params"]))
    for param_id, entry in state["state"].items():
        param = by_id.get(param_id)
        if param is None or not isinstance(entry, dict):
            raise CheckpointError(f"{source}: optimizer state for unknown parameter {param_id!r}")
        for name, value in entry.items():
            if isinstance(value, Tensor) and value.ndim > 0 and value.shape != param.shape:
                raise CheckpointError(
                    f"{source}: optimizer state {name!r} of parameter {param_id} has shape "
                    f"{tuple(value.shape)}, the parameter {tuple(param.shape)}"
                )


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    dist: DistInfo | None = None,
    restore_rng: bool = True,
) -> Checkpoint:
    """Load a checkpoint into the model and training state, or change nothing and raise.

    The files are checked against the manifest, parsed, and matched against the model's keys and
    shapes and the optimizer's groups before anything is loaded.

    Args:
        path: A checkpoint directory written by :func:`save_checkpoint`.
        model: The model (DDP / compile wrappers are unwrapped).
        optimizer: The optimizer to restore, if any.
        scheduler: The scheduler to restore, if any.
        scaler: The gradient scaler to restore, if any.
        dist: This process's :class:`DistInfo`, to pick this rank's RNG state.
        restore_rng: Restore the Python, NumPy and torch RNG states of this rank.

    Returns:
        The loaded :class:`Checkpoint` (step, config, extra).

    Raises:
        CheckpointError: If the checkpoint is incomplete, corrupt, unsafe, or does not fit the model,
            optimizer or scheduler; nothing was modified then.
    """
    path = Path(path)
    dist = dist or DistInfo()
    manifest = _read_manifest(path)
    contents: dict[str, bytes] = {}
    for name, entry in manifest["files"].items():
        file = path / name
        data = file.read_bytes() if file.is_file() else None
        _check_entry(file, entry, data)
        contents[name] = data if data is not None else b""
    try:
        meta = json.loads(contents[STATE_FILE].decode("utf-8"))
        if meta.get("format") != FORMAT or meta.get("step") != manifest["step"]:
            raise ValueError("format or step does not match the manifest")
    except (ValueError, UnicodeDecodeError, AttributeError) as err:
        raise CheckpointError(f"{path / STATE_FILE}: corrupt ({err})") from None
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: written by a newer segblocks (format version {meta['version']})")
    model_state = read_safetensors(contents[MODEL_FILE], name=str(path / MODEL_FILE))
    tensors = read_safetensors(contents[TENSORS_FILE], name=str(path / TENSORS_FILE))
    try:
        states = {
            key: decode_state(meta.get(key), tensors) for key in ("optimizer", "scheduler", "scaler", "rng")
        }
        extra = decode_state(meta.get("extra"), tensors)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: inconsistent training state ({err})") from None

    target = unwrap_model(model)
    check_state_dict_fits(model_state, target, source=f"{path} (written for {meta.get('model_class')})")
    for name, wanted in (("optimizer", optimizer), ("scheduler", scheduler)):
        if wanted is not None and states[name] is None:
            raise CheckpointError(f"{path}: holds no {name} state, but a {name} was given to restore")
    if optimizer is not None:
        _check_optimizer_fits(states["optimizer"], optimizer, str(path))
    if scheduler is not None:
        base_lrs = states["scheduler"].get("base_lrs", [])
        if len(base_lrs) != len(scheduler.optimizer.param_groups):
            raise CheckpointError(
                f"{path}: the scheduler state covers {len(base_lrs)} parameter groups, "
                f"the optimizer has {len(scheduler.optimizer.param_groups)}"
            )
    restore_scaler = scaler is not None and scaler.is_enabled()
    if restore_scaler and not states["scaler"]:
        logger.warning("%s: saved without an fp16 GradScaler; starting a fresh scaler", path)
        restore_scaler = False

    # Everything checked: load.
    target.load_state_dict(model_state, strict=True)
    if optimizer is not None:
        optimizer.load_state_dict(states["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(states["scheduler"])
    if restore_scaler:
        assert scaler is not None
        scaler.load_state_dict(states["scaler"])
    if restore_rng:
        rng = states["rng"]
        if isinstance(rng, list) and len(rng) == dist.world_size:
            _set_rng_state(rng[dist.rank])
        else:
            saved = len(rng) if isinstance(rng, list) else 0
            logger.warning(
                "%s: saved by %d processes, now %d: RNG states not restored", path, saved, dist.world_size
            )
    logger.info("resumed from %s (step %d)", path, meta["step"])
    return Checkpoint(path=path, step=int(meta["step"]), config=meta.get("config"), extra=extra)


def resume(
    resume: bool | str | Path | None,
    *,
    checkpoint_dir: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    dist: DistInfo | None = None,
    restore_rng: bool = True,
) -> Checkpoint | None:
    """Resume a run according to its ``resume=`` setting.

    - ``None`` / ``False``: start from scratch.
    - ``True`` / ``"latest"``: the newest checkpoint in ``checkpoint_dir`` that loads; incomplete,
      corrupt, unsafe or foreign ones are skipped with a warning. No checkpoint at all starts from
      scratch; checkpoints that all fail raise, so a broken run is never silently restarted.
    - a path: exactly that checkpoint directory.

    Args:
        resume: The setting, as above.
        checkpoint_dir: The run's checkpoint directory.
        model: The model (before or after DDP wrapping).
        optimizer: The optimizer to restore.
        scheduler: The scheduler to restore.
        scaler: The gradient scaler to restore.
        dist: This process's :class:`DistInfo`.
        restore_rng: Restore this rank's RNG states.

    Returns:
        The loaded :class:`Checkpoint`, or ``None`` when starting from scratch.

    Raises:
        TypeError: If ``resume`` has an unsupported type.
        CheckpointError: If the given checkpoint, or every checkpoint found, cannot be loaded.
    """
    kwargs: dict[str, Any] = dict(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        dist=dist,
        restore_rng=restore_rng,
    )
    if resume is None or resume is False:
        return None
    if isinstance(resume, (str, Path)) and str(resume) != "latest":
        return load_checkpoint(resume, **kwargs)
    if resume is not True and resume != "latest":
        raise TypeError(f"resume: expected None, a bool, 'latest' or a path, got {type(resume).__name__}")
    candidates = list(reversed(list_checkpoints(checkpoint_dir)))
    if not candidates:
        logger.info("no checkpoint in %s: starting from scratch", checkpoint_dir)
        return None
    reasons = []
    for path in candidates:
        try:
            return load_checkpoint(path, **kwargs)
        except CheckpointError as err:
            logger.warning("skipping checkpoint: %s", err)
            reasons.append(str(err))
    raise CheckpointError(
        f"{checkpoint_dir}: no usable checkpoint among {len(candidates)} ("
        + "; ".join(reasons)
        + "). Pass resume=False to start a new run, or point resume= at a good checkpoint."
    )
