"""Metrics on the shapes world: the peers agree, the formats feed the metrics, the click simulator drives NoC."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.detection import PanopticQuality as PeerPQ

from segblocks.data import CATEGORIES, Click, ShapesSample, ShapesWorld, ShapesWorldConfig
from segblocks.data.formats import (
    InstanceRecord,
    export_shapes_world,
    read_coco_instances,
    read_coco_panoptic,
    read_davis,
    read_youtube_vis,
    write_coco_results,
)
from segblocks.metrics import (
    DavisJF,
    MaskAP,
    NoCMetric,
    PanopticQuality,
    SemanticSegmentationMetric,
    VideoAP,
    VideoPanopticQuality,
)
from segblocks.structures import PanopticResult, SegmentInfo

THINGS = {c.id for c in CATEGORIES if c.is_thing}
STUFF = {c.id for c in CATEGORIES if not c.is_thing}


@pytest.fixture(scope="module")
def world() -> ShapesWorld:
    return ShapesWorld(ShapesWorldConfig(image_size=(64, 80)), split="val")


def _perturbed_panoptic(sample: ShapesSample, rng: np.random.Generator) -> tuple[np.ndarray, dict[int, int]]:
    """A plausible prediction: shifted map, a thing relabelled, a thing dropped into the background."""
    pan = np.roll(
        sample.panoptic.astype(np.int64), (int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), (0, 1)
    )
    cats = {s.id: s.category_id for s in sample.segments}
    things = [s.id for s in sample.thing_segments]
    stuff = [s.id for s in sample.segments if not s.is_thing]
    if things and rng.random() < 0.5:
        cats[things[int(rng.integers(len(things)))]] = int(rng.choice(sorted(THINGS)))
    if len(things) > 1 and rng.random() < 0.5:
        gone = things[int(rng.integers(len(things)))]
        pan[pan == gone] = stuff[0]
        del cats[gone]
    return pan, cats


def _result(pan: np.ndarray, cats: dict[int, int]) -> PanopticResult:
    thing = {c.id: c.is_thing for c in CATEGORIES}
    return PanopticResult(torch.from_numpy(pan), [SegmentInfo(k, v, thing[v]) for k, v in cats.items()])


def _tm(pan: np.ndarray, cats: dict[int, int]) -> torch.Tensor:
    out = np.zeros((*pan.shape, 2), np.int64)
    for sid, c in cats.items():
        out[pan == sid] = (c, sid)
    return torch.from_numpy(out)[None]


def test_pq_matches_torchmetrics_on_shapes_world_read_from_coco_panoptic(
    world: ShapesWorld, tmp_path: Path
) -> None:
    export_shapes_world(world, tmp_path, "coco_panoptic", 6)
    gt_ds = read_coco_panoptic(tmp_path)  # the metric is fed through the format reader
    rng = np.random.default_rng(0)
    ours = PanopticQuality(categories=gt_ds.categories)
    peer = PeerPQ(things=THINGS, stuffs=STUFF, return_sq_and_rq=True)
    for i, rec in enumerate(gt_ds):
        pred = _perturbed_panoptic(world.sample(i), rng)
        ours.update(_result(*pred), rec.to_panoptic_result(gt_ds.categories), target_crowd_ids=rec.crowd_ids)
        gt_cats = {s.id: s.category_id for s in rec.segments}
        peer.update(_tm(*pred), _tm(rec.panoptic, gt_cats))
    res = ours.compute()
    np.testing.assert_allclose(
        [res.all.pq, res.all.sq, res.all.rq], peer.compute().double().numpy(), atol=1e-6
    )
    assert 0.0 < res.all.pq < 1.0


def test_miou_matches_torchmetrics_on_shapes_world(world: ShapesWorld) -> None:
    c = len(CATEGORIES)
    ours = SemanticSegmentationMetric(num_classes=c)
    peer = MulticlassJaccardIndex(num_classes=c, ignore_index=255)
    rng = np.random.default_rng(1)
    for i in range(4):
        s = world.sample(i)
        target = torch.from_numpy(s.semantic.copy())
        target[: int(rng.integers(0, 8))] = 255  # an unlabelled band
        pred = torch.from_numpy(np.roll(s.semantic, int(rng.integers(-4, 5)), axis=1).copy())
        ours.update(pred, target)
        peer.update(pred[None], target[None])
    assert ours.compute().miou == pytest.approx(float(peer.compute()), abs=1e-6)


def _cocoeval(gt_json: Path, res_json: Path) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_json))
        ev = COCOeval(gt, gt.loadRes(str(res_json)), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' own decode under numpy 2
def test_mask_ap_matches_cocoeval_on_shapes_world(tmp_path: Path) -> None:
    # Things from small to large (COCO's 32² / 96² area limits).
    config = ShapesWorldConfig(image_size=(192, 208), thing_radius=(0.03, 0.5), num_things=(1, 4))
    world = ShapesWorld(config, split="val")
    gt_json_dir = tmp_path / "gt"
    export_shapes_world(world, gt_json_dir, "coco_instances", 8)
    gt_ds = read_coco_instances(gt_json_dir)
    rng = np.random.default_rng(2)
    metric = MaskAP(categories=gt_ds.categories)
    preds = []
    for rec in gt_ds:
        masks, labels, scores = [], [], []
        for m, c in zip(rec.masks, rec.category_ids):
            for _ in range(int(rng.integers(0, 3))):  # 0-2 shifted copies, sometimes mislabelled
                masks.append(np.roll(m, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), (0, 1)))
                labels.append(int(c) if rng.random() < 0.85 else int(rng.choice(sorted(THINGS))))
                scores.append(float(np.round(rng.random(), 2)))
        pred = InstanceRecord(
            image_id=rec.image_id,
            file_name="",
            image=None,
            masks=np.stack(masks) if masks else np.zeros((0, *rec.size), bool),
            category_ids=np.array(labels, np.int64),
            instance_ids=np.arange(len(labels)),
            iscrowd=np.zeros(len(labels), bool),
            scores=np.array(scores),
        )
        preds.append(pred)
        metric.update(pred.to_instance_result(), rec.to_targets(), image_id=rec.image_id)
    res_json = write_coco_results(preds, tmp_path / "results.json")
    peer = _cocoeval(gt_json_dir / "annotations" / "instances_val.json", res_json)
    ours = metric.compute().as_list()
    np.testing.assert_allclose(ours, peer, atol=1e-6)
    assert min(ours[3], ours[4], ours[5]) > -1  # small, medium and large objects were present


def test_video_metrics_on_shapes_clips(world: ShapesWorld, tmp_path: Path) -> None:
    export_shapes_world(world, tmp_path / "ytvis", "youtube_vis", 2, num_frames=4)
    export_shapes_world(world, tmp_path / "davis", "davis", 2, num_frames=4)
    vis = read_youtube_vis(tmp_path / "ytvis", split="val")
    cat_ids = [c.id for c in vis.categories]
    ap = VideoAP(categories=cat_ids)
    for rec in vis:
        gt = rec.to_video_instances()
        gt.scores = torch.ones(len(gt.labels), dtype=torch.float64)
        ap.update(gt, rec.to_video_instances())
    assert ap.compute().ap == pytest.approx(1.0)
    davis = DavisJF()
    for seq in read_davis(tmp_path / "davis", split="val"):
        davis.update(seq.objects, seq.objects)
    assert davis.compute().jf == 1.0
    vpq = VideoPanopticQuality(categories=CATEGORIES)
    clip = world.sample_clip(0, num_frames=4)
    frames = [
        _result(f.panoptic.astype(np.int64), {s.id: s.category_id for s in f.segments}) for f in clip.frames
    ]
    vpq.update(frames, frames)
    empty = [_result(np.zeros_like(f.panoptic, dtype=np.int64), {}) for f in clip.frames]
    vpq_empty = VideoPanopticQuality(categories=CATEGORIES)
    vpq_empty.update(empty, frames)
    assert vpq.compute().vpq == 1.0 and vpq_empty.compute().vpq == 0.0


def test_noc_with_the_shapes_world_click_simulator(world: ShapesWorld) -> None:
    def painter(image: np.ndarray, clicks: Sequence[Click]) -> np.ndarray:
        out = np.zeros(image.shape[:2], bool)
        for c in clicks:
            out[max(c.y - 3, 0) : c.y + 4, max(c.x - 3, 0) : c.x + 4] = c.positive
        return out

    metric = NoCMetric()
    sample = world.sample(0)
    for mask in sample.instance_masks:
        metric.evaluate(painter, sample.image, mask)  # default clicks: segblocks.data.first/next_click
    res = metric.compute()
    assert res.num_objects == len(sample.instance_masks)
    assert 1 <= res.noc[0.85] <= res.noc[0.9] <= 20
    assert 0.0 < res.one_click_iou < 1.0
