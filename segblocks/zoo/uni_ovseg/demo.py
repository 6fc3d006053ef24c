"""The Uni-OVSeg part of ``segblocks demo``: one model, trained without a single image that had both
masks and texts, names every class of the shapes world and answers a click at several granularities.

Per val image: ground truth | the open-vocabulary panoptic result (all 18 class names) | the four
granularities the model returns for one click on a thing (part, thing, ...), with their predicted IoU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from segblocks.data import CATEGORIES, ShapesWorld, ShapesWorldConfig
from segblocks.data.visualize import draw_prompts, overlay_segments, text_panel, tile_rows
from segblocks.pretrain.shapes_sam.prompts import eval_prompts
from segblocks.structures import Prompts
from segblocks.zoo.uni_ovseg.evaluate import OpenVocabMetrics, evaluate_open_vocab
from segblocks.zoo.uni_ovseg.model import UniOVSeg
from segblocks.zoo.uni_ovseg.predictor import UniOVSegPredictor
from segblocks.zoo.uni_ovseg.shipped import load_shipped_uni_ovseg

__all__ = ["UniOVSegDemo", "run_uni_ovseg_demo"]

_SIZE = 128  # the world-scale model's training resolution


@dataclass
class UniOVSegDemo:
    """What the demo wrote and measured.

    Attributes:
        files: one PNG per image.
        metrics: open-vocabulary results on the demo images (all 18 classes).
    """

    files: list[Path]
    metrics: OpenVocabMetrics


def run_uni_ovseg_demo(
    out: str | Path, *, num_images: int = 4, seed: int = 0, model: UniOVSeg | None = None
) -> UniOVSegDemo:
    """Segment ``num_images`` val images with every class name, and one click at four granularities.

    Args:
        out: the output folder (created).
        num_images: val images.
        seed: the shapes world's seed.
        model: a model to use instead of the shipped world-scale one.

    Raises:
        ValueError: on ``num_images`` < 1.
    """
    if num_images < 1:
        raise ValueError(f"num_images: expected a positive int, got {num_images}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model if model is not None else load_shipped_uni_ovseg()
    names = [c.name for c in CATEGORIES]
    predictor = UniOVSegPredictor(model, vocabulary=names, is_thing=[c.is_thing for c in CATEGORIES])
    world = ShapesWorld(ShapesWorldConfig(image_size=(_SIZE, _SIZE), seed=seed), split="val")
    samples = [world.sample(i) for i in range(num_images)]
    scale, files = 3, []
    for index, sample in enumerate(samples):
        image = sample.image_tensor()[None]
        pred = predictor.predict(image)[0]
        truth = overlay_segments(sample.image, sample.panoptic, scale=scale)
        seg = pred.panoptic.segment_map.cpu().numpy().astype(np.int32)
        guess = overlay_segments(sample.image, seg, scale=scale)
        row = [truth, guess]
        gt_lines = ["ground truth"] + [f"  {s.id}: {names[s.category_id]}" for s in sample.segments]
        pr_lines = ["Uni-OVSeg (18 names)"] + [
            f"  {s.id}: {names[s.category_id]} ({s.score:.2f})" for s in pred.panoptic.segments
        ]
        panels = [text_panel(gt_lines, width=truth.width), text_panel(pr_lines, width=guess.width)]
        points, _, _ = eval_prompts(sample)
        if len(points):
            click = points[:1]
            answer = model.segment_prompts(
                image, [Prompts(points=click, point_labels=torch.ones(1, 1, dtype=torch.int64))]
            )[0]
            for k in range(answer.masks.shape[1]):
                mask = answer.masks[0, k].cpu().numpy().astype(np.int32)
                pic = overlay_segments(sample.image, mask, scale=scale)
                x, y = click[0, 0].tolist()
                row.append(draw_prompts(pic, points=[(x, y, True)], scale=scale))
                panels.append(
                    text_panel(
                        [f"click, output {k + 1}", f"pred. IoU {float(answer.scores[0, k]):.2f}"],
                        width=pic.width,
                    )
                )
        sheet = tile_rows([row, panels])
        path = out / f"uni_ovseg_{index:02d}.png"
        sheet.save(path)
        files.append(path)
    return UniOVSegDemo(files=files, metrics=evaluate_open_vocab(predictor, samples))
