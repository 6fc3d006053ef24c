"""Video result writers: what they write is read and scored by the file evaluators (a perfect prediction
scores 1), and bad predictions fail before any file is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segblocks.data.formats import (
    VideoObjectRecord,
    VideoPanopticPrediction,
    write_davis,
    write_davis_results,
    write_vipseg_results,
)
from segblocks.evaluation import evaluate_davis, evaluate_vpq


def _maps() -> np.ndarray:
    maps = np.zeros((3, 8, 8), np.int64)
    maps[:, :, :4] = 7  # a stuff track
    maps[0, 1:3, 5:7] = 12  # a thing, gone in the last frame
    maps[1, 2:4, 5:7] = 12
    return maps


def test_vipseg_results_round_trip_through_the_vpq_evaluator(tmp_path: Path) -> None:
    names = ["0001.png", "0002.png", "0003.png"]
    pred = VideoPanopticPrediction(
        video_id="v1", file_names=names, segment_maps=_maps(), categories={7: 1, 12: 0}
    )
    write_vipseg_results([pred], tmp_path / "pred.json", tmp_path / "pred")
    gt = json.loads((tmp_path / "pred.json").read_text())
    gt["categories"] = [{"id": 0, "name": "star", "isthing": 1}, {"id": 1, "name": "sky", "isthing": 0}]
    gt["videos"] = [{"video_id": "v1", "images": [{"file_name": n} for n in names]}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    report = evaluate_vpq(tmp_path / "gt.json", tmp_path / "pred", tmp_path / "pred.json", tmp_path / "pred")
    assert report.summary["VPQ"] == pytest.approx(1.0)
    assert sorted(p.name for p in (tmp_path / "pred" / "v1").iterdir()) == names


def test_davis_results_round_trip_through_the_davis_evaluator(tmp_path: Path) -> None:
    objects = (_maps() == 12).astype(np.int64)
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    write_davis([VideoObjectRecord("seq", ["00000", "00001", "00002"], frames, objects)], tmp_path / "davis")
    write_davis_results({"seq": objects}, tmp_path / "results")
    report = evaluate_davis(tmp_path / "davis", tmp_path / "results", semi_supervised=False)
    assert report.summary["J&F"] == pytest.approx(1.0)


def test_bad_predictions_write_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="categories: segment ids \\[12\\]"):
        VideoPanopticPrediction(video_id=1, file_names=["a.png"] * 3, segment_maps=_maps(), categories={7: 1})
    with pytest.raises(ValueError, match="file_names"):
        VideoPanopticPrediction(
            video_id=1, file_names=["a.png"], segment_maps=_maps(), categories={7: 1, 12: 0}
        )
    ok = VideoPanopticPrediction(
        video_id=1, file_names=["a.png", "b.png", "c.png"], segment_maps=_maps(), categories={7: 1, 12: 0}
    )
    with pytest.raises(ValueError, match="unique"):
        write_vipseg_results([ok, ok], tmp_path / "p.json", tmp_path / "p")
    with pytest.raises(ValueError, match=r"0\.\.254"):
        write_davis_results({"seq": np.full((1, 4, 4), 300)}, tmp_path / "r")
    with pytest.raises(ValueError, match="stems"):
        write_davis_results({"seq": np.zeros((2, 4, 4), np.int64)}, tmp_path / "r", file_names={"seq": ["a"]})
    assert not any(tmp_path.iterdir())
