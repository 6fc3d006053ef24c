"""``build_omg_seg``: assemble OMG-Seg from a frozen CLIP and Mask2Former's decoders."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import torch

from segblocks.decoders.location_prompts import LocationPromptEncoder
from segblocks.heads import IoUHead
from segblocks.losses.grouped_criterion import GroupedCriterion
from segblocks.losses.set_criterion import SetCriterion
from segblocks.matchers.by_construction import ByConstructionMatcher
from segblocks.zoo.common.build import build_criterion, build_mask_decoder, build_pixel_decoder
from segblocks.zoo.omg_seg.classifier import OMGClassifier
from segblocks.zoo.omg_seg.config import OMGSegConfig, get_config
from segblocks.zoo.omg_seg.model import OMGSeg
from segblocks.zoo.omg_seg.vocabulary import encode_vocabulary

__all__ = ["DEFAULT", "build_criterion_groups", "build_omg_seg"]

logger = logging.getLogger(__name__)

#: Use the variant's default CLIP weights (``OMGSegConfig.clip_pretrained``).
DEFAULT = "default"


def build_criterion_groups(cfg: OMGSegConfig) -> GroupedCriterion:
    """OMG-Seg's losses: semantic queries (Hungarian; class 2, BCE 5, Dice 5, objectness focal 2,
    background 0.1) and location queries (prompt ``i`` <-> target ``i``; BCE 5 and Dice 5 only).

    Args:
        cfg: the configuration (weights and point sampling).
    """
    semantic = build_criterion(cfg)
    semantic.objectness_weight = cfg.objectness_weight
    location = SetCriterion(
        matcher=ByConstructionMatcher(num_points=cfg.num_points),
        class_weight=0.0,  # class-agnostic prompts: the class and objectness terms are off
        mask_weight=cfg.mask_weight,
        dice_weight=cfg.dice_weight,
        num_points=cfg.num_points,
        oversample_ratio=cfg.oversample_ratio,
        importance_sample_ratio=cfg.importance_sample_ratio,
    )
    return GroupedCriterion(groups={"semantic": semantic, "location": location})


def build_omg_seg(
    variant: str | OMGSegConfig = "convnext_large",
    *,
    vocabulary: Sequence[str],
    is_thing: Sequence[bool] | None = None,
    clip_pretrained: str | os.PathLike[str] | None = DEFAULT,
    clip_model: str | None = None,
    device: str | torch.device = "cpu",
    pad_inputs: bool = True,
    attention_backend: str = "auto",
    deform_backend: str = "auto",
    **overrides: Any,
) -> OMGSeg:
    """Build OMG-Seg at paper scale (``"convnext_large"``) or for the shapes world (``"tiny"``).

    Example (real weights; ``images`` is ``[B, 3, H, W]`` in ``[0, 1]``)::

        model = build_omg_seg("convnext_large", vocabulary=["person", "car", "sky"])
        panoptic = model.predict(images, task="panoptic", vocabulary=["person", "dog", "sky"])
        clicked = model.predict(images[:1], task="interactive", prompts=[Prompts(points=..., point_labels=...)])

    Args:
        variant: ``"convnext_large"`` (frozen OpenCLIP ConvNeXt-L, 300 queries, 9 layers) or
            ``"tiny"`` (the shipped shapes-world CLIP, world-scale decoders); or an :class:`OMGSegConfig`.
        vocabulary: the training vocabulary (class names); ``predict`` takes any other.
        is_thing: one flag per class (default: all things).
        clip_pretrained: CLIP weights: an open_clip tag, a file, a registered tag, None (random init)
            or ``DEFAULT`` (``laion2b_s29b_b131k_ft_soup`` at paper scale, ``"shapes"`` for tiny).
        clip_model: override the open_clip model name.
        device: where to build; ``"meta"`` builds shapes only (no memory, no weights, no text), for
            counting parameters.
        pad_inputs: pad images to the size divisibility (else raise on indivisible sizes).
        attention_backend: backend of :func:`segblocks.ops.masked_attention`.
        deform_backend: backend of :func:`segblocks.ops.ms_deform_attn`.
        **overrides: fields of :class:`OMGSegConfig` (``location_self_mask=False``,
            ``point_box_size=None``, ...).

    Returns:
        The model in training mode (the CLIP frozen in eval mode).

    Raises:
        ValueError: on an unknown variant, an empty or bad vocabulary, or an invalid field value.
        TypeError: on unknown config fields or a single string as the vocabulary.
    """
    from segblocks.backbones import OpenCLIPBackbone

    if clip_model is not None:
        overrides["clip_model"] = clip_model
    cfg = get_config(variant, **overrides)
    weights = cfg.clip_pretrained if clip_pretrained == DEFAULT else clip_pretrained
    meta = torch.device(device).type == "meta"
    with torch.device(device):  # on "meta" no memory is allocated and no initialiser runs
        clip = OpenCLIPBackbone(
            cfg.clip_model, pretrained=None if meta else weights, frozen=True, device=device
        )
    clip.freeze_pyramid()
    vocab = encode_vocabulary(clip, vocabulary, is_thing, meta=meta)
    input_shape = {k: v for k, v in clip.output_shape().items() if k in ("res2", "res3", "res4", "res5")}
    with torch.device(device):
        model = OMGSeg(
            clip=clip,
            pixel_decoder=build_pixel_decoder(cfg, input_shape, deform_backend=deform_backend),
            mask_decoder=build_mask_decoder(cfg, attention_backend=attention_backend),
            location_encoder=LocationPromptEncoder(
                dim=cfg.hidden_dim,
                point_box_size=cfg.point_box_size,
                sine_dim=cfg.location_sine_dim,
                start_in_box=cfg.location_start_in_box,
            ),
            classifier=OMGClassifier(
                dim=cfg.hidden_dim,
                mask_dim=cfg.mask_dim,
                embed_dim=int(clip.embed_dim),
                num_layers=cfg.class_layers,
                logit_scale=cfg.logit_scale,
                void=cfg.class_void,
            ),
            objectness_head=IoUHead(dim=cfg.hidden_dim, num_layers=cfg.objectness_layers),
            criterion=build_criterion_groups(cfg),
            num_queries=cfg.num_queries,
            vocabulary=vocab,
            location_self_mask=cfg.location_self_mask,
            class_negatives=cfg.class_negatives,
            sphere_negatives=cfg.sphere_negatives,
            class_negative_margin=cfg.class_negative_margin,
            pad_inputs=pad_inputs,
            config=cfg,
        )
    counts = model.state_summary()
    logger.info(
        "OMG-Seg (%s): %.2fM trainable, %.2fM frozen parameters",
        cfg.clip_model,
        counts["trainable"] / 1e6,
        counts["frozen"] / 1e6,
    )
    return model
