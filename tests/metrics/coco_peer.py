"""Run pycocotools' COCOeval (the peer) on in-memory masks, for the mask AP tests."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np
import pycocotools.mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def rle(mask: np.ndarray) -> dict[str, object]:
    """Compressed RLE of a ``[H, W]`` bool mask with a JSON-ready string."""
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")}


@dataclass
class CocoPeer:
    """Collects ground truth and detections, then evaluates them with COCOeval (``segm``)."""

    categories: list[int]
    images: list[dict[str, object]] = field(default_factory=list)
    annotations: list[dict[str, object]] = field(default_factory=list)
    detections: list[dict[str, object]] = field(default_factory=list)

    def add_image(
        self,
        image_id: int,
        gt_masks: np.ndarray,
        gt_labels: list[int],
        gt_crowd: list[bool],
        dt_masks: np.ndarray,
        dt_labels: list[int],
        dt_scores: list[float],
    ) -> None:
        h, w = gt_masks.shape[1:] if len(gt_masks) else dt_masks.shape[1:]
        self.images.append(
            {"id": image_id, "height": int(h), "width": int(w), "file_name": f"{image_id}.png"}
        )
        for m, c, crowd in zip(gt_masks, gt_labels, gt_crowd):
            r = rle(m)
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(c),
                    "segmentation": r,
                    "area": float(m.sum()),
                    "iscrowd": int(crowd),
                    "bbox": [float(v) for v in mask_utils.toBbox(r)],
                }
            )
        for m, c, s in zip(dt_masks, dt_labels, dt_scores):
            self.detections.append(
                {"image_id": image_id, "category_id": int(c), "segmentation": rle(m), "score": s}
            )

    def stats(self) -> np.ndarray:
        """COCOeval's twelve numbers (``E.stats``)."""
        gt = COCO()
        gt.dataset = {
            "images": self.images,
            "annotations": self.annotations,
            "categories": [{"id": c, "name": str(c)} for c in self.categories],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
            dt = gt.loadRes(self.detections) if self.detections else COCO()
            if not self.detections:
                dt.dataset = {
                    "images": self.images,
                    "annotations": [],
                    "categories": gt.dataset["categories"],
                }
                dt.createIndex()
            ev = COCOeval(gt, dt, "segm")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return np.asarray(ev.stats)
