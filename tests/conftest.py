"""Suite-wide test settings."""

from __future__ import annotations

import torch

# The suite runs as `pytest -n 2` on 2 cores: one intra-op thread per worker avoids oversubscription
# (tiny models run several times faster this way than with torch's default thread count).
torch.set_num_threads(1)
