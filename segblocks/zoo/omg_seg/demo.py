"""The OMG-Seg part of ``segblocks demo``: one model and one set of weights on every kind of task.

One sheet, drawn from the shipped world-scale weights: a val image in three tasks (panoptic,
instance, semantic; every class by name, the held-out ones included), one val clip (its frames and
the linked VPS tracks), and one prompt answer (a centre click on each thing, a box on a stuff region).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segblocks.data import CATEGORIES, ShapesClipDataset, ShapesDataset, ShapesWorldConfig
from segblocks.data.visualize import draw_prompts, overlay_segments, text_panel, tile_rows
from segblocks.metrics.clicks import centremost
from segblocks.structures import Prompts
from segblocks.zoo.omg_seg.predictor import OMGSegPredictor
from segblocks.zoo.omg_seg.shipped import SHIPPED_WEIGHTS, load_shipped_omg_seg

__all__ = ["OMGSegDemo", "run_omg_seg_demo"]

_SIZE = 96  # the shipped model's training resolution
_SCALE = 2


@dataclass
class OMGSegDemo:
    """What the demo wrote: the PNG sheet, and the lines it printed."""

    file: Path
    lines: list[str]


def _draw(image: np.ndarray, ids: torch.Tensor) -> Image.Image:
    return overlay_segments(image, ids.cpu().numpy().astype(np.int32), scale=_SCALE)


def _instance_ids(masks: torch.Tensor, scores: torch.Tensor, threshold: float = 0.3) -> torch.Tensor:
    ids = torch.zeros(masks.shape[-2:], dtype=torch.int64)
    for k in range(len(masks) - 1, -1, -1):
        if float(scores[k]) >= threshold:
            ids[masks[k]] = k + 1
    return ids


def run_omg_seg_demo(
    out: str | Path,
    *,
    seed: int = 0,
    index: int = 0,
    num_frames: int = 6,
    weights: str | Path = SHIPPED_WEIGHTS,
) -> OMGSegDemo:
    """Write ``omg_seg.png``: one image in three tasks, one clip's tracks, one set of prompt answers.

    Args:
        out: the output folder (created).
        seed: the shapes world's seed.
        index: which val image and clip.
        num_frames: frames of the clip.
        weights: the weights file (default: the shipped one).

    Raises:
        ValueError: on fewer than one frame.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames: expected a positive int, got {num_frames}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_shipped_omg_seg(weights)
    names = [c.name for c in CATEGORIES]
    predictor = OMGSegPredictor(model, vocabulary=names, is_thing=[c.is_thing for c in CATEGORIES], window=2)
    world = ShapesWorldConfig(image_size=(_SIZE, _SIZE), seed=seed)
    example = ShapesDataset(world, split="val", length=index + 1)[index]
    image = example.sample.image
    x = example.image[None]
    vocab = predictor.vocabulary
    result = predictor.segment_images(x, ("panoptic", "instance", "semantic"), vocab, predictor.classifier)[0]
    pan, ins, sem = result.panoptic, result.instance, result.semantic
    assert pan is not None and ins is not None and sem is not None
    row_image = [
        Image.fromarray(image).resize((_SIZE * _SCALE,) * 2, Image.Resampling.NEAREST),
        overlay_segments(image, example.sample.panoptic, scale=_SCALE),
        _draw(image, pan.segment_map),
        _draw(image, _instance_ids(ins.masks, ins.scores)),
        _draw(image, sem.label_map + 1),
    ]
    # prompts: a centre click on every thing, the tight box of every stuff region
    targets = example.targets
    assert targets.is_thing is not None
    things, stuff = targets.masks[targets.is_thing], targets.masks[~targets.is_thing]
    clicks = [centremost(m.numpy()) for m in things]
    boxes = []
    for m in stuff:
        ys, xs = torch.nonzero(m, as_tuple=True)
        boxes.append((float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)))
    prompts = Prompts(
        points=torch.tensor([[[cx + 0.5, cy + 0.5]] for cx, cy in clicks]) if clicks else None,
        point_labels=torch.ones(len(clicks), 1, dtype=torch.int64) if clicks else None,
        boxes=torch.tensor(boxes) if boxes else None,
    )
    answers = predictor.segment_prompts(x, [prompts])[0].best_masks
    ids = torch.zeros(answers.shape[-2:], dtype=torch.int64)
    for k, mask in enumerate(answers):
        ids[mask & (ids == 0)] = k + 1
    prompted = draw_prompts(
        _draw(image, ids), points=[(float(a), float(b), True) for a, b in clicks], boxes=boxes, scale=_SCALE
    )
    clip = ShapesClipDataset(world, split="val", length=index + 1, num_frames=num_frames)[index]
    tracks = predictor.segment_video(predictor.link(clip.frames), ("panoptic",), vocab).panoptic
    assert tracks is not None
    row_clip = [_draw(f.image, tracks.segment_maps[t]) for t, f in enumerate(clip.clip.frames)]
    lines = [
        "OMG-Seg (world scale, shipped weights): one model, one set of weights",
        "row 1: image | truth | panoptic | instance (score >= 0.3) | semantic   (18 classes by name; "
        "arrow, crescent, heart, sand held out of training)",
        f"panoptic: {', '.join(f'{s.id}: {names[s.category_id]}' for s in pan.segments)}",
        f"row 2: the answers to {len(clicks)} centre clicks (things) and {len(boxes)} boxes (stuff)",
        f"row 3: a {num_frames}-frame val clip, VPS tracks in linked windows of 2 (one colour per id)",
    ]
    width = max(len(row_image), len(row_clip)) * row_image[0].width
    path = out / "omg_seg.png"
    tile_rows([row_image, [prompted], row_clip, [text_panel(lines, width=width)]]).save(path)
    return OMGSegDemo(file=path, lines=lines)
