"""The world-scale Mask2Former-VIS shipped with the package (``segblocks train mask2former-video``).

The shipped file holds the whole model (a ``regnetx_002`` backbone trained from scratch with the
decoders, at world scale, the 18 shapes-world classes) in fp16; :func:`load_shipped_mask2former_video`
builds that configuration and loads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from segblocks.backbones.checkpoints import save_state_dict_file
from segblocks.data import CATEGORIES
from segblocks.zoo.mask2former.build import build_mask2former
from segblocks.zoo.mask2former.model import Mask2Former

__all__ = [
    "SHIPPED_VIDEO_WEIGHTS",
    "build_world_video_model",
    "export_weights",
    "load_shipped_mask2former_video",
]

#: The world-scale video weights (see ``zoo/mask2former/README.md``, section "Video").
SHIPPED_VIDEO_WEIGHTS = Path(__file__).parent / "weights" / "shapes_video.safetensors"
#: The backbone of the shipped video model.
WORLD_VIDEO_BACKBONE = "regnetx_002"


def build_world_video_model() -> Mask2Former:
    """The world-scale configuration the shipped video weights belong to (random weights)."""
    return build_mask2former(
        WORLD_VIDEO_BACKBONE,
        num_classes=len(CATEGORIES),
        class_names=[c.name for c in CATEGORIES],
        is_thing=[c.is_thing for c in CATEGORIES],
        variant="world",
    )


def export_weights(model: Mask2Former, path: str | Path, *, metadata: dict[str, str] | None = None) -> Path:
    """Save a trained model's state dict in fp16 (integer buffers keep their dtype).

    Args:
        model: the trained world-scale model.
        path: the ``.safetensors`` file to write.
        metadata: string metadata for the header (e.g. the training summary as JSON).
    """
    return save_state_dict_file(model.state_dict(), path, metadata=metadata)


def load_shipped_mask2former_video(
    path: str | Path = SHIPPED_VIDEO_WEIGHTS, *, device: str | torch.device = "cpu"
) -> Mask2Former:
    """The world-scale Mask2Former-VIS with the shipped weights, in eval mode.

    Args:
        path: a file written by :func:`export_weights` (default: the shipped one).
        device: where to put the model.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: on a corrupt file or one that does not hold this configuration's tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such weights file {str(path)!r}")
    try:
        state = load_file(str(path))
    except SafetensorError as err:
        raise ValueError(f"path: {str(path)!r} is not a readable safetensors weights file ({err})") from None
    model = build_world_video_model()
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f"path: {str(path)!r} does not fit the world-scale video Mask2Former: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatch {wrong[:5]}"
        )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model.to(device).eval()


def shipped_summary(path: str | Path = SHIPPED_VIDEO_WEIGHTS) -> dict[str, object]:
    """The training summary stored in a weights file's header (``{}`` when there is none).

    Args:
        path: a file written by :func:`export_weights`.
    """
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return json.loads(meta["summary"]) if "summary" in meta else {}
