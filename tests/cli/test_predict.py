"""`segblocks predict possam` segments an image file with any vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from segblocks.cli import main
from segblocks.data import ShapesWorld


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("predict") / "shapes.png"
    Image.fromarray(ShapesWorld(split="val").sample(3).image).save(path)
    return path


def test_predict_possam_writes_an_overlay(
    image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "overlay.png"
    argv = ["predict", "possam", "--image", str(image_file), "--out", str(out)]
    assert main([*argv, "--vocabulary", "circle,square,star,heart,sky,grass", "--stuff", "sky,grass"]) == 0
    captured = capsys.readouterr()
    assert "only know the shapes world" in captured.err
    assert out.is_file() and str(out.resolve()) in captured.out
    assert Image.open(out).size[0] >= 128  # the 128 px image, widened by the legend when needed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--vocabulary", " , "], "--vocabulary: expected class names"),
        (["--vocabulary", "circle", "--stuff", "sky"], "--stuff: ['sky'] are not in --vocabulary"),
        (
            ["--vocabulary", "circle", "--points", "5,5"],
            "--points: not an option of predict possam (it reads none)",
        ),
    ],
)
def test_predict_errors(
    image_file: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "possam", "--image", str(image_file), *extra]) == 2
    assert message in capsys.readouterr().err


def test_predict_missing_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "possam", "--image", str(tmp_path / "nope.png"), "--vocabulary", "a"]) == 2
    assert "no such image file" in capsys.readouterr().err
