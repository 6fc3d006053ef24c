"""PosSAM's calibration: per-classifier object thresholds (the config field, the predictor's use of
it, the calibration on training images: the threshold of the best PQ, ties to the higher one), the
ensemble exponents chosen on a proxy split of the seen classes, and the shipped file's header that
carries both; errors by class of problem."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from segblocks.data import CATEGORIES, ClassSplit, ShapesDataset, ShapesWorldConfig
from segblocks.heads import EXPONENT_GRID
from segblocks.structures import Batch, Targets
from segblocks.zoo.possam import PosSAM, PosSAMPredictor, get_config
from segblocks.zoo.possam.calibration import (
    THRESHOLD_GRID,
    calibrate,
    calibrate_exponents,
    calibrate_object_thresholds,
    calibration_batches,
)
from segblocks.zoo.possam.train import seen_world
from tests.zoo.test_possam import tiny_possam


@pytest.fixture(scope="module")
def model() -> PosSAM:
    # a learned void: a random query void may void every mask, and these tests need segments
    return tiny_possam(ldp_void="learned").eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    world = seen_world(ShapesWorldConfig(image_size=(64, 64), num_things=(1, 2)))
    ds = ShapesDataset(world, split="train", length=2)
    return torch.stack([ds[i].image for i in range(2)])


def _own_prediction_as_truth(
    model: PosSAM, images: torch.Tensor, threshold: float, predictor: PosSAMPredictor | None = None
) -> Batch:
    """A batch whose targets are the model's own panoptic result at ``threshold`` (PQ 100 there):
    LDP's, or the given predictor's default classifier's."""
    predictor = predictor or PosSAMPredictor(model, classifier="ldp")
    predictor.object_mask_threshold, predictor.object_mask_thresholds = threshold, {}
    targets = []
    for pred in predictor.predict(images, tasks=("panoptic",)):
        assert pred.panoptic is not None
        segments = pred.panoptic.segments
        seg_map = pred.panoptic.segment_map
        targets.append(
            Targets(
                masks=torch.stack([seg_map == s.id for s in segments])
                if segments
                else torch.zeros(0, *seg_map.shape, dtype=torch.bool),
                labels=torch.tensor([s.category_id for s in segments], dtype=torch.int64),
                is_thing=torch.tensor([s.is_thing for s in segments], dtype=torch.bool),
            )
        )
    assert any(len(t.labels) for t in targets)  # something to score
    return Batch(images=images, targets=targets)


def test_config_keeps_per_classifier_thresholds_and_checks_them() -> None:
    cfg = get_config("tiny", object_mask_thresholds={"mase": 0.25, "ldp": 1})
    assert cfg.object_mask_thresholds == {"mase": 0.25, "ldp": 1.0}
    assert get_config("tiny").object_mask_thresholds is None  # the default keeps the old behaviour
    with pytest.raises(ValueError, match=r"object_mask_thresholds: expected classifiers among .*'sam'"):
        get_config("tiny", object_mask_thresholds={"sam": 0.3})
    with pytest.raises(ValueError, match=r"object_mask_thresholds\['mase'\]: expected a value in \[0, 1\]"):
        get_config("tiny", object_mask_thresholds={"mase": 1.5})
    with pytest.raises(TypeError, match=r"object_mask_thresholds\['clip'\]: expected a number, got str"):
        get_config("tiny", object_mask_thresholds={"clip": "0.3"})
    with pytest.raises(TypeError, match="object_mask_thresholds: expected a mapping"):
        get_config("tiny", object_mask_thresholds=0.3)


def test_predictor_applies_each_classifiers_threshold(model: PosSAM, images: torch.Tensor) -> None:
    calibrated = dataclasses.replace(model.config, object_mask_thresholds={"ldp": 0.0, "clip": 1.0})
    model.config, original = calibrated, model.config
    try:
        predictor = PosSAMPredictor(model)
        assert predictor.object_threshold("ldp") == 0.0
        assert predictor.object_threshold("clip") == 1.0
        assert predictor.object_threshold("mase") == calibrated.object_mask_threshold  # not listed
        none_kept = predictor.predict(images, classifier="clip", tasks=("panoptic",))
        assert all(p.panoptic is not None and not p.panoptic.segments for p in none_kept)
        kept = predictor.predict(images, classifier="ldp", tasks=("panoptic",))
        assert any(p.panoptic is not None and p.panoptic.segments for p in kept)
        overridden = PosSAMPredictor(model, object_mask_threshold=0.7)  # one threshold for every classifier
        assert overridden.object_threshold("ldp") == overridden.object_threshold("clip") == 0.7
        with pytest.raises(ValueError, match="classifier: expected one of"):
            predictor.object_threshold("sam")
    finally:
        model.config = original


def test_calibration_picks_the_best_pq_and_ties_go_higher(model: PosSAM, images: torch.Tensor) -> None:
    batch = _own_prediction_as_truth(model, images, threshold=0.0)
    predictor = PosSAMPredictor(model)

    def pick(grid: tuple[float, ...]) -> dict[str, float]:
        return calibrate_object_thresholds(predictor, [batch], classifiers=("ldp",), grid=grid)

    assert pick((0.99, 0.0)) == {"ldp": 0.0}  # 0.0 reproduces the truth (PQ 100); 0.99 keeps nothing
    # the tiny random model's best class probability is >= 1 / 15 > 0.01: both keep the same segments
    assert pick((0.0, 0.01)) == {"ldp": 0.01}
    assert predictor.object_threshold("ldp") == model.config.object_mask_threshold  # left as it was
    every = calibrate_object_thresholds(predictor, [batch], grid=(0.0, 0.5))
    assert set(every) == {"ldp", "clip", "geometric", "mase"} and set(every.values()) <= {0.0, 0.5}


def test_calibration_rejects_bad_arguments(model: PosSAM, images: torch.Tensor) -> None:
    predictor = PosSAMPredictor(model)
    batch = _own_prediction_as_truth(model, images, threshold=0.0)
    with pytest.raises(ValueError, match="batches: expected at least one batch"):
        calibrate_object_thresholds(predictor, [])
    with pytest.raises(ValueError, match="batches: every batch needs panoptic targets"):
        calibrate_object_thresholds(predictor, [Batch(images=images)])
    with pytest.raises(ValueError, match="classifiers: expected a non-empty subset"):
        calibrate_object_thresholds(predictor, [batch], classifiers=("sam",))
    with pytest.raises(ValueError, match="grid: expected at least one threshold"):
        calibrate_object_thresholds(predictor, [batch], grid=())
    with pytest.raises(ValueError, match=r"grid: expected thresholds in \[0, 1\], got \[1.2\]"):
        calibrate_object_thresholds(predictor, [batch], grid=(0.5, 1.2))
    with pytest.raises(ValueError, match="images: expected an int >= 1"):
        calibration_batches(images=0)
    wrong_vocabulary = tiny_possam(vocabulary=["circle", "sky"], is_thing=[True, False])
    with pytest.raises(ValueError, match="model: expected the training vocabulary"):
        calibrate(wrong_vocabulary, images=1, image_size=64)
    wrong_vocabulary.config = None
    with pytest.raises(ValueError, match="model: expected a PosSAM built from a PosSAMConfig"):
        calibrate(wrong_vocabulary, images=1, image_size=64)


def test_calibrate_stores_grid_thresholds_from_training_images(model: PosSAM) -> None:
    batches = calibration_batches(images=3, image_size=64, batch_size=2)
    assert [len(b) for b in batches] == [2, 1] and all(b.targets is not None for b in batches)
    unseen = {c.id for c in CATEGORIES if c.name in ShapesWorldConfig().split.unseen}
    seen_count = len(model.train_vocabulary.names)
    for b in batches:  # labels index the training vocabulary; the training world draws no unseen class
        assert b.targets is not None
        assert all(((t.labels >= 0) & (t.labels < seen_count)).all() for t in b.targets)
        assert not any(seg.category_id in unseen for s in b.extras["samples"] for seg in s.segments)
    original = model.config
    try:
        calibrate(model, images=2, image_size=64)
        assert model.config is not None and model.config.object_mask_thresholds is not None
        assert set(model.config.object_mask_thresholds.values()) <= set(THRESHOLD_GRID)
    finally:
        model.config = original


def test_shipped_export_carries_the_thresholds(tmp_path: Path) -> None:
    from segblocks.zoo.possam import load_possam
    from segblocks.zoo.possam.shipped import THRESHOLDS_KEY, export_trained_weights, load_shipped_possam

    model = load_possam(variant="tiny")
    assert model.config is not None
    plain = export_trained_weights(model, tmp_path / "plain.safetensors")
    assert load_shipped_possam(plain).config.object_mask_thresholds is None  # type: ignore[union-attr]
    model.config = dataclasses.replace(model.config, object_mask_thresholds={"mase": 0.2, "ldp": 0.35})
    path = export_trained_weights(model, tmp_path / "w.safetensors", metadata={"note": "test"})
    loaded = load_shipped_possam(path)
    assert loaded.config is not None and loaded.config.object_mask_thresholds == {"mase": 0.2, "ldp": 0.35}
    assert PosSAMPredictor(loaded).object_threshold("mase") == 0.2
    with pytest.raises(ValueError, match=f"metadata: '{THRESHOLDS_KEY}' is written from model.config"):
        export_trained_weights(model, tmp_path / "x.safetensors", metadata={THRESHOLDS_KEY: "{}"})
    state = load_file(str(path))
    for header, match in (
        ("not json", "malformed calibration"),
        (json.dumps({"mase": 2.0}), r"expected a value in \[0, 1\]"),
    ):
        bad = tmp_path / "bad.safetensors"
        save_file(state, str(bad), metadata={THRESHOLDS_KEY: header})
        with pytest.raises(ValueError, match=match):
            load_shipped_possam(bad)


def test_shipped_file_keeps_the_ldp_options(tmp_path: Path) -> None:
    from segblocks.zoo.possam import load_possam
    from segblocks.zoo.possam.config import get_config
    from segblocks.zoo.possam.shipped import (
        LINEAR_VOID,
        RESIDUAL_GATE,
        export_trained_weights,
        load_shipped_possam,
    )

    plain = load_shipped_possam(
        export_trained_weights(
            load_possam(variant=get_config("tiny", ldp_void="learned")), tmp_path / "plain.safetensors"
        )
    )
    assert not plain.ldp.clip_residual and plain.ldp.class_head.void == "learned"
    model = load_possam(variant=get_config("tiny", ldp_clip_residual=True, ldp_void="linear"))
    assert model.ldp.residual_gate is not None
    with torch.no_grad():
        model.ldp.residual_gate.fill_(0.5)
    loaded = load_shipped_possam(export_trained_weights(model, tmp_path / "w.safetensors"))
    assert loaded.ldp.clip_residual and loaded.config is not None and loaded.config.ldp_clip_residual
    assert loaded.ldp.residual_gate is not None and float(loaded.ldp.residual_gate.detach()) == 0.5
    assert loaded.config.ldp_void == "linear" and loaded.ldp.class_head.void_linear is not None
    assert {RESIDUAL_GATE, LINEAR_VOID} <= set(load_file(str(tmp_path / "w.safetensors")))
    query = load_shipped_possam(
        export_trained_weights(
            load_possam(variant=get_config("tiny", ldp_void="query")), tmp_path / "q.safetensors"
        )
    )
    assert (
        query.config is not None
        and query.config.ldp_void == "query"
        and query.ldp.class_head.void_reads_input
    )


def _mixed_vocabulary(model: PosSAM) -> tuple[list[str], list[bool]]:
    """The training vocabulary plus two names it never trained on (flagged unseen)."""
    names = [*model.train_vocabulary.names, "heart", "sand"]
    return names, [*model.train_vocabulary.is_thing, True, False]


def test_exponents_pick_a_pair_that_reproduces_the_truth(model: PosSAM, images: torch.Tensor) -> None:
    names, is_thing = _mixed_vocabulary(model)
    predictor = PosSAMPredictor(model, vocabulary=names, is_thing=is_thing)
    ldp = PosSAMPredictor(model, vocabulary=names, is_thing=is_thing, classifier="ldp")
    batch = _own_prediction_as_truth(model, images, threshold=0.0, predictor=ldp)
    # the fixed ensemble with CLIP's share 0 is LDP's distribution: PQ 100 against LDP's own result
    best, scores = calibrate_exponents(
        predictor, [batch], classifier="geometric", grid=(0.0, 1.0), thresholds=(0.0,)
    )
    assert best == (0.0, 0.0) and scores[best] == pytest.approx(1.0)
    assert set(scores) == {(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)}
    assert max(scores[0.0, 1.0], scores[1.0, 0.0], scores[1.0, 1.0]) < 1.0  # CLIP's names differ
    assert predictor.geometric.alpha == model.config.alpha  # the predictor's own blocks are left as they were


def test_exponents_reject_bad_arguments(model: PosSAM, images: torch.Tensor) -> None:
    batch = _own_prediction_as_truth(model, images, threshold=0.0)
    all_seen = PosSAMPredictor(model)
    with pytest.raises(ValueError, match="predictor: expected a vocabulary with seen and unseen classes"):
        calibrate_exponents(all_seen, [batch])
    names, is_thing = _mixed_vocabulary(model)
    predictor = PosSAMPredictor(model, vocabulary=names, is_thing=is_thing)
    with pytest.raises(ValueError, match="classifier: expected 'mase' or 'geometric', got 'clip'"):
        calibrate_exponents(predictor, [batch], classifier="clip")
    with pytest.raises(ValueError, match=r"grid: expected exponents in \[0, 1\], got \[1.5\]"):
        calibrate_exponents(predictor, [batch], grid=(0.0, 1.5))
    with pytest.raises(ValueError, match="thresholds: expected at least one threshold"):
        calibrate_exponents(predictor, [batch], thresholds=())
    with pytest.raises(ValueError, match="batches: expected at least one batch"):
        calibrate_exponents(predictor, [])


def test_calibrate_with_a_proxy_stores_its_exponents(model: PosSAM) -> None:
    seen = [c.name for c in CATEGORIES if c.id in ClassSplit().proxy().seen_ids]
    proxy = tiny_possam(vocabulary=seen, is_thing=[c.is_thing for c in CATEGORIES if c.name in seen]).eval()
    original = model.config
    try:
        calibrate(model, proxy=proxy, images=2, image_size=64)
        assert model.config is not None and model.config.ensemble_exponents is not None
        assert set(model.config.ensemble_exponents) == {"mase", "geometric"}
        assert {v for pair in model.config.ensemble_exponents.values() for v in pair} <= set(EXPONENT_GRID)
        assert model.config.object_mask_thresholds is not None
        assert (model.config.alpha, model.config.beta) == (0.4, 0.8)  # the defaults stay FC-CLIP's
    finally:
        model.config = original
    with pytest.raises(ValueError, match="proxy: expected the training vocabulary"):
        calibrate(model, proxy=model, images=1, image_size=64)


def test_config_keeps_per_ensemble_exponents_and_the_predictor_uses_them(model: PosSAM) -> None:
    cfg = get_config("tiny", ensemble_exponents={"mase": [1, 1.0]})
    assert cfg.ensemble_exponents == {"mase": (1.0, 1.0)}
    with pytest.raises(ValueError, match=r"ensemble_exponents: expected ensembles among .*'clip'"):
        get_config("tiny", ensemble_exponents={"clip": (0.4, 0.8)})
    with pytest.raises(ValueError, match=r"ensemble_exponents\['mase'\]: expected exponents in \[0, 1\]"):
        get_config("tiny", ensemble_exponents={"mase": (0.4, 1.2)})
    with pytest.raises(TypeError, match=r"ensemble_exponents\['mase'\]: expected a pair of numbers"):
        get_config("tiny", ensemble_exponents={"mase": 0.4})
    with pytest.raises(TypeError, match="ensemble_exponents: expected a mapping"):
        get_config("tiny", ensemble_exponents=(0.4, 0.8))
    original = model.config
    try:
        model.config = dataclasses.replace(original, ensemble_exponents={"geometric": (0.8, 1.0)})
        predictor = PosSAMPredictor(model)
        assert (predictor.geometric.alpha, predictor.geometric.beta) == (0.8, 1.0)
        assert (predictor.mase.alpha, predictor.mase.beta) == (0.4, 0.8)  # not listed: alpha, beta
    finally:
        model.config = original


def test_shipped_export_carries_the_exponents(tmp_path: Path) -> None:
    from segblocks.zoo.possam import load_possam
    from segblocks.zoo.possam.shipped import EXPONENTS_KEY, export_trained_weights, load_shipped_possam

    model = load_possam(variant="tiny")
    assert model.config is not None
    plain = load_shipped_possam(export_trained_weights(model, tmp_path / "plain.safetensors"))
    assert plain.config is not None and plain.config.ensemble_exponents is None
    exponents = {"mase": (1.0, 1.0), "geometric": (0.8, 1.0)}
    model.config = dataclasses.replace(model.config, ensemble_exponents=exponents)
    loaded = load_shipped_possam(export_trained_weights(model, tmp_path / "w.safetensors"))
    assert loaded.config is not None and loaded.config.ensemble_exponents == exponents
    assert PosSAMPredictor(loaded).geometric.alpha == 0.8
    with pytest.raises(ValueError, match=f"metadata: '{EXPONENTS_KEY}' is written from model.config"):
        export_trained_weights(model, tmp_path / "x.safetensors", metadata={EXPONENTS_KEY: "{}"})
    state = load_file(str(tmp_path / "w.safetensors"))
    for header in ("not json", json.dumps({"mase": 0.4}), "[1]"):
        bad = tmp_path / "bad.safetensors"
        save_file(state, str(bad), metadata={EXPONENTS_KEY: header})
        with pytest.raises(ValueError, match="malformed calibration"):
            load_shipped_possam(bad)
