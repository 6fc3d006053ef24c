"""Registries: open_clip configs, SAM configs and bundled weights loaded by name (the shapes-world path)."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from segblocks.backbones import (
    OpenCLIPBackbone,
    SAMBackbone,
    SAMEncoderConfig,
    find_weights,
    get_sam_config,
    list_sam_models,
    list_weights,
    register_clip_config,
    register_sam_config,
    register_weights,
    registry,
)
from tests.backbones.conftest import CONVNEXT, CONVNEXT_CFG, VIT, VIT_CFG, clip_checkpoint, normalize


def test_registered_clip_config_is_an_open_clip_model() -> None:
    register_clip_config("segblocks-test-registered", VIT_CFG, overwrite=True)
    assert "segblocks-test-registered" in open_clip.list_models()
    assert open_clip.get_model_config("segblocks-test-registered") == VIT_CFG
    with pytest.raises(ValueError, match="already has a model config"):
        register_clip_config("segblocks-test-registered", VIT_CFG)
    with pytest.raises(ValueError, match="needs keys"):
        register_clip_config("segblocks-test-bad", {"embed_dim": 8})
    with pytest.raises(ValueError, match="name: expected letters"):
        register_clip_config("bad/name", VIT_CFG)


def test_registered_clip_weights_load_by_tag(tmp_path: Path) -> None:
    ref, _ = clip_checkpoint(tmp_path, VIT, seed=3)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    register_weights(VIT, "test-tag", path, overwrite=True)
    assert find_weights(VIT, "test-tag") == path and (VIT, "test-tag") in list_weights(VIT)
    bb = OpenCLIPBackbone(VIT, pretrained="test-tag")
    images = torch.rand(1, 3, 64, 64)
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    with torch.no_grad():
        expected = ref.encode_image(normalize(images, mean, std))
    assert (bb(images)["clip_global"] - expected).abs().max() <= 1e-5


def test_register_weights_errors(tmp_path: Path) -> None:
    pt = tmp_path / "w.pt"
    torch.save({"a": torch.zeros(1)}, pt)
    with pytest.raises(ValueError, match=r"must be a \.safetensors file"):
        register_weights(VIT, "x", pt)
    with pytest.raises(ValueError, match="no such file"):
        register_weights(VIT, "x", tmp_path / "missing.safetensors")
    st = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(1)}, str(st))
    register_weights(VIT, "dup", st, overwrite=True)
    with pytest.raises(ValueError, match="already registered"):
        register_weights(VIT, "dup", st)


def test_sam_configs() -> None:
    assert {"vit_b", "vit_l", "vit_h", "vit_tiny"} <= set(list_sam_models())
    assert get_sam_config("vit_b").global_attn_indexes == (2, 5, 8, 11)
    with pytest.raises(ValueError, match="already registered"):
        register_sam_config("vit_b", get_sam_config("vit_l"))
    with pytest.raises(ValueError, match="unknown SAMEncoderConfig fields"):
        register_sam_config(
            "x", {"embed_dim": 8, "depth": 1, "num_heads": 1, "global_attn_indexes": [], "foo": 1}
        )
    with pytest.raises(ValueError, match="out of range for depth=2"):
        SAMEncoderConfig(embed_dim=8, depth=2, num_heads=2, global_attn_indexes=(5,))
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        SAMEncoderConfig(embed_dim=10, depth=2, num_heads=4, global_attn_indexes=())


def test_package_layout_for_bundled_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The layout the next issue ships: configs/{clip,sam}/*.json, weights/<name>/<tag>.safetensors."""
    clip_dir, sam_dir, weights_dir = tmp_path / "clip", tmp_path / "sam", tmp_path / "weights"
    for d in (clip_dir, sam_dir):
        d.mkdir()
    (clip_dir / "shapes-clip-test.json").write_text(json.dumps(CONVNEXT_CFG))
    tiny = get_sam_config("vit_tiny")
    (sam_dir / "shapes-sam-test.json").write_text(json.dumps(tiny.to_dict()))
    monkeypatch.setattr(registry, "CLIP_CONFIG_DIR", clip_dir)
    monkeypatch.setattr(registry, "SAM_CONFIG_DIR", sam_dir)
    monkeypatch.setattr(registry, "WEIGHTS_DIR", weights_dir)
    monkeypatch.setattr(registry, "_clip_configs_scanned", False)
    monkeypatch.setattr(registry, "_sam_configs_scanned", False)

    assert "shapes-sam-test" in list_sam_models()
    clip_ref, _ = clip_checkpoint(tmp_path, CONVNEXT, seed=4)  # same architecture
    sam = SAMBackbone("shapes-sam-test")  # random; its encoder weights are the "bundled" ones
    for name, state in [
        ("shapes-clip-test", clip_ref.state_dict()),
        ("shapes-sam-test", {f"image_encoder.{k}": v for k, v in sam.image_encoder.state_dict().items()}),
    ]:
        (weights_dir / name).mkdir(parents=True)
        save_file(
            {k: v.contiguous() for k, v in state.items()}, str(weights_dir / name / "shapes.safetensors")
        )
    assert ("shapes-clip-test", "shapes") in list_weights()

    clip = OpenCLIPBackbone("shapes-clip-test", pretrained="shapes")
    assert clip.load_report.ok
    for k, v in clip_ref.state_dict().items():
        assert torch.equal(clip.clip.state_dict()[k], v)
    loaded = SAMBackbone("shapes-sam-test", checkpoint="shapes")
    images = torch.rand(1, 3, 64, 64)
    assert torch.equal(loaded(images)["image_embedding"], sam(images)["image_embedding"])


def test_resolve_weights_tag_then_file_then_a_clear_error(tmp_path) -> None:
    from segblocks.backbones import resolve_weights
    from segblocks.backbones.registry import WEIGHTS_DIR

    bundled = WEIGHTS_DIR / "shapes-sam-tiny" / "shapes.safetensors"
    assert resolve_weights("shapes-sam-tiny", "shapes") == bundled
    assert resolve_weights("shapes-sam-tiny", bundled) == bundled  # a path works too
    with pytest.raises(ValueError, match=r"weights: 'nope' is neither a file nor a known tag .*'shapes'"):
        resolve_weights("shapes-sam-tiny", "nope", argument="weights")
    with pytest.raises(ValueError, match=r"checkpoint: .* is neither a file"):
        resolve_weights("shapes-sam-tiny", tmp_path / "missing.pth")
