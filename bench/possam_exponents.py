"""PQ of PosSAM's two ensembles over every exponent pair, scored on a proxy split (no unseen class).

The proxy is ``segblocks train possam`` run on ``ClassSplit.proxy()``
(the shipped recipe with ``circle, diamond, ring`` and ``water`` also held out). On the calibration
images (training split of the seen world: the truly unseen classes are never drawn), the vocabulary
is the 14 seen classes and the proxy's 4 held-out ones are flagged unseen, so ``beta`` is scored on
classes the proxy never trained on. For MASE and the fixed ensemble, each ``(alpha, beta)`` of the
grid is scored at its best object threshold. :func:`~segblocks.zoo.possam.calibration.calibrate`
with ``proxy=`` ships MASE's best pair; this script prints both tables (JSON, and with ``--table``
the Markdown grids of the model card)::

    python bench/possam_exponents.py --proxy runs/possam_proxy --table
"""

from __future__ import annotations

import argparse
import json

import torch

from segblocks.data import CATEGORIES, ShapesWorldConfig
from segblocks.heads import EXPONENT_GRID
from segblocks.zoo.possam import PosSAMPredictor, load_possam
from segblocks.zoo.possam.calibration import (
    calibrate_exponents,
    calibration_batches,
)


def _markdown(name: str, scores: dict[tuple[float, float], float]) -> str:
    head = "| alpha \\ beta | " + " | ".join(f"{b:.1f}" for b in EXPONENT_GRID) + " |"
    rows = [head, "|---" * (len(EXPONENT_GRID) + 1) + "|"]
    best = max(scores.values())
    for a in EXPONENT_GRID:
        cells = [
            f"**{100 * scores[a, b]:.1f}**" if scores[a, b] == best else f"{100 * scores[a, b]:.1f}"
            for b in EXPONENT_GRID
        ]
        rows.append(f"| {a:.1f} | " + " | ".join(cells) + " |")
    return f"{name} (PQ on the proxy):\n\n" + "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--proxy", required=True, help="run directory of the proxy model")
    p.add_argument("--images", type=int, default=100, help="calibration images (training split)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--table", action="store_true", help="also print the Markdown grids")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    proxy = load_possam(weights=args.proxy)
    split = ShapesWorldConfig().split
    expected = [c.name for c in CATEGORIES if c.id in split.proxy().seen_ids]
    if list(proxy.train_vocabulary.names) != expected:
        raise SystemExit(
            f"--proxy: expected a model trained on {expected}, got {list(proxy.train_vocabulary.names)}"
        )
    seen = [c for c in CATEGORIES if c.id in split.seen_ids]
    predictor = PosSAMPredictor(proxy, vocabulary=[c.name for c in seen], is_thing=[c.is_thing for c in seen])
    batches = calibration_batches(images=args.images)
    result: dict[str, object] = {
        "images": args.images,
        "held_out": sorted(set(split.proxy().unseen) - set(split.unseen)),
    }
    tables = []
    for name in ("mase", "geometric"):
        best, scores = calibrate_exponents(predictor, batches, classifier=name)
        result[name] = {
            "best": list(best),
            "pq": {f"{a},{b}": round(100 * q, 2) for (a, b), q in scores.items()},
        }
        tables.append(_markdown(name, scores))
    print(json.dumps(result))
    if args.table:
        print("\n\n".join(tables))


if __name__ == "__main__":
    main()
