"""``build_mask2former``: assemble Mask2Former from a backbone and a configuration scale."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from torch import nn

from segblocks.decoders.fpn_pixel_decoder import FPNPixelDecoder
from segblocks.decoders.mask_decoder import MaskedAttentionDecoder, build_masked_attention_decoder
from segblocks.decoders.msdeform_pixel_decoder import build_msdeform_pixel_decoder
from segblocks.heads.class_head import LinearClassHead, OpenVocabClassHead
from segblocks.losses.set_criterion import SetCriterion
from segblocks.matchers.hungarian import HungarianMatcher
from segblocks.structures import ShapeSpec
from segblocks.zoo.mask2former.config import Mask2FormerConfig, get_config
from segblocks.zoo.mask2former.model import Mask2Former

__all__ = [
    "build_backbone",
    "build_criterion",
    "build_mask2former",
    "build_pixel_decoder",
    "build_transformer_decoder",
]

logger = logging.getLogger(__name__)


def build_backbone(spec: str, *, pretrained: bool | str | None = None) -> nn.Module:
    """Build a backbone from a short name ``spec``.

    * ``"clip:MODEL"`` or ``"clip:MODEL@TAG"``: a frozen :class:`~segblocks.backbones.OpenCLIPBackbone`
      (``TAG``: an open_clip pretrained tag, a registered segblocks tag or a local file).
    * ``"timm:NAME"`` or ``"NAME"``: a trainable :class:`~segblocks.backbones.TimmBackbone`
      (``pretrained=True`` downloads timm's weights).

    Args:
        spec: the name, as above.
        pretrained: timm: download timm's weights; CLIP: the pretrained tag when ``spec`` has none.

    Returns:
        The backbone module.

    Raises:
        ValueError: on an empty name.
    """
    from segblocks.backbones import OpenCLIPBackbone, TimmBackbone

    if not spec or not isinstance(spec, str):
        raise ValueError(f"backbone: expected a backbone name or module, got {spec!r}")
    if spec.startswith("clip:"):
        name, _, tag = spec[len("clip:") :].partition("@")
        chosen = tag or (pretrained if isinstance(pretrained, str) else None)
        return OpenCLIPBackbone(name, pretrained=chosen, frozen=True)
    name = spec[len("timm:") :] if spec.startswith("timm:") else spec
    return TimmBackbone(name, pretrained=bool(pretrained))


def build_mask2former(
    backbone: str | nn.Module = "resnet50",
    *,
    num_classes: int | None = None,
    vocabulary: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    is_thing: Sequence[bool] | None = None,
    scale: str | Mask2FormerConfig = "paper",
    pretrained: bool | str | None = None,
    pad_inputs: bool = True,
    attention_backend: str = "auto",
    deform_backend: str = "auto",
    **overrides: Any,
) -> Mask2Former:
    """Build Mask2Former, closed-set (``num_classes``) or open-vocabulary (``vocabulary``).

    Example::

        from segblocks.data import CATEGORIES

        model = build_mask2former(
            "resnet18",
            num_classes=len(CATEGORIES),
            class_names=[c.name for c in CATEGORIES],
            is_thing=[c.is_thing for c in CATEGORIES],
            scale="world",
        )
        out = model(images)  # MaskPredictions with the deep-supervision outputs in out.aux
        results = model.predict(images)  # panoptic / semantic / instance per image

    Args:
        backbone: a built backbone module or a name for :func:`build_backbone`.
        num_classes: number of classes of a closed-set model (linear class head).
        vocabulary: class names of an open-vocabulary model; the backbone must have
            ``encode_text`` (a CLIP backbone). The class head is cosine similarity to these embeddings.
        class_names: names of a closed-set model's classes (default ``class_0..``).
        is_thing: one flag per class, True for things (default: all things).
        scale: ``"paper"`` (COCO, 1024x1024), ``"world"`` (shapes world on a CPU) or a config.
        pretrained: passed to :func:`build_backbone` when ``backbone`` is a name.
        pad_inputs: pad images to the backbone's size divisibility (else raise on indivisible sizes).
        attention_backend: backend of :func:`segblocks.ops.masked_attention`.
        deform_backend: backend of :func:`segblocks.ops.ms_deform_attn`.
        **overrides: fields of :class:`Mask2FormerConfig` to change.

    Returns:
        The model (in training mode).

    Raises:
        ValueError: unless exactly one of ``num_classes`` and ``vocabulary`` is given, on mismatched
            lengths, or a vocabulary with a backbone that cannot encode text.
    """
    cfg = get_config(scale, **overrides)
    if (num_classes is None) == (vocabulary is None):
        raise ValueError("num_classes, vocabulary: give exactly one (closed-set or open-vocabulary)")
    if num_classes is not None and num_classes <= 0:
        raise ValueError(f"num_classes: expected a positive int, got {num_classes}")
    if vocabulary is not None:
        vocabulary = list(vocabulary)
        if not vocabulary or not all(isinstance(v, str) and v.strip() for v in vocabulary):
            raise ValueError(f"vocabulary: expected non-empty class names, got {vocabulary!r}")
        names = vocabulary
    else:
        assert num_classes is not None
        names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
        if len(names) != num_classes:
            raise ValueError(f"class_names: expected {num_classes} names, got {len(names)}")
    flags = list(is_thing) if is_thing is not None else [True] * len(names)
    if len(flags) != len(names):
        raise ValueError(f"is_thing: expected {len(names)} flags (one per class), got {len(flags)}")

    net = build_backbone(backbone, pretrained=pretrained) if isinstance(backbone, str) else backbone
    output_shape = getattr(net, "output_shape", None)
    if not callable(output_shape):
        raise TypeError(
            f"backbone: expected a segblocks Backbone with output_shape(), got {type(net).__name__}"
        )
    shapes: dict[str, ShapeSpec] = output_shape()
    input_shape = {k: v for k, v in shapes.items() if k in ("res2", "res3", "res4", "res5")}
    if sorted(input_shape) != ["res2", "res3", "res4", "res5"]:
        raise ValueError(f"backbone: expected res2..res5 maps, got {sorted(shapes)}")

    pixel_decoder = build_pixel_decoder(cfg, input_shape, deform_backend=deform_backend)
    decoder = build_transformer_decoder(cfg, attention_backend=attention_backend)
    text_embeddings = None
    class_head: LinearClassHead | OpenVocabClassHead
    if vocabulary is not None:
        encode_text = getattr(net, "encode_text", None)
        if not callable(encode_text):
            raise ValueError(
                f"vocabulary: the backbone {type(net).__name__} cannot encode text; use a CLIP backbone "
                "(e.g. 'clip:MODEL@TAG') or give num_classes"
            )
        text_embeddings = encode_text(vocabulary).detach()
        class_head = OpenVocabClassHead(
            dim=cfg.hidden_dim,
            embed_dim=int(text_embeddings.shape[-1]),
            temperature=cfg.temperature,
            learnable_temperature=cfg.learnable_temperature,
        )
    else:
        class_head = LinearClassHead(dim=cfg.hidden_dim, num_classes=len(names))
    criterion = build_criterion(cfg)
    model = Mask2Former(
        backbone=net,
        pixel_decoder=pixel_decoder,
        transformer_decoder=decoder,
        class_head=class_head,
        criterion=criterion,
        num_queries=cfg.num_queries,
        class_names=names,
        is_thing=flags,
        text_embeddings=text_embeddings,
        pad_inputs=pad_inputs,
        object_mask_threshold=cfg.object_mask_threshold,
        overlap_threshold=cfg.overlap_threshold,
        top_k=cfg.top_k,
        config=cfg,
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("Mask2Former (%s): %.2fM trainable parameters", cfg.pixel_decoder, trainable / 1e6)
    return model


def build_pixel_decoder(
    cfg: Mask2FormerConfig, input_shape: dict[str, ShapeSpec], *, deform_backend: str = "auto"
) -> nn.Module:
    """The pixel decoder of a configuration: MSDeformAttn encoder + FPN, or a plain FPN.

    Args:
        cfg: the configuration (``pixel_decoder``, widths, encoder sizes).
        input_shape: ``{"res2".."res5": ShapeSpec}`` of the backbone maps it reads.
        deform_backend: backend of :func:`segblocks.ops.ms_deform_attn`.

    Returns:
        The pixel decoder module.
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
        )
    return FPNPixelDecoder(
        input_shape=input_shape, conv_dim=cfg.conv_dim, mask_dim=cfg.mask_dim, norm_groups=cfg.norm_groups
    )


def build_transformer_decoder(
    cfg: Mask2FormerConfig, *, attention_backend: str = "auto"
) -> MaskedAttentionDecoder:
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


def build_criterion(cfg: Mask2FormerConfig, *, iou_weight: float = 0.0) -> SetCriterion:
    """The Hungarian matcher and set criterion of a configuration.

    Args:
        cfg: the configuration (loss/cost weights, point sampling).
        iou_weight: weight of the IoU regression loss (PosSAM: 1.0; 0 = off).

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
        no_object_weight=cfg.no_object_weight,
        num_points=cfg.num_points,
        oversample_ratio=cfg.oversample_ratio,
        importance_sample_ratio=cfg.importance_sample_ratio,
    )
