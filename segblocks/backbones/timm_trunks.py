"""timm trunks segblocks registers with timm, so that open_clip configs can name them.

open_clip builds a timm image tower from ``vision_cfg.timm_model_name`` alone (no architecture
keyword arguments), so trunks that need arguments are registered under their own timm names:

- ``regnetx_002_os16``: timm's ``regnetx_002`` (RegNetX-200MF) with ``output_stride=16``: the last
  stage keeps stride 16 (dilated convolutions), so the final map, and with it the CLIP dense map, is
  twice as fine (8x8 at 128 px instead of 4x4). Same parameters, about 1.3x the compute.
- ``shapes_resnet_os16``: a small ResNet of basic blocks (two 3x3 convolutions with batch norm and
  a shortcut) built with timm's ``ByobNet``: a stride-2 3x3 stem, then five stages of one block at
  widths 32 / 64 / 128 / 192 / 256 and strides 2 / 4 / 8 / 16 / 16 (the last dilated); 2.0 M
  parameters. The plain-CNN design that learns the shapes world's thing crops fastest per sample
  (issue 19), with the stage strides ``OpenCLIPBackbone`` needs.
"""

from __future__ import annotations

from typing import Any

import timm
from timm.models import register_model
from timm.models.byobnet import ByoBlockCfg, ByobNet, ByoModelCfg
from torch import nn

__all__ = ["OS16_TRUNKS", "SHAPES_RESNET_CFG", "regnetx_002_os16", "shapes_resnet_os16"]

#: The registered dilated trunks and the timm model each one dilates.
OS16_TRUNKS: dict[str, str] = {"regnetx_002_os16": "regnetx_002"}

#: The stages of ``shapes_resnet_os16`` (before dilation).
SHAPES_RESNET_CFG = ByoModelCfg(
    blocks=tuple(
        ByoBlockCfg(type="basic", d=1, c=c, s=s, br=1.0)
        for c, s in ((32, 1), (64, 2), (128, 2), (192, 2), (256, 2))
    ),
    stem_chs=32,
    stem_type="",
    stem_pool="",
    num_features=0,
)


def regnetx_002_os16(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """``regnetx_002`` with its last stage dilated (``output_stride=16``).

    Args:
        pretrained: load timm's ``regnetx_002`` weights (downloaded).
        **kwargs: timm model arguments.
    """
    kwargs.setdefault("output_stride", 16)
    return timm.create_model(OS16_TRUNKS["regnetx_002_os16"], pretrained=pretrained, **kwargs)


def shapes_resnet_os16(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """The small basic-block ResNet of :data:`SHAPES_RESNET_CFG`, last stage dilated.

    Args:
        pretrained: must be False (there are no timm weights; segblocks trains it in the tiny CLIP).
        **kwargs: ``ByobNet`` arguments (``num_classes``, ``global_pool``, ``output_stride``, ...).

    Raises:
        ValueError: when ``pretrained`` is True.
    """
    if pretrained:
        raise ValueError("pretrained: shapes_resnet_os16 has no timm weights (it is trained by segblocks)")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # timm's, not the model's
        kwargs.pop(key, None)
    kwargs.setdefault("output_stride", 16)
    model = ByobNet(SHAPES_RESNET_CFG, **kwargs)
    # open_clip reads ``default_cfg`` (the pool size); timm's builder would set it for registered weights.
    cfg: dict[str, Any] = {"architecture": "shapes_resnet_os16", "pool_size": None}
    setattr(model, "pretrained_cfg", cfg)  # noqa: B010 (nn.Module's __setattr__ typing)
    setattr(model, "default_cfg", cfg)  # noqa: B010
    return model


# timm registers a model under its function's name (and adds the name to this module's __all__).
for _fn in (regnetx_002_os16, shapes_resnet_os16):
    if _fn.__name__ not in timm.list_models(_fn.__name__):
        register_model(_fn)
