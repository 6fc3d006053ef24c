"""OMG-Seg's ensemble exponents chosen on a proxy split: the calibration images (training world,
labels of the training vocabulary), the choice (the pair that reproduces a known truth), and errors
by class of problem."""

from __future__ import annotations

import pytest
import torch

from segblocks.data import ClassSplit
from segblocks.heads import GeometricEnsemble
from segblocks.inference.targets import targets_to_panoptic
from segblocks.structures import PanopticResult, Targets
from segblocks.zoo.omg_seg import OMGSeg, OMGSegPredictor
from segblocks.zoo.omg_seg.calibration import calibrate_exponents, calibration_images
from tests.zoo.test_omg_seg import NAMES, THINGS, tiny


@pytest.fixture(scope="module")
def model() -> OMGSeg:
    return tiny(class_void="zero").eval()  # a random learned void takes every query


def _own_panoptic(predictor: OMGSegPredictor, image: torch.Tensor) -> PanopticResult:
    """The predictor's own panoptic result as ground truth (PQ 100 for the same predictor)."""
    pan = predictor.segment_images(image, ("panoptic",), predictor.vocabulary, "ensemble")[0].panoptic
    assert pan is not None and pan.segments
    seg_map = pan.segment_map
    targets = Targets(
        masks=torch.stack([seg_map == s.id for s in pan.segments]),
        labels=torch.tensor([s.category_id for s in pan.segments]),
        is_thing=torch.tensor([s.is_thing for s in pan.segments]),
    )
    return targets_to_panoptic(targets)


def test_calibration_images_hold_training_classes_only() -> None:
    pairs = calibration_images(images=3, image_size=64)
    seen = len(ClassSplit().seen_ids)
    assert len(pairs) == 3 and all(image.shape == (1, 3, 64, 64) for image, _ in pairs)
    assert all(0 <= s.category_id < seen for _, truth in pairs for s in truth.segments)
    with pytest.raises(ValueError, match="images: expected an int >= 1"):
        calibration_images(images=0)


def test_exponents_pick_the_pair_that_reproduces_the_truth(model: OMGSeg) -> None:
    predictor = OMGSegPredictor(model, vocabulary=NAMES, is_thing=THINGS, object_mask_threshold=0.0)
    assert 0 < int(predictor.vocabulary.seen.sum()) < len(NAMES)  # the first 6 trained, the rest not
    predictor.ensemble = GeometricEnsemble(alpha=0.0, beta=0.0)  # OMG-Seg's own distribution
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    truth = _own_panoptic(predictor, image)
    predictor.ensemble = saved = GeometricEnsemble()
    best, scores = calibrate_exponents(predictor, [(image, truth)], grid=(0.0, 1.0))
    assert best == (0.0, 0.0) and scores[best] == pytest.approx(1.0)
    assert set(scores) == {(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)} and scores[1.0, 1.0] < 1.0
    assert predictor.ensemble is saved  # left as it was


def test_exponents_reject_bad_arguments(model: OMGSeg) -> None:
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    mixed = OMGSegPredictor(model, vocabulary=NAMES, is_thing=THINGS, object_mask_threshold=0.0)
    truth = _own_panoptic(mixed, image)
    with pytest.raises(ValueError, match="images: expected at least one"):
        calibrate_exponents(mixed, [])
    with pytest.raises(ValueError, match=r"grid: expected exponents in \[0, 1\]"):
        calibrate_exponents(mixed, [(image, truth)], grid=(-0.2,))
    with pytest.raises(ValueError, match="predictor: expected a vocabulary with seen and unseen classes"):
        calibrate_exponents(OMGSegPredictor(model), [(image, truth)])
