"""Uni-OVSeg evaluation on the shapes world: open-vocabulary semantic mIoU and PQ, promptable mIoU,
and region top-1 accuracy of the CLIP region embeddings per input size.

* :func:`evaluate_open_vocab`: point-grid proposals named against **all 18 classes** (none was ever
  given as a label in training) -> semantic mIoU and panoptic PQ / SQ / RQ (things and stuff).
* :func:`evaluate_prompts`: the tiny SAM's protocol on the same prompts (every thing's centre-most
  pixel and tight box): 1-point oracle (best of the ``k`` masks), 1-point top-IoU, 1-box mIoU.
* :func:`region_top1`: ground-truth masks' region embeddings classified against the 18 names, for a
  set of input sizes (the paper's input-size table), with the time per image.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from segblocks.data.shapes.categories import CATEGORIES
from segblocks.data.shapes.sample import ShapesSample
from segblocks.inference.targets import targets_to_panoptic
from segblocks.metrics import PanopticQuality, SemanticSegmentationMetric
from segblocks.pretrain.shapes_sam.prompts import eval_prompts
from segblocks.structures import Prompts
from segblocks.zoo.uni_ovseg.model import UniOVSeg
from segblocks.zoo.uni_ovseg.predictor import UniOVSegPredictor

__all__ = [
    "OpenVocabMetrics",
    "PromptMetrics",
    "evaluate_card",
    "evaluate_open_vocab",
    "evaluate_prompts",
    "region_top1",
]


def _pct(x: float) -> float:
    return round(100.0 * x, 2)


def _check_samples(samples: Sequence[ShapesSample]) -> None:
    if len(samples) == 0:
        raise ValueError("samples: expected at least one sample")
    if not all(isinstance(s, ShapesSample) for s in samples):
        raise TypeError("samples: expected a sequence of ShapesSample")


@dataclass(frozen=True)
class OpenVocabMetrics:
    """Open-vocabulary results over a validation set (percent).

    Attributes:
        miou: semantic mIoU over the 18 classes.
        pq: panoptic quality; ``pq_things`` / ``pq_stuff`` its parts; ``sq`` / ``rq`` its factors.
        proposals_per_image: kept masks per image after the IoU filter and inner-NMS.
        seconds_per_image: inference wall time per image.
        num_images: images evaluated.
    """

    miou: float
    pq: float
    pq_things: float
    pq_stuff: float
    sq: float
    rq: float
    proposals_per_image: float
    seconds_per_image: float
    num_images: int

    def as_dict(self) -> dict[str, float]:
        """The fields as a flat dict."""
        return {k: float(v) for k, v in asdict(self).items()}


@torch.no_grad()
def evaluate_open_vocab(
    predictor: UniOVSegPredictor,
    samples: Sequence[ShapesSample],
    *,
    adapted: bool = True,
    sizes: Sequence[int] | None = None,
) -> OpenVocabMetrics:
    """Semantic mIoU and PQ of point-grid proposals named against every class of the world.

    Args:
        predictor: the predictor (its model is put in eval mode and restored).
        samples: validation samples.
        adapted: name masks through the feature adapter (False: the frozen-CLIP baseline).
        sizes: input sizes of the region embeddings (default ``config.inference_sizes``).

    Raises:
        ValueError, TypeError: on an empty or foreign ``samples``.
    """
    _check_samples(samples)
    model = predictor.model
    names = [c.name for c in CATEGORIES]
    is_thing = [c.is_thing for c in CATEGORIES]
    pq = PanopticQuality(categories=dict(enumerate(is_thing)))
    miou = SemanticSegmentationMetric(num_classes=len(names))
    was_training = model.training
    model.eval()
    kept = 0
    t0 = time.perf_counter()
    try:
        for s in samples:
            image = s.image_tensor()[None].to(model.device)
            pred = predictor.predict(
                image, vocabulary=names, is_thing=is_thing, adapted=adapted, sizes=sizes
            )[0]
            kept += len(pred.proposals.scores)
            pq.update(pred.panoptic, targets_to_panoptic(s.to_targets()))
            miou.update(pred.semantic.label_map.cpu(), torch.from_numpy(s.semantic))
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - t0
    r = pq.compute()
    return OpenVocabMetrics(
        miou=_pct(miou.compute().miou),
        pq=_pct(r.all.pq),
        pq_things=_pct(r.things.pq),
        pq_stuff=_pct(r.stuff.pq),
        sq=_pct(r.all.sq),
        rq=_pct(r.all.rq),
        proposals_per_image=round(kept / len(samples), 2),
        seconds_per_image=round(seconds / len(samples), 3),
        num_images=len(samples),
    )


@dataclass(frozen=True)
class PromptMetrics:
    """Promptable mIoU over the things of a validation set (percent).

    Attributes:
        point_oracle_miou: one centre click, the best of the ``k`` outputs.
        point_top_iou_miou: one centre click, the output the IoU head ranks first.
        box_miou: the tight box, the single-mask output.
        num_things: things evaluated.
    """

    point_oracle_miou: float
    point_top_iou_miou: float
    box_miou: float
    num_things: int

    def as_dict(self) -> dict[str, float]:
        """The fields as a flat dict."""
        return {k: float(v) for k, v in asdict(self).items()}


def _iou(masks: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``[N, K]`` IoU of ``masks [N, K, H, W]`` with ``truth [N, H, W]``."""
    m, t = masks.flatten(2).float(), truth.flatten(1).float()[:, None]
    inter = (m * t).sum(-1)
    return inter / (m.sum(-1) + t.sum(-1) - inter).clamp_min(1.0)


@torch.no_grad()
def evaluate_prompts(model: UniOVSeg, samples: Sequence[ShapesSample]) -> PromptMetrics:
    """1-point (oracle, top-IoU) and 1-box mIoU on every thing, with the tiny SAM's prompts.

    Args:
        model: the model (put in eval mode and restored).
        samples: validation samples.

    Raises:
        ValueError, TypeError: on an empty or foreign ``samples``.
    """
    _check_samples(samples)
    was_training = model.training
    model.eval()
    oracle, top, box = [], [], []
    try:
        for s in samples:
            pts, _, truth = eval_prompts(s)
            if len(truth) == 0:
                continue
            image = s.image_tensor()[None].to(model.device)
            labels = torch.ones(len(pts), 1, dtype=torch.int64)
            res = model.segment_prompts(image, [Prompts(points=pts, point_labels=labels).to(model.device)])[0]
            ious = _iou(res.masks.cpu(), truth)
            oracle.append(ious.max(1).values)
            top.append(ious.gather(1, res.best.cpu()[:, None])[:, 0])
            boxes = torch.tensor([list(b) for b in s.boxes], dtype=torch.float32).reshape(-1, 4)
            res = model.segment_prompts(image, [Prompts(boxes=boxes).to(model.device)])[0]
            box.append(_iou(res.masks.cpu(), truth)[:, 0])
    finally:
        model.train(was_training)
    n = sum(len(x) for x in oracle)

    def mean(values: list[torch.Tensor]) -> float:
        return _pct(float(torch.cat(values).mean())) if n else float("nan")

    return PromptMetrics(
        point_oracle_miou=mean(oracle), point_top_iou_miou=mean(top), box_miou=mean(box), num_things=n
    )


@torch.no_grad()
def region_top1(
    model: UniOVSeg, samples: Sequence[ShapesSample], sizes: Sequence[int], *, adapted: bool = False
) -> dict[str, float]:
    """Top-1 accuracy (percent) of ground-truth masks' region embeddings against the 18 class names.

    Region embeddings are averaged over ``sizes`` (one size, or an ensemble), as in the paper's
    input-size table; things and stuff are reported apart.

    Args:
        model: the model (its CLIP and adapter).
        samples: validation samples (their ground-truth segments are classified).
        sizes: input sizes averaged.
        adapted: read the dense CLIP map through the feature adapter.

    Returns:
        ``{"top1", "top1_things", "top1_stuff", "seconds_per_image", "num_masks"}``.

    Raises:
        ValueError, TypeError: on an empty or foreign ``samples`` or bad sizes.
    """
    _check_samples(samples)
    text = model.clip.encode_text([c.name for c in CATEGORIES])
    right_t = right_s = n_t = n_s = 0
    seconds = 0.0
    for s in samples:
        t = s.to_targets()
        image = s.image_tensor()[None].to(model.device)
        t0 = time.perf_counter()
        emb = model.region_embeddings(image, t.masks[None].to(model.device), sizes, adapted=adapted)
        regions = F.normalize(emb.mean(0)[0], dim=-1)
        seconds += time.perf_counter() - t0
        pred = (regions @ text.T).argmax(-1).cpu()
        ok = pred == t.labels
        assert t.is_thing is not None
        right_t += int(ok[t.is_thing].sum())
        n_t += int(t.is_thing.sum())
        right_s += int(ok[~t.is_thing].sum())
        n_s += int((~t.is_thing).sum())
    return {
        "top1": _pct((right_t + right_s) / max(1, n_t + n_s)),
        "top1_things": _pct(right_t / max(1, n_t)),
        "top1_stuff": _pct(right_s / max(1, n_s)),
        "seconds_per_image": round(seconds / len(samples), 4),
        "num_masks": float(n_t + n_s),
    }


def evaluate_card(
    model: UniOVSeg, samples: Sequence[ShapesSample], *, compare_sam: bool = True
) -> dict[str, dict[str, float]]:
    """Every number of the model card's results table on ``samples`` (percent).

    Args:
        model: the model.
        samples: validation samples.
        compare_sam: also evaluate the shipped tiny SAM on the same prompts.

    Returns:
        ``{"open_vocab": ..., "open_vocab_frozen_clip": ..., "prompt": ..., "prompt_tiny_sam": ...}``
        (the last with ``compare_sam``: the shipped tiny SAM on the same things and prompts).
    """
    predictor = UniOVSegPredictor(model)
    rows = {
        "open_vocab": evaluate_open_vocab(predictor, samples, adapted=True).as_dict(),
        "open_vocab_frozen_clip": evaluate_open_vocab(predictor, samples, adapted=False).as_dict(),
        "prompt": evaluate_prompts(model, samples).as_dict(),
    }
    if compare_sam:
        from segblocks.pretrain.shapes_sam import build_shapes_sam, evaluate_shapes_sam

        sam = evaluate_shapes_sam(build_shapes_sam(), samples).as_dict()
        rows["prompt_tiny_sam"] = {
            "point_oracle_miou": _pct(float(sam["point_oracle_miou"])),
            "point_top_iou_miou": _pct(float(sam["point_top_iou_miou"])),
            "box_miou": _pct(float(sam["box_miou"])),
            "num_things": float(sam["num_things"]),
        }
    return rows
