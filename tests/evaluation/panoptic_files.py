"""Write COCO panoptic / VIPSeg-style files for the evaluation tests (ground truth and predictions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segblocks.data.formats._io import id_to_rgb

CATEGORIES = [
    {"id": 1, "name": "cat", "isthing": 1},
    {"id": 2, "name": "sky", "isthing": 0},
    {"id": 3, "name": "dog", "isthing": 1},
]


def write_png(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(id_to_rgb(np.asarray(ids))).save(path)


def write_panoptic(
    folder: Path,
    name: str,
    maps: dict[int, np.ndarray],
    segments: dict[int, list[dict[str, Any]]],
    *,
    gt: bool,
) -> tuple[Path, Path]:
    """``<folder>/<name>.json`` and ``<folder>/<name>/<id>.png``; ground truth gets images and categories."""
    png_dir = folder / name
    anns = []
    for iid, ids in maps.items():
        write_png(png_dir / f"{iid}.png", ids)
        anns.append({"image_id": iid, "file_name": f"{iid}.png", "segments_info": segments[iid]})
    data: dict[str, Any] = {"annotations": anns}
    if gt:
        data["images"] = [
            {"id": iid, "file_name": f"{iid}.jpg", "height": m.shape[0], "width": m.shape[1]}
            for iid, m in maps.items()
        ]
        data["categories"] = CATEGORIES
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data))
    return path, png_dir
