"""TimmBackbone: features equal timm's own, strict out_indices, channels/strides from feature_info."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from segblocks.backbones import TimmBackbone, timm_feature_levels
from tests.backbones.conftest import normalize


@pytest.mark.parametrize(
    ("name", "out_indices"), [("test_resnet", (1, 2, 3, 4)), ("test_convnext", (0, 2, 3))]
)
def test_features_equal_timm(name: str, out_indices: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    bb = TimmBackbone(name, out_indices=out_indices).eval()
    ref = timm.create_model(name, features_only=True, out_indices=out_indices).eval()
    ref.load_state_dict(bb.model.state_dict())
    images = torch.rand(2, 3, 64, 96)
    out = bb(images)
    mean, std = ref.pretrained_cfg["mean"], ref.pretrained_cfg["std"]
    with torch.no_grad():
        expected = ref(normalize(images, mean, std))
    assert list(out) == [f"res{r.bit_length() - 1}" for r in ref.feature_info.reduction()]
    for got, want in zip(out.values(), expected):
        assert torch.equal(got, want)
    for (name_, spec), c, r in zip(
        bb.output_shape().items(), ref.feature_info.channels(), ref.feature_info.reduction()
    ):
        assert (spec.channels, spec.stride) == (c, r)
        assert out[name_].shape == (2, c, 64 // r, 96 // r)


def test_default_levels_are_strides_4_to_32() -> None:
    bb = TimmBackbone("test_resnet")
    assert {k: v.stride for k, v in bb.output_shape().items()} == {
        "res2": 4,
        "res3": 8,
        "res4": 16,
        "res5": 32,
    }
    assert bb.out_indices == (1, 2, 3, 4)


def test_checkpoint_file_of_the_full_model(tmp_path: Path) -> None:
    torch.manual_seed(1)
    full = timm.create_model("test_convnext").eval()
    path = tmp_path / "convnext.safetensors"
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(path))
    bb = TimmBackbone("test_convnext", checkpoint=path).eval()
    assert bb.load_report.source == str(path)
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = full.forward_intermediates(
            normalize(images, full.pretrained_cfg["mean"], full.pretrained_cfg["std"]),
            intermediates_only=True,
        )
    for got, want in zip(bb(images).values(), expected):
        assert torch.allclose(got, want, atol=1e-6)


def test_checkpoint_that_does_not_fit(tmp_path: Path) -> None:
    full = timm.create_model("test_convnext")
    state = full.state_dict()
    state["stem.0.weight"] = torch.zeros(1, 3, 2, 2)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"does not fit 'test_convnext'.*stem\.0\.weight"):
        TimmBackbone("test_convnext", checkpoint=path)


def test_frozen() -> None:
    bb = TimmBackbone("test_resnet", frozen=True)
    bb.train()
    assert not bb.model.training and not any(p.requires_grad for p in bb.parameters())


@pytest.mark.parametrize(
    ("out_indices", "error", "match"),
    [
        ((1, 2, 7), ValueError, r"\[7\] out of range for 'test_resnet', which has 5 feature levels"),
        ((-1,), ValueError, "out of range"),
        ((3, 1), ValueError, "strictly increasing"),
        ((1, 1), ValueError, "strictly increasing"),
        ((), ValueError, "non-empty"),
        (2, ValueError, "non-empty sequence"),
        ((1.0, 2), TypeError, "expected ints"),
    ],
)
def test_out_indices_are_validated(out_indices: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        TimmBackbone("test_resnet", out_indices=out_indices)  # type: ignore[arg-type]


def test_equal_strides_are_refused() -> None:
    assert {lvl["reduction"] for lvl in timm_feature_levels("test_vit")} == {16}
    with pytest.raises(ValueError, match="distinct power-of-two strides"):
        TimmBackbone("test_vit", out_indices=(0, 1))


def test_unknown_model_and_bad_images() -> None:
    with pytest.raises(ValueError, match="unknown timm model 'resnet_18'; did you mean"):
        TimmBackbone("resnet_18")
    bb = TimmBackbone("test_resnet")
    with pytest.raises(ValueError, match="pad to 64x64"):
        bb(torch.rand(1, 3, 60, 64))
