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

from segblocks.data.formats._io import (
    DatasetFormatError,
    id_to_rgb,
    read_json,
    read_rgb,
    require,
    rgb_to_id,
    write_json,
    write_rgb,
)
from segblocks.data.formats.dataset import RecordDataset
from segblocks.data.formats.records import CategoryRecord, PanopticRecord, PanopticSegment

__all__ = ["read_coco_panoptic", "write_coco_panoptic"]

logger = logging.getLogger(__name__)


def _paths(root: Path, split: str) -> tuple[Path, Path, Path]:
    return (
        root / "annotations" / f"panoptic_{split}.json",
        root / "annotations" / f"panoptic_{split}",
        root / split,
    )


def _bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def categories_json(categories: Sequence[CategoryRecord]) -> list[dict[str, Any]]:
    """COCO ``categories`` entries (id, name, isthing)."""
    return [{"id": c.id, "name": c.name, "isthing": int(c.is_thing)} for c in categories]


def parse_categories(data: Any, where: str) -> list[CategoryRecord]:
    """Read COCO ``categories`` (``isthing`` defaults to 1, as in COCO instances)."""
    cats = require(data, "categories", where, list)
    out = []
    for i, c in enumerate(cats):
        w = f"{where}: categories[{i}]"
        out.append(
            CategoryRecord(
                id=require(c, "id", w, int),
                name=str(require(c, "name", w, str)),
                is_thing=bool(c.get("isthing", 1)) if isinstance(c, dict) else True,
            )
        )
    ids = [c.id for c in out]
    if len(set(ids)) != len(ids):
        raise DatasetFormatError(f"{where}: repeated category ids in {ids}")
    return out


def parse_images(data: Any, where: str) -> dict[int, dict[str, Any]]:
    """Read COCO ``images`` into ``{id: {file_name, height, width}}`` in file order."""
    images: dict[int, dict[str, Any]] = {}
    for i, im in enumerate(require(data, "images", where, list)):
        w = f"{where}: images[{i}]"
        iid = require(im, "id", w, int)
        if iid in images:
            raise DatasetFormatError(f"{w}: image id {iid} appears twice")
        images[iid] = {
            "file_name": require(im, "file_name", w, str),
            "height": require(im, "height", w, int),
            "width": require(im, "width", w, int),
        }
    return images


def write_coco_panoptic(
    records: RecordDataset[PanopticRecord] | Sequence[PanopticRecord],
    root: str | Path,
    *,
    split: str = "val",
    categories: Sequence[CategoryRecord] | None = None,
) -> Path:
    """Write panoptic records in the COCO panoptic layout.

    Images are saved under their ``file_name`` in the format its extension names (use ``.png`` for
    an exact round trip; JPEG is lossy).

    Args:
        records: the records (a :class:`RecordDataset` carries its categories).
        root: dataset root folder.
        split: split name used in the file names.
        categories: the categories (default: ``records.categories``).

    Returns:
        The path of the JSON file.

    Raises:
        ValueError: no categories, a segment of an unknown category, repeated image ids or names.
    """
    cats = list(categories if categories is not None else getattr(records, "categories", []))
    if not cats:
        raise ValueError("categories: expected the dataset's categories, got none")
    known = {c.id for c in cats}
    root = Path(root)
    json_path, png_dir, image_dir = _paths(root, split)
    images, annotations = [], []
    seen_ids: set[int] = set()
    seen_pngs: set[str] = set()
    for rec in records:
        if rec.image_id in seen_ids:
            raise ValueError(f"records: image id {rec.image_id} appears twice")
        png_name = Path(rec.file_name).with_suffix(".png").name
        if png_name in seen_pngs:
            raise ValueError(f"records: two images map to the annotation file {png_name}")
        seen_ids.add(rec.image_id)
        seen_pngs.add(png_name)
        h, w = rec.panoptic.shape
        infos = []
        for s in rec.segments:
            if s.category_id not in known:
                raise ValueError(
                    f"records: image {rec.image_id} segment {s.id} has unknown category {s.category_id}"
                )
            mask = rec.panoptic == s.id
            infos.append(
                {
                    "id": s.id,
                    "category_id": s.category_id,
                    "iscrowd": int(s.iscrowd),
                    "area": int(mask.sum()),
                    "bbox": _bbox(mask),
                }
            )
        images.append({"id": rec.image_id, "file_name": rec.file_name, "height": h, "width": w})
        annotations.append({"image_id": rec.image_id, "file_name": png_name, "segments_info": infos})
        write_rgb(image_dir / rec.file_name, rec.image)
        write_rgb(png_dir / png_name, id_to_rgb(rec.panoptic))
    write_json(json_path, {"images": images, "annotations": annotations, "categories": categories_json(cats)})
    logger.info("wrote %d COCO panoptic images to %s", len(images), root)
    return json_path


def _read_id_png(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"panoptic PNG not found: {path}")
    try:
        with Image.open(path) as im:
            if im.mode != "RGB":
                raise DatasetFormatError(f"{path}: expected an RGB panoptic PNG, got mode {im.mode}")
            return rgb_to_id(np.asarray(im))
    except OSError as e:
        raise DatasetFormatError(f"{path}: cannot read the panoptic PNG: {e}") from e


def read_coco_panoptic(
    root: str | Path,
    *,
    split: str = "val",
    json_file: str | Path | None = None,
    png_dir: str | Path | None = None,
    image_dir: str | Path | None = None,
) -> RecordDataset[PanopticRecord]:
    """Read a COCO panoptic dataset.

    The JSON is parsed and checked now; images and PNGs are read when an item is accessed.

    Args:
        root: dataset root folder.
        split: split name (sets the default paths).
        json_file: the JSON file (default ``root/annotations/panoptic_{split}.json``).
        png_dir: the PNG folder (default ``root/annotations/panoptic_{split}``).
        image_dir: the image folder (default ``root/{split}``).

    Returns:
        One :class:`PanopticRecord` per image, in the order of the JSON's ``images``.

    Raises:
        FileNotFoundError: the JSON (now) or an image / PNG (on access) is missing.
        DatasetFormatError: malformed JSON, missing keys, unknown image or category ids, duplicate
            ids, images without annotation; on access: a PNG of the wrong size, ids in the PNG
            without segment info or segments absent from the PNG, areas that disagree.
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
    images = parse_images(data, where)
    anns: dict[int, dict[str, Any]] = {}
    for i, ann in enumerate(require(data, "annotations", where, list)):
        w = f"{where}: annotations[{i}]"
        iid = require(ann, "image_id", w, int)
        if iid not in images:
            raise DatasetFormatError(f"{w}: image_id {iid} is not in 'images'")
        if iid in anns:
            raise DatasetFormatError(f"{w}: a second annotation for image {iid}")
        segs: list[tuple[PanopticSegment, int | None]] = []
        for j, s in enumerate(require(ann, "segments_info", w, list)):
            ws = f"{w}.segments_info[{j}]"
            seg = PanopticSegment(
                id=require(s, "id", ws, int),
                category_id=require(s, "category_id", ws, int),
                iscrowd=bool(s.get("iscrowd", 0)),
            )
            if seg.category_id not in known:
                raise DatasetFormatError(f"{ws}: unknown category_id {seg.category_id}")
            if seg.id <= 0:
                raise DatasetFormatError(f"{ws}: segment ids must be positive (0 is VOID), got {seg.id}")
            area = s.get("area")
            segs.append((seg, int(area) if area is not None else None))
        ids = [s.id for s, _ in segs]
        if len(set(ids)) != len(ids):
            raise DatasetFormatError(f"{w}: repeated segment ids in {ids}")
        anns[iid] = {"file_name": require(ann, "file_name", w, str), "segments": segs}
    missing = [iid for iid in images if iid not in anns]
    if missing:
        raise DatasetFormatError(f"{where}: images {missing[:10]} have no annotation")
    order = list(images)

    def load(index: int) -> PanopticRecord:
        iid = order[index]
        im, ann = images[iid], anns[iid]
        png_path = png_root / ann["file_name"]
        image = read_rgb(img_root / im["file_name"], "image")
        ids = _read_id_png(png_path)
        expected = (im["height"], im["width"])
        for what, arr in (("image", image), ("panoptic PNG", ids)):
            if arr.shape[:2] != expected:
                raise DatasetFormatError(
                    f"{png_path if what != 'image' else img_root / im['file_name']}: mask of the wrong size: "
                    f"{what} is {arr.shape[:2]}, the JSON says {expected} for image {iid}"
                )
        listed = {s.id: a for s, a in ann["segments"]}
        present, counts = np.unique(ids, return_counts=True)
        area = dict(zip(present.tolist(), counts.tolist()))
        area.pop(0, None)
        no_info = sorted(set(area) - set(listed))
        if no_info:
            raise DatasetFormatError(
                f"{png_path}: ids {no_info[:10]} appear in the PNG but have no segment info"
            )
        absent = sorted(set(listed) - set(area))
        if absent:
            raise DatasetFormatError(
                f"{png_path}: segments {absent[:10]} of the JSON do not appear in the PNG"
            )
        wrong = sorted(i for i, a in listed.items() if a is not None and a != area[i])
        if wrong:
            raise DatasetFormatError(
                f"{png_path}: the JSON area of segments {wrong[:10]} differs from the PNG"
            )
        return PanopticRecord(
            image_id=iid,
            file_name=im["file_name"],
            image=image,
            panoptic=ids,
            segments=[s for s, _ in ann["segments"]],
        )

    return RecordDataset(loader=load, length=len(order), categories=cats)
