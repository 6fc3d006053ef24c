"""Post-processing of query predictions: panoptic, semantic and instance results of images and clips,
per-prompt results; padding helpers."""

from segblocks.inference.batch import (
    TASKS,
    SegmentationPrediction,
    check_tasks,
    postprocess_batch,
    postprocess_image,
)
from segblocks.inference.clips import (
    ClipPrediction,
    VideoInstanceResult,
    VideoPanopticResult,
    VideoSemanticResult,
    postprocess_clips,
)
from segblocks.inference.instance import instance_inference
from segblocks.inference.padding import (
    pad_images,
    pad_masks,
    pad_targets,
    padded_size,
    prepare_images,
    unpad_mask_logits,
)
from segblocks.inference.panoptic import panoptic_inference
from segblocks.inference.point_grid import mask_nms, point_grid, proposal_class_logits
from segblocks.inference.prompts import PromptPrediction, postprocess_prompts
from segblocks.inference.semantic import semantic_inference
from segblocks.inference.video_windows import (
    TubeLinker,
    assign_objects,
    clip_windows,
    link_queries,
    object_masks,
)

__all__ = [
    "TASKS",
    "ClipPrediction",
    "PromptPrediction",
    "SegmentationPrediction",
    "TubeLinker",
    "VideoInstanceResult",
    "VideoPanopticResult",
    "VideoSemanticResult",
    "assign_objects",
    "check_tasks",
    "clip_windows",
    "instance_inference",
    "link_queries",
    "mask_nms",
    "object_masks",
    "pad_images",
    "pad_masks",
    "pad_targets",
    "padded_size",
    "panoptic_inference",
    "point_grid",
    "postprocess_batch",
    "postprocess_clips",
    "postprocess_image",
    "postprocess_prompts",
    "prepare_images",
    "proposal_class_logits",
    "semantic_inference",
    "unpad_mask_logits",
]
