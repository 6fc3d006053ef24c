"""The shipped world-scale Uni-OVSeg keeps its measured accuracy (regression guard)."""

from __future__ import annotations

import pytest

from segblocks.data import ShapesWorld
from segblocks.zoo.uni_ovseg.evaluate import evaluate_card
from segblocks.zoo.uni_ovseg.shipped import SHIPPED_WEIGHTS, load_shipped_uni_ovseg, shipped_summary


@pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="no shipped weights in this checkout")
def test_shipped_weights_keep_their_measured_accuracy() -> None:
    """On the first 8 val images (measured: PQ 32.6 adapted / 29.4 frozen CLIP, stuff PQ 92.3,
    1-point oracle mIoU 52.6, 1-box 33.0)."""
    model = load_shipped_uni_ovseg()
    samples = [ShapesWorld(split="val").sample(i) for i in range(8)]
    rows = evaluate_card(model, samples, compare_sam=False)
    assert rows["open_vocab"]["pq"] >= 29.0 and rows["open_vocab"]["pq_stuff"] >= 85.0
    assert rows["open_vocab"]["pq"] >= rows["open_vocab_frozen_clip"]["pq"]  # the adapter helps here
    assert rows["prompt"]["point_oracle_miou"] >= 48.0 and rows["prompt"]["box_miou"] >= 28.0
    summary = shipped_summary()
    assert summary["caption"] == "clean" and summary["ensemble"] is True
    assert summary["stage1_steps"] > 0 and summary["stage2_steps"] > 0


@pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="no shipped weights in this checkout")
def test_demo_runs_the_shipped_model(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from segblocks.cli import main

    argv = ["demo", "--out", str(tmp_path), "--num-images", "1", "--size", "64", "--no-possam", "--no-video"]
    assert main(argv) == 0
    assert (tmp_path / "uni_ovseg_00.png").is_file()
    assert "Uni-OVSeg on these images (18 class names): PQ" in capsys.readouterr().out
