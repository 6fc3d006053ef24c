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
from segblocks.decoders.query_groups import (
    AttendTo,
    ConcatenatedQueries,
    QueryGroup,
    SelfAttentionRule,
    build_self_attention_mask,
    check_query_groups,
    concat_query_groups,
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
    "FFNLayer",
    "FPNPixelDecoder",
    "LocationPromptEncoder",
    "MSDeformAttnEncoder",
    "MSDeformAttnEncoderLayer",
    "MSDeformAttnPixelDecoder",
    "MaskDecoderOutput",
    "MaskedAttentionDecoder",
    "MaskedAttentionDecoderLayer",
    "MultiHeadAttention",
    "MultiScaleDeformableAttention",
    "PixelDecoder",
    "PixelDecoderOutput",
    "QueryGroup",
    "SelfAttentionLayer",
    "SelfAttentionRule",
    "SinePositionEncoding",
    "build_masked_attention_decoder",
    "build_msdeform_pixel_decoder",
    "build_self_attention_mask",
    "check_query_groups",
    "concat_query_groups",
    "prompt_boxes",
]
