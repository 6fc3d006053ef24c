"""Mask2Former assembled from segblocks blocks: backbone -> pixel decoder -> masked-attention decoder -> heads.

The attributes follow the paper's figure: ``backbone``, ``pixel_decoder``, ``transformer_decoder``
(the masked-attention mask decoder, whose ``mask_head`` predicts masks), ``class_head``, and the
learned semantic queries (``query_feat`` content, ``query_embed`` position). ``forward`` returns the
raw training outputs (with every auxiliary prediction for deep supervision), ``losses`` scores them
against ground truth and ``predict`` returns post-processed panoptic, semantic and instance results
at the input resolution.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from segblocks._validation import check_ndim
from segblocks.decoders.mask_decoder import MaskedAttentionDecoder
from segblocks.decoders.query_groups import QueryGroup, SelfAttentionRule
from segblocks.heads.class_head import LinearClassHead, OpenVocabClassHead
from segblocks.inference import (
    TASKS,
    SegmentationPrediction,
    check_tasks,
    pad_targets,
    padded_size,
    postprocess_batch,
    prepare_images,
)
from segblocks.losses.set_criterion import SetCriterion
from segblocks.structures import MaskPredictions, ShapeSpec, Targets
from segblocks.zoo.mask2former.config import Mask2FormerConfig

__all__ = ["TASKS", "Mask2Former", "Mask2FormerPrediction"]

logger = logging.getLogger(__name__)

#: Post-processed results of one image (:class:`segblocks.inference.SegmentationPrediction`).
Mask2FormerPrediction = SegmentationPrediction


class BackboneLike(Protocol):
    """What the model needs from a backbone (see :class:`segblocks.backbones.Backbone`)."""

    @property
    def size_divisibility(self) -> int: ...

    def output_shape(self) -> dict[str, ShapeSpec]: ...

    def __call__(self, images: Tensor) -> dict[str, Tensor]: ...


class PixelDecoderLike(Protocol):
    """What the model needs from a pixel decoder."""

    mask_stride: int

    def __call__(self, features: dict[str, Tensor]) -> Any: ...


class Mask2Former(nn.Module):
    """Mask2Former: universal image segmentation with masked-attention queries.

    Args:
        backbone: a backbone (``forward(images) -> {"res2".."res5"}``, ``output_shape()``,
            ``size_divisibility``), usually a :class:`segblocks.backbones.Backbone`.
        pixel_decoder: builds mask features and multi-scale maps from the backbone maps.
        transformer_decoder: the masked-attention mask decoder.
        class_head: a closed-set :class:`LinearClassHead` or an :class:`OpenVocabClassHead`.
        criterion: the set criterion used by :meth:`losses`.
        num_queries: number of learned semantic queries.
        class_names: names of the ``C`` classes.
        is_thing: ``C`` flags, True for thing classes.
        text_embeddings: ``[C, E]`` class embeddings, required with an :class:`OpenVocabClassHead`
            (stored as a non-persistent buffer: rebuilt from the vocabulary, not checkpointed).
        pad_inputs: pad images to the backbone's size divisibility (results are unpadded); when
            False, indivisible images raise a ValueError.
        object_mask_threshold: panoptic post-processing threshold.
        overlap_threshold: panoptic post-processing threshold.
        top_k: instance post-processing: pairs kept per image.
        config: the configuration the model was built from (kept for checkpoints and logs).
    """

    text_embeddings: Tensor | None

    def __init__(
        self,
        *,
        backbone: nn.Module,
        pixel_decoder: nn.Module,
        transformer_decoder: MaskedAttentionDecoder,
        class_head: LinearClassHead | OpenVocabClassHead,
        criterion: SetCriterion,
        num_queries: int,
        class_names: Sequence[str],
        is_thing: Sequence[bool],
        text_embeddings: Tensor | None = None,
        pad_inputs: bool = True,
        object_mask_threshold: float = 0.8,
        overlap_threshold: float = 0.8,
        top_k: int = 100,
        config: Mask2FormerConfig | None = None,
    ) -> None:
        super().__init__()
        for name in ("output_shape", "size_divisibility"):
            if not hasattr(backbone, name):
                raise TypeError(f"backbone: expected an object with {name!r} (a segblocks Backbone)")
        if not hasattr(pixel_decoder, "mask_stride"):
            raise TypeError(
                "pixel_decoder: expected an object with 'mask_stride' (a segblocks pixel decoder)"
            )
        if num_queries <= 0:
            raise ValueError(f"num_queries: expected a positive int, got {num_queries}")
        if len(class_names) != len(is_thing) or len(class_names) == 0:
            raise ValueError(
                f"class_names, is_thing: expected one flag per class and at least one class, "
                f"got {len(class_names)} names and {len(is_thing)} flags"
            )
        if isinstance(class_head, OpenVocabClassHead):
            if text_embeddings is None:
                raise ValueError("text_embeddings: required with an OpenVocabClassHead")
            check_ndim("text_embeddings", text_embeddings, 2, "[C, E]")
            if text_embeddings.shape[0] != len(class_names):
                raise ValueError(
                    f"text_embeddings: expected {len(class_names)} rows (one per class), "
                    f"got {tuple(text_embeddings.shape)}"
                )
        elif class_head.num_classes != len(class_names):
            raise ValueError(
                f"class_head: predicts {class_head.num_classes} classes but {len(class_names)} class names were given"
            )
        self.backbone = backbone
        self.pixel_decoder = pixel_decoder
        self.transformer_decoder = transformer_decoder
        self.class_head = class_head
        self.criterion = criterion
        dim = transformer_decoder.dim
        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, dim)
        self.query_embed = nn.Embedding(num_queries, dim)
        self.class_names = tuple(class_names)
        self.is_thing = tuple(bool(t) for t in is_thing)
        self.register_buffer("text_embeddings", text_embeddings, persistent=False)
        self.pad_inputs = pad_inputs
        self.object_mask_threshold = object_mask_threshold
        self.overlap_threshold = overlap_threshold
        self.top_k = top_k
        self.config = config

    @property
    def size_divisibility(self) -> int:
        """Input H and W must be multiples of this (the backbone's); inputs are padded to it."""
        return int(getattr(self.backbone, "size_divisibility"))  # noqa: B009 (nn.Module typing)

    @property
    def num_classes(self) -> int:
        """``C``, the number of classes (without void)."""
        return len(self.class_names)

    def set_vocabulary(
        self, class_names: Sequence[str], is_thing: Sequence[bool], text_embeddings: Tensor
    ) -> None:
        """Replace the vocabulary of an open-vocabulary model (no retraining needed).

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
        check_ndim("text_embeddings", text_embeddings, 2, "[C, E]")
        if not (len(class_names) == len(is_thing) == text_embeddings.shape[0]) or len(class_names) == 0:
            raise ValueError(
                f"class_names, is_thing, text_embeddings: expected the same non-zero C, got "
                f"{len(class_names)}, {len(is_thing)} and {tuple(text_embeddings.shape)}"
            )
        if text_embeddings.shape[1] != self.class_head.embed_dim:
            raise ValueError(
                f"text_embeddings: expected width {self.class_head.embed_dim}, got {tuple(text_embeddings.shape)}"
            )
        self.class_names = tuple(class_names)
        self.is_thing = tuple(bool(t) for t in is_thing)
        device = self.query_feat.weight.device
        self.text_embeddings = text_embeddings.detach().to(device)

    # ------------------------------------------------------------------------------------ forward
    def prepare_images(self, images: Tensor) -> Tensor:
        """Validate ``images [B, 3, H, W]`` and pad them to the size divisibility when allowed.

        Raises:
            ValueError: on a wrong shape, an empty batch, or an indivisible size with padding off.
            TypeError: on a non-floating dtype.
        """
        return prepare_images(images, self.size_divisibility, pad=self.pad_inputs)

    def semantic_queries(self, batch: int) -> QueryGroup:
        """The learned semantic queries as a query group (they attend to every query).

        Args:
            batch: batch size ``B``.

        Returns:
            A :class:`~segblocks.decoders.QueryGroup` named ``"semantic"`` of shape ``[B, Q, D]``.
        """
        return QueryGroup(
            name="semantic",
            content=self.query_feat.weight.unsqueeze(0).expand(batch, -1, -1),
            positional=self.query_embed.weight.unsqueeze(0).expand(batch, -1, -1),
            self_attention=SelfAttentionRule.everything(),
        )

    def classify(self, queries: Tensor) -> Tensor:
        """Classify query embeddings with the class head (and the vocabulary, if open).

        Args:
            queries: ``[B, Q, D]`` normalised query embeddings.

        Returns:
            ``[B, Q, C + 1]`` class logits.
        """
        if isinstance(self.class_head, OpenVocabClassHead):
            assert self.text_embeddings is not None
            return self.class_head(queries, self.text_embeddings)
        return self.class_head(queries)

    def forward(self, images: Tensor) -> MaskPredictions:
        """Training outputs for a batch of images.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``; padded to the size divisibility if needed.

        Returns:
            :class:`~segblocks.structures.MaskPredictions`: the final prediction (``mask_logits
            [B, Q, H'/4, W'/4]`` for the padded size ``H' x W'``, ``class_logits [B, Q, C + 1]``,
            ``query_embeddings``) with the earlier ones in ``aux``.

        Raises:
            ValueError, TypeError: on bad images (see :meth:`prepare_images`).
        """
        images = self.prepare_images(images)
        features = self.backbone(images)
        pixels = self.pixel_decoder(features)
        groups = [self.semantic_queries(images.shape[0])]
        decoded = self.transformer_decoder(groups, pixels.multi_scale_features, pixels.mask_features)
        predictions = [
            MaskPredictions(mask_logits=masks, class_logits=self.classify(queries), query_embeddings=queries)
            for queries, masks in zip(decoded.queries, decoded.mask_logits)
        ]
        final = predictions[-1]
        final.aux = predictions[:-1]
        return final

    def losses(
        self,
        predictions: MaskPredictions,
        targets: Sequence[Targets],
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Weighted losses of :meth:`forward`'s outputs (total = ``sum(losses.values())``).

        Target masks at the original image size are padded like the images.

        Args:
            predictions: the outputs of :meth:`forward`.
            targets: one :class:`~segblocks.structures.Targets` per image (may be empty).
            generator: random generator for the point sampling.

        Returns:
            The criterion's loss dictionary.

        Raises:
            TypeError: on targets that are not :class:`Targets`.
            ValueError: on a wrong number of targets, masks larger than the padded input or labels out
                of range.
        """
        h, w = predictions.mask_logits.shape[-2:]
        stride = int(getattr(self.pixel_decoder, "mask_stride"))  # noqa: B009 (nn.Module typing)
        padded = pad_targets(targets, (h * stride, w * stride))
        return self.criterion(predictions, padded, generator)

    # ------------------------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(
        self,
        images: Tensor,
        *,
        tasks: Sequence[str] = TASKS,
        image_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> list[Mask2FormerPrediction]:
        """Post-processed results at the input resolution.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            tasks: any of ``"panoptic"``, ``"semantic"``, ``"instance"``.
            image_sizes: per image ``(h, w)`` of the valid region (images padded by the caller);
                default: the full ``H x W``.

        Returns:
            One :class:`Mask2FormerPrediction` per image.

        Raises:
            ValueError: on an unknown task, bad images or mismatched ``image_sizes``.
        """
        check_tasks(tasks)
        check_ndim("images", images, 4, "[B, 3, H, W]")
        h, w = images.shape[-2:]
        out = self(images)
        assert out.class_logits is not None
        return postprocess_batch(
            out.mask_logits,
            out.class_logits,
            self.is_thing,
            padded=padded_size(h, w, self.size_divisibility) if self.pad_inputs else (h, w),
            image_sizes=list(image_sizes) if image_sizes is not None else [(h, w)] * images.shape[0],
            tasks=tasks,
            object_mask_threshold=self.object_mask_threshold,
            overlap_threshold=self.overlap_threshold,
            top_k=self.top_k,
        )
