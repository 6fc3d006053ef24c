"""COCO panoptic format: one RGB PNG per image (id = R + 256 G + 256² B) plus a JSON file.

Layout under ``root`` (COCO's, with ``split`` e.g. ``"val2017"``)::

    {split}/<image files>
    annotations/panoptic_{split}.json
    annotations/panoptic_{split}/<one PNG per image>

The JSON holds ``images`` (id, file_name, height, width), ``annotations`` (image_id, file_name,
``segments_info`` with id, category_id, iscrowd, area, bbox ``[x, y, w, h]``) and ``categories``
(id, name, isthing).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segblocks.data.formats._coco_common import (
    categories_json,
    check_categories,
    check_file_name,
    check_record_id,
    check_written_record,
    parse_categories,
    parse_images,
)
from segblocks.data.formats._io import (
    DatasetFormatError,
    check_json_size,
    encode_json,
    id_to_rgb,
    read_json,
    read_rgb,
    require,
    rgb_to_id,
    staged_files,
    write_rgb,
)
from segblocks.data.formats.dataset import RecordDataset
from segblocks.data.formats.records import CategoryRecord, PanopticRecord, PanopticSegment

__all__ = ["read_coco_panoptic", "write_coco_panoptic"]

logger = logging.getLogger(__name__)

#: Segment ids must fit the three 8-bit channels of a panoptic PNG.
MAX_SEGMENT_ID = (1 << 24) - 1


def _paths(root: Path, split: str) -> tuple[Path, Path, Path]:
    return (
        root / "annotations" / f"panoptic_{split}.json",
        root / "annotations" / f"panoptic_{split}",
        root / split,
    )


def _bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def _segments_info(rec: PanopticRecord, known: set[int], where: str) -> list[dict[str, Any]]:
    infos = []
    for s in rec.segments:
        sid, cid = (
            check_record_id(f"{where}.segments id", s.id),
            check_record_id(f"{where} category_id", s.category_id),
        )
        if cid not in known:
            raise ValueError(f"{where}: segment {sid} has unknown category {cid}")
        if sid > MAX_SEGMENT_ID:
            raise ValueError(f"{where}: segment id {sid} does not fit a panoptic PNG (max {MAX_SEGMENT_ID})")
        mask = rec.panoptic == sid
        infos.append(
            {
                "id": sid,
                "category_id": cid,
                "iscrowd": int(bool(s.iscrowd)),
                "area": int(mask.sum()),
                "bbox": _bbox(mask),
            }
        )
    return infos


def write_coco_panoptic(
    records: RecordDataset[PanopticRecord] | Sequence[PanopticRecord],
    root: str | Path,
    *,
    split: str = "val",
    categories: Sequence[CategoryRecord] | None = None,
) -> Path:
    """Write panoptic records in the COCO panoptic layout, atomically.

    Images are saved under their ``file_name`` in the format its extension names (use ``.png`` for
    an exact round trip; JPEG is lossy). Every file is first written under a temporary name in its
    folder and renamed only once every record is checked and the JSON encoded: on an error, an
    existing dataset at ``root`` is left as it was.

    Args:
        records: the records, with images (a :class:`RecordDataset` carries its categories).
        root: dataset root folder.
        split: split name used in the file names.
        categories: the categories (default: ``records.categories``).

    Returns:
        The path of the JSON file.

    Raises:
        ValueError: no categories, repeated category ids or names, a record without image, a
            segment of an unknown category, repeated image ids or annotation names, a file name
            outside the dataset folder.
        TypeError: a record that is not a :class:`PanopticRecord`, or an id that is not an int.
    """
    cats = check_categories(records, categories)
    known = {c.id for c in cats}
    root = Path(root)
    json_path, png_dir, image_dir = _paths(root, split)
    images, annotations = [], []
    seen_ids: set[int] = set()
    seen_pngs: set[str] = set()
    with staged_files() as staging:
        for i, rec in enumerate(records):
            where, iid = check_written_record(i, rec, PanopticRecord, seen_ids, "image_id")
            if rec.image is None:
                raise ValueError(f"{where}: image {iid} has no image to write")
            file_name = check_file_name(f"{where}.file_name", rec.file_name)
            png_name = Path(file_name).with_suffix(".png").name
            if png_name in seen_pngs:
                raise ValueError(f"records: two images map to the annotation file {png_name}")
            seen_pngs.add(png_name)
            h, w = rec.panoptic.shape
            check_json_size(h, w, where)  # what the reader would refuse
            infos = _segments_info(rec, known, where)
            images.append({"id": iid, "file_name": file_name, "height": h, "width": w})
            annotations.append({"image_id": iid, "file_name": png_name, "segments_info": infos})
            write_rgb(staging.path(image_dir / file_name), rec.image)
            write_rgb(staging.path(png_dir / png_name), id_to_rgb(rec.panoptic))
        text = encode_json(
            {"images": images, "annotations": annotations, "categories": categories_json(cats)},
            str(json_path),
        )
        staging.path(json_path).write_text(text, encoding="utf-8")
    logger.info("wrote %d COCO panoptic images to %s", len(images), root)
    return json_path


def read_id_png(path: Path) -> np.ndarray:
    """Segment ids ``[H, W]`` int64 of a COCO panoptic PNG (``R + 256 G + 256² B``).

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetFormatError: not a readable RGB PNG.
    """
    if not path.is_file():
        raise FileNotFoundError(f"panoptic PNG not found: {path}")
    try:
        with Image.open(path) as im:
            if im.mode != "RGB":
                raise DatasetFormatError(f"{path}: expected an RGB panoptic PNG, got mode {im.mode}")
            return rgb_to_id(np.asarray(im))
    except (OSError, SyntaxError) as e:
        raise DatasetFormatError(f"{path}: cannot read the panoptic PNG: {e}") from e


def parse_segments(ann: Any, w: str, known: set[int]) -> list[PanopticSegment]:
    """The ``segments_info`` of one annotation (JSON areas kept on the segments).

    Raises:
        DatasetFormatError: missing keys, unknown categories, non-positive or repeated ids.
    """
    segs: list[PanopticSegment] = []
    for j, s in enumerate(require(ann, "segments_info", w, list)):
        ws = f"{w}.segments_info[{j}]"
        sid, cid = require(s, "id", ws, int), require(s, "category_id", ws, int)
        crowd = s.get("iscrowd", 0)
        if crowd not in (0, 1) or isinstance(crowd, float):
            raise DatasetFormatError(f"{ws}: 'iscrowd' should be 0 or 1, got {crowd!r}")
        area = s.get("area")
        if area is not None and (isinstance(area, bool) or not isinstance(area, int | float) or area < 0):
            raise DatasetFormatError(f"{ws}: 'area' should be a non-negative number, got {area!r}")
        if cid not in known:
            raise DatasetFormatError(f"{ws}: unknown category_id {cid}")
        if sid <= 0 or sid > MAX_SEGMENT_ID:
            raise DatasetFormatError(
                f"{ws}: segment ids must lie in 1..{MAX_SEGMENT_ID} (0 is VOID), got {sid}"
            )
        segs.append(PanopticSegment(sid, cid, bool(crowd), None if area is None else int(area)))
    ids = [s.id for s in segs]
    if len(set(ids)) != len(ids):
        raise DatasetFormatError(f"{w}: repeated segment ids in {ids}")
    return segs


def check_png_segments(
    png_path: Path, ids: np.ndarray, segments: Sequence[PanopticSegment], check_areas: bool
) -> None:
    """Every id of the PNG has segment info and every segment appears (and, optionally, has its JSON area).

    Raises:
        DatasetFormatError: naming the PNG and the offending ids.
    """
    present, counts = np.unique(ids, return_counts=True)
    area = dict(zip(present.tolist(), counts.tolist()))
    area.pop(0, None)
    listed = {s.id: s.area for s in segments}
    no_info = sorted(set(area) - set(listed))
    if no_info:
        raise DatasetFormatError(f"{png_path}: ids {no_info[:10]} appear in the PNG but have no segment info")
    absent = sorted(set(listed) - set(area))
    if absent:
        raise DatasetFormatError(f"{png_path}: segments {absent[:10]} of the JSON do not appear in the PNG")
    wrong = sorted(i for i, a in listed.items() if check_areas and a is not None and a != area[i])
    if wrong:
        raise DatasetFormatError(f"{png_path}: the JSON area of segments {wrong[:10]} differs from the PNG")


def read_coco_panoptic(
    root: str | Path,
    *,
    split: str = "val",
    json_file: str | Path | None = None,
    png_dir: str | Path | None = None,
    image_dir: str | Path | None = None,
    images: bool = True,
    check_areas: bool = True,
) -> RecordDataset[PanopticRecord]:
    """Read a COCO panoptic dataset.

    The JSON is parsed and checked now; images and PNGs are read when an item is accessed. Each
    segment keeps the JSON's ``area`` (``PanopticSegment.area``).

    Args:
        root: dataset root folder.
        split: split name (sets the default paths).
        json_file: the JSON file (default ``root/annotations/panoptic_{split}.json``).
        png_dir: the PNG folder (default ``root/annotations/panoptic_{split}``).
        image_dir: the image folder (default ``root/{split}``).
        images: read the RGB images; False gives records with ``image=None`` and needs only the
            JSON and the PNGs (as panopticapi's evaluation).
        check_areas: refuse a JSON ``area`` that differs from the PNG's pixel count.

    Returns:
        One :class:`PanopticRecord` per image, in the order of the JSON's ``images``.

    Raises:
        FileNotFoundError: the JSON (now) or an image / PNG (on access) is missing.
        DatasetFormatError: malformed JSON, missing keys, unknown image or category ids, duplicate
            ids or category names, images without annotation; on access: a PNG of the wrong size,
            ids in the PNG without segment info or segments absent from the PNG, areas that disagree.
    """
    root = Path(root)
    d_json, d_png, d_img = _paths(root, split)
    json_path = Path(json_file) if json_file is not None else d_json
    png_root = Path(png_dir) if png_dir is not None else d_png
    img_root = Path(image_dir) if image_dir is not None else d_img
    data = read_json(json_path, "COCO panoptic JSON")
    where = str(json_path)
    cats = parse_categories(data, where)
    known = {c.id for c in cats}
    image_info = parse_images(data, where)
    anns: dict[int, dict[str, Any]] = {}
    for i, ann in enumerate(require(data, "annotations", where, list)):
        w = f"{where}: annotations[{i}]"
        iid = require(ann, "image_id", w, int)
        if iid not in image_info:
            raise DatasetFormatError(f"{w}: image_id {iid} is not in 'images'")
        if iid in anns:
            raise DatasetFormatError(f"{w}: a second annotation for image {iid}")
        anns[iid] = {
            "file_name": require(ann, "file_name", w, str),
            "segments": parse_segments(ann, w, known),
        }
    missing = [iid for iid in image_info if iid not in anns]
    if missing:
        raise DatasetFormatError(f"{where}: images {missing[:10]} have no annotation")
    order = list(image_info)

    def load(index: int) -> PanopticRecord:
        iid = order[index]
        im, ann = image_info[iid], anns[iid]
        png_path = png_root / ann["file_name"]
        image = read_rgb(img_root / im["file_name"], "image") if images else None
        ids = read_id_png(png_path)
        expected = (im["height"], im["width"])
        for path, arr in ((png_path, ids), (img_root / im["file_name"], image)):
            if arr is not None and arr.shape[:2] != expected:
                raise DatasetFormatError(
                    f"{path}: mask of the wrong size: the file is {arr.shape[:2]}, the JSON says "
                    f"{expected} for image {iid}"
                )
        check_png_segments(png_path, ids, ann["segments"], check_areas)
        return PanopticRecord(
            image_id=iid, file_name=im["file_name"], image=image, panoptic=ids, segments=list(ann["segments"])
        )

    return RecordDataset(loader=load, length=len(order), categories=cats)
