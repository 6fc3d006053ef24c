"""Pixel decoders (deformable-attention encoder + FPN, plain FPN), deformable attention, sine encoding."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from segblocks.decoders import (
    FPNPixelDecoder,
    MultiScaleDeformableAttention,
    SinePositionEncoding,
    build_msdeform_pixel_decoder,
)
from segblocks.structures import ShapeSpec

SHAPES = {
    "res2": ShapeSpec(8, 4),
    "res3": ShapeSpec(16, 8),
    "res4": ShapeSpec(24, 16),
    "res5": ShapeSpec(32, 32),
}


def backbone_features(h: int = 64, w: int = 96, b: int = 2) -> dict[str, torch.Tensor]:
    return {k: torch.randn(b, s.channels, h // s.stride, w // s.stride) for k, s in SHAPES.items()}


def msdeform(**kw: object):
    torch.manual_seed(0)
    args = dict(conv_dim=32, mask_dim=24, num_layers=2, num_heads=4, num_points=2, ffn_dim=48, norm_groups=8)
    args.update(kw)
    return build_msdeform_pixel_decoder(SHAPES, **args)  # type: ignore[arg-type]


def test_msdeform_pixel_decoder_shapes_and_gradients() -> None:
    dec = msdeform()
    # offsets and weights start at zero weight (so the query-side inputs, e.g. the level embedding,
    # get exactly zero gradient at initialisation); move them off zero as one update would
    for layer in dec.encoder.layers:
        torch.nn.init.normal_(layer.attention.sampling_offsets.weight, std=0.01)
        torch.nn.init.normal_(layer.attention.attention_weights.weight, std=0.01)
    feats = backbone_features()
    out = dec(feats)
    assert out.mask_features.shape == (2, 24, 16, 24)
    assert [tuple(f.shape) for f in out.multi_scale_features] == [
        (2, 32, 2, 3),
        (2, 32, 4, 6),
        (2, 32, 8, 12),
    ]
    assert dec.mask_stride == 4
    (out.mask_features.square().mean() + sum(f.square().mean() for f in out.multi_scale_features)).backward()
    missing = [n for n, p in dec.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_msdeform_pixel_decoder_bf16_autocast_is_finite_and_close() -> None:
    dec = msdeform().eval()
    feats = backbone_features()
    ref = dec(feats).mask_features
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = dec(feats).mask_features
    assert low.dtype == torch.bfloat16
    assert torch.isfinite(low.float()).all()
    assert F.cosine_similarity(low.float().flatten(), ref.flatten(), dim=0) > 0.99


def test_deformable_attention_init_and_locality() -> None:
    torch.manual_seed(0)
    attn = MultiScaleDeformableAttention(dim=8, num_levels=1, num_heads=2, num_points=2, backend="reference")
    bias = attn.sampling_offsets.bias.view(2, 1, 2, 2)
    # head 0 looks right (+x) at distances 1 and 2, head 1 left
    assert bias[0, 0].tolist() == [[1.0, 0.0], [2.0, 0.0]]
    torch.testing.assert_close(bias[1, 0], torch.tensor([[-1.0, 0.0], [-2.0, 0.0]]), atol=1e-6, rtol=0)
    # a query far from a changed pixel is not affected by it (sampling is local)
    value = torch.randn(1, 64, 8)
    shapes, start = torch.tensor([[8, 8]]), torch.tensor([0])
    query = torch.randn(1, 2, 8)
    ref = torch.tensor([[[[0.1, 0.1]], [[0.9, 0.9]]]])
    a = attn(query, ref, value, shapes, start)
    value2 = value.clone()
    value2[0, 7 * 8 + 7] += 10.0  # bottom-right pixel
    b = attn(query, ref, value2, shapes, start)
    torch.testing.assert_close(a[:, 0], b[:, 0])
    assert not torch.allclose(a[:, 1], b[:, 1])


def test_fpn_pixel_decoder() -> None:
    torch.manual_seed(0)
    dec = FPNPixelDecoder(input_shape=SHAPES, conv_dim=16, mask_dim=12, norm_groups=4)
    out = dec(backbone_features())
    assert out.mask_features.shape == (2, 12, 16, 24)
    assert [f.shape[-1] for f in out.multi_scale_features] == [3, 6, 12]
    out.mask_features.sum().backward()
    assert all(p.grad is not None for p in dec.parameters())


def test_sine_position_encoding() -> None:
    pe = SinePositionEncoding(dim=16)
    x = torch.zeros(3, 5, 6, 7)
    pos = pe(x)
    assert pos.shape == (3, 16, 6, 7)
    assert pos.abs().max() <= 1.0
    assert torch.equal(pos[0], pos[2])
    flat = pos[0].flatten(1).T  # every pixel has its own code
    assert torch.unique(flat, dim=0).shape[0] == 42
    # the code of the last pixel is that of position 2 pi (size-normalised)
    assert math.isclose(float(pos[0, 0, -1, 0]), math.sin(2 * math.pi), abs_tol=1e-4)


def test_msdeform_released_uni_ovseg_options() -> None:
    """Biased conv + LayerNorm2d projections and a random-Fourier code: runs, trains, defaults unchanged."""
    default = msdeform()
    names = {n for n, _ in default.named_parameters()}
    assert "input_proj.0.0.bias" not in names and "input_proj.0.1.weight" in names  # GroupNorm
    assert not list(default.position_encoding.buffers())  # the sine code holds no state
    dec = msdeform(input_norm="layer", position_encoding="fourier")
    names = {n for n, _ in dec.named_parameters()}
    assert {"input_proj.0.0.bias", "input_proj.0.1.norm.weight", "input_proj.2.1.norm.bias"} <= names
    assert dec.position_encoding.positional_encoding_gaussian_matrix.shape == (2, 16)
    feats = backbone_features()
    out = dec(feats)
    assert out.mask_features.shape == (2, 24, 16, 24) and torch.isfinite(out.mask_features).all()
    # the projection normalises each location over its channels (LayerNorm2d at initialisation)
    y = dec.input_proj[0](feats["res5"])
    torch.testing.assert_close(y.mean(1), torch.zeros_like(y.mean(1)), atol=1e-5, rtol=0)
    out.mask_features.square().mean().backward()
    assert dec.input_proj[0][0].bias.grad is not None and dec.input_proj[0][1].norm.weight.grad is not None
    with pytest.raises(ValueError, match="input_norm"):
        msdeform(input_norm="batch")
    with pytest.raises(ValueError, match="position_encoding"):
        msdeform(position_encoding="learned")


def test_errors() -> None:
    dec = msdeform()
    feats = backbone_features()
    with pytest.raises(ValueError, match="'res2'"):
        dec({k: v for k, v in feats.items() if k != "res2"})
    bad = dict(feats)
    bad["res4"] = torch.randn(2, 5, 4, 6)
    with pytest.raises(ValueError, match="expected 24 channels"):
        dec(bad)
    with pytest.raises(ValueError, match="transformer_in_features"):
        build_msdeform_pixel_decoder(SHAPES, transformer_in_features=("res6",), conv_dim=32, norm_groups=8)
    with pytest.raises(ValueError, match="norm_groups"):
        build_msdeform_pixel_decoder(SHAPES, conv_dim=30, norm_groups=8, num_heads=2)
    with pytest.raises(ValueError, match="multiple of 4"):
        SinePositionEncoding(dim=6)
    attn = MultiScaleDeformableAttention(dim=8, num_levels=2, num_heads=2, num_points=1)
    with pytest.raises(ValueError, match="reference_points"):
        attn(
            torch.randn(1, 3, 8),
            torch.rand(1, 3, 1, 2),
            torch.randn(1, 20, 8),
            torch.tensor([[4, 4], [2, 2]]),
            torch.tensor([0, 16]),
        )
