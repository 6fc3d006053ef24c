"""What a pixel decoder hands to the mask decoder."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

from segblocks._validation import check_ndim
from segblocks.structures import ShapeSpec

__all__ = ["PixelDecoderOutput", "check_backbone_features"]


@dataclass
class PixelDecoderOutput:
    """Output of a pixel decoder.

    Attributes:
        mask_features: ``[B, mask_dim, H / 4, W / 4]`` per-pixel embeddings the mask head dots with.
        multi_scale_features: ``L`` maps ``[B, D, H_l, W_l]``, low to high resolution (Mask2Former:
            strides 32, 16, 8), that the mask decoder cross-attends to, one level per layer.
    """

    mask_features: Tensor
    multi_scale_features: list[Tensor]

    def __post_init__(self) -> None:
        check_ndim("mask_features", self.mask_features, 4, "[B, C, H, W]")
        for i, f in enumerate(self.multi_scale_features):
            check_ndim(f"multi_scale_features[{i}]", f, 4, "[B, D, H, W]")


def check_backbone_features(
    features: Mapping[str, Tensor], input_shape: Mapping[str, ShapeSpec], names: list[str]
) -> None:
    """Check that ``features`` holds every name in ``names`` with the channels ``input_shape`` declares.

    Raises:
        ValueError: on a missing level, a wrong rank or a channel mismatch.
    """
    for name in names:
        if name not in features:
            raise ValueError(f"features: expected a {name!r} map, got keys {sorted(features)}")
        check_ndim(f"features[{name!r}]", features[name], 4, "[B, C, H, W]")
        channels = input_shape[name].channels
        if features[name].shape[1] != channels:
            raise ValueError(
                f"features[{name!r}]: expected {channels} channels, got shape {tuple(features[name].shape)}"
            )
