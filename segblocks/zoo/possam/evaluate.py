"""Open-vocabulary evaluation of PosSAM: PQ (all / seen / unseen), SQ, RQ and mIoU per classifier.

One forward pass per batch serves every classifier (LDP alone, frozen CLIP alone, the fixed
geometric ensemble, MASE): :meth:`PosSAMPredictor.infer` computes the masks and both classifiers' logits once,
and each classifier only changes the post-processing input.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from segblocks.engine.distributed import sum_over_ranks
from segblocks.inference.targets import evaluation_truth, targets_to_panoptic
from segblocks.metrics import PanopticQuality, SemanticSegmentationMetric
from segblocks.metrics.panoptic_quality import PanopticQualityResult
from segblocks.structures import Batch, PanopticResult
from segblocks.zoo.possam.outputs import CLASSIFIERS
from segblocks.zoo.possam.predictor import PosSAMPredictor
from segblocks.zoo.possam.vocabulary import Vocabulary

__all__ = ["OpenVocabMetrics", "evaluate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenVocabMetrics:
    """Results of one classifier, in percent (NaN where undefined).

    Attributes:
        pq: panoptic quality over every class that occurs (in predictions or ground truth).
        pq_seen: PQ over the classes of the training vocabulary.
        pq_unseen: PQ over the held-out classes.
        pq_things: PQ over thing classes.
        pq_stuff: PQ over stuff classes.
        sq: segmentation quality (all classes).
        rq: recognition quality (all classes).
        miou: mean IoU of the semantic results.
        num_images: images evaluated.
    """

    pq: float
    pq_seen: float
    pq_unseen: float
    pq_things: float
    pq_stuff: float
    sq: float
    rq: float
    miou: float
    num_images: int

    def as_dict(self) -> dict[str, float]:
        """The fields as a ``{name: value}`` dictionary."""
        return {k: float(v) for k, v in asdict(self).items()}


def _pct(value: float) -> float:
    return 100.0 * value if not math.isnan(value) else float("nan")


def _subset_pq(result: PanopticQualityResult, ids: Sequence[int]) -> float:
    """Mean PQ over the classes of ``ids`` that occur (panopticapi's rule: tp + fp + fn > 0)."""
    rows = [
        result.per_class[i].pq
        for i in ids
        if sum((result.per_class[i].tp, result.per_class[i].fp, result.per_class[i].fn))
    ]
    return sum(rows) / len(rows) if rows else float("nan")


@torch.no_grad()
def evaluate(
    predictor: PosSAMPredictor,
    batches: Iterable[Batch],
    *,
    vocabulary: Vocabulary | None = None,
    classifiers: Sequence[str] = CLASSIFIERS,
    device: torch.device | str | None = None,
    autocast: Any = None,
) -> dict[str, OpenVocabMetrics]:
    """Open-vocabulary panoptic and semantic evaluation of every classifier.

    Args:
        predictor: a :class:`PosSAMPredictor` (its model is put in eval mode here and restored afterwards).
        batches: :class:`~segblocks.structures.Batch` es with ``images [B, 3, H, W]``, ``targets``
            (labels indexing ``vocabulary``, things and stuff) and ``extras["semantic"]`` ``[B, H, W]``
            label maps (same ids; :func:`segblocks.data.collate_batch` makes them).
        vocabulary: the evaluation vocabulary (e.g. every class, seen and unseen); default the
            predictor's current one. Its ``seen`` flags split PQ into seen and unseen.
        classifiers: which of :data:`~segblocks.zoo.possam.CLASSIFIERS` to evaluate.
        device: where to run (default: the model's device).
        autocast: an optional context-manager factory wrapped around each forward pass.

    Returns:
        ``{classifier: OpenVocabMetrics}``.

    Raises:
        ValueError: on an unknown classifier or an empty list of classifiers.
    """
    unknown = [c for c in classifiers if c not in CLASSIFIERS]
    if unknown or not classifiers:
        raise ValueError(
            f"classifiers: expected a non-empty subset of {CLASSIFIERS}, got {list(classifiers)}"
        )
    vocab = vocabulary if vocabulary is not None else predictor.vocabulary
    model = predictor.model
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    categories = dict(enumerate(vocab.is_thing))
    pq = {c: PanopticQuality(categories=categories) for c in classifiers}
    miou = {c: SemanticSegmentationMetric(num_classes=len(vocab)) for c in classifiers}
    count = 0
    try:
        for batch in batches:
            targets, semantic = evaluation_truth(batch)
            images = batch.images.to(device)
            if autocast is not None:
                with autocast():
                    outputs = predictor.infer(images, vocab)
            else:
                outputs = predictor.infer(images, vocab)
            size = (images.shape[-2], images.shape[-1])
            truths = [targets_to_panoptic(t.to("cpu")) for t in targets]
            for name in classifiers:
                logits = predictor.classify(outputs, name)
                preds = predictor.postprocess(
                    outputs, logits, input_size=size, tasks=("panoptic", "semantic"), classifier=name
                )
                for i, pred in enumerate(preds):
                    assert pred.panoptic is not None and pred.semantic is not None
                    result = PanopticResult(
                        segment_map=pred.panoptic.segment_map.cpu(), segments=pred.panoptic.segments
                    )
                    pq[name].update(result, truths[i])
                    miou[name].update(pred.semantic.label_map.cpu(), semantic[i].cpu())
            count += len(truths)
    finally:
        model.train(was_training)
    for name in classifiers:  # merge the shards under torchrun (no-op for one process)
        pq[name].sync()
        miou[name].sync()
    count = sum_over_ranks(count, device)
    seen_ids = [i for i, s in enumerate(vocab.seen.tolist()) if s]
    unseen_ids = [i for i, s in enumerate(vocab.seen.tolist()) if not s]
    out: dict[str, OpenVocabMetrics] = {}
    nan = float("nan")
    for name in classifiers:
        if not count:
            out[name] = OpenVocabMetrics(nan, nan, nan, nan, nan, nan, nan, nan, 0)
            continue
        r = pq[name].compute()
        out[name] = OpenVocabMetrics(
            pq=_pct(r.all.pq),
            pq_seen=_pct(_subset_pq(r, seen_ids)),
            pq_unseen=_pct(_subset_pq(r, unseen_ids)),
            pq_things=_pct(r.things.pq),
            pq_stuff=_pct(r.stuff.pq),
            sq=_pct(r.all.sq),
            rq=_pct(r.all.rq),
            miou=_pct(miou[name].compute().miou),
            num_images=count,
        )
    return out
