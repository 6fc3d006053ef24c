"""What a file evaluation returns: the headline numbers, per-class (or per-object) rows, the full result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segblocks.data.formats._io import encode_json, staged_files

__all__ = ["EvaluationReport", "format_table", "write_report_json"]


@dataclass(frozen=True)
class EvaluationReport:
    """The scores of one evaluation, as the field's tool reports them.

    Scores are fractions in ``[0, 1]`` (COCOeval's -1 stays -1: "undefined"); NaN where nothing
    could be scored. A number that is not a fraction (a mean click count such as NoC@90) is named in
    ``unscaled``: printed and written as it is.

    Attributes:
        task: what was evaluated (``"coco_panoptic"``, ``"coco_instances"``, ...).
        summary: the headline numbers, e.g. ``{"PQ": 0.43, "PQ_th": ..., ...}``.
        counts: integer counts (images, categories used in each average, ...).
        rows: per class / per object scores, keyed by a readable name (rows may have different
            columns: the table starts a new header where they change).
        result: the metric's full result object (e.g. :class:`~segblocks.metrics.PanopticQualityResult`).
        unscaled: summary keys and row columns that are not fractions.
    """

    task: str
    summary: dict[str, float]
    counts: dict[str, int] = field(default_factory=dict)
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    result: Any = None
    unscaled: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary (NaN written as null; ``unscaled`` listed when there is any)."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        out: dict[str, Any] = {
            "task": self.task,
            "summary": {k: clean(v) for k, v in self.summary.items()},
            "counts": dict(self.counts),
            "rows": {name: {k: clean(v) for k, v in row.items()} for name, row in self.rows.items()},
        }
        if self.unscaled:
            out["unscaled"] = list(self.unscaled)
        return out


def _cell(value: float, unscaled: bool = False) -> str:
    if math.isnan(value) or (value == -1 and not unscaled):
        return "n/a"
    return f"{value:.2f}" if unscaled else f"{100 * value:.2f}"


def format_table(report: EvaluationReport, *, rows: bool = True) -> str:
    """The report as a plain-text table, scores in percent (``n/a`` where undefined), unscaled numbers as they are.

    Args:
        report: the report.
        rows: include the per-class / per-object rows.
    """
    lines = [f"{report.task}: " + ", ".join(f"{k}={v}" for k, v in report.counts.items())]
    keys = list(report.summary)
    width = max(8, *(len(k) + 1 for k in keys))
    lines.append("".join(f"{k:>{width}}" for k in keys))
    raw = set(report.unscaled)
    lines.append("".join(f"{_cell(report.summary[k], k in raw):>{width}}" for k in keys))
    if rows and report.rows:
        name_w = max(12, *(len(n) + 1 for n in report.rows))
        cols: list[str] | None = None
        col_w = width
        for name, row in report.rows.items():
            if list(row) != cols:  # the first row, or rows of other columns: a header
                cols = list(row)
                col_w = max(width, *(len(c) + 1 for c in cols))
                lines.append("")
                lines.append(f"{'':<{name_w}}" + "".join(f"{c:>{col_w}}" for c in cols))
            lines.append(f"{name:<{name_w}}" + "".join(f"{_cell(row[c], c in raw):>{col_w}}" for c in cols))
    return "\n".join(lines)


def write_report_json(report: EvaluationReport, path: str | Path) -> Path:
    """Write :meth:`EvaluationReport.to_json` to ``path`` atomically.

    Args:
        report: the report.
        path: the JSON file to write.

    Raises:
        IsADirectoryError: ``path`` is a folder.
    """
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(
            f"--json: {str(p)!r} is a folder; give a file name such as {str(p / 'scores.json')!r}"
        )
    text = encode_json(report.to_json(), str(p))
    with staged_files() as staging:
        staging.path(p).write_text(text + "\n", encoding="utf-8")
    return p
