"""PosSAM assembled from segblocks blocks (Fig. 3 training, Fig. 4 inference of the paper).

Mask branch: frozen SAM image encoder -> trainable FPN (``sam``, a :class:`~segblocks.backbones.SAMBackbone`)
-> Mask2Former ``pixel_decoder`` -> masked-attention ``mask_decoder`` (its ``mask_head`` predicts masks)
and the ``iou_head``. Class branch: frozen ``clip`` dense features + mask features + predicted masks
-> ``ldp`` -> cosine with CLIP text embeddings. At inference the LDP (in-vocabulary) and frozen-CLIP
(out-of-vocabulary) logits are combined by ``mase`` (or, for comparison, ``geometric``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segblocks._validation import check_ndim
from segblocks.backbones import OpenCLIPBackbone, SAMBackbone
from segblocks.decoders.mask_decoder import MaskedAttentionDecoder
from segblocks.decoders.query_groups import QueryGroup, SelfAttentionRule
from segblocks.heads import GeometricEnsemble, IoUHead, LocalDiscriminativePooling, MaskAwareSelectiveEnsemble
from segblocks.inference import TASKS, pad_targets, padded_size, postprocess_batch, prepare_images
from segblocks.losses.set_criterion import SetCriterion
from segblocks.structures import MaskPredictions, Targets
from segblocks.zoo.possam.config import PosSAMConfig
from segblocks.zoo.possam.outputs import (
    CLASSIFIERS,
    PosSAMOutputs,
    PosSAMPrediction,
    classify_outputs,
)
from segblocks.zoo.possam.vocabulary import Vocabulary, encode_vocabulary

__all__ = ["CLASSIFIERS", "PosSAM", "PosSAMOutputs", "PosSAMPrediction"]

logger = logging.getLogger(__name__)


class PosSAM(nn.Module):
    """PosSAM: panoptic open-vocabulary segmentation with SAM masks and CLIP classes.

    Args:
        sam: the frozen SAM image encoder with its trainable FPN (``res2..res5``), a
            :class:`~segblocks.backbones.SAMBackbone`.
        clip: the frozen CLIP, a :class:`~segblocks.backbones.OpenCLIPBackbone` (``clip_dense``,
            ``encode_text``, ``pool_masks``/``embed_masks``, ``logit_scale``).
        pixel_decoder: Mask2Former's pixel decoder on the SAM pyramid.
        mask_decoder: the masked-attention mask decoder.
        iou_head: predicts each mask's IoU from its query.
        ldp: Local Discriminative Pooling with its open-vocabulary class head.
        criterion: matcher and losses (class, mask BCE + Dice, IoU).
        mase: the Mask-Aware Selective Ensemble.
        geometric: FC-CLIP's fixed geometric ensemble (ablation).
        num_queries: learned queries.
        vocabulary: the training vocabulary (every class seen).
        pad_inputs: pad images to the size divisibility (results are unpadded).
        object_mask_threshold: panoptic post-processing threshold.
        overlap_threshold: panoptic post-processing threshold.
        top_k: instance post-processing: pairs kept per image.
        config: the configuration the model was built from.
    """

    def __init__(
        self,
        *,
        sam: SAMBackbone,
        clip: OpenCLIPBackbone,
        pixel_decoder: nn.Module,
        mask_decoder: MaskedAttentionDecoder,
        iou_head: IoUHead,
        ldp: LocalDiscriminativePooling,
        criterion: SetCriterion,
        mase: MaskAwareSelectiveEnsemble,
        geometric: GeometricEnsemble,
        num_queries: int,
        vocabulary: Vocabulary,
        pad_inputs: bool = True,
        object_mask_threshold: float = 0.8,
        overlap_threshold: float = 0.8,
        top_k: int = 100,
        config: PosSAMConfig | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(sam, SAMBackbone):
            raise TypeError(f"sam: expected a segblocks.backbones.SAMBackbone, got {type(sam).__name__}")
        if not isinstance(clip, OpenCLIPBackbone):
            raise TypeError(
                f"clip: expected a segblocks.backbones.OpenCLIPBackbone, got {type(clip).__name__}"
            )
        if not hasattr(pixel_decoder, "mask_stride"):
            raise TypeError("pixel_decoder: expected a segblocks pixel decoder (with 'mask_stride')")
        if num_queries <= 0:
            raise ValueError(f"num_queries: expected a positive int, got {num_queries}")
        if not isinstance(vocabulary, Vocabulary):
            raise TypeError(f"vocabulary: expected a Vocabulary, got {type(vocabulary).__name__}")
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
        self.mase = mase
        self.geometric = geometric
        dim = mask_decoder.dim
        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, dim)
        self.query_embed = nn.Embedding(num_queries, dim)
        self.train_vocabulary = vocabulary
        self.vocabulary = vocabulary
        # text embeddings are rebuilt from class names, never checkpointed
        self.register_buffer("text_embeddings", vocabulary.text_embeddings, persistent=False)
        self.pad_inputs = pad_inputs
        self.object_mask_threshold = object_mask_threshold
        self.overlap_threshold = overlap_threshold
        self.top_k = top_k
        self.config = config

    # ------------------------------------------------------------------------------- vocabulary
    @property
    def size_divisibility(self) -> int:
        """H and W must be multiples of this (SAM's and CLIP's); inputs are padded to it."""
        return math.lcm(self.sam.size_divisibility, self.clip.size_divisibility)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the current vocabulary's classes."""
        return self.vocabulary.names

    def encode_vocabulary(
        self, class_names: Sequence[str], is_thing: Sequence[bool] | None = None
    ) -> Vocabulary:
        """Encode class names with the frozen CLIP text encoder (cached) and mark the seen ones.

        Args:
            class_names: ``C`` class names (``"person, people"`` = synonyms of one class).
            is_thing: ``C`` flags (default: every class a thing).

        Returns:
            A :class:`Vocabulary` whose ``seen`` flags mark names of the training vocabulary.

        Raises:
            ValueError: on an empty vocabulary, empty names or flags of the wrong length.
        """
        return encode_vocabulary(self.clip, class_names, is_thing, seen_names=self.train_vocabulary.names)

    def set_vocabulary(self, class_names: Sequence[str], is_thing: Sequence[bool] | None = None) -> None:
        """Make ``class_names`` the default vocabulary of :meth:`predict` (no retraining needed).

        Args:
            class_names: ``C`` class names.
            is_thing: ``C`` flags (default: every class a thing).
        """
        self.vocabulary = self.encode_vocabulary(class_names, is_thing)
        self.text_embeddings = self.vocabulary.text_embeddings.to(self.query_feat.weight.device)

    def refresh_vocabulary(self) -> None:
        """Re-encode the training and current vocabularies, e.g. after loading CLIP weights.

        The stored vocabularies hold text embeddings of the CLIP weights they were encoded with
        (the backbone itself drops its text cache when weights load); call this after
        :meth:`load_state_dict`.
        """
        train, current = self.train_vocabulary, self.vocabulary
        self.train_vocabulary = self.encode_vocabulary(train.names, train.is_thing)
        self.set_vocabulary(current.names, current.is_thing)

    # ------------------------------------------------------------------------------------ forward
    def prepare_images(self, images: Tensor) -> Tensor:
        """Validate ``images [B, 3, H, W]`` and pad them to the size divisibility when allowed.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.

        Returns:
            The (padded) images.

        Raises:
            ValueError: on a wrong shape, an empty batch, or an indivisible size with padding off.
            TypeError: on a non-floating dtype.
        """
        return prepare_images(images, self.size_divisibility, pad=self.pad_inputs)

    def _queries(self, batch: int) -> QueryGroup:
        return QueryGroup(
            name="semantic",
            content=self.query_feat.weight.unsqueeze(0).expand(batch, -1, -1),
            positional=self.query_embed.weight.unsqueeze(0).expand(batch, -1, -1),
            self_attention=SelfAttentionRule.everything(),
        )

    def _run(self, images: Tensor, text_embeddings: Tensor) -> tuple[MaskPredictions, dict[str, Tensor]]:
        images = self.prepare_images(images)
        pixels = self.pixel_decoder(self.sam(images))
        decoded = self.mask_decoder(
            [self._queries(images.shape[0])], pixels.multi_scale_features, pixels.mask_features
        )
        with torch.no_grad():
            clip_features = self.clip(images)
        predictions = []
        for queries, masks in zip(decoded.queries, decoded.mask_logits):
            embeddings = self.ldp(pixels.mask_features, clip_features["clip_dense"], masks.detach() > 0)
            predictions.append(
                MaskPredictions(
                    mask_logits=masks,
                    class_logits=self.ldp.classify(embeddings, text_embeddings),
                    iou_scores=self.iou_head(queries),
                    query_embeddings=queries,
                )
            )
        final = predictions[-1]
        final.aux = predictions[:-1]
        return final, clip_features

    def forward(self, images: Tensor) -> MaskPredictions:
        """Training outputs for a batch of images, classified against the current vocabulary.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``; padded to the size divisibility if needed.

        Returns:
            :class:`~segblocks.structures.MaskPredictions`: ``mask_logits [B, Q, H'/4, W'/4]``,
            LDP ``class_logits [B, Q, C + 1]``, ``iou_scores [B, Q]`` (logits) and
            ``query_embeddings`` of the final layer, the earlier layers in ``aux``.

        Raises:
            ValueError, TypeError: on bad images (see :meth:`prepare_images`).
        """
        return self._run(images, self.text_embeddings)[0]

    def losses(
        self,
        predictions: MaskPredictions,
        targets: Sequence[Targets],
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Weighted losses of :meth:`forward`'s outputs (total = ``sum(losses.values())``).

        Args:
            predictions: the outputs of :meth:`forward`.
            targets: one :class:`~segblocks.structures.Targets` per image, labels indexing the
                current vocabulary; masks at the original image size are padded like the images.
            generator: random generator for the point sampling.

        Returns:
            ``loss_class``, ``loss_mask``, ``loss_dice``, ``loss_iou`` and their ``_0``, ``_1``, ...
            deep-supervision copies.

        Raises:
            TypeError: on targets that are not :class:`Targets`.
            ValueError: on a wrong number of targets or labels out of range.
        """
        h, w = predictions.mask_logits.shape[-2:]
        stride = int(getattr(self.pixel_decoder, "mask_stride"))  # noqa: B009 (nn.Module typing)
        padded = pad_targets(targets, (h * stride, w * stride))
        return self.criterion(predictions, padded, generator)

    # ---------------------------------------------------------------------------------- inference
    def _resolve(
        self, vocabulary: Sequence[str] | Vocabulary | None, is_thing: Sequence[bool] | None
    ) -> Vocabulary:
        if vocabulary is None:
            return self.vocabulary
        if isinstance(vocabulary, Vocabulary):
            return vocabulary
        if isinstance(vocabulary, str):
            raise TypeError("vocabulary: expected a list of class names, got one string (split it first)")
        return self.encode_vocabulary(vocabulary, is_thing)

    @torch.no_grad()
    def infer(self, images: Tensor, vocabulary: Sequence[str] | Vocabulary | None = None) -> PosSAMOutputs:
        """Masks and every classifier's raw logits for a batch (what :meth:`predict` post-processes).

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            vocabulary: class names, a :class:`Vocabulary`, or None for the current vocabulary.

        Returns:
            :class:`PosSAMOutputs` of the final decoder layer.
        """
        vocab = self._resolve(vocabulary, None)
        device = self.query_feat.weight.device
        text = vocab.text_embeddings.to(device)
        final, clip_features = self._run(images, text)
        binary = final.mask_logits > 0
        if self.clip.kind == "cnn":  # FC-CLIP's order: pool the trunk's res5, then the CLIP head
            regions = self.clip.embed_masks(clip_features["res5"], binary)
        else:
            regions = self.clip.pool_masks(clip_features["clip_dense"], binary)
        scale = self.clip.logit_scale
        clip_logits = scale * torch.einsum("bqe,ce->bqc", regions.float(), F.normalize(text.float(), dim=-1))
        assert final.class_logits is not None and final.iou_scores is not None
        return PosSAMOutputs(
            mask_logits=final.mask_logits,
            ldp_logits=final.class_logits.float(),
            clip_logits=clip_logits,
            iou_logits=final.iou_scores.float(),
            valid=binary.flatten(2).any(-1),
            vocabulary=vocab,
        )

    def classify(self, outputs: PosSAMOutputs, classifier: str = "mase") -> Tensor:
        """Class scores of :meth:`infer`'s outputs by one classifier.

        ``"ldp"``: LDP logits; ``"clip"``: frozen-CLIP class probabilities with LDP's void probability
        (CLIP has no void class); ``"geometric"``: FC-CLIP's fixed ensemble; ``"mase"``: MASE.

        Args:
            outputs: from :meth:`infer`.
            classifier: one of :data:`CLASSIFIERS`.

        Returns:
            ``[B, Q, C + 1]`` logits or log-probabilities (softmax gives the class probabilities).

        Raises:
            ValueError: on an unknown classifier.
        """
        return classify_outputs(outputs, classifier, geometric=self.geometric, mase=self.mase)

    def postprocess(
        self,
        outputs: PosSAMOutputs,
        class_logits: Tensor,
        *,
        input_size: tuple[int, int],
        tasks: Sequence[str] = TASKS,
        image_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> list[PosSAMPrediction]:
        """Panoptic / semantic / instance results at the input resolution.

        Args:
            outputs: from :meth:`infer`.
            class_logits: ``[B, Q, C + 1]`` from :meth:`classify`.
            input_size: ``(H, W)`` of the images given to :meth:`infer` (before padding).
            tasks: any of ``"panoptic"``, ``"semantic"``, ``"instance"``.
            image_sizes: per image ``(h, w)`` of the valid region; default the full input size.

        Returns:
            One :class:`PosSAMPrediction` per image.

        Raises:
            ValueError: on an unknown task or mismatched ``image_sizes``.
        """
        h, w = input_size
        return postprocess_batch(
            outputs.mask_logits,
            class_logits,
            outputs.vocabulary.is_thing,
            padded=padded_size(h, w, self.size_divisibility) if self.pad_inputs else (h, w),
            image_sizes=image_sizes if image_sizes is not None else [input_size] * len(outputs.mask_logits),
            tasks=tasks,
            object_mask_threshold=self.object_mask_threshold,
            overlap_threshold=self.overlap_threshold,
            top_k=self.top_k,
        )

    @torch.no_grad()
    def predict(
        self,
        images: Tensor,
        *,
        vocabulary: Sequence[str] | Vocabulary | None = None,
        is_thing: Sequence[bool] | None = None,
        classifier: str = "mase",
        tasks: Sequence[str] = TASKS,
        image_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> list[PosSAMPrediction]:
        """Open-vocabulary panoptic, semantic and instance results for any vocabulary.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            vocabulary: class names (or a :class:`Vocabulary`) to segment; default the current one.
                Category ids in the results index this list.
            is_thing: one flag per name of ``vocabulary`` (default: all things).
            classifier: ``"ldp"``, ``"clip"``, ``"geometric"`` or ``"mase"`` (see :meth:`classify`).
            tasks: any of ``"panoptic"``, ``"semantic"``, ``"instance"``.
            image_sizes: per image ``(h, w)`` of the valid region; default the full ``H x W``.

        Returns:
            One :class:`PosSAMPrediction` per image.

        Raises:
            ValueError: on an unknown classifier or task, bad images or a bad vocabulary.
        """
        if classifier not in CLASSIFIERS:
            raise ValueError(f"classifier: expected one of {CLASSIFIERS}, got {classifier!r}")
        check_ndim("images", images, 4, "[B, 3, H, W]")
        outputs = self.infer(images, self._resolve(vocabulary, is_thing))
        logits = self.classify(outputs, classifier)
        return self.postprocess(
            outputs,
            logits,
            input_size=(images.shape[-2], images.shape[-1]),
            tasks=tasks,
            image_sizes=image_sizes,
        )

    def extra_repr(self) -> str:
        """Vocabulary size and query count."""
        return f"num_queries={self.num_queries}, classes={len(self.vocabulary.names)}"

    def state_summary(self) -> dict[str, Any]:
        """Trainable and frozen parameter counts (also on the meta device)."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.parameters() if not p.requires_grad)
        return {"trainable": trainable, "frozen": frozen}
