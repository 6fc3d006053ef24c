"""Loading the released stage-1 checkpoint layout: a checkpoint this test writes in that layout."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from segblocks.structures import Prompts
from segblocks.zoo import build_uni_ovseg
from segblocks.zoo.uni_ovseg.model import UniOVSeg
from segblocks.zoo.uni_ovseg.official import load_official_stage1, official_to_segblocks

D, L, ENC, FFN, ENC_FFN = 64, 2, 1, 256, 128


def mlp(prefix: str, out: int, s: dict[str, torch.Tensor]) -> None:
    for i, (o, i_) in enumerate(((D, D), (D, D), (out, D))):
        s[f"{prefix}.layers.{i}.weight"] = torch.randn(o, i_)
        s[f"{prefix}.layers.{i}.bias"] = torch.randn(o)


def mha(prefix: str, s: dict[str, torch.Tensor]) -> None:
    s[f"{prefix}.in_proj_weight"] = torch.randn(3 * D, D)
    s[f"{prefix}.in_proj_bias"] = torch.randn(3 * D)
    s[f"{prefix}.out_proj.weight"] = torch.randn(D, D)
    s[f"{prefix}.out_proj.bias"] = torch.randn(D)


def norm(prefix: str, s: dict[str, torch.Tensor], c: int = D) -> None:
    s[f"{prefix}.weight"] = torch.randn(c)
    s[f"{prefix}.bias"] = torch.randn(c)


def channels(model: UniOVSeg) -> list[int]:
    """Input channels of the pixel decoder's encoder levels, in the released order (coarsest first)."""
    pd = model.pixel_decoder
    return [pd.input_shape[n].channels for n in pd.transformer_in_features]  # type: ignore[union-attr,index]


def official_checkpoint(clip_state: dict[str, torch.Tensor], channels: list[int]) -> dict[str, torch.Tensor]:
    """The released model's key names (detectron2 ``UniOVSeg_S1``), random values."""
    torch.manual_seed(1)
    s: dict[str, torch.Tensor] = {f"backbone.clip_model.{k}": v.clone() for k, v in clip_state.items()}
    p = "sem_seg_head.predictor."
    s[p + "pe_layer.positional_encoding_gaussian_matrix"] = torch.randn(2, D // 2)
    for i in range(L):
        mha(f"{p}transformer_self_attention_layers.{i}.self_attn", s)
        norm(f"{p}transformer_self_attention_layers.{i}.norm", s)
        mha(f"{p}transformer_cross_attention_layers.{i}.multihead_attn", s)
        norm(f"{p}transformer_cross_attention_layers.{i}.norm", s)
        s[f"{p}transformer_ffn_layers.{i}.linear1.weight"] = torch.randn(FFN, D)
        s[f"{p}transformer_ffn_layers.{i}.linear1.bias"] = torch.randn(FFN)
        s[f"{p}transformer_ffn_layers.{i}.linear2.weight"] = torch.randn(D, FFN)
        s[f"{p}transformer_ffn_layers.{i}.linear2.bias"] = torch.randn(D)
        norm(f"{p}transformer_ffn_layers.{i}.norm", s)
    mha(p + "extra_self_attention_layer.self_attn", s)
    norm(p + "extra_self_attention_layer.norm", s)
    s[p + "feat_embed.weight"] = torch.randn(D, D, 1, 1)
    s[p + "feat_embed.bias"] = torch.randn(D)
    s[p + "prompt_encoder.pos_emb.positional_encoding_gaussian_matrix"] = torch.randn(2, D // 2)
    s[p + "prompt_encoder.corner_emb"] = torch.randn(1, 2, D)
    s[p + "prompt_encoder.point_emb"] = torch.randn(1, 1, D)
    s[p + "prompt_encoder.box_emb"] = torch.randn(1, 1, D)
    s[p + "prompt_encoder.attr_emb.weight"] = torch.randn(2, D)
    s[p + "prompt_encoder.mask_emb"] = torch.randn(1, 5, D)
    s[p + "level_embed.weight"] = torch.randn(3, D)
    norm(p + "decoder_norm", s)
    for j in range(5):
        mlp(f"{p}mask_embed.{j}", D, s)
        mlp(f"{p}iou_embed.{j}", 1, s)
    q = "sem_seg_head.pixel_decoder."
    s[q + "transformer.level_embed"] = torch.randn(3, D)
    for i in range(ENC):
        e = f"{q}transformer.encoder.layers.{i}."
        for name, shape in (
            ("sampling_offsets", (4 * 3 * 4 * 2, D)),
            ("attention_weights", (4 * 3 * 4, D)),
            ("value_proj", (D, D)),
            ("output_proj", (D, D)),
        ):
            s[e + f"self_attn.{name}.weight"] = torch.randn(*shape)
            s[e + f"self_attn.{name}.bias"] = torch.randn(shape[0])
        norm(e + "norm1", s)
        s[e + "linear1.weight"] = torch.randn(ENC_FFN, D)
        s[e + "linear1.bias"] = torch.randn(ENC_FFN)
        s[e + "linear2.weight"] = torch.randn(D, ENC_FFN)
        s[e + "linear2.bias"] = torch.randn(D)
        norm(e + "norm2", s)
    for i, c in enumerate(channels):  # coarsest first: biased conv + LayerNorm2d
        s[f"{q}input_proj.{i}.0.weight"] = torch.randn(D, c, 1, 1)
        s[f"{q}input_proj.{i}.0.bias"] = torch.randn(D)
        norm(f"{q}input_proj.{i}.1", s)
    s[q + "pe_layer.positional_encoding_gaussian_matrix"] = torch.randn(2, D // 2)
    s[q + "mask_features.weight"] = torch.randn(D, D, 1, 1)
    s[q + "mask_features.bias"] = torch.randn(D)
    s[q + "adapter_1.weight"] = torch.randn(D, 64, 1, 1)
    norm(q + "adapter_1.norm", s)
    s[q + "layer_1.weight"] = torch.randn(D, D, 3, 3)
    norm(q + "layer_1.norm", s)
    return s


def released_layout_model() -> UniOVSeg:
    """A small model with the released pixel decoder's input projections and position code."""
    return build_uni_ovseg(
        "tiny",
        hidden_dim=D,
        num_heads=4,
        dec_layers=L,
        enc_layers=ENC,
        ffn_dim=FFN,
        enc_ffn_dim=ENC_FFN,
        pixel_input_norm="layer",
        pixel_position_encoding="fourier",
    )


def test_official_layout_loads_into_the_right_places(tmp_path: Path) -> None:
    model = released_layout_model()
    clip_state = model.clip.clip.state_dict()
    state = official_checkpoint(clip_state, channels(model))
    path = tmp_path / "model_final.pth"
    torch.save({"model": state, "iteration": 110000}, path)

    report = load_official_stage1(model, path)  # strict: every released key has a place
    assert report.ok and len(report.loaded) == len(state) + 2 * 4 * L + 2 * 2  # q/k/v split of MHAs

    q = "sem_seg_head.pixel_decoder."
    pd = model.pixel_decoder
    assert torch.equal(pd.input_proj[1][0].bias, state[q + "input_proj.1.0.bias"])  # type: ignore[index]
    assert torch.equal(pd.input_proj[2][1].norm.weight, state[q + "input_proj.2.1.weight"])  # type: ignore[index]
    assert torch.equal(
        pd.position_encoding.positional_encoding_gaussian_matrix,
        state[q + "pe_layer.positional_encoding_gaussian_matrix"],
    )
    # they compute what the released modules compute: conv + LayerNorm2d (eps 1e-6), and the
    # random-Fourier code of pixel centres (2 * pos - 1) @ G, 2 pi, [sin, cos]
    x = torch.randn(2, 256, 3, 5)
    y = F.conv2d(x, state[q + "input_proj.0.0.weight"], state[q + "input_proj.0.0.bias"])
    u, v = y.mean(1, keepdim=True), (y - y.mean(1, keepdim=True)).pow(2).mean(1, keepdim=True)
    y = (y - u) / torch.sqrt(v + 1e-6)
    y = (
        state[q + "input_proj.0.1.weight"][:, None, None] * y
        + state[q + "input_proj.0.1.bias"][:, None, None]
    )
    torch.testing.assert_close(pd.input_proj[0](x), y, rtol=1e-4, atol=1e-4)  # type: ignore[index]
    ys, xs = torch.meshgrid((torch.arange(3) + 0.5) / 3, (torch.arange(5) + 0.5) / 5, indexing="ij")
    code = (2 * torch.stack([xs, ys], -1) - 1) @ state[q + "pe_layer.positional_encoding_gaussian_matrix"]
    code = torch.cat([torch.sin(2 * math.pi * code), torch.cos(2 * math.pi * code)], -1).permute(2, 0, 1)
    torch.testing.assert_close(pd.position_encoding(y)[0], code)

    p = "sem_seg_head.predictor."
    layer = model.mask_decoder.layers[1]
    w = state[p + "transformer_self_attention_layers.1.self_attn.in_proj_weight"]
    assert torch.equal(layer.self_attention.attn.k_proj.weight, w[D : 2 * D])
    b = state[p + "transformer_cross_attention_layers.0.multihead_attn.in_proj_bias"]
    assert torch.equal(model.mask_decoder.layers[0].cross_attention.attn.v_proj.bias, b[2 * D :])
    assert torch.equal(model.prompt_encoder.corner_emb, state[p + "prompt_encoder.corner_emb"][0])
    assert torch.equal(model.prompt_encoder.point_emb, state[p + "prompt_encoder.point_emb"][0, 0])
    assert torch.equal(model.prompt_encoder.mask_emb, state[p + "prompt_encoder.mask_emb"][0])
    assert torch.equal(model.iou_heads[3].mlp.layers[2].weight, state[p + "iou_embed.3.layers.2.weight"])
    assert torch.equal(
        model.mask_decoder.mask_head.mlps[4].layers[0].bias, state[p + "mask_embed.4.layers.0.bias"]
    )
    assert torch.equal(
        model.mask_decoder.position_encoding.positional_encoding_gaussian_matrix,
        state[p + "pe_layer.positional_encoding_gaussian_matrix"],
    )
    assert torch.equal(model.feat_embed.weight, state[p + "feat_embed.weight"])
    assert torch.equal(pd.lateral[0][0].weight, state["sem_seg_head.pixel_decoder.adapter_1.weight"])  # type: ignore[index]
    assert torch.equal(
        pd.encoder.layers[0].ffn.norm.bias,
        state["sem_seg_head.pixel_decoder.transformer.encoder.layers.0.norm2.bias"],  # type: ignore[union-attr,index]
    )
    # the loaded model runs
    model.eval()
    out = model(
        torch.rand(1, 3, 64, 64),
        [Prompts(points=torch.tensor([[[10.0, 12.0]]]), point_labels=torch.ones(1, 1, dtype=torch.int64))],
    )
    assert torch.isfinite(out.points.mask_logits).all()


def test_a_model_without_the_released_pixel_options_reports_their_13_keys(tmp_path: Path) -> None:
    model = build_uni_ovseg(  # the shared pixel decoder: GroupNorm projections, sine position code
        "tiny", hidden_dim=D, num_heads=4, dec_layers=L, enc_layers=ENC, ffn_dim=FFN, enc_ffn_dim=ENC_FFN
    )
    state = official_checkpoint(model.clip.clip.state_dict(), channels(model))
    before = model.pixel_decoder.input_proj[0][0].weight.detach().clone()  # type: ignore[index]
    with pytest.raises(ValueError, match="pixel_input_norm='layer'"):
        load_official_stage1(model, state)
    report = load_official_stage1(model, state, strict=False)
    assert len(report.incompatible) == 13 and not report.unexpected
    assert all(
        k.startswith(("pixel_decoder.input_proj", "pixel_decoder.position_encoding"))
        for k in report.incompatible
    )
    assert all(k.startswith("pixel_decoder.input_proj") for k in report.missing)
    assert torch.equal(model.pixel_decoder.input_proj[0][0].weight, before)  # type: ignore[index]


def test_unknown_keys_and_shape_mismatches_are_reported() -> None:
    converted, report = official_to_segblocks(
        {"sem_seg_head.predictor.no_such.weight": torch.zeros(1), "foo": torch.zeros(1)}
    )
    assert converted == {} and report.unexpected == ["sem_seg_head.predictor.no_such.weight", "foo"]
    model = build_uni_ovseg("tiny", dec_layers=1, enc_layers=1)
    bad = {"sem_seg_head.predictor.feat_embed.weight": torch.zeros(3, 3, 1, 1)}
    with pytest.raises(ValueError, match="shape mismatch"):
        load_official_stage1(model, bad, strict=False)
