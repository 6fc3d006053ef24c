"""Region-text alignment losses: pull a region embedding to its text, or contrast it against the others.

Uni-OVSeg's Eq. 8 pulls each confident region embedding toward its entity's text embedding
(``1 - cosine``). With no negatives, that pull may move regions of different classes toward what their
names share; the contrastive form (InfoNCE over a set of text embeddings, e.g. every entity of the
batch) also pushes a region away from the other names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ALIGNMENT_LOSSES", "region_text_alignment_loss"]

#: ``"pull"``: ``1 - cos(region, its text)`` (Uni-OVSeg Eq. 8); ``"contrastive"``: cross-entropy of
#: ``cos(region, texts) / temperature`` against the region's own text.
ALIGNMENT_LOSSES = ("pull", "contrastive")


def region_text_alignment_loss(
    regions: Tensor,
    texts: Tensor,
    targets: Tensor,
    *,
    kind: str = "pull",
    temperature: float = 0.07,
) -> Tensor:
    """Per-pair alignment loss of region embeddings with text embeddings (computed in fp32).

    Args:
        regions: ``[P, E]`` region embeddings (normalised here).
        texts: ``[V, E]`` text embeddings (normalised here): the candidate names.
        targets: ``[P]`` int64 index into ``texts`` of each region's own text.
        kind: ``"pull"`` (``1 - cos(region, texts[target])``; the other texts are not read) or
            ``"contrastive"`` (``-log softmax(cos(region, texts) / temperature)[target]``).
        temperature: softmax temperature of the contrastive loss (> 0).

    Returns:
        ``[P]`` loss of each pair (zero-sized when ``P = 0``).

    Raises:
        ValueError: on an unknown ``kind``, a non-positive ``temperature``, mismatched shapes or a
            target outside ``texts``.
        TypeError: when ``targets`` is not an integer tensor.
    """
    if kind not in ALIGNMENT_LOSSES:
        raise ValueError(f"kind: expected one of {ALIGNMENT_LOSSES}, got {kind!r}")
    if not temperature > 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature}")
    if regions.ndim != 2 or texts.ndim != 2 or regions.shape[1] != texts.shape[1]:
        raise ValueError(
            f"regions, texts: expected [P, E] and [V, E] with the same E, got {tuple(regions.shape)} "
            f"and {tuple(texts.shape)}"
        )
    if targets.dtype == torch.bool or targets.is_floating_point() or targets.is_complex():
        raise TypeError(f"targets: expected an integer tensor, got {targets.dtype}")
    if targets.shape != (regions.shape[0],):
        raise ValueError(f"targets: expected shape ({regions.shape[0]},), got {tuple(targets.shape)}")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= texts.shape[0]):
        raise ValueError(f"targets: expected indices in [0, {texts.shape[0]}), got {targets.tolist()}")
    r = F.normalize(regions.float(), dim=-1)
    t = F.normalize(texts.float(), dim=-1).to(r.device)
    targets = targets.to(r.device)
    if kind == "pull":
        return 1.0 - (r * t[targets]).sum(-1)
    return F.cross_entropy(r @ t.T / temperature, targets, reduction="none")
