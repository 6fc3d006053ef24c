"""`segblocks demo` writes PNG files and says where they are."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from segblocks.cli import main


def test_demo_writes_pngs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "demo",
        "--out",
        str(tmp_path),
        "--num-images",
        "1",
        "--size",
        "64",
        "--no-possam",
        "--no-video",
        "--no-omg-seg",
        "--no-uni-ovseg",
        "--no-seem",
    ]
    assert main(argv) == 0
    files = sorted(tmp_path.glob("*.png"))
    assert [f.name for f in files] == [
        "shapes_00_image.png",
        "shapes_00_panoptic.png",
        "shapes_00_prompts.png",
        "shapes_00_sheet.png",
    ]
    image = Image.open(tmp_path / "shapes_00_image.png")
    assert image.size == (384, 384)
    out = capsys.readouterr().out
    assert str(tmp_path.resolve()) in out and "shapes_00_sheet.png" in out


def test_demo_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--num-images", "0"]) == 2
    assert "--num-images must be >= 1" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path), "--size", "8"]) == 2
    assert "image_size" in capsys.readouterr().err


def test_train_names_unknown_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "no-such-model"]) == 2
    assert "unknown recipe 'no-such-model'" in capsys.readouterr().err


def test_demo_segments_with_the_shipped_possam(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "demo",
                "--out",
                str(tmp_path),
                "--num-images",
                "1",
                "--no-video",
                "--no-omg-seg",
                "--no-uni-ovseg",
                "--no-seem",
            ]
        )
        == 0
    )
    sheet = Image.open(tmp_path / "possam_00.png")
    assert sheet.size[0] == 3 * 3 * 128  # ground truth | MASE | frozen CLIP alone, each 3x the 128 px image
    out = capsys.readouterr().out
    assert "held out from its training, known only by name: arrow, crescent, heart, sand" in out
    for classifier in ("ldp", "clip", "geometric", "mase"):
        assert f"\n  {classifier} " in out
    assert "possam_00.png" in out


def test_demo_tracks_a_clip_with_the_shipped_video_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "demo",
                "--out",
                str(tmp_path),
                "--num-images",
                "1",
                "--size",
                "64",
                "--no-possam",
                "--no-omg-seg",
                "--no-uni-ovseg",
                "--no-seem",
            ]
        )
        == 0
    )
    sheet = Image.open(tmp_path / "video_00.png")
    assert sheet.size[0] == 8 * 2 * 96  # eight frames at twice the model's 96 px
    out = capsys.readouterr().out
    assert "video Mask2Former on one val clip" in out and "VOS J&F" in out and "video_00.png" in out
