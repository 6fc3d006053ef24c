"""Format-neutral records: what the readers return, the writers take and the shapes world exports.

Each record validates its arrays when created and compares exactly with ``==`` (arrays by value and
dtype), so a write-then-read round trip can be checked with one comparison. Arrays are numpy with
fixed dtypes: images ``uint8 [H, W, 3]``, id maps ``int64``, masks ``bool``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from segblocks.metrics.video_ap import VideoInstances
from segblocks.structures import InstanceResult, PanopticResult, SegmentInfo, Targets

__all__ = [
    "CategoryRecord",
    "InstanceRecord",
    "PanopticRecord",
    "PanopticSegment",
    "SemanticRecord",
    "VideoInstanceRecord",
    "VideoObjectRecord",
]


@dataclass(frozen=True)
class CategoryRecord:
    """A dataset category: ``id``, ``name`` and whether it is a thing (countable).

    Raises:
        TypeError: ``id`` is not an int, ``name`` not a string or ``is_thing`` not a real bool (a
            string such as ``"false"`` would otherwise read as True).
        ValueError: an empty name.
    """

    id: int
    name: str
    is_thing: bool

    def __post_init__(self) -> None:
        if isinstance(self.id, bool) or not isinstance(self.id, int | np.integer):
            raise TypeError(f"id: expected an int category id, got {self.id!r}")
        if not isinstance(self.name, str):
            raise TypeError(f"name: expected a string, got {type(self.name).__name__}")
        if not self.name.strip():
            raise ValueError("name: expected a non-empty category name")
        if not isinstance(self.is_thing, bool | np.bool_):
            raise TypeError(f"is_thing: expected True or False, got {self.is_thing!r}")
        object.__setattr__(self, "id", int(self.id))
        object.__setattr__(self, "is_thing", bool(self.is_thing))


@dataclass(frozen=True)
class PanopticSegment:
    """One segment of a panoptic map: its id in the map, category and crowd flag.

    ``area`` is the area a JSON file states for the segment (COCO panoptic's ``area``), None when
    unknown; it is not part of equality (records compare by their maps).
    """

    id: int
    category_id: int
    iscrowd: bool = False
    area: int | None = field(default=None, compare=False)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b))
        )
    return bool(a == b)


class _ExactEq:
    """``==`` that compares every dataclass field, numpy arrays by dtype, shape and value."""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            _equal(getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)  # type: ignore[arg-type]
            if f.compare
        )

    __hash__ = None  # type: ignore[assignment]


def _array(name: str, value: Any, ndim: int, layout: str, dtype: type, kinds: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dims {layout}, got shape {arr.shape}")
    if arr.dtype.kind not in kinds:
        raise TypeError(f"{name}: expected a {dtype.__name__}-compatible dtype, got {arr.dtype}")
    return arr.astype(dtype, copy=False)


def _image(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"{name}: expected shape [H, W, 3], got {arr.shape}")
    if arr.dtype != np.uint8:
        raise TypeError(f"{name}: expected uint8, got {arr.dtype}")
    return arr


def _size_matches(name: str, arr: np.ndarray | tuple[int, ...], hw: tuple[int, ...], what: str) -> None:
    got = tuple(arr.shape) if isinstance(arr, np.ndarray) else tuple(arr)
    if got != tuple(hw):
        raise ValueError(f"{name}: mask of the wrong size: expected {what} {tuple(hw)}, got {got}")


@dataclass(eq=False)
class PanopticRecord(_ExactEq):
    """One image with a panoptic annotation (COCO panoptic).

    Attributes:
        image_id: the image id.
        file_name: the image file name (relative to the image folder).
        image: ``[H, W, 3]`` uint8 RGB, or None (read without images, e.g. for evaluation).
        panoptic: ``[H, W]`` int64 segment ids, 0 = VOID.
        segments: one :class:`PanopticSegment` per id in ``panoptic``, every one present in it.
    """

    image_id: int
    file_name: str
    image: np.ndarray | None
    panoptic: np.ndarray
    segments: list[PanopticSegment]

    def __post_init__(self) -> None:
        self.panoptic = _array("panoptic", self.panoptic, 2, "[H, W]", np.int64, "iu")
        if self.image is not None:
            self.image = _image("image", self.image)
            _size_matches("panoptic", self.panoptic, self.image.shape[:2], "the image size")
        ids = [s.id for s in self.segments]
        if len(set(ids)) != len(ids) or any(i <= 0 for i in ids):
            raise ValueError(f"segments: ids must be unique and positive, got {ids}")
        present = set(np.unique(self.panoptic).tolist()) - {0}
        if present - set(ids):
            raise ValueError(f"panoptic: ids {sorted(present - set(ids))} have no segment info")
        if set(ids) - present:
            raise ValueError(f"segments: ids {sorted(set(ids) - present)} do not appear in the map")

    @property
    def crowd_ids(self) -> list[int]:
        """Ids of the crowd segments."""
        return [s.id for s in self.segments if s.iscrowd]

    def to_panoptic_result(self, categories: Iterable[CategoryRecord] | Mapping[int, bool]) -> PanopticResult:
        """The annotation as a :class:`~segblocks.structures.PanopticResult` (torch).

        Args:
            categories: the dataset's categories (to know which are things) or ``{id: is_thing}``.

        Raises:
            ValueError: a segment's category is not among ``categories``.
        """
        thing = (
            dict(categories) if isinstance(categories, Mapping) else {c.id: c.is_thing for c in categories}
        )
        unknown = sorted({s.category_id for s in self.segments} - set(thing))
        if unknown:
            raise ValueError(f"categories: no entry for category ids {unknown}")
        return PanopticResult(
            segment_map=torch.from_numpy(self.panoptic.copy()),
            segments=[SegmentInfo(s.id, s.category_id, thing[s.category_id]) for s in self.segments],
        )


@dataclass(eq=False)
class InstanceRecord(_ExactEq):
    """One image with instance masks (COCO instances) or detections (with scores).

    Attributes:
        image_id: the image id.
        file_name: the image file name.
        image: ``[H, W, 3]`` uint8 RGB, or None (e.g. for detection results).
        masks: ``[N, H, W]`` bool.
        category_ids: ``[N]`` int64.
        instance_ids: ``[N]`` int64 annotation ids (unique within the dataset in COCO).
        iscrowd: ``[N]`` bool.
        areas: ``[N]`` float64 annotated areas (COCO's ``area``; defaults to the mask pixel counts).
        scores: ``[N]`` float64 detection scores, or None for ground truth.
    """

    image_id: int
    file_name: str
    image: np.ndarray | None
    masks: np.ndarray
    category_ids: np.ndarray
    instance_ids: np.ndarray
    iscrowd: np.ndarray
    areas: np.ndarray | None = None
    scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.masks = _array("masks", self.masks, 3, "[N, H, W]", np.bool_, "b")
        n = self.masks.shape[0]
        if self.image is not None:
            self.image = _image("image", self.image)
            _size_matches("masks", self.masks.shape[1:], self.image.shape[:2], "the image size")
        self.category_ids = _array("category_ids", self.category_ids, 1, "[N]", np.int64, "iu")
        self.instance_ids = _array("instance_ids", self.instance_ids, 1, "[N]", np.int64, "iu")
        self.iscrowd = _array("iscrowd", self.iscrowd, 1, "[N]", np.bool_, "biu")
        if self.areas is None:
            self.areas = self.masks.reshape(n, -1).sum(1).astype(np.float64)
        self.areas = _array("areas", self.areas, 1, "[N]", np.float64, "iuf")
        if self.scores is not None:
            self.scores = _array("scores", self.scores, 1, "[N]", np.float64, "iuf")
        for name in ("category_ids", "instance_ids", "iscrowd", "areas", "scores"):
            v = getattr(self, name)
            if v is not None and v.shape != (n,):
                raise ValueError(f"{name}: expected shape ({n},) [N], got {v.shape}")

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    def to_targets(self) -> Targets:
        """Ground truth as :class:`~segblocks.structures.Targets` (all things)."""
        return Targets(
            masks=torch.from_numpy(self.masks.copy()),
            labels=torch.from_numpy(self.category_ids.copy()),
            instance_ids=torch.from_numpy(self.instance_ids.copy()),
        )

    def to_instance_result(self) -> InstanceResult:
        """Detections as :class:`~segblocks.structures.InstanceResult`; needs ``scores``."""
        if self.scores is None:
            raise ValueError("scores: this record holds ground truth (no scores)")
        return InstanceResult(
            masks=torch.from_numpy(self.masks.copy()),
            labels=torch.from_numpy(self.category_ids.copy()),
            scores=torch.from_numpy(self.scores.copy()),
        )


@dataclass(eq=False)
class SemanticRecord(_ExactEq):
    """One image with a semantic label map (ADE20K style).

    Attributes:
        image_id: the image id.
        file_name: the image file name.
        image: ``[H, W, 3]`` uint8 RGB.
        label_map: ``[H, W]`` int64 class ids, ``ignore_index`` (255) for unlabelled pixels.
    """

    image_id: int
    file_name: str
    image: np.ndarray
    label_map: np.ndarray

    def __post_init__(self) -> None:
        self.image = _image("image", self.image)
        self.label_map = _array("label_map", self.label_map, 2, "[H, W]", np.int64, "iu")
        _size_matches("label_map", self.label_map, self.image.shape[:2], "the image size")


@dataclass(eq=False)
class VideoInstanceRecord(_ExactEq):
    """One video with instance tracks (YouTube-VIS), ground truth or predictions (with scores).

    Attributes:
        video_id: the video id.
        file_names: ``T`` frame file names (relative to the frame folder).
        frames: ``[T, H, W, 3]`` uint8, or None (e.g. for predictions).
        masks: ``[N, T, H, W]`` bool, one tube per track (empty in frames where it is absent).
        category_ids: ``[N]`` int64.
        track_ids: ``[N]`` int64 annotation ids.
        iscrowd: ``[N]`` bool.
        scores: ``[N]`` float64 or None for ground truth.
        areas: ``[N]`` float64 mean annotated area over the frames where each track is present
            (YouTube-VIS's ``areas`` field), or None; not part of equality.
    """

    video_id: int
    file_names: list[str]
    frames: np.ndarray | None
    masks: np.ndarray
    category_ids: np.ndarray
    track_ids: np.ndarray
    iscrowd: np.ndarray
    scores: np.ndarray | None = None
    areas: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.masks = _array("masks", self.masks, 4, "[N, T, H, W]", np.bool_, "b")
        n, t = self.masks.shape[:2]
        if self.frames is not None:
            self.frames = np.asarray(self.frames)
            if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
                raise ValueError(
                    f"frames: expected uint8 [T, H, W, 3], got {self.frames.dtype} {self.frames.shape}"
                )
            _size_matches("masks", self.masks.shape[1:], self.frames.shape[:3], "[T, H, W]")
        if len(self.file_names) != t:
            raise ValueError(f"file_names: expected {t} names (one per frame), got {len(self.file_names)}")
        self.category_ids = _array("category_ids", self.category_ids, 1, "[N]", np.int64, "iu")
        self.track_ids = _array("track_ids", self.track_ids, 1, "[N]", np.int64, "iu")
        self.iscrowd = _array("iscrowd", self.iscrowd, 1, "[N]", np.bool_, "biu")
        if self.scores is not None:
            self.scores = _array("scores", self.scores, 1, "[N]", np.float64, "iuf")
        if self.areas is not None:
            self.areas = _array("areas", self.areas, 1, "[N]", np.float64, "iuf")
        for name in ("category_ids", "track_ids", "iscrowd", "scores", "areas"):
            v = getattr(self, name)
            if v is not None and v.shape != (n,):
                raise ValueError(f"{name}: expected shape ({n},) [N], got {v.shape}")

    def to_video_instances(self) -> VideoInstances:
        """The tracks as :class:`segblocks.metrics.VideoInstances` (for :class:`~segblocks.metrics.VideoAP`)."""
        return VideoInstances(
            masks=torch.from_numpy(self.masks.copy()),
            labels=torch.from_numpy(self.category_ids.copy()),
            scores=None if self.scores is None else torch.from_numpy(self.scores.copy()),
            iscrowd=torch.from_numpy(self.iscrowd.copy()),
        )


@dataclass(eq=False)
class VideoObjectRecord(_ExactEq):
    """One video with object-id maps (DAVIS): 0 background, ``1..N`` objects, 255 void.

    Attributes:
        name: the sequence name.
        file_names: ``T`` frame names without extension (e.g. ``"00000"``).
        frames: ``[T, H, W, 3]`` uint8, or None (read without frames, e.g. for evaluation).
        objects: ``[T, H, W]`` int64 object ids.
    """

    name: str
    file_names: list[str]
    frames: np.ndarray | None
    objects: np.ndarray

    def __post_init__(self) -> None:
        self.objects = _array("objects", self.objects, 3, "[T, H, W]", np.int64, "iu")
        if self.frames is not None:
            self.frames = np.asarray(self.frames)
            if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
                raise ValueError(
                    f"frames: expected uint8 [T, H, W, 3], got {self.frames.dtype} {self.frames.shape}"
                )
            _size_matches("objects", self.objects, self.frames.shape[:3], "[T, H, W]")
        if self.objects.size and (self.objects.min() < 0 or self.objects.max() > 255):
            raise ValueError("objects: ids must fit an indexed PNG (0..255)")
        if len(self.file_names) != self.objects.shape[0]:
            raise ValueError(
                f"file_names: expected {self.objects.shape[0]} names, got {len(self.file_names)}"
            )
