"""Stage 2 of Uni-OVSeg (Sec. 3.3, Eqs. 5-8): align mask embeddings with caption entities, no masks given.

For each image-text pair: the region embeddings of the model's own predicted masks by the frozen CLIP,
averaged over the multi-scale ensemble's input sizes, are matched to the caption's entity embeddings
(:class:`~segblocks.matchers.MaskTextMatcher`, confident pairs only); the multi-scale feature adapter's
region embeddings of the matched masks are pulled to their entities by ``1 - cosine`` (Eq. 8,
``align_loss="pull"``) or, with ``align_loss="contrastive"``, classified among every entity named in
the batch's captions (cross-entropy at ``align_temperature``), so a region is also pushed away from the
other names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from segblocks.losses.alignment import region_text_alignment_loss

if TYPE_CHECKING:
    from segblocks.zoo.uni_ovseg.model import UniOVSeg

__all__ = ["mask_text_alignment"]


def mask_text_alignment(
    model: UniOVSeg,
    images: Tensor,
    masks: Sequence[Tensor],
    entities: Sequence[Sequence[str]],
    *,
    ensemble: bool = True,
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """Stage-2 loss of a batch of image-text pairs.

    Args:
        model: the model (its frozen CLIP, adapter and matcher).
        images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
        masks: B ``[M_b, H, W]`` bool masks predicted for each image.
        entities: B lists of entity names parsed from each caption (an image with none, or with no
            mask, is skipped and counted).
        ensemble: match on region embeddings averaged over ``config.ensemble_sizes``.

    Returns:
        ``({"loss_align"}, {"pairs", "skipped", "similarity", "batch_entities"})`` as
        :meth:`UniOVSeg.alignment_losses` (``batch_entities``: distinct entity names of the batch,
        the contrastive loss's candidates).

    Raises:
        ValueError: when ``masks`` or ``entities`` do not have one entry per image.
    """
    if len(masks) != images.shape[0] or len(entities) != images.shape[0]:
        raise ValueError(
            f"masks, entities: expected {images.shape[0]} entries each, got {len(masks)} and {len(entities)}"
        )
    cfg = model.config
    match_sizes = cfg.ensemble_sizes if ensemble else cfg.inference_sizes[:1]
    used = [i for i, (m, names) in enumerate(zip(masks, entities)) if len(names) > 0 and m.shape[0] > 0]
    vocabulary = sorted({name for i in used for name in entities[i]})  # the batch's entity names
    texts = model.entity_embeddings(vocabulary) if vocabulary else None
    temperature = cfg.align_temperature or float(1.0 / model.clip.logit_scale)
    terms: list[Tensor] = []
    sims: list[float] = []
    for i in used:
        assert texts is not None
        image, m = images[i : i + 1], masks[i]
        own = torch.tensor([vocabulary.index(name) for name in entities[i]], dtype=torch.int64)
        with torch.no_grad():
            frozen = model.region_embeddings(image, m[None], match_sizes, adapted=False)[:, 0]
        match = model.mask_text_matcher(frozen, texts[own.to(texts.device)])
        if len(match) == 0:
            continue
        adapted = model.region_embeddings(image, m[None], cfg.inference_sizes[:1], adapted=True)[0, 0]
        terms.append(
            region_text_alignment_loss(
                adapted[match.region_idx.to(adapted.device)],
                texts,
                own[match.entity_idx.cpu()],
                kind=cfg.align_loss,
                temperature=temperature,
            )
        )
        sims += match.similarity.tolist()
    zero = torch.stack([p.sum() for p in model.adapter.trainable_parameters()]).sum() * 0.0
    loss = torch.cat(terms).mean() if terms else zero
    stats = {
        "pairs": float(len(sims)),
        "skipped": float(images.shape[0] - len(used)),
        "similarity": float(sum(sims) / len(sims)) if sims else 0.0,
        "batch_entities": float(len(vocabulary)),
    }
    return {"loss_align": cfg.align_weight * loss + zero}, stats
