"""``build_seem``: assemble SEEM from a backbone, a frozen CLIP text encoder and the SEEM decoder."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from segblocks.decoders import DenseMaskPrompt, MemoryPrompts, SpatialQueries, TextPromptTokens, VisualSampler
from segblocks.heads import OpenVocabClassHead
from segblocks.layers import FourierPositionFeatures
from segblocks.losses import CandidateSelectionLoss, GroupedCriterion, SetCriterion
from segblocks.matchers import ByConstructionMatcher
from segblocks.zoo.common.build import build_criterion, build_mask_decoder, build_pixel_decoder
from segblocks.zoo.seem.config import SEEMConfig, get_config
from segblocks.zoo.seem.model import SEEM

__all__ = ["DEFAULT", "build_seem"]

logger = logging.getLogger(__name__)

#: Use the variant's default CLIP weights (``SEEMConfig.clip_pretrained``).
DEFAULT = "default"


def _criterion(cfg: SEEMConfig) -> GroupedCriterion:
    """Generic: Hungarian, class 2 / BCE 5 / Dice 5. Prompts: by construction (best of k), BCE 1 / Dice 1,
    candidate choice 0.4 (REFERENCE 2.4)."""
    spatial = SetCriterion(
        matcher=ByConstructionMatcher(outputs_per_prompt=cfg.spatial_per_prompt, num_points=cfg.num_points),
        class_weight=0.0,
        mask_weight=cfg.prompt_mask_weight,
        dice_weight=cfg.prompt_dice_weight,
        num_points=cfg.num_points,
        oversample_ratio=cfg.oversample_ratio,
        importance_sample_ratio=cfg.importance_sample_ratio,
    )
    selection = CandidateSelectionLoss(group="spatial", per_prompt=cfg.spatial_per_prompt)
    return GroupedCriterion(
        groups={"object": build_criterion(cfg), "spatial": spatial},
        extra_losses={"spatial/loss_select": (cfg.selection_weight, selection)},
    )


def build_seem(
    variant: str | SEEMConfig = "tiny",
    *,
    vocabulary: Sequence[str],
    is_thing: Sequence[bool] | None = None,
    clip_pretrained: str | None = DEFAULT,
    device: str | torch.device = "cpu",
    pad_inputs: bool = True,
    attention_backend: str = "auto",
    deform_backend: str = "auto",
    **overrides: Any,
) -> SEEM:
    """Build SEEM at paper scale (``"focal_t"``, ``"focal_l"``, ``"davit_b"``, ``"davit_l"``) or world scale (``"tiny"``).

    Example (world scale, the shipped tiny CLIP)::

        model = build_seem("tiny", vocabulary=["circle", "square", "sky"])
        out = model(images, prompts)        # generic + prompt answers in one pass

    Args:
        variant: a name of :data:`~segblocks.zoo.seem.VARIANTS` or a :class:`SEEMConfig`.
        vocabulary: class names of generic segmentation.
        is_thing: one flag per class (default: all things).
        clip_pretrained: CLIP weights: an open_clip tag, a file, a registered tag, None (random init)
            or ``DEFAULT`` (the variant's).
        device: where to build; ``"meta"`` builds shapes only (no memory, no weights, no text), for
            counting parameters at paper scale.
        pad_inputs: pad images to the size divisibility.
        attention_backend: backend of :func:`segblocks.ops.masked_attention`.
        deform_backend: backend of :func:`segblocks.ops.ms_deform_attn`.
        **overrides: fields of :class:`SEEMConfig` to change.

    Returns:
        The model (training mode; backbone-CLIP and text encoder frozen).

    Raises:
        ValueError: on an unknown variant or a bad vocabulary.
        TypeError: on unknown config fields.
    """
    from segblocks.backbones import OpenCLIPBackbone, TimmBackbone

    cfg = get_config(variant, **overrides)
    names = list(vocabulary)
    if not names or any(not isinstance(n, str) or not n.strip() for n in names):
        raise ValueError(f"vocabulary: expected non-empty class names, got {names!r}")
    flags = [True] * len(names) if is_thing is None else [bool(t) for t in is_thing]
    if len(flags) != len(names):
        raise ValueError(f"is_thing: expected {len(names)} flags, got {len(flags)}")
    meta = torch.device(device).type == "meta"
    weights = cfg.clip_pretrained if clip_pretrained == DEFAULT else clip_pretrained
    if meta:
        weights = None
    with torch.device(device):
        clip = OpenCLIPBackbone(cfg.clip_model, pretrained=weights, frozen=True, device=device)
        backbone: nn.Module = clip if cfg.backbone == "clip" else TimmBackbone(cfg.backbone, pretrained=False)
    if backbone is not clip:
        clip.freeze_pyramid()  # a ViT CLIP's trainable pyramid: unused when another backbone sees the image
    embed_dim = int(clip.embed_dim)
    if meta:
        text = torch.zeros(len(names), embed_dim, device=device)
    else:
        text = clip.encode_text(names)
    shape = backbone.output_shape()  # type: ignore[operator]
    input_shape = {k: v for k, v in shape.items() if k in ("res2", "res3", "res4", "res5")}
    with torch.device(device):
        pixel_decoder = build_pixel_decoder(cfg, input_shape, deform_backend=deform_backend)
        mask_decoder = build_mask_decoder(cfg, attention_backend=attention_backend)
        model = SEEM(
            backbone=backbone,
            clip=clip,
            pixel_decoder=pixel_decoder,
            mask_decoder=mask_decoder,
            visual_sampler=VisualSampler(
                in_channels=(cfg.conv_dim,) * 3,
                dim=cfg.hidden_dim,
                num_points=cfg.sample_points,
                separate_clicks=cfg.separate_clicks,
            ),
            spatial_queries=SpatialQueries(dim=cfg.hidden_dim, per_prompt=cfg.spatial_per_prompt),
            memory_prompts=MemoryPrompts(dim=cfg.hidden_dim, per_prompt=cfg.memory_per_prompt),
            dense_memory=DenseMaskPrompt(mask_dim=cfg.mask_dim) if cfg.dense_memory else None,
            text_tokens=TextPromptTokens(text_dim=embed_dim, dim=cfg.hidden_dim),
            class_head=OpenVocabClassHead(
                dim=cfg.hidden_dim,
                embed_dim=embed_dim,
                temperature=cfg.temperature,
                learnable_temperature=cfg.learnable_temperature,
            ),
            criterion=_criterion(cfg),
            num_queries=cfg.num_queries,
            vocabulary=names,
            is_thing=flags,
            text_embeddings=text,
            pad_inputs=pad_inputs,
            config=cfg,
            pixel_position=FourierPositionFeatures(
                channels=(cfg.mask_dim, *(cfg.conv_dim,) * 3),
                max_cycles=cfg.position_max_cycles,
                zero_init=cfg.position_zero_init,
            )
            if cfg.position_features
            else None,
        )
    counts = model.state_summary()
    logger.info(
        "SEEM (%s, text %s): %.2fM trainable, %.2fM frozen parameters",
        cfg.backbone,
        cfg.clip_model,
        counts["trainable"] / 1e6,
        counts["frozen"] / 1e6,
    )
    return model
