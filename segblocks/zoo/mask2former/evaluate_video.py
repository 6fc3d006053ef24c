"""Video evaluation of a Mask2Former with ``segblocks.metrics``: VIS AP, VPQ, VSS mIoU and VOS J&F.

Each validation clip runs through :class:`Mask2FormerVideoPredictor` in windows linked by query
matching, exactly as a long video would; its instance tubes are scored by YouTube-VIS AP (things),
its per-frame panoptic maps by VPQ (window sizes 1, 2, 4, 6, 8 as VIPSeg), its semantic maps by mIoU,
and the objects visible in the first frame are followed from their first-frame masks for DAVIS J&F.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch

from segblocks.data.shapes.dataset import ShapesClipExample
from segblocks.data.tubes import tubes_from_frames
from segblocks.inference.targets import tubes_to_panoptic
from segblocks.metrics import (
    DavisJF,
    SemanticSegmentationMetric,
    VideoAP,
    VideoInstances,
    VideoPanopticQuality,
)
from segblocks.structures import PanopticResult
from segblocks.zoo.mask2former.evaluate import as_percent
from segblocks.zoo.mask2former.video_predictor import Mask2FormerVideoPredictor

__all__ = ["VideoMetrics", "evaluate_video"]


@dataclass(frozen=True)
class VideoMetrics:
    """Video evaluation results in percent (NaN where nothing could be scored).

    Attributes:
        vis_ap: YouTube-VIS mask AP (IoU 0.50:0.95 over whole tubes), things only.
        vis_ap50: the same at IoU 0.5.
        vpq: video panoptic quality (mean over window sizes); vpq_things / vpq_stuff: by kind.
        vss_miou: per-frame semantic mIoU.
        vos_jf: DAVIS J&F following the things visible in the first frame from their masks.
        num_videos: clips evaluated.
    """

    vis_ap: float
    vis_ap50: float
    vpq: float
    vpq_things: float
    vpq_stuff: float
    vss_miou: float
    vos_jf: float
    num_videos: int

    def as_dict(self) -> dict[str, float]:
        """The fields as ``{name: value}``."""
        return {k: float(v) for k, v in asdict(self).items()}


@torch.no_grad()
def evaluate_video(
    predictor: Mask2FormerVideoPredictor,
    clips: Iterable[ShapesClipExample],
    *,
    device: str | torch.device = "cpu",
) -> VideoMetrics:
    """Score a video predictor on clips (VIS AP, VPQ, VSS mIoU, VOS J&F).

    Args:
        predictor: wraps the model and the window size.
        clips: validation clips (frames and per-frame targets whose ids are track ids).
        device: where the frames go.

    Returns:
        :class:`VideoMetrics` in percent.
    """
    model = predictor.model
    was_training = model.training
    model.eval()
    categories = dict(enumerate(model.is_thing))
    things = [c for c, t in categories.items() if t]
    vis = VideoAP(categories=things)
    vpq = VideoPanopticQuality(categories=categories)
    vss = SemanticSegmentationMetric(num_classes=model.num_classes)
    vos = DavisJF(void_id=None)
    count = 0
    try:
        for clip in clips:
            frames = clip.frames.to(device)
            tubes = tubes_from_frames(clip.targets)
            assert tubes.is_thing is not None
            linked = predictor.link(frames)
            result = predictor.postprocess(linked)
            assert result.panoptic is not None and result.semantic is not None and result.instance is not None
            inst = result.instance
            thing_tubes = tubes.masks[tubes.is_thing]
            vis.update(
                VideoInstances(
                    masks=inst.masks.cpu(), labels=inst.labels.cpu(), scores=inst.scores.float().cpu()
                ),
                VideoInstances(masks=thing_tubes, labels=tubes.labels[tubes.is_thing]),
            )
            pred_frames = []
            for m in result.panoptic.segment_maps.cpu():
                present = set(m.unique().tolist())
                pred_frames.append(
                    PanopticResult(
                        segment_map=m, segments=[s for s in result.panoptic.segments if s.id in present]
                    )
                )
            truth = tubes_to_panoptic(tubes)
            vpq.update(pred_frames, truth)
            for t, frame in enumerate(truth):
                label_map = torch.full_like(frame.segment_map, 255)
                for s in frame.segments:
                    label_map[frame.segment_map == s.id] = s.category_id
                vss.update(result.semantic.label_maps[t].cpu(), label_map)
            first = thing_tubes[:, 0]
            objects = first[first.flatten(1).any(1)]
            if len(objects) and len(frames) >= 3:
                followed = predictor.follow_objects(frames, objects.to(device), linked=linked).cpu()
                pred_ids = torch.zeros(followed.shape[1:], dtype=torch.int64)
                for k, masks in enumerate(followed):
                    pred_ids[masks] = k + 1
                gt_ids = torch.zeros_like(pred_ids)
                keep = thing_tubes[first.flatten(1).any(1)]
                for k, masks in enumerate(keep):
                    gt_ids[masks] = k + 1
                vos.update(pred_ids, gt_ids)
            count += 1
    finally:
        model.train(was_training)
    nan = float("nan")
    ap = vis.compute() if count else None
    pq = vpq.compute() if count else None
    davis = vos.compute()
    return VideoMetrics(
        vis_ap=as_percent(ap.ap) if ap else nan,
        vis_ap50=as_percent(ap.ap50) if ap else nan,
        vpq=as_percent(pq.vpq) if pq else nan,
        vpq_things=as_percent(pq.vpq_things) if pq else nan,
        vpq_stuff=as_percent(pq.vpq_stuff) if pq else nan,
        vss_miou=as_percent(vss.compute().miou) if count else nan,
        vos_jf=as_percent(davis.jf),
        num_videos=count,
    )
