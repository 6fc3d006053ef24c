"""Weight files: weights_only loading, refusal of code-running pickles, unwrapping, clear errors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from segblocks.backbones import OpenCLIPBackbone, SAMBackbone, load_state_dict_file
from tests.backbones.conftest import VIT


class _RunsCode:
    """Unpickling this calls ``os.makedirs(target)``: a stand-in for arbitrary code."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, ...]:
        return (os.makedirs, (self.target,))


@pytest.fixture
def evil_file(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": _RunsCode(str(marker))}, path)
    return path, marker


def test_code_running_pickle_really_runs_code_without_weights_only(evil_file: tuple[Path, Path]) -> None:
    path, marker = evil_file
    torch.load(path, weights_only=False)  # what an unsafe loader would do
    assert marker.is_dir()


def test_code_running_pickle_is_refused(evil_file: tuple[Path, Path]) -> None:
    path, marker = evil_file
    with pytest.raises(ValueError, match=r"refusing to load .*could run arbitrary code"):
        load_state_dict_file(path)
    with pytest.raises(ValueError, match="refusing to load"):
        SAMBackbone("vit_tiny", checkpoint=path)
    with pytest.raises(ValueError, match="refusing to load"):
        OpenCLIPBackbone(VIT, pretrained=path)
    assert not marker.exists()


def test_unwrapping_and_prefixes(tmp_path: Path) -> None:
    w = torch.arange(3.0)
    for i, payload in enumerate(
        [{"a.weight": w}, {"state_dict": {"module.a.weight": w}}, {"model": {"a.weight": w}, "epoch": 2}]
    ):
        path = tmp_path / f"{i}.pt"
        torch.save(payload, path)
        assert list(load_state_dict_file(path)) == ["a.weight"]


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_state_dict_file(tmp_path / "nope.pt")
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="expected a mapping of tensors"):
        load_state_dict_file(path)
    path = tmp_path / "empty.pt"
    torch.save({"epoch": 1}, path)
    with pytest.raises(ValueError, match="no tensors"):
        load_state_dict_file(path)
    for name, data in [("cut.pt", pickle.dumps({"a": 1}, protocol=2)[:5]), ("text.pt", b"not a checkpoint")]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match=r"cannot read .*not a valid weights file"):
            load_state_dict_file(path)
    path = tmp_path / "text.safetensors"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot read .* as safetensors"):
        load_state_dict_file(path)


def test_save_state_dict_file_casts_floats_keeps_ints_and_round_trips(tmp_path: Path) -> None:
    from segblocks.backbones import save_state_dict_file

    state = {"w": torch.randn(3, 2), "n": torch.tensor(7, dtype=torch.int64)}
    path = save_state_dict_file(state, tmp_path / "sub" / "w.safetensors", metadata={"note": "x"})
    loaded = load_state_dict_file(path)
    assert loaded["w"].dtype == torch.float16 and loaded["n"].dtype == torch.int64
    torch.testing.assert_close(loaded["w"].float(), state["w"].half().float())
    assert int(loaded["n"]) == 7
    exact = load_state_dict_file(save_state_dict_file(state, tmp_path / "f.safetensors", dtype=torch.float32))
    assert torch.equal(exact["w"], state["w"])
    with pytest.raises(ValueError, match=r"expected a \.safetensors file"):
        save_state_dict_file(state, tmp_path / "w.pt")
    with pytest.raises(ValueError, match="floating dtype"):
        save_state_dict_file(state, tmp_path / "w.safetensors", dtype=torch.int8)
