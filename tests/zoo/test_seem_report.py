"""``segblocks eval seem``'s numbers as an EvaluationReport: the same values, fractions and click counts."""

from __future__ import annotations

import math

import pytest

from segblocks.evaluation import format_table
from segblocks.zoo.seem.report import COMPOSITION_ROWS, evaluation_report


def _interactive(noc85: float, noc90: float, iou1: float, curve: list[float]) -> dict[str, object]:
    return {"noc85": noc85, "noc90": noc90, "iou1": iou1, "iou_per_click": curve, "num_objects": 12}


def _results(ablations: bool) -> dict[str, object]:
    referring = {"ciou": 26.6, "miou": 34.0, "ap50": 35.3, "num_expressions": 9.0}
    out: dict[str, object] = {
        "images": 3,
        "interactive": {
            "point": _interactive(13.04, 16.15, 63.7, [63.7, 63.0, 65.2]),
            "box": _interactive(13.5, 16.8, 45.0, [45.0, 44.0, 47.0]),
        },
        "referring": referring,
        "generic": {"pq": 32.5, "pq_things": 0.0, "pq_stuff": float("nan")},
    }
    if ablations:
        out["composition"] = {m: dict(referring, ciou=10.0 * (i + 1)) for i, m in enumerate(COMPOSITION_ROWS)}
        out["memory_off_at_inference"] = _interactive(14.0, 17.0, 64.4, [64.4, 63.6, 65.3])
    return out


def test_the_same_numbers_as_fractions_and_click_counts() -> None:
    report = evaluation_report(_results(ablations=False))
    assert report.task == "seem" and report.counts == {"images": 3, "objects": 12, "expressions": 9}
    assert report.summary == pytest.approx(
        {
            "NoC@85": 13.04,
            "NoC@90": 16.15,
            "1-IoU": 0.637,
            "cIoU": 0.266,
            "mIoU": 0.34,
            "AP@50": 0.353,
            "PQ": 0.325,
        },
        rel=0,
        abs=1e-12,
    )
    assert list(report.rows) == ["point", "box", "referring (text)", "generic"]
    assert report.rows["box"] == {"NoC@85": 13.5, "NoC@90": 16.8, "1-IoU": 0.45}
    assert math.isnan(report.rows["generic"]["PQ_st"])
    assert set(report.unscaled) == {"NoC@85", "NoC@90"}
    table = format_table(report)
    assert "13.04" in table and "63.70" in table and "1304" not in table


def test_the_ablations_add_composition_and_memory_rows() -> None:
    rows = evaluation_report(_results(ablations=True)).rows
    composition = [name for name in rows if name.startswith("composition: ")]
    assert composition == [f"composition: {n}" for n in COMPOSITION_ROWS.values()]
    assert rows["composition: both, ensemble"]["cIoU"] == pytest.approx(0.4)
    assert rows["point, memory off"] == pytest.approx({"IoU@1": 0.644, "IoU@2": 0.636, "IoU@3": 0.653})
    assert list(rows)[-2:] == ["point, memory on", "point, memory off"]
