"""Files in, results out: the helpers behind ``segblocks predict omg-seg`` and ``segblocks eval omg-seg``.

``load_omg_seg`` rebuilds a trained model from a ``segblocks train omg-seg`` run, checkpoint or
``model.safetensors`` (its saved config and training vocabulary) or, without weights, the shipped
world-scale model; ``load_frames`` reads a folder of frames (one size; each file, as an image file,
by :func:`segblocks.data.read_image`); ``parse_points`` / ``parse_boxes`` read the CLI's
``"x,y;x,y"`` and ``"x1,y1,x2,y2;..."``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open

from segblocks.data import CATEGORIES, ShapesWorldConfig, read_image
from segblocks.engine import find_latest_checkpoint, load_weights
from segblocks.structures import Prompts
from segblocks.zoo.common import prompt_options
from segblocks.zoo.omg_seg.build import DEFAULT, build_omg_seg
from segblocks.zoo.omg_seg.config import OMGSegConfig
from segblocks.zoo.omg_seg.model import OMGSeg

__all__ = [
    "load_frames",
    "load_omg_seg",
    "parse_boxes",
    "parse_points",
    "predict_files",
    "training_vocabulary",
]

PathLike = str | os.PathLike[str]
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def training_vocabulary() -> tuple[list[str], list[bool]]:
    """The shapes world's training classes (every class but the held-out ones) and their thing flags."""
    split = ShapesWorldConfig().split
    by_id = {c.id: c for c in CATEGORIES}
    ids = sorted(split.seen_ids)
    return [by_id[i].name for i in ids], [by_id[i].is_thing for i in ids]


def load_frames(folder: PathLike) -> list[torch.Tensor]:
    """The image files of a folder, in name order, as ``[3, H, W]`` frames.

    Args:
        folder: the folder of frames.

    Raises:
        FileNotFoundError: if the folder does not exist.
        ValueError: on a folder without images, or an image file :func:`~segblocks.data.read_image`
            refuses (sizes are checked by the predictor).
    """
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"frames: no such folder {str(path)!r}")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"frames: no image files ({', '.join(_IMAGE_SUFFIXES)}) in {str(path)!r}")
    return [read_image(f, name="frames") for f in files]


def parse_points(text: str) -> Prompts:
    """``"x,y;x,y"`` (pixels) -> one positive click a prompt.

    Args:
        text: clicks separated by ``;``, each ``x,y``.

    Raises:
        ValueError: on a malformed click (the message names ``--points``; see
            :func:`segblocks.zoo.common.prompt_options.parse_points`).
    """
    xy = torch.tensor(prompt_options.parse_points(text), dtype=torch.float32)
    return Prompts(points=xy[:, None], point_labels=torch.ones(len(xy), 1, dtype=torch.int64))


def parse_boxes(text: str) -> Prompts:
    """``"x1,y1,x2,y2;..."`` (pixels) -> box prompts (``x2 >= x1``, ``y2 >= y1`` checked).

    Args:
        text: boxes separated by ``;``, each ``x1,y1,x2,y2``.

    Raises:
        ValueError: on a malformed box (``--boxes``) or one with ``x2 < x1`` (``boxes``).
    """
    return Prompts(boxes=torch.tensor(prompt_options.parse_boxes(text), dtype=torch.float32))


def _model_file(weights: PathLike) -> tuple[Path, dict[str, object]]:
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


def load_omg_seg(weights: PathLike | None = None, *, device: str | torch.device = "cpu") -> OMGSeg:
    """A trained OMG-Seg in eval mode: from ``weights`` or, when None, the shipped world-scale model.

    Args:
        weights: a ``segblocks train omg-seg`` run directory (its newest checkpoint), a checkpoint
            directory, or a ``model.safetensors`` file of the world-scale configuration.
        device: where to put the model.

    Raises:
        FileNotFoundError: when ``weights`` does not exist.
        ValueError: on a checkpoint of another model.
    """
    if weights is None:
        from segblocks.zoo.omg_seg.shipped import load_shipped_omg_seg

        return load_shipped_omg_seg(device=device)
    names, flags = training_vocabulary()
    model_file, state = _model_file(weights)
    extra = state.get("extra")
    if isinstance(extra, dict) and isinstance(extra.get("vocabulary"), list):
        names = list(extra["vocabulary"])
        flags = list(extra.get("is_thing") or [True] * len(names))
    overrides: dict[str, object] = {}
    config = state.get("config")
    if isinstance(config, dict):
        overrides = {k: v for k, v in config.items() if k != "clip_pretrained"}
        foreign = sorted(set(overrides) - {f.name for f in dataclasses.fields(OMGSegConfig)})
        if foreign:
            raise ValueError(
                f"weights: {str(weights)!r} is not an OMG-Seg checkpoint (its config has fields {foreign[:5]})"
            )
    # checkpoints from before the class negatives were trained with the official classifier
    overrides.setdefault("class_negatives", "none")
    if model_file.is_file():  # else load_weights names the missing file
        with safe_open(str(model_file), framework="pt") as f:
            learned_void = "classifier.head.void_embedding" in set(f.keys())
        overrides.setdefault("class_void", "learned" if learned_void else "zero")
    model = build_omg_seg("tiny", vocabulary=names, is_thing=flags, clip_pretrained=DEFAULT, **overrides)  # type: ignore[arg-type]
    load_weights(model_file, model, strict=True)
    model.refresh_vocabulary()
    return model.to(device).eval()


def _segment_map_of(pred: object, task: str) -> torch.Tensor:
    """``[H, W]`` ids to draw for an image result of ``task`` (instances painted by rank)."""
    if task == "panoptic":
        return pred.panoptic.segment_map  # type: ignore[attr-defined]
    if task == "semantic":
        return pred.semantic.label_map + 1  # type: ignore[attr-defined]
    masks = pred.instance.masks  # type: ignore[attr-defined]
    ids = torch.zeros(masks.shape[-2:], dtype=torch.int64)
    for k in range(len(masks) - 1, -1, -1):  # the best-scored instance on top
        ids[masks[k]] = k + 1
    return ids


def predict_files(
    *,
    task: str,
    image: PathLike | None = None,
    frames: PathLike | None = None,
    points: str | None = None,
    boxes: str | None = None,
    vocabulary: list[str] | None = None,
    is_thing: list[bool] | None = None,
    weights: PathLike | None = None,
    out: PathLike | None = None,
    scale: int = 1,
) -> list[str]:
    """Run one task on an image file or a folder of frames; describe the result, optionally draw it.

    Args:
        task: ``panoptic``, ``instance``, ``semantic``, ``interactive`` (with ``image``) or ``vps``,
            ``vis``, ``vss`` (with ``frames``).
        image: an image file. frames: a folder of frame images of one size (name order).
        points: ``"x,y;x,y"`` clicks (interactive). boxes: ``"x1,y1,x2,y2;..."`` boxes (interactive).
        vocabulary: class names (default: the shapes world's 18). is_thing: one flag per name.
        weights: a trained checkpoint (default: the shipped world-scale weights).
        out: write a PNG of the result here.
        scale: upscaling of the drawing.

    Returns:
        The lines to print.

    Raises:
        ValueError: on a task that does not fit the input, missing prompts, or bad prompts.
    """
    from segblocks.data.visualize import draw_prompts, tile_rows
    from segblocks.zoo.omg_seg.predictor import IMAGE_TASKS, TASKS, VIDEO_TASKS

    if task not in TASKS or task == "vos":
        raise ValueError(
            f"--task: expected one of {[t for t in TASKS if t != 'vos']}, got {task!r} (vos: Python API)"
        )
    if (image is None) == (frames is None):
        raise ValueError("--image, --frames: give exactly one (an image file or a folder of frames)")
    video = task in VIDEO_TASKS
    if video != (frames is not None):
        need = "--frames DIR" if video else "--image PATH"
        raise ValueError(f"--task: {task!r} needs {need}")
    if task == "interactive" and points is None and boxes is None:
        raise ValueError("--points, --boxes: the interactive task needs click or box prompts")
    if task != "interactive" and (points is not None or boxes is not None):
        raise ValueError(f"--points, --boxes: only the interactive task takes prompts, not {task!r}")
    if vocabulary is None:
        vocabulary, is_thing = [c.name for c in CATEGORIES], [c.is_thing for c in CATEGORIES]
    model = load_omg_seg(weights)
    lines: list[str] = []
    if video:
        assert frames is not None
        clip = load_frames(frames)
        result = model.predict(clip, task=task, vocabulary=vocabulary, is_thing=is_thing)
        if task == "vis":
            inst = result.instance
            for k in range(len(inst.masks)):
                lines.append(
                    f"track {k + 1}: {vocabulary[int(inst.labels[k])]} (score {float(inst.scores[k]):.2f})"
                )
            maps = [_segment_map_of_tube(inst.masks, t) for t in range(len(clip))]
        elif task == "vps":
            for seg in result.panoptic.segments:
                lines.append(f"segment {seg.id}: {vocabulary[seg.category_id]} (score {seg.score:.2f})")
            maps = list(result.panoptic.segment_maps)
        else:
            present = sorted(set(result.semantic.label_maps.unique().tolist()) - {255})
            lines += [f"class {vocabulary[c]}" for c in present]
            maps = list(result.semantic.label_maps + 1)
        pictures = [_overlay(f, m, scale) for f, m in zip(clip, maps)]
        drawing = tile_rows([pictures]) if out else None
    else:
        assert image is not None
        picture = read_image(image, name="--image")
        if task == "interactive":
            clicked = parse_points(points) if points is not None else None
            boxed = parse_boxes(boxes) if boxes is not None else None
            prompts = Prompts(
                points=None if clicked is None else clicked.points,
                point_labels=None if clicked is None else clicked.point_labels,
                boxes=None if boxed is None else boxed.boxes,
            )
            answer = model.predict(picture, task="interactive", prompts=prompts)[0]
            ids = torch.zeros(picture.shape[-2:], dtype=torch.int64)
            for k, mask in enumerate(answer.best_masks):
                lines.append(f"prompt {k + 1}: {int(mask.sum())} pixels")
                ids[mask & (ids == 0)] = k + 1
            drawn = _overlay(picture, ids, scale)
            clicks = (
                [(x - 0.5, y - 0.5, True) for x, y in prompts.points[:, 0].tolist()]
                if prompts.points is not None
                else []
            )
            rects = [tuple(b) for b in prompts.boxes.tolist()] if prompts.boxes is not None else []
            drawing = draw_prompts(drawn, points=clicks, boxes=rects, scale=scale)
        else:
            pred = model.predict(picture, task=task, vocabulary=vocabulary, is_thing=is_thing)[0]
            if task == "panoptic":
                lines += [
                    f"segment {s.id}: {vocabulary[s.category_id]} (score {s.score:.2f})"
                    for s in pred.panoptic.segments
                ]
            elif task == "instance":
                inst = pred.instance
                lines += [
                    f"instance {k + 1}: {vocabulary[int(inst.labels[k])]} (score {float(inst.scores[k]):.2f})"
                    for k in range(len(inst.masks))
                ]
            else:
                present = sorted(set(pred.semantic.label_map.unique().tolist()) - {255})
                lines += [f"class {vocabulary[c]}" for c in present]
            drawing = _overlay(picture, _segment_map_of(pred, IMAGE_TASKS[task]), scale)
    if out is not None and drawing is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        drawing.save(path)
        lines.append(f"wrote {path.resolve()}")
    return lines


def _segment_map_of_tube(masks: torch.Tensor, t: int) -> torch.Tensor:
    ids = torch.zeros(masks.shape[-2:], dtype=torch.int64)
    for k in range(len(masks) - 1, -1, -1):
        ids[masks[k, t]] = k + 1
    return ids


def _overlay(frame: torch.Tensor, ids: torch.Tensor, scale: int) -> Image.Image:
    from segblocks.data.visualize import overlay_segments

    rgb = (frame.permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)
    return overlay_segments(rgb, ids.cpu().numpy(), scale=scale)
