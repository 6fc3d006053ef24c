"""Backbones: frozen foundation encoders (open_clip CLIP, segment_anything SAM) and timm models.

Contract: ``forward(images[B, 3, H, W]) -> {"res2".."res5": Tensor, ...}`` (strides 4..32) for RGB
images in ``[0, 1]`` (each backbone applies its own pixel normalisation),
``output_shape() -> {name: ShapeSpec}`` and ``size_divisibility``.
"""

from segblocks.backbones import timm_trunks  # noqa: F401 (registers regnetx_002_os16 with timm)
from segblocks.backbones.base import Backbone
from segblocks.backbones.checkpoints import LoadReport, load_state_dict_file, save_state_dict_file
from segblocks.backbones.open_clip_backbone import OpenCLIPBackbone
from segblocks.backbones.registry import (
    SAMEncoderConfig,
    find_weights,
    get_sam_config,
    list_sam_models,
    list_weights,
    register_clip_config,
    register_sam_config,
    register_weights,
    resolve_weights,
)
from segblocks.backbones.sam_backbone import (
    SAMBackbone,
    build_sam_image_encoder,
    resize_sam_encoder_state_dict,
    sam_encoder_num_parameters,
)
from segblocks.backbones.simple_fpn import SimpleFeaturePyramid
from segblocks.backbones.text_prompts import DEFAULT_TEMPLATES
from segblocks.backbones.timm_backbone import TimmBackbone, timm_feature_levels

__all__ = [
    "DEFAULT_TEMPLATES",
    "Backbone",
    "LoadReport",
    "OpenCLIPBackbone",
    "SAMBackbone",
    "SAMEncoderConfig",
    "SimpleFeaturePyramid",
    "TimmBackbone",
    "build_sam_image_encoder",
    "find_weights",
    "get_sam_config",
    "list_sam_models",
    "list_weights",
    "load_state_dict_file",
    "register_clip_config",
    "register_sam_config",
    "register_weights",
    "resize_sam_encoder_state_dict",
    "resolve_weights",
    "sam_encoder_num_parameters",
    "save_state_dict_file",
    "timm_feature_levels",
]
