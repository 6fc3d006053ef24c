"""File helpers shared by the dataset formats: JSON, PNG and RLE with clear errors."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "DatasetFormatError",
    "decode_segmentation",
    "encode_rle",
    "id_to_rgb",
    "read_index_png",
    "read_json",
    "read_rgb",
    "require",
    "rgb_to_id",
    "write_index_png",
    "write_json",
    "write_rgb",
]


class DatasetFormatError(ValueError):
    """A dataset file exists but its content breaks the format (names the file and the problem)."""


def _exists(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def read_json(path: str | Path, what: str = "annotation file") -> Any:
    """Parse a JSON file.

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetFormatError: the file is not valid JSON (with line and column).
    """
    p = _exists(Path(path), what)
    try:
        with p.open("r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetFormatError(f"{p}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise DatasetFormatError(f"{p}: not a UTF-8 text file ({e.reason})") from e


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as compact JSON, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))


def require(obj: Any, key: str, where: str, kind: type | tuple[type, ...] | None = None) -> Any:
    """Return ``obj[key]``; raise :class:`DatasetFormatError` naming ``where`` if it is missing or mistyped."""
    if not isinstance(obj, Mapping):
        raise DatasetFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise DatasetFormatError(f"{where}: missing key {key!r}")
    value = obj[key]
    if kind is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DatasetFormatError(f"{where}: {key!r} should be a {names}, got {type(value).__name__}")
    return value


def read_rgb(path: Path, what: str = "image") -> np.ndarray:
    """Read an image as ``[H, W, 3]`` uint8 RGB.

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetFormatError: the file is not a readable image.
    """
    _exists(path, what)
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB") if im.mode != "RGB" else im, dtype=np.uint8).copy()
    except OSError as e:
        raise DatasetFormatError(f"{path}: cannot read the {what}: {e}") from e


def write_rgb(path: Path, image: np.ndarray) -> None:
    """Write a ``[H, W, 3]`` uint8 image (PNG for a lossless round trip)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(path)


def read_index_png(path: Path, what: str) -> np.ndarray:
    """Read a single-channel PNG (grey ``L`` or palette ``P``) as ``[H, W]`` uint8 values.

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetFormatError: not readable, or a colour image where indices are expected.
    """
    _exists(path, what)
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P"):
                raise DatasetFormatError(
                    f"{path}: expected a single-channel {what} (PNG mode L or P), got mode {im.mode}"
                )
            return np.asarray(im, dtype=np.uint8).copy()
    except OSError as e:
        raise DatasetFormatError(f"{path}: cannot read the {what}: {e}") from e


def _palette() -> list[int]:
    """The PASCAL VOC / DAVIS colour map: the bits of each index spread over R, G and B."""
    out: list[int] = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out += [r, g, b]
    return out


def write_index_png(path: Path, values: np.ndarray, *, palette: bool) -> None:
    """Write ``[H, W]`` uint8 values as a grey (``L``) or palette (``P``) PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.ascontiguousarray(values, dtype=np.uint8)
    im = Image.fromarray(arr)  # mode L
    if palette:
        im.putpalette(_palette())  # turns it into a palette (P) image with the same indices
    im.save(path)


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic ids from ``[H, W, 3]`` colours: ``R + 256 G + 256² B`` (int64)."""
    c = rgb.astype(np.int64)
    return c[..., 0] + 256 * c[..., 1] + 65536 * c[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` uint8 colours of COCO panoptic ids (ids must lie in ``0..2**24-1``)."""
    if ids.size and (ids.min() < 0 or ids.max() >= 1 << 24):
        raise ValueError(
            f"ids: COCO panoptic ids must lie in 0..{(1 << 24) - 1}, got {ids.min()}..{ids.max()}"
        )
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)


def _mask_utils() -> Any:
    """``pycocotools.mask`` (COCO's RLE codec), with an actionable error when it is missing."""
    try:
        import pycocotools.mask as mask_utils
    except ImportError as e:  # pragma: no cover - pycocotools is a declared dependency
        raise ImportError("COCO / YouTube-VIS masks need pycocotools: pip install pycocotools") from e
    return mask_utils


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed COCO RLE of a ``[H, W]`` bool mask, JSON-ready (``counts`` as a string)."""
    mask_utils = _mask_utils()
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_segmentation(segm: Any, height: int, width: int, where: str) -> np.ndarray:
    """Decode a COCO segmentation (polygons, uncompressed or compressed RLE) to ``[H, W]`` bool.

    Raises:
        DatasetFormatError: unknown encoding, or an RLE whose size differs from ``(height, width)``.
    """
    mask_utils = _mask_utils()
    if isinstance(segm, Sequence) and not isinstance(segm, str):  # polygons
        polys = [list(map(float, p)) for p in segm]
        if not polys or any(len(p) < 6 or len(p) % 2 for p in polys):
            raise DatasetFormatError(f"{where}: polygons need at least 3 (x, y) points each")
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return np.asarray(mask_utils.decode(rle), dtype=bool)
    size = require(segm, "size", where, list)
    counts = require(segm, "counts", where, (list, str))
    if [int(v) for v in size] != [height, width]:
        raise DatasetFormatError(
            f"{where}: mask of the wrong size: RLE size {list(size)}, image size [{height}, {width}]"
        )
    rle = (
        mask_utils.frPyObjects(segm, height, width)
        if isinstance(counts, list)
        else {
            "size": [height, width],
            "counts": counts.encode("ascii"),
        }
    )
    try:
        with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword notice
            warnings.simplefilter("ignore", DeprecationWarning)
            return np.asarray(mask_utils.decode(rle), dtype=bool)
    except Exception as e:  # pycocotools raises bare errors on corrupt counts
        raise DatasetFormatError(f"{where}: cannot decode the RLE: {e}") from e
