"""The world-scale Uni-OVSeg shipped with the package: only its trained parts, on the shipped tiny CLIP.

A ``segblocks train uni-ovseg`` checkpoint holds the whole model, the frozen CLIP included. The
package ships the CLIP once (``shapes-clip-tiny``), so the Uni-OVSeg file keeps only what Uni-OVSeg
trained -- pixel decoder, prompt encoder, mask decoder, heads (stage 1) and the adapter (stage 2) --
in fp16; :func:`load_shipped_uni_ovseg` builds the world-scale model and fills them in.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from segblocks.backbones.checkpoints import load_state_dict_file, read_summary, save_state_dict_file
from segblocks.zoo.uni_ovseg.build import build_uni_ovseg
from segblocks.zoo.uni_ovseg.model import UniOVSeg

__all__ = [
    "FROZEN_PREFIX",
    "SHIPPED_WEIGHTS",
    "export_trained_weights",
    "load_shipped_uni_ovseg",
    "load_trained_weights",
    "shipped_summary",
]

#: State-dict prefix of the frozen CLIP (stored in its own shipped file).
FROZEN_PREFIX = "clip.clip."
#: The world-scale weights trained by ``segblocks train uni-ovseg`` (see ``zoo/uni-ovseg/README.md``).
SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / "shapes.safetensors"


def _trained_state(model: UniOVSeg) -> dict[str, Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith(FROZEN_PREFIX)}


def export_trained_weights(
    model: UniOVSeg, path: str | Path, *, metadata: dict[str, str] | None = None
) -> Path:
    """Save Uni-OVSeg's trained tensors (everything but the frozen CLIP) as fp16.

    Args:
        model: a trained world-scale model (adapter unmerged).
        path: the ``.safetensors`` file to write (parents are created).
        metadata: string metadata for the file header (e.g. the training summary).

    Raises:
        ValueError: on a path not ending in ``.safetensors``.
    """
    return save_state_dict_file(_trained_state(model), path, metadata=metadata)


def load_trained_weights(model: UniOVSeg, path: str | Path) -> UniOVSeg:
    """Fill ``model``'s trained parts from an exported file or a training checkpoint's model file.

    Args:
        model: a model of the sizes the weights were trained with.
        path: a ``.safetensors`` file from :func:`export_trained_weights` or a checkpoint's weights.

    Returns:
        ``model``.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file is unreadable or does not hold exactly the trained tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such Uni-OVSeg weights file {str(path)!r}")
    try:
        state = load_file(str(path)) if path.suffix == ".safetensors" else load_state_dict_file(path)
    except SafetensorError as err:
        raise ValueError(f"path: {str(path)!r} is not a readable safetensors weights file ({err})") from None
    state = {k: v for k, v in state.items() if not k.startswith(FROZEN_PREFIX)}
    expected = _trained_state(model)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f"path: {str(path)!r} does not fit this Uni-OVSeg: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatch {wrong[:5]}"
        )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=False)
    return model


def load_shipped_uni_ovseg(
    path: str | Path = SHIPPED_WEIGHTS, *, device: str | torch.device = "cpu"
) -> UniOVSeg:
    """The world-scale Uni-OVSeg with the shipped weights (both stages trained on unpaired data).

    Args:
        path: a file written by :func:`export_trained_weights` (default: the shipped one).
        device: where to put the model.

    Returns:
        The model in eval mode; ``predict(images, vocabulary=...)`` takes any vocabulary.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_trained_weights`.
    """
    model = load_trained_weights(build_uni_ovseg("tiny"), path)
    return model.to(device).eval()


def shipped_summary(path: str | Path = SHIPPED_WEIGHTS) -> dict[str, object]:
    """The training summary stored in a weights file's header (``{}`` when there is none).

    Args:
        path: a file written by :func:`export_trained_weights`.
    """
    return read_summary(path)
