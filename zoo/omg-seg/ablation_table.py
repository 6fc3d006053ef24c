"""The card's ablation tables from the runs of ``zoo/omg-seg/ablations.sh``.

Usage: ``python zoo/omg-seg/ablation_table.py OUT_DIR`` (the folder given to ``ablations.sh``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _row(label: str, final: dict[str, float], keys: list[str]) -> str:
    return f"| {label} | " + " | ".join(f"{final[k]:.1f}" for k in keys) + " |"


def main(out: Path) -> None:
    runs = {
        name: json.loads((out / name / "final.json").read_text())
        for name in ("joint", "joint_open", "images", "clips")
        if (out / name / "final.json").is_file()
    }
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
