"""Write the shipped world-scale weights from a training run: ``python zoo/omg-seg/export_shipped.py RUN_DIR``.

Keeps only the trained tensors (the frozen tiny CLIP ships on its own), fp16, with the run's
``final.json`` as the file's summary.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from segblocks.zoo.omg_seg.predict import load_omg_seg
from segblocks.zoo.omg_seg.shipped import SHIPPED_WEIGHTS, export_trained_weights


def main(run: Path) -> None:
    summary = json.loads((run / "final.json").read_text())
    path = export_trained_weights(
        load_omg_seg(run), SHIPPED_WEIGHTS, metadata={"summary": json.dumps(summary)}
    )
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
