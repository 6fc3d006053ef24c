"""Reading weight files safely and loading them with a clear report of what did not fit."""

from __future__ import annotations

import json
import logging
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

__all__ = ["LoadReport", "load_state_dict_file", "load_weights", "read_summary", "save_state_dict_file"]

logger = logging.getLogger(__name__)


def save_state_dict_file(
    state: Mapping[str, Tensor],
    path: str | os.PathLike[str],
    *,
    dtype: torch.dtype = torch.float16,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a state dict as one ``.safetensors`` file, floating tensors cast to ``dtype``.

    The counterpart of :func:`load_state_dict_file` for the weights segblocks ships (fp16 halves
    them; the loaders upcast). Integer tensors (e.g. batch-norm counters) keep their dtype.

    Args:
        state: the tensors by key (a module's ``state_dict()``).
        path: the ``.safetensors`` file to write; parent folders are created.
        dtype: the floating dtype to store.
        metadata: string metadata for the file header.

    Returns:
        The path written.

    Raises:
        ValueError: on a path not ending in ``.safetensors`` or a non-floating ``dtype``.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"path: expected a .safetensors file, got {str(path)!r}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a floating dtype, got {dtype}")
    tensors = {
        k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous()
        for k, v in state.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=dict(metadata or {}))
    return path


def read_summary(path: str | Path) -> dict[str, object]:
    """The JSON ``"summary"`` entry of a weights file's header (``{}`` when there is none).

    Args:
        path: a ``.safetensors`` file written by :func:`save_state_dict_file` with
            ``metadata={"summary": json.dumps(...)}``.
    """
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get("summary")
    return json.loads(raw) if raw else {}


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from a ``.safetensors`` file or a PyTorch pickle, never running code.

    PyTorch files are read with ``torch.load(..., weights_only=True)``: tensors, numbers, strings and
    containers only. Training checkpoints that wrap the weights (``{"state_dict": ...}`` or
    ``{"model": ...}``) are unwrapped, and a DDP ``module.`` prefix is stripped.

    Args:
        path: the weight file.

    Returns:
        The state dict on CPU.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: if the pickle references anything but weights (it would run code), the file is
            corrupt or not a weights file, or it holds no mapping of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no such file {str(path)!r}")
    if path.suffix == ".safetensors":
        try:
            state: object = load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own SafetensorError on a bad header
            raise ValueError(f"checkpoint: cannot read {str(path)!r} as safetensors: {err}") from err
        return _unwrap(state, path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        globals_ = [ln for ln in lines if "global" in ln.lower() and "weights_only" not in ln]
        if globals_:
            raise ValueError(
                f"checkpoint: refusing to load {str(path)!r}: its pickle references objects other than "
                "weights, so unpickling it could run arbitrary code (only weights_only=True loading is "
                "allowed). If you trust the file, convert it to safetensors in a separate process. "
                f"Details: {globals_[0]}"
            ) from err
        detail = next((ln for ln in lines if "Unsupported" in ln), lines[-1] if lines else "")
        raise ValueError(
            f"checkpoint: cannot read {str(path)!r}: not a valid weights file ({detail})"
        ) from err
    except (EOFError, KeyError, RuntimeError, ValueError) as err:
        raise ValueError(
            f"checkpoint: cannot read {str(path)!r}: not a valid weights file ({err!r})"
        ) from err
    return _unwrap(state, path)


def _unwrap(state: object, path: Path) -> dict[str, Tensor]:
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping):
        raise ValueError(
            f"checkpoint: expected a mapping of tensors in {str(path)!r}, got {type(state).__name__}"
        )
    tensors = {str(k): v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ValueError(f"checkpoint: no tensors found in {str(path)!r}")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


@dataclass
class LoadReport:
    """What happened when a state dict was loaded into a module.

    Attributes:
        source: where the weights came from (a path, a tag, or ``"random init"``).
        missing: keys the module expects that the state dict lacks.
        unexpected: keys of the state dict the module does not have.
    """

    source: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every key matched."""
        return not self.missing and not self.unexpected

    def __str__(self) -> str:
        if self.ok:
            return f"loaded {self.source}: all keys matched"
        missing, unexpected = _short(self.missing), _short(self.unexpected)
        return f"loaded {self.source}: missing keys {missing}; unexpected keys {unexpected}"


def _short(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    more = f", ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return f"[{shown}{more}]" if keys else "[]"


def load_weights(
    module: nn.Module, state_dict: Mapping[str, Tensor], *, source: str, strict: bool
) -> LoadReport:
    """Load ``state_dict`` into ``module``, refusing shape mismatches and reporting key mismatches.

    Args:
        module: the module to fill.
        state_dict: name -> tensor, with ``module``'s key names.
        source: a description of where the weights come from, used in messages.
        strict: raise on missing or unexpected keys (otherwise log a warning and load what matches).

    Returns:
        The :class:`LoadReport`.

    Raises:
        ValueError: on any shape mismatch (the message names the key and both shapes), and with
            ``strict=True`` on missing or unexpected keys.
    """
    expected = module.state_dict()
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if mismatched:
        raise ValueError(f"checkpoint {source}: shape mismatch for " + "; ".join(mismatched))
    report = LoadReport(
        source=source,
        missing=sorted(k for k in expected if k not in state_dict),
        unexpected=sorted(k for k in state_dict if k not in expected),
    )
    if not report.ok:
        if strict:
            raise ValueError(f"checkpoint {source}: keys do not match the model (strict=True). {report}")
        logger.warning("%s", report)
    module.load_state_dict(dict(state_dict), strict=False)
    logger.info("%s", report)
    return report
