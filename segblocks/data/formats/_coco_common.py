"""Parts shared by the COCO-style formats: categories, image lists and writer-side record checks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from segblocks._validation import check_vocabulary
from segblocks.data.formats._io import DatasetFormatError, check_json_size, require
from segblocks.data.formats.records import CategoryRecord

__all__ = [
    "categories_json",
    "check_categories",
    "check_file_name",
    "check_prediction_scores",
    "check_record_id",
    "check_written_record",
    "parse_categories",
    "parse_images",
]


def check_categories(records: object, categories: Sequence[CategoryRecord] | None) -> list[CategoryRecord]:
    """The categories a writer writes (``categories`` or ``records.categories``), checked.

    Raises:
        ValueError: none given, repeated ids or repeated names.
        TypeError: an entry is not a :class:`CategoryRecord`.
    """
    cats = list(categories if categories is not None else getattr(records, "categories", []))
    if not cats:
        raise ValueError("categories: expected the dataset's categories, got none")
    for i, c in enumerate(cats):
        if not isinstance(c, CategoryRecord):
            raise TypeError(f"categories[{i}]: expected a CategoryRecord, got {type(c).__name__}")
    ids = [c.id for c in cats]
    if len(set(ids)) != len(ids):
        raise ValueError(f"categories: repeated category ids in {ids}")
    check_vocabulary("categories (names)", [c.name for c in cats])
    return cats


def check_record_id(name: str, value: object) -> int:
    """An id a writer puts into JSON: an int (numpy ints accepted), as a Python int.

    Raises:
        TypeError: not an integer.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: expected an int id, got {type(value).__name__} {value!r}")
    return int(value)


def check_written_record(
    index: int, rec: object, kind: type, seen: set[int], id_field: str
) -> tuple[str, int]:
    """Writer-side checks of one record: its type, and an int id (``id_field``) not seen before.

    Returns:
        ``("records[i]", id)``; the id is added to ``seen``.

    Raises:
        TypeError: ``rec`` is not a ``kind`` or its id is not an int.
        ValueError: the id appears twice.
    """
    where = f"records[{index}]"
    if not isinstance(rec, kind):
        raise TypeError(f"{where}: expected a {kind.__name__}, got {type(rec).__name__}")
    rid = check_record_id(f"{where}.{id_field}", getattr(rec, id_field))
    if rid in seen:
        raise ValueError(f"records: {id_field.replace('_', ' ')} {rid} appears twice")
    seen.add(rid)
    return where, rid


def check_prediction_scores(rec: Any, name: str) -> np.ndarray:
    """The ``[N]`` scores of a prediction record (``name`` says which, e.g. ``"image 3"``).

    Raises:
        ValueError: no scores (ground truth?) or NaN / infinite scores.
    """
    if rec.scores is None:
        raise ValueError(f"records: {name} has no scores (ground truth?)")
    if not np.isfinite(rec.scores).all():
        raise ValueError(f"records: {name} has non-finite scores")
    return np.asarray(rec.scores)


def check_file_name(name: str, value: object) -> str:
    """A relative file name a writer puts into JSON and writes under the dataset root.

    Raises:
        ValueError: empty, absolute or leaving the dataset folder (``..``).
        TypeError: not a string.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a file name (str), got {type(value).__name__}")
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if (
        not value
        or PurePosixPath(value).is_absolute()
        or PureWindowsPath(value).is_absolute()
        or ".." in parts
    ):
        raise ValueError(f"{name}: expected a relative file name inside the dataset, got {value!r}")
    return value


def categories_json(categories: Sequence[CategoryRecord]) -> list[dict[str, Any]]:
    """COCO ``categories`` entries (id, name, isthing)."""
    return [{"id": c.id, "name": c.name, "isthing": int(c.is_thing)} for c in categories]


def parse_categories(data: Any, where: str) -> list[CategoryRecord]:
    """Read COCO ``categories`` (``isthing`` is 0 / 1 or a bool and defaults to 1, as in COCO instances).

    Raises:
        DatasetFormatError: missing or mistyped keys, repeated ids or names.
    """
    cats = require(data, "categories", where, list)
    out = []
    for i, c in enumerate(cats):
        w = f"{where}: categories[{i}]"
        cid = require(c, "id", w, int)
        name = require(c, "name", w, str)
        thing = c.get("isthing", 1)
        if thing not in (0, 1) or isinstance(thing, float):  # True / False compare equal to 1 / 0
            raise DatasetFormatError(f"{w}: 'isthing' should be 0 or 1, got {thing!r}")
        out.append(CategoryRecord(id=cid, name=name, is_thing=bool(thing)))
    ids = [c.id for c in out]
    if len(set(ids)) != len(ids):
        raise DatasetFormatError(f"{where}: repeated category ids in {ids}")
    try:
        check_vocabulary("categories", [c.name for c in out])
    except (TypeError, ValueError) as e:
        raise DatasetFormatError(f"{where}: {e}") from e
    return out


def parse_images(data: Any, where: str) -> dict[int, dict[str, Any]]:
    """Read COCO ``images`` into ``{id: {file_name, height, width}}`` in file order.

    Raises:
        DatasetFormatError: missing or mistyped keys, repeated ids, implausible sizes.
    """
    images: dict[int, dict[str, Any]] = {}
    for i, im in enumerate(require(data, "images", where, list)):
        w = f"{where}: images[{i}]"
        iid = require(im, "id", w, int)
        if iid in images:
            raise DatasetFormatError(f"{w}: image id {iid} appears twice")
        h, wd = require(im, "height", w, int), require(im, "width", w, int)
        check_json_size(h, wd, w)
        images[iid] = {"file_name": require(im, "file_name", w, str), "height": h, "width": wd}
    return images
