"""``segblocks predict omg-seg`` (every task from files, prompts from the command line, one-line errors),
``segblocks eval omg-seg`` (one table of every task) and the shipped-weights export/load round trip,
on a checkpoint trained for one step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segblocks.cli import main as cli
from segblocks.data import ShapesClipDataset, ShapesWorldConfig
from segblocks.engine.weights import CheckpointError
from segblocks.zoo.omg_seg.predict import load_omg_seg, parse_boxes, parse_points
from segblocks.zoo.omg_seg.shipped import export_trained_weights, load_shipped_omg_seg
from segblocks.zoo.omg_seg.train import main as train


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("omg")
    argv = [
        "--steps",
        "1",
        "--batch-size",
        "1",
        "--image-size",
        "64",
        "--val-images",
        "1",
        "--val-clips",
        "1",
    ]
    assert (
        train(
            [
                *argv,
                "--val-frames",
                "2",
                "--threads",
                "1",
                "--out",
                str(root / "run"),
                "--set",
                "num_points=64",
            ]
        )
        == 0
    )
    clip = ShapesClipDataset(ShapesWorldConfig(image_size=(64, 64)), split="val", length=1, num_frames=3)[0]
    (root / "frames").mkdir()
    for i, frame in enumerate(clip.frames):
        Image.fromarray((frame.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(
            root / "frames" / f"{i:03d}.png"
        )
    return root


@pytest.mark.parametrize("task", ["panoptic", "instance", "semantic"])
def test_predict_image_tasks(run: Path, task: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = run / f"{task}.png"
    argv = ["predict", "omg-seg", "--weights", str(run / "run"), "--image", str(run / "frames" / "000.png")]
    assert cli([*argv, "--task", task, "--out", str(out)]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out


def test_predict_points_boxes_and_a_clip(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = ["--weights", str(run / "run"), "--image", str(run / "frames" / "000.png")]
    assert (
        cli(
            [
                "predict",
                "omg-seg",
                *image,
                "--task",
                "interactive",
                "--points",
                "10,12;40,30",
                "--boxes",
                "5,5,30,30",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.count("prompt ") == 3  # two clicks, one box: one mask each
    clip = ["--weights", str(run / "run"), "--frames", str(run / "frames")]
    assert cli(["predict", "omg-seg", *clip, "--task", "vps", "--out", str(run / "vps.png")]) == 0
    assert (run / "vps.png").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "vis"], "--frames"),
        (["--task", "interactive"], "--points"),
        (["--task", "interactive", "--points", "100,5"], "outside"),
        (["--task", "interactive", "--boxes", "30,5,10,20"], "boxes"),
        (["--task", "interactive", "--points", "1;2"], "--points: point 0 '1' is not 'x,y'"),
        (
            ["--task", "interactive", "--boxes", "1,2,3,nan"],
            "--boxes: box 0 '1,2,3,nan' has a value that is not",
        ),
        (["--task", "depth"], "--task"),
        (["--task", "panoptic", "--vocabulary", ""], "vocabulary: expected at least one class name"),
        (["--task", "panoptic", "--vocabulary", "circle,sky", "--stuff", "sand"], "--stuff: ['sand']"),
        (["--task", "panoptic", "--stuff", "sky"], "--stuff: ['sky'] are not in --vocabulary"),
        (["--task", "interactive", "--negative", "1,1"], "--negative: not an option of predict omg-seg"),
    ],
)
def test_predict_errors_are_one_line(
    run: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["predict", "omg-seg", "--weights", str(run / "run"), "--image", str(run / "frames" / "000.png")]
    assert cli([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


def test_eval_prints_one_table_of_every_task(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "omg-seg", "--weights", str(run / "run"), "--val-images", "1", "--val-clips", "1"]
    assert cli([*argv, "--frames", "3", "--image-size", "64"]) == 0
    out = capsys.readouterr().out
    for header in (
        "PS PQ",
        "IS AP",
        "SS mIoU",
        "VPS VPQ",
        "VIS AP",
        "VSS mIoU",
        "VOS J&F",
        "1-click mIoU",
        "box mIoU",
        "OV PQ held-out",
    ):
        assert header in out


def test_shipped_export_round_trip_and_a_foreign_file(run: Path, tmp_path: Path) -> None:
    model = load_omg_seg(run / "run")
    path = export_trained_weights(model, tmp_path / "omg.safetensors")
    loaded = load_shipped_omg_seg(path)
    with torch.no_grad():
        image = torch.rand(1, 3, 64, 64)
        torch.testing.assert_close(loaded(image).mask_logits, model(image).mask_logits, atol=5e-2, rtol=5e-2)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="trained tensors"):
        load_shipped_omg_seg(tmp_path / "other.safetensors")


def test_prompt_strings() -> None:
    p = parse_points("1,2; 3.5,4")
    assert p.points is not None and p.points.shape == (2, 1, 2)
    b = parse_boxes("0,0,10,10")
    assert b.boxes is not None and b.boxes.shape == (1, 4)


def test_demo_sheet_from_exported_weights(run: Path, tmp_path: Path) -> None:
    from segblocks.zoo.omg_seg.demo import run_omg_seg_demo

    path = export_trained_weights(load_omg_seg(run / "run"), tmp_path / "omg.safetensors")
    demo = run_omg_seg_demo(tmp_path / "demo", num_frames=3, weights=path)
    assert demo.file.is_file() and Image.open(demo.file).width >= 5 * 96 * 2
