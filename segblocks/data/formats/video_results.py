"""Writers of video predictions in the field's result formats, as their evaluators read them.

- :func:`write_vipseg_results`: per-frame panoptic PNGs (ids as COCO panoptic colours) and one JSON
  (VIPSeg's layout: ``annotations`` per video, one ``segments_info`` per frame; segment ids are track
  ids, so the same id in two frames is the same object) for :func:`segblocks.evaluation.evaluate_vpq`.
- :func:`write_davis_results`: one indexed PNG per frame (``<sequence>/<frame>.png``, 0 background,
  ``1..N`` objects), for the DAVIS evaluation (:func:`segblocks.evaluation.evaluate_davis`).
- YouTube-VIS results are :func:`~segblocks.data.formats.write_youtube_vis_results` of
  :class:`~segblocks.data.formats.VideoInstanceRecord` s.

Everything is validated before the first file is written, and files are staged and renamed at the
end, so a failure leaves an existing folder as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segblocks.data.formats._coco_common import check_file_name
from segblocks.data.formats._io import encode_json, id_to_rgb, staged_files, write_index_png, write_rgb

__all__ = ["VideoPanopticPrediction", "write_davis_results", "write_vipseg_results"]


@dataclass
class VideoPanopticPrediction:
    """One video's panoptic prediction.

    Attributes:
        video_id: the ground truth's video id.
        file_names: ``T`` PNG file names of the frames (the ground truth's).
        segment_maps: ``[T, H, W]`` integer segment ids (0 = VOID), consistent over the frames.
        categories: ``{segment id: category id}`` for every id in ``segment_maps``.
    """

    video_id: int | str
    file_names: Sequence[str]
    segment_maps: np.ndarray
    categories: Mapping[int, int]

    def __post_init__(self) -> None:
        maps = np.asarray(self.segment_maps)
        if maps.ndim != 3 or maps.dtype.kind not in "iu" or maps.shape[0] == 0:
            raise ValueError(
                f"segment_maps: expected integer [T, H, W] with T >= 1, got {maps.dtype} {maps.shape}"
            )
        if len(self.file_names) != maps.shape[0]:
            raise ValueError(
                f"file_names: expected {maps.shape[0]} names (one per frame), got {len(self.file_names)}"
            )
        for name in self.file_names:
            check_file_name("file_names", name)
        ids = {int(i) for i in np.unique(maps)} - {0}
        missing = sorted(ids - {int(k) for k in self.categories})
        if missing:
            raise ValueError(f"categories: segment ids {missing} of segment_maps have no category")
        self.segment_maps = maps.astype(np.int64)


def write_vipseg_results(
    videos: Sequence[VideoPanopticPrediction], pred_json: str | Path, pred_folder: str | Path
) -> Path:
    """Write per-frame panoptic predictions in the VIPSeg layout.

    Args:
        videos: one prediction per video (unique video ids).
        pred_json: the JSON to write (``{"annotations": [...]}``).
        pred_folder: PNGs go to ``pred_folder/<video_id>/<file_name>``.

    Returns:
        ``pred_json``.

    Raises:
        ValueError: on repeated video ids or bad predictions (see :class:`VideoPanopticPrediction`).
    """
    ids = [v.video_id for v in videos]
    if len(set(ids)) != len(ids):
        raise ValueError(f"videos: video ids must be unique, got {ids}")
    annotations = []
    for v in videos:
        frames = []
        for name, frame in zip(v.file_names, v.segment_maps):
            present, areas = np.unique(frame, return_counts=True)
            segments = [
                {"id": int(i), "category_id": int(v.categories[int(i)]), "iscrowd": 0, "area": int(a)}
                for i, a in zip(present, areas)
                if i != 0
            ]
            frames.append({"file_name": name, "segments_info": segments})
        annotations.append({"video_id": v.video_id, "annotations": frames})
    text = encode_json({"annotations": annotations}, str(pred_json))
    folder, json_path = Path(pred_folder), Path(pred_json)
    with staged_files() as staging:
        for v in videos:
            for name, frame in zip(v.file_names, v.segment_maps):
                write_rgb(staging.path(folder / str(v.video_id) / name), id_to_rgb(frame))
        staging.path(json_path).write_text(text, encoding="utf-8")
    return json_path


def write_davis_results(
    objects: Mapping[str, np.ndarray],
    results_dir: str | Path,
    *,
    file_names: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Write VOS results as DAVIS expects them: ``results_dir/<sequence>/<frame>.png`` indexed PNGs.

    Args:
        objects: ``{sequence name: [T, H, W] integer object ids}`` (0 background, ``1..N`` objects,
            at most 254).
        results_dir: the results folder.
        file_names: ``{sequence: T frame stems}`` (default ``00000``, ``00001``, ...).

    Returns:
        ``results_dir``.

    Raises:
        ValueError: on ids outside ``0..254``, maps that are not ``[T, H, W]`` integers, or a wrong
            number of frame names.
    """
    root = Path(results_dir)
    plan: list[tuple[Path, np.ndarray]] = []
    for name, ids in objects.items():
        check_file_name("objects", name)
        arr = np.asarray(ids)
        if arr.ndim != 3 or arr.dtype.kind not in "iu" or arr.shape[0] == 0:
            raise ValueError(
                f"objects[{name!r}]: expected integer [T, H, W] with T >= 1, got {arr.dtype} {arr.shape}"
            )
        if arr.size and (arr.min() < 0 or arr.max() > 254):
            raise ValueError(
                f"objects[{name!r}]: object ids must lie in 0..254, got {arr.min()}..{arr.max()}"
            )
        stems = (
            list(file_names[name]) if file_names is not None else [f"{t:05d}" for t in range(arr.shape[0])]
        )
        if len(stems) != arr.shape[0]:
            raise ValueError(f"file_names[{name!r}]: expected {arr.shape[0]} stems, got {len(stems)}")
        plan += [(root / name / f"{stem}.png", frame) for stem, frame in zip(stems, arr)]
    with staged_files() as staging:
        for path, frame in plan:
            write_index_png(staging.path(path), frame, palette=True)
    return root
