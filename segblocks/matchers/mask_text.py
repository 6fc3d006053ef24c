"""Mask-text bipartite matching (Uni-OVSeg, Sec. 3.3, Eqs. 6-7): confident pairs of masks and caption entities.

An image-text pair has predicted masks but no mask labels, and a caption whose entities may be missing
or hallucinated. Each predicted mask's region embedding (frozen CLIP, mask-pooled) is compared with
each entity's text embedding; the cost is the reverse cosine similarity, averaged over the input
scales of the multi-scale ensemble (Eq. 7). Hungarian matching assigns each entity at most one mask
and each mask at most one entity; a pair is kept as *confident* when its (scale-averaged) cosine
similarity reaches ``min_similarity``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from segblocks._validation import check_dtype

__all__ = ["MaskTextMatch", "MaskTextMatcher"]


@dataclass
class MaskTextMatch:
    """Confident pairs of one image.

    Attributes:
        region_idx: ``[K]`` int64 indices of the matched masks.
        entity_idx: ``[K]`` int64 indices of their entities.
        similarity: ``[K]`` float32 scale-averaged cosine similarity of each pair.
    """

    region_idx: Tensor
    entity_idx: Tensor
    similarity: Tensor

    def __len__(self) -> int:
        return int(self.region_idx.numel())


class MaskTextMatcher(nn.Module):
    """Hungarian matching of region embeddings to entity embeddings on the reverse cosine similarity.

    Args:
        min_similarity: keep a pair only when its cosine similarity reaches this value (``-1`` keeps
            every matched pair).
    """

    def __init__(self, *, min_similarity: float = 0.0) -> None:
        super().__init__()
        if not -1.0 <= min_similarity <= 1.0:
            raise ValueError(f"min_similarity: expected a value in [-1, 1], got {min_similarity}")
        self.min_similarity = min_similarity

    @torch.no_grad()
    def forward(self, region_embeddings: Tensor, entity_embeddings: Tensor) -> MaskTextMatch:
        """Match one image's masks to its caption's entities.

        Args:
            region_embeddings: ``[N, E]`` or ``[S, N, E]`` (one set per input scale) region embeddings.
            entity_embeddings: ``[M, E]`` entity text embeddings.

        Returns:
            :class:`MaskTextMatch` with ``K <= min(N, M)`` confident pairs (on the CPU).

        Raises:
            ValueError: on no entities (a caption without a known entity: skip the image), wrong ranks
                or mismatched widths.
            TypeError: on non-floating inputs.
        """
        check_dtype("region_embeddings", region_embeddings, "floating")
        check_dtype("entity_embeddings", entity_embeddings, "floating")
        regions = region_embeddings[None] if region_embeddings.ndim == 2 else region_embeddings
        if regions.ndim != 3:
            raise ValueError(
                f"region_embeddings: expected [N, E] or [S, N, E], got shape {tuple(region_embeddings.shape)}"
            )
        if entity_embeddings.ndim != 2 or entity_embeddings.shape[1] != regions.shape[2]:
            raise ValueError(
                f"entity_embeddings: expected [M, E={regions.shape[2]}], got shape {tuple(entity_embeddings.shape)}"
            )
        if entity_embeddings.shape[0] == 0:
            raise ValueError("entity_embeddings: no entities to match (skip images whose caption names none)")
        empty = torch.zeros(0, dtype=torch.int64)
        if regions.shape[1] == 0:
            return MaskTextMatch(empty, empty, torch.zeros(0))
        with torch.autocast(device_type=regions.device.type, enabled=False):
            sim = torch.einsum(
                "sne,me->snm",
                F.normalize(regions.float(), dim=-1),
                F.normalize(entity_embeddings.float(), dim=-1),
            ).mean(0)  # [N, M], Eq. 7: the scales' costs averaged
        sim_np = sim.cpu().numpy()
        if not np.isfinite(sim_np).all():
            raise ValueError("region_embeddings: non-finite similarities (NaN or inf in the embeddings)")
        rows, cols = linear_sum_assignment(1.0 - sim_np)
        keep = sim_np[rows, cols] >= self.min_similarity
        rows, cols = rows[keep], cols[keep]
        return MaskTextMatch(
            region_idx=torch.as_tensor(rows, dtype=torch.int64),
            entity_idx=torch.as_tensor(cols, dtype=torch.int64),
            similarity=torch.as_tensor(sim_np[rows, cols], dtype=torch.float32),
        )
