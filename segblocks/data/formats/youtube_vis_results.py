"""YouTube-VIS results: lists of ``{video_id, category_id, segmentations, score}``, one entry per track.

``segmentations`` holds one compressed RLE per frame of the video (``null`` where the track is
absent). Entries are checked when the file is read; masks are decoded one video at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segblocks.data.formats._coco_common import check_prediction_scores, check_record_id
from segblocks.data.formats._io import DatasetFormatError, read_json, require, write_json
from segblocks.data.formats.dataset import RecordDataset
from segblocks.data.formats.records import CategoryRecord, VideoInstanceRecord
from segblocks.data.formats.youtube_vis import check_rle_sizes, decode_tube, per_frame_rle

__all__ = ["VisResults", "read_youtube_vis_results", "write_youtube_vis_results"]


class VisResults:
    """Checked YouTube-VIS predictions grouped by video; decoded per video by :meth:`for_video`.

    Args:
        path: the results file (named in error messages).
        grouped: per video id, the checked entries ``(segmentations, category_id, score, where)``.
    """

    def __init__(self, path: Path, grouped: dict[int, list[tuple[list[Any], int, float, str]]]) -> None:
        self.path = path
        self._grouped = grouped

    @property
    def video_ids(self) -> list[int]:
        """The ids of the videos that have predictions, in file order."""
        return list(self._grouped)

    def for_video(self, video: VideoInstanceRecord) -> VideoInstanceRecord:
        """The predictions of ``video`` (a ground-truth record, for frame count, size and names).

        Raises:
            DatasetFormatError: a prediction lists another number of frames or masks of another size.
        """
        t, h, w = video.masks.shape[1:]
        rows = self._grouped.get(video.video_id, [])
        tubes = []
        for segs, _, _, where in rows:
            if len(segs) == t:
                check_rle_sizes(segs, h, w, where)
            tubes.append(decode_tube(segs, t, h, w, where))
        return VideoInstanceRecord(
            video_id=video.video_id,
            file_names=list(video.file_names),
            frames=None,
            masks=np.stack(tubes) if tubes else np.zeros((0, t, h, w), bool),
            category_ids=np.array([r[1] for r in rows], np.int64),
            track_ids=np.arange(len(rows), dtype=np.int64),
            iscrowd=np.zeros(len(rows), bool),
            scores=np.array([r[2] for r in rows], np.float64),
        )


def group_youtube_vis_results(
    path: str | Path, *, categories: Sequence[CategoryRecord] | None = None
) -> VisResults:
    """Read and check a YouTube-VIS results file without decoding any mask.

    Args:
        path: the results file.
        categories: if given, category ids are checked against them.

    Raises:
        FileNotFoundError: missing file.
        DatasetFormatError: not a list, missing or mistyped keys, non-finite scores, unknown categories.
    """
    p = Path(path)
    data = read_json(p, "YouTube-VIS results JSON")
    if not isinstance(data, list):
        raise DatasetFormatError(f"{p}: expected a JSON list of predictions, got {type(data).__name__}")
    known = None if categories is None else {c.id for c in categories}
    grouped: dict[int, list[tuple[list[Any], int, float, str]]] = {}
    for i, det in enumerate(data):
        w = f"{p}: [{i}]"
        vid = require(det, "video_id", w, int)
        cid = require(det, "category_id", w, int)
        score = float(require(det, "score", w, (int, float)))
        if not math.isfinite(score):
            raise DatasetFormatError(f"{w}: 'score' should be a finite number, got {score}")
        if known is not None and cid not in known:
            raise DatasetFormatError(f"{w}: unknown category_id {cid}")
        grouped.setdefault(vid, []).append((require(det, "segmentations", w, list), cid, score, w))
    return VisResults(p, grouped)


def write_youtube_vis_results(records: Iterable[VideoInstanceRecord], path: str | Path) -> Path:
    """Write predicted tracks (records with scores) as a YouTube-VIS results JSON list.

    Args:
        records: prediction records (with ``scores``).
        path: the JSON file to write.

    Returns:
        ``path``.

    Raises:
        ValueError: a record has no scores.
    """
    out = []
    for rec in records:
        scores = check_prediction_scores(rec, f"video {rec.video_id}")
        for k in range(len(rec.category_ids)):
            segs, _, _ = per_frame_rle(rec.masks[k])
            out.append(
                {
                    "video_id": check_record_id("records video_id", rec.video_id),
                    "category_id": int(rec.category_ids[k]),
                    "segmentations": segs,
                    "score": float(scores[k]),
                }
            )
    p = Path(path)
    write_json(p, out)
    return p


def read_youtube_vis_results(
    path: str | Path, videos: RecordDataset[VideoInstanceRecord] | Sequence[VideoInstanceRecord]
) -> dict[int, VideoInstanceRecord]:
    """Read YouTube-VIS results into one prediction record per video of ``videos``.

    Args:
        path: the results file.
        videos: the ground-truth videos (for frame counts, sizes and names); videos without
            predictions get an empty record.

    Returns:
        ``{video_id: record}`` with no frames, ``track_ids`` ``0..N-1`` in file order.

    Raises:
        FileNotFoundError: missing file.
        DatasetFormatError: malformed entries, unknown videos or categories, masks of the wrong size.
    """
    cats = getattr(videos, "categories", None) or None
    results = group_youtube_vis_results(path, categories=cats)
    out = {v.video_id: results.for_video(v) for v in videos}
    unknown = [vid for vid in results.video_ids if vid not in out]
    if unknown:
        raise DatasetFormatError(f"{results.path}: video_id {unknown[0]} is not a ground-truth video")
    return out
