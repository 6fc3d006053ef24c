"""ADE20K-style semantic segmentation: image files and single-channel label PNGs of the same stem.

Layout under ``root`` (ADEChallengeData2016's)::

    images/{split}/<stem>.<ext>
    annotations/{split}/<stem>.png

With ``reduce_zero_label=True`` (ADE20K's convention) PNG value 0 means "other" and becomes the
ignore index, and value ``v > 0`` is class ``v - 1``; otherwise PNG values are the class ids and
255 is the ignore index. Class names are not part of the format: pass the categories.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segblocks.data.formats._io import (
    DatasetFormatError,
    Staging,
    read_index_png,
    read_rgb,
    staged_files,
    write_index_png,
    write_rgb,
)
from segblocks.data.formats.dataset import RecordDataset
from segblocks.data.formats.records import CategoryRecord, SemanticRecord

__all__ = ["IGNORE_INDEX", "read_ade20k", "write_ade20k"]

logger = logging.getLogger(__name__)

IGNORE_INDEX = 255
_IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def write_ade20k(
    records: RecordDataset[SemanticRecord] | Sequence[SemanticRecord],
    root: str | Path,
    *,
    split: str = "validation",
    reduce_zero_label: bool = True,
) -> Path:
    """Write semantic records in the ADE20K layout.

    Images are saved under their ``file_name`` in the format its extension names (use ``.png`` for
    an exact round trip; JPEG is lossy).

    Args:
        records: the records; ``file_name`` stems must be unique.
        root: dataset root folder.
        split: split folder name.
        reduce_zero_label: store class ``c`` as ``c + 1`` and ignored pixels as 0.

    Returns:
        The annotation folder.

    Raises:
        ValueError: a label that does not fit the PNG encoding, or repeated stems.
    """
    root = Path(root)
    ann_dir = root / "annotations" / split
    stems: set[str] = set()
    with staged_files() as staging:  # nothing replaces an existing file until every record is written
        _write_records(records, root, ann_dir, split, reduce_zero_label, stems, staging)
    logger.info("wrote %d ADE20K-style images to %s", len(stems), root)
    return ann_dir


def _write_records(
    records: RecordDataset[SemanticRecord] | Sequence[SemanticRecord],
    root: Path,
    ann_dir: Path,
    split: str,
    reduce_zero_label: bool,
    stems: set[str],
    staging: Staging,
) -> None:
    for rec in records:
        stem = Path(rec.file_name).stem
        if stem in stems:
            raise ValueError(f"records: two images share the stem {stem!r}")
        stems.add(stem)
        lab = rec.label_map
        ignore = lab == IGNORE_INDEX
        top = 253 if reduce_zero_label else 254
        bad = ~ignore & ((lab < 0) | (lab > top))
        if bad.any():
            raise ValueError(
                f"records: image {rec.image_id} has labels {sorted(set(lab[bad].tolist()))[:10]} "
                f"outside 0..{top} (or {IGNORE_INDEX} = ignore)"
            )
        png = np.where(ignore, 0, lab + 1) if reduce_zero_label else lab
        write_rgb(staging.path(root / "images" / split / rec.file_name), rec.image)
        write_index_png(staging.path(ann_dir / f"{stem}.png"), png.astype(np.uint8), palette=False)


def read_ade20k(
    root: str | Path,
    *,
    split: str = "validation",
    categories: Sequence[CategoryRecord] = (),
    num_classes: int | None = None,
    reduce_zero_label: bool = True,
) -> RecordDataset[SemanticRecord]:
    """Read an ADE20K-style dataset; image ids are positions in the sorted list of stems.

    Args:
        root: dataset root folder.
        split: split folder name.
        categories: the class list (kept on the dataset; also bounds the labels).
        num_classes: labels must be below this (default: ``len(categories)`` if given).
        reduce_zero_label: decode PNG ``v`` as class ``v - 1`` and 0 as ignore.

    Returns:
        One :class:`SemanticRecord` per image, sorted by stem.

    Raises:
        FileNotFoundError: a folder (now) is missing.
        DatasetFormatError: an image without annotation or an annotation without image (now); a
            label map of the wrong size, a colour PNG or a label beyond ``num_classes`` (on access).
    """
    root = Path(root)
    img_dir, ann_dir = root / "images" / split, root / "annotations" / split
    for d in (img_dir, ann_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"ADE20K folder not found: {d}")
    images: dict[str, Path] = {}
    for p in sorted(img_dir.iterdir()):
        if p.suffix.lower() in _IMAGE_EXTS:
            if p.stem in images:
                raise DatasetFormatError(f"{img_dir}: two images share the stem {p.stem!r}")
            images[p.stem] = p
    anns = {p.stem: p for p in sorted(ann_dir.glob("*.png"))}
    if set(images) - set(anns):
        raise DatasetFormatError(
            f"{ann_dir}: no annotation for images {sorted(set(images) - set(anns))[:10]}"
        )
    if set(anns) - set(images):
        raise DatasetFormatError(
            f"{img_dir}: no image for annotations {sorted(set(anns) - set(images))[:10]}"
        )
    limit = num_classes if num_classes is not None else (len(categories) or None)
    stems = sorted(images)

    def load(index: int) -> SemanticRecord:
        stem = stems[index]
        image = read_rgb(images[stem], "image")
        png = read_index_png(anns[stem], "label PNG").astype(np.int64)
        if png.shape != image.shape[:2]:
            raise DatasetFormatError(
                f"{anns[stem]}: mask of the wrong size: label map {png.shape}, image {image.shape[:2]}"
            )
        labels = np.where(png == 0, IGNORE_INDEX, png - 1) if reduce_zero_label else png
        if limit is not None:
            bad = (labels != IGNORE_INDEX) & (labels >= limit)
            if bad.any():
                raise DatasetFormatError(
                    f"{anns[stem]}: labels {sorted(set(labels[bad].tolist()))[:10]} beyond the {limit} classes"
                )
        return SemanticRecord(image_id=index, file_name=images[stem].name, image=image, label_map=labels)

    return RecordDataset(loader=load, length=len(stems), categories=list(categories))
