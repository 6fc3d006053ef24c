"""`evaluate_coco_panoptic` follows panopticapi's `pq_compute` on hand-computed cases, from files alone."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from panoptic_files import CATEGORIES, write_panoptic

from segblocks.data.formats import DatasetFormatError
from segblocks.evaluation import evaluate_coco_panoptic
from segblocks.metrics import PanopticQuality
from segblocks.structures import PanopticResult, SegmentInfo


def _case() -> tuple[np.ndarray, list[dict[str, object]], np.ndarray, list[dict[str, object]]]:
    gt = np.zeros((4, 6), np.int64)
    gt[:, 0:2] = 10  # cat, 8 px
    gt[:, 2:4] = 20  # sky, 8 px (the JSON says 10)
    gt[0:2, 4] = 30  # crowd cat (listed first)
    gt[2:4, 4] = 31  # crowd cat (listed last)
    gt_segs = [
        {"id": 10, "category_id": 1, "iscrowd": 0, "area": 8},
        {"id": 20, "category_id": 2, "iscrowd": 0, "area": 10},
        {"id": 30, "category_id": 1, "iscrowd": 1, "area": 2},
        {"id": 31, "category_id": 1, "iscrowd": 1, "area": 2},
    ]
    pred = np.zeros((4, 6), np.int64)
    pred[0:3, 0:2] = 1  # cat: IoU 6 / 8
    pred[:, 2:4] = 2  # sky: IoU 8 / (8 + 10 - 8) with the JSON area
    pred[0:2, 4] = 3  # cat on the first crowd region: a false positive (only the last one excuses)
    pred[:, 5] = 4  # cat entirely on VOID: ignored
    pred_segs = [{"id": i, "category_id": c} for i, c in ((1, 1), (2, 2), (3, 1), (4, 1))]
    return gt, gt_segs, pred, pred_segs


def test_hand_computed_case(tmp_path: Path) -> None:
    gt, gt_segs, pred, pred_segs = _case()
    gt_json, gt_dir = write_panoptic(tmp_path, "gt", {7: gt}, {7: gt_segs}, gt=True)
    pred_json, pred_dir = write_panoptic(tmp_path, "pred", {7: pred}, {7: pred_segs}, gt=False)
    report = evaluate_coco_panoptic(gt_json, pred_json, gt_dir, pred_dir)
    cat = report.result.per_class[1]
    assert (cat.tp, cat.fp, cat.fn) == (1, 1, 0) and cat.iou == pytest.approx(0.75)
    assert report.result.per_class[2].iou == pytest.approx(0.8)
    s = report.summary
    assert s["PQ_th"] == pytest.approx(0.75 / 1.5) and s["PQ_st"] == pytest.approx(0.8)
    assert s["PQ"] == pytest.approx((0.5 + 0.8) / 2)
    assert s["SQ"] == pytest.approx((0.75 + 0.8) / 2)
    assert s["RQ"] == pytest.approx((1 / 1.5 + 1) / 2)
    assert report.counts == {"images": 1, "n_all": 2, "n_th": 1, "n_st": 1}  # "dog" never occurs
    assert set(report.rows) == {"cat", "sky", "dog"}


def test_default_folders_and_no_images_needed(tmp_path: Path) -> None:
    gt, gt_segs, pred, pred_segs = _case()
    gt_json, _ = write_panoptic(tmp_path, "gt", {7: gt}, {7: gt_segs}, gt=True)
    pred_json, _ = write_panoptic(tmp_path, "pred", {7: pred}, {7: pred_segs}, gt=False)
    assert not any(tmp_path.rglob("*.jpg"))  # the images named in the JSON do not exist
    assert evaluate_coco_panoptic(gt_json, pred_json).summary["PQ"] == pytest.approx(0.65)


def test_agrees_with_the_streaming_metric_on_consistent_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    thing = {c["id"]: bool(c["isthing"]) for c in CATEGORIES}
    metric = PanopticQuality(categories=thing)
    gts, preds, gt_infos, pred_infos = {}, {}, {}, {}
    for iid in range(4):
        g = rng.integers(0, 5, (12, 10))
        p = np.where(rng.random((12, 10)) < 0.8, g, rng.integers(0, 5, (12, 10)))
        cats = {k: int(rng.integers(1, 4)) for k in range(1, 5)}
        gts[iid], preds[iid] = g, p
        gt_infos[iid] = [
            {"id": int(k), "category_id": cats[int(k)], "iscrowd": 0, "area": int((g == k).sum())}
            for k in np.unique(g)
            if k
        ]
        pred_infos[iid] = [{"id": int(k), "category_id": cats[int(k)]} for k in np.unique(p) if k]

        def result(m: np.ndarray, infos: list[dict[str, int]]) -> PanopticResult:
            segs = [SegmentInfo(int(s["id"]), s["category_id"], thing[s["category_id"]]) for s in infos]
            return PanopticResult(segment_map=torch.from_numpy(m), segments=segs)

        metric.update(result(p, pred_infos[iid]), result(g, gt_infos[iid]))
    gt_json, _ = write_panoptic(tmp_path, "gt", gts, gt_infos, gt=True)
    pred_json, _ = write_panoptic(tmp_path, "pred", preds, pred_infos, gt=False)
    report = evaluate_coco_panoptic(gt_json, pred_json)
    expected = metric.compute()
    assert report.result.per_class == expected.per_class
    assert math.isclose(report.summary["PQ"], expected.all.pq)


def test_errors_name_the_problem(tmp_path: Path) -> None:
    gt, gt_segs, pred, pred_segs = _case()
    gt_json, _ = write_panoptic(tmp_path, "gt", {7: gt}, {7: gt_segs}, gt=True)
    pred_json, _ = write_panoptic(tmp_path, "pred", {8: pred}, {8: pred_segs}, gt=False)
    with pytest.raises(DatasetFormatError, match="no prediction for the image with id 7"):
        evaluate_coco_panoptic(gt_json, pred_json)
    pred_json, _ = write_panoptic(tmp_path, "pred", {7: pred}, {7: pred_segs[:2]}, gt=False)
    with pytest.raises(DatasetFormatError, match=r"ids \[3, 4\] appear in the PNG but have no segment info"):
        evaluate_coco_panoptic(gt_json, pred_json)
    bad = [*pred_segs[:3], {"id": 4, "category_id": 99}]
    pred_json, _ = write_panoptic(tmp_path, "pred", {7: pred}, {7: bad}, gt=False)
    with pytest.raises(DatasetFormatError, match="unknown category_id 99"):
        evaluate_coco_panoptic(gt_json, pred_json)
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        evaluate_coco_panoptic(gt_json, tmp_path / "missing.json")
