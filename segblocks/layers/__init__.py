"""Shared neural pieces at the bottom of the package graph: MLP, attention sub-layers, mask head, position
encodings and position features, LoRA adapters. Decoders, heads and models build on these; this package imports only ``segblocks.ops``."""

from segblocks.layers.attention import CrossAttentionLayer, FFNLayer, MultiHeadAttention, SelfAttentionLayer
from segblocks.layers.lora import LoRAConv2d, LoRALinear, add_lora, lora_parameters, merge_lora
from segblocks.layers.mask_head import MaskHead
from segblocks.layers.mlp import MLP
from segblocks.layers.position_encoding import SinePositionEncoding, SinePositionEncoding3D, sine_ladder
from segblocks.layers.position_features import FourierPositionFeatures, fourier_position_code
from segblocks.layers.random_fourier import RandomFourierPositionEncoding

__all__ = [
    "MLP",
    "CrossAttentionLayer",
    "FFNLayer",
    "FourierPositionFeatures",
    "LoRAConv2d",
    "LoRALinear",
    "MaskHead",
    "MultiHeadAttention",
    "RandomFourierPositionEncoding",
    "SelfAttentionLayer",
    "SinePositionEncoding",
    "SinePositionEncoding3D",
    "add_lora",
    "fourier_position_code",
    "lora_parameters",
    "merge_lora",
    "sine_ladder",
]
