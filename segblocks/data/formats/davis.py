"""DAVIS format: per-sequence folders of frames and of indexed (palette) annotation PNGs.

Layout under ``root`` (DAVIS 2017's)::

    JPEGImages/{resolution}/<sequence>/<frame>.<ext>
    Annotations/{resolution}/<sequence>/<frame>.png     0 background, 1..N objects, 255 void
    ImageSets/{year}/{split}.txt                          one sequence name per line
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segblocks.data.formats._io import (
    DatasetFormatError,
    read_index_png,
    read_rgb,
    write_index_png,
    write_rgb,
)
from segblocks.data.formats.dataset import RecordDataset
from segblocks.data.formats.records import VideoObjectRecord

__all__ = ["read_davis", "write_davis"]

logger = logging.getLogger(__name__)

_FRAME_EXTS = (".jpg", ".jpeg", ".png")


def write_davis(
    records: RecordDataset[VideoObjectRecord] | Sequence[VideoObjectRecord],
    root: str | Path,
    *,
    split: str = "val",
    year: str = "2017",
    resolution: str = "480p",
    frame_ext: str = ".png",
) -> Path:
    """Write sequences in the DAVIS layout.

    Args:
        records: the sequences (unique names).
        root: dataset root folder.
        split: name of the sequence list in ``ImageSets/{year}``.
        year: ImageSets sub-folder.
        resolution: resolution folder name.
        frame_ext: frame file extension (``.png`` is lossless, DAVIS ships ``.jpg``).

    Returns:
        The sequence list file.

    Raises:
        ValueError: repeated sequence names.
    """
    root = Path(root)
    names: list[str] = []
    for rec in records:
        if rec.name in names:
            raise ValueError(f"records: sequence {rec.name!r} appears twice")
        names.append(rec.name)
        for stem, frame, objects in zip(rec.file_names, rec.frames, rec.objects):
            write_rgb(root / "JPEGImages" / resolution / rec.name / f"{stem}{frame_ext}", frame)
            write_index_png(
                root / "Annotations" / resolution / rec.name / f"{stem}.png", objects, palette=True
            )
    list_file = root / "ImageSets" / year / f"{split}.txt"
    list_file.parent.mkdir(parents=True, exist_ok=True)
    list_file.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    logger.info("wrote %d DAVIS sequences to %s", len(names), root)
    return list_file


def read_davis(
    root: str | Path,
    *,
    split: str = "val",
    year: str = "2017",
    resolution: str = "480p",
) -> RecordDataset[VideoObjectRecord]:
    """Read DAVIS sequences listed in ``ImageSets/{year}/{split}.txt`` (frames read on access).

    Args:
        root: dataset root folder.
        split: sequence list name.
        year: ImageSets sub-folder.
        resolution: resolution folder name.

    Returns:
        One :class:`VideoObjectRecord` per listed sequence, frames sorted by name.

    Raises:
        FileNotFoundError: the list file or a sequence folder (now) is missing.
        DatasetFormatError: an empty or duplicated sequence, frames without annotation or
            annotations without frame (now); a colour annotation PNG or one of the wrong size (on access).
    """
    root = Path(root)
    list_file = root / "ImageSets" / year / f"{split}.txt"
    if not list_file.is_file():
        raise FileNotFoundError(f"DAVIS sequence list not found: {list_file}")
    names = [line.strip() for line in list_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(set(names)) != len(names):
        raise DatasetFormatError(f"{list_file}: a sequence is listed twice")
    seqs: list[tuple[str, list[Path], list[Path]]] = []
    for name in names:
        fdir, adir = root / "JPEGImages" / resolution / name, root / "Annotations" / resolution / name
        for d in (fdir, adir):
            if not d.is_dir():
                raise FileNotFoundError(f"DAVIS folder not found: {d}")
        frames = {p.stem: p for p in sorted(fdir.iterdir()) if p.suffix.lower() in _FRAME_EXTS}
        anns = {p.stem: p for p in sorted(adir.glob("*.png"))}
        if not frames:
            raise DatasetFormatError(f"{fdir}: no frames")
        if set(frames) - set(anns):
            raise DatasetFormatError(
                f"{adir}: no annotation for frames {sorted(set(frames) - set(anns))[:10]}"
            )
        if set(anns) - set(frames):
            raise DatasetFormatError(
                f"{fdir}: no frame for annotations {sorted(set(anns) - set(frames))[:10]}"
            )
        stems = sorted(frames)
        seqs.append((name, [frames[s] for s in stems], [anns[s] for s in stems]))

    def load(index: int) -> VideoObjectRecord:
        name, frame_paths, ann_paths = seqs[index]
        frames: list[np.ndarray] = []
        objects: list[np.ndarray] = []
        for fp, ap in zip(frame_paths, ann_paths):
            frame = read_rgb(fp, "frame")
            ids = read_index_png(ap, "annotation PNG")
            if frames and frame.shape != frames[0].shape:
                raise DatasetFormatError(
                    f"{fp}: frame of size {frame.shape[:2]}, the first frame is {frames[0].shape[:2]}"
                )
            if ids.shape != frame.shape[:2]:
                raise DatasetFormatError(
                    f"{ap}: mask of the wrong size {ids.shape}, frame {fp.name} is {frame.shape[:2]}"
                )
            frames.append(frame)
            objects.append(ids)
        return VideoObjectRecord(
            name=name,
            file_names=[p.stem for p in frame_paths],
            frames=np.stack(frames),
            objects=np.stack(objects).astype(np.int64),
        )

    return RecordDataset(loader=load, length=len(seqs))
