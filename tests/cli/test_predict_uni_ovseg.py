"""`segblocks predict uni-ovseg`: any vocabulary, or point prompts, on an image file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from segblocks.cli import main
from segblocks.data import ShapesWorld
from segblocks.zoo import build_uni_ovseg
from segblocks.zoo.uni_ovseg.predict import parse_points
from segblocks.zoo.uni_ovseg.shipped import export_trained_weights


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("uni_ovseg_predict")
    image = folder / "shapes.png"
    Image.fromarray(ShapesWorld(split="val").sample(3).image).save(image)
    torch.manual_seed(0)
    weights = export_trained_weights(build_uni_ovseg("tiny"), folder / "w.safetensors")
    return image, weights


def test_predict_vocabulary_and_points(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, weights = files
    out = tmp_path / "overlay.png"
    argv = ["predict", "uni-ovseg", "--image", str(image), "--weights", str(weights), "--out", str(out)]
    assert (
        main(
            [
                *argv,
                "--vocabulary",
                "circle,star,sky,grass",
                "--stuff",
                "sky,grass",
                "--points",
                "10,20;64,64",
            ]
        )
        == 0
    )
    captured = capsys.readouterr().out
    assert "point 0 (10,20)" in captured and "point 1 (64,64)" in captured
    assert out.is_file() and (tmp_path / "overlay_points.png").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--vocabulary or --points"),
        (["--points", "10;20"], "--points: point 0 '10' is not 'x,y'"),
        (["--points", "500,3"], "outside"),
        (["--vocabulary", "circle", "--stuff", "sky"], "--stuff: ['sky'] are not in --vocabulary"),
        (["--vocabulary", "circle,circle"], "appears twice"),
        (
            ["--points", "10,20", "--boxes", "1,1,5,5"],
            "--boxes: not an option of predict uni-ovseg (it reads --points)",
        ),
    ],
)
def test_predict_errors(
    files: tuple[Path, Path], extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    image, weights = files
    assert main(["predict", "uni-ovseg", "--image", str(image), "--weights", str(weights), *extra]) == 2
    assert message in capsys.readouterr().err


def test_parse_points() -> None:
    assert parse_points("1,2; 3.5,4").tolist() == [[1.0, 2.0], [3.5, 4.0]]
    with pytest.raises(ValueError, match="at least one"):
        parse_points(" ; ")
