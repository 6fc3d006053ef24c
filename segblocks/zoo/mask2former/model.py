"""Mask2Former assembled from segblocks blocks: backbone -> pixel decoder -> masked-attention decoder -> heads.

The attributes follow the paper's figure: ``backbone``, ``pixel_decoder``, ``mask_decoder`` (the
masked-attention transformer decoder, whose ``mask_head`` predicts masks), ``class_head``, and the
learned semantic queries (``query_feat`` content, ``query_embed`` position). ``forward`` returns the
raw outputs (with every auxiliary prediction for deep supervision) and ``training_step`` the losses
it learns with; :class:`~segblocks.zoo.mask2former.Mask2FormerPredictor` post-processes outputs into
panoptic, semantic and instance results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from segblocks._validation import check_ndim
from segblocks.backbones.base import Backbone
from segblocks.decoders.mask_decoder import MaskedAttentionDecoder
from segblocks.decoders.pixel_decoder import PixelDecoder
from segblocks.decoders.query_groups import QueryGroup, SelfAttentionRule
from segblocks.heads.class_head import LinearClassHead, OpenVocabClassHead
from segblocks.inference import SegmentationPrediction, pad_targets, prepare_images
from segblocks.losses.set_criterion import SetCriterion
from segblocks.structures import Batch, MaskPredictions, Targets
from segblocks.zoo.mask2former.config import Mask2FormerConfig
from segblocks.zoo.mask2former.predictor import Mask2FormerPredictor

__all__ = ["Mask2Former"]


class Mask2Former(nn.Module):
    """Mask2Former: universal image segmentation with masked-attention queries.

    Args:
        backbone: a :class:`segblocks.backbones.Backbone` (``res2..res5``).
        pixel_decoder: a :class:`segblocks.decoders.PixelDecoder` on the backbone maps.
        mask_decoder: the masked-attention mask decoder.
        class_head: a closed-set :class:`LinearClassHead` or an :class:`OpenVocabClassHead`.
        criterion: the set criterion used by :meth:`losses`.
        num_queries: number of learned semantic queries.
        class_names: names of the ``C`` classes.
        is_thing: ``C`` flags, True for thing classes.
        text_embeddings: ``[C, E]`` class embeddings, required with an :class:`OpenVocabClassHead`
            (a non-persistent buffer: rebuilt from the vocabulary, not checkpointed).
        pad_inputs: pad images to the backbone's size divisibility (results are unpadded); when
            False, indivisible images raise a ValueError.
        config: the configuration the model was built from (kept for checkpoints and logs).
    """

    text_embeddings: Tensor | None

    def __init__(
        self,
        *,
        backbone: Backbone,
        pixel_decoder: PixelDecoder,
        mask_decoder: MaskedAttentionDecoder,
        class_head: LinearClassHead | OpenVocabClassHead,
        criterion: SetCriterion,
        num_queries: int,
        class_names: Sequence[str],
        is_thing: Sequence[bool],
        text_embeddings: Tensor | None = None,
        pad_inputs: bool = True,
        config: Mask2FormerConfig | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, Backbone):
            raise TypeError(
                f"backbone: expected a segblocks.backbones.Backbone, got {type(backbone).__name__}"
            )
        if not isinstance(pixel_decoder, PixelDecoder):
            raise TypeError(
                f"pixel_decoder: expected a segblocks.decoders.PixelDecoder, got {type(pixel_decoder).__name__}"
            )
        if num_queries <= 0:
            raise ValueError(f"num_queries: expected a positive int, got {num_queries}")
        if not isinstance(class_head, OpenVocabClassHead) and class_head.num_classes != len(class_names):
            raise ValueError(
                f"class_head: predicts {class_head.num_classes} classes but {len(class_names)} class names were given"
            )
        self.backbone = backbone
        self.pixel_decoder = pixel_decoder
        self.mask_decoder = mask_decoder
        self.class_head = class_head
        self.criterion = criterion
        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, mask_decoder.dim)
        self.query_embed = nn.Embedding(num_queries, mask_decoder.dim)
        self.register_buffer("text_embeddings", None, persistent=False)
        self.pad_inputs = pad_inputs
        self.config = config
        self._set_classes(class_names, is_thing, text_embeddings)

    def _set_classes(self, names: Sequence[str], is_thing: Sequence[bool], embeddings: Tensor | None) -> None:
        if len(names) != len(is_thing) or len(names) == 0:
            raise ValueError(
                f"class_names, is_thing: expected one flag per class and at least one class, "
                f"got {len(names)} names and {len(is_thing)} flags"
            )
        if isinstance(self.class_head, OpenVocabClassHead):
            if embeddings is None:
                raise ValueError("text_embeddings: required with an OpenVocabClassHead")
            check_ndim("text_embeddings", embeddings, 2, "[C, E]")
            if embeddings.shape != (len(names), self.class_head.embed_dim):
                raise ValueError(
                    f"text_embeddings: expected [C={len(names)}, width {self.class_head.embed_dim}], "
                    f"got {tuple(embeddings.shape)}"
                )
            self.text_embeddings = embeddings.detach().to(self.query_feat.weight.device)
        self.class_names = tuple(names)
        self.is_thing = tuple(bool(t) for t in is_thing)

    def set_vocabulary(
        self, class_names: Sequence[str], is_thing: Sequence[bool], text_embeddings: Tensor
    ) -> None:
        """Replace the classes of an open-vocabulary model (no retraining needed).

        Args:
            class_names: ``C`` class names.
            is_thing: ``C`` flags.
            text_embeddings: ``[C, E]`` embeddings of the classes.

        Raises:
            TypeError: when the class head is closed-set.
            ValueError: on mismatched lengths or widths.
        """
        if not isinstance(self.class_head, OpenVocabClassHead):
            raise TypeError(
                "set_vocabulary: the model has a closed-set class head; rebuild it with a vocabulary"
            )
        self._set_classes(class_names, is_thing, text_embeddings)

    @property
    def size_divisibility(self) -> int:
        """Input H and W must be multiples of this (the backbone's); inputs are padded to it."""
        return self.backbone.size_divisibility

    @property
    def num_classes(self) -> int:
        """``C``, the number of classes (without void)."""
        return len(self.class_names)

    def semantic_queries(self, batch: int) -> QueryGroup:
        """The learned semantic queries as a query group ``[B, Q, D]`` that attends to every query.

        Args:
            batch: batch size ``B``.
        """
        return QueryGroup(
            name="semantic",
            content=self.query_feat.weight.unsqueeze(0).expand(batch, -1, -1),
            positional=self.query_embed.weight.unsqueeze(0).expand(batch, -1, -1),
            self_attention=SelfAttentionRule.everything(),
        )

    def classify(self, queries: Tensor) -> Tensor:
        """``[B, Q, C + 1]`` class logits of ``[B, Q, D]`` query embeddings (against the vocabulary, if open).

        Args:
            queries: ``[B, Q, D]`` normalised query embeddings.
        """
        if isinstance(self.class_head, OpenVocabClassHead):
            assert self.text_embeddings is not None
            return self.class_head(queries, self.text_embeddings)
        return self.class_head(queries)

    def forward(self, images: Tensor) -> MaskPredictions:
        """The figure: backbone -> pixel decoder -> mask decoder (semantic queries) -> class head, per layer.

        Clips (Mask2Former-VIS): the backbone and pixel decoder run on every frame, the decoder attends
        to all frames of a clip at once and each query predicts a mask tube.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``, or clips ``[B, T, 3, H, W]``; padded to the
                size divisibility if needed.

        Returns:
            The final prediction (``mask_logits [B, Q, H'/4, W'/4]`` for the padded size ``H' x W'``,
            ``[B, Q, T, H'/4, W'/4]`` tubes for clips, ``class_logits [B, Q, C + 1]``,
            ``query_embeddings``) with the earlier ones in ``aux``.

        Raises:
            ValueError, TypeError: on bad images (wrong shape or dtype, indivisible with padding off,
                a clip of no frames).
        """
        frames = None
        if images.ndim == 5:
            frames = int(images.shape[1])
            if frames == 0:
                raise ValueError(f"images: a clip needs at least one frame, got shape {tuple(images.shape)}")
            images = images.flatten(0, 1)
        images = prepare_images(images, self.size_divisibility, pad=self.pad_inputs)
        pixels = self.pixel_decoder(self.backbone(images))
        queries = [self.semantic_queries(images.shape[0] // (frames or 1))]
        decoded = self.mask_decoder(
            queries, pixels.multi_scale_features, pixels.mask_features, num_frames=frames
        )
        predictions = [
            MaskPredictions(
                mask_logits=masks, class_logits=self.classify(embeddings), query_embeddings=embeddings
            )
            for embeddings, masks in zip(decoded.queries, decoded.mask_logits)
        ]
        final = predictions[-1]
        final.aux = predictions[:-1]
        return final

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        """The named, weighted losses of one training batch (total = their sum; deep supervision included).

        Args:
            batch: ``images [B, 3, H, W]`` with one :class:`~segblocks.structures.Targets` per image,
                or clips ``[B, T, 3, H, W]`` with mask tubes ``[N, T, H, W]``.

        Raises:
            ValueError: on a batch without targets (and as :meth:`forward` and :meth:`losses`).
        """
        if batch.targets is None:
            raise ValueError("batch: training_step needs targets, got a batch with targets=None")
        return self.losses(self(batch.images), batch.targets)

    def losses(
        self,
        predictions: MaskPredictions,
        targets: Sequence[Targets],
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Weighted losses of :meth:`forward`'s outputs; target masks are padded like the images.

        Args:
            predictions: the outputs of :meth:`forward`.
            targets: one :class:`~segblocks.structures.Targets` per image (may be empty).
            generator: random generator for the point sampling.

        Raises:
            TypeError: on targets that are not :class:`Targets`.
            ValueError: on a wrong number of targets or labels out of range.
        """
        h, w = predictions.mask_logits.shape[-2:]
        stride = self.pixel_decoder.mask_stride
        return self.criterion(predictions, pad_targets(targets, (h * stride, w * stride)), generator)

    def predict(self, images: Tensor, **options: Any) -> list[SegmentationPrediction]:
        """Post-processed results: ``Mask2FormerPredictor(self).predict(images, **options)``.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            **options: ``tasks`` and ``image_sizes`` of :meth:`Mask2FormerPredictor.predict
                <segblocks.zoo.mask2former.Mask2FormerPredictor.predict>`.
        """
        return Mask2FormerPredictor(self).predict(images, **options)
