"""DAVIS J, F, J&F, recall and decay from an annotation folder and a results folder, as the DAVIS 2017 evaluation."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from segblocks.data.formats import DatasetFormatError, read_davis
from segblocks.data.formats._io import read_index_png
from segblocks.evaluation.report import EvaluationReport
from segblocks.metrics import DavisJF

__all__ = ["evaluate_davis"]

logger = logging.getLogger(__name__)


def evaluate_davis(
    davis_root: str | Path,
    results_dir: str | Path,
    *,
    split: str = "val",
    year: str = "2017",
    resolution: str = "480p",
    semi_supervised: bool = True,
) -> EvaluationReport:
    """DAVIS scores of result PNGs; no frame (JPEG) is read.

    As the DAVIS 2017 evaluation: the sequences of ``ImageSets/{year}/{split}.txt``; the objects of
    a sequence are ``1..N`` with ``N`` the largest id of its first annotation (255 is void); a
    result PNG (indexed, ``results_dir/<sequence>/<frame>.png``) per annotated frame, holding no id
    above ``N``; in the semi-supervised protocol the first and last frames are left out. J and F
    per object and frame, their mean / recall (> 0.5) / decay per object, averaged over objects.

    Args:
        davis_root: the DAVIS root (``Annotations/{resolution}``, ``ImageSets/{year}``).
        results_dir: one folder of PNGs per sequence.
        split: the sequence list.
        year: the ImageSets sub-folder.
        resolution: the resolution folder.
        semi_supervised: leave out the first and last frames.

    Returns:
        A report with ``J&F``, ``J_mean``, ``J_recall``, ``J_decay``, ``F_mean``, ``F_recall``,
        ``F_decay``, per-object rows (``<sequence>_<id>``) and the :class:`~segblocks.metrics.DavisResult`.

    Raises:
        FileNotFoundError: a list, folder or result PNG is missing.
        DatasetFormatError: a colour PNG, sizes that differ, result ids above the sequence's objects.
    """
    gt = read_davis(davis_root, split=split, year=year, resolution=resolution, frames=False)
    metric = DavisJF(skip_first_last=semi_supervised)
    results = Path(results_dir)
    for seq in gt:
        pred = np.stack(
            [read_index_png(results / seq.name / f"{stem}.png", "result PNG") for stem in seq.file_names]
        ).astype(np.int64)
        if pred.shape != seq.objects.shape:
            raise DatasetFormatError(
                f"{results / seq.name}: results of shape {pred.shape}, the annotations are {seq.objects.shape}"
            )
        first = seq.objects[0]
        num_objects = int(first[first != 255].max(initial=0))
        if int(pred.max(initial=0)) > num_objects:
            raise DatasetFormatError(
                f"{results / seq.name}: result ids up to {int(pred.max())}, the sequence has {num_objects} objects"
            )
        metric.update(pred, seq.objects, sequence=seq.name, num_objects=num_objects)
    r = metric.compute()
    logger.info("DAVIS: J&F %.4f over %d objects", r.jf, r.num_objects)
    return EvaluationReport(
        task="davis",
        summary={
            "J&F": r.jf,
            "J_mean": r.j_mean,
            "J_recall": r.j_recall,
            "J_decay": r.j_decay,
            "F_mean": r.f_mean,
            "F_recall": r.f_recall,
            "F_decay": r.f_decay,
        },
        counts={"sequences": len(gt), "objects": r.num_objects},
        rows={f"{o.sequence}_{o.object_id}": {"J": o.j.mean, "F": o.f.mean} for o in r.per_object},
        result=r,
    )
