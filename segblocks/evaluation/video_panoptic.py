"""VPQ from per-frame panoptic PNGs and JSON files in the VIPSeg layout (its ``eval_vpq_vspw.py`` rules).

Ground truth: a JSON with ``categories``, ``videos`` (``video_id`` and ``images``, whose
``file_name`` names each frame's PNG in ``gt_folder/<video_id>/``) and ``annotations`` (per video,
``video_id`` and ``annotations``: one ``{segments_info}`` per frame, in frame order). Predictions:
a JSON with ``annotations`` in the same form (frames matched by position), PNGs in
``pred_folder/<video_id>/`` under the ground truth's file names. Segment ids are track ids.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segblocks.data.formats import DatasetFormatError
from segblocks.data.formats._coco_common import parse_categories
from segblocks.data.formats._io import read_json, require
from segblocks.data.formats.coco_panoptic import check_png_segments, parse_segments, read_id_png
from segblocks.data.formats.records import PanopticSegment
from segblocks.evaluation._pq_files import JsonSegment, count_pair, pq_rows, pq_summary
from segblocks.evaluation.report import EvaluationReport
from segblocks.metrics._panoptic_core import PQCounts
from segblocks.metrics.panoptic_quality import summarise_counts
from segblocks.metrics.video_panoptic_quality import VIPSEG_WINDOW_SIZES

__all__ = ["evaluate_vpq"]

logger = logging.getLogger(__name__)


def _frames_by_video(data: Any, where: str, known: set[int]) -> dict[Any, list[list[JsonSegment]]]:
    out: dict[Any, list[list[JsonSegment]]] = {}
    for i, video in enumerate(require(data, "annotations", where, list)):
        w = f"{where}: annotations[{i}]"
        vid = require(video, "video_id", w, (str, int))
        if vid in out:
            raise DatasetFormatError(f"{w}: video {vid!r} appears twice")
        frames = []
        for j, frame in enumerate(require(video, "annotations", w, list)):
            segs = parse_segments(frame, f"{w}.annotations[{j}]", known)
            frames.append([JsonSegment(s.id, s.category_id, s.iscrowd, s.area) for s in segs])
        out[vid] = frames
    return out


def _window_segments(frames: Sequence[Sequence[JsonSegment]]) -> list[JsonSegment]:
    """A window's tracks in first-seen order, areas summed over its frames (VIPSeg's tube areas)."""
    merged: dict[int, JsonSegment] = {}
    for segs in frames:
        for s in segs:
            if s.id not in merged:
                merged[s.id] = s
                continue
            m = merged[s.id]
            if m.category_id != s.category_id:
                raise DatasetFormatError(f"segment {s.id} changes category within a video")
            area = None if m.area is None or s.area is None else m.area + s.area
            merged[s.id] = JsonSegment(s.id, m.category_id, m.iscrowd, area)  # flags of the first listing
    return list(merged.values())


def _load_maps(
    folder: Path, vid: Any, names: Sequence[str], frames: Sequence[Sequence[JsonSegment]]
) -> np.ndarray:
    maps: list[np.ndarray] = []
    for name, segs in zip(names, frames):
        path = folder / str(vid) / name
        ids = read_id_png(path)
        if maps and ids.shape != maps[0].shape:
            raise DatasetFormatError(f"{path}: frame of size {ids.shape}, the first frame is {maps[0].shape}")
        listed = [PanopticSegment(s.id, s.category_id, s.iscrowd) for s in segs]
        check_png_segments(path, ids, listed, check_areas=False)
        maps.append(ids)
    return np.stack(maps)


def evaluate_vpq(
    gt_json: str | Path,
    gt_folder: str | Path,
    pred_json: str | Path,
    pred_folder: str | Path,
    *,
    window_sizes: Sequence[int] = VIPSEG_WINDOW_SIZES,
) -> EvaluationReport:
    """Video panoptic quality of per-frame panoptic predictions (the VIPSeg layout, see the module).

    For each window size ``k`` every run of ``k`` consecutive frames is one tube-level PQ sample:
    tracks are matched over the window with the COCO panoptic rules (ground-truth areas: the JSON
    areas summed over the window; VOID and crowd as panopticapi). Statistics are summed over all
    windows of all videos per ``k``; VPQ is the mean over ``k`` of PQ (all, things, stuff), over the
    window sizes that yield a score (a size longer than every video has no window).

    Args:
        gt_json: the ground-truth JSON.
        gt_folder: the ground-truth PNG folder (one sub-folder per video id).
        pred_json: the predictions JSON.
        pred_folder: the prediction PNG folder (one sub-folder per video id).
        window_sizes: the window lengths ``k`` in frames (VIPSeg: 1, 2, 4, 6, 8).

    Returns:
        A report with ``VPQ``, ``VPQ_th``, ``VPQ_st`` and ``PQ@k`` per window size, per-class rows
        of the largest window, and ``{k: PanopticQualityResult}``.

    Raises:
        FileNotFoundError: a file is missing.
        DatasetFormatError: malformed files, a video without prediction, frame counts that differ,
            unknown categories, PNG ids without segment info.
    """
    gt_path, pred_path = Path(gt_json), Path(pred_json)
    sizes = [int(k) for k in window_sizes]
    if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
        raise ValueError(f"window_sizes: expected distinct positive sizes, got {list(window_sizes)}")
    data = read_json(gt_path, "VPQ ground-truth JSON")
    cats = parse_categories(data, str(gt_path))
    categories = {c.id: c.is_thing for c in cats}
    known = set(categories)
    gt_frames = _frames_by_video(data, str(gt_path), known)
    pred_frames = _frames_by_video(read_json(pred_path, "VPQ predictions JSON"), str(pred_path), known)
    counts = {k: PQCounts.zeros(len(categories)) for k in sizes}
    videos = require(data, "videos", str(gt_path), list)
    for i, video in enumerate(videos):
        w = f"{gt_path}: videos[{i}]"
        vid = require(video, "video_id", w, (str, int))
        names = [
            require(im, "file_name", f"{w}.images[{j}]", str)
            for j, im in enumerate(require(video, "images", w, list))
        ]
        if vid not in gt_frames:
            raise DatasetFormatError(f"{gt_path}: video {vid!r} has no annotations")
        if vid not in pred_frames:
            raise DatasetFormatError(f"{pred_path}: no prediction for video {vid!r}")
        gt_f, pred_f = gt_frames[vid], pred_frames[vid]
        if not (len(names) == len(gt_f) == len(pred_f)):
            raise DatasetFormatError(
                f"video {vid!r}: {len(names)} images, {len(gt_f)} annotated frames, {len(pred_f)} predicted frames"
            )
        gt_maps = _load_maps(Path(gt_folder), vid, names, gt_f)
        pred_maps = _load_maps(Path(pred_folder), vid, names, pred_f)
        if gt_maps.shape != pred_maps.shape:
            raise DatasetFormatError(
                f"video {vid!r}: prediction frames {pred_maps.shape}, ground truth {gt_maps.shape}"
            )
        for k in sizes:
            for start in range(len(names) - k + 1):
                win = slice(start, start + k)
                counts[k].add(
                    count_pair(
                        gt_maps[win],
                        _window_segments(gt_f[win]),
                        pred_maps[win],
                        _window_segments(pred_f[win]),
                        categories,
                        f"video {vid!r} frames {start}..{start + k - 1}",
                    )
                )
    per = {k: summarise_counts(c, categories) for k, c in counts.items()}
    summary: dict[str, float] = {}
    for key, part in (("VPQ", "all"), ("VPQ_th", "things"), ("VPQ_st", "stuff")):
        scores = [getattr(r, part).pq for r in per.values() if math.isfinite(getattr(r, part).pq)]
        summary[key] = sum(scores) / len(scores) if scores else math.nan
    summary.update({f"PQ@{k}": r.all.pq for k, r in per.items()})
    _, n = pq_summary(per[sizes[-1]])
    names_by_id = {c.id: c.name for c in cats}
    logger.info("VPQ %.4f over %d videos", summary["VPQ"], len(videos))
    return EvaluationReport(
        task="vpq",
        summary=summary,
        counts={"videos": len(videos), **n},
        rows=pq_rows(per[sizes[-1]], names_by_id),
        result=per,
    )
