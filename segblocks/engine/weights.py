"""Loading model weights from single files without ever running code from them.

``.safetensors`` files hold raw tensors and a JSON header. Files written by ``torch.save`` (``.pt``,
``.pth``, ``.bin``) are pickles: they are opened only with ``torch.load(weights_only=True)``, which
accepts plain tensors and containers and refuses anything that would import or call Python code.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from torch import Tensor, nn

from .distributed import unwrap_model

__all__ = [
    "CheckpointError",
    "check_state_dict_fits",
    "load_weights",
    "looks_like_pickle",
    "read_safetensors",
]

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint or weights file that cannot be used: corrupt, incomplete, unsafe or mismatched."""


def looks_like_pickle(head: bytes) -> bool:
    """True when ``head`` (a file's first bytes) starts like a pickle or a ``torch.save`` zip archive."""
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def read_safetensors(data: bytes, *, name: str) -> dict[str, Tensor]:
    """Parse safetensors bytes into CPU tensors, with a clear error for anything else.

    Args:
        data: The file's bytes.
        name: How to call the file in error messages.

    Returns:
        ``{key: tensor}``.

    Raises:
        CheckpointError: If ``data`` is not a valid safetensors file (a pickle is named as such).
    """
    try:
        return load_safetensors_bytes(data)
    except (SafetensorError, ValueError, RuntimeError, OSError) as err:
        if looks_like_pickle(data[:8]):
            raise CheckpointError(
                f"{name}: is a pickle / torch.save file, not safetensors; refusing to unpickle it "
                "(a pickle can run arbitrary code)"
            ) from None
        raise CheckpointError(f"{name}: is not a valid safetensors file ({err})") from None


def check_state_dict_fits(state: Mapping[str, Tensor], model: nn.Module, *, source: str) -> None:
    """Raise unless ``state`` has exactly the keys and shapes of ``model.state_dict()``.

    Args:
        state: The loaded ``{key: tensor}``.
        model: The (unwrapped) model it should fit.
        source: How to call the origin of ``state`` in the message.

    Raises:
        CheckpointError: Naming missing keys, unexpected keys and shape mismatches.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = sorted(k for k in state if k not in expected)
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", mismatched),
    ):
        if items:
            shown = ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
            parts.append(f"{len(items)} {label} ({shown})")
    raise CheckpointError(
        f"{source}: does not fit {type(model).__name__} (a checkpoint of a different model?): "
        + "; ".join(parts)
    )


def _torch_load_safely(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        named = [line for line in lines if "Unsupported" in line or "error:" in line]
        detail = (named or lines or [type(err).__name__])[0]
        raise CheckpointError(
            f"{path}: refusing to load: the pickle holds Python objects that would run code when "
            f"unpickled, and only plain tensors are accepted (torch.load(weights_only=True)): {detail}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot be read as a torch.save file ({err})") from None


def load_weights(path: str | Path, model: nn.Module, *, strict: bool = True, prefix: str = "") -> list[str]:
    """Load model weights from one ``.safetensors`` or ``torch.save`` file, never running its code.

    Every key and shape is checked before the model is touched, so a wrong file leaves the model
    as it was.

    Args:
        path: A ``.safetensors`` file, or a ``torch.save`` file holding a state dict (possibly
            under ``"model"`` or ``"state_dict"``).
        model: The model to fill (DDP / compile wrappers are unwrapped).
        strict: Require exactly the model's keys and shapes; when False, load the matching keys
            and log the others.
        prefix: Strip this prefix from the file's keys first (e.g. ``"module."``).

    Returns:
        The model keys that were not found in the file (empty when ``strict``).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CheckpointError: If the file is corrupt, an unsafe pickle, or does not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {path}")
    target = unwrap_model(model)
    data = path.read_bytes()
    if looks_like_pickle(data[:8]):
        loaded = _torch_load_safely(path)
        if isinstance(loaded, Mapping):
            for key in ("model", "state_dict"):
                if isinstance(loaded.get(key), Mapping):
                    loaded = loaded[key]
                    break
        if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
            raise CheckpointError(f"{path}: expected a state dict of tensors, got {type(loaded).__name__}")
        state = {str(k): v for k, v in loaded.items()}
    else:
        state = read_safetensors(data, name=str(path))
    if prefix:
        state = {k.removeprefix(prefix): v for k, v in state.items()}
    if strict:
        check_state_dict_fits(state, target, source=str(path))
        target.load_state_dict(state, strict=True)
        return []
    expected = target.state_dict()
    usable = {k: v for k, v in state.items() if k in expected and v.shape == expected[k].shape}
    missing = [k for k in expected if k not in usable]
    skipped = [k for k in state if k not in usable]
    if missing or skipped:
        logger.warning("%s: %d model keys not loaded, %d file keys skipped", path, len(missing), len(skipped))
    target.load_state_dict(usable, strict=False)
    return missing
