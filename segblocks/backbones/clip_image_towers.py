"""Dense features out of open_clip's image towers: a timm CNN trunk's stages, a ViT's patch tokens.

:class:`~segblocks.backbones.OpenCLIPBackbone` reads its image tower through these functions. A
ConvNeXt (timm) tower gives its stage outputs and, by running the trunk head and the CLIP head on
every location of the last stage as a 1x1 image, a dense CLIP map (FC-CLIP). A ViT tower gives its
final patch tokens (a map for a feature pyramid), and ``ln_post`` and the projection applied to
every patch token; another input size resamples the positional embedding as open_clip does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.timm_model import TimmModel
from open_clip.transformer import VisionTransformer
from torch import Tensor, nn

__all__ = [
    "STRIDES",
    "CNNStages",
    "ViTOutputs",
    "cnn_features",
    "cnn_head_dim",
    "cnn_head_per_location",
    "cnn_stages",
    "vit_outputs",
    "vit_positional_embedding",
]

#: Strides of ``res2..res5``.
STRIDES = (4, 8, 16, 32)


@dataclass(frozen=True)
class CNNStages:
    """Which trunk stages are ``res2..res5``.

    Attributes:
        indices: the trunk's feature indices of ``res2..res5``.
        strides: their strides (4, 8, 16 and 32, or 16 for a dilated last stage).
        channels: their channels.
    """

    indices: list[int]
    strides: tuple[int, int, int, int]
    channels: list[int]


def cnn_stages(trunk: nn.Module, model_name: str) -> CNNStages:
    """Find ``res2..res5`` among a timm trunk's stages: the first at strides 4, 8, 16, and the last.

    Args:
        trunk: the tower's timm trunk (``feature_info`` and ``forward_intermediates`` needed).
        model_name: the CLIP model's name, for errors.

    Raises:
        ValueError: naming ``model_name`` when the trunk has no feature information or no stages at
            strides 4, 8, 16 and a last stage at stride 32 or (dilated) 16.
    """
    info = getattr(trunk, "feature_info", None)
    if info is None or not hasattr(trunk, "forward_intermediates"):
        raise ValueError(f"model_name: the timm trunk of {model_name!r} has no feature_info")
    reductions = [int(f["reduction"]) for f in info]
    # res2..res4 are the first stages at strides 4, 8, 16; res5 is the last stage, at stride 32,
    # or 16 for a trunk whose last stage is dilated (e.g. ``regnetx_002_os16``).
    missing = [s for s in STRIDES[:3] if s not in reductions]
    if missing or reductions[-1] not in (16, 32) or reductions.index(16) == len(reductions) - 1:
        raise ValueError(
            f"model_name: the trunk of {model_name!r} has feature strides {reductions}; "
            f"stages at strides 4, 8, 16 and a last stage at stride 32 or (dilated) 16 are needed"
        )
    indices = [reductions.index(s) for s in STRIDES[:3]] + [len(reductions) - 1]
    return CNNStages(
        indices=indices,
        strides=(STRIDES[0], STRIDES[1], STRIDES[2], reductions[-1]),
        channels=[int(info[i]["num_chs"]) for i in indices],
    )


def cnn_head_dim(visual: TimmModel, default: int) -> int:
    """Width of the CLIP embedding after a timm tower's head (its last linear layer, else ``default``).

    Args:
        visual: the timm image tower.
        default: the width when the head has no linear layer (the trunk's ``num_features``).
    """
    linears = [m for m in visual.head.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else default


def cnn_head_per_location(visual: TimmModel, final: Tensor) -> Tensor:
    """Run the trunk head (pool, norm) and the CLIP head on every location as a 1x1 image.

    Args:
        visual: the timm image tower.
        final: ``[B, C, h, w]`` the trunk's last stage.

    Returns:
        ``[B, D, h, w]`` CLIP embeddings per location (not normalised).
    """
    b, c, h, w = final.shape
    pixels = final.permute(0, 2, 3, 1).reshape(b * h * w, c, 1, 1)
    emb = visual.head(visual.trunk.forward_head(pixels))
    return emb.reshape(b, h, w, -1).permute(0, 3, 1, 2)


def cnn_features(visual: TimmModel, x: Tensor, stage_indices: list[int]) -> dict[str, Tensor]:
    """``res2..res5``, the global and the dense CLIP embeddings of a timm tower.

    Args:
        visual: the timm image tower.
        x: ``[B, 3, H, W]`` normalised pixels.
        stage_indices: :attr:`CNNStages.indices`.

    Returns:
        ``res2..res5`` ``[B, C_i, H / s, W / s]``, ``clip_global`` ``[B, D]``, ``clip_dense``
        ``[B, D, h, w]`` (the last stage's resolution).
    """
    final, stages = visual.trunk.forward_intermediates(x, indices=stage_indices, output_fmt="NCHW")
    out = {f"res{i + 2}": f for i, f in enumerate(stages)}
    out["clip_global"] = visual.head(visual.trunk.forward_head(final))
    out["clip_dense"] = cnn_head_per_location(visual, final)
    return out


def vit_positional_embedding(visual: VisionTransformer, h: int, w: int) -> Tensor:
    """The ViT's positional embedding for an ``h x w`` patch grid (class token first).

    Another grid than the trained one is resampled as open_clip does when it loads a checkpoint at
    another image size (bicubic, antialiased).

    Args:
        visual: the ViT image tower.
        h: patch rows.
        w: patch columns.

    Returns:
        ``[1 + h * w, W]``.
    """
    pos = visual.positional_embedding
    gh, gw = visual.grid_size
    if (h, w) == (gh, gw):
        return pos
    grid = pos[1:].reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    return torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(h * w, -1)], dim=0)


@dataclass
class ViTOutputs:
    """What a ViT tower gives a backbone.

    Attributes:
        grid: ``[B, W, h, w]`` the final patch tokens as a map (before ``ln_post``).
        clip_global: ``[B, D]`` the image embedding (open_clip's ``encode_image``, not normalised).
        clip_dense: ``[B, D, h, w]`` ``ln_post`` and the projection on every patch token.
    """

    grid: Tensor
    clip_global: Tensor
    clip_dense: Tensor


def vit_outputs(visual: VisionTransformer, x: Tensor) -> ViTOutputs:
    """Run a ViT tower (token or average pooling) and keep its patch tokens.

    Args:
        visual: the ViT image tower.
        x: ``[B, 3, H, W]`` normalised pixels, ``H``, ``W`` multiples of the patch size.

    Returns:
        :class:`ViTOutputs`.
    """
    tokens = visual.conv1(x)
    b, _, h, w = tokens.shape
    tokens = tokens.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(tokens.dtype).view(1, 1, -1).expand(b, -1, -1)
    tokens = torch.cat([cls, tokens], dim=1) + vit_positional_embedding(visual, h, w).to(tokens.dtype)
    tokens = visual.ln_pre(visual.patch_dropout(tokens))
    tokens = visual.transformer(tokens)
    if visual.final_ln_after_pool:
        pooled = tokens[:, 0] if visual.pool_type == "tok" else tokens[:, 1:].mean(dim=1)
        pooled = visual.ln_post(pooled)
        patches = visual.ln_post(tokens[:, 1:])
    else:
        normed = visual.ln_post(tokens)
        pooled = normed[:, 0] if visual.pool_type == "tok" else normed[:, 1:].mean(dim=1)
        patches = normed[:, 1:]
    dense = (patches @ visual.proj).transpose(1, 2).reshape(b, -1, h, w)
    grid = tokens[:, 1:].transpose(1, 2).reshape(b, -1, h, w)
    return ViTOutputs(grid=grid, clip_global=pooled @ visual.proj, clip_dense=dense)
