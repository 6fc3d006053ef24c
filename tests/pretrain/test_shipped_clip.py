"""Regression guard: the shipped tiny CLIP still classifies the shapes world zero-shot.

The thresholds sit a few points under what the shipped file measured on these 24 val images
(see zoo/shapes-clip-tiny/README.md); a change to the backbone code, the tokenizer, the prompt
templates or the mask pooling that degrades the model fails here.
"""

from __future__ import annotations

import pytest

from segblocks.backbones import OpenCLIPBackbone, find_weights
from segblocks.data.shapes import ShapesWorld
from segblocks.pretrain.clip_eval import evaluate_zero_shot
from segblocks.pretrain.shapes_clip import MODEL_NAME

# Measured on the first 24 val images with the shipped file (shapes_plain_os16 tower, runs/clip_v13),
# crops at 32 px as trained: thing crops 94.4 % (unseen 100), stuff regions 100 %, mask pooling
# 87.1 % (unseen 79.3; 72 things, 52 stuff regions, 124 segments; chance 8.3, 16.7 and 5.6 %).
THRESHOLDS = {
    "thing_top1": 89.0,
    "thing_top1_unseen": 90.0,
    "stuff_top1": 95.0,
    "mask_pool_top1": 82.0,
    "mask_pool_top1_unseen": 72.0,
}


def test_shipped_clip_is_found_by_tag() -> None:
    path = find_weights(MODEL_NAME, "shapes")
    assert path is not None and path.stat().st_size < 9_000_000


def test_shipped_clip_zero_shot_accuracy() -> None:
    clip = OpenCLIPBackbone(MODEL_NAME, pretrained="shapes")
    assert clip.load_report.ok
    result = evaluate_zero_shot(clip, ShapesWorld(split="val"), num_images=24, crop_size=32).as_dict()
    for name, threshold in THRESHOLDS.items():
        assert result[name] >= threshold, f"{name}: {result[name]:.1f} < {threshold} ({result})"
    assert result["num_things"] > 50 and result["num_segments"] > 100


def test_unknown_tag_names_the_shipped_one() -> None:
    with pytest.raises(ValueError, match="segblocks tags: \\['shapes'\\]"):
        OpenCLIPBackbone(MODEL_NAME, pretrained="no-such-tag")
