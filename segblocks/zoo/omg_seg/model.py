"""OMG-Seg assembled from segblocks blocks (Fig. 2 of the paper: one model for every segmentation task).

The figure's blocks are the attributes: the frozen ``clip`` (CLIP visual encoder as the backbone and
its text encoder for class names), the ``pixel_decoder`` (MSDeformAttn), one ``mask_decoder`` shared
by images and clips (a clip's frames are attended jointly with a 3D position encoding; a query
predicts a mask tube), two kinds of queries -- learned **semantic queries** (``query_feat`` content,
``query_embed`` position) for every task without prompts, and **location queries** made from point
and box prompts by the ``location_encoder`` (they attend only to themselves in self-attention) --
and the heads: the open-vocabulary ``classifier`` (:class:`OMGClassifier`) and the
``objectness_head``. As in the official code a forward pass carries one kind of queries: semantic
queries without prompts, location queries with them. Inference around the model (tasks,
vocabularies, the frozen-CLIP ensemble, video linking) is :class:`OMGSegPredictor`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from segblocks.backbones import OpenCLIPBackbone
from segblocks.decoders.location_prompts import LocationPromptEncoder
from segblocks.decoders.mask_decoder import MaskedAttentionDecoder
from segblocks.decoders.pixel_decoder import PixelDecoder
from segblocks.decoders.query_groups import QueryGroup, SelfAttentionRule
from segblocks.heads import IoUHead
from segblocks.inference import pad_targets, prepare_images
from segblocks.losses.grouped_criterion import GroupedCriterion
from segblocks.structures import Batch, MaskPredictions, Prompts, Targets
from segblocks.zoo.omg_seg.classifier import OMGClassifier
from segblocks.zoo.omg_seg.config import OMGSegConfig
from segblocks.zoo.omg_seg.vocabulary import (
    NEGATIVES,
    OMGVocabulary,
    encode_vocabulary,
    negative_prototypes,
)

__all__ = ["OMGSeg"]


class OMGSeg(nn.Module):
    """OMG-Seg: one encoder-decoder for image, video, interactive and open-vocabulary segmentation.

    Args:
        clip: the frozen CLIP (``res2..res5`` for the pixel decoder, ``encode_text`` for class names,
            ``embed_masks``/``pool_masks`` for the open-vocabulary ensemble).
        pixel_decoder: the MSDeformAttn pixel decoder on the CLIP's maps.
        mask_decoder: the shared masked-attention decoder.
        location_encoder: point/box prompts -> location queries.
        classifier: the open-vocabulary classifier.
        objectness_head: one objectness logit per query.
        criterion: ``"semantic"`` (Hungarian; class, mask, Dice, objectness) and ``"location"``
            (prompt ``i`` <-> target ``i``; mask and Dice only) losses.
        num_queries: learned semantic queries.
        vocabulary: the training vocabulary.
        location_self_mask: location queries attend only to themselves (False: to each other too).
        class_negatives: prototypes the training cross-entropy treats as wrong for every query:
            ``"none"`` (official), ``"opposite"`` (the negated training names) or ``"sphere"``
            (``sphere_negatives`` random directions); see
            :func:`~segblocks.zoo.omg_seg.vocabulary.negative_prototypes`. Inference never uses them.
        sphere_negatives: directions of ``"sphere"``.
        class_negative_margin: cosine a query may reach with a negative before it costs anything in
            training (each negative's logit is ``scale * (cos - margin)``); 0 keeps the full term.
        pad_inputs: pad images to the size divisibility (results are unpadded).
        config: the configuration the model was built from.
    """

    text_embeddings: Tensor
    negative_embeddings: Tensor

    def __init__(
        self,
        *,
        clip: OpenCLIPBackbone,
        pixel_decoder: PixelDecoder,
        mask_decoder: MaskedAttentionDecoder,
        location_encoder: LocationPromptEncoder,
        classifier: OMGClassifier,
        objectness_head: IoUHead,
        criterion: GroupedCriterion,
        num_queries: int,
        vocabulary: OMGVocabulary,
        location_self_mask: bool = True,
        class_negatives: str = "none",
        sphere_negatives: int = 64,
        class_negative_margin: float = 0.0,
        pad_inputs: bool = True,
        config: OMGSegConfig | None = None,
    ) -> None:
        super().__init__()
        for name, value, kind in (
            ("clip", clip, OpenCLIPBackbone),
            ("pixel_decoder", pixel_decoder, PixelDecoder),
            ("vocabulary", vocabulary, OMGVocabulary),
            ("criterion", criterion, GroupedCriterion),
        ):
            if not isinstance(value, kind):
                raise TypeError(f"{name}: expected a {kind.__name__}, got {type(value).__name__}")
        if class_negatives not in NEGATIVES:
            raise ValueError(f"class_negatives: expected one of {NEGATIVES}, got {class_negatives!r}")
        if not 0.0 <= class_negative_margin <= 2.0:
            raise ValueError(
                f"class_negative_margin: expected a cosine margin in [0, 2], got {class_negative_margin}"
            )
        if num_queries <= 0:
            raise ValueError(f"num_queries: expected a positive int, got {num_queries}")
        if vocabulary.text_embeddings.shape[1] != classifier.embed_dim:
            raise ValueError(
                f"vocabulary: text embeddings of width {vocabulary.text_embeddings.shape[1]} do not match "
                f"the classifier's embed_dim={classifier.embed_dim}"
            )
        self.clip = clip
        self.pixel_decoder = pixel_decoder
        self.mask_decoder = mask_decoder
        self.location_encoder = location_encoder
        self.classifier = classifier
        self.objectness_head = objectness_head
        self.criterion = criterion
        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, mask_decoder.dim)
        self.query_embed = nn.Embedding(num_queries, mask_decoder.dim)
        self.train_vocabulary = vocabulary
        # text embeddings come from the class names and the frozen CLIP: never checkpointed
        self.register_buffer("text_embeddings", vocabulary.text_embeddings, persistent=False)
        self.class_negatives = class_negatives
        self.sphere_negatives = sphere_negatives
        self.class_negative_margin = float(class_negative_margin)
        negatives = negative_prototypes(vocabulary.text_embeddings, class_negatives, count=sphere_negatives)
        self.register_buffer("negative_embeddings", negatives, persistent=False)  # rebuilt, as the text
        self.location_self_mask = location_self_mask
        self.pad_inputs = pad_inputs
        self.config = config

    @property
    def size_divisibility(self) -> int:
        """Input H and W must be multiples of this (the CLIP's); inputs are padded to it."""
        return self.clip.size_divisibility

    def refresh_vocabulary(self) -> None:
        """Re-encode the training vocabulary with the current CLIP weights (after loading weights)."""
        v = self.train_vocabulary
        self.train_vocabulary = encode_vocabulary(self.clip, v.names, v.is_thing)
        self.text_embeddings = self.train_vocabulary.text_embeddings.to(self.query_feat.weight.device)
        self.negative_embeddings = negative_prototypes(
            self.text_embeddings, self.class_negatives, count=self.sphere_negatives
        )

    # ------------------------------------------------------------------------------- queries
    def semantic_queries(self, batch: int) -> QueryGroup:
        """The learned semantic queries ``[B, Q, D]``, attending to every query.

        Args:
            batch: batch size ``B``.
        """
        return QueryGroup(
            name="semantic",
            content=self.query_feat.weight.unsqueeze(0).expand(batch, -1, -1),
            positional=self.query_embed.weight.unsqueeze(0).expand(batch, -1, -1),
            self_attention=SelfAttentionRule.everything(),
        )

    def location_queries(
        self,
        prompts: Sequence[Prompts],
        image_size: tuple[int, int],
        padded_size: tuple[int, int],
        mask_size: tuple[int, int],
    ) -> QueryGroup:
        """One location query per point or box prompt (points first, then boxes, per image).

        Args:
            prompts: B :class:`~segblocks.structures.Prompts` with points (one positive click each)
                and/or boxes, in pixels of the unpadded images.
            image_size: ``(H, W)`` of the unpadded images.
            padded_size: ``(H', W')`` of the padded images the decoder sees.
            mask_size: ``(h, w)`` of the mask features (of the padded images): the grid of each query's
                first cross-attention region, its box.

        Raises:
            ValueError: on a prompt outside the image or prompts without points or boxes.
        """
        (h, w), (ph, pw), (mh, mw) = image_size, padded_size, mask_size
        valid = (max(1, -(-h * mh // ph)), max(1, -(-w * mw // pw)))  # the cells of the unpadded image
        group = self.location_encoder(prompts, image_size, valid)
        if group.cross_mask is not None and valid != (mh, mw):  # boxes live in the unpadded part
            region = group.cross_mask.new_zeros(*group.cross_mask.shape[:2], mh, mw)
            region[..., : valid[0], : valid[1]] = group.cross_mask
            group.cross_mask = region
        if not self.location_self_mask:  # the ablation: location queries see each other
            group.self_attention = SelfAttentionRule.own_group()
        return group

    # ------------------------------------------------------------------------------- forward
    def forward_with_clip(
        self,
        images: Tensor,
        prompts: Sequence[Prompts] | None = None,
        text_embeddings: Tensor | None = None,
    ) -> tuple[MaskPredictions, dict[str, Tensor]]:
        """The figure: frozen CLIP -> pixel decoder -> shared mask decoder -> classifier, objectness.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]`` or clips ``[B, T, 3, H, W]``; padded to the size
                divisibility if needed.
            prompts: B :class:`Prompts` (points/boxes in pixels of the unpadded frames): decode
                location queries instead of semantic queries.
            text_embeddings: ``[C, E]`` class embeddings (default: the training vocabulary's, followed
                by its ``K`` negative prototypes, see ``class_negatives``).

        Returns:
            ``(predictions, clip features)``: the final layer's ``mask_logits [B, Q, H'/4, W'/4]``
            (tubes ``[B, Q, T, H'/4, W'/4]``), ``class_logits [B, Q, C + 1]`` (by default
            ``[B, Q, C + K + 1]``: the training classes, the negatives, void), ``iou_scores [B, Q]``
            (objectness logits), ``query_embeddings``, the earlier layers in ``aux``; and the frozen
            CLIP's maps of every frame (``[B * T, ...]``).

        Raises:
            ValueError, TypeError: on bad images, a clip of no frames, a wrong number of prompts or
                a prompt outside the image.
        """
        frames = None
        if images.ndim == 5:
            frames = int(images.shape[1])
            if frames == 0:
                raise ValueError(f"images: a clip needs at least one frame, got shape {tuple(images.shape)}")
            images = images.flatten(0, 1)
        size = (int(images.shape[-2]), int(images.shape[-1]))
        images = prepare_images(images, self.size_divisibility, pad=self.pad_inputs)
        batch = images.shape[0] // (frames or 1)
        with torch.no_grad():
            clip_features = self.clip(images)
        pixels = self.pixel_decoder(clip_features)
        if prompts is None:
            queries = self.semantic_queries(batch)
        else:
            if len(prompts) != batch:
                raise ValueError(
                    f"prompts: expected {batch} Prompts (one per image or clip), got {len(prompts)}"
                )
            padded = (int(images.shape[-2]), int(images.shape[-1]))
            queries = self.location_queries(prompts, size, padded, tuple(pixels.mask_features.shape[-2:]))
        decoded = self.mask_decoder(
            [queries], pixels.multi_scale_features, pixels.mask_features, num_frames=frames
        )
        predictions = [
            MaskPredictions(
                mask_logits=masks,
                class_logits=self.classify(embeddings, masks, pixels.mask_features, text_embeddings),
                iou_scores=self.objectness_head(embeddings),
                query_embeddings=embeddings,
            )
            for embeddings, masks in zip(decoded.queries, decoded.mask_logits)
        ]
        final = predictions[-1]
        final.aux = predictions[:-1]
        return final, clip_features

    def classify(
        self, queries: Tensor, mask_logits: Tensor, mask_features: Tensor, text_embeddings: Tensor | None
    ) -> Tensor:
        """One decoder layer's class logits: against a vocabulary, or in training against the negatives too.

        Args:
            queries: ``[B, Q, D]`` query embeddings.
            mask_logits: ``[B, Q, H, W]`` (tubes ``[B, Q, T, H, W]``), the queries' masks.
            mask_features: ``[B, C, H, W]`` (``[B * T, C, H, W]``) pixel-decoder mask features.
            text_embeddings: ``[C, E]`` class embeddings, or None for the training vocabulary followed
                by its ``K`` negatives, whose logits are lowered by ``scale * class_negative_margin``.

        Returns:
            ``[B, Q, C + 1]`` logits (``[B, Q, C + K + 1]`` in training), the last column void.
        """
        if text_embeddings is not None:
            return self.classifier(queries, mask_logits, mask_features, text_embeddings)
        # training: the negatives are wrong for every query
        negatives = self.negative_embeddings.to(self.text_embeddings)
        text = torch.cat([self.text_embeddings, negatives])
        logits = self.classifier(queries, mask_logits, mask_features, text)
        if self.class_negative_margin == 0.0 or len(negatives) == 0:
            return logits
        c, k = len(self.text_embeddings), len(negatives)
        margin = self.classifier.head.scale.detach() * self.class_negative_margin
        shift = torch.cat([logits.new_zeros(c), margin.to(logits).expand(k), logits.new_zeros(1)])
        return logits - shift

    def forward(self, images: Tensor, prompts: Sequence[Prompts] | None = None) -> MaskPredictions:
        """Training outputs against the training vocabulary and its negatives (see :meth:`forward_with_clip`).

        Args:
            images: ``[B, 3, H, W]`` or clips ``[B, T, 3, H, W]``, RGB in ``[0, 1]``.
            prompts: B :class:`Prompts` for the location queries, or None for the semantic queries.
        """
        return self.forward_with_clip(images, prompts)[0]

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        """The named, weighted losses of one batch of one task (total = their sum).

        A batch with prompts trains the location queries (prompt ``i`` of an image asks for its target
        ``i``; mask losses only); a batch without trains the semantic queries (Hungarian matching;
        class, mask, Dice and objectness losses). Images or clips (tube targets) alike.

        Args:
            batch: images or clips with one :class:`Targets` each, and optionally one
                :class:`Prompts` each (then targets hold exactly the prompted masks, in prompt order).

        Raises:
            ValueError: on a batch without targets, or with some images prompted and others not.
        """
        if batch.targets is None:
            raise ValueError("batch: training_step needs targets, got a batch with targets=None")
        prompts = batch.prompts
        if prompts is not None and any(p is None for p in prompts):
            raise ValueError(
                "batch.prompts: every image of a prompt batch needs its Prompts (one task a batch)"
            )
        group = "semantic" if prompts is None else "location"
        predictions = self(
            batch.images, [p for p in prompts if p is not None] if prompts is not None else None
        )
        losses = self.losses(predictions, batch.targets, group=group)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # one task a batch leaves the other task's parts out of the graph, which DDP refuses:
            # a zero loss touches every trainable parameter (the official code does the same)
            trainable = [p.sum() for p in self.parameters() if p.requires_grad]
            losses["unused_parameters"] = torch.stack(trainable).sum() * 0.0
        return losses

    def losses(
        self,
        predictions: MaskPredictions,
        targets: Sequence[Targets],
        *,
        group: str = "semantic",
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Weighted losses of :meth:`forward`'s outputs for one query group; targets padded like the images.

        Args:
            predictions: the outputs of :meth:`forward`.
            targets: one :class:`Targets` per image (labels index the training vocabulary).
            group: ``"semantic"`` or ``"location"``.
            generator: random generator for the point sampling.

        Returns:
            ``{"{group}/loss_mask": ..., "{group}/loss_dice_0": ...}`` (see
            :class:`~segblocks.losses.GroupedCriterion`).

        Raises:
            ValueError: on an unknown group (and as the criterion on bad targets).
        """
        if group not in ("semantic", "location"):
            raise ValueError(f"group: expected 'semantic' or 'location', got {group!r}")
        h, w = predictions.mask_logits.shape[-2:]
        stride = self.pixel_decoder.mask_stride
        padded = pad_targets(targets, (h * stride, w * stride))
        return self.criterion({group: predictions}, {group: padded}, generator=generator)

    def predict(self, images: Tensor | Sequence[Tensor], **options: Any) -> Any:
        """Post-processed results of any task: ``OMGSegPredictor(self).predict(images, **options)``.

        Args:
            images: ``[B, 3, H, W]`` images, a clip ``[T, 3, H, W]`` (or ``[1, T, 3, H, W]``), or a list
                of ``[3, H, W]`` frames.
            **options: ``task``, ``prompts``, ``vocabulary``, ``is_thing`` of
                :meth:`OMGSegPredictor.predict <segblocks.zoo.omg_seg.OMGSegPredictor.predict>`.
        """
        from segblocks.zoo.omg_seg.predictor import OMGSegPredictor

        return OMGSegPredictor(self).predict(images, **options)

    def extra_repr(self) -> str:
        """Query count, training vocabulary size, the location-query rule and the class negatives."""
        return (
            f"num_queries={self.num_queries}, classes={len(self.train_vocabulary)}, "
            f"location_self_mask={self.location_self_mask}, class_negatives={self.class_negatives!r}"
        )

    def state_summary(self) -> dict[str, int]:
        """Trainable and frozen parameter counts (also on the meta device)."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.parameters() if not p.requires_grad)
        return {"trainable": trainable, "frozen": frozen}
