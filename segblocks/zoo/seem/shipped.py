"""Loading SEEM: from a training run, or the shipped world-scale weights (only the trained parts, fp16).

The world-scale SEEM reads images and texts with the shipped tiny CLIP (``shapes-clip-tiny``), which
stays frozen; the file shipped with the package keeps only what SEEM trained -- the pixel decoder, the
SEEM decoder, the prompt blocks, the class head and the queries -- in fp16, and
:func:`load_shipped_seem` builds the model on the shipped CLIP and fills in the rest.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from segblocks.backbones.checkpoints import read_summary, save_state_dict_file
from segblocks.data import CATEGORIES
from segblocks.engine import find_latest_checkpoint, load_weights
from segblocks.zoo.seem.build import build_seem
from segblocks.zoo.seem.config import SEEMConfig
from segblocks.zoo.seem.model import SEEM

__all__ = [
    "FROZEN_PREFIXES",
    "SHIPPED_WEIGHTS",
    "export_trained_weights",
    "load_seem",
    "load_shipped_seem",
    "shipped_summary",
]

logger = logging.getLogger(__name__)

#: State-dict prefixes of the frozen CLIP (shipped in its own file).
FROZEN_PREFIXES = ("backbone.clip.", "clip.clip.")
#: The world-scale weights trained by ``segblocks train seem`` (see ``zoo/seem/README.md``).
SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / "shapes.safetensors"


def _trained_state(model: SEEM) -> dict[str, Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith(FROZEN_PREFIXES)}


def export_trained_weights(model: SEEM, path: str | Path, *, metadata: dict[str, str] | None = None) -> Path:
    """Save SEEM's trained tensors (everything but the frozen CLIP) as fp16 safetensors.

    Args:
        model: a trained world-scale SEEM.
        path: the ``.safetensors`` file to write.
        metadata: string metadata for the header (e.g. the training summary).
    """
    return save_state_dict_file(_trained_state(model), path, metadata=metadata)


def _world_model(**overrides: object) -> SEEM:
    return build_seem(
        "tiny",
        vocabulary=[c.name for c in CATEGORIES],
        is_thing=[c.is_thing for c in CATEGORIES],
        **overrides,  # type: ignore[arg-type]
    )


def load_seem(weights: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> SEEM:
    """A world-scale SEEM from a ``segblocks train seem`` checkpoint, run directory or ``model.safetensors``.

    Args:
        weights: the run directory (its newest checkpoint), a checkpoint directory or a model file.
        device: where to put the model.

    Raises:
        FileNotFoundError: when nothing is there.
        ValueError: on a checkpoint of another model.
    """
    path = Path(weights)
    state: dict[str, object] = {}
    if path.is_dir():
        for candidate in (path, path / "checkpoints"):
            latest = find_latest_checkpoint(candidate) if candidate.is_dir() else None
            if latest is not None:
                path = latest
                break
        if (path / "state.json").is_file():
            state = json.loads((path / "state.json").read_text())
        path = path / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"weights: no such SEEM weights file or checkpoint {str(weights)!r}")
    config = state.get("config")
    overrides: dict[str, object] = {}
    if isinstance(config, dict):
        names = {f.name for f in dataclasses.fields(SEEMConfig)}
        foreign = sorted(set(config) - names)
        if foreign:
            raise ValueError(
                f"weights: {str(weights)!r} is not a SEEM checkpoint (foreign config fields {foreign[:5]})"
            )
        overrides = {k: v for k, v in config.items() if k != "clip_pretrained"}
    model = _world_model(**overrides)
    load_weights(path, model, strict=True)
    model.refresh_vocabulary()
    logger.info("loaded SEEM weights from %s", path)
    return model.to(device).eval()


def load_shipped_seem(path: str | Path = SHIPPED_WEIGHTS, *, device: str | torch.device = "cpu") -> SEEM:
    """The world-scale SEEM with the shipped weights (trained on the shapes world).

    Args:
        path: a file written by :func:`export_trained_weights` (default: the shipped one).
        device: where to put the model.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file does not hold exactly the trained tensors of the world-scale model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such SEEM weights file {str(path)!r}")
    try:
        state = load_file(str(path))
    except SafetensorError as err:
        raise ValueError(f"path: {str(path)!r} is not a readable safetensors weights file ({err})") from None
    model = _world_model()
    expected = _trained_state(model)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in set(state) & set(expected) if state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"path: {str(path)!r} does not fit the world-scale SEEM: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatch {sorted(wrong)[:5]}"
        )
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    return model.to(device).eval()


def shipped_summary(path: str | Path = SHIPPED_WEIGHTS) -> dict[str, object]:
    """The training summary stored in a weights file's header (``{}`` when there is none).

    Args:
        path: a file written by :func:`export_trained_weights`.
    """
    return read_summary(path)
