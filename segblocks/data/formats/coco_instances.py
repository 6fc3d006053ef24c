"""COCO instances format (masks as RLE in one JSON file) and COCO detection results.

Layout under ``root``::

    {split}/<image files>
    annotations/instances_{split}.json

Annotations hold ``id``, ``image_id``, ``category_id``, ``segmentation`` (written as compressed
RLE; polygons and uncompressed RLE are read too), ``area``, ``bbox`` ``[x, y, w, h]`` and
``iscrowd``. Results files are lists of ``{image_id, category_id, segmentation, score}``, the form
``COCO.loadRes`` accepts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segblocks.data.formats._coco_common import (
    categories_json,
    check_categories,
    check_file_name,
    check_prediction_scores,
    check_record_id,
    check_written_record,
    parse_categories,
    parse_images,
)
from segblocks.data.formats._io import (
    DatasetFormatError,
    check_json_size,
    decode_segmentation,
    encode_json,
    encode_rle,
    read_json,
    read_rgb,
    require,
    staged_files,
    write_json,
    write_rgb,
)
from segblocks.data.formats.dataset import RecordDataset
from segblocks.data.formats.records import CategoryRecord, InstanceRecord

__all__ = ["read_coco_instances", "read_coco_results", "write_coco_instances", "write_coco_results"]

logger = logging.getLogger(__name__)


def _bbox(mask: np.ndarray) -> list[float]:
    if not mask.any():
        return [0.0, 0.0, 0.0, 0.0]
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def write_coco_instances(
    records: RecordDataset[InstanceRecord] | Sequence[InstanceRecord],
    root: str | Path,
    *,
    split: str = "val",
    categories: Sequence[CategoryRecord] | None = None,
) -> Path:
    """Write instance records (with images) in the COCO instances layout, atomically.

    Files are written under temporary names and renamed once every record is checked and the JSON
    encoded: on an error an existing dataset at ``root`` is left as it was.

    Args:
        records: ground-truth records with images.
        root: dataset root folder.
        split: split name used in the paths.
        categories: the categories (default: ``records.categories``).

    Returns:
        The path of the JSON file.

    Raises:
        ValueError: missing categories or images, repeated category ids or names, unknown
            categories, repeated image or annotation ids, a file name outside the dataset folder.
        TypeError: a record that is not an :class:`InstanceRecord`, or an id that is not an int.
    """
    cats = check_categories(records, categories)
    known = {c.id for c in cats}
    root = Path(root)
    images, annotations = [], []
    seen_images: set[int] = set()
    seen_anns: set[int] = set()
    path = root / "annotations" / f"instances_{split}.json"
    with staged_files() as staging:
        for i, rec in enumerate(records):
            where, iid = check_written_record(i, rec, InstanceRecord, seen_images, "image_id")
            if rec.image is None:
                raise ValueError(f"{where}: image {iid} has no image to write")
            file_name = check_file_name(f"{where}.file_name", rec.file_name)
            h, w = rec.size
            check_json_size(h, w, where)  # what the reader would refuse
            images.append({"id": iid, "file_name": file_name, "height": h, "width": w})
            assert rec.areas is not None
            for k in range(len(rec.category_ids)):
                aid, cid = int(rec.instance_ids[k]), int(rec.category_ids[k])
                if cid not in known:
                    raise ValueError(f"records: image {iid} has unknown category {cid}")
                if aid in seen_anns:
                    raise ValueError(f"records: annotation id {aid} appears twice")
                if not math.isfinite(float(rec.areas[k])) or rec.areas[k] < 0:
                    raise ValueError(
                        f"{where}.areas[{k}]: expected a finite non-negative area, got {rec.areas[k]}"
                    )
                seen_anns.add(aid)
                annotations.append(
                    {
                        "id": aid,
                        "image_id": iid,
                        "category_id": cid,
                        "segmentation": encode_rle(rec.masks[k]),
                        "area": float(rec.areas[k]),
                        "bbox": _bbox(rec.masks[k]),
                        "iscrowd": int(rec.iscrowd[k]),
                    }
                )
            write_rgb(staging.path(root / split / file_name), rec.image)
        text = encode_json(
            {"images": images, "annotations": annotations, "categories": categories_json(cats)}, str(path)
        )
        staging.path(path).write_text(text, encoding="utf-8")
    logger.info("wrote %d COCO instance images to %s", len(images), root)
    return path


def read_coco_instances(
    root: str | Path,
    *,
    split: str = "val",
    json_file: str | Path | None = None,
    image_dir: str | Path | None = None,
    images: bool = True,
) -> RecordDataset[InstanceRecord]:
    """Read a COCO instances dataset (masks decoded on access).

    Args:
        root: dataset root folder.
        split: split name (sets the default paths).
        json_file: the JSON file (default ``root/annotations/instances_{split}.json``).
        image_dir: the image folder (default ``root/{split}``).
        images: read the images; False gives records with ``image=None`` and needs only the JSON.

    Returns:
        One :class:`InstanceRecord` per image (in the order of ``images``), annotations in file order.

    Raises:
        FileNotFoundError: the JSON (now) or an image (on access) is missing.
        DatasetFormatError: malformed JSON, missing keys, unknown image or category ids, repeated
            ids; on access: a mask or an image of the wrong size.
    """
    root = Path(root)
    json_path = Path(json_file) if json_file is not None else root / "annotations" / f"instances_{split}.json"
    img_root = Path(image_dir) if image_dir is not None else root / split
    data = read_json(json_path, "COCO instances JSON")
    where = str(json_path)
    cats = parse_categories(data, where)
    known = {c.id for c in cats}
    image_info = parse_images(data, where)
    per_image: dict[int, list[dict[str, Any]]] = {iid: [] for iid in image_info}
    seen: set[int] = set()
    for i, ann in enumerate(require(data, "annotations", where, list)):
        w = f"{where}: annotations[{i}]"
        aid = require(ann, "id", w, int)
        iid = require(ann, "image_id", w, int)
        cid = require(ann, "category_id", w, int)
        require(ann, "segmentation", w)
        if aid in seen:
            raise DatasetFormatError(f"{w}: annotation id {aid} appears twice")
        seen.add(aid)
        if iid not in image_info:
            raise DatasetFormatError(f"{w}: image_id {iid} is not in 'images'")
        if cid not in known:
            raise DatasetFormatError(f"{w}: unknown category_id {cid}")
        area = ann.get("area")
        if area is not None and (isinstance(area, bool) or not isinstance(area, int | float) or area < 0):
            raise DatasetFormatError(f"{w}: 'area' should be a non-negative number, got {area!r}")
        per_image[iid].append({**ann, "_where": w})
    order = list(image_info)

    def load(index: int) -> InstanceRecord:
        iid = order[index]
        im = image_info[iid]
        h, w = im["height"], im["width"]
        image_path = img_root / im["file_name"]
        image = read_rgb(image_path, "image") if images else None
        if image is not None and image.shape[:2] != (h, w):
            raise DatasetFormatError(
                f"{image_path}: image of the wrong size {image.shape[:2]}, the JSON says {(h, w)}"
            )
        anns = per_image[iid]
        masks = np.zeros((len(anns), h, w), bool)
        for k, a in enumerate(anns):
            masks[k] = decode_segmentation(a["segmentation"], h, w, a["_where"])
        return InstanceRecord(
            image_id=iid,
            file_name=im["file_name"],
            image=image,
            masks=masks,
            category_ids=np.array([a["category_id"] for a in anns], np.int64),
            instance_ids=np.array([a["id"] for a in anns], np.int64),
            iscrowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], bool),
            areas=np.array([float(a.get("area", masks[k].sum())) for k, a in enumerate(anns)], np.float64),
        )

    return RecordDataset(loader=load, length=len(order), categories=cats)


def write_coco_results(records: Iterable[InstanceRecord], path: str | Path) -> Path:
    """Write detections (records with scores) as a COCO results JSON list.

    Args:
        records: detection records (with ``scores``).
        path: the JSON file to write.

    Returns:
        ``path``.

    Raises:
        ValueError: a record has no scores.
    """
    out = []
    for rec in records:
        scores = check_prediction_scores(rec, f"image {rec.image_id}")
        for k in range(len(rec.category_ids)):
            out.append(
                {
                    "image_id": check_record_id("records image_id", rec.image_id),
                    "category_id": int(rec.category_ids[k]),
                    "segmentation": encode_rle(rec.masks[k]),
                    "score": float(scores[k]),
                }
            )
    p = Path(path)
    write_json(p, out)
    return p


class CocoResults(Mapping[int, InstanceRecord]):
    """``{image_id: InstanceRecord}`` of checked detections; masks are decoded when a record is accessed.

    Args:
        grouped: per image id, the checked entries ``(segmentation, category_id, score, where)``.
    """

    def __init__(self, grouped: dict[int, list[tuple[dict[str, Any], int, float, str]]]) -> None:
        self._grouped = grouped

    def __getitem__(self, image_id: int) -> InstanceRecord:
        rows = self._grouped[image_id]
        masks = [decode_segmentation(segm, segm["size"][0], segm["size"][1], w) for segm, _, _, w in rows]
        return InstanceRecord(
            image_id=image_id,
            file_name="",
            image=None,
            masks=np.stack(masks),
            category_ids=np.array([r[1] for r in rows], np.int64),
            instance_ids=np.arange(len(rows), dtype=np.int64),
            iscrowd=np.zeros(len(rows), bool),
            scores=np.array([r[2] for r in rows], np.float64),
        )

    def __iter__(self) -> Iterator[int]:
        return iter(self._grouped)

    def __len__(self) -> int:
        return len(self._grouped)

    def size_of(self, image_id: int) -> tuple[int, int]:
        """``(H, W)`` of an image's detections (from the RLE ``size``), without decoding them.

        Args:
            image_id: an image id of the results.
        """
        h, w = self._grouped[image_id][0][0]["size"]
        return int(h), int(w)


def read_coco_results(path: str | Path, *, categories: Sequence[CategoryRecord] | None = None) -> CocoResults:
    """Read a COCO results JSON list into one detection record per image id.

    Every entry is checked now; masks are decoded when a record is accessed (so a results file of a
    whole dataset is never decoded at once). Records have no image, ``file_name`` ``""``,
    ``instance_ids`` ``0..N-1`` in file order.

    Args:
        path: the results file (entries ``{image_id, category_id, segmentation (RLE), score}``).
        categories: if given, category ids are checked against them.

    Returns:
        ``{image_id: record}`` (a read-only mapping).

    Raises:
        FileNotFoundError: missing file.
        DatasetFormatError: malformed JSON or entries, non-finite scores, unknown categories, masks
            of different sizes within one image; on access: an RLE that cannot be decoded.
    """
    p = Path(path)
    data = read_json(p, "COCO results JSON")
    if not isinstance(data, list):
        raise DatasetFormatError(f"{p}: expected a JSON list of detections, got {type(data).__name__}")
    known = None if categories is None else {c.id for c in categories}
    grouped: dict[int, list[tuple[dict[str, Any], int, float, str]]] = {}
    for i, det in enumerate(data):
        w = f"{p}: [{i}]"
        iid = require(det, "image_id", w, int)
        cid = require(det, "category_id", w, int)
        score = float(require(det, "score", w, (int, float)))
        if not math.isfinite(score):
            raise DatasetFormatError(f"{w}: 'score' should be a finite number, got {score}")
        segm = require(det, "segmentation", w, dict)
        size = require(segm, "size", w, list)
        require(segm, "counts", w, (list, str))
        if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in size):
            raise DatasetFormatError(f"{w}: 'size' should be [height, width], got {size}")
        check_json_size(size[0], size[1], w)
        if known is not None and cid not in known:
            raise DatasetFormatError(f"{w}: unknown category_id {cid}")
        rows = grouped.setdefault(iid, [])
        if rows and list(rows[0][0]["size"]) != list(size):
            raise DatasetFormatError(
                f"{w}: mask of the wrong size {tuple(size)}, image {iid} has {tuple(rows[0][0]['size'])}"
            )
        rows.append((segm, cid, score, w))
    return CocoResults(grouped)
