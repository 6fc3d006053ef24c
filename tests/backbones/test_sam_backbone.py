"""SAMBackbone: exact parity with segment_anything on checkpoints the tests write, sizes, errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from segblocks.backbones import (
    SAMBackbone,
    build_sam_image_encoder,
    get_sam_config,
    register_sam_config,
    resize_sam_encoder_state_dict,
    sam_encoder_num_parameters,
)

TOL = 1e-5
TINY = get_sam_config("vit_tiny")


def tiny_sam(seed: int = 0) -> Sam:
    """A whole segment_anything ``Sam`` with the tiny encoder, randomly initialised (the reference)."""
    torch.manual_seed(seed)
    grid = TINY.img_size // TINY.patch_size
    dim = TINY.out_chans
    sam = Sam(
        image_encoder=build_sam_image_encoder(TINY),
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(grid, grid),
            input_image_size=(TINY.img_size, TINY.img_size),
            mask_in_chans=8,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
    )
    with torch.no_grad():  # rel-pos tables start at zero in segment_anything; make them matter
        for name, p in sam.image_encoder.named_parameters():
            if "rel_pos" in name:
                p.normal_(std=0.5)
    return sam.eval()


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sam, Path]:
    """A tiny SAM saved as the official checkpoints are: ``torch.save(sam.state_dict())``."""
    sam = tiny_sam()
    path = tmp_path_factory.mktemp("sam") / "sam_vit_tiny.pth"
    torch.save(sam.state_dict(), path)
    return sam, path


def sam_preprocess(images: torch.Tensor) -> torch.Tensor:
    """segment_anything's normalisation of 0-255 pixels (``Sam.preprocess`` without padding)."""
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    return (images * 255 - mean) / std


def test_official_checkpoint_parity(official: tuple[Sam, Path]) -> None:
    sam, path = official
    bb = SAMBackbone("vit_tiny", checkpoint=path)
    assert bb.load_report.ok
    images = torch.rand(2, 3, 128, 128)
    out = bb(images)
    with torch.no_grad():
        expected = sam.image_encoder(sam_preprocess(images))
    assert (out["image_embedding"] - expected).abs().max() <= TOL
    for name, spec in bb.output_shape().items():
        assert out[name].shape == (2, spec.channels, 128 // spec.stride, 128 // spec.stride)


def test_encoder_only_safetensors_parity(official: tuple[Sam, Path], tmp_path: Path) -> None:
    sam, _ = official
    path = tmp_path / "encoder.safetensors"
    save_file({k: v.contiguous() for k, v in sam.image_encoder.state_dict().items()}, str(path))
    bb = SAMBackbone("vit_tiny", checkpoint=path)
    images = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        expected = sam.image_encoder(sam_preprocess(images))
    assert (bb(images)["image_embedding"] - expected).abs().max() <= TOL


@pytest.mark.parametrize("size", [96, 192])
def test_other_sizes_equal_an_encoder_built_for_that_size(official: tuple[Sam, Path], size: int) -> None:
    sam, path = official
    bb = SAMBackbone("vit_tiny", checkpoint=path)
    native = sam.image_encoder.state_dict()
    resized = build_sam_image_encoder(TINY, img_size=size).eval()
    resized.load_state_dict(resize_sam_encoder_state_dict(native, TINY, size))
    images = torch.rand(1, 3, size, size)
    with torch.no_grad():
        expected = resized(sam_preprocess(images))
    got = bb(images)["image_embedding"]
    assert got.shape == (1, TINY.out_chans, size // 16, size // 16)
    assert (got - expected).abs().max() <= TOL


@settings(max_examples=4, deadline=None)
@given(h=st.integers(1, 5), w=st.integers(1, 5))
def test_any_multiple_of_32_gives_consistent_shapes(h: int, w: int) -> None:
    bb = _shared_tiny()
    out = bb(torch.rand(1, 3, 32 * h, 32 * w))
    for name, spec in bb.output_shape().items():
        assert out[name].shape == (1, spec.channels, 32 * h // spec.stride, 32 * w // spec.stride)
        assert torch.isfinite(out[name]).all()


_SHARED: dict[str, SAMBackbone] = {}


def _shared_tiny() -> SAMBackbone:
    if "bb" not in _SHARED:
        _SHARED["bb"] = SAMBackbone("vit_tiny", fpn_channels=16)
    return _SHARED["bb"]


def test_frozen_encoder_trainable_pyramid() -> None:
    bb = SAMBackbone("vit_tiny", fpn_channels=16)
    bb.train()
    assert not bb.image_encoder.training and bb.fpn.training
    assert not any(p.requires_grad for p in bb.image_encoder.parameters())
    out = bb(torch.rand(1, 3, 64, 64))
    sum(out[f"res{i}"].sum() for i in range(2, 6)).backward()
    assert all(p.grad is not None for p in bb.fpn.parameters())
    assert all(p.grad is None for p in bb.image_encoder.parameters())


def test_unfrozen_encoder_gets_gradients() -> None:
    bb = SAMBackbone("vit_tiny", frozen=False, fpn_channels=16)
    bb(torch.rand(1, 3, 64, 64))["res3"].sum().backward()
    assert all(p.grad is not None for p in bb.image_encoder.parameters())


# ------------------------------------------------------------------------------------------ errors
def test_mismatched_checkpoint_names_the_key(tmp_path: Path) -> None:
    register_sam_config("test-sam-wide", replace(TINY, embed_dim=48), overwrite=True)
    wide = build_sam_image_encoder(get_sam_config("test-sam-wide"))
    path = tmp_path / "wide.safetensors"
    save_file({f"image_encoder.{k}": v.contiguous() for k, v in wide.state_dict().items()}, str(path))
    with pytest.raises(
        ValueError, match=r"shape mismatch for .*patch_embed\.proj\.weight: checkpoint \(48, 3, 16, 16\)"
    ):
        SAMBackbone("vit_tiny", checkpoint=path)


def test_missing_and_unexpected_keys(official: tuple[Sam, Path], tmp_path: Path) -> None:
    sam, _ = official
    state = dict(sam.image_encoder.state_dict())
    del state["neck.0.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(
        ValueError, match=r"missing keys \[neck\.0\.weight\]; unexpected keys \[extra\.weight\]"
    ):
        SAMBackbone("vit_tiny", checkpoint=path)
    bb = SAMBackbone("vit_tiny", checkpoint=path, strict=False)
    assert bb.load_report.missing == ["neck.0.weight"] and bb.load_report.unexpected == ["extra.weight"]


def test_bad_inputs_and_names(tmp_path: Path) -> None:
    bb = _shared_tiny()
    with pytest.raises(ValueError, match="channels"):
        bb(torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match="size_divisibility=32, got 48x64; pad to 64x64"):
        bb(torch.rand(1, 3, 48, 64))
    with pytest.raises(ValueError, match="unknown SAM model 'vit_x'"):
        SAMBackbone("vit_x")
    with pytest.raises(ValueError, match="neither a file nor a known tag"):
        SAMBackbone("vit_tiny", checkpoint=tmp_path / "missing.pth")


# ------------------------------------------------------------------------------------------ sizes
@pytest.mark.parametrize(("name", "published"), [("vit_b", 89.7e6), ("vit_l", 308.3e6), ("vit_h", 637.0e6)])
def test_paper_scale_parameter_counts(name: str, published: float) -> None:
    assert abs(sam_encoder_num_parameters(name) - published) / published < 0.005
