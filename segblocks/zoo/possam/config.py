"""PosSAM configurations: the paper's three SAM sizes (COCO, 1024x1024) and the shapes world's "tiny".

A :class:`PosSAMConfig` is a :class:`~segblocks.zoo.common.MaskDecodingConfig` (the pixel and
mask decoders are Mask2Former's) plus the two frozen foundation models, the IoU loss, LDP and the
ensembles. Values the paper does not give are our choices, listed in ``zoo/possam/README.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from segblocks.losses.query_scores import UNMATCHED_IOU_TARGETS
from segblocks.zoo.common.config import WORLD_DECODING, MaskDecodingConfig

__all__ = [
    "LDP_VOIDS",
    "VARIANTS",
    "WORLD_CLIP_MODEL",
    "WORLD_CLIP_PRETRAINED",
    "WORLD_SAM_CHECKPOINT",
    "WORLD_SAM_MODEL",
    "PosSAMConfig",
    "get_config",
]

#: The shapes world's tiny foundation models (shipped with the package). ``build_possam("tiny")``
#: uses them by default; override with ``sam_model=`` / ``clip_model=`` (or the config fields).
WORLD_SAM_MODEL = "shapes-sam-tiny"
WORLD_SAM_CHECKPOINT = "shapes"
WORLD_CLIP_MODEL = "shapes-clip-tiny"
WORLD_CLIP_PRETRAINED = "shapes"

#: The classifiers of :class:`~segblocks.zoo.possam.PosSAMPredictor` (exported as ``CLASSIFIERS``).
CLASSIFIER_NAMES = ("ldp", "clip", "geometric", "mase")
#: The classifiers that are ensembles of LDP and CLIP (they have exponents).
ENSEMBLE_NAMES = ("geometric", "mase")

#: FC-CLIP's ConvNeXt-L CLIP, the paper's CLIP ("ConvNext-L backbone for the CLIP architecture").
PAPER_CLIP_MODEL = "convnext_large_d_320"
PAPER_CLIP_PRETRAINED = "laion2b_s29b_b131k_ft_soup"


#: How LDP's class head may score void (``PosSAMConfig.ldp_void``).
LDP_VOIDS = ("learned", "linear", "query")


@dataclass(frozen=True)
class PosSAMConfig(MaskDecodingConfig):
    """Every size and weight of a PosSAM build (defaults: the paper with SAM ViT-B).

    Attributes:
        sam_model: SAM image-encoder name (``"vit_b"``, ``"vit_l"``, ``"vit_h"`` or a registered one).
        sam_checkpoint: default SAM weights (a file or a registered tag; None = random init).
        clip_model: open_clip model name of the frozen CLIP.
        clip_pretrained: default CLIP weights (an open_clip tag, a file, a registered tag or None).
        fpn_channels: channels of the trainable FPN on SAM's image embedding (``res2..res5``).
        iou_weight: IoU loss weight (paper: 1.0).
        iou_unmatched_weight: the IoU loss also supervises unmatched queries' predicted IoU, with
            this weight relative to a matched query's (0 = the paper: only matched queries).
        iou_unmatched_target: what an unmatched query's predicted IoU regresses: ``"zero"`` or
            ``"best_segment"``, its mask's best IoU with any segment (SAM's way; ours).
        iou_layers: depth of the IoU head's MLP.
        ldp_heads: heads of LDP's fusing self-attention.
        ldp_ffn_dim: FFN width of LDP's fusing layers.
        ldp_layers: LDP fusing layers.
        ldp_clip_residual: LDP's class head corrects the frozen CLIP's mask-pooled embedding
            instead of replacing it (:class:`~segblocks.heads.LocalDiscriminativePooling`'s
            ``clip_residual``; our option, off in the paper's configurations).
        ldp_void: how LDP's class head scores void (:class:`~segblocks.heads.OpenVocabClassHead`'s
            ``void``): ``"learned"`` (FC-CLIP's cosine with a learned embedding, the paper's) or
            ``"linear"`` (a linear function of LDP's tokens, not bounded by the temperature; ours) or
            ``"query"`` (a linear function of the mask decoder's query, which, unlike the pooled
            tokens, differs between a segment's match and its near-duplicate; ours).
        alpha: ensembles: CLIP's exponent for seen classes (FC-CLIP: 0.4).
        beta: ensembles: CLIP's exponent for unseen classes (FC-CLIP: 0.8).
        mase_use_iou: MASE weights masks by their predicted IoU.
        ensemble_exponents: ``(alpha, beta)`` per ensemble (``{"mase": (1.0, 1.0), "geometric": ...}``),
            e.g. chosen on a proxy split by :func:`~segblocks.zoo.possam.calibration.calibrate`; an
            ensemble not listed (and both when None) uses ``alpha`` and ``beta``.
        object_mask_thresholds: panoptic object thresholds per classifier (``{"mase": 0.25, ...}``),
            e.g. calibrated by :func:`~segblocks.zoo.possam.calibration.calibrate_object_thresholds`;
            a classifier not listed (and every one when None) uses ``object_mask_threshold``.
    """

    num_queries: int = 250
    sam_model: str = "vit_b"
    sam_checkpoint: str | None = None
    clip_model: str = PAPER_CLIP_MODEL
    clip_pretrained: str | None = PAPER_CLIP_PRETRAINED
    fpn_channels: int = 256
    iou_weight: float = 1.0
    iou_unmatched_weight: float = 0.0
    iou_unmatched_target: str = "zero"
    iou_layers: int = 3
    ldp_heads: int = 8
    ldp_ffn_dim: int = 2048
    ldp_layers: int = 3
    ldp_clip_residual: bool = False
    ldp_void: str = "learned"
    alpha: float = 0.4
    beta: float = 0.8
    mase_use_iou: bool = True
    ensemble_exponents: Mapping[str, tuple[float, float]] | None = None
    object_mask_thresholds: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ensemble_exponents is not None:
            object.__setattr__(self, "ensemble_exponents", check_exponents(self.ensemble_exponents))
        if self.object_mask_thresholds is not None:
            object.__setattr__(  # a plain dict (checkpoints store the config as JSON)
                self, "object_mask_thresholds", check_thresholds(self.object_mask_thresholds)
            )
        for name in ("fpn_channels", "iou_layers", "ldp_heads", "ldp_ffn_dim", "ldp_layers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)}")
        if self.iou_unmatched_target not in UNMATCHED_IOU_TARGETS:
            raise ValueError(
                f"iou_unmatched_target: expected one of {UNMATCHED_IOU_TARGETS}, got {self.iou_unmatched_target!r}"
            )
        if self.ldp_void not in LDP_VOIDS:
            raise ValueError(f"ldp_void: expected one of {LDP_VOIDS}, got {self.ldp_void!r}")
        for name in ("alpha", "beta"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")
        if not self.sam_model or not self.clip_model:
            raise ValueError(
                f"sam_model, clip_model: expected names, got {self.sam_model!r}, {self.clip_model!r}"
            )


def _check_keys(value: object, name: str, allowed: tuple[str, ...], key: str, item: str) -> Mapping[Any, Any]:
    """``value`` as a mapping whose keys are all in ``allowed`` (errors name ``key`` and ``item``)."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{name}: expected a mapping {{{key}: {item}}}, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise ValueError(f"{name}: expected {key}s among {allowed}, got {unknown}")
    return value


def check_thresholds(value: object, name: str = "object_mask_thresholds") -> dict[str, float]:
    """Validate per-classifier object thresholds: names of ``CLASSIFIERS``, values in ``[0, 1]``.

    Args:
        value: a mapping ``{classifier: threshold}``.
        name: the argument named in errors.

    Returns:
        The thresholds as a plain ``dict`` of floats.

    Raises:
        TypeError: when ``value`` is not a mapping or a threshold is not a number.
        ValueError: on an unknown classifier or a threshold outside ``[0, 1]``.
    """
    value = _check_keys(value, name, CLASSIFIER_NAMES, "classifier", "threshold")
    out: dict[str, float] = {}
    for key, threshold in value.items():
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise TypeError(f"{name}[{key!r}]: expected a number, got {type(threshold).__name__}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"{name}[{key!r}]: expected a value in [0, 1], got {threshold}")
        out[str(key)] = float(threshold)
    return out


def check_exponents(value: object, name: str = "ensemble_exponents") -> dict[str, tuple[float, float]]:
    """Validate per-ensemble exponents: ``{"mase" | "geometric": (alpha, beta)}``, each in ``[0, 1]``.

    Args:
        value: a mapping ``{ensemble: (alpha, beta)}`` (lists are accepted: JSON has no tuples).
        name: the argument named in errors.

    Returns:
        The exponents as a plain ``dict`` of float pairs.

    Raises:
        TypeError: when ``value`` is not a mapping or an entry is not a pair of numbers.
        ValueError: on an unknown ensemble or an exponent outside ``[0, 1]``.
    """
    value = _check_keys(value, name, ENSEMBLE_NAMES, "ensemble", "(alpha, beta)")
    out: dict[str, tuple[float, float]] = {}
    for key, pair in value.items():
        numbers = isinstance(pair, (tuple, list)) and len(pair) == 2
        if not numbers or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in pair):
            raise TypeError(f"{name}[{key!r}]: expected a pair of numbers (alpha, beta), got {pair!r}")
        if not all(0.0 <= float(v) <= 1.0 for v in pair):
            raise ValueError(f"{name}[{key!r}]: expected exponents in [0, 1], got {tuple(pair)}")
        out[str(key)] = (float(pair[0]), float(pair[1]))
    return out


_PAPER = PosSAMConfig()

#: ``"vit_b"``, ``"vit_l"``, ``"vit_h"``: the paper (SAM encoder of that size, ConvNeXt-L CLIP,
#: Mask2Former decoders at 256 channels). ``"tiny"``: the shapes world on a CPU, with the shipped tiny
#: SAM and CLIP.
VARIANTS: dict[str, PosSAMConfig] = {
    "vit_b": _PAPER,
    "vit_l": replace(_PAPER, sam_model="vit_l"),
    "vit_h": replace(_PAPER, sam_model="vit_h"),
    # The decoders of Mask2Former's world scale, on the shipped tiny SAM and CLIP.
    "tiny": PosSAMConfig(
        **asdict(WORLD_DECODING),
        sam_model=WORLD_SAM_MODEL,
        sam_checkpoint=WORLD_SAM_CHECKPOINT,
        clip_model=WORLD_CLIP_MODEL,
        clip_pretrained=WORLD_CLIP_PRETRAINED,
        fpn_channels=64,
        ldp_heads=4,
        ldp_ffn_dim=256,
        # measured on the shapes world (the card's possam_v19-v21): LDP's void read from the decoder's
        # queries, and the IoU loss on every query towards its mask's best segment
        ldp_void="query",
        iou_unmatched_weight=1.0,
        iou_unmatched_target="best_segment",
    ),
}


def get_config(variant: str | PosSAMConfig, **overrides: Any) -> PosSAMConfig:
    """The configuration of a named variant, with fields overridden.

    Args:
        variant: ``"vit_b"``, ``"vit_l"``, ``"vit_h"``, ``"tiny"`` or a :class:`PosSAMConfig`.
        **overrides: fields of :class:`PosSAMConfig` to change.

    Returns:
        The configuration.

    Raises:
        ValueError: on an unknown variant or an invalid field value.
        TypeError: on an unknown field name.
    """
    if isinstance(variant, PosSAMConfig):
        base = variant
    elif isinstance(variant, str) and variant in VARIANTS:
        base = VARIANTS[variant]
    else:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)} or a PosSAMConfig, got {variant!r}")
    names = {f.name for f in fields(PosSAMConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"overrides: unknown PosSAMConfig fields {unknown}")
    return replace(base, **overrides) if overrides else base
