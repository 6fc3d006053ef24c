"""PosSAM assembled from segblocks blocks (Fig. 3 of the paper: training).

Mask branch: frozen SAM image encoder -> trainable FPN (``sam``, a :class:`~segblocks.backbones.SAMBackbone`)
-> Mask2Former ``pixel_decoder`` -> masked-attention ``mask_decoder`` (its ``mask_head`` predicts masks)
and the ``iou_head``. Class branch: frozen ``clip`` dense features + mask features + predicted masks
-> ``ldp`` -> cosine with CLIP text embeddings. Inference (Fig. 4: any vocabulary, the frozen-CLIP
classifier and MASE) is :class:`~segblocks.zoo.possam.PosSAMPredictor`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from segblocks.backbones import OpenCLIPBackbone, SAMBackbone
from segblocks.decoders.mask_decoder import MaskedAttentionDecoder
from segblocks.decoders.pixel_decoder import PixelDecoder
from segblocks.decoders.query_groups import QueryGroup, SelfAttentionRule
from segblocks.heads import IoUHead, LocalDiscriminativePooling
from segblocks.inference import pad_targets, prepare_images
from segblocks.losses.set_criterion import SetCriterion
from segblocks.structures import Batch, MaskPredictions, Targets
from segblocks.zoo.possam.config import PosSAMConfig
from segblocks.zoo.possam.outputs import PosSAMPrediction
from segblocks.zoo.possam.predictor import PosSAMPredictor
from segblocks.zoo.possam.vocabulary import Vocabulary, encode_vocabulary

__all__ = ["PosSAM"]


class PosSAM(nn.Module):
    """PosSAM: panoptic open-vocabulary segmentation with SAM masks and CLIP classes.

    Args:
        sam: the frozen SAM image encoder with its trainable FPN (``res2..res5``).
        clip: the frozen CLIP (``clip_dense``, ``encode_text``, ``pool_masks``/``embed_masks``).
        pixel_decoder: Mask2Former's pixel decoder on the SAM pyramid.
        mask_decoder: the masked-attention mask decoder.
        iou_head: predicts each mask's IoU from its query.
        ldp: Local Discriminative Pooling with its open-vocabulary class head.
        criterion: matcher and losses (class, mask BCE + Dice, IoU).
        num_queries: learned semantic queries.
        vocabulary: the training vocabulary (every class seen).
        pad_inputs: pad images to the size divisibility (results are unpadded).
        config: the configuration the model was built from.
    """

    text_embeddings: Tensor

    def __init__(
        self,
        *,
        sam: SAMBackbone,
        clip: OpenCLIPBackbone,
        pixel_decoder: PixelDecoder,
        mask_decoder: MaskedAttentionDecoder,
        iou_head: IoUHead,
        ldp: LocalDiscriminativePooling,
        criterion: SetCriterion,
        num_queries: int,
        vocabulary: Vocabulary,
        pad_inputs: bool = True,
        config: PosSAMConfig | None = None,
    ) -> None:
        super().__init__()
        for name, value, kind in (
            ("sam", sam, SAMBackbone),
            ("clip", clip, OpenCLIPBackbone),
            ("pixel_decoder", pixel_decoder, PixelDecoder),
            ("vocabulary", vocabulary, Vocabulary),
        ):
            if not isinstance(value, kind):
                raise TypeError(f"{name}: expected a {kind.__name__}, got {type(value).__name__}")
        if num_queries <= 0:
            raise ValueError(f"num_queries: expected a positive int, got {num_queries}")
        if vocabulary.text_embeddings.shape[1] != ldp.clip_dim:
            raise ValueError(
                f"vocabulary: text embeddings of width {vocabulary.text_embeddings.shape[1]} do not match "
                f"LDP's clip_dim={ldp.clip_dim}"
            )
        self.sam = sam
        self.clip = clip
        self.pixel_decoder = pixel_decoder
        self.mask_decoder = mask_decoder
        self.iou_head = iou_head
        self.ldp = ldp
        self.criterion = criterion
        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, mask_decoder.dim)
        self.query_embed = nn.Embedding(num_queries, mask_decoder.dim)
        self.train_vocabulary = vocabulary
        # text embeddings are rebuilt from class names, never checkpointed
        self.register_buffer("text_embeddings", vocabulary.text_embeddings, persistent=False)
        self.pad_inputs = pad_inputs
        self.config = config

    @property
    def size_divisibility(self) -> int:
        """H and W must be multiples of this (SAM's and CLIP's); inputs are padded to it."""
        return math.lcm(self.sam.size_divisibility, self.clip.size_divisibility)

    def refresh_vocabulary(self) -> None:
        """Re-encode the training vocabulary with the current CLIP weights (call after loading weights)."""
        vocab = self.train_vocabulary
        self.train_vocabulary = encode_vocabulary(self.clip, vocab.names, vocab.is_thing)
        self.text_embeddings = self.train_vocabulary.text_embeddings.to(self.query_feat.weight.device)

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

    def forward_with_clip(
        self, images: Tensor, text_embeddings: Tensor
    ) -> tuple[MaskPredictions, dict[str, Tensor]]:
        """The figure: SAM -> pixel decoder -> mask decoder -> IoU head, and CLIP -> LDP per layer.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``; padded to the size divisibility if needed.
            text_embeddings: ``[C, E]`` class embeddings LDP classifies against.

        Returns:
            The predictions of every decoder layer (the last one, earlier ones in ``aux``) and the
            frozen CLIP's feature maps (for the frozen-CLIP classifier of inference).

        Raises:
            ValueError, TypeError: on bad images.
        """
        images = prepare_images(images, self.size_divisibility, pad=self.pad_inputs)
        pixels = self.pixel_decoder(self.sam(images))
        queries = [self.semantic_queries(images.shape[0])]
        decoded = self.mask_decoder(queries, pixels.multi_scale_features, pixels.mask_features)
        with torch.no_grad():
            clip_features = self.clip(images)
        predictions = []
        for embeddings, masks in zip(decoded.queries, decoded.mask_logits):
            sam_regions, clip_regions = self.ldp.pool(
                pixels.mask_features, clip_features["clip_dense"], masks.detach() > 0
            )
            embedded = self.ldp.fuse(sam_regions, clip_regions)
            prior = clip_regions if self.ldp.clip_residual else None
            void_input = embeddings if self.ldp.class_head.void_reads_input else None  # ldp_void="query"
            predictions.append(
                MaskPredictions(
                    mask_logits=masks,
                    class_logits=self.ldp.classify(embedded, text_embeddings, prior, void_input),
                    iou_scores=self.iou_head(embeddings),
                    query_embeddings=embeddings,
                )
            )
        final = predictions[-1]
        final.aux = predictions[:-1]
        return final, clip_features

    def forward(self, images: Tensor) -> MaskPredictions:
        """Training outputs, classified against the training vocabulary.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.

        Returns:
            ``mask_logits [B, Q, H'/4, W'/4]``, LDP ``class_logits [B, Q, C + 1]``, ``iou_scores
            [B, Q]`` (logits) and ``query_embeddings`` of the final layer, earlier layers in ``aux``.
        """
        return self.forward_with_clip(images, self.text_embeddings)[0]

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        """The named, weighted losses of one training batch (total = their sum; deep supervision included).

        Args:
            batch: ``images [B, 3, H, W]`` with one :class:`~segblocks.structures.Targets` per image,
                labels indexing the training vocabulary.

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
            targets: one :class:`~segblocks.structures.Targets` per image.
            generator: random generator for the point sampling.

        Returns:
            ``loss_class``, ``loss_mask``, ``loss_dice``, ``loss_iou`` and their ``_0``, ``_1``, ...
            deep-supervision copies.
        """
        h, w = predictions.mask_logits.shape[-2:]
        stride = self.pixel_decoder.mask_stride
        return self.criterion(predictions, pad_targets(targets, (h * stride, w * stride)), generator)

    def predict(self, images: Tensor, **options: Any) -> list[PosSAMPrediction]:
        """Open-vocabulary results: ``PosSAMPredictor(self).predict(images, **options)``.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            **options: ``vocabulary``, ``is_thing``, ``classifier``, ``tasks``, ``image_sizes`` of
                :meth:`PosSAMPredictor.predict <segblocks.zoo.possam.PosSAMPredictor.predict>`.
        """
        return PosSAMPredictor(self).predict(images, **options)

    def extra_repr(self) -> str:
        """Training vocabulary size and query count."""
        return f"num_queries={self.num_queries}, classes={len(self.train_vocabulary.names)}"

    def state_summary(self) -> dict[str, Any]:
        """Trainable and frozen parameter counts (also on the meta device)."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.parameters() if not p.requires_grad)
        return {"trainable": trainable, "frozen": frozen}
