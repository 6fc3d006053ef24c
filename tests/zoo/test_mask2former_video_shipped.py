"""Regression guard of the shipped world-scale Mask2Former-VIS (the card's model): on 4 val clips of 8
frames in linked windows of 2 it measured VOS J&F 75.2, VPQ stuff 97.1, VSS mIoU 43.0 (things are
segmented but not yet named: VPQ things 0, see the card). Corrupt or foreign files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from segblocks.data import ShapesClipDataset, ShapesWorldConfig
from segblocks.engine import CheckpointError
from segblocks.zoo.mask2former import Mask2FormerVideoPredictor
from segblocks.zoo.mask2former.evaluate_video import evaluate_video
from segblocks.zoo.mask2former.shipped import (
    SHIPPED_VIDEO_WEIGHTS,
    load_shipped_mask2former_video,
    shipped_summary,
)


def test_shipped_video_weights_keep_their_scores() -> None:
    model = load_shipped_mask2former_video()
    clips = ShapesClipDataset(ShapesWorldConfig(image_size=(96, 96)), split="val", length=4, num_frames=8)
    metrics = evaluate_video(Mask2FormerVideoPredictor(model, window=2), (clips[i] for i in range(4)))
    assert metrics.vos_jf >= 70.0, metrics
    assert metrics.vpq_stuff >= 90.0 and metrics.vss_miou >= 38.0, metrics
    assert shipped_summary()["step"] == 3000


def test_bad_weight_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_shipped_mask2former_video(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(SHIPPED_VIDEO_WEIGHTS.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_shipped_mask2former_video(corrupt)
    from segblocks.zoo.possam.shipped import SHIPPED_WEIGHTS

    with pytest.raises(CheckpointError, match="does not fit Mask2Former"):
        load_shipped_mask2former_video(SHIPPED_WEIGHTS)
