"""The tiny SAM of the shapes world: segment_anything's ``Sam``, trained on shapes-world prompts.

``build_shapes_sam()`` returns the whole model (image encoder, prompt encoder, mask decoder) with the
weights shipped in ``segblocks/backbones/weights/shapes-sam-tiny/shapes.safetensors``;
``SAMBackbone("shapes-sam-tiny", checkpoint="shapes")`` loads the image encoder of the same file.
``segblocks train shapes-sam`` (:func:`main`) reproduces the weights.
"""

from segblocks.pretrain.shapes_sam.evaluate import ShapesSamMetrics, embed_images, evaluate_shapes_sam
from segblocks.pretrain.shapes_sam.losses import SamLossWeights, mask_iou_per_output, prompt_losses
from segblocks.pretrain.shapes_sam.model import (
    SHAPES_SAM_MODEL,
    ShapesSamDecoderConfig,
    build_shapes_sam,
    decode_prompts,
    init_pos_embed_sincos,
    save_shapes_sam,
)
from segblocks.pretrain.shapes_sam.prompts import (
    PromptCounts,
    PromptGroup,
    edge_box_to_sam,
    eval_prompts,
    sample_training_prompts,
)
from segblocks.pretrain.shapes_sam.step import sam_training_step
from segblocks.pretrain.shapes_sam.train import build_parser, build_sam_optimizer, main

__all__ = [
    "SHAPES_SAM_MODEL",
    "PromptCounts",
    "PromptGroup",
    "SamLossWeights",
    "ShapesSamDecoderConfig",
    "ShapesSamMetrics",
    "build_parser",
    "build_sam_optimizer",
    "build_shapes_sam",
    "decode_prompts",
    "edge_box_to_sam",
    "embed_images",
    "eval_prompts",
    "evaluate_shapes_sam",
    "init_pos_embed_sincos",
    "main",
    "mask_iou_per_output",
    "prompt_losses",
    "sam_training_step",
    "sample_training_prompts",
    "save_shapes_sam",
]
