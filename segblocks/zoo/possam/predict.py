"""Predict one image file with PosSAM for a vocabulary given at call time, and draw the result.

The helpers behind ``segblocks predict possam --image PATH --vocabulary "a,b,c"``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from segblocks.data import CATEGORIES, ShapesWorldConfig, read_image
from segblocks.data.visualize import overlay_segments, text_panel, tile_rows
from segblocks.engine import find_latest_checkpoint, load_weights
from segblocks.structures import PanopticResult
from segblocks.zoo.possam.build import DEFAULT, build_possam
from segblocks.zoo.possam.config import PosSAMConfig
from segblocks.zoo.possam.model import PosSAM
from segblocks.zoo.possam.outputs import CLASSIFIERS

__all__ = ["load_possam", "predict_image", "write_overlay"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def _model_file(weights: PathLike) -> tuple[Path, dict[str, object]]:
    """The ``model.safetensors`` and the saved run state of a weights path (file, checkpoint or run dir)."""
    path = Path(weights)
    if path.is_dir():
        for candidate in (path, path / "checkpoints"):
            latest = find_latest_checkpoint(candidate) if candidate.is_dir() else None
            if latest is not None:
                path = latest
                break
        state_file = path / "state.json"
        state = json.loads(state_file.read_text()) if state_file.is_file() else {}
        return path / "model.safetensors", state
    if not path.is_file():
        raise FileNotFoundError(f"weights: no such file or checkpoint directory {str(path)!r}")
    return path, {}


def load_possam(
    *,
    sam_checkpoint: PathLike | None = None,
    clip_pretrained: PathLike | None = None,
    weights: PathLike | None = None,
    variant: str | PosSAMConfig = "tiny",
    device: str | torch.device = "cpu",
) -> PosSAM:
    """Build PosSAM (trained on the shapes world's seen classes by default) and load trained weights.

    Args:
        sam_checkpoint: SAM weights (None: the variant's default, or, with ``weights``, none: a
            checkpoint of ``segblocks train possam`` holds the frozen SAM and CLIP too).
        clip_pretrained: CLIP weights (None: as ``sam_checkpoint``).
        weights: a trained model: a ``model.safetensors`` file, a checkpoint directory written by
            ``segblocks train possam`` or its run directory (the newest checkpoint); its saved
            config and training vocabulary are used. None: untrained decoders (random init).
        variant: the variant (a name or a :class:`PosSAMConfig`) when ``weights`` carries no config.
        device: where to put the model.

    Returns:
        The model in eval mode.

    Raises:
        FileNotFoundError: when ``weights`` does not exist.
    """
    split = ShapesWorldConfig().split
    by_id = {c.id: c for c in CATEGORIES}
    names = [by_id[i].name for i in sorted(split.seen_ids)]
    flags = [by_id[i].is_thing for i in sorted(split.seen_ids)]
    overrides: dict[str, object] = {}
    model_file = None
    if weights is not None:
        model_file, state = _model_file(weights)
        extra = state.get("extra")
        if isinstance(extra, dict) and isinstance(extra.get("vocabulary"), list):
            names, flags = (
                list(extra["vocabulary"]),
                list(extra.get("is_thing") or [True] * len(extra["vocabulary"])),
            )
        config = state.get("config")
        if isinstance(config, dict):
            overrides = {k: v for k, v in config.items() if k not in ("sam_checkpoint", "clip_pretrained")}
            foreign = sorted(set(overrides) - {f.name for f in dataclasses.fields(PosSAMConfig)})
            if foreign:
                raise ValueError(
                    f"weights: {str(weights)!r} is not a PosSAM checkpoint (its config has fields "
                    f"{foreign[:5]} that PosSAM does not have; a checkpoint of another model?)"
                )
    unset = None if model_file is not None else DEFAULT  # a trained checkpoint holds SAM and CLIP
    model = build_possam(
        variant,
        vocabulary=names,
        is_thing=flags,
        sam_checkpoint=unset if sam_checkpoint is None else sam_checkpoint,
        clip_pretrained=unset if clip_pretrained is None else clip_pretrained,
        **overrides,  # type: ignore[arg-type]
    )
    if model_file is not None:
        load_weights(model_file, model, strict=True)
        model.refresh_vocabulary()
        logger.info("loaded PosSAM weights from %s", model_file)
    return model.to(device).eval()


def predict_image(
    path: PathLike,
    vocabulary: Sequence[str],
    *,
    sam_checkpoint: PathLike | None = None,
    clip_pretrained: PathLike | None = None,
    weights: PathLike | None = None,
    is_thing: Sequence[bool] | None = None,
    classifier: str = "mase",
    model: PosSAM | None = None,
) -> PanopticResult:
    """Open-vocabulary panoptic segmentation of one image file.

    Args:
        path: the image file.
        vocabulary: class names to segment (category ids of the result index this list).
        sam_checkpoint: SAM weights (None: the default of the world-scale model).
        clip_pretrained: CLIP weights (None: the default of the world-scale model).
        weights: trained PosSAM weights (see :func:`load_possam`).
        is_thing: one flag per class (default: all things).
        classifier: ``"ldp"``, ``"clip"``, ``"geometric"`` or ``"mase"``.
        model: an already built model (the weight arguments are then ignored).

    Returns:
        The :class:`~segblocks.structures.PanopticResult` at the image's resolution.

    Raises:
        FileNotFoundError: when the image or the weights do not exist.
        ValueError: on an image file :func:`~segblocks.data.read_image` refuses, an empty vocabulary
            or an unknown classifier.
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier: expected one of {CLASSIFIERS}, got {classifier!r}")
    image = read_image(path)[None]
    if model is None:
        model = load_possam(sam_checkpoint=sam_checkpoint, clip_pretrained=clip_pretrained, weights=weights)
    device = next(model.parameters()).device
    pred = model.predict(
        image.to(device),
        vocabulary=list(vocabulary),
        is_thing=is_thing,
        classifier=classifier,
        tasks=("panoptic",),
    )[0]
    assert pred.panoptic is not None
    return PanopticResult(segment_map=pred.panoptic.segment_map.cpu(), segments=pred.panoptic.segments)


def write_overlay(
    image_path: PathLike,
    result: PanopticResult,
    out_path: PathLike,
    *,
    class_names: Sequence[str],
    scale: int = 1,
) -> Path:
    """Draw a panoptic result over its image, with a legend of the segments, and save it.

    Args:
        image_path: the image the result belongs to.
        result: its panoptic result (same height and width).
        out_path: where to write the PNG (or any format PIL infers from the suffix).
        class_names: names indexed by the result's category ids (the vocabulary).
        scale: integer upscaling of the drawing (nearest neighbour), for small images.

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: when the image does not exist.
        ValueError: on an image file :func:`~segblocks.data.read_image` refuses, when the result's
            size differs from the image's or a category id has no name.
    """
    pixels = read_image(image_path, name="image_path")  # [3, H, W] float: back to the stored bytes
    image = (pixels.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    segment_map = result.segment_map.cpu().numpy()
    if segment_map.shape != image.shape[:2]:
        raise ValueError(
            f"result: segment map {segment_map.shape} does not match the image {image.shape[:2]}"
        )
    bad = [s.category_id for s in result.segments if s.category_id >= len(class_names)]
    if bad:
        raise ValueError(f"class_names: {len(class_names)} names do not cover category ids {bad}")
    drawing = overlay_segments(image, segment_map, scale=scale)
    lines = [f"{s.id}: {class_names[s.category_id]} ({s.score:.2f})" for s in result.segments] or [
        "no segments"
    ]
    canvas = tile_rows([[drawing], [text_panel(lines, width=max(drawing.width, 160))]])
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
