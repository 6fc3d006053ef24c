"""LoRA adapters and the backbone adapter seam: an adapted layer starts equal to the frozen one, merging
is exact, the base weights of a frozen CLIP do not move in a training step while the adapters' do, and
the adapters are saved with the model under the base layers' own names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segblocks.backbones import OpenCLIPBackbone, register_clip_config
from segblocks.layers import LoRAConv2d, LoRALinear, add_lora
from tests.backbones.conftest import CONVNEXT, CONVNEXT_CFG

register_clip_config(CONVNEXT, CONVNEXT_CFG, overwrite=True)


@pytest.mark.parametrize("layer", [nn.Linear(6, 5), nn.Conv2d(4, 3, 3, stride=2, padding=1)])
def test_an_adapter_starts_at_the_frozen_layer_and_merges_exactly(layer: nn.Module) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 6) if isinstance(layer, nn.Linear) else torch.randn(2, 4, 9, 9)
    before = layer(x)
    adapted = LoRALinear(layer, rank=2) if isinstance(layer, nn.Linear) else LoRAConv2d(layer, rank=2)
    torch.testing.assert_close(adapted(x), before)  # B = 0 at start
    assert not adapted.weight.requires_grad and adapted.lora_A.requires_grad
    with torch.no_grad():
        adapted.lora_B.normal_()
    unmerged = adapted(x)
    assert not torch.allclose(unmerged, before)
    adapted.merge()
    torch.testing.assert_close(adapted(x), unmerged, rtol=1e-5, atol=1e-5)
    adapted.unmerge()
    torch.testing.assert_close(adapted(x), unmerged, rtol=1e-5, atol=1e-5)
    assert set(adapted.state_dict()) == {"weight", "bias", "lora_A", "lora_B"}


def test_adapted_frozen_clip_trains_only_its_adapters_and_saves_them() -> None:
    torch.manual_seed(0)
    clip = OpenCLIPBackbone(CONVNEXT)
    base_keys = set(clip.state_dict())
    wrapped = clip.add_adapters(["clip.visual.trunk.stages.3.*.mlp.fc*", "clip.visual.head.mlp.fc2"], rank=4)
    assert wrapped and all("stages.3" in n or n.endswith("head.mlp.fc2") for n in wrapped)
    assert {n for n, p in clip.named_parameters() if p.requires_grad} == {
        f"{n}.lora_{ab}" for n in wrapped for ab in "AB"
    }
    state = clip.state_dict()
    assert base_keys <= set(state)  # the frozen weights keep their names (original checkpoints load)
    assert set(state) - base_keys == {f"{n}.lora_{ab}" for n in wrapped for ab in "AB"}

    frozen_before = {n: p.detach().clone() for n, p in clip.named_parameters() if not p.requires_grad}
    adapters_before = [p.detach().clone() for p in clip.adapter_parameters()]
    optimizer = torch.optim.AdamW([p for p in clip.parameters() if p.requires_grad], lr=1e-2)
    clip.train()
    feats = clip(torch.rand(2, 3, 64, 64))
    (feats["clip_dense"].square().mean() + feats["res5"].mean()).backward()
    optimizer.step()
    for n, p in clip.named_parameters():
        if not p.requires_grad:
            assert p.grad is None and torch.equal(p, frozen_before[n]), n
    assert all(not torch.equal(a, b) for a, b in zip(clip.adapter_parameters(), adapters_before))
    assert not clip.clip.training  # the frozen CLIP stays in eval mode

    fresh = OpenCLIPBackbone(CONVNEXT)
    fresh.add_adapters(wrapped, rank=4)
    fresh.load_state_dict(clip.state_dict())
    images = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(fresh(images)["clip_dense"], clip(images)["clip_dense"])
    clip.merge_adapters()
    torch.testing.assert_close(clip(images)["clip_dense"], fresh(images)["clip_dense"], rtol=1e-4, atol=1e-5)


def test_adapter_seam_errors_name_the_argument() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    with pytest.raises(ValueError, match="matches no"):
        add_lora(model, ["1"])
    with pytest.raises(ValueError, match="non-empty list"):
        add_lora(model, "0")  # type: ignore[arg-type]
    add_lora(model, ["0"])
    with pytest.raises(ValueError, match="already has a LoRA"):
        add_lora(model, ["0"])
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(2, 2), rank=0)
    with pytest.raises(ValueError, match="ungrouped"):
        LoRAConv2d(nn.Conv2d(4, 4, 3, groups=2))
