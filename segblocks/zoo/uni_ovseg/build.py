"""``build_uni_ovseg``: assemble Uni-OVSeg from a frozen CLIP and Mask2Former's decoders."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn

from segblocks.decoders.mask_decoder import MaskedAttentionDecoder, MaskedAttentionDecoderLayer
from segblocks.decoders.multigranularity_prompts import MultiGranularityPromptEncoder, PromptTokenMaskHead
from segblocks.heads import IoUHead, MultiScaleFeatureAdapter
from segblocks.layers import CrossAttentionLayer, FFNLayer, RandomFourierPositionEncoding, SelfAttentionLayer
from segblocks.losses.set_criterion import SetCriterion
from segblocks.matchers import ManyToManyMatcher, MaskTextMatcher
from segblocks.zoo.common.build import build_pixel_decoder
from segblocks.zoo.uni_ovseg.config import UniOVSegConfig, get_config
from segblocks.zoo.uni_ovseg.model import UniOVSeg

__all__ = ["DEFAULT", "build_uni_ovseg"]

logger = logging.getLogger(__name__)

#: Use the variant's default CLIP weights (``UniOVSegConfig.clip_pretrained``).
DEFAULT = "default"


def _criterion(
    cfg: UniOVSegConfig, outputs_per_prompt: int, positive_iou: float | None, iou_weight: float
) -> SetCriterion:
    matcher = ManyToManyMatcher(
        outputs_per_prompt=outputs_per_prompt,
        mask_weight=cfg.mask_weight,
        dice_weight=cfg.dice_weight,
        num_points=cfg.num_points,
        iou_threshold=positive_iou,
    )
    return SetCriterion(
        matcher=matcher,
        class_weight=0.0,
        mask_weight=cfg.mask_weight,
        dice_weight=cfg.dice_weight,
        iou_weight=iou_weight,
        num_points=cfg.num_points,
        oversample_ratio=cfg.oversample_ratio,
        importance_sample_ratio=cfg.importance_sample_ratio,
    )


def build_uni_ovseg(
    variant: str | UniOVSegConfig = "convnext_large",
    *,
    clip_pretrained: str | os.PathLike[str] | None = DEFAULT,
    device: str | torch.device = "cpu",
    attention_backend: str = "auto",
    deform_backend: str = "auto",
    **overrides: Any,
) -> UniOVSeg:
    """Build Uni-OVSeg at paper scale (``"convnext_large"``) or for the shapes world (``"tiny"``).

    Example (world scale; ``images`` is ``[B, 3, H, W]`` in ``[0, 1]``)::

        model = build_uni_ovseg("tiny")
        results = model.predict(images, vocabulary=["circle", "star", "grass"])

    Args:
        variant: ``"convnext_large"``, ``"tiny"`` or a :class:`UniOVSegConfig`.
        clip_pretrained: CLIP weights: an open_clip tag, a file, a registered tag, None (random init)
            or ``DEFAULT`` (the variant's).
        device: where to build; ``"meta"`` builds shapes only (no memory, no weights), for counting
            parameters.
        attention_backend: backend of :func:`segblocks.ops.masked_attention`.
        deform_backend: backend of :func:`segblocks.ops.ms_deform_attn`.
        **overrides: fields of :class:`UniOVSegConfig` to change.

    Returns:
        The model (in training mode; the CLIP frozen in eval mode).

    Raises:
        ValueError: on an unknown variant or incompatible sizes.
        TypeError: on unknown config fields.
    """
    from segblocks.backbones import OpenCLIPBackbone

    cfg = get_config(variant, **overrides)
    weights = cfg.clip_pretrained if clip_pretrained == DEFAULT else clip_pretrained
    if torch.device(device).type == "meta":
        weights = None
    with torch.device(device):
        clip = OpenCLIPBackbone(cfg.clip_model, pretrained=weights, frozen=True, device=device)
    shapes = clip.output_shape()
    missing = [s for s in cfg.adapter_scales if s not in shapes]
    if missing:
        raise ValueError(f"adapter_scales: {missing} are not CLIP feature maps; available {sorted(shapes)}")
    d = cfg.hidden_dim
    with torch.device(device):
        pixel_decoder = build_pixel_decoder(
            cfg,
            {k: v for k, v in shapes.items() if k.startswith("res")},
            deform_backend=deform_backend,
            input_norm=cfg.pixel_input_norm,  # released: biased conv + LayerNorm2d
            position_encoding=cfg.pixel_position_encoding,  # released: random-Fourier
        )
        prompt_encoder = MultiGranularityPromptEncoder(
            dim=d,
            position_encoding=RandomFourierPositionEncoding(dim=d),
            point_box_size=cfg.point_box_size,
            num_multimask=cfg.num_multimask,
            content_dim=cfg.mask_dim,
        )
        layers = [
            MaskedAttentionDecoderLayer(
                cross_attention=CrossAttentionLayer(
                    dim=d, num_heads=cfg.num_heads, backend=attention_backend
                ),
                self_attention=SelfAttentionLayer(dim=d, num_heads=cfg.num_heads, backend=attention_backend),
                ffn=FFNLayer(dim=d, hidden_dim=cfg.ffn_dim),
            )
            for _ in range(cfg.dec_layers)
        ]
        mask_decoder = MaskedAttentionDecoder(
            layers=layers,
            mask_head=PromptTokenMaskHead(
                dim=d,
                mask_dim=cfg.mask_dim,
                tokens_per_prompt=prompt_encoder.tokens_per_prompt,
                num_outputs=1 + cfg.num_multimask,
            ),
            dim=d,
            in_channels=(cfg.conv_dim,) * 3,
            position_encoding=RandomFourierPositionEncoding(dim=d),
        )
        model = UniOVSeg(
            clip=clip,
            pixel_decoder=pixel_decoder,
            prompt_encoder=prompt_encoder,
            feat_embed=nn.Conv2d(cfg.mask_dim, cfg.mask_dim, kernel_size=1),
            extra_self_attention=SelfAttentionLayer(
                dim=d, num_heads=cfg.num_heads, backend=attention_backend
            ),
            mask_decoder=mask_decoder,
            iou_heads=nn.ModuleList(IoUHead(dim=d) for _ in range(1 + cfg.num_multimask)),
            adapter=MultiScaleFeatureAdapter(
                in_channels={s: shapes[s].channels for s in cfg.adapter_scales},
                embed_dim=int(clip.embed_dim),
                rank=cfg.adapter_rank,
                alpha=cfg.adapter_alpha,
            ),
            # points: the IoU of every output is regressed by the model (eligible_iou_loss), not only matched ones
            point_criterion=_criterion(cfg, cfg.num_multimask, cfg.positive_iou, 0.0),
            box_criterion=_criterion(cfg, 1, None, cfg.iou_weight),
            mask_text_matcher=MaskTextMatcher(min_similarity=cfg.align_min_similarity),
            config=cfg,
        )
    counts = model.state_summary()
    logger.info(
        "Uni-OVSeg (%s): %.2fM trainable, %.2fM frozen parameters",
        cfg.clip_model,
        counts["trainable"] / 1e6,
        counts["frozen"] / 1e6,
    )
    return model
