"""Tiny open_clip configs and checkpoint files the backbone tests write themselves."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch
from torch import nn

from segblocks.backbones import register_clip_config

TEXT_CFG = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}

CONVNEXT_CFG = {
    "embed_dim": 24,
    "vision_cfg": {
        "timm_model_name": "convnext_atto",
        "timm_model_pretrained": False,
        "timm_pool": "",
        "timm_proj": "mlp",
        "timm_drop": 0.0,
        "timm_drop_path": 0.0,
        "image_size": 64,
    },
    "text_cfg": TEXT_CFG,
}

VIT_CFG = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": TEXT_CFG,
}

CONVNEXT = "segblocks-test-convnext"
VIT = "segblocks-test-vit"


@pytest.fixture(scope="session", autouse=True)
def tiny_clip_configs() -> None:
    """Register the tiny test configs with open_clip (once per session)."""
    register_clip_config(CONVNEXT, CONVNEXT_CFG, overwrite=True)
    register_clip_config(VIT, VIT_CFG, overwrite=True)


def random_clip(name: str, seed: int = 0) -> nn.Module:
    """A randomly initialised open_clip model (the reference), in eval mode.

    Positional embeddings and logit_scale get non-default values so that loading them is tested.
    """
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None, pretrained_text=False)
    with torch.no_grad():
        model.logit_scale.fill_(2.5)
    return model.eval()


def clip_checkpoint(tmp_dir: Path, name: str, *, fmt: str = "pt", seed: int = 0) -> tuple[nn.Module, Path]:
    """Write a random open_clip model to ``tmp_dir`` as open_clip saves it; return (model, path)."""
    model = random_clip(name, seed)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = tmp_dir / f"{name}-{seed}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    else:
        # open_clip's training script saves {"epoch", "name", "state_dict"} with a DDP "module." prefix.
        path = tmp_dir / f"{name}-{seed}.pt"
        state = {f"module.{k}": v for k, v in model.state_dict().items()}
        torch.save({"epoch": 3, "name": name, "state_dict": state}, path)
    return model, path


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Reference pixel normalisation for ``[B, 3, H, W]`` images in [0, 1]."""
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (images - m) / s
