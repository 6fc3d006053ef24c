"""``segblocks eval seem``: the model card's numbers (interactive, referring, generic) and its ablations,
as the :class:`~segblocks.evaluation.EvaluationReport` the other ``segblocks eval`` commands print."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from segblocks.data import ShapesWorld, ShapesWorldConfig
from segblocks.data.shapes.sample import ShapesSample
from segblocks.evaluation import EvaluationReport
from segblocks.zoo.seem.evaluate import (
    FIRST_PROMPTS,
    REFERRING_MODES,
    evaluate_generic,
    evaluate_interactive,
    evaluate_referring,
)
from segblocks.zoo.seem.model import SEEM

__all__ = ["COMPOSITION_ROWS", "UNSCALED", "evaluate_all", "evaluation_report", "val_samples"]


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


#: Summary keys and row columns that are not fractions: mean click counts.
UNSCALED = ("NoC@85", "NoC@90")

#: Row names of the composition ablation's modes.
COMPOSITION_ROWS = {
    "text": "text only",
    "visual": "visual only (centre click)",
    "both": "both, self-attention",
    "ensemble": "both, ensemble",
}


def _referring_row(m: dict[str, float]) -> dict[str, float]:
    return {"cIoU": m["ciou"] / 100, "mIoU": m["miou"] / 100, "AP@50": m["ap50"] / 100}


def evaluation_report(results: dict[str, Any]) -> EvaluationReport:
    """The card's numbers as the :class:`~segblocks.evaluation.EvaluationReport` every ``segblocks eval`` prints.

    Summary: the point-first NoC@85, NoC@90 (mean clicks) and 1-IoU, referring cIoU, mIoU, AP@50 and
    generic PQ. Rows: one per first prompt (NoC@85, NoC@90, 1-IoU), ``referring (text)``
    (with the ablations, one per composition mode after it), ``generic`` and, with the ablations,
    the point-first IoU after each click with memory on and off. Counts: images, objects (every
    thing of the images, prompted once per first-prompt type) and referring expressions.
    Percentages become fractions; NoC stays a click count (:data:`UNSCALED`).

    Args:
        results: :func:`evaluate_all`'s dictionary (kept as the report's ``result``).
    """
    interactive, referring, generic = results["interactive"], results["referring"], results["generic"]
    rows: dict[str, dict[str, float]] = {
        kind: {"NoC@85": m["noc85"], "NoC@90": m["noc90"], "1-IoU": m["iou1"] / 100}
        for kind, m in interactive.items()
    }
    rows["referring (text)"] = _referring_row(referring)
    for mode, m in results.get("composition", {}).items():
        rows[f"composition: {COMPOSITION_ROWS[mode]}"] = _referring_row(m)
    pq_fields = (("PQ", "pq"), ("PQ_th", "pq_things"), ("PQ_st", "pq_stuff"))
    rows["generic"] = {key: generic[name] / 100 for key, name in pq_fields}
    if "memory_off_at_inference" in results:
        for name, m in (
            ("memory on", interactive["point"]),
            ("memory off", results["memory_off_at_inference"]),
        ):
            rows[f"point, {name}"] = {f"IoU@{k + 1}": v / 100 for k, v in enumerate(m["iou_per_click"])}
    point = interactive["point"]
    summary = {"NoC@85": point["noc85"], "NoC@90": point["noc90"], "1-IoU": point["iou1"] / 100}
    summary.update(_referring_row(referring))
    summary["PQ"] = rows["generic"]["PQ"]
    return EvaluationReport(
        task="seem",
        summary=summary,
        counts={
            "images": int(results["images"]),
            "objects": int(point["num_objects"]),
            "expressions": int(referring["num_expressions"]),
        },
        rows=rows,
        result=results,
        unscaled=UNSCALED,
    )
