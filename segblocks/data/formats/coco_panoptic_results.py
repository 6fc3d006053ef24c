"""COCO panoptic predictions: panopticapi's predictions JSON (no ``images``, no ``categories``) and PNGs.

The predictions JSON holds ``annotations`` (image_id, file_name, ``segments_info`` with id and
category_id); the PNG folder holds one RGB PNG per annotation (id = R + 256 G + 256² B). Category
ids are checked against the ground truth's categories, given by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from segblocks.data.formats._io import DatasetFormatError, read_json, require
from segblocks.data.formats.coco_panoptic import check_png_segments, parse_segments, read_id_png
from segblocks.data.formats.records import CategoryRecord, PanopticRecord

__all__ = ["PanopticPredictions", "read_coco_panoptic_results"]


class PanopticPredictions(Mapping[int, PanopticRecord]):
    """``{image_id: PanopticRecord}`` (``image=None``); each PNG is read when its record is accessed.

    Args:
        annotations: per image id, the PNG ``file_name`` and the checked ``segments``.
        png_root: the folder of the prediction PNGs.
    """

    def __init__(self, annotations: dict[int, dict[str, Any]], png_root: Path) -> None:
        self._anns = annotations
        self._png_root = png_root

    def __getitem__(self, image_id: int) -> PanopticRecord:
        ann = self._anns[image_id]
        png_path = self._png_root / ann["file_name"]
        ids = read_id_png(png_path)
        # panopticapi recomputes prediction areas from the PNG, so stated areas are not checked.
        check_png_segments(png_path, ids, ann["segments"], check_areas=False)
        return PanopticRecord(
            image_id=image_id, file_name=ann["file_name"], image=None, panoptic=ids, segments=ann["segments"]
        )

    def __iter__(self) -> Iterator[int]:
        return iter(self._anns)

    def __len__(self) -> int:
        return len(self._anns)


def read_coco_panoptic_results(
    json_file: str | Path, png_dir: str | Path, *, categories: Sequence[CategoryRecord]
) -> PanopticPredictions:
    """Read panoptic predictions in panopticapi's format (the JSON is checked now, PNGs on access).

    Args:
        json_file: the predictions JSON (a ``categories`` key, if present, is not used).
        png_dir: the folder of prediction PNGs named by each annotation's ``file_name``.
        categories: the ground truth's categories (predicted category ids must be among them).

    Returns:
        ``{image_id: record}``; a record's segments are those of the JSON, its map the PNG's ids.

    Raises:
        FileNotFoundError: the JSON (now) or a PNG (on access) is missing.
        DatasetFormatError: malformed JSON, two annotations of one image, unknown category ids,
            non-positive or repeated segment ids; on access: ids in the PNG without segment info or
            segments absent from the PNG.
    """
    path = Path(json_file)
    data = read_json(path, "COCO panoptic predictions JSON")
    where = str(path)
    known = {c.id for c in categories}
    anns: dict[int, dict[str, Any]] = {}
    for i, ann in enumerate(require(data, "annotations", where, list)):
        w = f"{where}: annotations[{i}]"
        iid = require(ann, "image_id", w, int)
        if iid in anns:
            raise DatasetFormatError(f"{w}: a second prediction for image {iid}")
        anns[iid] = {
            "file_name": require(ann, "file_name", w, str),
            "segments": parse_segments(ann, w, known),
        }
    return PanopticPredictions(anns, Path(png_dir))
