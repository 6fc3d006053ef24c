"""`evaluate_coco_instances` matches pycocotools' COCOeval; `evaluate_youtube_vis` uses the JSON areas."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segblocks.data.formats import DatasetFormatError
from segblocks.data.formats._io import encode_rle
from segblocks.evaluation import evaluate_coco_instances, evaluate_youtube_vis

CATS = [{"id": 1, "name": "cat"}, {"id": 4, "name": "dog"}, {"id": 9, "name": "cup"}]


def _blob(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y0, x0 = rng.integers(0, h - 4), rng.integers(0, w - 4)
    m = np.zeros((h, w), bool)
    m[y0 : y0 + rng.integers(2, h - y0), x0 : x0 + rng.integers(2, w - x0)] = True
    return m


def _write_case(tmp_path: Path, seed: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for iid in (3, 5, 8, 11):
        h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
        images.append({"id": iid, "file_name": f"{iid}.jpg", "height": h, "width": w})
        gts = [] if iid == 8 else [_blob(rng, h, w) for _ in range(int(rng.integers(1, 5)))]
        for m in gts:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": iid,
                    "category_id": int(rng.choice([1, 4, 9])),
                    "segmentation": encode_rle(m),
                    # an annotated area that differs from the pixel count moves objects across ranges
                    "area": float(m.sum() * rng.choice([1.0, 3.0, 40.0])),
                    "bbox": [0.0, 0.0, 1.0, 1.0],
                    "iscrowd": int(rng.random() < 0.2),
                }
            )
        for m in gts + [_blob(rng, h, w) for _ in range(int(rng.integers(0, 4)))]:
            jitter = m ^ (rng.random(m.shape) < 0.1)
            score = float(rng.choice([0.5, 0.9, rng.random()]))  # repeated scores test tie-breaking
            dets.append(
                {
                    "image_id": iid,
                    "category_id": int(rng.choice([1, 4, 9])),
                    "segmentation": encode_rle(jitter),
                    "score": score,
                }
            )
    gt_json, res_json = tmp_path / "instances.json", tmp_path / "results.json"
    gt_json.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATS}))
    res_json.write_text(json.dumps(dets))
    return gt_json, res_json


def _cocoeval(gt_json: Path, res_json: Path) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_json))
        ev = COCOeval(gt, gt.loadRes(str(res_json)), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_twelve_numbers_match_cocoeval(seed: int, tmp_path: Path) -> None:
    gt_json, res_json = _write_case(tmp_path, seed)
    report = evaluate_coco_instances(gt_json, res_json)
    assert report.result.as_list() == pytest.approx(_cocoeval(gt_json, res_json), abs=1e-12)
    assert list(report.summary)[:3] == ["AP", "AP50", "AP75"] and set(report.rows) == {"cat", "dog", "cup"}


def test_instance_result_errors(tmp_path: Path) -> None:
    gt_json, res_json = _write_case(tmp_path, 0)
    dets = json.loads(res_json.read_text())
    res_json.write_text(json.dumps([*dets, {**dets[0], "image_id": 99}]))
    with pytest.raises(DatasetFormatError, match=r"results for images \[99\]"):
        evaluate_coco_instances(gt_json, res_json)
    res_json.write_text(json.dumps([{**dets[0], "score": float("nan")}]))
    with pytest.raises(DatasetFormatError, match="'score' should be a finite number"):
        evaluate_coco_instances(gt_json, res_json)
    res_json.write_text(json.dumps([{**dets[0], "segmentation": encode_rle(np.ones((3, 3), bool))}]))
    with pytest.raises(DatasetFormatError, match="masks of image 3 are"):
        evaluate_coco_instances(gt_json, res_json)


def _vis_files(tmp_path: Path, areas: list[int | None], *, score: float = 0.8) -> tuple[Path, Path]:
    tube = np.zeros((3, 10, 12), bool)
    tube[0, 2:6, 3:7] = True
    tube[2, 2:5, 3:7] = True  # absent from frame 1
    segs = [encode_rle(m) if m.any() else None for m in tube]
    gt = {
        "videos": [
            {"id": 1, "file_names": ["a/0.jpg", "a/1.jpg", "a/2.jpg"], "height": 10, "width": 12, "length": 3}
        ],
        "annotations": [
            {"id": 1, "video_id": 1, "category_id": 2, "iscrowd": 0, "segmentations": segs, "areas": areas}
        ],
        "categories": [{"id": 2, "name": "cat"}],
    }
    gt_json, res_json = tmp_path / "valid.json", tmp_path / "results.json"
    gt_json.write_text(json.dumps(gt))
    res_json.write_text(
        json.dumps([{"video_id": 1, "category_id": 2, "segmentations": segs, "score": score}])
    )
    return gt_json, res_json


def test_youtube_vis_area_ranges_use_the_json_areas(tmp_path: Path) -> None:
    # tiny masks, but the JSON states areas beyond 256²: the track is "large" for the evaluation
    gt_json, res_json = _vis_files(tmp_path, [70000, None, 80000])
    report = evaluate_youtube_vis(gt_json, res_json)
    assert report.summary["AP"] == pytest.approx(1.0) and report.summary["APl"] == pytest.approx(1.0)
    assert report.summary["APs"] == -1.0  # no small ground truth
    gt_json, res_json = _vis_files(tmp_path, [16, None, 12])
    report = evaluate_youtube_vis(gt_json, res_json)
    assert report.summary["APs"] == pytest.approx(1.0) and report.summary["APl"] == -1.0
    assert not (tmp_path / "valid").exists()  # no frame folder was needed


def test_youtube_vis_errors(tmp_path: Path) -> None:
    gt_json, res_json = _vis_files(tmp_path, [16, None, 12])
    res = json.loads(res_json.read_text())
    res_json.write_text(json.dumps([{**res[0], "video_id": 5}]))
    with pytest.raises(DatasetFormatError, match=r"results for videos \[5\]"):
        evaluate_youtube_vis(gt_json, res_json)
    res_json.write_text(json.dumps([{**res[0], "segmentations": res[0]["segmentations"][:2]}]))
    with pytest.raises(DatasetFormatError, match="should list 3 frames"):
        evaluate_youtube_vis(gt_json, res_json)
