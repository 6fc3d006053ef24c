"""``EvaluationReport``'s table and JSON: percent and unscaled numbers, rows with their own columns."""

from __future__ import annotations

import json
from pathlib import Path

from segblocks.evaluation import EvaluationReport, format_table, write_report_json

NAN = float("nan")


def _report(**extra: object) -> EvaluationReport:
    return EvaluationReport(
        task="toy",
        summary={"PQ": 0.5, "NoC@90": 3.25},
        counts={"images": 2},
        rows={
            "a": {"PQ": 0.25, "objects": 4.0},
            "b": {"PQ": NAN, "objects": 7.0},
            "curve": {"IoU@1": 0.5, "IoU@2": -1.0},
        },
        **extra,  # type: ignore[arg-type]
    )


def test_fractions_in_percent_unscaled_numbers_as_they_are() -> None:
    lines = format_table(_report(unscaled=("NoC@90", "objects"))).splitlines()
    assert lines[0] == "toy: images=2"
    assert lines[2].split() == ["50.00", "3.25"]
    assert lines[5].split() == ["a", "25.00", "4.00"] and lines[6].split() == ["b", "n/a", "7.00"]


def test_rows_of_other_columns_get_their_own_header() -> None:
    lines = format_table(_report(unscaled=("objects",))).splitlines()
    headers = [ln.split() for ln in lines if ln.split() and ln.split()[0] in ("PQ", "IoU@1")]
    assert headers == [["PQ", "NoC@90"], ["PQ", "objects"], ["IoU@1", "IoU@2"]]
    assert lines[-1].split() == ["curve", "50.00", "n/a"]  # -1 is COCOeval's "undefined"
    assert format_table(_report(), rows=False).count("\n") == 2


def test_json_lists_unscaled_only_when_there_is_any(tmp_path: Path) -> None:
    plain = json.loads(write_report_json(_report(), tmp_path / "a.json").read_text())
    assert "unscaled" not in plain and plain["rows"]["b"]["PQ"] is None
    marked = json.loads(write_report_json(_report(unscaled=("NoC@90",)), tmp_path / "b.json").read_text())
    assert marked["unscaled"] == ["NoC@90"] and marked["summary"]["NoC@90"] == 3.25
