"""Decoders: pixel decoders and the masked-attention mask decoder with query groups."""

from segblocks.decoders.fpn_pixel_decoder import FPNPixelDecoder
from segblocks.decoders.location_prompts import LocationPromptEncoder, prompt_boxes
from segblocks.decoders.mask_decoder import (
    MaskDecoderOutput,
    MaskedAttentionDecoder,
    MaskedAttentionDecoderLayer,
    build_masked_attention_decoder,
)
from segblocks.decoders.ms_deform_attention import MultiScaleDeformableAttention
from segblocks.decoders.msdeform_pixel_decoder import (
    MSDeformAttnEncoder,
    MSDeformAttnEncoderLayer,
    MSDeformAttnPixelDecoder,
    build_msdeform_pixel_decoder,
)
from segblocks.decoders.pixel_decoder import PixelDecoder
from segblocks.decoders.pixel_decoder_output import PixelDecoderOutput
from segblocks.decoders.prompt_queries import (
    DenseMaskPrompt,
    MemoryPrompts,
    SpatialQueries,
    TextPromptTokens,
    pool_at_points,
    select_candidates,
)
from segblocks.decoders.prompt_regions import (
    ObjectRegions,
    box_region,
    click_region,
    polygon_region,
    regions_from_prompts,
    stroke_region,
)
from segblocks.decoders.query_groups import (
    AttendTo,
    ConcatenatedQueries,
    QueryGroup,
    SelfAttentionRule,
    build_self_attention_mask,
    check_query_groups,
    concat_query_groups,
)
from segblocks.decoders.visual_sampler import (
    PromptPoints,
    VisualSampler,
    point_position_code,
    sample_prompt_points,
)
from segblocks.layers.attention import (
    CrossAttentionLayer,
    FFNLayer,
    MultiHeadAttention,
    SelfAttentionLayer,
)
from segblocks.layers.position_encoding import SinePositionEncoding

__all__ = [
    "AttendTo",
    "ConcatenatedQueries",
    "CrossAttentionLayer",
    "DenseMaskPrompt",
    "FFNLayer",
    "FPNPixelDecoder",
    "LocationPromptEncoder",
    "MSDeformAttnEncoder",
    "MSDeformAttnEncoderLayer",
    "MSDeformAttnPixelDecoder",
    "MaskDecoderOutput",
    "MaskedAttentionDecoder",
    "MaskedAttentionDecoderLayer",
    "MemoryPrompts",
    "MultiHeadAttention",
    "MultiScaleDeformableAttention",
    "ObjectRegions",
    "PixelDecoder",
    "PixelDecoderOutput",
    "PromptPoints",
    "QueryGroup",
    "SelfAttentionLayer",
    "SelfAttentionRule",
    "SinePositionEncoding",
    "SpatialQueries",
    "TextPromptTokens",
    "VisualSampler",
    "box_region",
    "build_masked_attention_decoder",
    "build_msdeform_pixel_decoder",
    "build_self_attention_mask",
    "check_query_groups",
    "click_region",
    "concat_query_groups",
    "point_position_code",
    "polygon_region",
    "pool_at_points",
    "prompt_boxes",
    "regions_from_prompts",
    "sample_prompt_points",
    "select_candidates",
    "stroke_region",
]
