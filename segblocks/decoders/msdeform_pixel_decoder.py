"""Mask2Former's pixel decoder: a deformable-attention encoder over res3..res5 plus an FPN to stride 4.

Paper scale: 3 levels (strides 8, 16, 32), 6 encoder layers, 8 heads, 4 points, FFN 1024, width
256, GroupNorm(32). The encoder runs under whatever autocast the caller set (bf16 projections,
float32 sampling accumulation, see :class:`MultiScaleDeformableAttention`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segblocks.backbones.simple_fpn import LayerNorm2d
from segblocks.decoders.fpn_pixel_decoder import conv_norm_relu
from segblocks.decoders.ms_deform_attention import MultiScaleDeformableAttention
from segblocks.decoders.pixel_decoder import PixelDecoder
from segblocks.decoders.pixel_decoder_output import PixelDecoderOutput, check_backbone_features
from segblocks.layers.attention import FFNLayer
from segblocks.layers.position_encoding import SinePositionEncoding
from segblocks.layers.random_fourier import RandomFourierPositionEncoding
from segblocks.structures import ShapeSpec

__all__ = [
    "INPUT_NORMS",
    "POSITION_ENCODINGS",
    "MSDeformAttnEncoder",
    "MSDeformAttnEncoderLayer",
    "MSDeformAttnPixelDecoder",
    "build_msdeform_pixel_decoder",
]

#: Input projections of the encoder levels: ``"group"`` (Mask2Former: bias-free 1x1 conv + GroupNorm)
#: or ``"layer"`` (released Uni-OVSeg: biased 1x1 conv + LayerNorm over channels).
INPUT_NORMS = ("group", "layer")
#: Position code of the encoder: ``"sine"`` (Mask2Former) or ``"fourier"`` (released Uni-OVSeg:
#: random-Fourier features of the pixel centres, SAM's).
POSITION_ENCODINGS = ("sine", "fourier")


class MSDeformAttnEncoderLayer(nn.Module):
    """Deformable self-attention over all levels, then an FFN; post-norm.

    Args:
        attention: the deformable attention.
        ffn: the feed-forward sub-layer (it holds its own norm).
    """

    def __init__(self, *, attention: MultiScaleDeformableAttention, ffn: FFNLayer) -> None:
        super().__init__()
        self.attention = attention
        self.norm = nn.LayerNorm(attention.dim)
        self.ffn = ffn

    def forward(
        self, src: Tensor, pos: Tensor, reference_points: Tensor, spatial_shapes: Tensor, level_start: Tensor
    ) -> Tensor:
        """Refine the flattened multi-level tokens.

        Args:
            src: ``[B, S, D]`` tokens of all levels.
            pos: ``[B, S, D]`` positional (+ level) embeddings.
            reference_points: ``[B, S, L, 2]`` normalised ``(x, y)`` of each token on every level.
            spatial_shapes: ``[L, 2]`` int64 ``(H, W)`` per level.
            level_start: ``[L]`` int64 offset of each level in ``S``.

        Returns:
            ``[B, S, D]``.
        """
        update = self.attention(src + pos, reference_points, src, spatial_shapes, level_start)
        return self.ffn(self.norm(src + update))


class MSDeformAttnEncoder(nn.Module):
    """A stack of :class:`MSDeformAttnEncoderLayer` over flattened feature levels.

    Args:
        layers: the encoder layers (Mask2Former: 6).
    """

    def __init__(self, *, layers: Sequence[MSDeformAttnEncoderLayer]) -> None:
        super().__init__()
        if len(layers) == 0:
            raise ValueError("layers: expected at least one encoder layer")
        self.layers = nn.ModuleList(layers)

    @staticmethod
    def reference_points(sizes: Sequence[tuple[int, int]], device: torch.device) -> Tensor:
        """Pixel centres of every level, normalised to ``[0, 1]``.

        Args:
            sizes: ``(H_l, W_l)`` of each level.
            device: where to create the points.

        Returns:
            ``[S, 2]`` ``(x, y)`` points, ``S = sum(H_l * W_l)``, levels in order.
        """
        points = []
        for h, w in sizes:
            ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
            xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            points.append(torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1))
        return torch.cat(points)

    def forward(self, src: Tensor, pos: Tensor, sizes: Sequence[tuple[int, int]]) -> Tensor:
        """Encode ``src [B, S, D]`` (flattened levels of ``sizes``) with positional encoding ``pos``.

        Returns:
            ``[B, S, D]``.
        """
        b, s, _ = src.shape
        num_levels = len(sizes)
        spatial_shapes = torch.tensor(sizes, dtype=torch.int64)  # on the CPU: no device sync in the op
        areas = spatial_shapes.prod(dim=1)
        level_start = torch.cumsum(areas, 0) - areas
        ref = self.reference_points(sizes, src.device)  # [S, 2]
        ref = ref[None, :, None, :].expand(b, s, num_levels, 2)
        for layer in self.layers:
            src = layer(src, pos, ref, spatial_shapes, level_start)
        return src


class MSDeformAttnPixelDecoder(PixelDecoder):
    """Deformable-attention encoder on the coarse levels + FPN to stride-4 mask features.

    Args:
        input_shape: ``{name: ShapeSpec}`` of the backbone maps (e.g. ``res2..res5``).
        encoder: the deformable encoder (its attention must have ``len(transformer_in_features)``
            levels and width ``conv_dim``).
        transformer_in_features: the maps the encoder reads (Mask2Former: ``res3, res4, res5``).
        conv_dim: width of the encoder and the FPN.
        mask_dim: channels of the mask features.
        num_feature_levels: how many encoder outputs (coarsest first) feed the mask decoder.
        norm_groups: GroupNorm groups.
        input_norm: the encoder levels' input projections, one of :data:`INPUT_NORMS`.
        position_encoding: the encoder's position code, one of :data:`POSITION_ENCODINGS`.

    Raises:
        ValueError: on unknown feature names, a level count or encoder width that does not fit, or an
            unknown ``input_norm`` / ``position_encoding``.
    """

    def __init__(
        self,
        *,
        input_shape: Mapping[str, ShapeSpec],
        encoder: MSDeformAttnEncoder,
        transformer_in_features: Sequence[str] = ("res3", "res4", "res5"),
        conv_dim: int = 256,
        mask_dim: int = 256,
        num_feature_levels: int = 3,
        norm_groups: int = 32,
        input_norm: str = "group",
        position_encoding: str = "sine",
    ) -> None:
        super().__init__()
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm: expected one of {INPUT_NORMS}, got {input_norm!r}")
        if position_encoding not in POSITION_ENCODINGS:
            raise ValueError(
                f"position_encoding: expected one of {POSITION_ENCODINGS}, got {position_encoding!r}"
            )
        missing = [n for n in transformer_in_features if n not in input_shape]
        if missing or len(transformer_in_features) == 0:
            raise ValueError(
                f"transformer_in_features: {list(transformer_in_features)} must be non-empty names of "
                f"input_shape {sorted(input_shape)}"
            )
        if not 1 <= num_feature_levels <= len(transformer_in_features):
            raise ValueError(
                f"num_feature_levels: expected 1..{len(transformer_in_features)}, got {num_feature_levels}"
            )
        first = encoder.layers[0]
        assert isinstance(first, MSDeformAttnEncoderLayer)
        attn = first.attention
        if attn.num_levels != len(transformer_in_features) or attn.dim != conv_dim:
            raise ValueError(
                f"encoder: expected attention over {len(transformer_in_features)} levels of width {conv_dim}, "
                f"got {attn.num_levels} levels of width {attn.dim}"
            )
        self.input_shape = dict(input_shape)
        # coarsest first
        self.transformer_in_features = sorted(transformer_in_features, key=lambda k: -input_shape[k].stride)
        min_stride = min(input_shape[n].stride for n in transformer_in_features)
        # finer maps, coarsest first, go through the FPN
        self.fpn_in_features = sorted(
            (n for n in input_shape if input_shape[n].stride < min_stride),
            key=lambda k: -input_shape[k].stride,
        )
        self.conv_dim = conv_dim
        self.mask_dim = mask_dim
        self.num_feature_levels = num_feature_levels
        self.input_proj = nn.ModuleList(
            conv_norm_relu(input_shape[n].channels, conv_dim, 1, groups=norm_groups, relu=False)
            if input_norm == "group"
            else nn.Sequential(nn.Conv2d(input_shape[n].channels, conv_dim, 1), LayerNorm2d(conv_dim))
            for n in self.transformer_in_features
        )
        for proj in self.input_proj:
            assert isinstance(proj, nn.Sequential) and isinstance(proj[0], nn.Conv2d)
            nn.init.xavier_uniform_(proj[0].weight)
            if proj[0].bias is not None:
                nn.init.zeros_(proj[0].bias)
        self.level_embed = nn.Parameter(torch.empty(len(self.transformer_in_features), conv_dim))
        nn.init.normal_(self.level_embed)
        self.position_encoding: nn.Module = (
            SinePositionEncoding(dim=conv_dim)
            if position_encoding == "sine"
            else RandomFourierPositionEncoding(dim=conv_dim)
        )
        self.encoder = encoder
        self.lateral = nn.ModuleList(
            conv_norm_relu(input_shape[n].channels, conv_dim, 1, groups=norm_groups, relu=False)
            for n in self.fpn_in_features
        )
        self.output = nn.ModuleList(
            conv_norm_relu(conv_dim, conv_dim, 3, groups=norm_groups) for _ in self.fpn_in_features
        )
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, kernel_size=1)
        nn.init.xavier_uniform_(self.mask_features.weight)
        if self.mask_features.bias is not None:
            nn.init.zeros_(self.mask_features.bias)

    @property
    def mask_stride(self) -> int:
        """Stride of the mask features (that of the finest input map)."""
        return min(s.stride for s in self.input_shape.values())

    def forward(self, features: Mapping[str, Tensor]) -> PixelDecoderOutput:
        """Encode the coarse levels and build the stride-4 mask features.

        Args:
            features: backbone maps ``{name: [B, C, H_s, W_s]}`` with the names of ``input_shape``.

        Returns:
            :class:`PixelDecoderOutput` (multi-scale features coarsest first).

        Raises:
            ValueError: on a missing map or a channel mismatch.
        """
        check_backbone_features(
            features, self.input_shape, self.transformer_in_features + self.fpn_in_features
        )
        srcs, pos, sizes = [], [], []
        for level, name in enumerate(self.transformer_in_features):
            x = self.input_proj[level](features[name])
            sizes.append((int(x.shape[-2]), int(x.shape[-1])))
            srcs.append(x.flatten(2).transpose(1, 2))
            p = self.position_encoding(x).flatten(2).transpose(1, 2)
            pos.append(p + self.level_embed[level].to(p.dtype))
        memory = self.encoder(torch.cat(srcs, dim=1), torch.cat(pos, dim=1).to(srcs[0].dtype), sizes)
        b = memory.shape[0]
        outputs: list[Tensor] = []
        for chunk, (h, w) in zip(memory.split([h * w for h, w in sizes], dim=1), sizes):
            outputs.append(chunk.transpose(1, 2).reshape(b, self.conv_dim, h, w))
        y = outputs[-1]
        for i, name in enumerate(self.fpn_in_features):
            x = features[name]
            lateral = self.lateral[i](x)
            y = lateral + F.interpolate(
                y.to(lateral.dtype), size=x.shape[-2:], mode="bilinear", align_corners=False
            )
            y = self.output[i](y)
        return PixelDecoderOutput(
            mask_features=self.mask_features(y), multi_scale_features=outputs[: self.num_feature_levels]
        )


def build_msdeform_pixel_decoder(
    input_shape: Mapping[str, ShapeSpec],
    *,
    transformer_in_features: Sequence[str] = ("res3", "res4", "res5"),
    conv_dim: int = 256,
    mask_dim: int = 256,
    num_layers: int = 6,
    num_heads: int = 8,
    num_points: int = 4,
    ffn_dim: int = 1024,
    norm_groups: int = 32,
    backend: str = "auto",
    input_norm: str = "group",
    position_encoding: str = "sine",
) -> MSDeformAttnPixelDecoder:
    """Build Mask2Former's pixel decoder (defaults: paper scale).

    Args:
        input_shape: ``{name: ShapeSpec}`` of the backbone maps.
        transformer_in_features: maps read by the deformable encoder.
        conv_dim: encoder/FPN width.
        mask_dim: mask-feature channels.
        num_layers: encoder layers.
        num_heads: deformable-attention heads.
        num_points: sampling points per head and level.
        ffn_dim: encoder FFN hidden width.
        norm_groups: GroupNorm groups.
        backend: backend of :func:`segblocks.ops.ms_deform_attn`.
        input_norm: input projections of the encoder levels (:data:`INPUT_NORMS`).
        position_encoding: position code of the encoder (:data:`POSITION_ENCODINGS`).

    Returns:
        A :class:`MSDeformAttnPixelDecoder`.
    """
    levels = len(transformer_in_features)
    layers = [
        MSDeformAttnEncoderLayer(
            attention=MultiScaleDeformableAttention(
                dim=conv_dim, num_levels=levels, num_heads=num_heads, num_points=num_points, backend=backend
            ),
            ffn=FFNLayer(dim=conv_dim, hidden_dim=ffn_dim),
        )
        for _ in range(num_layers)
    ]
    return MSDeformAttnPixelDecoder(
        input_shape=input_shape,
        encoder=MSDeformAttnEncoder(layers=layers),
        transformer_in_features=transformer_in_features,
        conv_dim=conv_dim,
        mask_dim=mask_dim,
        num_feature_levels=min(3, levels),
        norm_groups=norm_groups,
        input_norm=input_norm,
        position_encoding=position_encoding,
    )
