"""Video panoptic quality (VPQ) over sliding windows of frames, as evaluated on VIPSeg."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segblocks.metrics._categories import parse_categories
from segblocks.metrics._panoptic_core import PQCounts, SegmentTable, index_map, pq_counts
from segblocks.metrics.base import Metric
from segblocks.metrics.panoptic_quality import (
    PanopticQualityResult,
    panoptic_arrays,
    segment_table,
    summarise_counts,
)
from segblocks.structures import PanopticResult

__all__ = ["VIPSEG_WINDOW_SIZES", "VideoPanopticQuality", "VideoPanopticQualityResult"]

VIPSEG_WINDOW_SIZES = (1, 2, 4, 6, 8)


@dataclass(frozen=True)
class VideoPanopticQualityResult:
    """Result of :class:`VideoPanopticQuality`.

    Attributes:
        vpq: PQ (all categories) averaged over the window sizes that had at least one window.
        vpq_things: the same over thing categories.
        vpq_stuff: the same over stuff categories.
        per_window: the full PQ result of each window size ``k`` (tubes of ``k`` frames).
    """

    vpq: float
    vpq_things: float
    vpq_stuff: float
    per_window: dict[int, PanopticQualityResult]


def _finite_mean(values: Iterable[float]) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _clip_table(name: str, tables: Sequence[SegmentTable]) -> SegmentTable:
    """Union of per-frame segment tables; a track must keep its category through the clip."""
    rows: dict[int, tuple[int, bool]] = {}
    for t, table in enumerate(tables):
        for sid, cat, crowd in zip(table.ids.tolist(), table.category_index.tolist(), table.crowd.tolist()):
            if sid in rows and rows[sid][0] != cat:
                raise ValueError(f"{name}[{t}]: segment {sid} changes category within the clip")
            rows[sid] = (cat, rows.get(sid, (cat, False))[1] or crowd)
    ids = sorted(rows)
    return SegmentTable(
        ids=np.asarray(ids, np.int64),
        category_index=np.asarray([rows[i][0] for i in ids], np.int64),
        crowd=np.asarray([rows[i][1] for i in ids], bool),
    )


class VideoPanopticQuality(Metric[VideoPanopticQualityResult]):
    """VPQ: PQ computed on tubes of ``k`` consecutive frames, averaged over window sizes.

    For each window size ``k`` and each start frame, the ``k`` frames are treated as one image whose
    segments are the tracks (segment ids must be consistent across frames, in the prediction and
    in the ground truth); segments are matched with the COCO panoptic rules (IoU > 0.5 over the
    tube, VOID and crowd handling as in :class:`PanopticQuality`). Statistics are summed over all
    windows of all videos per window size; VPQ is the mean of the per-size PQ. VIPSeg uses window
    sizes 1, 2, 4, 6 and 8.

    Args:
        categories: ``{category_id: is_thing}`` or objects with ``id`` and ``is_thing``.
        window_sizes: the tube lengths ``k``.
    """

    def __init__(
        self,
        *,
        categories: Mapping[int, bool] | Iterable[Any],
        window_sizes: Sequence[int] = VIPSEG_WINDOW_SIZES,
    ) -> None:
        self.categories = parse_categories("categories", categories)
        self._index = {cid: k for k, cid in enumerate(self.categories)}
        sizes = tuple(int(k) for k in window_sizes)
        if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
            raise ValueError(f"window_sizes: expected distinct positive sizes, got {list(window_sizes)}")
        self.window_sizes = sizes
        super().__init__()

    def reset(self) -> None:
        """Forget every update."""
        self._counts = {k: PQCounts.zeros(len(self.categories)) for k in self.window_sizes}
        self.num_videos = 0

    def config(self) -> tuple[Any, ...]:
        """Categories and window sizes."""
        return (tuple(self.categories.items()), self.window_sizes)

    def update(
        self,
        pred: Sequence[PanopticResult],
        target: Sequence[PanopticResult],
        *,
        target_crowd_ids: Collection[int] = (),
    ) -> None:
        """Add one video.

        Args:
            pred: ``T`` predicted frames, ``[H, W]`` segment maps whose ids are track ids.
            target: ``T`` ground-truth frames (0 = VOID), ids are track ids.
            target_crowd_ids: ids of ground-truth crowd tracks.

        Raises:
            TypeError: a frame is not a ``PanopticResult``.
            ValueError: different numbers of frames or frame sizes, a track changing category,
                unknown categories or map ids without segment info.
        """
        if len(pred) != len(target):
            raise ValueError(f"pred: expected {len(target)} frames like the target, got {len(pred)}")
        if len(target) == 0:
            raise ValueError("target: expected at least one frame, got none")
        gt_maps: list[np.ndarray] = []
        pr_maps: list[np.ndarray] = []
        gt_tables: list[SegmentTable] = []
        pr_tables: list[SegmentTable] = []
        for t, (p, g) in enumerate(zip(pred, target)):
            pm, ps = panoptic_arrays(f"pred[{t}]", p)
            gm, gs = panoptic_arrays(f"target[{t}]", g)
            if pm.shape != gm.shape or gm.shape != (gt_maps[0].shape if gt_maps else gm.shape):
                want = gt_maps[0].shape if gt_maps else gm.shape
                raise ValueError(
                    f"pred[{t}].segment_map: expected frames of size {tuple(want)}, "
                    f"got pred {tuple(pm.shape)} and target {tuple(gm.shape)}"
                )
            frame_crowd = [c for c in target_crowd_ids if any(int(s.id) == int(c) for s in gs)]
            gt_tables.append(
                segment_table(f"target[{t}].segments", gs, self.categories, self._index, frame_crowd)
            )
            pr_tables.append(segment_table(f"pred[{t}].segments", ps, self.categories, self._index))
            gt_maps.append(gm)
            pr_maps.append(pm)
        gt_table = _clip_table("target", gt_tables)
        pr_table = _clip_table("pred", pr_tables)
        unknown_crowd = {int(c) for c in target_crowd_ids} - set(gt_table.ids.tolist())
        if unknown_crowd:
            raise ValueError(f"target_crowd_ids: {sorted(unknown_crowd)} are not tracks of the target")
        gt_index = np.stack(
            [index_map(f"target[{t}].segment_map", m, gt_table.ids) for t, m in enumerate(gt_maps)]
        )
        pr_index = np.stack(
            [index_map(f"pred[{t}].segment_map", m, pr_table.ids) for t, m in enumerate(pr_maps)]
        )
        n_frames = len(target)
        for k in self.window_sizes:
            for start in range(0, n_frames - k + 1):
                window = slice(start, start + k)
                self._counts[k].add(
                    pq_counts(gt_index[window], gt_table, pr_index[window], pr_table, len(self.categories))
                )
        self.num_videos += 1

    def get_state(self) -> dict[str, Any]:
        """Per window size, the summed per-category statistics."""
        return {
            "counts": {
                k: (c.iou.copy(), c.tp.copy(), c.fp.copy(), c.fn.copy()) for k, c in self._counts.items()
            },
            "n": self.num_videos,
        }

    def merge_state(self, state: dict[str, Any]) -> None:
        """Add another metric's statistics.

        Args:
            state: a dictionary from :meth:`get_state` of a metric with the same settings.
        """
        for k, (iou, tp, fp, fn) in state["counts"].items():
            self._counts[k].add(PQCounts(iou=iou, tp=tp, fp=fp, fn=fn))
        self.num_videos += int(state["n"])

    def compute(self) -> VideoPanopticQualityResult:
        """VPQ for all / thing / stuff categories and the PQ of every window size."""
        per = {k: summarise_counts(c, self.categories) for k, c in self._counts.items()}
        return VideoPanopticQualityResult(
            vpq=_finite_mean(r.all.pq for r in per.values()),
            vpq_things=_finite_mean(r.things.pq for r in per.values()),
            vpq_stuff=_finite_mean(r.stuff.pq for r in per.values()),
            per_window=per,
        )
