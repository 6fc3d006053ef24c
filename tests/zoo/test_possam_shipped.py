"""The shipped world-scale PosSAM: only its trained tensors, loaded onto the shipped tiny SAM and CLIP."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from segblocks.zoo.possam import load_possam
from segblocks.zoo.possam.shipped import (
    FROZEN_PREFIXES,
    SHIPPED_WEIGHTS,
    export_trained_weights,
    load_shipped_possam,
)


def test_export_keeps_only_trained_tensors_and_loads_back(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = load_possam(variant="tiny")
    path = export_trained_weights(model, tmp_path / "w.safetensors", metadata={"note": "test"})
    state = load_file(str(path))
    assert state and not any(k.startswith(FROZEN_PREFIXES) for k in state)
    assert any(k.startswith("sam.fpn.") for k in state)  # the SAM-side FPN is trained
    loaded = load_shipped_possam(path)
    expected = model.state_dict()
    for key, value in loaded.state_dict().items():
        want = (
            expected[key].half().float()
            if key in state and expected[key].is_floating_point()
            else expected[key]
        )
        torch.testing.assert_close(value, want.to(value.dtype), msg=key)


def test_load_refuses_files_that_do_not_fit(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such PosSAM weights file"):
        load_shipped_possam(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    save_file({"query_feat.weight": torch.zeros(3, 3)}, str(bad))
    with pytest.raises(ValueError, match="does not fit the world-scale PosSAM"):
        load_shipped_possam(bad)


def test_shipped_weights_are_small_and_load() -> None:
    assert SHIPPED_WEIGHTS.is_file() and SHIPPED_WEIGHTS.stat().st_size < 6_000_000
    model = load_shipped_possam()
    assert not model.training
