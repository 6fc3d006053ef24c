"""Open-vocabulary inference beside the model: point grid -> filtered masks -> named by CLIP (+ adapter).

``UniOVSegPredictor(model).predict(images, vocabulary=[...])`` runs, per image: the frozen CLIP and
the pixel decoder once; a ``grid_size x grid_size`` point grid through the prompt branch in chunks;
the predicted-IoU filter and inner-NMS (:mod:`segblocks.inference.point_grid`); region embeddings of
the kept masks (dense CLIP map through the adapter, averaged over ``inference_sizes``) classified by
cosine similarity against the vocabulary's CLIP text embeddings; each mask takes its most similar
class with its predicted IoU as confidence (``config.label_rule="argmax"``, the paper's rule; "soft"
weighs it by the class probability); then the shared semantic and panoptic post-processing.
When no candidate passes the IoU filter, the best-scored candidate is kept alone. Any vocabulary works: class names are encoded on the fly (and cached).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from segblocks._validation import check_bool_flags, check_vocabulary
from segblocks.decoders.pixel_decoder_output import PixelDecoderOutput
from segblocks.heads.region_embeddings import ensemble_region_embeddings
from segblocks.inference import (
    mask_nms,
    panoptic_inference,
    point_grid,
    prepare_images,
    proposal_class_logits,
    semantic_inference,
    unpad_mask_logits,
)
from segblocks.structures import Prompts
from segblocks.zoo.uni_ovseg.outputs import Proposals, UniOVSegPrediction

if TYPE_CHECKING:
    from segblocks.zoo.uni_ovseg.model import UniOVSeg

__all__ = ["UniOVSegPredictor", "one_image"]


def one_image(pixels: PixelDecoderOutput, i: int) -> PixelDecoderOutput:
    """The pixel decoder's output of one image of a batch (batch 1).

    Args:
        pixels: the batch's pixel decoder output.
        i: the image's index.
    """
    return PixelDecoderOutput(
        mask_features=pixels.mask_features[i : i + 1],
        multi_scale_features=[f[i : i + 1] for f in pixels.multi_scale_features],
    )


class UniOVSegPredictor:
    """Point-grid, vocabulary-naming inference for a :class:`~segblocks.zoo.uni_ovseg.UniOVSeg`.

    Args:
        model: the model (put in eval mode for inference).
        vocabulary: default class names.
        is_thing: one flag per default class (default: every class a thing).
        grid_size: points per side of the grid (default: the model's config).
    """

    def __init__(
        self,
        model: UniOVSeg,
        *,
        vocabulary: Sequence[str] | None = None,
        is_thing: Sequence[bool] | None = None,
        grid_size: int | None = None,
    ) -> None:
        self.model = model
        self.vocabulary: list[str] | None = None
        self.is_thing: list[bool] | None = None
        if vocabulary is not None:
            self.vocabulary, self.is_thing = self._resolve(vocabulary, is_thing)
        self.grid_size = model.config.grid_size if grid_size is None else grid_size
        point_grid(self.grid_size, (1, 1))  # validates the size

    @staticmethod
    def _resolve(vocabulary: Sequence[str], is_thing: Sequence[bool] | None) -> tuple[list[str], list[bool]]:
        names = check_vocabulary("vocabulary", vocabulary)
        flags = (
            [True] * len(names) if is_thing is None else check_bool_flags("is_thing", is_thing, len(names))
        )
        return names, flags

    @torch.no_grad()
    def candidates(
        self, pixels: PixelDecoderOutput, padded: tuple[int, int], image_size: tuple[int, int]
    ) -> Proposals:
        """Every candidate mask of one image's point grid (``grid_size**2 * k``), before any filter.

        Args:
            pixels: the pixel decoder's output for this one image (batch 1).
            padded: ``(H', W')`` of the padded input.
            image_size: ``(H, W)`` of the image.
        """
        model, cfg = self.model, self.model.config
        grid = point_grid(self.grid_size, image_size).to(model.device)
        logits, scores = [], []
        for chunk in grid.split(cfg.prompt_chunk):
            prompt = Prompts(
                points=chunk[:, None],
                point_labels=torch.ones(len(chunk), 1, dtype=torch.int64, device=chunk.device),
            )
            out = model.decode_prompts(pixels, [prompt], padded).points
            assert out.iou_scores is not None
            logits.append(out.mask_logits[0])
            scores.append(out.iou_scores[0].float().sigmoid())
        all_scores = torch.cat(scores)
        all_logits = unpad_mask_logits(torch.cat(logits).float(), padded, image_size)
        return Proposals(mask_logits=all_logits, scores=all_scores, num_candidates=int(all_scores.numel()))

    def select(self, candidates: Proposals, *, iou_threshold: float | None = None) -> Proposals:
        """The predicted-IoU filter and inner-NMS on one image's candidates, best score first.

        Args:
            candidates: the output of :meth:`candidates`.
            iou_threshold: the filter (default ``config.pred_iou_threshold``).
        """
        cfg = self.model.config
        threshold = cfg.pred_iou_threshold if iou_threshold is None else iou_threshold
        scores = candidates.scores
        keep = scores >= threshold
        if not bool(keep.any()):  # nothing passes the filter: keep the best candidate alone
            keep = scores == scores.max()
        kept_logits, kept_scores = candidates.mask_logits[keep], scores[keep]
        order = mask_nms(
            kept_logits > 0,
            kept_scores,
            iou_threshold=cfg.nms_iou,
            inner_threshold=cfg.nms_inner,
            downsample=cfg.nms_downsample,
        )
        return Proposals(
            mask_logits=kept_logits[order],
            scores=kept_scores[order],
            num_candidates=candidates.num_candidates,
        )

    @torch.no_grad()
    def proposals(
        self, pixels: PixelDecoderOutput, padded: tuple[int, int], image_size: tuple[int, int]
    ) -> Proposals:
        """Class-agnostic masks of one image from the point grid (IoU filter, inner-NMS).

        Args:
            pixels: the pixel decoder's output for this one image (batch 1).
            padded: ``(H', W')`` of the padded input.
            image_size: ``(H, W)`` of the image.
        """
        return self.select(self.candidates(pixels, padded, image_size))

    @torch.no_grad()
    def batch_proposals(self, images: Tensor) -> list[Proposals]:
        """Class-agnostic point-grid proposals of every image of a batch (stage 2 proposes with these).

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
        """
        h, w = int(images.shape[-2]), int(images.shape[-1])
        padded_images = prepare_images(images, self.model.size_divisibility)
        padded = (int(padded_images.shape[-2]), int(padded_images.shape[-1]))
        _, pixels = self.model.encode_image(padded_images)
        return [self.proposals(one_image(pixels, i), padded, (h, w)) for i in range(images.shape[0])]

    @torch.no_grad()
    def name(
        self,
        image: Tensor,
        proposals: Proposals,
        text: Tensor,
        *,
        adapted: bool = True,
        sizes: Sequence[int] | None = None,
    ) -> Tensor:
        """``[M, C]`` class probabilities of one image's proposals (CLIP region vs text embeddings).

        Args:
            image: ``[1, 3, H, W]``.
            proposals: the image's proposals.
            text: ``[C, E]`` unit-norm class embeddings.
            adapted: read the dense CLIP map through the feature adapter.
            sizes: input sizes averaged (default ``config.inference_sizes``).
        """
        model = self.model
        if proposals.mask_logits.shape[0] == 0:
            return text.new_zeros(0, text.shape[0])
        sizes = model.config.inference_sizes if sizes is None else tuple(sizes)
        per_scale = model.region_embeddings(image, proposals.masks[None], sizes, adapted=adapted)
        regions = ensemble_region_embeddings(per_scale)[0]  # [M, E]
        return (model.clip.logit_scale * regions @ text.T.to(regions.dtype)).softmax(-1)

    @torch.no_grad()
    def predict(
        self,
        images: Tensor,
        *,
        vocabulary: Sequence[str] | None = None,
        is_thing: Sequence[bool] | None = None,
        adapted: bool = True,
        sizes: Sequence[int] | None = None,
    ) -> list[UniOVSegPrediction]:
        """Open-vocabulary semantic and panoptic results of a batch.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            vocabulary: class names (category ids of the results index this list); default the
                predictor's.
            is_thing: one flag per class (default: all things).
            adapted: name masks through the feature adapter (False: the frozen CLIP, the baseline).
            sizes: input sizes for the region embeddings (default ``config.inference_sizes``).

        Raises:
            ValueError: on an empty or repeated vocabulary, no vocabulary at all, or bad images.
            TypeError: on a vocabulary given as one string.
        """
        if vocabulary is not None:
            names, flags = self._resolve(vocabulary, is_thing)
        elif self.vocabulary is not None and self.is_thing is not None:
            names, flags = self.vocabulary, self.is_thing
        else:
            raise ValueError("vocabulary: expected class names (the predictor has no default vocabulary)")
        model, cfg = self.model, self.model.config
        h, w = int(images.shape[-2]), int(images.shape[-1])
        padded_images = prepare_images(images, model.size_divisibility)
        padded = (int(padded_images.shape[-2]), int(padded_images.shape[-1]))
        text = model.clip.encode_text(names)
        _, pixels = model.encode_image(padded_images)
        results = []
        for i in range(images.shape[0]):
            props = self.proposals(one_image(pixels, i), padded, (h, w))
            probs = self.name(images[i : i + 1], props, text, adapted=adapted, sizes=sizes)
            class_logits = proposal_class_logits(probs, props.scores, label_rule=cfg.label_rule)
            semantic = semantic_inference(class_logits, props.mask_logits)
            panoptic = panoptic_inference(
                class_logits,
                props.mask_logits,
                is_thing=flags,
                object_mask_threshold=cfg.object_mask_threshold,
                overlap_threshold=cfg.overlap_threshold,
            )
            results.append(
                UniOVSegPrediction(semantic=semantic, panoptic=panoptic, proposals=props, class_probs=probs)
            )
        return results
