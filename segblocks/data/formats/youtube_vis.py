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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segblocks.data.formats._coco_common import (
    categories_json,
    check_categories,
    check_file_name,
    check_written_record,
    parse_categories,
)
from segblocks.data.formats._io import (
    DatasetFormatError,
    check_json_size,
    decode_segmentation,
    encode_json,
    encode_rle,
    image_size,
    read_json,
    read_rgb,
    require,
    staged_files,
    write_rgb,
)
from segblocks.data.formats.dataset import RecordDataset
from segblocks.data.formats.records import CategoryRecord, VideoInstanceRecord

__all__ = ["decode_tube", "per_frame_rle", "read_youtube_vis", "write_youtube_vis"]

logger = logging.getLogger(__name__)


def per_frame_rle(tube: np.ndarray) -> tuple[list[Any], list[Any], list[Any]]:
    """Per-frame RLEs, areas and boxes of a ``[T, H, W]`` tube (None where the track is absent)."""
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
    """Write video records (with frames) in the YouTube-VIS layout, atomically.

    Frames are saved under their ``file_names`` (format from the extension; ``.png`` is lossless).
    Files are written under temporary names and renamed once every record is checked and the JSON
    encoded: on an error an existing dataset at ``root`` is left as it was.

    Args:
        records: the videos.
        root: dataset root folder.
        split: split name.
        categories: the categories (default: ``records.categories``).

    Returns:
        The path of the JSON file.

    Raises:
        ValueError: missing categories or frames, repeated category ids or names, unknown
            categories, repeated video or track ids, a file name outside the dataset folder.
        TypeError: a record that is not a :class:`VideoInstanceRecord`, or an id that is not an int.
    """
    cats = check_categories(records, categories)
    known = {c.id for c in cats}
    root = Path(root)
    videos, annotations = [], []
    seen_videos: set[int] = set()
    seen_tracks: set[int] = set()
    path = root / f"{split}.json"
    with staged_files() as staging:
        for i, rec in enumerate(records):
            where, vid = check_written_record(i, rec, VideoInstanceRecord, seen_videos, "video_id")
            if rec.frames is None:
                raise ValueError(f"records: video {vid} has no frames to write")
            names = [check_file_name(f"{where}.file_names[{f}]", n) for f, n in enumerate(rec.file_names)]
            if len(set(names)) != len(names):
                raise ValueError(f"{where}.file_names: a frame name appears twice")
            t, h, w = rec.frames.shape[:3]
            check_json_size(h, w, where)  # what the reader would refuse
            if t == 0:
                raise ValueError(f"{where}: video {vid} has no frames")
            videos.append({"id": vid, "file_names": names, "height": h, "width": w, "length": t})
            for k in range(len(rec.track_ids)):
                tid, cid = int(rec.track_ids[k]), int(rec.category_ids[k])
                if cid not in known:
                    raise ValueError(f"records: video {vid} has unknown category {cid}")
                if tid in seen_tracks:
                    raise ValueError(f"records: track id {tid} appears twice")
                seen_tracks.add(tid)
                segs, areas, boxes = per_frame_rle(rec.masks[k])
                annotations.append(
                    {
                        "id": tid,
                        "video_id": vid,
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
            for name, frame in zip(names, rec.frames):
                write_rgb(staging.path(root / split / "JPEGImages" / name), frame)
        text = encode_json(
            {"videos": videos, "annotations": annotations, "categories": categories_json(cats)}, str(path)
        )
        staging.path(path).write_text(text, encoding="utf-8")
    logger.info("wrote %d YouTube-VIS videos to %s", len(videos), root)
    return path


def check_rle_sizes(segs: list[Any], h: int, w: int, where: str) -> None:
    """Compare the ``size`` of every RLE with the video's size before anything is allocated."""
    for f, seg in enumerate(segs):
        if isinstance(seg, dict) and "size" in seg and list(seg["size"]) != [h, w]:
            raise DatasetFormatError(
                f"{where}.segmentations[{f}]: mask of the wrong size: RLE size {list(seg['size'])}, "
                f"the video is [{h}, {w}]"
            )


def _mean_area(areas: Any, where: str) -> float | None:
    """YouTube-VIS's average area of a track: the mean of its non-null, non-zero ``areas``."""
    if areas is None:
        return None
    if not isinstance(areas, list) or not all(
        a is None or (isinstance(a, int | float) and not isinstance(a, bool) and a >= 0) for a in areas
    ):
        raise DatasetFormatError(f"{where}: 'areas' should list a non-negative area or null per frame")
    present = [float(a) for a in areas if a]
    return sum(present) / len(present) if present else 0.0


def decode_tube(segs: Any, t: int, h: int, w: int, where: str) -> np.ndarray:
    """Decode one track's per-frame segmentations (null where absent) to ``[T, H, W]`` bool.

    Args:
        segs: ``T`` segmentations (RLE or polygons) or None.
        t: the number of frames ``T``.
        h: the frame height.
        w: the frame width.
        where: names the entry in error messages.

    Raises:
        DatasetFormatError: another number of frames, or a mask of the wrong size.
    """
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
    frames: bool = True,
) -> RecordDataset[VideoInstanceRecord]:
    """Read a YouTube-VIS dataset (frames and masks decoded on access).

    Args:
        root: dataset root folder.
        split: split name (sets the default paths).
        json_file: the JSON file (default ``root/{split}.json``).
        frame_dir: the frame folder (default ``root/{split}/JPEGImages``).
        frames: read the frames; False gives records with ``frames=None`` and needs only the JSON
            (as the YouTube-VIS evaluation).

    Returns:
        One :class:`VideoInstanceRecord` per video (order of ``videos``), tracks in file order;
        ``areas`` holds each track's mean ``areas`` entry (null and 0 entries left out) when the
        JSON has them.

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
        check_json_size(videos[vid]["height"], videos[vid]["width"], w)
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
        check_rle_sizes(segs, videos[vid]["height"], videos[vid]["width"], w)
        tracks[vid].append({**ann, "_where": w, "_area": _mean_area(ann.get("areas"), w)})
    order = list(videos)

    def load(index: int) -> VideoInstanceRecord:
        vid = order[index]
        v = videos[vid]
        t, h, w = len(v["file_names"]), v["height"], v["width"]
        pixels = None
        if frames:
            for name in v["file_names"]:  # sizes from the headers before the frames are allocated
                if image_size(frames_root / name, "frame") != (h, w):
                    raise DatasetFormatError(
                        f"{frames_root / name}: frame of the wrong size "
                        f"{image_size(frames_root / name, 'frame')}, the JSON says {(h, w)}"
                    )
            pixels = np.stack([read_rgb(frames_root / name, "frame") for name in v["file_names"]])
        anns = tracks[vid]
        areas = [a["_area"] for a in anns]
        masks = np.zeros((len(anns), t, h, w), bool)
        for k, a in enumerate(anns):
            masks[k] = decode_tube(a["segmentations"], t, h, w, a["_where"])
        return VideoInstanceRecord(
            video_id=vid,
            file_names=list(v["file_names"]),
            frames=pixels,
            masks=masks,
            category_ids=np.array([a["category_id"] for a in anns], np.int64),
            track_ids=np.array([a["id"] for a in anns], np.int64),
            iscrowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], bool),
            areas=None if None in areas else np.asarray(areas, np.float64),
        )

    return RecordDataset(loader=load, length=len(order), categories=cats)
