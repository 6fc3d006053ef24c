"""Post-processing of query predictions: panoptic, semantic and instance results; padding helpers."""

from segblocks.inference.batch import TASKS, SegmentationPrediction, check_tasks, postprocess_batch
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
from segblocks.inference.semantic import semantic_inference

__all__ = [
    "TASKS",
    "SegmentationPrediction",
    "check_tasks",
    "instance_inference",
    "pad_images",
    "pad_masks",
    "pad_targets",
    "padded_size",
    "panoptic_inference",
    "postprocess_batch",
    "prepare_images",
    "semantic_inference",
    "unpad_mask_logits",
]
