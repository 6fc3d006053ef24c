"""SAMBackbone: segment_anything's ViT image encoder plus a simple feature pyramid.

Input sizes other than the native one (1024 for the official models). The encoder is built at its
native ``img_size`` so official checkpoints load with exact shapes, and two things adapt at forward
time to the token grid of the actual input:

- the absolute position embedding (``pos_embed``, one vector per native token) is resized
  bicubically (``align_corners=False``) to the grid;
- the relative-position tables of the global-attention blocks (sized for the native grid) are
  resized linearly by segment_anything's own ``get_rel_pos`` whenever the grid differs; the windowed
  blocks always see ``window_size`` x ``window_size`` windows (inputs are padded to whole windows), so
  their tables never change.

This is equivalent to building the encoder for the target size and resizing ``pos_embed`` and the
global blocks' ``rel_pos`` tables in the state dict (:func:`resize_sam_encoder_state_dict`), which the
tests check exactly.
"""

from __future__ import annotations

import logging
import math
import os
from functools import partial

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT
from torch import Tensor, nn

from segblocks.backbones.base import Backbone, freeze
from segblocks.backbones.checkpoints import LoadReport, load_state_dict_file, load_weights
from segblocks.backbones.registry import SAMEncoderConfig, get_sam_config, resolve_weights
from segblocks.backbones.simple_fpn import SimpleFeaturePyramid
from segblocks.structures import ShapeSpec

__all__ = ["SAMBackbone", "build_sam_image_encoder", "resize_sam_encoder_state_dict"]

logger = logging.getLogger(__name__)

# SAM normalises 0-255 pixels with ImageNet statistics; these are the same numbers over 255.
SAM_PIXEL_MEAN = (123.675 / 255, 116.28 / 255, 103.53 / 255)
SAM_PIXEL_STD = (58.395 / 255, 57.12 / 255, 57.375 / 255)
_ENCODER_PREFIX = "image_encoder."


def build_sam_image_encoder(config: SAMEncoderConfig, *, img_size: int | None = None) -> ImageEncoderViT:
    """segment_anything's ``ImageEncoderViT`` with the hyper-parameters of ``build_sam``.

    Args:
        config: the encoder config.
        img_size: build for this input size instead of ``config.img_size``.

    Returns:
        The encoder (random init).
    """
    return ImageEncoderViT(
        img_size=img_size or config.img_size,
        patch_size=config.patch_size,
        embed_dim=config.embed_dim,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio,
        out_chans=config.out_chans,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_abs_pos=True,
        use_rel_pos=True,
        window_size=config.window_size,
        global_attn_indexes=config.global_attn_indexes,
    )


def _resize_pos_embed(pos_embed: Tensor, size: tuple[int, int]) -> Tensor:
    """``[1, h, w, C]`` -> ``[1, H, W, C]`` bicubic (``align_corners=False``)."""
    if tuple(pos_embed.shape[1:3]) == size:
        return pos_embed
    grid = F.interpolate(pos_embed.permute(0, 3, 1, 2), size=size, mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1)


def _resize_rel_pos(table: Tensor, length: int) -> Tensor:
    """``[L, C]`` -> ``[length, C]`` linear, as segment_anything's ``get_rel_pos`` does."""
    if table.shape[0] == length:
        return table
    resized = F.interpolate(table.t().unsqueeze(0), size=length, mode="linear")
    return resized[0].t()


def resize_sam_encoder_state_dict(
    state_dict: dict[str, Tensor], config: SAMEncoderConfig, img_size: int
) -> dict[str, Tensor]:
    """Adapt an encoder state dict to an encoder built with ``img_size`` (the load-time alternative).

    Resizes ``pos_embed`` (bicubic) and the ``rel_pos_h``/``rel_pos_w`` tables of the global blocks
    (linear) to the token grid of ``img_size``.

    Args:
        state_dict: encoder keys (no ``image_encoder.`` prefix) for an encoder built from ``config``.
        config: the config the state dict was trained with.
        img_size: the target input size, a multiple of ``config.patch_size``.

    Returns:
        A new state dict for ``build_sam_image_encoder(config, img_size=img_size)``.

    Raises:
        ValueError: if ``img_size`` is not a multiple of the patch size.
    """
    if img_size <= 0 or img_size % config.patch_size:
        raise ValueError(f"img_size: expected a positive multiple of {config.patch_size}, got {img_size}")
    grid = img_size // config.patch_size
    out = dict(state_dict)
    out["pos_embed"] = _resize_pos_embed(state_dict["pos_embed"], (grid, grid))
    for i in config.global_attn_indexes:
        for axis in ("h", "w"):
            key = f"blocks.{i}.attn.rel_pos_{axis}"
            out[key] = _resize_rel_pos(state_dict[key], 2 * grid - 1)
    return out


def _encoder_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """The image-encoder part of a whole-``Sam`` checkpoint, or an encoder-only one as it is."""
    if any(k.startswith(_ENCODER_PREFIX) for k in state_dict):
        return {k[len(_ENCODER_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(_ENCODER_PREFIX)}
    return state_dict


class SAMBackbone(Backbone):
    """segment_anything's ViT image encoder (frozen by default) and a simple FPN to ``res2..res5``.

    Args:
        model_name: ``"vit_b"``, ``"vit_l"``, ``"vit_h"``, ``"vit_tiny"`` (tests) or a name registered
            with :func:`segblocks.backbones.register_sam_config`.
        checkpoint: ``None`` (random init), an official SAM checkpoint (the whole ``Sam`` state dict,
            e.g. ``sam_vit_b_01ec64.pth``), an image-encoder-only state dict, either as a PyTorch file
            (read with ``weights_only=True``) or ``.safetensors``, or a tag registered or bundled with
            segblocks for ``model_name`` (e.g. ``"shapes"``).
        frozen: freeze the encoder (eval mode, no gradients); the FPN stays trainable.
        fpn_channels: channels of ``res2..res5``.
        strict: raise on missing/unexpected encoder keys (otherwise warn and load what matches).

    Example (needs the official checkpoint file, so it is not run by the tests; ``images`` is
    ``[B, 3, H, W]`` in ``[0, 1]`` with H and W multiples of 32)::

        sam = SAMBackbone("vit_b", checkpoint="sam_vit_b_01ec64.pth")
        feats = sam(images)
        feats["image_embedding"].shape    # [B, 256, H / 16, W / 16]
    """

    def __init__(
        self,
        model_name: str,
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        frozen: bool = True,
        fpn_channels: int = 256,
        strict: bool = True,
    ) -> None:
        super().__init__(pixel_mean=SAM_PIXEL_MEAN, pixel_std=SAM_PIXEL_STD)
        if not isinstance(model_name, str):
            raise TypeError(f"model_name: expected a string, got {type(model_name).__name__}")
        self.model_name = model_name
        self.config = get_sam_config(model_name)
        self.image_encoder = build_sam_image_encoder(self.config)
        self.load_report = self._load(checkpoint, strict)
        self.frozen = frozen
        if frozen:
            freeze(self.image_encoder)
        self.fpn = SimpleFeaturePyramid(
            in_channels=self.config.out_chans, in_stride=self.config.patch_size, out_channels=fpn_channels
        )
        self._size_divisibility = math.lcm(32, self.config.patch_size)

    def _load(self, checkpoint: str | os.PathLike[str] | None, strict: bool) -> LoadReport:
        if checkpoint is None:
            return LoadReport(source="random init")
        if not isinstance(checkpoint, str | os.PathLike):
            raise TypeError(f"checkpoint: expected a path, a tag or None, got {type(checkpoint).__name__}")
        path = resolve_weights(self.model_name, checkpoint)
        state_dict = _encoder_state_dict(load_state_dict_file(path))
        return load_weights(self.image_encoder, state_dict, source=str(path), strict=strict)

    def train(self, mode: bool = True) -> SAMBackbone:
        """Set train/eval mode; a frozen encoder stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.image_encoder.eval()
        return self

    def output_shape(self) -> dict[str, ShapeSpec]:
        """``res2..res5`` (``fpn_channels``) and ``image_embedding`` (``out_chans``, the patch stride)."""
        shapes = {f"res{i + 2}": ShapeSpec(self.fpn.out_channels, s) for i, s in enumerate((4, 8, 16, 32))}
        shapes["image_embedding"] = ShapeSpec(self.config.out_chans, self.config.patch_size)
        return shapes

    def embed(self, images: Tensor) -> Tensor:
        """SAM's image embedding (the encoder's neck output) for normalised images of any valid size.

        Args:
            images: ``[B, 3, H, W]`` already normalised, ``H``, ``W`` multiples of the patch size.

        Returns:
            ``[B, out_chans, H / p, W / p]``.
        """
        enc = self.image_encoder
        x = enc.patch_embed(images)
        if enc.pos_embed is not None:
            x = x + _resize_pos_embed(enc.pos_embed, (x.shape[1], x.shape[2])).to(x.dtype)
        for block in enc.blocks:
            x = block(x)
        return enc.neck(x.permute(0, 3, 1, 2))

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """The image embedding and the pyramid built on it.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``; ``H``, ``W`` multiples of ``size_divisibility``.

        Returns:
            ``res2..res5``: ``[B, fpn_channels, H / s, W / s]`` for ``s`` = 4, 8, 16, 32;
            ``image_embedding``: ``[B, out_chans, H / 16, W / 16]`` (what SAM's mask decoder reads).

        Raises:
            ValueError, TypeError: on bad ``images`` (see :meth:`Backbone.check_images`).
        """
        images = self.check_images(images)
        embedding = self.embed(self.normalize(images))
        out = self.fpn(embedding)
        out["image_embedding"] = embedding
        return out


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (works on the meta device)."""
    return sum(p.numel() for p in module.parameters())


def sam_encoder_num_parameters(model_name: str) -> int:
    """Parameters of a SAM image encoder, counted on the meta device (no memory, no weights).

    Args:
        model_name: ``"vit_b"``, ``"vit_l"``, ``"vit_h"``, ``"vit_tiny"`` or a registered name.
    """
    with torch.device("meta"):
        encoder = build_sam_image_encoder(get_sam_config(model_name))
    return count_parameters(encoder)
