"""DAVIS video object segmentation metrics: region similarity J, boundary F-measure F, and J&F.

J is the IoU of a predicted and a ground-truth object mask (1 when both are empty). F compares the
objects' one-pixel boundaries: a boundary pixel counts as matched when the other boundary passes
within ``ceil(0.008 x image diagonal)`` pixels (a disk), F is the harmonic mean of boundary
precision and recall. Pixels marked void in the ground truth are removed from both masks. Per
object, J and F are averaged over frames (the first and last frames are skipped by default, as in
the DAVIS 2017 semi-supervised evaluation); J-Mean and F-Mean average over objects, J&F is their
mean. Recall is the fraction of frames scoring above 0.5, decay the drop from the first to the last
quarter of the frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from torch import Tensor

from segblocks._validation import check_positive_int
from segblocks.metrics._arrays import check_array, to_numpy
from segblocks.metrics.base import Metric

__all__ = [
    "DavisJF",
    "DavisObjectStats",
    "DavisResult",
    "SequenceStatistics",
    "boundary_f_measure",
    "boundary_map",
    "region_similarity",
    "sequence_statistics",
]


def region_similarity(
    pred: np.ndarray | Tensor, gt: np.ndarray | Tensor, void: np.ndarray | Tensor | None = None
) -> float:
    """DAVIS J: IoU of two binary masks, 1 when both are empty.

    Args:
        pred: ``[H, W]`` bool predicted mask.
        gt: ``[H, W]`` bool ground-truth mask.
        void: optional ``[H, W]`` bool pixels to leave out.

    Returns:
        J in ``[0, 1]``.
    """
    p, g, v = _masks(pred, gt, void)
    if v is not None:
        p, g = p & ~v, g & ~v
    union = np.count_nonzero(p | g)
    return 1.0 if union == 0 else np.count_nonzero(p & g) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a binary mask (the DAVIS ``seg2bmap`` rule).

    A pixel is a boundary pixel when it differs from its right, lower or lower-right neighbour;
    neighbours beyond the image take the value of the nearest pixel inside it (so the image border
    itself is not a boundary).

    Args:
        mask: ``[H, W]`` bool.

    Returns:
        ``[H, W]`` bool boundary.
    """
    padded = np.pad(mask, ((0, 1), (0, 1)), mode="edge")
    right = padded[:-1, 1:]
    below = padded[1:, :-1]
    diag = padded[1:, 1:]
    return (mask != right) | (mask != below) | (mask != diag)


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2


def boundary_f_measure(
    pred: np.ndarray | Tensor,
    gt: np.ndarray | Tensor,
    void: np.ndarray | Tensor | None = None,
    *,
    bound_th: float = 0.008,
) -> float:
    """DAVIS F: boundary F-measure with a tolerance of ``bound_th`` x diagonal (or pixels if >= 1).

    Args:
        pred: ``[H, W]`` bool predicted mask.
        gt: ``[H, W]`` bool ground-truth mask.
        void: optional ``[H, W]`` bool pixels to leave out.
        bound_th: tolerance as a fraction of the image diagonal (< 1) or in pixels (>= 1).

    Returns:
        F in ``[0, 1]``: 1 when both boundaries are empty, 0 when exactly one is.
    """
    p, g, v = _masks(pred, gt, void)
    if v is not None:
        p, g = p & ~v, g & ~v
    if bound_th <= 0:
        raise ValueError(f"bound_th: expected a positive tolerance, got {bound_th}")
    radius = int(bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*p.shape)))
    pb, gb = boundary_map(p), boundary_map(g)
    n_p, n_g = int(pb.sum()), int(gb.sum())
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    disk = _disk(radius)
    g_dil = ndimage.binary_dilation(gb, structure=disk)
    p_dil = ndimage.binary_dilation(pb, structure=disk)
    precision = np.count_nonzero(pb & g_dil) / n_p
    recall = np.count_nonzero(gb & p_dil) / n_g
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _masks(
    pred: np.ndarray | Tensor, gt: np.ndarray | Tensor, void: np.ndarray | Tensor | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    p, g = to_numpy("pred", pred), to_numpy("gt", gt)
    check_array("pred", p, 2, "[H, W]", "bool")
    check_array("gt", g, 2, "[H, W]", "bool")
    if p.shape != g.shape:
        raise ValueError(f"pred: expected the gt's shape {tuple(g.shape)}, got {tuple(p.shape)}")
    v = None
    if void is not None:
        v = to_numpy("void", void)
        check_array("void", v, 2, "[H, W]", "bool")
        if v.shape != g.shape:
            raise ValueError(f"void: expected the gt's shape {tuple(g.shape)}, got {tuple(v.shape)}")
    return p, g, v


@dataclass(frozen=True)
class SequenceStatistics:
    """DAVIS statistics of one object's per-frame scores (J or F).

    Attributes:
        mean: the mean over frames.
        recall: the fraction of frames scoring above 0.5.
        decay: the mean of the first quarter of the frames minus that of the last quarter.
    """

    mean: float
    recall: float
    decay: float


@dataclass(frozen=True)
class DavisObjectStats:
    """J and F statistics of one object of one sequence (DAVIS's per-object rows).

    Attributes:
        sequence: the sequence name (``""`` when none was given).
        object_id: the object id in the annotation PNGs.
        j: region similarity statistics.
        f: boundary F-measure statistics.
    """

    sequence: str
    object_id: int
    j: SequenceStatistics
    f: SequenceStatistics


@dataclass(frozen=True)
class DavisResult:
    """Result of :class:`DavisJF` (NaN before any object was seen).

    Attributes:
        jf: (J-Mean + F-Mean) / 2.
        j_mean: region similarity averaged over frames, then over objects.
        j_recall: fraction of frames with J > 0.5, averaged over objects.
        j_decay: J of the first quarter of frames minus J of the last quarter, averaged over objects.
        f_mean: boundary F averaged over frames, then over objects.
        f_recall: fraction of frames with F > 0.5, averaged over objects.
        f_decay: F decay, averaged over objects.
        num_objects: number of objects evaluated.
        per_object: the statistics of every object, in the order they were added.
    """

    jf: float
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float
    num_objects: int
    per_object: tuple[DavisObjectStats, ...] = ()


def sequence_statistics(values: np.ndarray | Tensor) -> SequenceStatistics:
    """Mean, recall (> 0.5) and decay of one object's per-frame scores, as DAVIS computes them.

    Decay follows DAVIS: the frames are cut at ``round(linspace(1, n, 5)) - 1`` into four bins that
    share their end frames; decay is the mean of the first bin minus the mean of the last.

    Args:
        values: ``[T]`` per-frame J or F of one object, finite.

    Raises:
        ValueError: empty, not one-dimensional or not finite.
    """
    v = to_numpy("values", values).astype(np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values: expected a non-empty [T] array, got shape {tuple(v.shape)}")
    if not np.isfinite(v).all():
        raise ValueError("values: expected finite scores, got NaN or infinity")
    n = len(v)
    edges = (np.round(np.linspace(1, n, 5) + 1e-10) - 1).astype(np.int64)
    first = v[edges[0] : edges[1] + 1]
    last = v[edges[3] : edges[4] + 1]
    return SequenceStatistics(float(v.mean()), float((v > 0.5).mean()), float(first.mean() - last.mean()))


class DavisJF(Metric[DavisResult]):
    """DAVIS J, F and J&F over videos given as object-id maps, streaming per video.

    Objects are the ids present in the ground truth (excluding background 0 and ``void_id``);
    a predicted id that is not an object of the ground truth is an error.

    Example:
        >>> metric = DavisJF()
        >>> metric.update(pred_ids, gt_ids)  # [T, H, W] integer maps  # doctest: +SKIP
        >>> metric.compute().jf  # doctest: +SKIP

    Args:
        bound_th: boundary tolerance (fraction of the diagonal, or pixels if >= 1).
        void_id: ground-truth id of void pixels (DAVIS: 255), or None.
        skip_first_last: leave out the first and last frames (the semi-supervised protocol, where the
            first frame's mask is given).
    """

    def __init__(
        self, *, bound_th: float = 0.008, void_id: int | None = 255, skip_first_last: bool = True
    ) -> None:
        if bound_th <= 0:
            raise ValueError(f"bound_th: expected a positive tolerance, got {bound_th}")
        self.bound_th = float(bound_th)
        self.void_id = void_id
        self.skip_first_last = skip_first_last
        super().__init__()

    def reset(self) -> None:
        """Forget every update."""
        self._rows: list[DavisObjectStats] = []

    def config(self) -> tuple[Any, ...]:
        """Tolerance, void id and frame selection."""
        return (self.bound_th, self.void_id, self.skip_first_last)

    def update(
        self,
        pred: np.ndarray | Tensor,
        target: np.ndarray | Tensor,
        *,
        sequence: str = "",
        num_objects: int | None = None,
    ) -> None:
        """Add one video.

        Args:
            pred: ``[T, H, W]`` integer predicted object ids (0 = background).
            target: ``[T, H, W]`` integer ground-truth object ids (0 = background, ``void_id`` void).
            sequence: the sequence name, kept in the per-object rows.
            num_objects: evaluate objects ``1..num_objects`` (the DAVIS evaluation takes the largest
                id of the first annotated frame); default: the ids present in the evaluated frames.

        Raises:
            TypeError: the maps are not integer arrays / tensors.
            ValueError: shapes differ, too few frames, or a predicted id is not a ground-truth object.
        """
        p, g = to_numpy("pred", pred), to_numpy("target", target)
        check_array("pred", p, 3, "[T, H, W]", "integer")
        check_array("target", g, 3, "[T, H, W]", "integer")
        if p.shape != g.shape:
            raise ValueError(f"pred: expected the target's shape {tuple(g.shape)}, got {tuple(p.shape)}")
        if self.skip_first_last:
            if g.shape[0] < 3:
                raise ValueError(f"target: skip_first_last needs at least 3 frames, got {g.shape[0]}")
            p, g = p[1:-1], g[1:-1]
        void = g == self.void_id if self.void_id is not None else np.zeros(g.shape, bool)
        if num_objects is None:
            objects = sorted(set(np.unique(g[~void]).tolist()) - {0})
        else:
            objects = list(range(1, check_positive_int("num_objects", num_objects, minimum=0) + 1))
        extra = sorted(set(np.unique(p).tolist()) - {0} - set(objects))
        if extra:
            raise ValueError(f"pred: object ids {extra} are not objects of the target (ids {objects})")
        for obj in objects:
            j = np.array([region_similarity(p[t] == obj, g[t] == obj, void[t]) for t in range(len(g))])
            f = np.array(
                [
                    boundary_f_measure(p[t] == obj, g[t] == obj, void[t], bound_th=self.bound_th)
                    for t in range(len(g))
                ]
            )
            self._rows.append(
                DavisObjectStats(sequence, int(obj), sequence_statistics(j), sequence_statistics(f))
            )

    def get_state(self) -> dict[str, Any]:
        """The per-object statistics."""
        return {"rows": list(self._rows)}

    def merge_state(self, state: dict[str, Any]) -> None:
        """Append another metric's objects.

        Args:
            state: a dictionary from :meth:`get_state` of a metric with the same settings.
        """
        self._rows.extend(state["rows"])

    def compute(self) -> DavisResult:
        """J&F and its parts averaged over every object seen."""
        if not self._rows:
            nan = math.nan
            return DavisResult(nan, nan, nan, nan, nan, nan, nan, 0)
        m = np.asarray(
            [(r.j.mean, r.j.recall, r.j.decay, r.f.mean, r.f.recall, r.f.decay) for r in self._rows]
        ).mean(axis=0)
        return DavisResult(
            jf=float((m[0] + m[3]) / 2),
            j_mean=float(m[0]),
            j_recall=float(m[1]),
            j_decay=float(m[2]),
            f_mean=float(m[3]),
            f_recall=float(m[4]),
            f_decay=float(m[5]),
            num_objects=len(self._rows),
            per_object=tuple(self._rows),
        )
