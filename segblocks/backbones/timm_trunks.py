"""timm trunks segblocks registers with timm, so that open_clip configs can name them.

open_clip builds a timm image tower from ``vision_cfg.timm_model_name`` alone (no architecture
keyword arguments), so trunks that need arguments are registered under their own timm names:

- ``regnetx_002_os16``: timm's ``regnetx_002`` (RegNetX-200MF) with ``output_stride=16``: the last
  stage keeps stride 16 (dilated convolutions), so the final map, and with it the CLIP dense map, is
  twice as fine (8x8 at 128 px instead of 4x4). Same parameters, about 1.3x the compute.
- ``shapes_resnet_os16``: a small ResNet of basic blocks (two 3x3 convolutions with batch norm and
  a shortcut) built with timm's ``ByobNet``: a stride-2 3x3 stem, then five stages of one block at
  widths 32 / 64 / 128 / 192 / 256 and strides 2 / 4 / 8 / 16 / 16 (the last dilated); 2.0 M
  parameters. The tower of the first tiny CLIP (``shapes-clip-tiny-resnet``); its stride-2 stem makes it learn the world's thing
  crops at about half the per-sample rate of a plain CNN (``bench/thing_crops_probe.py``).
- ``shapes_plain_os16``: :class:`ShapesPlainCNN`, a plain VGG-style CNN (two 3x3 conv-BN-ReLU a
  stage, the first stage at full resolution, max pooling between stages, the last stage dilated);
  2.4 M parameters; feature strides 1 / 2 / 4 / 8 / 16 / 16. The tower of the shipped ``shapes-clip-tiny``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import timm
from timm.models import register_model
from timm.models.byobnet import ByoBlockCfg, ByobNet, ByoModelCfg
from torch import Tensor, nn

__all__ = [
    "OS16_TRUNKS",
    "SHAPES_PLAIN_WIDTHS",
    "SHAPES_RESNET_CFG",
    "ShapesPlainCNN",
    "regnetx_002_os16",
    "shapes_plain_os16",
    "shapes_resnet_os16",
]

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


#: Stage widths of ``shapes_plain_os16`` at strides 1, 2, 4, 8, 16 and 16 (the last dilated).
SHAPES_PLAIN_WIDTHS: tuple[int, ...] = (16, 32, 64, 128, 256, 256)


class ShapesPlainCNN(nn.Module):
    """A plain VGG-style CNN with timm's trunk interface: two 3x3 conv-BN-ReLU per stage.

    The first stage runs at full resolution and each later stage starts with a 2x2 max pool, except
    the last, which keeps stride 16 with dilation 2. On 32-pixel crops of the shapes world's things
    this design learns the shapes about twice as fast per sample as the strided-stem ResNet
    ``shapes_resnet_os16`` (``bench/thing_crops_probe.py``; the tiny CLIP's card has the curves).

    Feature strides (``feature_info``): 1, 2, 4, 8, 16, 16. ``forward`` returns ``[B, num_classes]``
    logits, or ``[B, C]`` pooled features when ``num_classes`` is 0.

    Args:
        widths: the six stage widths.
        num_classes: classifier outputs (0: none, the pooled features).
        global_pool: ``"avg"`` or ``""`` (no pooling).
        in_chans: input channels.

    Raises:
        ValueError: on a ``widths`` that is not six positive ints, or an unknown ``global_pool``.
    """

    def __init__(
        self,
        widths: tuple[int, ...] = SHAPES_PLAIN_WIDTHS,
        *,
        num_classes: int = 1000,
        global_pool: str = "avg",
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        if len(widths) != 6 or min(widths) < 1:
            raise ValueError(f"widths: expected 6 positive stage widths, got {widths}")
        self.stages = nn.ModuleList()
        c_in, reduction = in_chans, 1
        self.feature_info: list[dict[str, Any]] = []
        for i, c in enumerate(widths):
            pool = 0 < i < len(widths) - 1
            dilation = 2 if i == len(widths) - 1 else 1
            layers: list[nn.Module] = [nn.MaxPool2d(2)] if pool else []
            for _ in range(2):
                layers += [
                    nn.Conv2d(c_in, c, 3, padding=dilation, dilation=dilation, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                ]
                c_in = c
            reduction *= 2 if pool else 1
            self.stages.append(nn.Sequential(*layers))
            self.feature_info.append({"num_chs": c, "reduction": reduction, "module": f"stages.{i}"})
        self.num_features = c_in
        self.global_pool = global_pool
        self.fc: nn.Module = nn.Identity()
        self.reset_classifier(num_classes, global_pool)
        cfg: dict[str, Any] = {"architecture": "shapes_plain_os16", "pool_size": None}
        self.pretrained_cfg = self.default_cfg = cfg

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier and optionally the pooling.

        Args:
            num_classes: classifier outputs (0: none).
            global_pool: ``"avg"``, ``""`` (no pooling) or None (unchanged).
        """
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool: expected 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_intermediates(
        self, x: Tensor, indices: Sequence[int], output_fmt: str = "NCHW"
    ) -> tuple[Tensor, list[Tensor]]:
        """The final map ``[B, C, H/16, W/16]`` and the outputs of the stages ``indices``.

        Args:
            x: ``[B, 3, H, W]`` images.
            indices: stage indices (0-5) whose outputs to return, in stage order.
            output_fmt: only ``"NCHW"``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt: only 'NCHW' is supported, got {output_fmt!r}")
        keep = set(indices)
        out = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in keep:
                out.append(x)
        return x, out

    def forward_features(self, x: Tensor) -> Tensor:
        """``[B, 3, H, W]`` -> ``[B, C, H/16, W/16]``.

        Args:
            x: the images.
        """
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool (when ``global_pool`` is ``avg``) and classify.

        Args:
            x: ``[B, C, h, w]`` features.
            pre_logits: return the pooled features ``[B, C]`` without the classifier.
        """
        if self.global_pool == "avg":
            x = x.mean(dim=(2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 3, H, W]`` -> logits ``[B, num_classes]`` (or pooled features).

        Args:
            x: the images.
        """
        return self.forward_head(self.forward_features(x))


def shapes_plain_os16(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """:class:`ShapesPlainCNN` at :data:`SHAPES_PLAIN_WIDTHS`.

    Args:
        pretrained: must be False (there are no timm weights; segblocks trains it in the tiny CLIP).
        **kwargs: ``num_classes``, ``global_pool``, ``in_chans`` (timm's own keys are ignored).

    Raises:
        ValueError: when ``pretrained`` is True.
    """
    if pretrained:
        raise ValueError("pretrained: shapes_plain_os16 has no timm weights (it is trained by segblocks)")
    allowed = {k: kwargs[k] for k in ("num_classes", "global_pool", "in_chans") if k in kwargs}
    return ShapesPlainCNN(**allowed)


# timm registers a model under its function's name (and adds the name to this module's __all__).
for _fn in (regnetx_002_os16, shapes_resnet_os16, shapes_plain_os16):
    if _fn.__name__ not in timm.list_models(_fn.__name__):
        register_model(_fn)
