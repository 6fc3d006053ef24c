"""Choose OMG-Seg's ensemble exponents without an unseen class: a proxy split of the training classes.

The ensemble gives the frozen CLIP the exponent ``alpha`` on classes of the training vocabulary and
``beta`` on the others. Scoring ``beta`` needs classes the model never trained on, and the held-out
classes must stay unseen; so the exponents are chosen by cross-validation over classes. A *proxy*
model, trained by the same recipe with a few more training classes held out
(:meth:`ClassSplit.proxy <segblocks.data.ClassSplit.proxy>`, ``segblocks train omg-seg
--unseen-classes ...``), segments training images of the training classes; the classes it did not
train on are flagged unseen, and each ``(alpha, beta)`` is scored by panoptic PQ
(:func:`calibrate_exponents`). The world configuration ships the pair found so (see the card).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from segblocks._validation import check_positive_int
from segblocks.data import ClassSplit, ShapesDataset, ShapesExample, ShapesWorldConfig
from segblocks.heads import (
    EXPONENT_GRID,
    GeometricEnsemble,
    best_exponents,
    check_seen_and_unseen,
    exponent_pairs,
)
from segblocks.inference.targets import targets_to_panoptic
from segblocks.metrics import PanopticQuality
from segblocks.structures import PanopticResult
from segblocks.zoo.omg_seg.cotraining import relabel, seen_world
from segblocks.zoo.omg_seg.predictor import OMGSegPredictor

__all__ = ["calibrate_exponents", "calibration_images"]

logger = logging.getLogger(__name__)


def calibration_images(
    *, images: int = 100, image_size: int = 96, seed: int = 0, split: ClassSplit | None = None
) -> list[tuple[torch.Tensor, PanopticResult]]:
    """The first ``images`` training-split images of the training world, with panoptic truth.

    The world draws no class of ``split``'s unseen ones; labels index its sorted seen classes
    (the order of the training vocabulary).

    Args:
        images: how many images.
        image_size: their side (the training resolution).
        seed: the shapes world's seed (the recipe's ``--seed``).
        split: the real split (default: the world's).

    Returns:
        ``(image [1, 3, S, S], panoptic truth)`` per image.

    Raises:
        ValueError: on a non-positive count or size.
    """
    images = check_positive_int("images", images)
    image_size = check_positive_int("image_size", image_size)
    world = ShapesWorldConfig(image_size=(image_size, image_size), seed=seed, split=split or ClassSplit())
    seen_ids = sorted(world.split.seen_ids)
    data = ShapesDataset(seen_world(world), split="train", length=images)
    examples: list[ShapesExample] = [data[i] for i in range(images)]
    return [(ex.image[None], targets_to_panoptic(relabel(ex.targets, seen_ids))) for ex in examples]


@torch.no_grad()
def calibrate_exponents(
    predictor: OMGSegPredictor,
    images: Sequence[tuple[torch.Tensor, PanopticResult]],
    *,
    grid: Sequence[float] = EXPONENT_GRID,
) -> tuple[tuple[float, float], dict[tuple[float, float], float]]:
    """The ensemble exponents ``(alpha, beta)`` of ``grid x grid`` with the highest panoptic PQ.

    Meant for a proxy model: the predictor's vocabulary (which the truths' labels index) flags as
    unseen classes the model never trained on. Ties go to the pair nearest FC-CLIP's ``(0.4, 0.8)``
    (:func:`~segblocks.heads.best_exponents`). The predictor's own ensemble is left as it was.

    Args:
        predictor: a predictor of the proxy model, with the scoring vocabulary.
        images: ``(image [1, 3, H, W], panoptic truth)`` pairs (:func:`calibration_images`).
        grid: candidate exponents in ``[0, 1]``.

    Returns:
        ``((alpha, beta), {(alpha, beta): PQ in [0, 1]})``.

    Raises:
        ValueError: on no images, a bad grid, or a vocabulary without both seen and unseen classes.
    """
    if not images:
        raise ValueError("images: expected at least one (image, truth) pair, got none")
    pairs = exponent_pairs(grid)
    vocab = predictor.vocabulary
    check_seen_and_unseen(vocab.seen)
    model, saved = predictor.model, predictor.ensemble
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    text = vocab.text_embeddings.to(device)
    pq = {pair: PanopticQuality(categories=dict(enumerate(vocab.is_thing))) for pair in pairs}
    try:
        for image, truth in images:  # one forward pass an image; each pair re-classifies its masks
            final, clip_features = model.forward_with_clip(image.to(device), None, text)
            size = (int(image.shape[-2]), int(image.shape[-1]))
            for (alpha, beta), metric in pq.items():
                predictor.ensemble = GeometricEnsemble(alpha=alpha, beta=beta)
                logits = predictor.classify(final, clip_features, vocab, "ensemble")
                pred = predictor.postprocess_images(final, logits, vocab, size, ("panoptic",))[0].panoptic
                assert pred is not None
                metric.update(
                    PanopticResult(segment_map=pred.segment_map.cpu(), segments=pred.segments), truth
                )
    finally:
        predictor.ensemble = saved
        model.train(was_training)
    scores = {pair: metric.compute().all.pq for pair, metric in pq.items()}  # NaN ranks last
    best = best_exponents(scores)
    logger.info(
        "ensemble exponents: alpha %.1f, beta %.1f (PQ %.1f on %d images; FC-CLIP's 0.4 / 0.8: %.1f)",
        *best,
        100 * scores[best],
        len(images),
        100 * scores.get((0.4, 0.8), float("nan")),
    )
    return best, scores
