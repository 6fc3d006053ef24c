"""SEEM's evaluation on shapes-world images: interactive NoC / 1-IoU, referring, generic PQ.

* **Interactive** (REFERENCE 2.4 NoC protocol): every thing of an image is an object; its first prompt
  is of one type (point: the centre-most pixel; box: the tight box, filled; scribble; polygon;
  mask: a coarsened copy of the mask), then clicks follow the shared simulator
  (:func:`segblocks.metrics.clicks.next_click`), at most ``max_clicks`` prompts, stopping once IoU
  reaches 0.9. All objects of an image are prompts of one decoder pass per round (they do not attend
  to each other). :class:`~segblocks.metrics.NoCMetric` gives NoC@85, NoC@90 and the 1-IoU.
* **Referring**: each referring expression of the image; cIoU (summed intersections over summed
  unions), mIoU and AP@50 (the fraction of expressions with IoU > 0.5), for the prompt modes of the
  supplementary's Table 1: ``text``, ``visual`` (a click at the object's centre-most pixel), ``both``
  (text and click in one prompt, composed by self-attention) and ``ensemble`` (text-only and
  visual-only answers averaged).
* **Generic**: panoptic quality of the object queries against the class names.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from segblocks.data.shapes.prompts import coarse_mask
from segblocks.data.shapes.sample import ShapesSample
from segblocks.decoders import ObjectRegions, click_region
from segblocks.inference import postprocess_batch
from segblocks.inference.targets import targets_to_panoptic
from segblocks.metrics import NoCMetric, PanopticQuality
from segblocks.metrics.clicks import first_click, next_click
from segblocks.structures import PanopticResult
from segblocks.zoo.seem.interaction import add_click, answer_masks
from segblocks.zoo.seem.model import SEEM
from segblocks.zoo.seem.outputs import ImageEncoding
from segblocks.zoo.seem.prompt_batch import PromptBatch
from segblocks.zoo.seem.training_prompts import draw_visual_prompt

__all__ = [
    "FIRST_PROMPTS",
    "REFERRING_MODES",
    "InteractiveMetrics",
    "ReferringMetrics",
    "evaluate_generic",
    "evaluate_interactive",
    "evaluate_referring",
]

logger = logging.getLogger(__name__)

#: First-prompt types of the interactive table.
FIRST_PROMPTS = ("point", "box", "scribble", "polygon", "mask")
#: Referring prompt modes (the supplementary's Table 1).
REFERRING_MODES = ("text", "visual", "both", "ensemble")


@dataclass(frozen=True)
class InteractiveMetrics:
    """Interactive results of one first-prompt type.

    Attributes:
        noc85: mean prompts to reach IoU 0.85 (capped).
        noc90: mean prompts to reach IoU 0.9 (capped).
        iou1: mean IoU after the first prompt (1-IoU), percent.
        iou_per_click: mean IoU after each prompt, percent.
        num_objects: objects evaluated.
    """

    noc85: float
    noc90: float
    iou1: float
    iou_per_click: list[float]
    num_objects: int


@dataclass(frozen=True)
class ReferringMetrics:
    """Referring results (percent): cIoU, mIoU, AP@50, and the number of expressions."""

    ciou: float
    miou: float
    ap50: float
    num_expressions: int

    def as_dict(self) -> dict[str, float]:
        """The fields as a ``{name: value}`` dictionary."""
        return {k: float(v) for k, v in asdict(self).items()}


def _encode(model: SEEM, sample: ShapesSample) -> ImageEncoding:
    device = model.query_feat.weight.device
    return model.encode_image(sample.image_tensor()[None].to(device))


def _first_region(kind: str, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if kind == "point":
        click = first_click(mask)
        return click_region(click.x, click.y, mask.shape).numpy()
    if kind == "mask":
        return coarse_mask(mask, rng)
    return draw_visual_prompt(kind, mask, rng)


@torch.no_grad()
def evaluate_interactive(
    model: SEEM,
    samples: Sequence[ShapesSample],
    *,
    first_prompts: Sequence[str] = FIRST_PROMPTS,
    max_clicks: int = 20,
    stop_iou: float = 0.9,
    use_memory: bool = True,
    seed: int = 0,
) -> dict[str, InteractiveMetrics]:
    """NoC@85 / NoC@90 / 1-IoU per first-prompt type over the things of ``samples``.

    Args:
        model: a SEEM (evaluated in eval mode).
        samples: shapes-world samples.
        first_prompts: types of the first prompt (:data:`FIRST_PROMPTS`).
        max_clicks: cap on prompts per object (the first prompt counts as one).
        stop_iou: an object stops once its IoU reaches this.
        use_memory: give the decoder the previous round's masks (False: the memory-off ablation).
        seed: seeds the first prompts and the visual sampler.

    Returns:
        ``{first prompt type: InteractiveMetrics}``.
    """
    unknown = sorted(set(first_prompts) - set(FIRST_PROMPTS))
    if unknown:
        raise ValueError(f"first_prompts: unknown types {unknown}; expected some of {FIRST_PROMPTS}")
    was_training = model.training
    model.eval()
    device = model.query_feat.weight.device
    results: dict[str, InteractiveMetrics] = {}
    try:
        for kind in first_prompts:
            metric = NoCMetric(thresholds=(0.85, 0.9), max_clicks=max_clicks)
            rng = np.random.default_rng(seed)
            for index, sample in enumerate(samples):
                gts = [sample.mask(s.id) for s in sample.thing_segments]
                if not gts:
                    continue
                encoding = _encode(model, sample)
                for curve in _click_sessions(
                    model, encoding, gts, kind, rng, max_clicks, stop_iou, use_memory, seed + index, device
                ):
                    metric.update(curve)
            r = metric.compute()
            results[kind] = InteractiveMetrics(
                noc85=r.noc[0.85],
                noc90=r.noc[0.9],
                iou1=100.0 * r.one_click_iou,
                iou_per_click=[100.0 * float(v) for v in r.mean_iou_per_click],
                num_objects=r.num_objects,
            )
    finally:
        model.train(was_training)
    return results


def _click_sessions(
    model: SEEM,
    encoding: ImageEncoding,
    gts: list[np.ndarray],
    kind: str,
    rng: np.random.Generator,
    max_clicks: int,
    stop_iou: float,
    use_memory: bool,
    seed: int,
    device: torch.device,
) -> list[list[float]]:
    """Run the rounds of every object of one image together; one IoU curve per object."""
    size = gts[0].shape
    n = len(gts)
    positive = torch.from_numpy(np.stack([_first_region(kind, m, rng) for m in gts]))
    negative = torch.zeros_like(positive)
    clicks = positive.clone() if kind == "point" else torch.zeros_like(positive)  # later clicks join
    previous = torch.zeros_like(positive)
    curves: list[list[float]] = [[] for _ in range(n)]
    active = [True] * n
    generator = torch.Generator(device=device).manual_seed(seed)
    for _ in range(max_clicks):
        prompts = PromptBatch.from_objects(
            [ObjectRegions(positive=positive, negative=negative)],
            [[None] * n],
            size,
            previous=[previous if use_memory else None],
            clicks=[clicks],
            device=device,
        )
        out = model.decode(encoding, prompts, use_memory=use_memory, generator=generator)
        answers = answer_masks(out.answers(), size, encoding.padded)[0].cpu()
        for i in range(n):
            if not active[i]:
                continue
            pred, gt = answers[i].numpy(), gts[i]
            union = np.count_nonzero(pred | gt)
            curves[i].append(np.count_nonzero(pred & gt) / union if union else 1.0)
            if curves[i][-1] >= stop_iou or len(curves[i]) == max_clicks:
                active[i] = False
                continue
            click = next_click(gt, pred, (positive[i] | negative[i]).numpy())
            if click is None:
                active[i] = False
                continue
            add_click(positive[i], negative[i], clicks[i], click)
        previous = answers
        if not any(active):
            break
    return curves


@torch.no_grad()
def evaluate_referring(
    model: SEEM, samples: Sequence[ShapesSample], *, mode: str = "text", seed: int = 0
) -> ReferringMetrics:
    """cIoU, mIoU and AP@50 of the referring expressions of ``samples``.

    Args:
        model: a SEEM.
        samples: shapes-world samples (their ``referring`` expressions).
        mode: one of :data:`REFERRING_MODES`.
        seed: seeds the visual sampler.
    """
    if mode not in REFERRING_MODES:
        raise ValueError(f"mode: expected one of {REFERRING_MODES}, got {mode!r}")
    was_training = model.training
    model.eval()
    device = model.query_feat.weight.device
    inter = union = 0
    ious: list[float] = []
    try:
        for index, sample in enumerate(samples):
            if not sample.referring:
                continue
            encoding = _encode(model, sample)
            gts = [sample.mask(r.target_id) for r in sample.referring]
            texts = [r.text for r in sample.referring]
            clicks = np.stack([_centre_click(m) for m in gts])
            generator = torch.Generator(device=device).manual_seed(seed + index)

            args = (model, encoding, texts, clicks)
            if mode == "text":
                probs = _referring_answer(*args, True, False, generator)
            elif mode == "visual":
                probs = _referring_answer(*args, False, True, generator)
            elif mode == "both":
                probs = _referring_answer(*args, True, True, generator)
            else:  # the ensemble: a text-only and a visual-only answer averaged
                probs = 0.5 * (
                    _referring_answer(*args, True, False, generator)
                    + _referring_answer(*args, False, True, generator)
                )
            for pred, gt in zip((probs > 0.5).numpy(), gts):
                i, u = int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))
                inter, union = inter + i, union + u
                ious.append(i / u if u else 1.0)
    finally:
        model.train(was_training)
    if not ious:
        return ReferringMetrics(ciou=math.nan, miou=math.nan, ap50=math.nan, num_expressions=0)
    arr = np.asarray(ious)
    return ReferringMetrics(
        ciou=100.0 * inter / max(union, 1),
        miou=100.0 * float(arr.mean()),
        ap50=100.0 * float((arr > 0.5).mean()),
        num_expressions=len(ious),
    )


def _referring_answer(
    model: SEEM,
    encoding: ImageEncoding,
    texts: list[str],
    clicks: np.ndarray,
    use_text: bool,
    use_click: bool,
    generator: torch.Generator,
) -> torch.Tensor:
    """``[N, H, W]`` answer probabilities of an image's expressions from their text and/or click."""
    pos = torch.from_numpy(clicks) if use_click else torch.zeros(clicks.shape, dtype=torch.bool)
    regions = ObjectRegions(positive=pos, negative=torch.zeros_like(pos))
    h, w = clicks.shape[1:]
    prompts = PromptBatch.from_objects(
        [regions],
        [list(texts) if use_text else [None] * len(texts)],
        (h, w),
        clicks=[pos],
        device=model.query_feat.weight.device,
    )
    out = model.decode(encoding, prompts, generator=generator)
    up = torch.nn.functional.interpolate(out.answers().float(), size=encoding.padded, mode="bilinear")
    return up[0, :, :h, :w].sigmoid().cpu()


def _centre_click(mask: np.ndarray) -> np.ndarray:
    click = first_click(mask)
    return click_region(click.x, click.y, mask.shape).numpy()


@torch.no_grad()
def evaluate_generic(
    model: SEEM, samples: Sequence[ShapesSample], *, batch_size: int = 8
) -> dict[str, float]:
    """Panoptic quality (percent) of the object queries over ``samples``: ``pq``, ``pq_things``, ``pq_stuff``.

    Args:
        model: a SEEM (its vocabulary must hold the samples' classes, in category-id order).
        samples: shapes-world samples.
        batch_size: images per forward pass.
    """
    was_training = model.training
    model.eval()
    device = model.query_feat.weight.device
    cfg = model.config
    pq = PanopticQuality(categories=dict(enumerate(model.is_thing)))
    try:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start : start + batch_size]
            images = torch.stack([s.image_tensor() for s in chunk]).to(device)
            encoding = model.encode_image(images)
            out = model.decode(encoding)
            assert out.generic.class_logits is not None
            preds = postprocess_batch(
                out.generic.mask_logits,
                out.generic.class_logits,
                model.is_thing,
                padded=encoding.padded,
                image_sizes=[encoding.image_size] * len(chunk),
                tasks=("panoptic",),
                object_mask_threshold=cfg.object_mask_threshold if cfg is not None else 0.8,
                overlap_threshold=cfg.overlap_threshold if cfg is not None else 0.8,
            )
            for pred, sample in zip(preds, chunk):
                assert pred.panoptic is not None
                result = PanopticResult(
                    segment_map=pred.panoptic.segment_map.cpu(), segments=pred.panoptic.segments
                )
                pq.update(result, targets_to_panoptic(sample.to_targets()))
    finally:
        model.train(was_training)
    r = pq.compute()
    return {"pq": 100.0 * r.all.pq, "pq_things": 100.0 * r.things.pq, "pq_stuff": 100.0 * r.stuff.pq}
