"""The SEEM part of ``segblocks demo``: a multi-round correction and a text + click composition.

With the shipped world-scale SEEM on shapes-world val images: (1) a click on an object, the round-1
answer, the simulator's next click (the first object whose correction is a *negative* click) and
the round-2 answer that uses it and the round-1 mask as memory; (2) a referring expression alone,
then the same text with one click on the object, composed in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from segblocks.data import ShapesWorld, ShapesWorldConfig
from segblocks.data.visualize import draw_prompts, overlay_segments, text_panel, tile_rows
from segblocks.metrics.clicks import first_click, next_click
from segblocks.zoo.seem.model import SEEM
from segblocks.zoo.seem.session import SEEMSession
from segblocks.zoo.seem.shipped import load_shipped_seem

__all__ = ["SEEMDemo", "run_seem_demo"]

_SIZE = 128
_SCALE = 3


@dataclass
class SEEMDemo:
    """What the demo wrote and measured.

    Attributes:
        files: the PNG sheets.
        correction_ious: IoU after round 1 and after round 2 (the negative click).
        composition_ious: IoU of the text alone and of text + click.
        text: the referring expression used.
    """

    files: list[Path]
    correction_ious: tuple[float, float]
    composition_ious: tuple[float, float]
    text: str


def _iou(pred: np.ndarray, gt: np.ndarray) -> float:
    union = np.count_nonzero(pred | gt)
    return np.count_nonzero(pred & gt) / union if union else 1.0


def _panel(
    image: np.ndarray, mask: np.ndarray | None, clicks: list[tuple[float, float, bool]]
) -> Image.Image:
    base = (
        overlay_segments(image, mask.astype(np.int64), scale=_SCALE)
        if mask is not None
        else Image.fromarray(image).resize((image.shape[1] * _SCALE,) * 2, Image.Resampling.NEAREST)
    )
    return draw_prompts(base, points=clicks, scale=_SCALE)


def run_seem_demo(out: str | Path, *, seed: int = 0, model: SEEM | None = None, search: int = 10) -> SEEMDemo:
    """Write the correction and composition sheets for the first fitting val objects.

    Args:
        out: the output folder (created).
        seed: the shapes world's seed.
        model: a SEEM to use instead of the shipped world-scale one.
        search: val images searched for an object whose correction is a negative click.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model if model is not None else load_shipped_seem()
    world = ShapesWorld(ShapesWorldConfig(image_size=(_SIZE, _SIZE), seed=seed), split="val")
    session = SEEMSession(model)

    # --- (1) round 1 -> negative click -> round 2 --------------------------------------------------
    chosen = None
    for index in range(search):
        sample = world.sample(index)
        session.set_image(sample.image)
        for seg in sample.thing_segments:
            gt = sample.mask(seg.id)
            c1 = first_click(gt)
            round1 = session.prompt(clicks=[(c1.x, c1.y)])
            pred1 = round1.masks[-1].numpy()
            c2 = next_click(gt, pred1, None)
            if c2 is not None and not c2.positive:
                chosen = (sample, gt, c1, c2, len(round1.masks) - 1, pred1)
                break
        if chosen is not None:
            break
    if chosen is None:  # every answer only missed pixels: show a positive correction instead
        sample = world.sample(0)
        session.set_image(sample.image)
        gt = sample.mask(sample.thing_segments[0].id)
        c1 = first_click(gt)
        pred1 = session.prompt(clicks=[(c1.x, c1.y)]).masks[0].numpy()
        c2 = next_click(gt, pred1, None) or c1
        chosen = (sample, gt, c1, c2, 0, pred1)
    sample, gt, c1, c2, obj, pred1 = chosen
    pred2 = session.prompt(obj, clicks=[(c2.x, c2.y, c2.positive)]).masks[obj].numpy()
    clicks1 = [(float(c1.x), float(c1.y), True)]
    clicks2 = [*clicks1, (float(c2.x), float(c2.y), c2.positive)]
    iou1, iou2 = _iou(pred1, gt), _iou(pred2, gt)
    sheet = tile_rows(
        [
            [
                _panel(sample.image, None, clicks1),
                _panel(sample.image, pred1, clicks1),
                _panel(sample.image, pred1, clicks2),
                _panel(sample.image, pred2, clicks2),
                _panel(sample.image, gt, []),
            ],
            [
                text_panel(
                    [
                        "multi-round correction: click -> round 1 -> "
                        + ("negative" if not c2.positive else "positive")
                        + " click -> round 2 (ground truth right)",
                        f"IoU round 1 {100 * iou1:.1f}, round 2 {100 * iou2:.1f} (the round-1 mask is the memory prompt of round 2)",
                    ],
                    width=5 * _SIZE * _SCALE,
                )
            ],
        ]
    )
    files = [out / "seem_correction.png"]
    sheet.save(files[0])

    # --- (2) text alone vs text + click ---------------------------------------------------------------
    sample = next(world.sample(i) for i in range(search) if world.sample(i).referring)
    expr = sample.referring[0]
    gt = sample.mask(expr.target_id)
    session.set_image(sample.image)
    text_only = session.prompt(text=expr.text).masks[0].numpy()
    c = first_click(gt)
    composed = session.prompt(text=expr.text, clicks=[(c.x, c.y)]).masks[1].numpy()
    click = [(float(c.x), float(c.y), True)]
    t_iou, b_iou = _iou(text_only, gt), _iou(composed, gt)
    sheet = tile_rows(
        [
            [
                _panel(sample.image, None, []),
                _panel(sample.image, text_only, []),
                _panel(sample.image, composed, click),
                _panel(sample.image, gt, []),
            ],
            [
                text_panel(
                    [
                        f"text {expr.text!r} alone -> IoU {100 * t_iou:.1f}; the same text + one click, composed by self-attention -> IoU {100 * b_iou:.1f}",
                    ],
                    width=4 * _SIZE * _SCALE,
                )
            ],
        ]
    )
    files.append(out / "seem_composition.png")
    sheet.save(files[1])
    return SEEMDemo(
        files=files, correction_ious=(iou1, iou2), composition_ious=(t_iou, b_iou), text=expr.text
    )
