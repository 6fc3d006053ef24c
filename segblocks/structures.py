"""Typed containers for what flows between blocks and out of models.

Each dataclass validates shapes and dtypes when it is created and raises a clear error naming the
field, so bad data is caught where it enters rather than deep inside a block. Coordinates are in
pixels, ``(x, y)`` order, boxes are ``(x1, y1, x2, y2)``; panoptic segment id ``0`` means VOID.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from segblocks._validation import check_dtype, check_finite, check_ndim, check_shape, check_tensor

__all__ = [
    "Batch",
    "InstanceResult",
    "MaskPredictions",
    "PanopticResult",
    "Prompts",
    "SegmentInfo",
    "SemanticResult",
    "ShapeSpec",
    "Targets",
]


@dataclass(frozen=True)
class ShapeSpec:
    """Channels and stride of one feature map (the backbone ``output_shape()`` contract)."""

    channels: int
    stride: int

    def __post_init__(self) -> None:
        if self.channels <= 0:
            raise ValueError(f"channels: expected a positive int, got {self.channels}")
        if self.stride <= 0:
            raise ValueError(f"stride: expected a positive int, got {self.stride}")


@dataclass
class Prompts:
    """Visual and text prompts for one image; every field is optional but not all may be empty.

    Attributes:
        points: ``[N, P, 2]`` float pixel coordinates ``(x, y)``: N prompts of up to P clicks each.
        point_labels: ``[N, P]`` int64, ``1`` positive click, ``0`` negative click, ``-1`` padding.
            Required with ``points``; every prompt needs at least one non-padding click.
        boxes: ``[N, 4]`` float ``(x1, y1, x2, y2)`` with ``x2 >= x1`` and ``y2 >= y1``.
        masks: ``[N, H, W]`` bool mask prompts.
        strokes: N float tensors ``[L, 2]`` (polylines of ``(x, y)`` points: scribbles, strokes,
            polygons), each with at least one point.
        texts: N non-empty strings (class names, referring expressions).
    """

    points: Tensor | None = None
    point_labels: Tensor | None = None
    boxes: Tensor | None = None
    masks: Tensor | None = None
    strokes: list[Tensor] | None = None
    texts: list[str] | None = None

    def __post_init__(self) -> None:
        if all(v is None for v in (self.points, self.boxes, self.masks, self.strokes, self.texts)):
            raise ValueError(
                "Prompts: empty prompt; give at least one of points, boxes, masks, strokes, texts"
            )
        if (self.points is None) != (self.point_labels is None):
            raise ValueError("point_labels: points and point_labels must be given together")
        if self.points is not None and self.point_labels is not None:
            check_shape("points", self.points, (None, None, 2), "[N, P, 2]")
            check_dtype("points", self.points, "floating")
            check_finite("points", self.points)
            n, p = self.points.shape[:2]
            check_shape("point_labels", self.point_labels, (n, p), f"[N={n}, P={p}]")
            check_dtype("point_labels", self.point_labels, "integer")
            if n == 0 or p == 0:
                raise ValueError(f"points: empty prompt, got shape {tuple(self.points.shape)}")
            if bool(((self.point_labels < -1) | (self.point_labels > 1)).any()):
                raise ValueError("point_labels: values must be 1 (positive), 0 (negative) or -1 (padding)")
            if bool((self.point_labels < 0).all(dim=1).any()):
                raise ValueError("point_labels: every prompt needs at least one non-padding click")
        if self.boxes is not None:
            check_shape("boxes", self.boxes, (None, 4), "[N, 4] (x1, y1, x2, y2)")
            check_dtype("boxes", self.boxes, "floating")
            check_finite("boxes", self.boxes)
            if self.boxes.shape[0] == 0:
                raise ValueError("boxes: empty prompt, got 0 boxes")
            if bool(((self.boxes[:, 2] < self.boxes[:, 0]) | (self.boxes[:, 3] < self.boxes[:, 1])).any()):
                raise ValueError("boxes: expected x2 >= x1 and y2 >= y1 for every box")
        if self.masks is not None:
            check_ndim("masks", self.masks, 3, "[N, H, W]")
            check_dtype("masks", self.masks, "bool")
            if self.masks.shape[0] == 0:
                raise ValueError("masks: empty prompt, got 0 masks")
        if self.strokes is not None:
            if not isinstance(self.strokes, list):
                raise TypeError(
                    f"strokes: expected a list of [L, 2] tensors, got {type(self.strokes).__name__}"
                )
            if len(self.strokes) == 0:
                raise ValueError("strokes: empty prompt, got an empty list")
            for i, stroke in enumerate(self.strokes):
                check_shape(f"strokes[{i}]", stroke, (None, 2), "[L, 2]")
                check_dtype(f"strokes[{i}]", stroke, "floating")
                check_finite(f"strokes[{i}]", stroke)
                if stroke.shape[0] == 0:
                    raise ValueError(f"strokes[{i}]: expected at least one point")
        if self.texts is not None:
            if isinstance(self.texts, str) or not isinstance(self.texts, list):
                raise TypeError(
                    f"texts: expected a list of strings, got {type(self.texts).__name__} {self.texts!r}"
                )
            if len(self.texts) == 0:
                raise ValueError("texts: empty prompt, got an empty list")
            for i, text in enumerate(self.texts):
                if not isinstance(text, str) or not text.strip():
                    raise ValueError(f"texts[{i}]: expected a non-empty string, got {text!r}")

    def to(self, device: torch.device | str) -> Prompts:
        """Return a copy with every tensor on ``device`` (not validated again)."""
        out = object.__new__(Prompts)
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                value = value.to(device)
            elif f.name == "strokes" and value is not None:
                value = [v.to(device) for v in value]
            setattr(out, f.name, value)
        return out


@dataclass
class Targets:
    """Ground truth segments of one image, or mask tubes of one clip.

    Attributes:
        masks: ``[N, H, W]`` bool, one mask per segment (N may be 0); for a clip ``[N, T, H, W]``,
            one tube per track, empty in the frames where the track is absent.
        labels: ``[N]`` int64 category ids.
        instance_ids: ``[N]`` int64 ids, unique within the image (track ids in a video); defaults
            to ``1..N``.
        is_thing: ``[N]`` bool, True for countable things, False for stuff; defaults to all True.
    """

    masks: Tensor
    labels: Tensor
    instance_ids: Tensor | None = None
    is_thing: Tensor | None = None

    def __post_init__(self) -> None:
        check_tensor("masks", self.masks)
        if self.masks.ndim not in (3, 4):
            raise ValueError(
                f"masks: expected [N, H, W] (image) or [N, T, H, W] (clip), got shape {tuple(self.masks.shape)}"
            )
        check_dtype("masks", self.masks, "bool")
        n = self.masks.shape[0]
        check_shape("labels", self.labels, (n,), f"[N={n}]")
        check_dtype("labels", self.labels, "integer")
        if self.instance_ids is None:
            self.instance_ids = torch.arange(1, n + 1, device=self.masks.device)
        check_shape("instance_ids", self.instance_ids, (n,), f"[N={n}]")
        check_dtype("instance_ids", self.instance_ids, "integer")
        if n and torch.unique(self.instance_ids).numel() != n:
            raise ValueError("instance_ids: expected unique ids within one image")
        if self.is_thing is None:
            self.is_thing = torch.ones(n, dtype=torch.bool, device=self.masks.device)
        check_shape("is_thing", self.is_thing, (n,), f"[N={n}]")
        check_dtype("is_thing", self.is_thing, "bool")

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def num_frames(self) -> int | None:
        """``T`` for clip targets (tubes), None for image targets."""
        return int(self.masks.shape[1]) if self.masks.ndim == 4 else None

    @property
    def present(self) -> Tensor:
        """``[N, T]`` bool, True where the track is visible (clip targets only).

        Raises:
            ValueError: on image targets.
        """
        if self.masks.ndim != 4:
            raise ValueError("present: only clip targets ([N, T, H, W] masks) have frames")
        return self.masks.flatten(2).any(-1)

    def to(self, device: torch.device | str) -> Targets:
        """Return a copy with every tensor on ``device`` (not validated again: no host sync)."""
        out = object.__new__(Targets)
        for f in fields(self):
            value = getattr(self, f.name)
            setattr(out, f.name, value.to(device) if isinstance(value, Tensor) else value)
        return out


@dataclass
class MaskPredictions:
    """Raw outputs of a mask decoder layer (before post-processing).

    Attributes:
        mask_logits: ``[B, Q, H, W]`` float mask logits (usually stride 4), or tubes ``[B, Q, T, H, W]``.
        class_logits: ``[B, Q, C + 1]`` float class logits, the last column the void class.
        iou_scores: ``[B, Q]`` float predicted IoU / objectness logits.
        query_embeddings: ``[B, Q, D]`` float query embeddings of this layer.
        aux: predictions of the earlier decoder layers (deep supervision), oldest first.
    """

    mask_logits: Tensor
    class_logits: Tensor | None = None
    iou_scores: Tensor | None = None
    query_embeddings: Tensor | None = None
    aux: list[MaskPredictions] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_tensor("mask_logits", self.mask_logits)
        if self.mask_logits.ndim not in (4, 5):
            raise ValueError(
                f"mask_logits: expected [B, Q, H, W] or tubes [B, Q, T, H, W], got shape {tuple(self.mask_logits.shape)}"
            )
        check_dtype("mask_logits", self.mask_logits, "floating")
        b, q = self.mask_logits.shape[:2]
        if self.class_logits is not None:
            check_shape("class_logits", self.class_logits, (b, q, None), f"[B={b}, Q={q}, C+1]")
            check_dtype("class_logits", self.class_logits, "floating")
        if self.iou_scores is not None:
            check_shape("iou_scores", self.iou_scores, (b, q), f"[B={b}, Q={q}]")
            check_dtype("iou_scores", self.iou_scores, "floating")
        if self.query_embeddings is not None:
            check_shape("query_embeddings", self.query_embeddings, (b, q, None), f"[B={b}, Q={q}, D]")


@dataclass(frozen=True)
class SegmentInfo:
    """One segment of a panoptic result: its id in the segment map, category and score."""

    id: int
    category_id: int
    is_thing: bool
    score: float = 1.0

    def __post_init__(self) -> None:
        if self.id <= 0:
            raise ValueError(f"id: panoptic segment ids are positive (0 is VOID), got {self.id}")
        if self.category_id < 0:
            raise ValueError(f"category_id: expected a non-negative id, got {self.category_id}")


@dataclass
class PanopticResult:
    """Panoptic segmentation of one image.

    Attributes:
        segment_map: ``[H, W]`` int64 segment ids; ``0`` is VOID.
        segments: one :class:`SegmentInfo` per id present in ``segment_map``.
    """

    segment_map: Tensor
    segments: list[SegmentInfo]

    def __post_init__(self) -> None:
        check_ndim("segment_map", self.segment_map, 2, "[H, W]")
        check_dtype("segment_map", self.segment_map, "integer")
        ids = [s.id for s in self.segments]
        if len(set(ids)) != len(ids):
            raise ValueError(f"segments: duplicate segment ids {sorted(ids)}")


@dataclass
class SemanticResult:
    """Semantic segmentation of one image.

    Attributes:
        label_map: ``[H, W]`` int64 category ids.
        scores: optional ``[C, H, W]`` float per-class scores.
    """

    label_map: Tensor
    scores: Tensor | None = None

    def __post_init__(self) -> None:
        check_ndim("label_map", self.label_map, 2, "[H, W]")
        check_dtype("label_map", self.label_map, "integer")
        if self.scores is not None:
            h, w = self.label_map.shape
            check_shape("scores", self.scores, (None, h, w), f"[C, H={h}, W={w}]")


@dataclass
class InstanceResult:
    """Instance segmentation of one image.

    Attributes:
        masks: ``[N, H, W]`` bool.
        labels: ``[N]`` int64 category ids.
        scores: ``[N]`` float confidences.
    """

    masks: Tensor
    labels: Tensor
    scores: Tensor

    def __post_init__(self) -> None:
        check_tensor("masks", self.masks)
        if self.masks.ndim not in (3, 4):
            raise ValueError(
                f"masks: expected [N, H, W] (image) or [N, T, H, W] (clip), got shape {tuple(self.masks.shape)}"
            )
        check_dtype("masks", self.masks, "bool")
        n = self.masks.shape[0]
        check_shape("labels", self.labels, (n,), f"[N={n}]")
        check_dtype("labels", self.labels, "integer")
        check_shape("scores", self.scores, (n,), f"[N={n}]")
        check_dtype("scores", self.scores, "floating")


@dataclass
class Batch:
    """What one training or evaluation step consumes: images or clips, their targets and prompts.

    Attributes:
        images: ``[B, 3, H, W]`` RGB in ``[0, 1]``, or clips ``[B, T, 3, H, W]``.
        targets: B :class:`Targets` (tubes ``[N, T, H, W]`` for clips), or None.
        prompts: B :class:`Prompts` (None where an image has none), or None for no prompts at all.
        extras: anything else a recipe needs per batch (captions, the source samples, ...).
    """

    images: Tensor
    targets: list[Targets] | None = None
    prompts: list[Prompts | None] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim not in (4, 5) or self.images.shape[-3] != 3:
            raise ValueError(
                f"images: expected [B, 3, H, W] or [B, T, 3, H, W], got shape {tuple(self.images.shape)}"
            )
        check_dtype("images", self.images, "floating")
        b = int(self.images.shape[0])
        if b == 0:
            raise ValueError("images: expected at least one image, got an empty batch")
        t = self.num_frames
        if self.targets is not None:
            if len(self.targets) != b:
                raise ValueError(f"targets: expected {b} Targets (one per image), got {len(self.targets)}")
            for i, target in enumerate(self.targets):
                if not isinstance(target, Targets):
                    raise TypeError(f"targets[{i}]: expected Targets, got {type(target).__name__}")
                if target.num_frames != t:
                    raise ValueError(
                        f"targets[{i}]: expected {'image masks [N, H, W]' if t is None else f'tubes of T={t} frames'}, "
                        f"got masks of shape {tuple(target.masks.shape)}"
                    )
        if self.prompts is not None:
            if len(self.prompts) != b:
                raise ValueError(f"prompts: expected {b} entries (one per image), got {len(self.prompts)}")
            for i, prompt in enumerate(self.prompts):
                if prompt is not None and not isinstance(prompt, Prompts):
                    raise TypeError(f"prompts[{i}]: expected Prompts or None, got {type(prompt).__name__}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_frames(self) -> int | None:
        """``T`` for a batch of clips, None for images."""
        return int(self.images.shape[1]) if self.images.ndim == 5 else None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Return a copy with images, targets and prompts on ``device`` (extras are left as they are).

        Args:
            device: the target device.
            non_blocking: copy the images asynchronously (from pinned memory).
        """
        out = object.__new__(Batch)
        out.images = self.images.to(device, non_blocking=non_blocking)
        out.targets = None if self.targets is None else [t.to(device) for t in self.targets]
        out.prompts = (
            None if self.prompts is None else [p if p is None else p.to(device) for p in self.prompts]
        )
        out.extras = self.extras
        return out
