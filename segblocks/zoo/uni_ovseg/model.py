"""Uni-OVSeg assembled from segblocks blocks (Fig. 2 of the paper).

Mask generation (image-mask pairs): frozen ``clip`` image encoder -> ``pixel_decoder`` ->
``prompt_encoder`` (points/boxes -> anchor-box tokens) -> ``extra_self_attention`` over each prompt's
tokens -> masked-attention ``mask_decoder`` (self-attention within a prompt, cross-attention under the
union of the prompt's masks, random-Fourier image positions) -> per-token mask MLPs and ``iou_heads``.
Mask-text alignment (image-text pairs): masks proposed by a point grid -> region embeddings of the
frozen CLIP at several input sizes -> ``mask_text_matcher`` against the caption's entities ->
``adapter`` (multi-scale LoRA) region embeddings aligned with the confident entities. Open-vocabulary
inference (point grid, filtering, naming against any vocabulary) is
:class:`~segblocks.zoo.uni_ovseg.UniOVSegPredictor`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from segblocks.backbones import OpenCLIPBackbone
from segblocks.decoders.mask_decoder import MaskedAttentionDecoder
from segblocks.decoders.multigranularity_prompts import MultiGranularityPromptEncoder, anchor_boxes
from segblocks.decoders.pixel_decoder import PixelDecoder
from segblocks.decoders.pixel_decoder_output import PixelDecoderOutput
from segblocks.decoders.query_groups import build_self_attention_mask
from segblocks.heads import MultiScaleFeatureAdapter
from segblocks.heads.region_embeddings import multiscale_region_embeddings
from segblocks.inference import PromptPrediction, pad_targets, postprocess_prompts, prepare_images
from segblocks.layers import SelfAttentionLayer
from segblocks.losses.prompt_iou import eligible_iou_loss
from segblocks.losses.set_criterion import SetCriterion
from segblocks.matchers import MaskTextMatcher
from segblocks.structures import Batch, MaskPredictions, Prompts, Targets
from segblocks.zoo.uni_ovseg.alignment import mask_text_alignment
from segblocks.zoo.uni_ovseg.config import UniOVSegConfig
from segblocks.zoo.uni_ovseg.outputs import PromptOutputs
from segblocks.zoo.uni_ovseg.predictor import UniOVSegPredictor

__all__ = ["UniOVSeg"]

_FEATURES = ("res2", "res3", "res4", "res5")


class UniOVSeg(nn.Module):
    """Uni-OVSeg: promptable multi-granularity masks named by an adapted CLIP.

    Args:
        clip: the frozen CLIP (``res2..res5``, ``clip_dense``, ``encode_text``, ``pool_masks``).
        pixel_decoder: Mask2Former's pixel decoder on the CLIP pyramid.
        prompt_encoder: the visual prompt encoder (anchor boxes, corner and output tokens).
        feat_embed: 1x1 projection of the mask features the masks are read from.
        extra_self_attention: one self-attention over each prompt's tokens before the decoder.
        mask_decoder: the masked-attention decoder (per-token mask MLPs, random-Fourier positions).
        iou_heads: ``1 + k`` IoU MLPs, one per output token.
        adapter: the multi-scale LoRA feature adapter on the dense CLIP map.
        point_criterion: stage-1 losses of the point view (many-to-many matching).
        box_criterion: stage-1 losses of the box view (each box against its own mask).
        mask_text_matcher: mask-text bipartite matching for stage 2.
        config: the configuration the model was built from.
    """

    def __init__(
        self,
        *,
        clip: OpenCLIPBackbone,
        pixel_decoder: PixelDecoder,
        prompt_encoder: MultiGranularityPromptEncoder,
        feat_embed: nn.Conv2d,
        extra_self_attention: SelfAttentionLayer,
        mask_decoder: MaskedAttentionDecoder,
        iou_heads: nn.ModuleList,
        adapter: MultiScaleFeatureAdapter,
        point_criterion: SetCriterion,
        box_criterion: SetCriterion,
        mask_text_matcher: MaskTextMatcher,
        config: UniOVSegConfig,
    ) -> None:
        super().__init__()
        for name, value, kind in (
            ("clip", clip, OpenCLIPBackbone),
            ("pixel_decoder", pixel_decoder, PixelDecoder),
            ("prompt_encoder", prompt_encoder, MultiGranularityPromptEncoder),
            ("mask_decoder", mask_decoder, MaskedAttentionDecoder),
            ("adapter", adapter, MultiScaleFeatureAdapter),
        ):
            if not isinstance(value, kind):
                raise TypeError(f"{name}: expected a {kind.__name__}, got {type(value).__name__}")
        if len(iou_heads) != 1 + prompt_encoder.num_multimask:
            raise ValueError(
                f"iou_heads: expected {1 + prompt_encoder.num_multimask} heads (one per output token), got {len(iou_heads)}"
            )
        self.clip = clip
        self.pixel_decoder = pixel_decoder
        self.prompt_encoder = prompt_encoder
        self.feat_embed = feat_embed
        self.extra_self_attention = extra_self_attention
        self.mask_decoder = mask_decoder
        self.iou_heads = iou_heads
        self.adapter = adapter
        self.point_criterion = point_criterion
        self.box_criterion = box_criterion
        self.mask_text_matcher = mask_text_matcher
        self.config = config

    @property
    def size_divisibility(self) -> int:
        """H and W must be multiples of this (the CLIP's); inputs are padded to it."""
        return int(self.clip.size_divisibility)

    @property
    def device(self) -> torch.device:
        """Where the trainable weights live."""
        return self.feat_embed.weight.device

    # ---------------------------------------------------------------------------- mask generation
    def encode_image(self, images: Tensor) -> tuple[dict[str, Tensor], PixelDecoderOutput]:
        """Frozen CLIP features and the pixel decoder's output.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``, H and W multiples of :attr:`size_divisibility`.

        Returns:
            ``(clip features res2..res5 / clip_dense / clip_global, pixel decoder output)``.
        """
        with torch.no_grad():
            feats = self.clip(images)
        return feats, self.pixel_decoder({k: feats[k] for k in _FEATURES})

    def decode_prompts(
        self, pixels: PixelDecoderOutput, prompts: Sequence[Prompts], image_size: tuple[int, int]
    ) -> PromptOutputs:
        """The figure's prompt branch: prompt tokens -> extra self-attention -> mask decoder -> heads.

        Args:
            pixels: the pixel decoder's output for the B images.
            prompts: B :class:`~segblocks.structures.Prompts` (points ``[N, 1, 2]`` and/or boxes).
            image_size: ``(H, W)`` the mask features cover (the padded input).

        Returns:
            :class:`PromptOutputs` of every decoder layer.
        """
        tokens = self.prompt_encoder(prompts, image_size, pixels.mask_features)
        group = tokens.group
        content = self.extra_self_attention(
            group.content, torch.zeros_like(group.positional), build_self_attention_mask([group])
        )
        decoded = self.mask_decoder(
            [replace(group, content=content)],
            pixels.multi_scale_features,
            self.feat_embed(pixels.mask_features),
        )
        t = tokens.tokens_per_prompt
        first = self.prompt_encoder.CORNERS
        k = self.prompt_encoder.num_multimask
        point_views, box_views = [], []
        for queries, logits in zip(decoded.queries, decoded.mask_logits):
            b, q, d = queries.shape
            qs = queries.reshape(b, q // t, t, d)
            ls = logits.reshape(b, q // t, t, *logits.shape[-2:])
            multi_iou = torch.stack([self.iou_heads[1 + j](qs[:, :, first + 1 + j]) for j in range(k)], dim=2)
            point_views.append(
                MaskPredictions(
                    mask_logits=ls[:, :, first + 1 :].flatten(1, 2), iou_scores=multi_iou.flatten(1)
                )
            )
            box_views.append(
                MaskPredictions(mask_logits=ls[:, :, first], iou_scores=self.iou_heads[0](qs[:, :, first]))
            )
        points, boxes = point_views[-1], box_views[-1]
        points.aux, boxes.aux = point_views[:-1], box_views[:-1]
        return PromptOutputs(points=points, boxes=boxes, tokens=tokens)

    def forward(self, images: Tensor, prompts: Sequence[Prompts]) -> PromptOutputs:
        """Answer every image's point and box prompts (training outputs, every layer).

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]`` (padded to the size divisibility if needed).
            prompts: B :class:`~segblocks.structures.Prompts`; coordinates in pixels of the images.

        Raises:
            ValueError: on bad images, a prompt count that differs from the batch, or bad prompts
                (points outside the image, several clicks a prompt, no point or box).
        """
        if len(prompts) != images.shape[0]:
            raise ValueError(
                f"prompts: expected {images.shape[0]} Prompts (one per image), got {len(prompts)}"
            )
        h, w = int(images.shape[-2]), int(images.shape[-1])
        for p in prompts:  # check against the unpadded size: padding is no place to click
            anchor_boxes(p, (h, w), self.prompt_encoder.point_box_size)
        images = prepare_images(images, self.size_divisibility)
        _, pixels = self.encode_image(images)
        return self.decode_prompts(pixels, prompts, (int(images.shape[-2]), int(images.shape[-1])))

    def stage1_losses(
        self,
        outputs: PromptOutputs,
        targets: Sequence[Targets],
        point_eligible: Sequence[Tensor],
        box_eligible: Sequence[Tensor],
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Stage 1 (image-mask pairs, no labels): BCE 2 / Dice 1 / IoU 1 on sampled points, every layer.

        Args:
            outputs: :meth:`forward`'s outputs.
            targets: B :class:`~segblocks.structures.Targets` holding every mask of an image (parts,
                things, regions), labels unused.
            point_eligible: B ``[P, N_b]`` bool: mask ``n`` contains point prompt ``p`` (False for box prompts).
            box_eligible: B ``[P, N_b]`` bool: mask ``n`` is box prompt ``p``'s own (False for points).
            generator: random generator for the point sampling.

        Returns:
            ``point_*`` and ``box_*`` losses (``loss_mask``, ``loss_dice``, ``loss_iou`` and their
            deep-supervision copies). A box's IoU is regressed for its matched output; every output of
            a point regresses its best IoU with the point's eligible masks
            (:func:`~segblocks.losses.eligible_iou_loss`).
        """
        h, w = outputs.points.mask_logits.shape[-2:]
        stride = self.pixel_decoder.mask_stride
        padded = pad_targets(targets, (h * stride, w * stride))
        losses = {}
        for view, criterion, eligible, pred in (
            ("point", self.point_criterion, point_eligible, outputs.points),
            ("box", self.box_criterion, box_eligible, outputs.boxes),
        ):
            if not any(bool(e.any()) for e in eligible):
                continue
            for name, value in criterion(pred, padded, generator, eligible=eligible).items():
                losses[f"{view}_{name}"] = value
        if any(bool(e.any()) for e in point_eligible):  # every point output's IoU, matched or not
            k = self.prompt_encoder.num_multimask
            layers = [*outputs.points.aux, outputs.points]
            for i, pred in enumerate(layers):
                assert pred.iou_scores is not None
                name = "point_loss_iou" if i == len(layers) - 1 else f"point_loss_iou_{i}"
                losses[name] = self.config.iou_weight * eligible_iou_loss(
                    pred.iou_scores, pred.mask_logits, padded, point_eligible, outputs_per_prompt=k
                )
        return losses

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        """Stage-1 losses of a batch of image-mask pairs.

        Args:
            batch: ``images``, ``targets`` (every mask), ``prompts`` and ``extras["point_eligible"]``,
                ``extras["box_eligible"]`` (see :func:`~segblocks.zoo.uni_ovseg.data.stage1_batch`).

        Raises:
            ValueError: on a batch without targets, prompts or eligibility.
        """
        if batch.targets is None or batch.prompts is None:
            raise ValueError("batch: stage-1 training needs targets and prompts")
        for key in ("point_eligible", "box_eligible"):
            if key not in batch.extras:
                raise ValueError(f"batch.extras: stage-1 training needs {key!r}")
        prompts = [p for p in batch.prompts if p is not None]
        if len(prompts) != len(batch.prompts):
            raise ValueError("batch.prompts: every image of a stage-1 batch needs prompts")
        outputs = self(batch.images, prompts)
        return self.stage1_losses(
            outputs, batch.targets, batch.extras["point_eligible"], batch.extras["box_eligible"]
        )

    # ------------------------------------------------------------------------- mask-text alignment
    def region_embeddings(
        self, images: Tensor, masks: Tensor, sizes: Sequence[int], *, adapted: bool
    ) -> Tensor:
        """Unit-norm region embeddings ``[S, B, N, E]`` of masks at each input size.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            masks: ``[B, N, h, w]`` bool or probabilities.
            sizes: input sizes of the ensemble.
            adapted: pass the dense CLIP map through the multi-scale feature adapter.
        """
        return multiscale_region_embeddings(
            self.clip, images, masks, sizes, adapter=self.adapter if adapted else None
        )

    def entity_embeddings(self, entities: Sequence[str]) -> Tensor:
        """``[M, E]`` unit-norm CLIP text embeddings of entity names (prompt-template ensemble, cached).

        Raises:
            ValueError: on no entities.
        """
        if len(entities) == 0:
            raise ValueError("entities: expected at least one entity name")
        return torch.cat([self.clip.encode_text([e]) for e in entities])

    def alignment_losses(
        self,
        images: Tensor,
        masks: Sequence[Tensor],
        entities: Sequence[Sequence[str]],
        *,
        ensemble: bool = True,
    ) -> tuple[dict[str, Tensor], dict[str, float]]:
        """Stage 2 (image-text pairs, no masks): match predicted masks to caption entities, align.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            masks: B ``[M_b, H, W]`` bool masks predicted for each image (the point-grid proposals).
            entities: B lists of entity names parsed from each caption; an image with no entity or
                no mask is skipped (counted in the statistics).
            ensemble: match on region embeddings averaged over ``config.ensemble_sizes`` (else only
                the first inference size).

        Returns:
            ``({"loss_align": ...}, {"pairs", "skipped", "similarity", "batch_entities"})``; the loss
            is ``align_weight`` x the mean over the confident pairs of ``config.align_loss``
            (``"pull"``: ``1 - cos(adapted region, entity)``; ``"contrastive"``: cross-entropy of the
            adapted region against every entity of the batch), zero with a graph to the adapter when
            there are none.
        """
        return mask_text_alignment(self, images, masks, entities, ensemble=ensemble)

    # ------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def segment_prompts(
        self, images: Tensor, prompts: Sequence[Prompts], *, multimask: bool = True
    ) -> list[PromptPrediction]:
        """Promptable mode: the masks of given points or boxes.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            prompts: B :class:`~segblocks.structures.Prompts`, all points (one click each) or all boxes.
            multimask: points answer with their ``k`` granularities (else the best-scored one only).
                Boxes always answer with one mask.

        Returns:
            One :class:`~segblocks.inference.PromptPrediction` per image (``K = k`` for points, 1 for boxes).

        Raises:
            ValueError: on bad prompts, or points and boxes mixed in one call.
        """
        kinds = {(p.points is not None, p.boxes is not None) for p in prompts}
        if len(kinds) != 1 or (True, True) in kinds:
            raise ValueError(
                "prompts: give either points or boxes (the same kind for every image) in one call"
            )
        sizes = [(int(images.shape[-2]), int(images.shape[-1]))] * images.shape[0]
        outputs = self(images, prompts)
        use_boxes = next(iter(kinds))[1]
        view = outputs.boxes if use_boxes else outputs.points
        k = 1 if use_boxes else self.prompt_encoder.num_multimask
        padded = (
            view.mask_logits.shape[-2] * self.pixel_decoder.mask_stride,
            view.mask_logits.shape[-1] * self.pixel_decoder.mask_stride,
        )
        results = postprocess_prompts(
            view.mask_logits,
            view.iou_scores,
            num_prompts=outputs.tokens.num_prompts,
            outputs_per_prompt=k,
            padded=padded,
            image_sizes=sizes,
        )
        if use_boxes or multimask:
            return results
        best = []
        for r in results:
            idx = torch.arange(r.masks.shape[0])
            j = r.best
            best.append(
                PromptPrediction(
                    masks=r.masks[idx, j][:, None],
                    scores=r.scores[idx, j][:, None],
                    mask_logits=r.mask_logits[idx, j][:, None],
                )
            )
        return best

    def predict(self, images: Tensor, **options: Any) -> list[Any]:
        """Open-vocabulary results: ``UniOVSegPredictor(self).predict(images, **options)``.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            **options: ``vocabulary``, ``is_thing`` and the grid options of
                :meth:`UniOVSegPredictor.predict <segblocks.zoo.uni_ovseg.UniOVSegPredictor.predict>`.
        """
        return UniOVSegPredictor(self).predict(images, **options)

    def state_summary(self) -> dict[str, int]:
        """Trainable and frozen parameter counts (also on the meta device)."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.parameters() if not p.requires_grad)
        return {"trainable": trainable, "frozen": frozen}
