"""Plot learning curves (accuracy against samples seen) from ``curve.jsonl`` files as a PNG, with PIL.

Each line of a ``curve.jsonl`` (written by ``segblocks train shapes-clip --curve-every N``) is one
evaluation: ``{"thing_crops_seen": ..., "thing_top1": ..., ...}``. One polyline per (run, metric)::

    python bench/plot_curves.py --out zoo/shapes-clip-tiny/curves.png \
        --run "lr 1e-2, 64 px=runs/probe_a/curve.jsonl" --run "shipped=runs/clip/curve.jsonl" \
        --metric thing_top1 --metric mask_pool_top1

A run may name its own metric after ``@`` (records without it, such as a recipe's training-loss
lines in ``metrics.jsonl``, are skipped), so one file can give several curves::

    python bench/plot_curves.py --out curves.png --x step --y-label "PQ (%)" \
        --run "MASE=runs/possam/metrics.jsonl@val/mase/pq" --run "LDP=runs/possam/metrics.jsonl@val/ldp/pq"
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
_DASHES = ((1, 0), (6, 4), (2, 3))  # one dash pattern per metric
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 900, 560, 70, 250, 30, 60


def _dashed(
    draw: ImageDraw.ImageDraw,
    p: tuple[float, float],
    q: tuple[float, float],
    dash: tuple[int, int],
    colour: str,
) -> None:
    on, off = dash
    if off == 0:
        draw.line([p, q], fill=colour, width=2)
        return
    length = max(((q[0] - p[0]) ** 2 + (q[1] - p[1]) ** 2) ** 0.5, 1e-6)
    t = 0.0
    while t < length:
        a, b = t / length, min(t + on, length) / length
        draw.line(
            [
                (p[0] + a * (q[0] - p[0]), p[1] + a * (q[1] - p[1])),
                (p[0] + b * (q[0] - p[0]), p[1] + b * (q[1] - p[1])),
            ],
            fill=colour,
            width=2,
        )
        t += on + off


def _tick_step(x_max: float) -> float:
    """A round tick spacing (1, 2 or 5 times a power of ten) giving about five ticks up to ``x_max``."""
    base = 10 ** math.floor(math.log10(max(x_max, 1e-9) / 5))
    return next(m * base for m in (1, 2, 5, 10) if x_max / (m * base) <= 6)


def plot_curves(
    runs: Sequence[tuple[str, Path] | tuple[str, Path, str]],
    metrics: Sequence[str],
    out: Path,
    x_key: str = "thing_crops_seen",
    *,
    y_scale: float = 1.0,
    y_label: str = "val top-1 (%)",
) -> Path:
    """Draw every run's ``metrics`` (times ``y_scale``, percent 0-100) against ``x_key`` and save a PNG.

    Args:
        runs: ``(label, curve.jsonl path)`` pairs, or ``(label, path, metric)`` for a run drawn with
            its own metric instead of ``metrics``.
        metrics: keys of the curve records to draw (at most three: solid, dashed, dotted).
        out: the PNG to write.
        x_key: the record key of the x axis.
        y_scale: factor from the records' values to percent (100 for fractions).
        y_label: the y axis' title.

    Returns:
        ``out``.

    Raises:
        ValueError: on no runs, no or too many metrics, or a file without records.
    """
    if not runs:
        raise ValueError("runs: expected at least one (label, path) pair")
    if not 1 <= len(metrics) <= len(_DASHES):
        raise ValueError(f"metrics: expected 1-{len(_DASHES)} metric names, got {list(metrics)}")
    if not y_scale > 0:
        raise ValueError(f"y_scale: expected a positive factor, got {y_scale!r}")
    data = []
    for label, path, *own in runs:
        records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        keys = list(own) or list(metrics)
        records = [r for r in records if x_key in r and any(k in r for k in keys)]
        if not records:
            raise ValueError(f"runs: {str(path)!r} holds no curve records with {x_key!r} and {keys}")
        data.append((label, records, keys))
    x_max = max(r[x_key] for _, records, _ in data for r in records) * 1.05
    img = Image.new("RGB", (_W, _H), "white")
    draw = ImageDraw.Draw(img)
    x0, x1, y0, y1 = _LEFT, _W - _RIGHT, _H - _BOTTOM, _TOP

    def to_px(x: float, y: float) -> tuple[float, float]:
        return x0 + (x1 - x0) * x / x_max, y0 + (y1 - y0) * y / 100

    for y in range(0, 101, 10):
        _, py = to_px(0, y)
        draw.line([(x0, py), (x1, py)], fill="#e0e0e0")
        draw.text((x0 - 30, py - 6), f"{y}", fill="black")
    tick = _tick_step(x_max)
    for k in range(int(x_max // tick) + 1):
        px, _ = to_px(k * tick, 0)
        draw.line([(px, y0), (px, y0 + 4)], fill="black")
        draw.text((px - 15, y0 + 8), f"{k * tick / 1000:g}k", fill="black")
    draw.rectangle([x0, y1, x1, y0], outline="black")
    draw.text(((x0 + x1) / 2 - 60, y0 + 30), f"{x_key} (training)", fill="black")
    draw.text((x0, 8), y_label, fill="black")
    legend_y = _TOP
    for i, (label, records, keys) in enumerate(data):
        colour = _COLOURS[i % len(_COLOURS)]
        for metric, dash in zip(keys, _DASHES):
            points = [to_px(r[x_key], r[metric] * y_scale) for r in records if metric in r]
            for p, q in itertools.pairwise(points):
                _dashed(draw, p, q, dash, colour)
            for px, py in points:
                draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
            _dashed(draw, (x1 + 12, legend_y + 6), (x1 + 42, legend_y + 6), dash, colour)
            draw.text((x1 + 48, legend_y), f"{label}: {metric}", fill="black")
            legend_y += 16
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``--run LABEL=PATH`` (repeatable), ``--metric NAME`` (repeatable), ``--out``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--run",
        action="append",
        required=True,
        help="LABEL=path/to/curve.jsonl[@METRIC] (METRIC: this run's own)",
    )
    p.add_argument("--metric", action="append", default=None, help="record key to plot (default thing_top1)")
    p.add_argument("--x", default="thing_crops_seen", help="record key of the x axis")
    p.add_argument("--y-scale", type=float, default=1.0, help="factor to percent (100 for fractions)")
    p.add_argument("--y-label", default="val top-1 (%)", help="title of the y axis")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = p.parse_args(argv)
    runs: list[tuple[str, Path] | tuple[str, Path, str]] = []
    for spec in args.run:
        if "=" not in spec:
            raise ValueError(f"--run: expected LABEL=PATH[@METRIC], got {spec!r}")
        label, path = spec.split("=", 1)
        path, at, metric = path.partition("@")
        runs.append((label, Path(path), metric) if at else (label, Path(path)))
    plot_curves(
        runs,
        args.metric or ["thing_top1"],
        args.out,
        x_key=args.x,
        y_scale=args.y_scale,
        y_label=args.y_label,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
