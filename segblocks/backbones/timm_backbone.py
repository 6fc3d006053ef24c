"""TimmBackbone: any timm model that supports ``features_only``, with strictly checked ``out_indices``."""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from torch import Tensor

from segblocks.backbones.base import Backbone, freeze
from segblocks.backbones.checkpoints import LoadReport, load_state_dict_file
from segblocks.backbones.registry import suggest
from segblocks.structures import ShapeSpec

__all__ = ["TimmBackbone", "timm_feature_levels"]

logger = logging.getLogger(__name__)


def timm_feature_levels(model_name: str) -> list[dict[str, Any]]:
    """Every feature level timm exposes for ``model_name``: ``[{"num_chs", "reduction", "module"}]``.

    The model is built on the meta device (no memory, no weights) when possible.

    Raises:
        ValueError: for a name timm does not know.
    """
    if not isinstance(model_name, str) or not timm.is_model(model_name):
        names = timm.list_models()
        raise ValueError(f"model_name: unknown timm model {model_name!r}{suggest(str(model_name), names)}")
    try:
        with torch.device("meta"):
            model = timm.create_model(model_name, pretrained=False)
    except Exception:  # some constructors run data-dependent code that the meta device cannot
        model = timm.create_model(model_name, pretrained=False)
    info = getattr(model, "feature_info", None)
    if not info:
        raise ValueError(f"model_name: timm model {model_name!r} has no feature_info (no features_only)")
    return [dict(level) for level in info]


def _check_out_indices(out_indices: Sequence[int], num_levels: int, model_name: str) -> tuple[int, ...]:
    if isinstance(out_indices, int | str) or len(out_indices) == 0:
        raise ValueError(f"out_indices: expected a non-empty sequence of ints, got {out_indices!r}")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in out_indices):
        raise TypeError(f"out_indices: expected ints, got {out_indices!r}")
    bad = [i for i in out_indices if not 0 <= i < num_levels]
    if bad:
        raise ValueError(
            f"out_indices: {bad} out of range for {model_name!r}, which has {num_levels} feature levels "
            f"(valid indices 0..{num_levels - 1})"
        )
    if any(b <= a for a, b in itertools.pairwise(out_indices)):
        raise ValueError(f"out_indices: expected strictly increasing indices, got {tuple(out_indices)}")
    return tuple(out_indices)


class TimmBackbone(Backbone):
    """A timm model with ``features_only=True``; outputs are named ``res{log2(stride)}``.

    Channels and strides come from timm's ``feature_info``; ``out_indices`` are checked against it
    (in range, strictly increasing) before the model is built. Inputs are normalised with the model's
    pretrained mean/std.

    Args:
        model_name: a timm model name.
        out_indices: feature levels to return; default: the levels with strides 4, 8, 16, 32.
        pretrained: load timm's pretrained weights (downloaded by timm).
        checkpoint: a local weight file (``.safetensors`` or a PyTorch file read with
            ``weights_only=True``) of the full timm model (timm's checkpoint filter for the
            architecture is applied, as for its own pretrained weights).
        frozen: freeze the model (eval mode, no gradients).
        strict: load the checkpoint strictly (timm's ``pretrained_strict``); a key or shape mismatch
            raises a ``ValueError`` naming the keys.
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``drop_path_rate``).

    Example:
        >>> backbone = TimmBackbone("resnet18")  # random init; pretrained=True loads timm's weights
        >>> backbone.output_shape()["res5"]
        ShapeSpec(channels=512, stride=32)
    """

    model: Any  # timm's FeatureListNet / FeatureGetterNet (its attributes are not typed)

    def __init__(
        self,
        model_name: str,
        *,
        out_indices: Sequence[int] | None = None,
        pretrained: bool = False,
        checkpoint: str | os.PathLike[str] | None = None,
        frozen: bool = False,
        strict: bool = True,
        **timm_kwargs: Any,
    ) -> None:
        levels = timm_feature_levels(model_name)
        reductions = [int(level["reduction"]) for level in levels]
        if out_indices is None:
            out_indices = [i for i, r in enumerate(reductions) if r in (4, 8, 16, 32)]
            if not out_indices:
                raise ValueError(f"out_indices: {model_name!r} has no level at strides 4..32 ({reductions})")
        indices = _check_out_indices(out_indices, len(levels), model_name)
        names = [f"res{int(math.log2(reductions[i]))}" for i in indices]
        if len(set(names)) != len(names) or any(reductions[i] & (reductions[i] - 1) for i in indices):
            raise ValueError(
                f"out_indices: levels {indices} of {model_name!r} have strides "
                f"{[reductions[i] for i in indices]}; pick levels with distinct power-of-two strides"
            )
        if checkpoint is not None:
            if pretrained:
                raise ValueError("pretrained, checkpoint: give at most one weight source")
            # timm applies the model's own checkpoint filter and loads the full model before it
            # wraps the feature levels; the file itself is read here, safely.
            state_dict = load_state_dict_file(Path(checkpoint))
            timm_kwargs = {
                **timm_kwargs,
                "pretrained_cfg_overlay": {"state_dict": state_dict},
                "pretrained_strict": strict,
            }
        try:
            model: Any = timm.create_model(
                model_name,
                pretrained=pretrained or checkpoint is not None,
                features_only=True,
                out_indices=indices,
                **timm_kwargs,
            )
        except RuntimeError as err:
            if checkpoint is None:
                raise
            detail = " ".join(str(err).split())
            raise ValueError(f"checkpoint {checkpoint}: does not fit {model_name!r}: {detail}") from err
        cfg = model.pretrained_cfg
        super().__init__(pixel_mean=cfg.get("mean", (0.5,) * 3), pixel_std=cfg.get("std", (0.5,) * 3))
        self.model_name = model_name
        self.model = model
        self.out_indices = indices
        self.names = names
        self._nhwc = str(getattr(model, "output_fmt", "NCHW")).endswith("NHWC")
        self._shapes = {
            n: ShapeSpec(int(c), int(r))
            for n, c, r in zip(names, model.feature_info.channels(), model.feature_info.reduction())
        }
        self._size_divisibility = max(32, *(s.stride for s in self._shapes.values()))
        source = "timm pretrained" if pretrained else "random init"
        self.load_report = LoadReport(source=source if checkpoint is None else str(checkpoint))
        self.frozen = frozen
        if frozen:
            freeze(self.model)

    def train(self, mode: bool = True) -> TimmBackbone:
        """Set train/eval mode; a frozen model stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def output_shape(self) -> dict[str, ShapeSpec]:
        """``{res{log2(stride)}: ShapeSpec(channels, stride)}`` from timm's ``feature_info``."""
        return dict(self._shapes)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Feature maps of the selected levels.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``; ``H``, ``W`` multiples of ``size_divisibility``.

        Returns:
            ``{res{log2(s)}: [B, C, H / s, W / s]}``.

        Raises:
            ValueError, TypeError: on bad ``images`` (see :meth:`Backbone.check_images`).
        """
        images = self.check_images(images)
        features = self.model(self.normalize(images))
        if self._nhwc:
            features = [f.permute(0, 3, 1, 2) for f in features]
        return dict(zip(self.names, features))
