"""Paper-scale OMG-Seg parameter counts on the meta device (no weights, no memory): ``python zoo/omg-seg/param_counts.py``."""

from __future__ import annotations

from segblocks.data import CATEGORIES
from segblocks.zoo import build_omg_seg


def main() -> None:
    model = build_omg_seg("convnext_large", vocabulary=[c.name for c in CATEGORIES], device="meta")
    rows: dict[str, tuple[int, int]] = {}
    for name, p in model.named_parameters():
        top = name.split(".")[0]
        if top == "clip":
            top = "clip.visual" if name.startswith("clip.clip.visual.") else "clip.text"
        t, f = rows.get(top, (0, 0))
        rows[top] = (t + p.numel(), f) if p.requires_grad else (t, f + p.numel())
    print("| module | trainable (M) | frozen (M) |")
    print("|---|---:|---:|")
    for top, (t, f) in sorted(rows.items(), key=lambda kv: -sum(kv[1])):
        print(f"| `{top}` | {t / 1e6:.2f} | {f / 1e6:.2f} |")
    counts = model.state_summary()
    print(f"| **total** | **{counts['trainable'] / 1e6:.2f}** | **{counts['frozen'] / 1e6:.2f}** |")


if __name__ == "__main__":
    main()
