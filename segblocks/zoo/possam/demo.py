"""The PosSAM part of ``segblocks demo``: open-vocabulary panoptic segmentation of shapes-world images.

The shipped world-scale PosSAM was trained on the *seen* classes only; the demo asks it for every
class of the shapes world, so the held-out ones (heart, crescent, arrow, sand) are given only by
name, through the frozen tiny CLIP's text encoder. Each sheet shows the ground truth, MASE (the
paper's classifier) and the frozen CLIP alone (the best of the four on the shipped weights; see the
card).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from segblocks.data import CATEGORIES, ShapesDataset, ShapesWorldConfig, collate_batch
from segblocks.data.visualize import overlay_segments, text_panel, tile_rows
from segblocks.zoo.possam.evaluate import OpenVocabMetrics, evaluate
from segblocks.zoo.possam.model import PosSAM
from segblocks.zoo.possam.predictor import PosSAMPredictor
from segblocks.zoo.possam.shipped import load_shipped_possam

__all__ = ["PossamDemo", "run_possam_demo"]

_SIZE = 128  # the world-scale model's training resolution


@dataclass
class PossamDemo:
    """What the demo wrote and measured.

    Attributes:
        files: the PNG files (ground truth | MASE | frozen CLIP alone, with legends), one per image.
        metrics: open-vocabulary results on the demo images, per classifier.
        unseen: the held-out class names.
    """

    files: list[Path]
    metrics: dict[str, OpenVocabMetrics]
    unseen: list[str]


def _legend(segments: list[tuple[int, int]], names: list[str], unseen: set[str], title: str) -> list[str]:
    lines = [title]
    for seg_id, cid in segments:
        name = names[cid]
        lines.append(f"  {seg_id}: {name}{' (unseen)' if name in unseen else ''}")
    return lines


def run_possam_demo(
    out: str | Path, *, num_images: int = 4, seed: int = 0, model: PosSAM | None = None
) -> PossamDemo:
    """Segment ``num_images`` val images with every class name and write side-by-side PNGs.

    Args:
        out: the output folder (created).
        num_images: val images to segment and evaluate.
        seed: the shapes world's seed.
        model: a PosSAM to use instead of the shipped world-scale one.

    Returns:
        The :class:`PossamDemo` (files and metrics).

    Raises:
        ValueError: on ``num_images`` < 1.
    """
    if num_images < 1:
        raise ValueError(f"num_images: expected a positive int, got {num_images}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model if model is not None else load_shipped_possam()
    names = [c.name for c in CATEGORIES]
    flags = [c.is_thing for c in CATEGORIES]
    predictor = PosSAMPredictor(model, vocabulary=names, is_thing=flags)
    vocabulary = predictor.vocabulary
    unseen = {n for n, seen in zip(names, vocabulary.seen) if not seen}
    world = ShapesWorldConfig(image_size=(_SIZE, _SIZE), seed=seed)
    dataset = ShapesDataset(world, split="val", length=num_images)
    batch = collate_batch([dataset[i] for i in range(num_images)])
    shown = {"mase": "PosSAM, MASE", "clip": "PosSAM, frozen CLIP alone"}
    with torch.no_grad():  # one forward pass; each classifier only changes the post-processing
        outputs = predictor.infer(batch.images)
    size = (int(batch.images.shape[-2]), int(batch.images.shape[-1]))
    predictions = {
        c: predictor.postprocess(
            outputs, predictor.classify(outputs, c), input_size=size, tasks=("panoptic",), classifier=c
        )
        for c in shown
    }
    scale = 3
    files = []
    for index, sample in enumerate(batch.extras["samples"]):
        truth = overlay_segments(sample.image, sample.panoptic, scale=scale)
        images = [truth]
        panels = [
            text_panel(
                _legend([(s.id, s.category_id) for s in sample.segments], names, unseen, "ground truth"),
                width=truth.width,
            )
        ]
        for classifier, label in shown.items():
            panoptic = predictions[classifier][index].panoptic
            assert panoptic is not None
            guess = overlay_segments(
                sample.image, panoptic.segment_map.cpu().numpy().astype(np.int32), scale=scale
            )
            title = f"{label} (object threshold {predictor.object_threshold(classifier):.2f})"
            images.append(guess)
            segments = [(s.id, s.category_id) for s in panoptic.segments]
            panels.append(text_panel(_legend(segments, names, unseen, title), width=guess.width))
        sheet = tile_rows([images, panels])
        path = out / f"possam_{index:02d}.png"
        sheet.save(path)
        files.append(path)
    metrics = evaluate(predictor, [batch])
    return PossamDemo(files=files, metrics=metrics, unseen=sorted(unseen))
