"""`segblocks eval FORMAT` prints a table, writes JSON, and reports bad files in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segblocks.cli import main


def _semantic(tmp_path: Path) -> list[str]:
    for folder, values in (("gt", [[1, 2], [2, 0]]), ("pred", [[1, 2], [1, 1]])):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.array(values, np.uint8)).save(tmp_path / folder / "a.png")
    return ["eval", "semantic", "--gt-dir", str(tmp_path / "gt"), "--pred-dir", str(tmp_path / "pred")]


def test_eval_semantic_prints_a_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        *_semantic(tmp_path),
        "--num-classes",
        "2",
        "--class-names",
        "road,car",
        "--json",
        str(tmp_path / "s.json"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "mIoU" in out and "road" in out and "car" in out
    data = json.loads((tmp_path / "s.json").read_text())
    # class 0: tp 1, gt 1, pred 2 -> 1/2; class 1: tp 1, gt 2, pred 1 -> 1/2
    assert data["summary"]["mIoU"] == pytest.approx(0.5) and data["rows"]["road"]["IoU"] == pytest.approx(0.5)


def test_eval_coco_panoptic_from_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = np.zeros((2, 3, 3), np.uint8)
    ids[:, :, 0] = [[1, 1, 2], [1, 1, 2]]  # R channel: ids 1 and 2
    for name in ("gt", "pred"):
        (tmp_path / name).mkdir()
        Image.fromarray(ids).save(tmp_path / name / "1.png")
    segs = [
        {"id": 1, "category_id": 1, "iscrowd": 0, "area": 4},
        {"id": 2, "category_id": 2, "iscrowd": 0, "area": 2},
    ]
    gt = {
        "images": [{"id": 1, "file_name": "1.jpg", "height": 2, "width": 3}],
        "annotations": [{"image_id": 1, "file_name": "1.png", "segments_info": segs}],
        "categories": [{"id": 1, "name": "cat", "isthing": 1}, {"id": 2, "name": "sky", "isthing": 0}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": gt["annotations"]}))
    argv = [
        "eval",
        "coco-panoptic",
        "--gt-json",
        str(tmp_path / "gt.json"),
        "--pred-json",
        str(tmp_path / "pred.json"),
    ]
    assert main([*argv, "--no-rows"]) == 0
    out = capsys.readouterr().out
    assert "PQ_th" in out and "100.00" in out and "cat" not in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--num-classes", "1"], "are not classes of 0..0"),
        (["--num-classes", "2", "--class-names", "a,a"], "'a' appears twice"),
        (["--num-classes", "2", "--json", "DIR"], "is a folder; give a file name"),
    ],
)
def test_eval_errors_are_one_line(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*_semantic(tmp_path), *[str(tmp_path) if e == "DIR" else e for e in extra]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_eval_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "eval",
        "coco-instances",
        "--gt-json",
        str(tmp_path / "no.json"),
        "--results",
        str(tmp_path / "r.json"),
    ]
    assert main(argv) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_possam_with_the_shipped_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "possam.json"
    argv = ["eval", "possam", "--val-images", "1", "--image-size", "64", "--json", str(out)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in ("ldp", "clip", "geometric", "mase"))
    data = json.loads(out.read_text())
    assert data["counts"] == {"images": 1, "classes": 18}
    assert data["summary"] == data["rows"]["mase"] and 0.0 <= data["summary"]["pq"] <= 1.0
    # one threshold for every classifier instead of the calibrated ones: at 1.0 nothing is kept
    assert main([*argv, "--object-threshold", "1.0"]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert all(rows[c]["pq"] == 0.0 and rows[c]["rq"] == 0.0 for c in ("ldp", "clip", "geometric", "mase"))


@pytest.mark.slow
def test_eval_mask2former_from_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from segblocks.data import CATEGORIES
    from segblocks.engine import save_checkpoint
    from segblocks.zoo.mask2former import build_mask2former

    names = [c.name for c in CATEGORIES]
    model = build_mask2former(
        "test_resnet",
        num_classes=len(names),
        class_names=names,
        is_thing=[c.is_thing for c in CATEGORIES],
        variant="world",
    )
    save_checkpoint(tmp_path / "run" / "checkpoints", step=1, model=model, config=model.config)
    argv = ["eval", "mask2former", "--weights", str(tmp_path / "run"), "--backbone", "test_resnet"]
    assert main([*argv, "--val-images", "1", "--image-size", "64", "--json", str(tmp_path / "m.json")]) == 0
    assert "pq_things" in capsys.readouterr().out
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["counts"]["images"] == 1 and set(data["summary"]) >= {"pq", "miou", "ap"}
    # the same checkpoint read as another backbone does not fit: one error line
    assert main(["eval", "mask2former", "--weights", str(tmp_path / "run"), "--backbone", "resnet18"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: ")
    state = tmp_path / "run" / "checkpoints" / "step_00000001" / "state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "model_class": "PosSAM"}))
    assert main(["eval", "mask2former", "--weights", str(state.parent), "--backbone", "test_resnet"]) == 2
    assert "is a checkpoint of PosSAM, not Mask2Former" in capsys.readouterr().err
