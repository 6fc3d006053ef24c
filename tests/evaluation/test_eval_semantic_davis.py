"""`evaluate_semantic` (ADE20K-style PNG folders) and `evaluate_davis` (DAVIS folders) on hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segblocks.data.formats import DatasetFormatError, read_davis
from segblocks.data.formats._io import write_index_png
from segblocks.evaluation import evaluate_davis, evaluate_semantic
from segblocks.metrics import DavisJF, sequence_statistics


def _png(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8)).save(path)


def test_semantic_hand_computed(tmp_path: Path) -> None:
    # reduce_zero_label: PNG 0 is "other" (ignored), v is class v - 1
    _png(tmp_path / "gt" / "a.png", np.array([[1, 1, 2, 0], [2, 2, 3, 3]]))
    _png(tmp_path / "pred" / "a.png", np.array([[1, 2, 2, 3], [2, 2, 3, 1]]))
    report = evaluate_semantic(tmp_path / "gt", tmp_path / "pred", num_classes=3, class_names=["a", "b", "c"])
    # class 0: tp 1, gt 2, pred 2 -> 1/3; class 1: tp 3, gt 3, pred 4 -> 3/4; class 2: tp 1, gt 2, pred 1 -> 1/2
    assert report.result.per_class_iou == pytest.approx([1 / 3, 3 / 4, 1 / 2])
    assert report.summary["mIoU"] == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert report.summary["pixel_accuracy"] == pytest.approx(5 / 7)
    assert report.rows["b"] == {"IoU": pytest.approx(0.75)}


def test_semantic_errors(tmp_path: Path) -> None:
    _png(tmp_path / "gt" / "a.png", np.array([[1, 2]]))
    _png(tmp_path / "pred" / "a.png", np.array([[0, 2]]))
    with pytest.raises(DatasetFormatError, match=r"predicted PNG values \[0\] are not classes"):
        evaluate_semantic(tmp_path / "gt", tmp_path / "pred", num_classes=2)
    _png(tmp_path / "pred" / "a.png", np.array([[1, 2, 2]]))
    with pytest.raises(DatasetFormatError, match="prediction of size"):
        evaluate_semantic(tmp_path / "gt", tmp_path / "pred", num_classes=2)
    (tmp_path / "pred" / "a.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"a\.png"):
        evaluate_semantic(tmp_path / "gt", tmp_path / "pred", num_classes=2)
    with pytest.raises(TypeError, match="num_classes"):
        evaluate_semantic(tmp_path / "gt", tmp_path / "pred", num_classes=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'a' appears twice"):
        evaluate_semantic(tmp_path / "gt", tmp_path / "pred", num_classes=2, class_names=["a", "a"])


@pytest.fixture()
def davis_root(tmp_path: Path) -> Path:
    """Two sequences of 5 annotated frames (no JPEGImages: the evaluation needs none); objects move."""
    root = tmp_path / "davis"
    for name, n_objects in (("seq_a", 2), ("seq_b", 1)):
        for t in range(5):
            ids = np.zeros((40, 48), np.uint8)
            for k in range(1, n_objects + 1):
                ids[5 * k : 5 * k + 8, 3 * t + 10 * k : 3 * t + 10 * k + 9] = k
            ids[0, :] = 255  # a void row
            write_index_png(root / "Annotations" / "480p" / name / f"{t:05d}.png", ids, palette=True)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("seq_a\nseq_b\n")
    return root


def _copy_results(root: Path, out: Path) -> None:
    """Results equal to the annotations (void pixels, which results cannot hold, become background)."""
    for png in (root / "Annotations" / "480p").rglob("*.png"):
        ids = np.array(Image.open(png))
        write_index_png(out / png.parent.name / png.name, np.where(ids == 255, 0, ids), palette=True)


def test_davis_perfect_results_and_sequence_statistics(davis_root: Path, tmp_path: Path) -> None:
    _copy_results(davis_root, tmp_path / "res")
    report = evaluate_davis(davis_root, tmp_path / "res")
    assert report.summary["J&F"] == 1.0 and report.summary["J_decay"] == 0.0
    assert report.counts == {"sequences": 2, "objects": 3}
    assert [(o.sequence, o.object_id) for o in report.result.per_object] == [
        ("seq_a", 1),
        ("seq_a", 2),
        ("seq_b", 1),
    ]
    assert all(row == {"J": 1.0, "F": 1.0} for row in report.rows.values())
    stats = sequence_statistics(np.array([1.0, 0.8, 0.4, 0.2, 0.0]))
    # DAVIS bins 5 frames at [0, 1], [1, 2], [2, 3], [3, 4]: decay = mean(1, .8) - mean(.2, 0)
    assert (stats.mean, stats.recall, stats.decay) == pytest.approx((0.48, 0.4, 0.8))


def test_davis_matches_the_metric_and_uses_first_frame_objects(davis_root: Path, tmp_path: Path) -> None:
    res = tmp_path / "res"
    _copy_results(davis_root, res)
    seq = read_davis(davis_root, frames=False)[0]
    frame = res / seq.name / f"{seq.file_names[2]}.png"
    ids = np.array(Image.open(frame))
    ids[ids == 1] = 0  # object 1 lost in one evaluated frame
    write_index_png(frame, ids, palette=True)
    report = evaluate_davis(davis_root, res)
    metric = DavisJF()
    for s in read_davis(davis_root, frames=False):
        pred = np.stack([np.array(Image.open(res / s.name / f"{n}.png")) for n in s.file_names]).astype(
            np.int64
        )
        metric.update(pred, s.objects, sequence=s.name)
    assert report.summary["J&F"] == pytest.approx(metric.compute().jf) and report.summary["J&F"] < 1


def test_davis_errors(davis_root: Path, tmp_path: Path) -> None:
    res = tmp_path / "res"
    _copy_results(davis_root, res)
    seq = read_davis(davis_root, frames=False)[0]
    write_index_png(res / seq.name / f"{seq.file_names[0]}.png", np.full((40, 48), 3, np.uint8), palette=True)
    with pytest.raises(DatasetFormatError, match="result ids up to 3, the sequence has 2 objects"):
        evaluate_davis(davis_root, res)
    (res / seq.name / f"{seq.file_names[0]}.png").unlink()
    with pytest.raises(FileNotFoundError, match=seq.file_names[0]):
        evaluate_davis(davis_root, res)
