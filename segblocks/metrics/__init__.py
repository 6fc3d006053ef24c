"""Metrics: PQ, mIoU, mask AP, video AP, VPQ, DAVIS J&F, NoC / 1-IoU.

Every metric is streaming (``update`` per image or clip, ``compute`` at the end) and mergeable
across processes (``merge`` / ``sync``); see :class:`~segblocks.metrics.base.Metric`.
"""

from segblocks.metrics.base import Metric
from segblocks.metrics.davis import (
    DavisJF,
    DavisObjectStats,
    DavisResult,
    SequenceStatistics,
    boundary_f_measure,
    boundary_map,
    region_similarity,
    sequence_statistics,
)
from segblocks.metrics.interactive import ClickPredictor, NoCMetric, NoCResult, click_session
from segblocks.metrics.mask_ap import APResult, MaskAP, mask_iou
from segblocks.metrics.panoptic_quality import PanopticQuality, PanopticQualityResult, PQClassStats, PQSummary
from segblocks.metrics.semantic import SemanticSegmentationMetric, SemanticSegmentationResult
from segblocks.metrics.video_ap import VideoAP, VideoInstances
from segblocks.metrics.video_panoptic_quality import (
    VIPSEG_WINDOW_SIZES,
    VideoPanopticQuality,
    VideoPanopticQualityResult,
)

__all__ = [
    "VIPSEG_WINDOW_SIZES",
    "APResult",
    "ClickPredictor",
    "DavisJF",
    "DavisObjectStats",
    "DavisResult",
    "MaskAP",
    "Metric",
    "NoCMetric",
    "NoCResult",
    "PQClassStats",
    "PQSummary",
    "PanopticQuality",
    "PanopticQualityResult",
    "SemanticSegmentationMetric",
    "SemanticSegmentationResult",
    "SequenceStatistics",
    "VideoAP",
    "VideoInstances",
    "VideoPanopticQuality",
    "VideoPanopticQualityResult",
    "boundary_f_measure",
    "boundary_map",
    "click_session",
    "mask_iou",
    "region_similarity",
    "sequence_statistics",
]
