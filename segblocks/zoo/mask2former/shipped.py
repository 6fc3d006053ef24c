"""The world-scale Mask2Former-VIS shipped with the package (``segblocks train mask2former-video``).

The shipped file holds the whole model (a ``regnetx_002`` backbone trained from scratch with the
decoders, at world scale, the 18 shapes-world classes) in fp16; :func:`load_shipped_mask2former_video`
builds that configuration and loads it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from segblocks.backbones.checkpoints import read_summary, save_state_dict_file
from segblocks.data import CATEGORIES
from segblocks.engine.weights import load_weights
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
        CheckpointError: on a corrupt file or one that does not hold this configuration's tensors.
    """
    model = build_world_video_model()
    load_weights(path, model, strict=True)  # checks every key and shape first; fp16 is upcast
    return model.to(device).eval()


def shipped_summary(path: str | Path = SHIPPED_VIDEO_WEIGHTS) -> dict[str, object]:
    """The training summary stored in a weights file's header (``{}`` when there is none).

    Args:
        path: a file written by :func:`export_weights`.
    """
    return read_summary(path)
