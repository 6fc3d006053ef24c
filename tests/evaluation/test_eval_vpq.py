"""`evaluate_vpq` on VIPSeg-style files: a hand-computed case and agreement with the streaming metric."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from panoptic_files import CATEGORIES, write_png

from segblocks.data.formats import DatasetFormatError
from segblocks.evaluation import evaluate_vpq
from segblocks.metrics import VideoPanopticQuality
from segblocks.structures import PanopticResult, SegmentInfo


def _maps() -> tuple[list[np.ndarray], list[np.ndarray]]:
    g0, g1 = np.zeros((4, 4), np.int64), np.zeros((4, 4), np.int64)
    g0[:, :2], g0[:, 2:] = 5, 7
    g1[:], g1[:2, :2] = 7, 5
    p0, p1 = np.where(g0 == 5, 1, 2), np.where(g1 == 5, 3, 2)  # the cat changes track id in frame 1
    return [g0, g1], [p0, p1]


def _infos(m: np.ndarray, cats: dict[int, int], gt: bool) -> list[dict[str, int]]:
    out = []
    for k in np.unique(m):
        if k:
            row = {"id": int(k), "category_id": cats[int(k)]}
            out.append({**row, "iscrowd": 0, "area": int((m == k).sum())} if gt else row)
    return out


def _write(tmp_path: Path, gts: list[np.ndarray], preds: list[np.ndarray]) -> tuple[Path, Path, Path, Path]:
    gt_cats, pred_cats = {5: 1, 7: 2}, {1: 1, 2: 2, 3: 1}
    names = [f"{t:08d}.png" for t in range(len(gts))]
    for name, g, p in zip(names, gts, preds):
        write_png(tmp_path / "gt" / "v1" / name, g)
        write_png(tmp_path / "pred" / "v1" / name, p)
    gt = {
        "videos": [{"video_id": "v1", "images": [{"file_name": n} for n in names]}],
        "annotations": [
            {"video_id": "v1", "annotations": [{"segments_info": _infos(g, gt_cats, True)} for g in gts]}
        ],
        "categories": CATEGORIES,
    }
    pred = {
        "annotations": [
            {"video_id": "v1", "annotations": [{"segments_info": _infos(p, pred_cats, False)} for p in preds]}
        ]
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    return tmp_path / "gt.json", tmp_path / "gt", tmp_path / "pred.json", tmp_path / "pred"


def test_hand_computed_vpq(tmp_path: Path) -> None:
    gts, preds = _maps()
    report = evaluate_vpq(*_write(tmp_path, gts, preds), window_sizes=(1, 2))
    # k=1: every frame matches exactly. k=2: the cat tube of track 1 has IoU 8/12 (a TP), track 3
    # IoU 4/12 (a FP): cat PQ (2/3) / 1.5 = 4/9, sky PQ 1.
    assert report.summary["PQ@1"] == pytest.approx(1.0)
    assert report.summary["PQ@2"] == pytest.approx((4 / 9 + 1) / 2)
    assert report.summary["VPQ"] == pytest.approx((1 + 13 / 18) / 2)
    assert report.summary["VPQ_th"] == pytest.approx((1 + 4 / 9) / 2) and report.summary["VPQ_st"] == 1.0


def test_agrees_with_the_streaming_metric(tmp_path: Path) -> None:
    gts, preds = _maps()
    report = evaluate_vpq(*_write(tmp_path, gts, preds))  # VIPSeg's window sizes, more than the frames
    metric = VideoPanopticQuality(categories={1: True, 2: False, 3: True})
    thing = {1: True, 2: False}

    def frames(maps: list[np.ndarray], cats: dict[int, int]) -> list[PanopticResult]:
        return [
            PanopticResult(
                segment_map=torch.from_numpy(m),
                segments=[SegmentInfo(int(k), cats[int(k)], thing[cats[int(k)]]) for k in np.unique(m) if k],
            )
            for m in maps
        ]

    metric.update(frames(preds, {1: 1, 2: 2, 3: 1}), frames(gts, {5: 1, 7: 2}))
    expected = metric.compute()
    assert report.summary["VPQ"] == pytest.approx(expected.vpq, nan_ok=True)
    assert report.result[2].per_class == expected.per_window[2].per_class


def test_vpq_errors(tmp_path: Path) -> None:
    gts, preds = _maps()
    gt_json, gt_dir, pred_json, pred_dir = _write(tmp_path, gts, preds)
    data = json.loads(pred_json.read_text())
    data["annotations"][0]["annotations"].pop()
    pred_json.write_text(json.dumps(data))
    with pytest.raises(DatasetFormatError, match="2 images, 2 annotated frames, 1 predicted frames"):
        evaluate_vpq(gt_json, gt_dir, pred_json, pred_dir)
    data["annotations"][0]["video_id"] = "other"
    pred_json.write_text(json.dumps(data))
    with pytest.raises(DatasetFormatError, match="no prediction for video 'v1'"):
        evaluate_vpq(gt_json, gt_dir, pred_json, pred_dir)
    with pytest.raises(ValueError, match="window_sizes"):
        evaluate_vpq(gt_json, gt_dir, pred_json, pred_dir, window_sizes=(0,))
