"""PQ of an open-vocabulary ensemble over every exponent pair, scored on a proxy split (no unseen class).

The proxy is the model's recipe (``segblocks train possam`` or ``segblocks train omg-seg``) run with
``--unseen-classes`` set to ``ClassSplit().proxy().unseen``: the world's held-out classes and
``circle, diamond, ring`` and ``water`` as well. On the calibration images (training split of the
seen world: the truly unseen classes are never drawn), the vocabulary is the 14 seen classes and
the proxy's 4 extra held-out ones are flagged unseen, so ``beta`` is scored on classes the proxy
never trained on. Every ``(alpha, beta)`` of the grid is scored by panoptic PQ: PosSAM's MASE and
fixed ensemble each at their best object threshold
(:func:`segblocks.zoo.possam.calibration.calibrate_exponents`), OMG-Seg's ensemble at its
configured threshold (:func:`segblocks.zoo.omg_seg.calibration.calibrate_exponents`). Prints JSON
and, with ``--table``, the Markdown grids of the model cards::

    python bench/ensemble_exponents.py --model possam --proxy runs/possam_proxy --table
    python bench/ensemble_exponents.py --model omg-seg --proxy runs/omg_proxy --table
"""

from __future__ import annotations

import argparse
import json

import torch

from segblocks.data import CATEGORIES, ClassSplit
from segblocks.heads import EXPONENT_GRID

#: ``((alpha, beta) chosen, {(alpha, beta): PQ})`` of one ensemble.
Table = tuple[tuple[float, float], dict[tuple[float, float], float]]


def _check_proxy(trained: tuple[str, ...]) -> None:
    expected = [c.name for c in CATEGORIES if c.id in ClassSplit().proxy().seen_ids]
    if list(trained) != expected:
        raise SystemExit(f"--proxy: expected a model trained on {expected}, got {list(trained)}")


def _markdown(name: str, scores: dict[tuple[float, float], float]) -> str:
    head = "| alpha \\ beta | " + " | ".join(f"{b:.1f}" for b in EXPONENT_GRID) + " |"
    rows = [head, "|---" * (len(EXPONENT_GRID) + 1) + "|"]
    best = max(scores.values())
    for a in EXPONENT_GRID:
        cells = [f"{100 * scores[a, b]:.1f}" for b in EXPONENT_GRID]
        cells = [f"**{c}**" if scores[a, b] == best else c for c, b in zip(cells, EXPONENT_GRID)]
        rows.append(f"| {a:.1f} | " + " | ".join(cells) + " |")
    return f"{name} (PQ on the proxy):\n\n" + "\n".join(rows)


def _possam(proxy_dir: str, names: list[str], flags: list[bool], images: int) -> dict[str, Table]:
    from segblocks.zoo.possam import PosSAMPredictor, load_possam
    from segblocks.zoo.possam.calibration import calibrate_exponents, calibration_batches

    proxy = load_possam(weights=proxy_dir)
    _check_proxy(proxy.train_vocabulary.names)
    predictor = PosSAMPredictor(proxy, vocabulary=names, is_thing=flags)
    batches = calibration_batches(images=images)
    return {name: calibrate_exponents(predictor, batches, classifier=name) for name in ("mase", "geometric")}


def _omg_seg(proxy_dir: str, names: list[str], flags: list[bool], images: int) -> dict[str, Table]:
    from segblocks.zoo.omg_seg import OMGSegPredictor
    from segblocks.zoo.omg_seg.calibration import calibrate_exponents, calibration_images
    from segblocks.zoo.omg_seg.predict import load_omg_seg

    proxy = load_omg_seg(proxy_dir)
    _check_proxy(proxy.train_vocabulary.names)
    predictor = OMGSegPredictor(proxy, vocabulary=names, is_thing=flags)
    return {"ensemble": calibrate_exponents(predictor, calibration_images(images=images))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=("possam", "omg-seg"))
    p.add_argument("--proxy", required=True, help="run directory of the proxy model")
    p.add_argument("--images", type=int, default=100, help="calibration images (training split)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--table", action="store_true", help="also print the Markdown grids")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    split = ClassSplit()
    seen = [c for c in CATEGORIES if c.id in split.seen_ids]
    names, flags = [c.name for c in seen], [c.is_thing for c in seen]
    run = _possam if args.model == "possam" else _omg_seg
    tables = run(args.proxy, names, flags, args.images)
    result: dict[str, object] = {
        "model": args.model,
        "images": args.images,
        "held_out": [n for n in split.proxy().unseen if n not in split.unseen],
    }
    for name, (best, scores) in tables.items():
        result[name] = {
            "best": list(best),
            "pq": {f"{a},{b}": round(100 * q, 2) for (a, b), q in scores.items()},
        }
    print(json.dumps(result))
    if args.table:
        print("\n\n".join(_markdown(name, scores) for name, (_, scores) in tables.items()))


if __name__ == "__main__":
    main()
