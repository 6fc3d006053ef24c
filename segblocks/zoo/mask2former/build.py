"""``build_mask2former``: assemble Mask2Former from a backbone and a configuration variant."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from torch import nn

from segblocks._validation import check_bool_flags, check_positive_int, check_vocabulary
from segblocks.backbones.base import Backbone
from segblocks.heads.class_head import LinearClassHead, OpenVocabClassHead
from segblocks.structures import ShapeSpec
from segblocks.zoo.common.build import build_criterion, build_mask_decoder, build_pixel_decoder
from segblocks.zoo.mask2former.config import Mask2FormerConfig, get_config
from segblocks.zoo.mask2former.model import Mask2Former

__all__ = ["build_backbone", "build_mask2former"]

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
    variant: str | Mask2FormerConfig = "paper",
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
            variant="world",
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
        variant: ``"paper"`` (COCO, 1024x1024), ``"world"`` (shapes world on a CPU) or a config.
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
    cfg = get_config(variant, **overrides)
    if (num_classes is None) == (vocabulary is None):
        raise ValueError("num_classes, vocabulary: give exactly one (closed-set or open-vocabulary)")
    if vocabulary is not None:
        names = check_vocabulary("vocabulary", vocabulary)
    else:
        num_classes = check_positive_int("num_classes", num_classes)
        names = (
            check_vocabulary("class_names", class_names)
            if class_names is not None
            else [f"class_{i}" for i in range(num_classes)]
        )
        if len(names) != num_classes:
            raise ValueError(f"class_names: expected {num_classes} names, got {len(names)}")
    flags = (
        check_bool_flags("is_thing", is_thing, len(names)) if is_thing is not None else [True] * len(names)
    )

    net = build_backbone(backbone, pretrained=pretrained) if isinstance(backbone, str) else backbone
    if not isinstance(net, Backbone):
        raise TypeError(
            f"backbone: expected a segblocks Backbone (output_shape(), size_divisibility), got {type(net).__name__}"
        )
    shapes: dict[str, ShapeSpec] = net.output_shape()
    input_shape = {k: v for k, v in shapes.items() if k in ("res2", "res3", "res4", "res5")}
    if sorted(input_shape) != ["res2", "res3", "res4", "res5"]:
        raise ValueError(f"backbone: expected res2..res5 maps, got {sorted(shapes)}")

    pixel_decoder = build_pixel_decoder(cfg, input_shape, deform_backend=deform_backend)
    mask_decoder = build_mask_decoder(cfg, attention_backend=attention_backend)
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
        mask_decoder=mask_decoder,
        class_head=class_head,
        criterion=criterion,
        num_queries=cfg.num_queries,
        class_names=names,
        is_thing=flags,
        text_embeddings=text_embeddings,
        pad_inputs=pad_inputs,
        config=cfg,
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("Mask2Former (%s): %.2fM trainable parameters", cfg.pixel_decoder, trainable / 1e6)
    return model
