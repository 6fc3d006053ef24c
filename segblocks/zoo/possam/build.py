"""``build_possam``: assemble PosSAM from a SAM encoder, a CLIP and Mask2Former's decoders."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import torch

from segblocks.heads import (
    IoUHead,
    LocalDiscriminativePooling,
    OpenVocabClassHead,
)
from segblocks.zoo.common.build import build_criterion, build_mask_decoder, build_pixel_decoder
from segblocks.zoo.possam.config import PosSAMConfig, get_config
from segblocks.zoo.possam.model import PosSAM
from segblocks.zoo.possam.vocabulary import encode_vocabulary, placeholder_vocabulary

__all__ = ["DEFAULT", "build_possam"]

logger = logging.getLogger(__name__)

#: Use the variant's default weights (``PosSAMConfig.sam_checkpoint`` / ``clip_pretrained``).
DEFAULT = "default"

Weights = str | os.PathLike[str] | None


def build_possam(
    variant: str | PosSAMConfig = "vit_b",
    *,
    vocabulary: Sequence[str],
    is_thing: Sequence[bool] | None = None,
    sam_checkpoint: Weights = DEFAULT,
    clip_pretrained: Weights = DEFAULT,
    sam_model: str | None = None,
    clip_model: str | None = None,
    device: str | torch.device = "cpu",
    pad_inputs: bool = True,
    attention_backend: str = "auto",
    deform_backend: str = "auto",
    **overrides: Any,
) -> PosSAM:
    """Build PosSAM for a SAM size (paper scale) or the shapes world (``"tiny"``).

    Example (real weights; ``images`` is ``[B, 3, H, W]`` in ``[0, 1]``)::

        model = build_possam("vit_b", vocabulary=["cat", "dog", "sky"], sam_checkpoint="sam_vit_b_01ec64.pth")
        results = model.predict(images, vocabulary=["cat", "dog", "grass"], classifier="mase")

    Args:
        variant: ``"vit_b"``, ``"vit_l"``, ``"vit_h"`` (the paper: that SAM encoder, ConvNeXt-L CLIP)
            or ``"tiny"`` (the shapes world's tiny SAM and CLIP); or a :class:`PosSAMConfig`.
        vocabulary: the training vocabulary (class names); :meth:`PosSAM.predict` takes any other.
        is_thing: one flag per class (default: all things).
        sam_checkpoint: SAM weights: a file (official ``sam_vit_*.pth``), a registered tag, None
            (random init) or ``DEFAULT`` (the variant's: none at paper scale, ``"shapes"`` for tiny).
        clip_pretrained: CLIP weights: an open_clip tag, a file, a registered tag, None (random
            init) or ``DEFAULT`` (``laion2b_s29b_b131k_ft_soup`` at paper scale, ``"shapes"`` for tiny).
        sam_model: override the SAM encoder name (e.g. ``"vit_tiny"`` in tests).
        clip_model: override the open_clip model name.
        device: where to build; ``"meta"`` builds shapes only (no memory, no weights, no text), for
            counting parameters.
        pad_inputs: pad images to the size divisibility (else raise on indivisible sizes).
        attention_backend: backend of :func:`segblocks.ops.masked_attention`.
        deform_backend: backend of :func:`segblocks.ops.ms_deform_attn`.
        **overrides: fields of :class:`PosSAMConfig` to change.

    Returns:
        The model (in training mode; SAM and CLIP frozen in eval mode).

    Raises:
        ValueError: on an unknown variant, a bad vocabulary or incompatible sizes.
        TypeError: on unknown config fields.
    """
    from segblocks.backbones import OpenCLIPBackbone, SAMBackbone

    if sam_model is not None:
        overrides["sam_model"] = sam_model
    if clip_model is not None:
        overrides["clip_model"] = clip_model
    cfg = get_config(variant, **overrides)
    sam_weights = cfg.sam_checkpoint if sam_checkpoint == DEFAULT else sam_checkpoint
    clip_weights = cfg.clip_pretrained if clip_pretrained == DEFAULT else clip_pretrained
    meta = torch.device(device).type == "meta"
    if meta:
        sam_weights = clip_weights = None  # shapes only

    with torch.device(device):  # on "meta" no memory is allocated and no initialiser runs
        sam = SAMBackbone(cfg.sam_model, checkpoint=sam_weights, fpn_channels=cfg.fpn_channels)
        clip = OpenCLIPBackbone(cfg.clip_model, pretrained=clip_weights, frozen=True, device=device)
    clip.freeze_pyramid()  # a ViT CLIP's pyramid: PosSAM reads only the dense CLIP map
    embed_dim = int(clip.embed_dim)
    if meta:
        vocab = placeholder_vocabulary(vocabulary, is_thing, embed_dim, device)
    else:
        vocab = encode_vocabulary(clip, vocabulary, is_thing)
    input_shape = {k: v for k, v in sam.output_shape().items() if k in ("res2", "res3", "res4", "res5")}
    with torch.device(device):
        pixel_decoder = build_pixel_decoder(cfg, input_shape, deform_backend=deform_backend)
        mask_decoder = build_mask_decoder(cfg, attention_backend=attention_backend)
        class_head = OpenVocabClassHead(
            dim=cfg.mask_dim + embed_dim,
            embed_dim=embed_dim,
            temperature=cfg.temperature,
            learnable_temperature=cfg.learnable_temperature,
            void="learned" if cfg.ldp_void == "learned" else "linear",
            void_dim=cfg.hidden_dim if cfg.ldp_void == "query" else None,
        )
        ldp = LocalDiscriminativePooling(
            sam_dim=cfg.mask_dim,
            clip_dim=embed_dim,
            num_heads=cfg.ldp_heads,
            ffn_dim=cfg.ldp_ffn_dim,
            num_layers=cfg.ldp_layers,
            class_head=class_head,
            attention_backend=attention_backend,
            clip_residual=cfg.ldp_clip_residual,
        )
        model = PosSAM(
            sam=sam,
            clip=clip,
            pixel_decoder=pixel_decoder,
            mask_decoder=mask_decoder,
            iou_head=IoUHead(dim=cfg.hidden_dim, num_layers=cfg.iou_layers),
            ldp=ldp,
            criterion=build_criterion(
                cfg,
                iou_weight=cfg.iou_weight,
                iou_unmatched_weight=cfg.iou_unmatched_weight,
                iou_unmatched_target=cfg.iou_unmatched_target,
            ),
            num_queries=cfg.num_queries,
            vocabulary=vocab,
            pad_inputs=pad_inputs,
            config=cfg,
        )
    counts = model.state_summary()
    logger.info(
        "PosSAM (%s + %s): %.2fM trainable, %.2fM frozen parameters",
        cfg.sam_model,
        cfg.clip_model,
        counts["trainable"] / 1e6,
        counts["frozen"] / 1e6,
    )
    return model
