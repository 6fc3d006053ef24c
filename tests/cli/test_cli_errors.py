"""The CLI's error boundary: every error caused by the input becomes one `error: ...` line, status 2.

Grouped by class: files that are not what they claim (not an image, truncated, corrupt or foreign
weights), wrong arguments (unknown config fields, an output path that is a folder).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from segblocks.cli import main
from segblocks.data import ShapesWorld


def _one_line_error(capsys: pytest.CaptureFixture[str], *fragments: str) -> None:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "shapes.png"
    Image.fromarray(ShapesWorld(split="val").sample(3).image).save(path)
    return path


def _predict(image: Path, *extra: str) -> list[str]:
    return [
        "predict",
        "possam",
        "--image",
        str(image),
        "--vocabulary",
        "circle,sky",
        "--stuff",
        "sky",
        *extra,
    ]


def test_a_file_that_is_not_an_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert main(_predict(bad)) == 2
    _one_line_error(capsys, "is not a readable image", "notes.png")


def test_a_truncated_image(image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = tmp_path / "cut.png"
    cut.write_bytes(image_file.read_bytes()[:200])
    assert main(_predict(cut)) == 2
    _one_line_error(capsys, "is not a readable image")


def test_corrupt_weights(image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    assert main(_predict(image_file, "--weights", str(bad))) == 2
    _one_line_error(capsys, "model.safetensors")


def test_a_checkpoint_of_another_model(
    image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "state.json").write_text(json.dumps({"config": {"num_classes": 3, "backbone": "resnet18"}}))
    (ckpt / "model.safetensors").write_bytes(b"")
    assert main(_predict(image_file, "--weights", str(ckpt))) == 2
    _one_line_error(capsys, "is not a PosSAM checkpoint", "backbone")


def test_out_naming_a_folder(image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_predict(image_file, "--out", str(tmp_path))) == 2
    _one_line_error(capsys, "--out", "is a folder")


def test_unknown_set_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "possam", "--out", str(tmp_path), "--steps", "1", "--set", "no_such_field=1"]
    assert main(argv) == 2
    _one_line_error(capsys, "no_such_field")


def test_verbose_adds_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert main(["-v", *_predict(bad)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_a_failed_resume(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import sys
    import types

    from segblocks import cli
    from segblocks.engine.weights import CheckpointError

    def fail(argv: list[str]) -> int:
        raise CheckpointError("runs/x/checkpoints: no usable checkpoint among 2 (corrupt)")

    monkeypatch.setitem(sys.modules, "fake_recipe", types.SimpleNamespace(main=fail))
    monkeypatch.setitem(cli.TRAIN_RECIPES, "fake", "fake_recipe")
    assert main(["train", "fake", "--resume"]) == 2
    _one_line_error(capsys, "no usable checkpoint")


def test_a_repeated_class_name(image_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["predict", "possam", "--image", str(image_file), "--vocabulary", "circle,sky,circle"]
    assert main(argv) == 2
    _one_line_error(capsys, "'circle' appears twice")


@pytest.mark.parametrize(
    "command",
    [
        ["possam", "--vocabulary", "circle,sky"],
        ["omg-seg", "--task", "panoptic"],
        ["uni-ovseg", "--vocabulary", "circle,sky"],
        ["seem", "--points", "5,5"],
    ],
    ids=["possam", "omg-seg", "uni-ovseg", "seem"],
)
def test_every_predict_command_reads_its_image_alike(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, *options = command
    assert main(["predict", model, "--image", str(tmp_path / "gone.png"), *options]) == 2
    _one_line_error(capsys, "no such image file", "gone.png")
    (tmp_path / "notes.png").write_text("not an image")
    assert main(["predict", model, "--image", str(tmp_path / "notes.png"), *options]) == 2
    _one_line_error(capsys, "is not a readable image", "notes.png")
