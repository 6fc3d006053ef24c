"""Builders of the blocks every zoo model's mask decoding shares: pixel decoder, mask decoder, criterion."""

from __future__ import annotations

from segblocks.decoders.fpn_pixel_decoder import FPNPixelDecoder
from segblocks.decoders.mask_decoder import MaskedAttentionDecoder, build_masked_attention_decoder
from segblocks.decoders.msdeform_pixel_decoder import build_msdeform_pixel_decoder
from segblocks.decoders.pixel_decoder import PixelDecoder
from segblocks.losses.set_criterion import SetCriterion
from segblocks.matchers.hungarian import HungarianMatcher
from segblocks.structures import ShapeSpec
from segblocks.zoo.common.config import MaskDecodingConfig

__all__ = ["build_criterion", "build_mask_decoder", "build_pixel_decoder"]


def build_pixel_decoder(
    cfg: MaskDecodingConfig,
    input_shape: dict[str, ShapeSpec],
    *,
    deform_backend: str = "auto",
    input_norm: str = "group",
    position_encoding: str = "sine",
) -> PixelDecoder:
    """The pixel decoder of a configuration: MSDeformAttn encoder + FPN, or a plain FPN.

    Args:
        cfg: the configuration (``pixel_decoder``, widths, encoder sizes).
        input_shape: ``{"res2".."res5": ShapeSpec}`` of the backbone maps it reads.
        deform_backend: backend of :func:`segblocks.ops.ms_deform_attn`.
        input_norm: the MSDeformAttn encoder's input projections (``"group"``, or the released
            Uni-OVSeg's biased conv + LayerNorm2d); see :func:`build_msdeform_pixel_decoder`.
        position_encoding: the MSDeformAttn encoder's position code (``"sine"`` or random-Fourier).

    Returns:
        The pixel decoder module.

    Raises:
        ValueError: on ``input_norm`` or ``position_encoding`` other than the defaults with the
            plain FPN, which has neither.
    """
    if cfg.pixel_decoder == "msdeform":
        return build_msdeform_pixel_decoder(
            input_shape,
            conv_dim=cfg.conv_dim,
            mask_dim=cfg.mask_dim,
            num_layers=cfg.enc_layers,
            num_heads=cfg.enc_heads,
            num_points=cfg.enc_points,
            ffn_dim=cfg.enc_ffn_dim,
            norm_groups=cfg.norm_groups,
            backend=deform_backend,
            input_norm=input_norm,
            position_encoding=position_encoding,
        )
    if (input_norm, position_encoding) != ("group", "sine"):
        raise ValueError(
            "input_norm, position_encoding: options of the MSDeformAttn pixel decoder, got "
            f"{input_norm!r}, {position_encoding!r} with pixel_decoder={cfg.pixel_decoder!r}"
        )
    return FPNPixelDecoder(
        input_shape=input_shape, conv_dim=cfg.conv_dim, mask_dim=cfg.mask_dim, norm_groups=cfg.norm_groups
    )


def build_mask_decoder(cfg: MaskDecodingConfig, *, attention_backend: str = "auto") -> MaskedAttentionDecoder:
    """The masked-attention mask decoder of a configuration (it holds the mask head).

    Args:
        cfg: the configuration (``hidden_dim``, heads, FFN width, layers, ``conv_dim``, ``mask_dim``).
        attention_backend: backend of :func:`segblocks.ops.masked_attention`.

    Returns:
        A :class:`~segblocks.decoders.MaskedAttentionDecoder` reading three ``conv_dim`` levels.
    """
    return build_masked_attention_decoder(
        dim=cfg.hidden_dim,
        num_heads=cfg.num_heads,
        ffn_dim=cfg.ffn_dim,
        num_layers=cfg.dec_layers,
        in_channels=(cfg.conv_dim,) * 3,
        mask_dim=cfg.mask_dim,
        attention_backend=attention_backend,
    )


def build_criterion(
    cfg: MaskDecodingConfig,
    *,
    iou_weight: float = 0.0,
    iou_unmatched_weight: float = 0.0,
    iou_unmatched_target: str = "zero",
) -> SetCriterion:
    """The Hungarian matcher and set criterion of a configuration.

    Args:
        cfg: the configuration (loss/cost weights, point sampling).
        iou_weight: weight of the IoU regression loss (PosSAM: 1.0; 0 = off).
        iou_unmatched_weight: the IoU loss's weight on unmatched queries (0 = off).
        iou_unmatched_target: what their predicted IoU regresses: ``"zero"`` or ``"best_segment"``.

    Returns:
        A :class:`~segblocks.losses.SetCriterion` with deep supervision.
    """
    matcher = HungarianMatcher(
        class_weight=cfg.class_weight,
        mask_weight=cfg.mask_weight,
        dice_weight=cfg.dice_weight,
        num_points=cfg.num_points,
    )
    return SetCriterion(
        matcher=matcher,
        class_weight=cfg.class_weight,
        mask_weight=cfg.mask_weight,
        dice_weight=cfg.dice_weight,
        iou_weight=iou_weight,
        iou_unmatched_weight=iou_unmatched_weight,
        iou_unmatched_target=iou_unmatched_target,
        no_object_weight=cfg.no_object_weight,
        num_points=cfg.num_points,
        oversample_ratio=cfg.oversample_ratio,
        importance_sample_ratio=cfg.importance_sample_ratio,
    )
