"""File helpers shared by the dataset formats: JSON, PNG and RLE with clear errors."""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "MAX_PIXELS",
    "DatasetFormatError",
    "Staging",
    "check_json_size",
    "decode_segmentation",
    "encode_json",
    "encode_rle",
    "id_to_rgb",
    "image_size",
    "read_index_png",
    "read_json",
    "read_rgb",
    "require",
    "rgb_to_id",
    "staged_files",
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


def _json_scalar(value: Any) -> Any:
    """numpy scalars become Python numbers; anything else JSON cannot hold is refused."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"a value of type {type(value).__name__} cannot be written to JSON")


def encode_json(data: Any, what: str) -> str:
    """Encode ``data`` as compact JSON text, before anything is written.

    numpy scalars are written as Python numbers; NaN and infinity are refused (not valid JSON).

    Raises:
        ValueError: ``data`` holds a value JSON cannot represent (names ``what``).
    """
    try:
        return json.dumps(data, separators=(",", ":"), default=_json_scalar, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: cannot be written as JSON: {e}") from e


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as compact JSON atomically (a temporary file renamed at the end)."""
    text = encode_json(data, str(path))
    with staged_files() as staging:
        staging.path(path).write_text(text, encoding="utf-8")


class Staging:
    """Temporary files beside their targets, renamed onto the targets by :func:`staged_files`."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._created: list[Path] = []  # folders made here, removed again on abort

    def path(self, target: Path) -> Path:
        """A temporary path in ``target``'s folder (same extension), renamed to ``target`` at the end."""
        missing = [d for d in (target.parent, *target.parent.parents) if not d.exists()]
        self._created.extend(reversed(missing))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.stem}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}"
        self._pending.append((tmp, target))
        return tmp

    def commit(self) -> None:
        """Rename every temporary file onto its target."""
        for tmp, target in self._pending:
            os.replace(tmp, target)
        self._pending.clear()

    def abort(self) -> None:
        """Delete the temporary files and the folders made for them; the targets stay as they were."""
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()
        for folder in reversed(self._created):
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): leave it
                pass
        self._created.clear()


@contextmanager
def staged_files() -> Iterator[Staging]:
    """Write files through temporary paths; rename them all on success, delete them on error.

    A writer that fails half-way therefore leaves an existing dataset as it was.
    """
    staging = Staging()
    try:
        yield staging
    except BaseException:
        staging.abort()
        raise
    staging.commit()


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


#: The largest image a reader accepts from a JSON size (2**28 pixels, e.g. 16384 x 16384): a size
#: beyond it is a corrupt file, not an image, and would otherwise be allocated before any check.
MAX_PIXELS = 1 << 28


def check_json_size(height: int, width: int, where: str) -> None:
    """Refuse a ``height x width`` stated in a JSON file that is not positive or beyond :data:`MAX_PIXELS`.

    Raises:
        DatasetFormatError: naming ``where``.
    """
    if height <= 0 or width <= 0 or height * width > MAX_PIXELS:
        raise DatasetFormatError(
            f"{where}: implausible image size {height} x {width} (expected positive sides and at most "
            f"{MAX_PIXELS} pixels)"
        )


@contextmanager
def _pil_errors(path: Path, what: str) -> Iterator[None]:
    """Check that ``path`` exists; turn PIL's errors (not an image, truncated) into a format error."""
    _exists(path, what)
    try:
        yield
    except (OSError, SyntaxError) as e:  # PIL: not an image, truncated, or a corrupt header
        raise DatasetFormatError(f"{path}: cannot read the {what}: {e}") from e


def image_size(path: Path, what: str) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header, without decoding the pixels.

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetFormatError: the file is not a readable image.
    """
    with _pil_errors(path, what), Image.open(path) as im:
        return int(im.height), int(im.width)


def read_rgb(path: Path, what: str = "image") -> np.ndarray:
    """Read an image as ``[H, W, 3]`` uint8 RGB.

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetFormatError: the file is not a readable image.
    """
    with _pil_errors(path, what), Image.open(path) as im:
        return np.asarray(im.convert("RGB") if im.mode != "RGB" else im, dtype=np.uint8).copy()


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
    with _pil_errors(path, what), Image.open(path) as im:
        if im.mode not in ("L", "P"):
            raise DatasetFormatError(
                f"{path}: expected a single-channel {what} (PNG mode L or P), got mode {im.mode}"
            )
        return np.asarray(im, dtype=np.uint8).copy()


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
