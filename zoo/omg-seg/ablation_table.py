"""The card's ablation tables from the runs of ``zoo/omg-seg/ablations.sh`` and ``negatives.sh``.

Usage: ``python zoo/omg-seg/ablation_table.py OUT_DIR`` (the folder given to either script).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _row(label: str, final: dict[str, float], keys: list[str]) -> str:
    return f"| {label} | " + " | ".join(f"{final[k]:.1f}" for k in keys) + " |"


NEGATIVES = {
    "none": "none, zero void (official)",
    "sphere": "64 random directions, zero void",
    "opposite": "negated training names, zero void",
    "opposite_void": "negated training names, learned void (shipped)",
    "void": "none, learned void",
    "margin10": "negated training names past cosine 0.1, learned void",
    "margin20": "negated training names past cosine 0.2, learned void",
}


def negatives_table(runs: dict[str, dict[str, float]]) -> None:
    """The class-negative probes of ``negatives.sh``."""
    keys = [
        "ps_pq",
        "ps_pq_things",
        "ps_pq_stuff",
        "ov_pq_seen",
        "ov_pq_unseen",
        "is_ap",
        "ss_miou",
        "vps_vpq",
        "vis_ap",
        "vos_jf",
        "click_miou",
        "box_miou",
    ]
    print("Class negatives and void prototype (600 steps):\n")
    print(
        "| negatives, void | PS PQ | things | stuff | OV PQ trained | OV PQ held-out | IS AP | SS mIoU "
        "| VPS VPQ | VIS AP | VOS J&F | 1-click mIoU | box mIoU |"
    )
    print("|---|" + "---:|" * len(keys))
    for name, label in NEGATIVES.items():
        if name in runs:
            print(_row(label, runs[name], keys))
    print()


def main(out: Path) -> None:
    names = ("joint", "joint_open", "images", "clips", *NEGATIVES)
    runs = {
        name: json.loads((out / name / "final.json").read_text())
        for name in names
        if (out / name / "final.json").is_file()
    }
    if any(name in runs for name in NEGATIVES):
        negatives_table(runs)
    if not any(name in runs for name in ("joint", "joint_open", "images", "clips")):
        return
    print("Location queries' self-attention mask (joint runs):\n")
    keys = ["click_miou", "box_miou", "ps_pq", "vis_ap", "ss_miou"]
    print("| self-attention of location queries | 1-click mIoU | box mIoU | PS PQ | VIS AP | SS mIoU |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, label in (
        ("joint_open", "without the mask (attend to each other)"),
        ("joint", "with the mask (only themselves)"),
    ):
        if name in runs:
            print(_row(label, runs[name], keys))
    print("\nCo-training at equal steps:\n")
    keys = [
        "ps_pq",
        "is_ap",
        "ss_miou",
        "vps_vpq",
        "vis_ap",
        "vss_miou",
        "vos_jf",
        "click_miou",
        "box_miou",
        "ov_pq_unseen",
    ]
    print(
        "| trained on | PS PQ | IS AP | SS mIoU | VPS VPQ | VIS AP | VSS mIoU | VOS J&F | 1-click mIoU | box mIoU | OV PQ held-out |"
    )
    print("|---|" + "---:|" * len(keys))
    for name, label in (
        ("joint", "images + clips + prompts"),
        ("images", "images only"),
        ("clips", "clips only"),
    ):
        if name in runs:
            print(_row(label, runs[name], keys))
    for name, final in runs.items():
        print(f"\n{name}: {final['step']} steps in {final['wall_minutes']:.1f} min", end="")
    print()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/omg-seg/ablation"))
