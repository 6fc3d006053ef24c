"""Every format: the shapes world and hand-built records survive write -> read exactly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from segblocks.data import ShapesWorld, ShapesWorldConfig
from segblocks.data.formats import (
    FORMATS,
    CategoryRecord,
    InstanceRecord,
    PanopticRecord,
    PanopticSegment,
    RecordDataset,
    SemanticRecord,
    VideoInstanceRecord,
    VideoObjectRecord,
    export_shapes_world,
    read_ade20k,
    read_coco_instances,
    read_coco_panoptic,
    read_coco_results,
    read_davis,
    read_youtube_vis,
    read_youtube_vis_results,
    shapes_categories,
    write_ade20k,
    write_coco_instances,
    write_coco_panoptic,
    write_coco_results,
    write_davis,
    write_youtube_vis,
    write_youtube_vis_results,
)

READERS: dict[str, Callable[[Path, str], RecordDataset[Any]]] = {
    "coco_panoptic": lambda root, split: read_coco_panoptic(root, split=split),
    "coco_instances": lambda root, split: read_coco_instances(root, split=split),
    "ade20k": lambda root, split: read_ade20k(root, split=split, categories=shapes_categories()),
    "youtube_vis": lambda root, split: read_youtube_vis(root, split=split),
    "davis": lambda root, split: read_davis(root, split=split),
}


@pytest.fixture(scope="module")
def world() -> ShapesWorld:
    return ShapesWorld(ShapesWorldConfig(image_size=(40, 56)), split="val")


@pytest.mark.parametrize("fmt", FORMATS)
def test_shapes_world_round_trip_is_exact(fmt: str, world: ShapesWorld, tmp_path: Path) -> None:
    written = export_shapes_world(world, tmp_path, fmt, 3, num_frames=3)
    assert len(written) == 3
    back = READERS[fmt](tmp_path, "val")
    assert back == written
    assert back[-1] == written[2] and list(back) == list(written)


CATS = [CategoryRecord(1, "person", True), CategoryRecord(7, "car", True), CategoryRecord(40, "sky", False)]


def _image(rng: np.random.Generator, h: int = 9, w: int = 11) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_panoptic_with_void_crowd_and_large_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pan = np.zeros((9, 11), np.int64)
    pan[:3] = 70_000  # an id that needs the blue channel
    pan[3:6, :5] = 3
    pan[6:, 4:] = 257  # R=1, G=1
    segs = [PanopticSegment(70_000, 40), PanopticSegment(3, 1, iscrowd=True), PanopticSegment(257, 7)]
    rec = PanopticRecord(image_id=5, file_name="a.png", image=_image(rng), panoptic=pan, segments=segs)
    ds = RecordDataset(records=[rec], categories=CATS)
    write_coco_panoptic(ds, tmp_path, split="s")
    back = read_coco_panoptic(tmp_path, split="s")
    assert back == ds
    rgb = np.asarray(Image.open(tmp_path / "annotations" / "panoptic_s" / "a.png"))
    assert tuple(rgb[6, 10]) == (1, 1, 0) and tuple(rgb[0, 0]) == (70_000 % 256, (70_000 // 256) % 256, 1)
    assert back[0].crowd_ids == [3]
    result = back[0].to_panoptic_result(back.categories)
    assert {s.id: s.is_thing for s in result.segments} == {70_000: False, 3: True, 257: True}


def _instances(rng: np.random.Generator, image_id: int, n: int, scores: bool = False) -> InstanceRecord:
    masks = np.zeros((n, 9, 11), bool)
    for k in range(n):
        y, x = rng.integers(0, 7), rng.integers(0, 9)
        masks[k, y : y + rng.integers(1, 5), x : x + rng.integers(1, 5)] = True
    return InstanceRecord(
        image_id=image_id,
        file_name=f"{image_id}.png" if not scores else "",
        image=None if scores else _image(rng),
        masks=masks,
        category_ids=rng.choice([1, 7], n),
        instance_ids=np.arange(n) + (0 if scores else 100 * image_id),
        iscrowd=np.arange(n) == 1 if not scores else np.zeros(n, bool),
        areas=None if scores else rng.random(n) * 50,
        scores=rng.random(n) if scores else None,
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' own decode under numpy 2
def test_instances_and_results_round_trip_and_load_in_pycocotools(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    gt = RecordDataset(records=[_instances(rng, i, n) for i, n in enumerate([3, 0, 2])], categories=CATS)
    json_path = write_coco_instances(gt, tmp_path)
    assert read_coco_instances(tmp_path) == gt
    coco = COCO(str(json_path))  # the peer reads our file
    for rec in gt:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[rec.image_id]))
        for k, ann in enumerate(anns):
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), rec.masks[k])
            assert ann["iscrowd"] == int(rec.iscrowd[k])
    dets = [_instances(rng, i, n, scores=True) for i, n in enumerate([2, 1])]
    res_path = write_coco_results(dets, tmp_path / "results.json")
    assert read_coco_results(res_path, categories=CATS) == {d.image_id: d for d in dets}
    loaded = coco.loadRes(str(res_path))
    assert len(loaded.getAnnIds()) == 3


def test_instances_read_polygons_and_uncompressed_rle(tmp_path: Path) -> None:
    import json

    (tmp_path / "annotations").mkdir()
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "img.png")
    square = np.zeros((10, 10), bool)
    square[2:6, 3:8] = True
    # uncompressed RLE: alternating run lengths in column-major order, starting with zeros
    flat = square.T.reshape(-1)
    runs, cur, n = [], False, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    data = {
        "images": [{"id": 1, "file_name": "img.png", "height": 10, "width": 10}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "area": 20.0,
                "segmentation": [[3, 2, 8, 2, 8, 6, 3, 6]],
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 1,
                "area": 20.0,
                "segmentation": {"size": [10, 10], "counts": runs},
            },
        ],
        "categories": [{"id": 1, "name": "a"}],
    }
    (tmp_path / "annotations" / "instances_x.json").write_text(json.dumps(data))
    rec = read_coco_instances(tmp_path, split="x", image_dir=tmp_path)[0]
    np.testing.assert_array_equal(rec.masks[1], square)
    assert rec.masks[0].sum() > 0 and rec.iscrowd.tolist() == [False, True]


def test_semantic_ignore_and_reduce_zero_label(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, (9, 11))
    labels[0, :4] = 255
    rec = SemanticRecord(image_id=0, file_name="ADE_val_0001.png", image=_image(rng), label_map=labels)
    for reduce in (True, False):
        root = tmp_path / str(reduce)
        write_ade20k([rec], root, reduce_zero_label=reduce)
        back = read_ade20k(root, num_classes=3, reduce_zero_label=reduce)
        assert back[0] == rec
        png = np.asarray(Image.open(root / "annotations" / "validation" / "ADE_val_0001.png"))
        assert png[0, 0] == (0 if reduce else 255)


def test_video_formats_with_absent_frames_and_void(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (3, 9, 11, 3), dtype=np.uint8)
    masks = np.zeros((2, 3, 9, 11), bool)
    masks[0, 0, :3, :3] = True  # present only in frame 0
    masks[1, :, 4:, 4:] = True
    vid = VideoInstanceRecord(
        video_id=4,
        file_names=["v/0.png", "v/1.png", "v/2.png"],
        frames=frames,
        masks=masks,
        category_ids=np.array([1, 7]),
        track_ids=np.array([10, 11]),
        iscrowd=np.array([False, True]),
    )
    ds = RecordDataset(records=[vid], categories=CATS)
    json_path = write_youtube_vis(ds, tmp_path / "ytvis")
    back = read_youtube_vis(tmp_path / "ytvis")
    assert back == ds
    import json

    ann = json.loads(json_path.read_text())["annotations"][0]
    assert ann["segmentations"][1] is None and ann["areas"][0] == 9
    pred = VideoInstanceRecord(
        video_id=4,
        file_names=vid.file_names,
        frames=None,
        masks=masks,
        category_ids=np.array([7, 1]),
        track_ids=np.arange(2),
        iscrowd=np.zeros(2, bool),
        scores=np.array([0.3, 0.9]),
    )
    res = write_youtube_vis_results([pred], tmp_path / "res.json")
    assert read_youtube_vis_results(res, back) == {4: pred}
    objects = np.zeros((3, 9, 11), np.int64)
    objects[:, 2:5, 2:5] = 1
    objects[1, 6:, 6:] = 2
    objects[:, -1, :] = 255  # void
    seq = VideoObjectRecord(
        name="bear", file_names=["00000", "00001", "00002"], frames=frames, objects=objects
    )
    write_davis([seq], tmp_path / "davis", frame_ext=".png")
    assert read_davis(tmp_path / "davis")[0] == seq
    with Image.open(tmp_path / "davis" / "Annotations" / "480p" / "bear" / "00001.png") as im:
        assert im.mode == "P"  # an indexed PNG with DAVIS's palette
        assert im.getpalette()[3:6] == [128, 0, 0]


def test_record_equality_is_exact() -> None:
    rng = np.random.default_rng(4)
    a = SemanticRecord(0, "x.png", _image(rng), np.zeros((9, 11), np.int64))
    b = SemanticRecord(0, "x.png", a.image.copy(), np.zeros((9, 11), np.int64))
    assert a == b
    b.label_map[0, 0] = 1
    assert a != b
    c = SemanticRecord(1, "x.png", a.image, a.label_map)
    assert a != c
    assert RecordDataset(records=[a]) != RecordDataset(records=[a], categories=CATS)
