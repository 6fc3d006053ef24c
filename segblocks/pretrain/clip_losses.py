"""The tiny CLIP's training losses (see ``segblocks.pretrain.shapes_clip`` for the recipe).

Captions and phrases against whole images and crops (open_clip's ``ClipLoss``), crops and mask-pooled
segments against the class names (by label, seen classes only; or by phrase, every class), an
optional label head, and a text-only
uniformity of the class names; plus :func:`running_batch_norm`, which lets whole images share the
crops' batch-norm statistics.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from torch import Tensor, nn

from segblocks.backbones import OpenCLIPBackbone
from segblocks.data.shapes import CATEGORIES
from segblocks.pretrain.clip_data import TRAIN_TEMPLATES, ClipBatch, Phrase

__all__ = ["clip_losses", "multi_positive_loss", "phrase_relations", "running_batch_norm"]


def _class_text_embeddings(backbone: OpenCLIPBackbone, rng: np.random.Generator) -> Tensor:
    """``[18, D]`` unit-norm embeddings of the class names, one random template each."""
    sentences = [TRAIN_TEMPLATES[int(rng.integers(len(TRAIN_TEMPLATES)))].format(c.name) for c in CATEGORIES]
    return backbone.clip.encode_text(backbone.tokenize(sentences), normalize=True)


def _seen_cross_entropy(logits: Tensor, labels: Tensor, unseen: Tensor) -> Tensor:
    """Cross-entropy over the cases of seen classes only (0 when there are none).

    Args:
        logits: ``[N, 18]`` scores against every class name (unseen names stay as negatives).
        labels: ``[N]`` category ids.
        unseen: ``[18]`` bool, True for the classes held out from segmentation training.
    """
    keep = ~unseen[labels]
    if not bool(keep.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[keep], labels[keep])


def phrase_relations(rows: Sequence[Phrase], cols: Sequence[Phrase]) -> tuple[Tensor, Tensor]:
    """Which texts describe which objects, judged from the texts alone.

    An object is known only by its own phrase (``rows``: ``"red star"`` says nothing of its size).
    A text (``cols``) is *true* of it when it names the same class and mentions no attribute the
    object's phrase does not state alike (``"star"``, ``"red star"``); *false* when it names another
    class or states an attribute differently (``"blue star"``); and *unknown* otherwise
    (``"small star"``: the object may be small), neither positive nor negative in the loss.

    Args:
        rows: the objects' phrases (``R``).
        cols: the texts' phrases (``C``).

    Returns:
        ``(true, false)``: ``[R, C]`` bool tensors; their complement is the unknown pairs.
    """

    def codes(values: list[str | None]) -> tuple[Tensor, Tensor]:
        vocab = {v: i for i, v in enumerate(sorted({v for v in values if v is not None}))}
        return torch.tensor([-1 if v is None else vocab[v] for v in values]).split([len(rows), len(cols)])

    true = torch.ones(len(rows), len(cols), dtype=torch.bool)
    false = torch.zeros(len(rows), len(cols), dtype=torch.bool)
    for field in ("name", "colour", "size"):
        r, c = codes([getattr(p, field) for p in (*rows, *cols)])
        stated, mentioned = (r >= 0)[:, None], (c >= 0)[None, :]
        differ = r[:, None] != c[None, :]
        false |= stated & mentioned & differ
        true &= ~mentioned | (stated & ~differ)
    return true & ~false, false


def multi_positive_loss(logits: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
    """Symmetric contrastive loss with several positives per row and column and ignored pairs.

    Each row's softmax runs over its positive and negative columns only, and its loss is the mean
    negative log-probability of its positives (the supervised-contrastive form); likewise for
    columns. Rows or columns without a positive are left out.

    Args:
        logits: ``[R, C]`` scaled similarities.
        positive: ``[R, C]`` bool, the true pairs.
        negative: ``[R, C]`` bool, the false pairs (disjoint from ``positive``).

    Returns:
        Scalar: the mean of the row and column losses (0 when no pair is positive).

    Raises:
        ValueError: when the three shapes differ or a pair is both positive and negative.
    """
    if logits.shape != positive.shape or logits.shape != negative.shape or logits.dim() != 2:
        raise ValueError(
            f"logits, positive, negative: expected one [R, C] shape, got {tuple(logits.shape)}, "
            f"{tuple(positive.shape)}, {tuple(negative.shape)}"
        )
    if bool((positive & negative).any()):
        raise ValueError("positive, negative: a pair is marked both positive and negative")

    def one_side(lg: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        keep = pos.any(-1)
        lg, pos, neg = lg[keep], pos[keep], neg[keep]
        log_p = lg.masked_fill(~(pos | neg), float("-inf")).log_softmax(-1)
        return -(log_p.masked_fill(~pos, 0.0).sum(-1) / pos.sum(-1)).mean()

    if not bool(positive.any()):
        return logits.sum() * 0.0
    return (one_side(logits, positive, negative) + one_side(logits.T, positive.T, negative.T)) / 2


def _views(batch: ClipBatch, num_crops: int) -> int:
    """How many crops of each thing ``num_crops`` crops hold (every view of every thing, then the stuff)."""
    return (num_crops - len(batch.stuff_phrases)) // max(len(batch.thing_phrases), 1)


def _crop_phrases(batch: ClipBatch, num_crops: int) -> list[Phrase]:
    """The phrase of each of ``num_crops`` crops (every view of every thing, then the stuff crops)."""
    return batch.thing_phrases * _views(batch, num_crops) + batch.stuff_phrases


def _phrase_losses(
    backbone: OpenCLIPBackbone, batch: ClipBatch, crops: Tensor, regions: Tensor, scale: Tensor
) -> dict[str, Tensor]:
    """Crops and mask-pooled segments against the batch's distinct phrase texts (``phrase_relations``)."""
    columns: dict[str, Phrase] = {}  # one column per distinct text
    for text, phrase in zip(
        batch.thing_texts + batch.stuff_texts, batch.thing_phrases + batch.stuff_phrases, strict=True
    ):
        columns.setdefault(text, phrase)
    texts = backbone.clip.encode_text(backbone.tokenize(list(columns)), normalize=True)
    phrases = list(columns.values())
    losses = {}
    for key, embeddings, rows in (
        ("crop_phrase", crops, _crop_phrases(batch, len(crops))),
        ("region_phrase", regions, batch.mask_phrases),
    ):
        true, false = phrase_relations(rows, phrases)
        losses[key] = multi_positive_loss(scale * embeddings @ texts.T, true, false)
    return losses


def clip_losses(
    backbone: OpenCLIPBackbone,
    batch: ClipBatch,
    rng: np.random.Generator,
    *,
    unseen_ids: Collection[int],
    crop_phrases: bool = True,
    label_head: nn.Module | None = None,
    crop_statistics: bool = False,
    phrase_matching: bool = False,
    class_targets: str = "labels",
    region_labels: bool = False,
    region_crop: bool = False,
) -> dict[str, Tensor]:
    """The three training losses of the tiny CLIP on one batch (see the module docstring).

    The class-name losses see only crops and segments of *seen* classes (the unseen names stay in
    the vocabulary, as negatives): the image tower learns the unseen classes from the captions and
    phrases of ``ClipLoss`` alone, as a web-trained CLIP would.

    Args:
        backbone: the (trainable) CLIP backbone.
        batch: a :class:`~segblocks.pretrain.clip_data.ClipBatch`.
        rng: random generator for the class-name templates.
        unseen_ids: category ids held out from the class-name losses (the world's unseen classes).
        crop_phrases: also pair the thing and stuff crops with their phrases in the contrastive loss
            (else only whole images and captions; the crops still learn from the class-name loss).
        label_head: a linear layer ``D -> 18`` trained beside the CLIP (not saved): plain
            cross-entropy of the crops' image embeddings against their labels, seen classes only.
            It gives the image tower a shape signal from the first step, when the text tower
            still gives every shape name nearly the same embedding (see the model card).
        crop_statistics: normalise the whole images with the batch-norm running statistics
            (which the crops train; see :func:`running_batch_norm`) instead of their own.
        phrase_matching: pair crops *and mask-pooled segments* with the batch's distinct phrase
            texts by what the texts say (:func:`phrase_relations`, :func:`multi_positive_loss`:
            losses ``"crop_phrase"`` and ``"region_phrase"``) instead of open_clip's one-to-one
            ``ClipLoss``, which counts ``"a star"`` as false of every star but one; ``"caption"``
            then pairs whole images with captions only. Seen and unseen classes alike.
        class_targets: what the class-name losses take as each crop's and segment's true name:
            ``"labels"`` its category id, seen classes only (the unseen names stay as negatives);
            ``"phrases"`` the class its own phrase names, for every class -- each of the 18
            class-name texts judged true or false of the object by :func:`phrase_relations`, like
            any other phrase, so no label reaches the loss.
        region_labels: also apply ``label_head`` to the mask-pooled segments of the whole images
            (loss ``"region_label"``, seen classes only, as for the crops), so the label signal
            reaches the dense map, not only the crops' pooled embedding. Needs ``label_head``.
            Off in the recipe: measured, it slows the crops and lowers mask pooling of things
            (the tiny CLIP's card, ``clip_v15``).
        region_crop: also pull each thing's mask-pooled embedding in the whole image towards the
            mean embedding of its own crops (loss ``"region_crop"``: one minus their cosine, the
            crops' side detached), so the dense map names a thing as its crops do. It pairs two
            views of one object; no label or phrase enters. Off in the recipe: measured, it lowers
            mask pooling of things (the tiny CLIP's card, ``clip_v17``).

    Returns:
        ``{"caption": ..., "crop_class": ..., "region_class": ..., "name_uniformity": ...}`` scalar
        fp32 losses, and ``"crop_label"`` with a ``label_head`` (and ``"region_label"`` with
        ``region_labels``; ``"region_crop"`` with ``region_crop``). ``name_uniformity`` (Wang &
        Isola's uniformity of the 18 class-name embeddings, a text-only term) is logged always and
        weighted by the recipe's ``--uniformity-weight``; ``"crop_phrase"`` and ``"region_phrase"``
        with ``phrase_matching``.

    Raises:
        ValueError: on an unseen id that is not a category id, an unknown ``class_targets``, or
            ``region_labels`` without a ``label_head``.
    """
    if class_targets not in ("labels", "phrases"):
        raise ValueError(f"class_targets: expected 'labels' or 'phrases', got {class_targets!r}")
    if region_labels and label_head is None:
        raise ValueError("region_labels: needs a label_head to apply to the mask-pooled segments")
    bad = sorted(i for i in unseen_ids if not 0 <= i < len(CATEGORIES))
    if bad:
        raise ValueError(f"unseen_ids: expected category ids in [0, {len(CATEGORIES)}), got {bad}")
    unseen = torch.zeros(len(CATEGORIES), dtype=torch.bool)
    unseen[sorted(unseen_ids)] = True
    clip = backbone.clip
    scale = clip.logit_scale.exp()
    n_things = len(batch.thing_texts)
    crop_embeddings = backbone(batch.crops)["clip_global"]
    # one set of batch-norm statistics, the crops', for every input (see running_batch_norm)
    with running_batch_norm(backbone) if crop_statistics else nullcontext():
        feats = backbone(batch.images)
    crops = F.normalize(crop_embeddings, dim=-1)
    images = F.normalize(feats["clip_global"], dim=-1)
    pooled = backbone.pool_masks(feats["clip_dense"], batch.masks, normalize=False)  # [B, S, D]
    regions = F.normalize(pooled, dim=-1)
    valid = batch.mask_labels >= 0
    extra: dict[str, Tensor] = {}
    if phrase_matching:
        texts = clip.encode_text(backbone.tokenize(batch.captions), normalize=True)
        caption = ClipLoss()(images, texts, scale)
        extra = _phrase_losses(backbone, batch, crops, regions[valid], scale)
    elif crop_phrases:
        n_stuff = len(batch.stuff_texts)
        phrases = batch.captions + batch.thing_texts + batch.stuff_texts
        texts = clip.encode_text(backbone.tokenize(phrases), normalize=True)
        paired = [images, crops[:n_things], crops[len(crops) - n_stuff :]]
        caption = ClipLoss()(torch.cat(paired), texts, scale)
    else:
        texts = clip.encode_text(backbone.tokenize(batch.captions), normalize=True)
        caption = ClipLoss()(images, texts, scale)
    classes = _class_text_embeddings(backbone, rng)
    # Wang & Isola's uniformity of the class-name embeddings: a text-only term (no image, no label)
    # that keeps the names apart from the first step, so that the class-name losses can separate
    # the crops instead of merging the names.
    # in fp32: pdist has no bf16 kernel on CPU, and the losses must also run under bf16 autocast
    uniformity = torch.pdist(classes.float()).pow(2).mul(-2).exp().mean().log()
    if class_targets == "labels":
        crop_class = _seen_cross_entropy(scale * crops @ classes.T, batch.crop_labels, unseen)
        region_class = _seen_cross_entropy(
            scale * regions[valid] @ classes.T, batch.mask_labels[valid], unseen
        )
    else:
        names = [Phrase(c.name) for c in CATEGORIES]
        crop_class, region_class = (
            multi_positive_loss(scale * embeddings @ classes.T, *phrase_relations(rows, names))
            for embeddings, rows in (
                (crops, _crop_phrases(batch, len(crops))),
                (regions[valid], batch.mask_phrases),
            )
        )
    losses = {
        "caption": caption,
        "crop_class": crop_class,
        "region_class": region_class,
        "name_uniformity": uniformity,
        **extra,
    }
    if label_head is not None:
        losses["crop_label"] = _seen_cross_entropy(label_head(crop_embeddings), batch.crop_labels, unseen)
    if region_labels:
        # mask pooling commutes with the tower's linear head, so the pooled dense map lives where the
        # crops' ``clip_global`` does and the same head reads both
        assert label_head is not None
        losses["region_label"] = _seen_cross_entropy(
            label_head(pooled[valid]), batch.mask_labels[valid], unseen
        )
    if region_crop:
        losses["region_crop"] = _region_crop_loss(batch, crops, regions[valid])
    return losses


def _region_crop_loss(batch: ClipBatch, crops: Tensor, regions: Tensor) -> Tensor:
    """One minus the cosine between each thing's segment embedding and its crops' mean (detached).

    Args:
        batch: the batch (its things' crops come first, view after view, in the segments' order).
        crops: ``[N, D]`` unit-norm crop embeddings.
        regions: ``[R, D]`` unit-norm embeddings of the real segments, in ``mask_phrases`` order.
    """
    n_things = len(batch.thing_texts)
    is_thing = torch.tensor([c.is_thing for c in CATEGORIES])[batch.mask_labels[batch.mask_labels >= 0]]
    things = regions[is_thing]  # the things of the whole images: the first crops' things, in order
    if n_things == 0 or len(things) == 0:
        return regions.sum() * 0.0
    views = _views(batch, len(crops))
    target = F.normalize(crops[: views * n_things].reshape(views, n_things, -1).mean(0), dim=-1)
    return (1 - (things * target[: len(things)].detach()).sum(-1)).mean()


@contextmanager
def running_batch_norm(module: nn.Module) -> Iterator[None]:
    """Within the block, batch-norm layers normalise with (and do not update) their running statistics.

    The tiny CLIP's trunk sees small crops and whole images, whose batch statistics differ; one set
    of statistics must serve both once the CLIP is frozen. The crops train the statistics, and the
    whole images are normalised with them in training as at inference, so a frozen CLIP's dense map
    is what its training losses saw.

    Args:
        module: any module; its batch-norm layers in training mode are switched for the block.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m in norms:
            m.train()
