"""OpenCLIPBackbone: exact parity with open_clip on checkpoints the tests write, text side, errors."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from segblocks.backbones import OpenCLIPBackbone
from segblocks.heads import region_logits
from tests.backbones.conftest import CONVNEXT, VIT, clip_checkpoint, normalize

TOL = 1e-5


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clip")


@pytest.fixture(scope="module")
def convnext_pair(ckpt_dir: Path) -> tuple[torch.nn.Module, OpenCLIPBackbone]:
    ref, path = clip_checkpoint(ckpt_dir, CONVNEXT, fmt="pt")
    return ref, OpenCLIPBackbone(CONVNEXT, pretrained=path)


@pytest.fixture(scope="module")
def vit_pair(ckpt_dir: Path) -> tuple[torch.nn.Module, OpenCLIPBackbone, Path]:
    ref, path = clip_checkpoint(ckpt_dir, VIT, fmt="safetensors")
    return ref, OpenCLIPBackbone(VIT, pretrained=path), path


def _ref_input(bb: OpenCLIPBackbone, images: torch.Tensor) -> torch.Tensor:
    return normalize(images, tuple(bb.pixel_mean.flatten().tolist()), tuple(bb.pixel_std.flatten().tolist()))


def test_pixel_statistics_are_open_clip_preprocess_cfg(convnext_pair: tuple) -> None:
    _, bb = convnext_pair
    assert torch.allclose(bb.pixel_mean.flatten(), torch.tensor(open_clip.OPENAI_DATASET_MEAN))
    assert torch.allclose(bb.pixel_std.flatten(), torch.tensor(open_clip.OPENAI_DATASET_STD))


def test_convnext_parity_with_open_clip(convnext_pair: tuple) -> None:
    ref, bb = convnext_pair
    assert bb.load_report.ok
    images = torch.rand(2, 3, 64, 96)
    out = bb(images)
    x = _ref_input(bb, images)
    with torch.no_grad():
        expected_global = ref.encode_image(x)
        trunk = ref.visual.trunk
        stages, h = [], trunk.stem(x)
        for stage in trunk.stages:
            h = stage(h)
            stages.append(h)
        # dense reference: the head's norm on the whole map, then the CLIP head on the channel axis
        normed = trunk.head.norm(trunk.norm_pre(h))
        expected_dense = ref.visual.head(normed.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert (out["clip_global"] - expected_global).abs().max() <= TOL
    for i, stage_out in enumerate(stages):
        assert torch.equal(out[f"res{i + 2}"], stage_out)
    assert (out["clip_dense"] - expected_dense).abs().max() <= TOL
    for name, spec in bb.output_shape().items():
        assert out[name].shape[1] == spec.channels
        assert out[name].shape[-2:] == (64 // spec.stride, 96 // spec.stride)


def test_convnext_embed_masks_full_mask_is_global_embedding(convnext_pair: tuple) -> None:
    ref, bb = convnext_pair
    images = torch.rand(2, 3, 64, 64)
    out = bb(images)
    full = torch.ones(2, 1, 64, 64, dtype=torch.bool)
    with torch.no_grad():
        expected = F.normalize(ref.encode_image(_ref_input(bb, images)), dim=-1)
    got = bb.embed_masks(out["res5"], full)[:, 0]
    assert (got - expected).abs().max() <= TOL


def test_pool_masks_is_masked_mean_of_dense_map(convnext_pair: tuple) -> None:
    _, bb = convnext_pair
    out = bb(torch.rand(1, 3, 128, 128))
    dense = out["clip_dense"]  # [1, D, 4, 4]
    masks = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    masks[0, 0, :2, :2] = True
    masks[0, 1, 1:, 3] = True
    got = bb.pool_masks(dense, masks, normalize=False)
    for n in range(2):
        expected = dense[0][:, masks[0, n]].mean(dim=1)
        assert torch.allclose(got[0, n], expected, atol=1e-5)
    unit = bb.pool_masks(dense, masks)
    assert torch.allclose(unit.norm(dim=-1), torch.ones(1, 2), atol=1e-5)


def test_region_logits_are_fc_clips_classifier_for_cnn_and_vit(convnext_pair: tuple, vit_pair: tuple) -> None:
    masks = torch.rand(2, 3, 16, 16) > 0.5
    masks[0, 0] = False  # an empty mask: zero logits
    for bb, pool in ((convnext_pair[1], "embed_masks"), (vit_pair[1], "pool_masks")):
        out = bb(torch.rand(2, 3, 64, 64))
        text = torch.randn(4, bb.embed_dim)
        regions = getattr(bb, pool)(out["res5" if pool == "embed_masks" else "clip_dense"], masks)
        expected = bb.logit_scale * regions @ F.normalize(text, dim=-1).T
        got = region_logits(bb, out, masks, text)
        assert got.shape == (2, 3, 4) and got.dtype == torch.float32
        torch.testing.assert_close(got, expected)
        if pool == "pool_masks":
            assert torch.all(got[0, 0] == 0)
        with pytest.raises(ValueError, match=r"text_embeddings: expected width E="):
            region_logits(bb, out, masks, text[:, :3])
        with pytest.raises(ValueError, match=r"text_embeddings: expected 2 dims"):
            region_logits(bb, out, masks, text[None])
        with pytest.raises(ValueError, match="features: expected the CLIP's"):
            region_logits(bb, {"res2": out["res2"]}, masks, text)


def test_vit_parity_with_open_clip(vit_pair: tuple) -> None:
    ref, bb, _ = vit_pair
    images = torch.rand(2, 3, 64, 64)
    out = bb(images)
    ref.visual.output_tokens = True
    try:
        with torch.no_grad():
            pooled, tokens = ref.visual(_ref_input(bb, images))
    finally:
        ref.visual.output_tokens = False
    assert (out["clip_global"] - pooled).abs().max() <= TOL
    expected_dense = (tokens @ ref.visual.proj).transpose(1, 2).reshape(2, -1, 4, 4)
    assert (out["clip_dense"] - expected_dense).abs().max() <= TOL
    for i, s in enumerate((4, 8, 16, 32)):
        assert out[f"res{i + 2}"].shape == (2, 256, 64 // s, 64 // s)


def test_vit_other_input_size_matches_open_clip_force_image_size(vit_pair: tuple) -> None:
    _, bb, path = vit_pair
    images = torch.rand(1, 3, 96, 128)
    ref = open_clip.create_model(VIT, pretrained=str(path), force_image_size=(96, 128)).eval()
    with torch.no_grad():
        expected = ref.encode_image(_ref_input(bb, images))
    assert (bb(images)["clip_global"] - expected).abs().max() <= TOL


def test_text_parity_single_template(vit_pair: tuple) -> None:
    ref, bb, _ = vit_pair
    names = ["cat", "traffic light"]
    got = bb.encode_text(names, templates=["a photo of a {}."])
    tokens = open_clip.get_tokenizer(VIT)([f"a photo of a {n}." for n in names])
    with torch.no_grad():
        expected = ref.encode_text(tokens, normalize=True)
    assert (got - expected).abs().max() <= TOL


def test_text_ensembles_templates_and_synonyms(convnext_pair: tuple) -> None:
    ref, bb = convnext_pair
    templates = ["a photo of a {}.", "there is a {} in the scene."]
    got = bb.encode_text(["person, people , man", "sky"], templates=templates)
    tok = open_clip.get_tokenizer(CONVNEXT)
    with torch.no_grad():
        person = ref.encode_text(
            tok([t.format(s) for s in ("person", "people", "man") for t in templates]), True
        )
        sky = ref.encode_text(tok([t.format("sky") for t in templates]), True)
    expected = F.normalize(torch.stack([person.mean(0), sky.mean(0)]), dim=-1)
    assert (got - expected).abs().max() <= TOL
    assert torch.allclose(got.norm(dim=-1), torch.ones(2), atol=1e-6)
    assert torch.allclose(bb.logit_scale, ref.logit_scale.exp())
    # a list of synonyms means the same as the comma-separated string
    same = bb.encode_text([["person", "people", "man"], ["sky"]], templates=templates)
    assert torch.allclose(same, got, atol=1e-6)


@settings(max_examples=5, deadline=None)
@given(st.permutations(["a photo of a {}.", "a {} in the scene.", "itap of a {}."]))
def test_text_embedding_does_not_depend_on_template_order(templates: list[str]) -> None:
    bb = _shared_vit()
    base = bb.encode_text(["dog"], templates=["a photo of a {}.", "a {} in the scene.", "itap of a {}."])
    assert torch.allclose(bb.encode_text(["dog"], templates=templates), base, atol=1e-6)


_VIT_CACHE: dict[str, OpenCLIPBackbone] = {}


def _shared_vit() -> OpenCLIPBackbone:
    if "bb" not in _VIT_CACHE:
        _VIT_CACHE["bb"] = OpenCLIPBackbone(VIT)
    return _VIT_CACHE["bb"]


def test_text_cache_skips_the_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    bb = OpenCLIPBackbone(VIT)
    calls = []
    original = bb.clip.encode_text
    monkeypatch.setattr(bb.clip, "encode_text", lambda *a, **k: calls.append(1) or original(*a, **k))
    first = bb.encode_text(["cat", "dog"], templates=["a {}."])
    n = len(calls)
    assert n >= 1
    second = bb.encode_text(["cat", "dog"], templates=["a {}."])
    assert second is first and len(calls) == n
    bb.encode_text(["cat", "dog"], templates=["a photo of a {}."])  # other templates: new entry
    assert len(calls) > n


def test_text_cache_is_dropped_when_new_weights_load() -> None:
    bb = OpenCLIPBackbone(VIT)
    before = bb.encode_text(["cat"], templates=["a {}."])
    state = {
        k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in bb.state_dict().items()
    }
    nn.ModuleDict({"clip": bb}).load_state_dict({f"clip.{k}": v for k, v in state.items()})  # via a parent
    after = bb.encode_text(["cat"], templates=["a {}."])
    assert after is not before and not torch.allclose(after, before)


def test_frozen_clip_trainable_pyramid() -> None:
    bb = OpenCLIPBackbone(VIT)
    bb.train()
    assert not bb.clip.training and bb.fpn is not None and bb.fpn.training
    assert not any(p.requires_grad for p in bb.clip.parameters())
    out = bb(torch.rand(1, 3, 64, 64))
    sum(out[f"res{i}"].sum() for i in range(2, 6)).backward()
    assert all(p.grad is not None for p in bb.fpn.parameters())
    assert all(p.grad is None for p in bb.clip.parameters())
    assert not out["clip_dense"].requires_grad


def test_unfrozen_clip_gets_gradients() -> None:
    bb = OpenCLIPBackbone(CONVNEXT, frozen=False)
    bb.train()
    assert bb.clip.training
    bb(torch.rand(1, 3, 64, 64))["clip_global"].sum().backward()
    assert bb.clip.visual.trunk.stem[0].weight.grad is not None


# ------------------------------------------------------------------------------------------ errors
def test_bad_images(convnext_pair: tuple) -> None:
    _, bb = convnext_pair
    with pytest.raises(ValueError, match=r"images: expected 3 \(RGB\) channels"):
        bb(torch.rand(1, 4, 64, 64))
    with pytest.raises(ValueError, match="size_divisibility=32, got 64x50; pad to 64x64"):
        bb(torch.rand(1, 3, 64, 50))
    with pytest.raises(ValueError, match="expected 4 dims"):
        bb(torch.rand(3, 64, 64))
    with pytest.raises(TypeError, match="floating"):
        bb(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_bad_vocabulary_and_templates(convnext_pair: tuple) -> None:
    _, bb = convnext_pair
    with pytest.raises(ValueError, match="empty vocabulary"):
        bb.encode_text([])
    with pytest.raises(ValueError, match=r"class_names\[1\]: empty class name"):
        bb.encode_text(["cat", " , "])
    with pytest.raises(TypeError, match="got the string"):
        bb.encode_text("cat")
    with pytest.raises(ValueError, match=r"templates\[0\]: expected exactly one"):
        bb.encode_text(["cat"], templates=["a photo"])


def test_unknown_names_and_tags(ckpt_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown open_clip model 'ViT-B-61'; did you mean"):
        OpenCLIPBackbone("ViT-B-61")
    with pytest.raises(ValueError, match="neither a file nor a known tag"):
        OpenCLIPBackbone(VIT, pretrained="no-such-tag")


def test_checkpoint_of_another_architecture_is_refused_naming_the_key(ckpt_dir: Path) -> None:
    _, path = clip_checkpoint(ckpt_dir, CONVNEXT, seed=1)
    with pytest.raises(ValueError, match=r"(shape mismatch for|keys do not match).*"):
        OpenCLIPBackbone(VIT, pretrained=path)
    state = torch.load(path, weights_only=True)["state_dict"]
    state["module.visual.head.mlp.fc1.weight"] = torch.zeros(3, 3)
    bad = ckpt_dir / "bad_shape.pt"
    torch.save(state, bad)
    with pytest.raises(
        ValueError, match=r"shape mismatch for visual\.head\.mlp\.fc1\.weight: checkpoint \(3, 3\)"
    ):
        OpenCLIPBackbone(CONVNEXT, pretrained=bad)
    del state["module.visual.head.mlp.fc1.weight"]
    torch.save(state, bad)
    with pytest.raises(ValueError, match=r"missing keys \[visual\.head\.mlp\.fc1\.weight\]"):
        OpenCLIPBackbone(CONVNEXT, pretrained=bad)
    loose = OpenCLIPBackbone(CONVNEXT, pretrained=bad, strict=False)
    assert loose.load_report.missing == ["visual.head.mlp.fc1.weight"]


# ------------------------------------------------------------------------------------------ real names
@pytest.mark.parametrize(
    ("name", "res_channels", "embed_dim", "dense_stride"),
    [
        ("convnext_large_d_320", (192, 384, 768, 1536), 768, 32),  # OMG-Seg, Uni-OVSeg, PosSAM's CLIP
        ("convnext_base_w", (128, 256, 512, 1024), 640, 32),
        ("ViT-B-16", (256, 256, 256, 256), 512, 16),
    ],
)
def test_paper_scale_models_build_on_meta(
    name: str, res_channels: tuple[int, ...], embed_dim: int, dense_stride: int
) -> None:
    with torch.device("meta"):
        bb = OpenCLIPBackbone(name, device="meta")
    shapes = bb.output_shape()
    assert tuple(shapes[f"res{i}"].channels for i in range(2, 6)) == res_channels
    assert tuple(shapes[f"res{i}"].stride for i in range(2, 6)) == (4, 8, 16, 32)
    assert (shapes["clip_dense"].channels, shapes["clip_dense"].stride) == (embed_dim, dense_stride)
    assert bb.size_divisibility == 32


def test_unsupported_towers_are_refused() -> None:
    with torch.device("meta"), pytest.raises(ValueError, match="ModifiedResNet image tower"):
        OpenCLIPBackbone("RN50", device="meta")
