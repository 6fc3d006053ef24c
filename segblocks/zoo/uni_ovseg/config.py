"""Uni-OVSeg configurations: the paper's ConvNeXt-L CLIP at 1024 px and the shapes world's "tiny".

A :class:`UniOVSegConfig` is a :class:`~segblocks.zoo.common.MaskDecodingConfig` (the pixel and mask
decoders are Mask2Former's) plus the frozen CLIP, the prompt encoder, the stage-1 losses, the
point-grid inference, the multi-scale ensemble and the feature adapter. Values the paper and the
released config do not give are our choices, listed in ``zoo/uni-ovseg/README.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from segblocks.decoders.msdeform_pixel_decoder import INPUT_NORMS, POSITION_ENCODINGS
from segblocks.inference.point_grid import LABEL_RULES
from segblocks.losses.alignment import ALIGNMENT_LOSSES
from segblocks.zoo.common.config import WORLD_DECODING, MaskDecodingConfig

__all__ = ["VARIANTS", "UniOVSegConfig", "get_config"]


@dataclass(frozen=True)
class UniOVSegConfig(MaskDecodingConfig):
    """Every size and weight of a Uni-OVSeg build (defaults: the released stage-1 configuration).

    Attributes:
        clip_model: open_clip model name of the frozen CLIP (image features, dense map, text).
        clip_pretrained: its weights (an open_clip tag, a file, a registered tag or None).
        pixel_input_norm: input projections of the pixel decoder's encoder levels: ``"layer"``
            (released: biased 1x1 conv + LayerNorm2d) or ``"group"`` (Mask2Former's, bias-free + GroupNorm).
        pixel_position_encoding: the pixel decoder encoder's position code: ``"fourier"`` (released:
            random-Fourier) or ``"sine"`` (Mask2Former's).
        point_box_size: side in pixels of a click's anchor box (released: 4 at 1024 px).
        num_multimask: multi-granularity outputs per point (4).
        iou_weight: IoU regression loss weight (1.0).
        positive_iou: many-to-many matching keeps a pair only at this mask IoU (released config:
            0.7); None keeps every matched pair.
        train_points: point prompts per training image (released: a 10 x 10 grid).
        train_boxes: box prompts per training image (boxes of random ground-truth masks).
        grid_size: points per side of the inference grid (released: 20).
        prompt_chunk: prompts decoded at once during grid inference (released: 100).
        pred_iou_threshold: keep candidate masks whose predicted IoU reaches this (released: 0.65).
        nms_iou: inner-NMS IoU threshold (0.5).
        nms_inner: inner-NMS "inside a better mask" fraction (0.7).
        nms_downsample: inner-NMS compares masks at this fraction of the resolution (0.5).
        label_rule: how a named mask enters the semantic and panoptic maps: ``"argmax"`` (paper
            Sec. 3.3: the most similar class is its label, its predicted IoU its confidence) or
            ``"soft"`` (confidence = predicted IoU x class probability; our earlier rule).
        adapter_scales: CLIP feature scales the multi-scale adapter reads.
        adapter_rank: LoRA rank of the adapter (8).
        adapter_alpha: LoRA scaling numerator (1).
        align_weight: weight of the mask-text alignment loss (1.0).
        align_min_similarity: a mask-entity pair is confident at this cosine similarity.
        align_loss: ``"pull"`` (Eq. 8: ``1 - cos`` of a confident region with its entity) or
            ``"contrastive"`` (cross-entropy of the region against every entity of the batch).
        align_temperature: temperature of the contrastive loss; None uses the CLIP's learned one
            (``1 / logit_scale``, the scale at which masks are named at inference).
        ensemble_sizes: input sizes of the multi-scale ensemble for mask-text matching
            (released: 896 and 1024).
        inference_sizes: input sizes whose region embeddings name the masks at inference.
        align_grid_size: points per side of the grid that proposes masks on image-text pairs.
    """

    clip_model: str = "convnext_large_d_320"
    clip_pretrained: str | None = "laion2b_s29b_b131k_ft_soup"
    pixel_input_norm: str = "layer"
    pixel_position_encoding: str = "fourier"
    point_box_size: float = 4.0
    num_multimask: int = 4
    iou_weight: float = 1.0
    positive_iou: float | None = 0.7
    train_points: int = 100
    train_boxes: int = 0
    grid_size: int = 20
    prompt_chunk: int = 100
    pred_iou_threshold: float = 0.65
    nms_iou: float = 0.5
    nms_inner: float = 0.7
    nms_downsample: float = 0.5
    label_rule: str = "argmax"
    adapter_scales: tuple[str, ...] = ("res3", "res4", "res5")
    adapter_rank: int = 8
    adapter_alpha: float = 1.0
    align_weight: float = 1.0
    align_min_similarity: float = 0.0
    align_loss: str = "pull"
    align_temperature: float | None = None
    ensemble_sizes: tuple[int, ...] = (896, 1024)
    inference_sizes: tuple[int, ...] = (1024,)
    align_grid_size: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_multimask", "grid_size", "prompt_chunk", "adapter_rank", "align_grid_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {getattr(self, name)}")
        if self.train_points + self.train_boxes < 1:
            raise ValueError("train_points, train_boxes: a training image needs at least one prompt")
        for name in ("pred_iou_threshold", "nms_iou", "nms_inner"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")
        if self.positive_iou is not None and not 0.0 <= self.positive_iou <= 1.0:
            raise ValueError(f"positive_iou: expected a value in [0, 1] or None, got {self.positive_iou}")
        if not self.adapter_scales or not self.ensemble_sizes or not self.inference_sizes:
            raise ValueError("adapter_scales, ensemble_sizes, inference_sizes: expected non-empty tuples")
        if self.label_rule not in LABEL_RULES:
            raise ValueError(f"label_rule: expected one of {LABEL_RULES}, got {self.label_rule!r}")
        if self.pixel_input_norm not in INPUT_NORMS:
            raise ValueError(
                f"pixel_input_norm: expected one of {INPUT_NORMS}, got {self.pixel_input_norm!r}"
            )
        if self.pixel_position_encoding not in POSITION_ENCODINGS:
            raise ValueError(
                f"pixel_position_encoding: expected one of {POSITION_ENCODINGS}, got {self.pixel_position_encoding!r}"
            )
        if self.align_loss not in ALIGNMENT_LOSSES:
            raise ValueError(f"align_loss: expected one of {ALIGNMENT_LOSSES}, got {self.align_loss!r}")
        if self.align_temperature is not None and not self.align_temperature > 0:
            raise ValueError(
                f"align_temperature: expected a positive number or None, got {self.align_temperature}"
            )
        if not self.point_box_size > 0:
            raise ValueError(f"point_box_size: expected a positive size, got {self.point_box_size}")


_PAPER = UniOVSegConfig(num_points=12544, mask_weight=2.0, dice_weight=1.0, class_weight=0.0)

#: ``"convnext_large"``: the released stage-1 model (ConvNeXt-L CLIP at 1024 px, 256-wide decoders,
#: 9 decoder layers). ``"tiny"``: the shapes world on a CPU with the shipped tiny CLIP.
VARIANTS: dict[str, UniOVSegConfig] = {
    "convnext_large": _PAPER,
    "tiny": UniOVSegConfig(
        **{
            **asdict(WORLD_DECODING),
            "mask_weight": 2.0,
            "dice_weight": 1.0,
            "class_weight": 0.0,
            "num_points": 1024,
        },
        clip_model="shapes-clip-tiny",
        clip_pretrained="shapes",
        # the shared pixel decoder's projections and position code, as the shipped weights were trained
        pixel_input_norm="group",
        pixel_position_encoding="sine",
        point_box_size=2.0,
        positive_iou=None,
        train_points=12,
        train_boxes=4,
        grid_size=8,
        prompt_chunk=64,
        # region top-1 of val ground-truth masks, frozen tiny CLIP (model card): 96 px 39.0 %,
        # 128 px 45.1 %, 160 px 44.8 %, 96+128 42.2 %, 128+160 46.9 %: the nominal size and a larger one
        ensemble_sizes=(128, 160),
        inference_sizes=(128, 160),
        align_grid_size=6,
        # the IoU head scores a recalled thing's best mask 0.41 on average (true IoU 0.73), so 0.65
        # passes 8 % of them: PQ of held-out val images 100-149 (stage-1 weights, frozen CLIP)
        # 32.4 at 0.65, 33.4 at 0.6, 36.1 at 0.55, 36.4 at 0.5 and below (model card)
        pred_iou_threshold=0.5,
        # right thing pairs at cosine >= 0.4: 63 %, >= 0.3: 93 % (wrong pairs 4.0 / 9.6 %); region
        # top-1 of val 100-149 after stage 2: 61.4 % at 0.4, 61.8 % at 0.3 (model card)
        align_min_similarity=0.3,
        # region top-1 of val 100-149's ground-truth masks after 200 stage-2 steps from one stage 1:
        # pull 61.8 % (things 42.5), contrastive 67.3 % (things 50.9), frozen CLIP 66.9 (50.3) (model card)
        align_loss="contrastive",
    ),
}


def get_config(variant: str | UniOVSegConfig, **overrides: Any) -> UniOVSegConfig:
    """The configuration of a named variant, with fields overridden.

    Args:
        variant: ``"convnext_large"``, ``"tiny"`` or a :class:`UniOVSegConfig`.
        **overrides: fields of :class:`UniOVSegConfig` to change.

    Raises:
        ValueError: on an unknown variant or an invalid field value.
        TypeError: on an unknown field name.
    """
    if isinstance(variant, UniOVSegConfig):
        base = variant
    elif isinstance(variant, str) and variant in VARIANTS:
        base = VARIANTS[variant]
    else:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)} or a UniOVSegConfig, got {variant!r}")
    names = {f.name for f in fields(UniOVSegConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"overrides: unknown UniOVSegConfig fields {unknown}")
    for key in ("adapter_scales", "ensemble_sizes", "inference_sizes"):
        if key in overrides and isinstance(overrides[key], list):
            overrides[key] = tuple(overrides[key])
    return replace(base, **overrides) if overrides else base
