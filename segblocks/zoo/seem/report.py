"""``segblocks eval seem``: the model card's table (interactive, referring, generic) and its ablations."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from segblocks.data import ShapesWorld, ShapesWorldConfig
from segblocks.data.shapes.sample import ShapesSample
from segblocks.zoo.seem.evaluate import (
    FIRST_PROMPTS,
    REFERRING_MODES,
    evaluate_generic,
    evaluate_interactive,
    evaluate_referring,
)
from segblocks.zoo.seem.model import SEEM

__all__ = ["evaluate_all", "format_markdown", "val_samples", "write_json"]


def val_samples(num_images: int, *, image_size: int = 128, seed: int = 0) -> list[ShapesSample]:
    """The first ``num_images`` shapes-world val images.

    Args:
        num_images: how many.
        image_size: image side in pixels.
        seed: the world's seed.
    """
    if num_images < 1:
        raise ValueError(f"--val-images: expected a positive number, got {num_images}")
    world = ShapesWorld(ShapesWorldConfig(image_size=(image_size, image_size), seed=seed), split="val")
    return [world.sample(i) for i in range(num_images)]


def evaluate_all(
    model: SEEM, samples: list[ShapesSample], *, max_clicks: int = 20, ablations: bool = False
) -> dict[str, Any]:
    """Every number of the card: interactive per first prompt, referring (text), PQ; with ``ablations``
    also the composition modes and the memory-off IoU curve (the memory prompts dropped at inference).

    Args:
        model: a SEEM.
        samples: shapes-world samples.
        max_clicks: click cap.
        ablations: also the composition modes and memory off.

    Returns:
        A JSON-ready dictionary.
    """
    inter = evaluate_interactive(model, samples, first_prompts=FIRST_PROMPTS, max_clicks=max_clicks)
    out: dict[str, Any] = {
        "images": len(samples),
        "interactive": {k: asdict(v) for k, v in inter.items()},
        "referring": evaluate_referring(model, samples, mode="text").as_dict(),
        "generic": evaluate_generic(model, samples),
    }
    if ablations:
        out["composition"] = {
            m: evaluate_referring(model, samples, mode=m).as_dict() for m in REFERRING_MODES
        }
        off = evaluate_interactive(
            model, samples, first_prompts=("point",), max_clicks=max_clicks, use_memory=False
        )
        out["memory_off_at_inference"] = asdict(off["point"])
    return out


def _f(v: float, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def format_markdown(results: dict[str, Any]) -> str:
    """The results as the card's markdown tables.

    Args:
        results: :func:`evaluate_all`'s dictionary.
    """
    lines = [f"Shapes-world val, {results['images']} images.", ""]
    lines += ["| first prompt | objects | NoC@85 | NoC@90 | 1-IoU |", "|---|---:|---:|---:|---:|"]
    for kind, m in results["interactive"].items():
        lines.append(
            f"| {kind} | {m['num_objects']} | {_f(m['noc85'])} | {_f(m['noc90'])} | {_f(m['iou1'], 1)} |"
        )
    r = results["referring"]
    g = results["generic"]
    lines += [
        "",
        "| referring (text) | cIoU | mIoU | AP@50 | expressions |",
        "|---|---:|---:|---:|---:|",
        f"| | {_f(r['ciou'], 1)} | {_f(r['miou'], 1)} | {_f(r['ap50'], 1)} | {int(r['num_expressions'])} |",
        "",
        "| generic | PQ | PQ things | PQ stuff |",
        "|---|---:|---:|---:|",
        f"| | {_f(g['pq'], 1)} | {_f(g['pq_things'], 1)} | {_f(g['pq_stuff'], 1)} |",
    ]
    if "composition" in results:
        lines += ["", "| prompts (referring objects) | cIoU | mIoU | AP@50 |", "|---|---:|---:|---:|"]
        names = {
            "text": "text only",
            "visual": "visual only (centre click)",
            "both": "both, self-attention",
            "ensemble": "both, ensemble",
        }
        for mode, m in results["composition"].items():
            lines.append(f"| {names[mode]} | {_f(m['ciou'], 1)} | {_f(m['miou'], 1)} | {_f(m['ap50'], 1)} |")
    if "memory_off_at_inference" in results:
        on = results["interactive"]["point"]["iou_per_click"][:10]
        off = results["memory_off_at_inference"]["iou_per_click"][:10]
        lines += ["", "| click | " + " | ".join(str(i + 1) for i in range(len(on))) + " |"]
        lines.append("|---|" + "---:|" * len(on))
        lines.append("| memory on | " + " | ".join(_f(v, 1) for v in on) + " |")
        lines.append("| memory off | " + " | ".join(_f(v, 1) for v in off) + " |")
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: str | Path) -> Path:
    """Write the results as JSON (NaN as null).

    Args:
        results: :func:`evaluate_all`'s dictionary.
        path: the JSON file.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"--json: {str(path)!r} is a folder; give a file name")

    def clean(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    path.write_text(json.dumps(clean(results), indent=2) + "\n")
    return path
