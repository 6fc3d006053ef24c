"""The world-scale PosSAM shipped with the package: only its trained parts, on the shipped tiny SAM/CLIP.

A ``segblocks train possam`` checkpoint holds the whole model, frozen SAM encoder and CLIP
included. The package ships those two once (``shapes-sam-tiny``, ``shapes-clip-tiny``), so the
PosSAM file keeps only what PosSAM trained — the SAM-side FPN, the pixel and mask decoders, the
queries, the IoU head and LDP — in fp16, and in its header the ensembles' exponents and the
per-classifier object thresholds calibrated on training images
(:mod:`segblocks.zoo.possam.calibration`), if the model has them (LDP's options are known by
their tensors: ``ldp_clip_residual`` by its gate ``ldp.residual_gate``, ``ldp_void="linear"`` and
``"query"`` by ``ldp.class_head.void_linear.weight``, as wide as LDP's tokens or as the queries);
:func:`load_shipped_possam` builds the world-scale model on the shipped foundation models and fills
in the rest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor

from segblocks.backbones.checkpoints import read_summary, save_state_dict_file
from segblocks.zoo.possam.config import check_exponents, check_thresholds, get_config
from segblocks.zoo.possam.model import PosSAM
from segblocks.zoo.possam.predict import load_possam

__all__ = [
    "EXPONENTS_KEY",
    "FROZEN_PREFIXES",
    "SHIPPED_WEIGHTS",
    "THRESHOLDS_KEY",
    "export_trained_weights",
    "load_shipped_possam",
]

#: State-dict prefixes of the frozen foundation models (stored in their own shipped files).
FROZEN_PREFIXES = ("sam.image_encoder.", "clip.clip.")
#: The header key of the calibrated per-classifier object thresholds (JSON ``{classifier: threshold}``).
THRESHOLDS_KEY = "object_mask_thresholds"
#: The header key of the calibrated per-ensemble exponents (JSON ``{ensemble: [alpha, beta]}``).
EXPONENTS_KEY = "ensemble_exponents"
#: The tensor that only an LDP with ``clip_residual=True`` has.
RESIDUAL_GATE = "ldp.residual_gate"
#: The tensor that only an LDP with a linear void logit (``ldp_void="linear"`` or ``"query"``) has.
LINEAR_VOID = "ldp.class_head.void_linear.weight"
#: The world-scale weights trained by ``segblocks train possam`` (see ``zoo/possam/README.md``).
SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / "shapes.safetensors"


def _trained_state(model: PosSAM) -> dict[str, Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith(FROZEN_PREFIXES)}


def export_trained_weights(
    model: PosSAM, path: str | Path, *, metadata: dict[str, str] | None = None
) -> Path:
    """Save PosSAM's trained tensors (everything but the frozen SAM encoder and CLIP) as fp16.

    The model's calibrated ensemble exponents (``config.ensemble_exponents``) and object thresholds
    (``config.object_mask_thresholds``), where it has them, go into the header, so that
    :func:`load_shipped_possam` restores them.

    Args:
        model: a trained world-scale PosSAM.
        path: the ``.safetensors`` file to write (parents are created).
        metadata: string metadata for the file header (e.g. the training summary).

    Returns:
        The path written.

    Raises:
        ValueError: on a path not ending in ``.safetensors``, or ``metadata`` using a key written
            from the config.
    """
    header = dict(metadata or {})
    for key in (THRESHOLDS_KEY, EXPONENTS_KEY):
        if key in header:
            raise ValueError(f"metadata: {key!r} is written from model.config, not given")
    cfg = model.config
    if cfg is not None and cfg.ensemble_exponents:
        header[EXPONENTS_KEY] = json.dumps(dict(cfg.ensemble_exponents), sort_keys=True)
    if cfg is not None and cfg.object_mask_thresholds:
        header[THRESHOLDS_KEY] = json.dumps(dict(cfg.object_mask_thresholds), sort_keys=True)
    return save_state_dict_file(_trained_state(model), path, metadata=header or None)


def _ldp_void(state: dict[str, Tensor]) -> str:
    """The ``ldp_void`` of a trained state: the linear void's width tells the queries from LDP's tokens."""
    if LINEAR_VOID not in state:
        return "learned"
    return "query" if state[LINEAR_VOID].shape[-1] == get_config("tiny").hidden_dim else "linear"


def load_shipped_possam(path: str | Path = SHIPPED_WEIGHTS, *, device: str | torch.device = "cpu") -> PosSAM:
    """The world-scale PosSAM with the shipped weights (trained on the shapes world's seen classes).

    Args:
        path: a file written by :func:`export_trained_weights` (default: the shipped one).
        device: where to put the model.

    Returns:
        The model in eval mode (its LDP's options as the file's tensors say), with
        the file's calibrated ensemble exponents and object thresholds in its config (without them:
        FC-CLIP's 0.4 / 0.8 and the world's 0.5); call
        ``predict(images, vocabulary=...)`` with any vocabulary.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file does not hold exactly the trained tensors of the world-scale model,
            or its header's thresholds or exponents are malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such PosSAM weights file {str(path)!r}")
    try:
        state = load_file(str(path))
    except SafetensorError as err:  # a truncated or corrupt file: say which, not the library's words
        raise ValueError(f"path: {str(path)!r} is not a readable safetensors weights file ({err})") from None
    # shipped tiny SAM and CLIP, the seen-class vocabulary, the header's calibration
    options = {
        "ldp_clip_residual": RESIDUAL_GATE in state,
        "ldp_void": _ldp_void(state),
    }
    model = load_possam(variant=get_config("tiny", **options, **_header_calibration(path)))
    expected = _trained_state(model)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in set(state) & set(expected) if state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"path: {str(path)!r} does not fit the world-scale PosSAM: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatch {sorted(wrong)[:5]}"
        )
    model.load_state_dict(state, strict=False)
    model.refresh_vocabulary()
    return model.to(device).eval()


def _header_calibration(path: Path) -> dict[str, Any]:
    """The config fields the header holds: ``ensemble_exponents``, ``object_mask_thresholds``."""
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    fields: dict[str, Any] = {}
    try:
        for key, field, check in (
            (THRESHOLDS_KEY, "object_mask_thresholds", check_thresholds),
            (EXPONENTS_KEY, "ensemble_exponents", check_exponents),
        ):
            if key in header:
                fields[field] = check(json.loads(header[key]), name=f"{path.name}: header {key!r}")
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"path: {str(path)!r} has malformed calibration in its header ({err})") from None
    return fields


def shipped_summary(path: str | Path = SHIPPED_WEIGHTS) -> dict[str, object]:
    """The training summary stored in a weights file's header (``{}`` when there is none).

    Args:
        path: a file written by :func:`export_trained_weights`.
    """
    return read_summary(path)
