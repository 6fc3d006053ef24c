"""The configuration every zoo model's mask decoding shares: pixel and mask decoders, criterion, post-processing."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["WORLD_DECODING", "MaskDecodingConfig"]


@dataclass(frozen=True)
class MaskDecodingConfig:
    """Sizes and weights of the Mask2Former-style decoding every zoo model shares (defaults: the paper, COCO).

    The pixel decoder, the masked-attention mask decoder, the set criterion and the panoptic /
    instance post-processing; each zoo model's config adds its own fields.

    Attributes:
        hidden_dim: mask-decoder width.
        num_queries: semantic queries (paper: 100 on COCO).
        num_heads: mask-decoder attention heads.
        ffn_dim: mask-decoder FFN width.
        dec_layers: mask-decoder layers (``dec_layers + 1`` supervised predictions).
        pixel_decoder: ``"msdeform"`` (deformable encoder + FPN) or ``"fpn"`` (plain FPN).
        conv_dim: pixel-decoder width.
        mask_dim: mask-feature channels.
        enc_layers: deformable encoder layers.
        enc_heads: deformable attention heads.
        enc_points: sampling points per head and level.
        enc_ffn_dim: encoder FFN width.
        norm_groups: GroupNorm groups in the pixel decoder.
        num_points: points per mask for the losses and the matcher.
        oversample_ratio: point oversampling for importance sampling.
        importance_sample_ratio: fraction of points chosen by uncertainty.
        class_weight: class loss/cost weight.
        mask_weight: BCE loss/cost weight.
        dice_weight: Dice loss/cost weight.
        no_object_weight: void-class weight in the class loss.
        object_mask_threshold: panoptic: minimum class probability of a kept query.
        overlap_threshold: panoptic: minimum kept fraction of a query's mask.
        top_k: instance: (query, class) pairs kept per image.
        temperature: open-vocabulary class head: initial temperature.
        learnable_temperature: open-vocabulary class head: learn the temperature.
    """

    hidden_dim: int = 256
    num_queries: int = 100
    num_heads: int = 8
    ffn_dim: int = 2048
    dec_layers: int = 9
    pixel_decoder: str = "msdeform"
    conv_dim: int = 256
    mask_dim: int = 256
    enc_layers: int = 6
    enc_heads: int = 8
    enc_points: int = 4
    enc_ffn_dim: int = 1024
    norm_groups: int = 32
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    object_mask_threshold: float = 0.8
    overlap_threshold: float = 0.8
    top_k: int = 100
    temperature: float = 0.07
    learnable_temperature: bool = True

    def __post_init__(self) -> None:
        if self.pixel_decoder not in ("msdeform", "fpn"):
            raise ValueError(f"pixel_decoder: expected 'msdeform' or 'fpn', got {self.pixel_decoder!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{f.name}: expected a non-negative value, got {value}")
        for name in (
            "hidden_dim",
            "num_queries",
            "num_heads",
            "dec_layers",
            "conv_dim",
            "mask_dim",
            "num_points",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim: {self.hidden_dim} is not divisible by num_heads={self.num_heads}")


#: The shapes world's decoding sizes on a CPU (a training run fits in about half an hour on two cores).
WORLD_DECODING = MaskDecodingConfig(
    hidden_dim=128,
    num_queries=24,
    num_heads=4,
    ffn_dim=256,
    dec_layers=3,
    conv_dim=64,
    mask_dim=64,
    enc_layers=2,
    enc_heads=4,
    enc_points=4,
    enc_ffn_dim=128,
    norm_groups=16,
    num_points=1024,
    object_mask_threshold=0.5,
)
