"""Calibrate PosSAM on training images (never on val): object thresholds and ensemble exponents.

**Object thresholds.** The panoptic post-processing keeps a query when its best class probability
passes the object threshold. How probable a right answer is depends on the classifier (MASE moves
mass to void by the predicted IoU; an ensemble of two classifiers is flatter than either), so one
fixed threshold keeps well-named masks for one classifier and drops them for another. The rule fixed
here, before any val image is scored: for each classifier, the threshold of :data:`THRESHOLD_GRID`
that maximises PQ on training-split images of the training world (the unseen classes absent, the
training vocabulary), a tie going to the higher threshold.

**Ensemble exponents.** CLIP's share of the ensembles is ``alpha`` for seen and ``beta`` for unseen
classes; scoring ``beta`` needs classes the model never trained on, and the unseen ones must stay
unseen. So the exponents are chosen by cross-validation over classes: a *proxy* model, trained by
the same recipe with a few more seen classes held out
(:meth:`ClassSplit.proxy <segblocks.data.ClassSplit.proxy>`), is scored on training images of the
seen classes with those few flagged unseen (:func:`calibrate_exponents`).

:func:`calibrate` stores the results in the model's config, where
:class:`~segblocks.zoo.possam.PosSAMPredictor` and the shipped-weights export find them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import torch

from segblocks._validation import check_positive_int, check_unit_grid
from segblocks.data import CATEGORIES, ClassSplit, ShapesDataset, ShapesWorldConfig
from segblocks.heads import (
    EXPONENT_GRID,
    GeometricEnsemble,
    MaskAwareSelectiveEnsemble,
    best_exponents,
    check_seen_and_unseen,
    exponent_pairs,
)
from segblocks.inference.targets import targets_to_panoptic
from segblocks.metrics import PanopticQuality
from segblocks.structures import Batch, PanopticResult
from segblocks.zoo.possam.config import ENSEMBLE_NAMES
from segblocks.zoo.possam.model import PosSAM
from segblocks.zoo.possam.outputs import CLASSIFIERS, classify_outputs
from segblocks.zoo.possam.predictor import PosSAMPredictor
from segblocks.zoo.possam.train import collate_seen, seen_world

__all__ = [
    "THRESHOLD_GRID",
    "calibrate",
    "calibrate_exponents",
    "calibrate_object_thresholds",
    "calibration_batches",
]

logger = logging.getLogger(__name__)

#: Candidate object thresholds, 0.05 to 0.80 in steps of 0.05.
THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(1, 17))


def _finite(value: float) -> float:
    return value if not math.isnan(value) else float("-inf")  # nothing to score ranks last


def _seen_names(split: ClassSplit) -> list[str]:
    return [c.name for c in CATEGORIES if c.id in split.seen_ids]


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


def _check_batches(batches: Sequence[Batch]) -> None:
    if not batches:
        raise ValueError("batches: expected at least one batch of training images, got none")
    if any(b.targets is None for b in batches):
        raise ValueError("batches: every batch needs panoptic targets, got one with targets=None")


@torch.no_grad()
def _pq_grid(
    predictor: PosSAMPredictor,
    batches: Sequence[Batch],
    settings: Sequence[tuple[str, GeometricEnsemble, MaskAwareSelectiveEnsemble]],
    grid: Sequence[float],
) -> list[list[float]]:
    """PQ (all classes, NaN -> -inf) of every (setting, threshold); one forward pass per batch.

    A setting is ``(classifier, geometric ensemble, MASE)``: the blocks ``classify`` uses.
    """
    vocab = predictor.vocabulary
    categories = dict(enumerate(vocab.is_thing))
    model = predictor.model
    device = next(model.parameters()).device
    was_training, saved = model.training, (predictor.object_mask_threshold, predictor.object_mask_thresholds)
    model.eval()
    pq = [[PanopticQuality(categories=categories) for _ in grid] for _ in settings]
    try:
        for batch in batches:
            assert batch.targets is not None
            truths = [targets_to_panoptic(t.to("cpu")) for t in batch.targets]
            outputs = predictor.infer(batch.images.to(device), vocab)
            size = (int(batch.images.shape[-2]), int(batch.images.shape[-1]))
            for row, (name, geometric, mase) in zip(pq, settings, strict=True):
                logits = classify_outputs(outputs, name, geometric=geometric, mase=mase)
                for metric, t in zip(row, grid, strict=True):
                    predictor.object_mask_thresholds = {name: float(t)}
                    preds = predictor.postprocess(
                        outputs, logits, input_size=size, tasks=("panoptic",), classifier=name
                    )
                    for pred, truth in zip(preds, truths, strict=True):
                        assert pred.panoptic is not None
                        result = PanopticResult(
                            segment_map=pred.panoptic.segment_map.cpu(), segments=pred.panoptic.segments
                        )
                        metric.update(result, truth)
    finally:
        model.train(was_training)
        predictor.object_mask_threshold, predictor.object_mask_thresholds = saved
    return [[_finite(m.compute().all.pq) for m in row] for row in pq]


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
    _check_batches(batches)
    unknown = [c for c in classifiers if c not in CLASSIFIERS]
    if unknown or not classifiers:
        raise ValueError(
            f"classifiers: expected a non-empty subset of {CLASSIFIERS}, got {list(classifiers)}"
        )
    check_unit_grid("grid", grid, "threshold")
    settings = [(name, predictor.geometric, predictor.mase) for name in classifiers]
    table = _pq_grid(predictor, batches, settings, grid)
    best: dict[str, float] = {}
    for name, row in zip(classifiers, table, strict=True):
        best[name] = max(zip(row, (float(t) for t in grid)))[1]  # highest PQ, then the higher threshold
        logger.info(
            "object threshold of %s: %.2f (PQ on %d calibration images: %s)",
            name,
            best[name],
            sum(len(b) for b in batches),
            ", ".join(f"{t:.2f}: {100 * q:.1f}" for q, t in zip(row, grid)),
        )
    return best


@torch.no_grad()
def calibrate_exponents(
    predictor: PosSAMPredictor,
    batches: Sequence[Batch],
    *,
    classifier: str = "mase",
    grid: Sequence[float] = EXPONENT_GRID,
    thresholds: Sequence[float] = THRESHOLD_GRID,
) -> tuple[tuple[float, float], dict[tuple[float, float], float]]:
    """The ensemble exponents ``(alpha, beta)`` of ``grid x grid`` with the highest PQ on ``batches``.

    Meant for a *proxy* model (:meth:`ClassSplit.proxy <segblocks.data.ClassSplit.proxy>`): its
    vocabulary flags as unseen classes it never trained on but that the batches' targets hold, so
    ``beta`` is scored without any truly unseen class. Each pair is scored at its best object
    threshold of ``thresholds``; ties go to the pair nearest FC-CLIP's ``(0.4, 0.8)``.

    Args:
        predictor: a predictor of the proxy model whose vocabulary the targets' labels index.
        batches: batches with ``images [B, 3, H, W]`` and panoptic ``targets``.
        classifier: ``"mase"`` or ``"geometric"``.
        grid: candidate exponents in ``[0, 1]`` (CLIP's share of the geometric mean).
        thresholds: candidate object thresholds in ``[0, 1]``.

    Returns:
        ``((alpha, beta), {(alpha, beta): PQ in [0, 1]})``.

    Raises:
        ValueError: on no batches, a batch without targets, a classifier that is not an ensemble,
            a bad grid, or a vocabulary without both seen and unseen classes.
    """
    _check_batches(batches)
    if classifier not in ("mase", "geometric"):
        raise ValueError(f"classifier: expected 'mase' or 'geometric', got {classifier!r}")
    pairs = exponent_pairs(grid)
    check_unit_grid("thresholds", thresholds, "threshold")
    check_seen_and_unseen(predictor.vocabulary.seen)
    use_iou = predictor.mase.use_iou
    settings = [
        (
            classifier,
            GeometricEnsemble(alpha=a, beta=b),
            MaskAwareSelectiveEnsemble(alpha=a, beta=b, use_iou=use_iou),
        )
        for a, b in pairs
    ]
    scores = {pair: max(row) for pair, row in zip(pairs, _pq_grid(predictor, batches, settings, thresholds))}
    best = best_exponents(scores)
    logger.info(
        "exponents of %s: alpha %.1f, beta %.1f (PQ %.1f on %d images; FC-CLIP's 0.4 / 0.8: %.1f)",
        classifier,
        *best,
        100 * scores[best],
        sum(len(b) for b in batches),
        100 * scores.get((0.4, 0.8), float("nan")),
    )
    return best, scores


def calibrate(
    model: PosSAM,
    *,
    proxy: PosSAM | None = None,
    images: int = 100,
    image_size: int = 128,
    seed: int = 0,
) -> PosSAM:
    """Calibrate on training images; store the results in ``model.config``.

    With a ``proxy`` (the same recipe trained on ``ClassSplit.proxy()``'s seen classes), first each
    ensemble's exponents: the ``(alpha, beta)`` of its best PQ on the proxy
    (:func:`calibrate_exponents`). Then every classifier's object threshold on ``model`` itself.

    Args:
        model: a trained PosSAM (its training vocabulary must be the seen classes of the world).
        proxy: optional proxy model (training vocabulary: the seen classes of ``world.split.proxy()``).
        images: training-split images to calibrate on (:func:`calibration_batches`).
        image_size: their side (the training resolution).
        seed: the shapes world's seed.

    Returns:
        ``model``, whose ``config.object_mask_thresholds`` now holds ``{classifier: threshold}``
        (and, with a proxy, ``config.ensemble_exponents`` ``{ensemble: (alpha, beta)}``).

    Raises:
        ValueError: when a model has no config or the wrong training vocabulary.
    """
    world = ShapesWorldConfig(image_size=(image_size, image_size), seed=seed)
    seen = _seen_names(world.split)
    for name, m, expected in (
        ("model", model, seen),
        ("proxy", proxy, _seen_names(world.split.proxy())),
    ):
        if m is None:
            continue
        if m.config is None:
            raise ValueError(f"{name}: expected a PosSAM built from a PosSAMConfig, got one with config=None")
        if list(m.train_vocabulary.names) != expected:
            raise ValueError(
                f"{name}: expected the training vocabulary {expected}, got {list(m.train_vocabulary.names)}"
            )
    assert model.config is not None
    batches = calibration_batches(images=images, image_size=image_size, seed=seed)
    if proxy is not None:
        is_thing = [c.is_thing for c in CATEGORIES if c.name in seen]
        scorer = PosSAMPredictor(proxy, vocabulary=seen, is_thing=is_thing)
        exponents = {
            name: calibrate_exponents(scorer, batches, classifier=name)[0] for name in ENSEMBLE_NAMES
        }
        model.config = dataclasses.replace(model.config, ensemble_exponents=exponents)
    thresholds = calibrate_object_thresholds(PosSAMPredictor(model), batches)
    model.config = dataclasses.replace(model.config, object_mask_thresholds=thresholds)
    return model
