"""Calibrate PosSAM's panoptic object threshold per classifier on training images (never on val).

The panoptic post-processing keeps a query when its best class probability passes the object
threshold. How probable a right answer is depends on the classifier (MASE moves mass to void by the
predicted IoU; an ensemble of two classifiers is flatter than either), so one fixed threshold keeps
well-named masks for one classifier and drops them for another. The rule fixed here, before any
val image is scored: for each classifier, the threshold of :data:`THRESHOLD_GRID` that maximises PQ
on training-split images of the training world (the unseen classes absent, the training
vocabulary), a tie going to the higher threshold. :func:`calibrate` stores the result in the
model's config, where :class:`~segblocks.zoo.possam.PosSAMPredictor` and the shipped-weights export
find it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import torch

from segblocks._validation import check_positive_int
from segblocks.data import CATEGORIES, ShapesDataset, ShapesWorldConfig
from segblocks.inference.targets import targets_to_panoptic
from segblocks.metrics import PanopticQuality
from segblocks.structures import Batch, PanopticResult
from segblocks.zoo.possam.model import PosSAM
from segblocks.zoo.possam.outputs import CLASSIFIERS
from segblocks.zoo.possam.predictor import PosSAMPredictor
from segblocks.zoo.possam.train import collate_seen, seen_world

__all__ = ["THRESHOLD_GRID", "calibrate", "calibrate_object_thresholds", "calibration_batches"]

logger = logging.getLogger(__name__)

#: Candidate object thresholds, 0.05 to 0.80 in steps of 0.05.
THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(1, 17))


def _finite(value: float) -> float:
    return value if not math.isnan(value) else float("-inf")  # nothing to score ranks last


def calibration_batches(
    *, images: int = 100, image_size: int = 128, seed: int = 0, batch_size: int = 8
) -> list[Batch]:
    """The first ``images`` training-split images of the training world, seen-class targets.

    The world is the recipe's (``seen_world``: no unseen class is drawn); labels index the sorted
    seen classes, as the model's training vocabulary does.

    Args:
        images: how many images.
        image_size: their side (the training resolution).
        seed: the shapes world's seed (the recipe's ``--seed``).
        batch_size: images per batch.

    Returns:
        Batches of ``images [B, 3, S, S]`` with panoptic ``targets``.

    Raises:
        ValueError: on a non-positive count or size.
    """
    images = check_positive_int("images", images)
    image_size = check_positive_int("image_size", image_size)
    batch_size = check_positive_int("batch_size", batch_size)
    world = ShapesWorldConfig(image_size=(image_size, image_size), seed=seed)
    seen_ids = sorted(world.split.seen_ids)
    data = ShapesDataset(seen_world(world), split="train", length=images)
    return [
        collate_seen([data[i] for i in range(s, min(s + batch_size, images))], seen_ids)
        for s in range(0, images, batch_size)
    ]


@torch.no_grad()
def calibrate_object_thresholds(
    predictor: PosSAMPredictor,
    batches: Sequence[Batch],
    *,
    classifiers: Sequence[str] = CLASSIFIERS,
    grid: Sequence[float] = THRESHOLD_GRID,
) -> dict[str, float]:
    """Per classifier, the object threshold of ``grid`` with the highest PQ on ``batches``.

    One forward pass per batch; every (classifier, threshold) pair only re-runs the panoptic
    post-processing. Scored with the predictor's current vocabulary, which the targets' labels
    must index (the training vocabulary for :func:`calibration_batches`). Ties go to the higher
    threshold (fewer, surer segments).

    Args:
        predictor: a predictor of the trained model.
        batches: batches with ``images [B, 3, H, W]`` and panoptic ``targets`` (training images).
        classifiers: which of :data:`~segblocks.zoo.possam.CLASSIFIERS` to calibrate.
        grid: candidate thresholds in ``[0, 1]``.

    Returns:
        ``{classifier: threshold}``.

    Raises:
        ValueError: on no batches, a batch without targets, an unknown classifier, an empty grid or
            a threshold outside ``[0, 1]``.
    """
    if not batches:
        raise ValueError("batches: expected at least one batch of training images, got none")
    if any(b.targets is None for b in batches):
        raise ValueError("batches: every batch needs panoptic targets, got one with targets=None")
    unknown = [c for c in classifiers if c not in CLASSIFIERS]
    if unknown or not classifiers:
        raise ValueError(
            f"classifiers: expected a non-empty subset of {CLASSIFIERS}, got {list(classifiers)}"
        )
    if not grid:
        raise ValueError("grid: expected at least one threshold, got none")
    bad = [t for t in grid if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0]
    if bad:
        raise ValueError(f"grid: expected thresholds in [0, 1], got {bad}")
    vocab = predictor.vocabulary
    categories = dict(enumerate(vocab.is_thing))
    model = predictor.model
    device = next(model.parameters()).device
    was_training, saved = model.training, (predictor.object_mask_threshold, predictor.object_mask_thresholds)
    model.eval()
    pq = {(c, t): PanopticQuality(categories=categories) for c in classifiers for t in grid}
    try:
        for batch in batches:
            assert batch.targets is not None
            truths = [targets_to_panoptic(t.to("cpu")) for t in batch.targets]
            outputs = predictor.infer(batch.images.to(device), vocab)
            size = (int(batch.images.shape[-2]), int(batch.images.shape[-1]))
            for name in classifiers:
                logits = predictor.classify(outputs, name)
                for t in grid:
                    predictor.object_mask_thresholds = {name: float(t)}
                    preds = predictor.postprocess(
                        outputs, logits, input_size=size, tasks=("panoptic",), classifier=name
                    )
                    for pred, truth in zip(preds, truths, strict=True):
                        assert pred.panoptic is not None
                        result = PanopticResult(
                            segment_map=pred.panoptic.segment_map.cpu(), segments=pred.panoptic.segments
                        )
                        pq[name, t].update(result, truth)
    finally:
        model.train(was_training)
        predictor.object_mask_threshold, predictor.object_mask_thresholds = saved
    best: dict[str, float] = {}
    for name in classifiers:
        scores = [(_finite(pq[name, t].compute().all.pq), float(t)) for t in grid]
        best[name] = max(scores)[1]  # highest PQ, then the higher threshold
        logger.info(
            "object threshold of %s: %.2f (PQ on %d calibration images: %s)",
            name,
            best[name],
            sum(len(b) for b in batches),
            ", ".join(f"{t:.2f}: {100 * q:.1f}" for q, t in scores),
        )
    return best


def calibrate(model: PosSAM, *, images: int = 100, image_size: int = 128, seed: int = 0) -> PosSAM:
    """Calibrate every classifier's object threshold on training images; store it in ``model.config``.

    Args:
        model: a trained PosSAM (its training vocabulary must be the seen classes of the world).
        images: training-split images to calibrate on (:func:`calibration_batches`).
        image_size: their side (the training resolution).
        seed: the shapes world's seed.

    Returns:
        ``model``, whose ``config.object_mask_thresholds`` now holds ``{classifier: threshold}``.

    Raises:
        ValueError: when the model has no config or its training vocabulary is not the world's
            seen classes.
    """
    if model.config is None:
        raise ValueError("model: expected a PosSAM built from a PosSAMConfig, got one with config=None")
    world = ShapesWorldConfig(image_size=(image_size, image_size), seed=seed)
    by_id = {c.id: c.name for c in CATEGORIES}
    seen = [by_id[i] for i in sorted(world.split.seen_ids)]
    if list(model.train_vocabulary.names) != seen:
        raise ValueError(
            f"model: expected the training vocabulary {seen} (the world's seen classes), "
            f"got {list(model.train_vocabulary.names)}"
        )
    batches = calibration_batches(images=images, image_size=image_size, seed=seed)
    thresholds = calibrate_object_thresholds(PosSAMPredictor(model), batches)
    model.config = dataclasses.replace(model.config, object_mask_thresholds=thresholds)
    return model
