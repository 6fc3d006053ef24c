"""SEEM configurations: the paper's backbones (FocalNet, DaViT; COCO) and the shapes world's "tiny".

A :class:`SEEMConfig` is a :class:`~segblocks.zoo.common.MaskDecodingConfig` (SEEM's decoder is
Mask2Former's, widened to 512) plus the visual sampler, the spatial queries, the memory prompts, the
text encoder and the per-task loss weights (REFERENCE section 2.4). Choices where the paper and code
are silent or where we depart are listed in ``zoo/seem/README.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from segblocks.zoo.common.config import WORLD_DECODING, MaskDecodingConfig

__all__ = ["VARIANTS", "SEEMConfig", "get_config"]

#: A 12-layer, 512-wide text transformer, the size of SEEM's UniCL text encoder.
PAPER_TEXT_MODEL = "ViT-B-32"


@dataclass(frozen=True)
class SEEMConfig(MaskDecodingConfig):
    """Every size and weight of a SEEM build (defaults: the paper with FocalNet-T).

    Attributes:
        backbone: ``"clip"`` (the CLIP's own image tower, world scale) or a timm model name.
        clip_model: open_clip model of the frozen text encoder (and of the image tower for ``"clip"``).
        clip_pretrained: its weights (an open_clip tag, a file, a registered tag or None).
        spatial_per_prompt: candidate spatial queries per prompt (SEEM: 3).
        memory_per_prompt: memory-prompt tokens per prompt (SEEM: 32 shared by an image's prompts).
        sample_points: most pixels the visual sampler draws per image (SEEM: 512).
        click_radius: a click covers the square of this half side (SEEM: 3 x 3, radius 1).
        stroke_width: pen width of strokes drawn from polylines.
        prompt_mask_weight: BCE weight of the prompt answers (SEEM spatial/grounding: 1.0).
        prompt_dice_weight: Dice weight of the prompt answers (1.0).
        selection_weight: cross-entropy weight of the candidate choice (SEEM: 0.4).
        position_features: add a learned projection of each pixel's Fourier position code to the mask
            features and the decoder's feature levels (:class:`~segblocks.layers.FourierPositionFeatures`),
            so prompt tokens carry where they were sampled and answers can be local (SEEM has no such
            layer; on for ``tiny``, whose features measurably carry no position).
        position_max_cycles: the position code's highest frequency, in cycles per image.
        position_zero_init: start the position projections at zero (the generic path starts as without).
        separate_clicks: the visual sampler samples a prompt's clicks as regions of their own, so a
            correction click added to a stroke, box or mask is not drowned by it (SEEM ORs clicks into
            the region, where a click in a world-scale polygon draws about one point of 128). Off by
            default: trained with it, the world-scale model saw its clicks but did not gain from them
            (zoo/seem/README.md), so the shipped weights are trained without.
        dense_memory: also give each prompt's previous mask densely
            (:class:`~segblocks.decoders.DenseMaskPrompt`, SAM's mask prompt): added to the mask
            features its candidates' masks read, so an answer can start from the last one (SEEM has
            only the memory tokens, which pool features under the mask). Off by default: trained
            with it, the world-scale model used its memory but its correction clicks stopped
            helping (zoo/seem/README.md).
    """

    hidden_dim: int = 512
    num_queries: int = 101
    conv_dim: int = 512
    mask_dim: int = 512
    backbone: str = "focalnet_tiny_lrf"
    clip_model: str = PAPER_TEXT_MODEL
    clip_pretrained: str | None = None
    spatial_per_prompt: int = 3
    memory_per_prompt: int = 8
    sample_points: int = 512
    click_radius: int = 1
    stroke_width: float = 3.0
    prompt_mask_weight: float = 1.0
    prompt_dice_weight: float = 1.0
    selection_weight: float = 0.4
    position_features: bool = False
    position_max_cycles: float = 8.0
    position_zero_init: bool = True
    separate_clicks: bool = False
    dense_memory: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("spatial_per_prompt", "memory_per_prompt", "sample_points"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)}")
        if not self.position_max_cycles >= 1.0:
            raise ValueError(f"position_max_cycles: expected at least 1, got {self.position_max_cycles}")
        if not self.stroke_width > 0:
            raise ValueError(f"stroke_width: expected a positive width, got {self.stroke_width}")
        if not self.backbone or not self.clip_model:
            raise ValueError(
                f"backbone, clip_model: expected names, got {self.backbone!r}, {self.clip_model!r}"
            )


_PAPER = SEEMConfig()

#: Paper scale (COCO, 512-wide decoder, 101 object queries): ``"focal_t"``, ``"focal_l"``,
#: ``"davit_b"``, ``"davit_l"`` (timm backbones, a 12-layer 512-wide CLIP text tower).
#: ``"tiny"``: the shapes world on a CPU, on the shipped tiny CLIP (image and text towers).
VARIANTS: dict[str, SEEMConfig] = {
    "focal_t": _PAPER,
    "focal_l": replace(_PAPER, backbone="focalnet_large_fl4"),
    "davit_b": replace(_PAPER, backbone="davit_base"),
    "davit_l": replace(_PAPER, backbone="davit_large"),
    "tiny": SEEMConfig(
        **{**asdict(WORLD_DECODING), "num_queries": 24},
        backbone="clip",
        clip_model="shapes-clip-tiny",
        clip_pretrained="shapes",
        memory_per_prompt=4,
        sample_points=128,
        position_features=True,  # the world-scale features carry no position (zoo/seem/README.md)
    ),
}


def get_config(variant: str | SEEMConfig, **overrides: Any) -> SEEMConfig:
    """The configuration of a named variant, with fields overridden.

    Args:
        variant: a name of :data:`VARIANTS` or a :class:`SEEMConfig`.
        **overrides: fields of :class:`SEEMConfig` to change.

    Raises:
        ValueError: on an unknown variant or an invalid field value.
        TypeError: on an unknown field name.
    """
    if isinstance(variant, SEEMConfig):
        base = variant
    elif isinstance(variant, str) and variant in VARIANTS:
        base = VARIANTS[variant]
    else:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)} or a SEEMConfig, got {variant!r}")
    names = {f.name for f in fields(SEEMConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"overrides: unknown SEEMConfig fields {unknown}")
    return replace(base, **overrides) if overrides else base
