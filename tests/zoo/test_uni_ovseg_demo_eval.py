"""The Uni-OVSeg demo part and `segblocks eval uni-ovseg` on weights the test writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from segblocks.cli import main
from segblocks.data import ShapesWorld
from segblocks.zoo import build_uni_ovseg
from segblocks.zoo.uni_ovseg.demo import run_uni_ovseg_demo
from segblocks.zoo.uni_ovseg.evaluate import region_top1
from segblocks.zoo.uni_ovseg.shipped import export_trained_weights, load_trained_weights


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return build_uni_ovseg("tiny", grid_size=3).eval()


def test_demo_writes_one_sheet_per_image(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    demo = run_uni_ovseg_demo(tmp_path, num_images=1, model=model)
    assert [f.name for f in demo.files] == ["uni_ovseg_00.png"]
    assert Image.open(demo.files[0]).size[0] == (2 + 4) * 3 * 128  # truth | prediction | 4 granularities
    assert demo.metrics.num_images == 1
    with pytest.raises(ValueError, match="num_images"):
        run_uni_ovseg_demo(tmp_path, num_images=0, model=model)


def test_eval_command_prints_the_card_rows(model, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    weights = export_trained_weights(model, tmp_path / "w.safetensors")
    assert (
        main(
            [
                "eval",
                "uni-ovseg",
                "--weights",
                str(weights),
                "--val-images",
                "1",
                "--json",
                str(tmp_path / "s.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for row in ("open_vocab", "open_vocab_frozen_clip", "prompt", "prompt_tiny_sam"):
        assert row in out
    assert (tmp_path / "s.json").is_file()


def test_trained_weights_round_trip_and_mismatches(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = export_trained_weights(model, tmp_path / "w.safetensors")
    other = load_trained_weights(build_uni_ovseg("tiny"), path)
    a = dict(model.named_parameters())
    for k, v in other.named_parameters():
        assert torch.allclose(v, a[k].half().float()), k
    with pytest.raises(ValueError, match="does not fit"):
        load_trained_weights(build_uni_ovseg("tiny", dec_layers=2), path)
    with pytest.raises(FileNotFoundError):
        load_trained_weights(model, tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a file")
    with pytest.raises(ValueError, match="readable"):
        load_trained_weights(model, bad)


def test_region_top1_reports_things_and_stuff(model) -> None:  # type: ignore[no-untyped-def]
    samples = [ShapesWorld(split="val").sample(i) for i in range(2)]
    single = region_top1(model, samples, (128,))
    ensemble = region_top1(model, samples, (96, 128))
    for r in (single, ensemble):
        assert 0 <= r["top1"] <= 100 and r["num_masks"] == sum(len(s.segments) for s in samples)
