"""YouTube-VIS format: frame folders plus one JSON with per-frame RLE masks of each track.

Layout under ``root``::

    {split}/JPEGImages/<video folder>/<frame files>
    {split}.json

The JSON holds ``videos`` (id, file_names relative to ``JPEGImages``, height, width, length),
``annotations`` (id, video_id, category_id, iscrowd, ``segmentations`` / ``areas`` / ``bboxes``
with one entry per frame, ``null`` where the object is absent) and ``categories``. Results files
are lists of ``{video_id, category_id, segmentations, score}``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segblocks.data.formats._io import (
    DatasetFormatError,
    decode_segmentation,
    encode_rle,
    read_json,
    read_rgb,
    require,
    write_json,
    write_rgb,
)
from segblocks.data.formats.coco_panoptic import categories_json, parse_categories
from segblocks.data.formats.dataset import RecordDataset
from segblocks.data.formats.records import CategoryRecord, VideoInstanceRecord

__all__ = ["read_youtube_vis", "read_youtube_vis_results", "write_youtube_vis", "write_youtube_vis_results"]

logger = logging.getLogger(__name__)


def _per_frame(tube: np.ndarray) -> tuple[list[Any], list[Any], list[Any]]:
    segs: list[Any] = []
    areas: list[Any] = []
    boxes: list[Any] = []
    for m in tube:
        if not m.any():
            segs.append(None)
            areas.append(None)
            boxes.append(None)
            continue
        ys, xs = np.nonzero(m)
        segs.append(encode_rle(m))
        areas.append(int(m.sum()))
        boxes.append([float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)])
    return segs, areas, boxes


def write_youtube_vis(
    records: RecordDataset[VideoInstanceRecord] | Sequence[VideoInstanceRecord],
    root: str | Path,
    *,
    split: str = "valid",
    categories: Sequence[CategoryRecord] | None = None,
) -> Path:
    """Write video records (with frames) in the YouTube-VIS layout.

    Frames are saved under their ``file_names`` (format from the extension; ``.png`` is lossless).

    Args:
        records: the videos.
        root: dataset root folder.
        split: split name.
        categories: the categories (default: ``records.categories``).

    Returns:
        The path of the JSON file.

    Raises:
        ValueError: missing categories or frames, unknown categories, repeated video or track ids.
    """
    cats = list(categories if categories is not None else getattr(records, "categories", []))
    if not cats:
        raise ValueError("categories: expected the dataset's categories, got none")
    known = {c.id for c in cats}
    root = Path(root)
    videos, annotations = [], []
    seen_videos: set[int] = set()
    seen_tracks: set[int] = set()
    for rec in records:
        if rec.frames is None:
            raise ValueError(f"records: video {rec.video_id} has no frames to write")
        if rec.video_id in seen_videos:
            raise ValueError(f"records: video id {rec.video_id} appears twice")
        seen_videos.add(rec.video_id)
        t, h, w = rec.frames.shape[:3]
        videos.append(
            {"id": rec.video_id, "file_names": list(rec.file_names), "height": h, "width": w, "length": t}
        )
        for k in range(len(rec.track_ids)):
            tid, cid = int(rec.track_ids[k]), int(rec.category_ids[k])
            if cid not in known:
                raise ValueError(f"records: video {rec.video_id} has unknown category {cid}")
            if tid in seen_tracks:
                raise ValueError(f"records: track id {tid} appears twice")
            seen_tracks.add(tid)
            segs, areas, boxes = _per_frame(rec.masks[k])
            annotations.append(
                {
                    "id": tid,
                    "video_id": rec.video_id,
                    "category_id": cid,
                    "iscrowd": int(rec.iscrowd[k]),
                    "segmentations": segs,
                    "areas": areas,
                    "bboxes": boxes,
                    "height": h,
                    "width": w,
                    "length": t,
                }
            )
        for name, frame in zip(rec.file_names, rec.frames):
            write_rgb(root / split / "JPEGImages" / name, frame)
    path = root / f"{split}.json"
    write_json(path, {"videos": videos, "annotations": annotations, "categories": categories_json(cats)})
    logger.info("wrote %d YouTube-VIS videos to %s", len(videos), root)
    return path


def _decode_tube(segs: Any, t: int, h: int, w: int, where: str) -> np.ndarray:
    if not isinstance(segs, list) or len(segs) != t:
        n = len(segs) if isinstance(segs, list) else type(segs).__name__
        raise DatasetFormatError(f"{where}: 'segmentations' should list {t} frames, got {n}")
    tube = np.zeros((t, h, w), bool)
    for f, seg in enumerate(segs):
        if seg is not None:
            tube[f] = decode_segmentation(seg, h, w, f"{where}.segmentations[{f}]")
    return tube


def read_youtube_vis(
    root: str | Path,
    *,
    split: str = "valid",
    json_file: str | Path | None = None,
    frame_dir: str | Path | None = None,
) -> RecordDataset[VideoInstanceRecord]:
    """Read a YouTube-VIS dataset (frames and masks decoded on access).

    Args:
        root: dataset root folder.
        split: split name (sets the default paths).
        json_file: the JSON file (default ``root/{split}.json``).
        frame_dir: the frame folder (default ``root/{split}/JPEGImages``).

    Returns:
        One :class:`VideoInstanceRecord` per video (order of ``videos``), tracks in file order.

    Raises:
        FileNotFoundError: the JSON (now) or a frame (on access) is missing.
        DatasetFormatError: malformed JSON, missing keys, unknown video or category ids, repeated
            ids, wrong frame counts; on access: masks or frames of the wrong size.
    """
    root = Path(root)
    json_path = Path(json_file) if json_file is not None else root / f"{split}.json"
    frames_root = Path(frame_dir) if frame_dir is not None else root / split / "JPEGImages"
    data = read_json(json_path, "YouTube-VIS JSON")
    where = str(json_path)
    cats = parse_categories(data, where)
    known = {c.id for c in cats}
    videos: dict[int, dict[str, Any]] = {}
    for i, v in enumerate(require(data, "videos", where, list)):
        w = f"{where}: videos[{i}]"
        vid = require(v, "id", w, int)
        if vid in videos:
            raise DatasetFormatError(f"{w}: video id {vid} appears twice")
        names = require(v, "file_names", w, list)
        if not names or not all(isinstance(n, str) for n in names):
            raise DatasetFormatError(f"{w}: 'file_names' should be a non-empty list of strings")
        length = v.get("length", len(names))
        if length != len(names):
            raise DatasetFormatError(f"{w}: 'length' is {length} but {len(names)} file names are listed")
        videos[vid] = {
            "file_names": names,
            "height": require(v, "height", w, int),
            "width": require(v, "width", w, int),
        }
    tracks: dict[int, list[dict[str, Any]]] = {vid: [] for vid in videos}
    seen: set[int] = set()
    for i, ann in enumerate(require(data, "annotations", where, list)):
        w = f"{where}: annotations[{i}]"
        tid = require(ann, "id", w, int)
        vid = require(ann, "video_id", w, int)
        cid = require(ann, "category_id", w, int)
        segs = require(ann, "segmentations", w, list)
        if tid in seen:
            raise DatasetFormatError(f"{w}: annotation id {tid} appears twice")
        seen.add(tid)
        if vid not in videos:
            raise DatasetFormatError(f"{w}: video_id {vid} is not in 'videos'")
        if cid not in known:
            raise DatasetFormatError(f"{w}: unknown category_id {cid}")
        if len(segs) != len(videos[vid]["file_names"]):
            raise DatasetFormatError(
                f"{w}: 'segmentations' lists {len(segs)} frames, video {vid} has {len(videos[vid]['file_names'])}"
            )
        tracks[vid].append({**ann, "_where": w})
    order = list(videos)

    def load(index: int) -> VideoInstanceRecord:
        vid = order[index]
        v = videos[vid]
        t, h, w = len(v["file_names"]), v["height"], v["width"]
        frames = np.zeros((t, h, w, 3), np.uint8)
        for f, name in enumerate(v["file_names"]):
            img = read_rgb(frames_root / name, "frame")
            if img.shape[:2] != (h, w):
                raise DatasetFormatError(
                    f"{frames_root / name}: frame of the wrong size {img.shape[:2]}, the JSON says {(h, w)}"
                )
            frames[f] = img
        anns = tracks[vid]
        masks = np.zeros((len(anns), t, h, w), bool)
        for k, a in enumerate(anns):
            masks[k] = _decode_tube(a["segmentations"], t, h, w, a["_where"])
        return VideoInstanceRecord(
            video_id=vid,
            file_names=list(v["file_names"]),
            frames=frames,
            masks=masks,
            category_ids=np.array([a["category_id"] for a in anns], np.int64),
            track_ids=np.array([a["id"] for a in anns], np.int64),
            iscrowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], bool),
        )

    return RecordDataset(loader=load, length=len(order), categories=cats)


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
        if rec.scores is None:
            raise ValueError(f"records: video {rec.video_id} has no scores (ground truth?)")
        for k in range(len(rec.category_ids)):
            segs, _, _ = _per_frame(rec.masks[k])
            out.append(
                {
                    "video_id": rec.video_id,
                    "category_id": int(rec.category_ids[k]),
                    "segmentations": segs,
                    "score": float(rec.scores[k]),
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
    p = Path(path)
    data = read_json(p, "YouTube-VIS results JSON")
    if not isinstance(data, list):
        raise DatasetFormatError(f"{p}: expected a JSON list of predictions, got {type(data).__name__}")
    info = {v.video_id: v for v in videos}
    known = {c.id for c in getattr(videos, "categories", [])} or None
    rows: dict[int, list[tuple[np.ndarray, int, float]]] = {vid: [] for vid in info}
    for i, det in enumerate(data):
        w = f"{p}: [{i}]"
        vid = require(det, "video_id", w, int)
        cid = require(det, "category_id", w, int)
        score = float(require(det, "score", w, (int, float)))
        if vid not in info:
            raise DatasetFormatError(f"{w}: video_id {vid} is not a ground-truth video")
        if known is not None and cid not in known:
            raise DatasetFormatError(f"{w}: unknown category_id {cid}")
        t, h, wd = info[vid].masks.shape[1:]
        rows[vid].append((_decode_tube(require(det, "segmentations", w, list), t, h, wd, w), cid, score))
    out = {}
    for vid, rs in rows.items():
        t, h, w = info[vid].masks.shape[1:]
        out[vid] = VideoInstanceRecord(
            video_id=vid,
            file_names=list(info[vid].file_names),
            frames=None,
            masks=np.stack([r[0] for r in rs]) if rs else np.zeros((0, t, h, w), bool),
            category_ids=np.array([r[1] for r in rs], np.int64),
            track_ids=np.arange(len(rs), dtype=np.int64),
            iscrowd=np.zeros(len(rs), bool),
            scores=np.array([r[2] for r in rs], np.float64),
        )
    return out
