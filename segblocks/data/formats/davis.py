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
    staged_files,
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
    list_file = root / "ImageSets" / year / f"{split}.txt"
    with staged_files() as staging:  # nothing replaces an existing file until every sequence is written
        for rec in records:
            if rec.frames is None:
                raise ValueError(f"records: sequence {rec.name!r} has no frames to write")
            if rec.name in names:
                raise ValueError(f"records: sequence {rec.name!r} appears twice")
            names.append(rec.name)
            for stem, frame, objects in zip(rec.file_names, rec.frames, rec.objects):
                write_rgb(
                    staging.path(root / "JPEGImages" / resolution / rec.name / f"{stem}{frame_ext}"), frame
                )
                write_index_png(
                    staging.path(root / "Annotations" / resolution / rec.name / f"{stem}.png"),
                    objects,
                    palette=True,
                )
        staging.path(list_file).write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    logger.info("wrote %d DAVIS sequences to %s", len(names), root)
    return list_file


def read_davis(
    root: str | Path,
    *,
    split: str = "val",
    year: str = "2017",
    resolution: str = "480p",
    frames: bool = True,
) -> RecordDataset[VideoObjectRecord]:
    """Read DAVIS sequences listed in ``ImageSets/{year}/{split}.txt`` (frames read on access).

    Args:
        root: dataset root folder.
        split: sequence list name.
        year: ImageSets sub-folder.
        resolution: resolution folder name.
        frames: read the frames; False gives records with ``frames=None`` and needs only the
            annotation PNGs and the list (as the DAVIS evaluation).

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
        for d in (fdir, adir) if frames else (adir,):
            if not d.is_dir():
                raise FileNotFoundError(f"DAVIS folder not found: {d}")
        anns = {p.stem: p for p in sorted(adir.glob("*.png"))}
        found = (
            {p.stem: p for p in sorted(fdir.iterdir()) if p.suffix.lower() in _FRAME_EXTS} if frames else anns
        )
        if not found:
            raise DatasetFormatError(f"{fdir if frames else adir}: no frames")
        if set(found) - set(anns):
            raise DatasetFormatError(
                f"{adir}: no annotation for frames {sorted(set(found) - set(anns))[:10]}"
            )
        if set(anns) - set(found):
            raise DatasetFormatError(
                f"{fdir}: no frame for annotations {sorted(set(anns) - set(found))[:10]}"
            )
        stems = sorted(found)
        seqs.append((name, [found[s] for s in stems], [anns[s] for s in stems]))

    def load(index: int) -> VideoObjectRecord:
        name, frame_paths, ann_paths = seqs[index]
        pixels: list[np.ndarray] = []
        objects: list[np.ndarray] = []
        for fp, ap in zip(frame_paths, ann_paths):
            ids = read_index_png(ap, "annotation PNG")
            if objects and ids.shape != objects[0].shape:
                raise DatasetFormatError(
                    f"{ap}: mask of the wrong size {ids.shape}, the first one is {objects[0].shape}"
                )
            if frames:
                frame = read_rgb(fp, "frame")
                if ids.shape != frame.shape[:2]:
                    raise DatasetFormatError(
                        f"{ap}: mask of the wrong size {ids.shape}, frame {fp.name} is {frame.shape[:2]}"
                    )
                pixels.append(frame)
            objects.append(ids)
        return VideoObjectRecord(
            name=name,
            file_names=[p.stem for p in frame_paths],
            frames=np.stack(pixels) if frames else None,
            objects=np.stack(objects).astype(np.int64),
        )

    return RecordDataset(loader=load, length=len(seqs))
