"""OpenCLIPBackbone on timm trunks with a dilated last stage (segblocks' registered ones): stride-16 dense map."""

from __future__ import annotations

import open_clip
import pytest
import timm
import torch
import torch.nn.functional as F

from segblocks.backbones import OpenCLIPBackbone, register_clip_config
from segblocks.backbones.timm_trunks import OS16_TRUNKS
from tests.backbones.conftest import TEXT_CFG, normalize

TRUNKS = ("regnetx_002_os16", "shapes_resnet_os16", "shapes_plain_os16")


def _config(trunk: str) -> dict:
    vision = {"timm_model_name": trunk, "timm_model_pretrained": False, "timm_pool": "avg"}
    return {
        "embed_dim": 24,
        "vision_cfg": {**vision, "timm_proj": "linear", "image_size": 64},
        "text_cfg": TEXT_CFG,
    }


@pytest.fixture(scope="module", params=TRUNKS)
def dilated_pair(request: pytest.FixtureRequest) -> tuple[torch.nn.Module, OpenCLIPBackbone]:
    name = f"segblocks-test-{request.param}"
    register_clip_config(name, _config(request.param), overwrite=True)
    torch.manual_seed(0)
    ref = open_clip.create_model(name, pretrained=None).eval()
    bb = OpenCLIPBackbone(name)
    bb.clip.load_state_dict(ref.state_dict())
    return ref, bb


def test_registered_trunks_have_a_dilated_last_stage() -> None:
    trunk = timm.create_model("regnetx_002_os16", pretrained=False)
    plain = timm.create_model(OS16_TRUNKS["regnetx_002_os16"], pretrained=False)
    assert [f["reduction"] for f in trunk.feature_info] == [2, 4, 8, 16, 16]
    assert sum(p.numel() for p in trunk.parameters()) == sum(p.numel() for p in plain.parameters())
    resnet = timm.create_model("shapes_resnet_os16", pretrained=False, num_classes=0)
    assert [f["reduction"] for f in resnet.feature_info] == [2, 4, 8, 16, 16]
    assert [f["num_chs"] for f in resnet.feature_info] == [32, 64, 128, 192, 256]
    with pytest.raises(ValueError, match="has no timm weights"):
        timm.create_model("shapes_resnet_os16", pretrained=True)
    plain_cnn = timm.create_model("shapes_plain_os16", pretrained=False, num_classes=5)
    assert [f["reduction"] for f in plain_cnn.feature_info] == [1, 2, 4, 8, 16, 16]
    assert plain_cnn(torch.rand(2, 3, 32, 32)).shape == (2, 5)
    with pytest.raises(ValueError, match="has no timm weights"):
        timm.create_model("shapes_plain_os16", pretrained=True)


def test_plain_trunk_errors() -> None:
    from segblocks.backbones.timm_trunks import ShapesPlainCNN

    with pytest.raises(ValueError, match="widths: expected 6 positive"):
        ShapesPlainCNN((8, 8))
    with pytest.raises(ValueError, match="global_pool: expected"):
        ShapesPlainCNN(num_classes=0, global_pool="max")
    with pytest.raises(ValueError, match="output_fmt: only 'NCHW'"):
        ShapesPlainCNN(num_classes=0).forward_intermediates(torch.rand(1, 3, 32, 32), [0], output_fmt="NHWC")


def test_dilated_trunk_gives_a_stride_16_dense_map_with_open_clip_parity(dilated_pair: tuple) -> None:
    ref, bb = dilated_pair
    images = torch.rand(2, 3, 64, 96)
    out = bb(images)
    shapes = bb.output_shape()
    assert [shapes[f"res{i}"].stride for i in range(2, 6)] == [4, 8, 16, 16]
    assert bb.dense_stride == shapes["clip_dense"].stride == 16 and bb.size_divisibility == 32
    for name, spec in shapes.items():
        assert out[name].shape[1:] == (spec.channels, 64 // spec.stride, 96 // spec.stride)
    x = normalize(images, tuple(bb.pixel_mean.flatten().tolist()), tuple(bb.pixel_std.flatten().tolist()))
    with torch.no_grad():
        expected_global = ref.encode_image(x)
        final = ref.visual.trunk.forward_features(x)
        # average pool + linear head: the head applied to every location, then averaged, is global
        expected_dense = ref.visual.head(final.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(out["clip_global"], expected_global, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["clip_dense"], expected_dense, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["res5"], final, atol=1e-6, rtol=0)
    full = torch.ones(2, 1, 64, 96, dtype=torch.bool)
    global_unit = F.normalize(expected_global, dim=-1)
    torch.testing.assert_close(bb.pool_masks(out["clip_dense"], full)[:, 0], global_unit, atol=1e-5, rtol=0)
    torch.testing.assert_close(bb.embed_masks(out["res5"], full)[:, 0], global_unit, atol=1e-5, rtol=0)
