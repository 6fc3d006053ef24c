"""timm trunks segblocks registers with timm, so that open_clip configs can name them.

open_clip builds a timm image tower from ``vision_cfg.timm_model_name`` alone (no architecture
keyword arguments), so a trunk variant that needs one -- a dilated last stage -- is registered
under its own timm name:

- ``regnetx_002_os16``: timm's ``regnetx_002`` (RegNetX-200MF) with ``output_stride=16``: the last
  stage keeps stride 16 (dilated convolutions), so the final map, and with it the CLIP dense map, is
  twice as fine (8x8 at 128 px instead of 4x4). Same parameters, about 1.3x the compute.
"""

from __future__ import annotations

from typing import Any

import timm
from timm.models import register_model
from torch import nn

__all__ = ["OS16_TRUNKS"]

#: The registered dilated trunks and the timm model each one dilates.
OS16_TRUNKS: dict[str, str] = {"regnetx_002_os16": "regnetx_002"}


def _regnetx_002_os16(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """``regnetx_002`` with its last stage dilated (``output_stride=16``)."""
    kwargs.setdefault("output_stride", 16)
    return timm.create_model(OS16_TRUNKS["regnetx_002_os16"], pretrained=pretrained, **kwargs)


_regnetx_002_os16.__name__ = "regnetx_002_os16"  # timm registers a model under its function's name
if "regnetx_002_os16" not in timm.list_models("regnetx_002_os16"):
    register_model(_regnetx_002_os16)
