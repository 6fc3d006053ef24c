"""The world-scale OMG-Seg shipped with the package: only its trained parts, on the shipped tiny CLIP.

A ``segblocks train omg-seg`` checkpoint holds the whole model, frozen CLIP included. The package
ships the CLIP once (``shapes-clip-tiny``), so the OMG-Seg file keeps only what OMG-Seg trained --
pixel and mask decoders, queries, location-prompt encoder, classifier and objectness head -- in
fp16; :func:`load_shipped_omg_seg` builds the world-scale model on the shipped CLIP and fills them in.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from segblocks.backbones.checkpoints import read_summary, save_state_dict_file
from segblocks.engine.weights import CheckpointError, read_safetensors
from segblocks.zoo.omg_seg.build import build_omg_seg
from segblocks.zoo.omg_seg.model import OMGSeg

__all__ = [
    "FROZEN_PREFIX",
    "SHIPPED_WEIGHTS",
    "build_world_model",
    "export_trained_weights",
    "load_shipped_omg_seg",
]

#: State-dict prefix of the frozen CLIP (shipped in its own file).
FROZEN_PREFIX = "clip."
#: The world-scale weights trained by ``segblocks train omg-seg`` (see ``zoo/omg-seg/README.md``).
SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / "shapes.safetensors"


def build_world_model() -> OMGSeg:
    """The configuration the shipped weights belong to: ``"tiny"`` on the training classes (random decoders)."""
    from segblocks.zoo.omg_seg.predict import training_vocabulary

    names, flags = training_vocabulary()
    return build_omg_seg("tiny", vocabulary=names, is_thing=flags)


def _trained_state(model: OMGSeg) -> dict[str, Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith(FROZEN_PREFIX)}


def export_trained_weights(
    model: OMGSeg, path: str | Path, *, metadata: dict[str, str] | None = None
) -> Path:
    """Save OMG-Seg's trained tensors (everything but the frozen CLIP) as fp16 safetensors.

    Args:
        model: a trained world-scale model.
        path: the ``.safetensors`` file to write.
        metadata: string metadata for the header (e.g. the training summary as JSON).
    """
    return save_state_dict_file(_trained_state(model), path, metadata=metadata)


def load_shipped_omg_seg(path: str | Path = SHIPPED_WEIGHTS, *, device: str | torch.device = "cpu") -> OMGSeg:
    """The world-scale OMG-Seg with the shipped weights, in eval mode.

    Args:
        path: a file written by :func:`export_trained_weights` (default: the shipped one).
        device: where to put the model.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        CheckpointError: on a corrupt file or one that does not hold exactly the trained tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such OMG-Seg weights file {str(path)!r}")
    model = build_world_model()  # the shipped tiny CLIP is loaded here
    state = read_safetensors(path.read_bytes(), name=str(path))
    expected = _trained_state(model)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: does not hold the world-scale OMG-Seg's trained tensors: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatch {wrong[:5]}"
        )
    model.load_state_dict(state, strict=False)  # the frozen CLIP keys are the only ones not in the file
    return model.to(device).eval()


def shipped_summary(path: str | Path = SHIPPED_WEIGHTS) -> dict[str, object]:
    """The training summary stored in a weights file's header (``{}`` when there is none)."""
    return read_summary(path)
