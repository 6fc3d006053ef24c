"""Evaluation of a Mask2Former with ``segblocks.metrics``: PQ (panoptic), mIoU (semantic), mask AP."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from segblocks.engine.distributed import sum_over_ranks
from segblocks.inference import TASKS
from segblocks.inference.targets import evaluation_truth, targets_to_panoptic
from segblocks.metrics import MaskAP, PanopticQuality, SemanticSegmentationMetric
from segblocks.structures import Batch, InstanceResult, PanopticResult
from segblocks.zoo.mask2former.model import Mask2Former

__all__ = ["Mask2FormerMetrics", "as_percent", "evaluate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mask2FormerMetrics:
    """Evaluation results (percentages; NaN for a task that was not evaluated).

    Attributes:
        pq: panoptic quality over all classes.
        pq_things: PQ over thing classes.
        pq_stuff: PQ over stuff classes.
        sq: segmentation quality.
        rq: recognition quality.
        miou: mean IoU of the semantic results.
        ap: COCO mask AP (IoU 0.50:0.95) of the instance results, things only.
        ap50: mask AP at IoU 0.5.
        num_images: images evaluated.
    """

    pq: float
    pq_things: float
    pq_stuff: float
    sq: float
    rq: float
    miou: float
    ap: float
    ap50: float
    num_images: int

    def as_dict(self) -> dict[str, float]:
        """The fields as a ``{name: value}`` dictionary."""
        return {k: float(v) for k, v in asdict(self).items()}


def as_percent(value: float) -> float:
    """A fraction as a percentage; NaN and COCOeval's -1 (undefined) become NaN.

    Args:
        value: a fraction in ``[0, 1]``, NaN or -1.
    """
    return 100.0 * value if not math.isnan(value) and value >= 0 else float("nan")


@torch.no_grad()
def evaluate(
    model: Mask2Former,
    batches: Iterable[Batch],
    *,
    tasks: tuple[str, ...] = TASKS,
    device: torch.device | str | None = None,
    autocast: Any = None,
) -> Mask2FormerMetrics:
    """Run ``model.predict`` over ``batches`` and compute PQ, mIoU and mask AP.

    Args:
        model: a Mask2Former (put in eval mode here and restored afterwards).
        batches: :class:`~segblocks.structures.Batch` es with ``images [B, 3, H, W]``, ``targets``
            (one :class:`Targets` each, with things and stuff) and ``extras["semantic"]``
            ``[B, H, W]`` label maps (:func:`segblocks.data.collate_batch` makes them).
        tasks: which of ``"panoptic"``, ``"semantic"``, ``"instance"`` to evaluate.
        device: where to run (default: the model's device).
        autocast: an optional context manager factory (e.g. ``lambda: torch.autocast("cuda",
            dtype=torch.bfloat16)``) wrapped around each forward pass.

    Returns:
        :class:`Mask2FormerMetrics` in percent.
    """
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    categories = dict(enumerate(model.is_thing))
    pq = PanopticQuality(categories=categories)
    miou = SemanticSegmentationMetric(num_classes=model.num_classes)
    thing_ids = [c for c, t in categories.items() if t]
    ap = MaskAP(categories=thing_ids) if thing_ids else None
    count = 0
    try:
        for batch in batches:
            targets, semantic = evaluation_truth(batch)
            images = batch.images.to(device)
            if autocast is not None:
                with autocast():
                    preds = model.predict(images, tasks=tasks)
            else:
                preds = model.predict(images, tasks=tasks)
            for i, pred in enumerate(preds):
                target = targets[i].to("cpu")
                if pred.panoptic is not None:
                    result = PanopticResult(
                        segment_map=pred.panoptic.segment_map.cpu(), segments=pred.panoptic.segments
                    )
                    pq.update(result, targets_to_panoptic(target))
                if pred.semantic is not None:
                    miou.update(pred.semantic.label_map.cpu(), semantic[i].cpu())
                if pred.instance is not None and ap is not None:
                    inst = pred.instance
                    ap.update(
                        InstanceResult(
                            masks=inst.masks.cpu(), labels=inst.labels.cpu(), scores=inst.scores.cpu()
                        ),
                        target,
                    )
                count += 1
    finally:
        model.train(was_training)
    # under torchrun every process saw its shard: merge the statistics (no-op for one process)
    for metric in (pq, miou, ap):
        if metric is not None:
            metric.sync()
    count = sum_over_ranks(count, device)
    nan = float("nan")
    pq_all = pq_things = pq_stuff = sq = rq = nan
    if "panoptic" in tasks and count:
        r = pq.compute()
        pq_all, pq_things, pq_stuff = r.all.pq, r.things.pq, r.stuff.pq
        sq, rq = r.all.sq, r.all.rq
    miou_value = miou.compute().miou if "semantic" in tasks and count else nan
    ap_value = ap50 = nan
    if "instance" in tasks and count and ap is not None:
        ar = ap.compute()
        ap_value, ap50 = ar.ap, ar.ap50
    return Mask2FormerMetrics(
        pq=as_percent(pq_all),
        pq_things=as_percent(pq_things),
        pq_stuff=as_percent(pq_stuff),
        sq=as_percent(sq),
        rq=as_percent(rq),
        miou=as_percent(miou_value),
        ap=as_percent(ap_value),
        ap50=as_percent(ap50),
        num_images=count,
    )
