"""Readers fail loudly: missing files, malformed JSON, ids without info, masks of the wrong size, ..."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from segblocks.data import ShapesWorld, ShapesWorldConfig
from segblocks.data.formats import (
    DatasetFormatError,
    InstanceRecord,
    PanopticRecord,
    PanopticSegment,
    RecordDataset,
    SemanticRecord,
    VideoObjectRecord,
    export_shapes_world,
    read_ade20k,
    read_coco_instances,
    read_coco_panoptic,
    read_coco_results,
    read_davis,
    read_youtube_vis,
    shapes_categories,
    shapes_dataset,
    write_coco_panoptic,
)


@pytest.fixture(scope="module")
def world() -> ShapesWorld:
    return ShapesWorld(ShapesWorldConfig(image_size=(40, 48)), split="val")


def _export(world: ShapesWorld, root: Path, fmt: str) -> None:
    export_shapes_world(world, root, fmt, 2, num_frames=3)


def _edit_json(path: Path, edit: Any) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


# ---------------------------------------------------------------- missing files, malformed JSON


@pytest.mark.parametrize(
    ("reader", "missing"),
    [
        (lambda r: read_coco_panoptic(r), "panoptic_val.json"),
        (lambda r: read_coco_instances(r), "instances_val.json"),
        (lambda r: read_youtube_vis(r), "valid.json"),
        (lambda r: read_ade20k(r), "images/validation"),
        (lambda r: read_davis(r), "val.txt"),
        (lambda r: read_coco_results(r / "res.json"), "res.json"),
    ],
)
def test_missing_files_name_the_path(reader: Any, missing: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=missing):
        reader(tmp_path)


@pytest.mark.parametrize("fmt", ["coco_panoptic", "coco_instances", "youtube_vis"])
def test_malformed_json_gives_line_and_column(fmt: str, world: ShapesWorld, tmp_path: Path) -> None:
    _export(world, tmp_path, fmt)
    path = {
        "coco_panoptic": tmp_path / "annotations" / "panoptic_val.json",
        "coco_instances": tmp_path / "annotations" / "instances_val.json",
        "youtube_vis": tmp_path / "val.json",
    }[fmt]
    path.write_text('{"images": [\n  {"id": 1,,}\n]}')
    reader = {
        "coco_panoptic": read_coco_panoptic,
        "coco_instances": read_coco_instances,
        "youtube_vis": read_youtube_vis,
    }
    with pytest.raises(DatasetFormatError, match=r"malformed JSON at line 2, column"):
        reader[fmt](tmp_path, split="val")
    path.write_text("[]")
    with pytest.raises(DatasetFormatError, match="expected a JSON object"):
        reader[fmt](tmp_path, split="val")


def test_missing_image_surfaces_on_access(world: ShapesWorld, tmp_path: Path) -> None:
    _export(world, tmp_path, "coco_instances")
    (tmp_path / "val" / "val_000001.png").unlink()
    ds = read_coco_instances(tmp_path)
    assert ds[0].image is not None
    with pytest.raises(FileNotFoundError, match=r"val_000001\.png"):
        ds[1]


# ---------------------------------------------------------------- COCO panoptic


def _pan_paths(root: Path) -> tuple[Path, Path]:
    return root / "annotations" / "panoptic_val.json", root / "annotations" / "panoptic_val"


def test_panoptic_id_without_segment_info(world: ShapesWorld, tmp_path: Path) -> None:
    _export(world, tmp_path, "coco_panoptic")
    json_path, _ = _pan_paths(tmp_path)
    dropped: list[int] = []
    _edit_json(json_path, lambda d: dropped.append(d["annotations"][0]["segments_info"].pop(0)["id"]))
    ds = read_coco_panoptic(tmp_path)
    with pytest.raises(
        DatasetFormatError, match=rf"ids \[{dropped[0]}\] appear in the PNG but have no segment info"
    ):
        ds[0]
    assert ds[1] is not None  # other images are still readable


def test_panoptic_segment_absent_from_png_and_wrong_area(world: ShapesWorld, tmp_path: Path) -> None:
    _export(world, tmp_path, "coco_panoptic")
    json_path, _ = _pan_paths(tmp_path)

    def add_ghost(d: dict[str, Any]) -> None:
        d["annotations"][0]["segments_info"].append({"id": 999, "category_id": 0, "iscrowd": 0})
        d["annotations"][1]["segments_info"][0]["area"] += 1

    _edit_json(json_path, add_ghost)
    ds = read_coco_panoptic(tmp_path)
    with pytest.raises(DatasetFormatError, match=r"segments \[999\] of the JSON do not appear in the PNG"):
        ds[0]
    with pytest.raises(DatasetFormatError, match="area"):
        ds[1]


def test_panoptic_png_of_the_wrong_size(world: ShapesWorld, tmp_path: Path) -> None:
    _export(world, tmp_path, "coco_panoptic")
    _, png_dir = _pan_paths(tmp_path)
    png = png_dir / "val_000000.png"
    Image.fromarray(np.asarray(Image.open(png))[:-2]).save(png)
    with pytest.raises(DatasetFormatError, match="mask of the wrong size"):
        read_coco_panoptic(tmp_path)[0]
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(png)
    with pytest.raises(DatasetFormatError, match="expected an RGB panoptic PNG"):
        read_coco_panoptic(tmp_path)[0]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["annotations"][0]["segments_info"][0].update(category_id=77), "unknown category_id 77"),
        (lambda d: d["annotations"][0].update(image_id=12345), "image_id 12345 is not in 'images'"),
        (lambda d: d["annotations"].pop(), "have no annotation"),
        (lambda d: d["annotations"][0].pop("segments_info"), "missing key 'segments_info'"),
        (lambda d: d["images"][0].update(height="32"), "'height' should be a int"),
        (lambda d: d["images"].append(dict(d["images"][0])), "appears twice"),
        (lambda d: d["categories"].append(dict(d["categories"][0])), "repeated category ids"),
    ],
)
def test_panoptic_json_problems(edit: Any, message: str, world: ShapesWorld, tmp_path: Path) -> None:
    _export(world, tmp_path, "coco_panoptic")
    _edit_json(_pan_paths(tmp_path)[0], edit)
    with pytest.raises(DatasetFormatError, match=message):
        read_coco_panoptic(tmp_path)


# ---------------------------------------------------------------- COCO instances / results


def test_instances_rle_of_the_wrong_size_and_bad_json(world: ShapesWorld, tmp_path: Path) -> None:
    _export(world, tmp_path, "coco_instances")
    path = tmp_path / "annotations" / "instances_val.json"
    _edit_json(path, lambda d: d["annotations"][0]["segmentation"].update(size=[39, 48]))
    with pytest.raises(
        DatasetFormatError, match=r"mask of the wrong size: RLE size \[39, 48\], image size \[40, 48\]"
    ):
        read_coco_instances(tmp_path)[0]
    _edit_json(path, lambda d: d["annotations"][1].update(id=d["annotations"][0]["id"]))
    with pytest.raises(DatasetFormatError, match="appears twice"):
        read_coco_instances(tmp_path)
    _edit_json(path, lambda d: d["annotations"][1].update(id=10**9, category_id=55))
    with pytest.raises(DatasetFormatError, match="unknown category_id 55"):
        read_coco_instances(tmp_path)


def test_results_errors(tmp_path: Path) -> None:
    path = tmp_path / "res.json"
    path.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(DatasetFormatError, match="JSON list"):
        read_coco_results(path)
    path.write_text(
        json.dumps([{"image_id": 1, "category_id": 1, "segmentation": {"size": [2, 2], "counts": "04"}}])
    )
    with pytest.raises(DatasetFormatError, match="missing key 'score'"):
        read_coco_results(path)


# ---------------------------------------------------------------- ADE20K, YouTube-VIS, DAVIS


def test_ade20k_problems(world: ShapesWorld, tmp_path: Path) -> None:
    _export(world, tmp_path, "ade20k")
    ann = tmp_path / "annotations" / "val" / "val_000000.png"
    Image.fromarray(np.full((40, 48), 200, np.uint8)).save(ann)
    with pytest.raises(DatasetFormatError, match=r"labels \[199\] beyond the 18 classes"):
        read_ade20k(tmp_path, split="val", categories=shapes_categories())[0]
    Image.fromarray(np.zeros((38, 48), np.uint8)).save(ann)
    with pytest.raises(DatasetFormatError, match="mask of the wrong size"):
        read_ade20k(tmp_path, split="val")[0]
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(ann)
    with pytest.raises(DatasetFormatError, match="single-channel"):
        read_ade20k(tmp_path, split="val")[0]
    ann.unlink()
    with pytest.raises(DatasetFormatError, match=r"no annotation for images \['val_000000'\]"):
        read_ade20k(tmp_path, split="val")


def test_youtube_vis_problems(world: ShapesWorld, tmp_path: Path) -> None:
    _export(world, tmp_path, "youtube_vis")
    path = tmp_path / "val.json"
    original = path.read_text()

    def first_present(d: dict[str, Any]) -> dict[str, Any]:
        return next(s for s in d["annotations"][0]["segmentations"] if s is not None)

    _edit_json(path, lambda d: first_present(d).update(size=[8, 8]))
    with pytest.raises(DatasetFormatError, match="mask of the wrong size"):
        read_youtube_vis(tmp_path, split="val")[0]
    path.write_text(original)
    _edit_json(path, lambda d: d["annotations"][0]["segmentations"].pop())
    with pytest.raises(DatasetFormatError, match="lists 2 frames, video 0 has 3"):
        read_youtube_vis(tmp_path, split="val")
    path.write_text(original)
    _edit_json(path, lambda d: d["annotations"][0].update(video_id=99))
    with pytest.raises(DatasetFormatError, match="video_id 99"):
        read_youtube_vis(tmp_path, split="val")


def test_davis_problems(world: ShapesWorld, tmp_path: Path) -> None:
    _export(world, tmp_path, "davis")
    seq_dir = tmp_path / "Annotations" / "480p" / "val_0000"
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(seq_dir / "00001.png")
    with pytest.raises(DatasetFormatError, match="single-channel"):
        read_davis(tmp_path)[0]
    Image.fromarray(np.zeros((39, 48), np.uint8)).save(seq_dir / "00001.png")
    with pytest.raises(DatasetFormatError, match="mask of the wrong size"):
        read_davis(tmp_path)[0]
    (seq_dir / "00002.png").unlink()
    with pytest.raises(DatasetFormatError, match=r"no annotation for frames \['00002'\]"):
        read_davis(tmp_path)
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("missing_seq\nval_0000\n")
    with pytest.raises(FileNotFoundError, match="missing_seq"):
        read_davis(tmp_path)


# ---------------------------------------------------------------- records and writers


def test_records_reject_inconsistent_content() -> None:
    img = np.zeros((4, 5, 3), np.uint8)
    pan = np.zeros((4, 5), np.int64)
    pan[0] = 2
    with pytest.raises(ValueError, match=r"ids \[2\] have no segment info"):
        PanopticRecord(0, "a.png", img, pan, [])
    with pytest.raises(ValueError, match=r"ids \[3\] do not appear"):
        PanopticRecord(0, "a.png", img, pan, [PanopticSegment(2, 0), PanopticSegment(3, 0)])
    with pytest.raises(ValueError, match="mask of the wrong size"):
        PanopticRecord(0, "a.png", img, pan[:3], [PanopticSegment(2, 0)])
    with pytest.raises(TypeError, match="uint8"):
        SemanticRecord(0, "a.png", img.astype(np.float32), np.zeros((4, 5), np.int64))
    with pytest.raises(ValueError, match="mask of the wrong size"):
        InstanceRecord(
            0, "a.png", img, np.zeros((1, 4, 4), bool), np.array([1]), np.array([1]), np.array([False])
        )
    with pytest.raises(ValueError, match=r"expected shape \(1,\)"):
        InstanceRecord(
            0, "a.png", img, np.zeros((1, 4, 5), bool), np.array([1, 2]), np.array([1]), np.array([False])
        )
    with pytest.raises(ValueError, match=r"0\.\.255"):
        VideoObjectRecord("s", ["0"], img[None], np.full((1, 4, 5), 300))
    with pytest.raises(ValueError, match="exactly one"):
        RecordDataset()
    with pytest.raises(IndexError, match="out of range"):
        RecordDataset(records=[1, 2])[2]


def test_writers_refuse_what_they_cannot_store(world: ShapesWorld, tmp_path: Path) -> None:
    ds = shapes_dataset(world, "coco_panoptic", 1)
    with pytest.raises(ValueError, match="categories"):
        write_coco_panoptic(list(ds), tmp_path)
    with pytest.raises(ValueError, match="appears twice"):
        write_coco_panoptic([ds[0], ds[0]], tmp_path, categories=ds.categories)
    with pytest.raises(ValueError, match="fmt"):
        shapes_dataset(world, "pascal", 1)
