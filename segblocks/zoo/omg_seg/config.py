"""OMG-Seg configurations: the paper's (frozen ConvNeXt-L CLIP, COCO scale) and the shapes world's ("tiny").

An :class:`OMGSegConfig` is a :class:`~segblocks.zoo.common.MaskDecodingConfig` (OMG-Seg's pixel and
mask decoders are Mask2Former's) plus the frozen CLIP, the OMG classifier, the objectness head, the
location queries and the open-vocabulary ensemble. Values taken from the official code are marked
in ``zoo/omg-seg/README.md``; the rest are our choices, listed there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from segblocks.zoo.common.config import WORLD_DECODING, MaskDecodingConfig

__all__ = ["VARIANTS", "OMGSegConfig", "get_config"]

#: The official backbone: OpenCLIP ConvNeXt-L at 320 px, LAION-2B "soup" weights.
PAPER_CLIP_MODEL = "convnext_large_d_320"
PAPER_CLIP_PRETRAINED = "laion2b_s29b_b131k_ft_soup"
#: The shapes world's tiny CLIP (shipped with the package).
WORLD_CLIP_MODEL = "shapes-clip-tiny"
WORLD_CLIP_PRETRAINED = "shapes"


@dataclass(frozen=True)
class OMGSegConfig(MaskDecodingConfig):
    """Every size and weight of an OMG-Seg build (defaults: the official ConvNeXt-L configuration).

    Attributes:
        clip_model: open_clip model name of the frozen CLIP (the backbone).
        clip_pretrained: its default weights (an open_clip tag, a file, a registered tag or None).
        class_layers: depth of the classifier's MLP (official: 3).
        logit_scale: fixed scale of the classifier's cosines (official: 100).
        objectness_weight: focal-loss weight of the objectness head (official: 2.0).
        objectness_layers: depth of the objectness MLP (official: 3).
        alpha: open-vocabulary ensemble: CLIP's exponent for classes in the training vocabulary (0.4).
        beta: CLIP's exponent for the other classes (0.8).
        class_negatives: extra prototypes the classifier's training cross-entropy treats as wrong for
            every query (:func:`~segblocks.zoo.omg_seg.vocabulary.negative_prototypes`): ``"none"``
            (official), ``"opposite"`` (the negated training names) or ``"sphere"`` (random directions).
        sphere_negatives: directions of ``class_negatives="sphere"``.
        class_negative_margin: how far (in cosine, ``[0, 2]``) a query may point at a negative before
            it costs anything: each negative's training logit is ``logit_scale * (cos - margin)``.
            0 (default) keeps the full negative term; larger values weaken it.
        class_void: the classifier's background prototype: ``"zero"`` (official: the void logit is
            always 0) or ``"learned"`` (FC-CLIP's learned void embedding).
        point_box_size: side in pixels of the box a click becomes (official: 6); None keeps a click
            as a zero-size box (its position code is the point itself).
        location_sine_dim: sine channels per box coordinate of a location query (official: 128).
        location_start_in_box: a location query's first cross-attention covers its box only.
        location_self_mask: location queries attend only to themselves in self-attention (the
            official rule; False lets them attend to each other: Supplementary Table 3's ablation).
        num_prompts: prompts per training image of the prompt branch (official: 20).
        vos_proposals: objectness-ranked proposals VOS chooses from (official: 25).
    """

    num_queries: int = 300
    clip_model: str = PAPER_CLIP_MODEL
    clip_pretrained: str | None = PAPER_CLIP_PRETRAINED
    class_layers: int = 3
    logit_scale: float = 100.0
    objectness_weight: float = 2.0
    objectness_layers: int = 3
    alpha: float = 0.4
    beta: float = 0.8
    class_negatives: str = "none"
    sphere_negatives: int = 64
    class_negative_margin: float = 0.0
    class_void: str = "zero"
    point_box_size: float | None = 6.0
    location_sine_dim: int = 128
    location_start_in_box: bool = True
    location_self_mask: bool = True
    num_prompts: int = 20
    vos_proposals: int = 25
    object_mask_threshold: float = 0.0  # the official evaluation config (the code default is 0.8)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in (
            "class_layers",
            "objectness_layers",
            "location_sine_dim",
            "num_prompts",
            "vos_proposals",
            "sphere_negatives",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)}")
        if self.location_sine_dim % 2:
            raise ValueError(f"location_sine_dim: expected an even number, got {self.location_sine_dim}")
        if not self.logit_scale > 0:
            raise ValueError(f"logit_scale: expected a positive number, got {self.logit_scale}")
        for name in ("alpha", "beta"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")
        if self.point_box_size is not None and not self.point_box_size >= 0:
            raise ValueError(
                f"point_box_size: expected a size >= 0 in pixels or None, got {self.point_box_size}"
            )
        if self.class_negatives not in ("none", "opposite", "sphere"):  # vocabulary.NEGATIVES
            raise ValueError(
                f"class_negatives: expected 'none', 'opposite' or 'sphere', got {self.class_negatives!r}"
            )
        if not 0.0 <= self.class_negative_margin <= 2.0:
            raise ValueError(
                f"class_negative_margin: expected a cosine margin in [0, 2], got {self.class_negative_margin}"
            )
        if self.class_void not in ("zero", "learned"):
            raise ValueError(f"class_void: expected 'zero' or 'learned', got {self.class_void!r}")
        if not self.clip_model:
            raise ValueError(f"clip_model: expected an open_clip model name, got {self.clip_model!r}")


#: ``"convnext_large"``: the official model (frozen ConvNeXt-L CLIP, 300 queries, 9 decoder layers).
#: ``"tiny"``: the shapes world on a CPU: Mask2Former's world-scale decoders on the shipped tiny CLIP,
#: 8 prompts an image, the world's 0.5 object threshold (its queries are few; see the card), and the
#: negated training names as class negatives (without them every kept segment is named by a held-out
#: class on the tiny CLIP) with a learned void prototype (with the zero one, the negatives leave the
#: background a stiff tie of logits; see the card). Its ensemble exponents (0.6 / 1.0) were chosen
#: on a proxy split of the training classes (``segblocks.zoo.omg_seg.calibration``; the card).
VARIANTS: dict[str, OMGSegConfig] = {
    "convnext_large": OMGSegConfig(),
    "tiny": OMGSegConfig(
        **{**asdict(WORLD_DECODING), "num_queries": 24},
        clip_model=WORLD_CLIP_MODEL,
        clip_pretrained=WORLD_CLIP_PRETRAINED,
        location_sine_dim=32,
        num_prompts=8,
        vos_proposals=10,
        class_negatives="opposite",
        class_void="learned",
        alpha=0.6,
        beta=1.0,
    ),
}


def get_config(variant: str | OMGSegConfig, **overrides: Any) -> OMGSegConfig:
    """The configuration of a named variant, with fields overridden.

    Args:
        variant: ``"convnext_large"``, ``"tiny"`` or an :class:`OMGSegConfig`.
        **overrides: fields of :class:`OMGSegConfig` to change.

    Raises:
        ValueError: on an unknown variant or an invalid field value.
        TypeError: on an unknown field name.
    """
    if isinstance(variant, OMGSegConfig):
        base = variant
    elif isinstance(variant, str) and variant in VARIANTS:
        base = VARIANTS[variant]
    else:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)} or an OMGSegConfig, got {variant!r}")
    names = {f.name for f in fields(OMGSegConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"overrides: unknown OMGSegConfig fields {unknown}")
    return replace(base, **overrides) if overrides else base
