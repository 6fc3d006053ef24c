"""Mask2Former configurations: the paper's (COCO, 1024x1024) and the shapes world's (CPU-sized)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from segblocks.zoo.common.config import WORLD_DECODING, MaskDecodingConfig

__all__ = ["VARIANTS", "Mask2FormerConfig", "get_config"]


@dataclass(frozen=True)
class Mask2FormerConfig(MaskDecodingConfig):
    """Every size and weight of a Mask2Former build (defaults: the paper, COCO panoptic).

    Mask2Former is its decoding and nothing more: the fields are those of
    :class:`~segblocks.zoo.common.MaskDecodingConfig`.
    """


#: ``"paper"``: Mask2Former on COCO at 1024x1024. ``"world"``: the shapes world on a CPU (sized so a
#: training run fits in about half an hour on two cores).
VARIANTS: dict[str, Mask2FormerConfig] = {
    "paper": Mask2FormerConfig(),
    "world": Mask2FormerConfig(**asdict(WORLD_DECODING)),
}


def get_config(variant: str | Mask2FormerConfig, **overrides: Any) -> Mask2FormerConfig:
    """The configuration of a named variant (``"paper"`` or ``"world"``), with fields overridden.

    Args:
        variant: ``"paper"``, ``"world"`` or a :class:`Mask2FormerConfig`.
        **overrides: fields of :class:`Mask2FormerConfig` to change.

    Raises:
        ValueError: on an unknown variant or an invalid field value.
        TypeError: on an unknown field name.
    """
    if isinstance(variant, Mask2FormerConfig):
        base = variant
    elif isinstance(variant, str) and variant in VARIANTS:
        base = VARIANTS[variant]
    else:
        raise ValueError(
            f"variant: expected one of {sorted(VARIANTS)} or a Mask2FormerConfig, got {variant!r}"
        )
    names = {f.name for f in fields(Mask2FormerConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"overrides: unknown Mask2FormerConfig fields {unknown}")
    return replace(base, **overrides)
