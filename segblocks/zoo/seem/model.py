"""SEEM assembled from segblocks blocks (Fig. 3 of the paper, Fig. 1 of its supplementary).

Image -> ``backbone`` -> ``pixel_decoder`` -> multi-scale features and mask features. The SEEM
decoder (``mask_decoder``, one masked-attention transformer) refines, in one pass:

* object queries (generic segmentation; self-attend among themselves), classified against class-name
  embeddings of the frozen text encoder by ``class_head`` (cosine, learnable logit scale);
* spatial queries (``spatial_queries``, ``k`` per prompt) that self-attend to their prompt's
  visual tokens (``visual_sampler``), text tokens (``text_tokens``, from the frozen ``clip`` text
  encoder: grounding) and memory prompts (``memory_prompts``, the previous round's mask);
* the prompt tokens themselves, which are attended to but never attend to the image.

A prompt's answer is the candidate whose mask embedding best matches the pooled feature at its
positive points (a visual prompt) or whose class embedding best matches its text (a text-only
prompt). Interaction over rounds is :class:`~segblocks.zoo.seem.SEEMSession`'s job.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segblocks.backbones import OpenCLIPBackbone
from segblocks.decoders import (
    DenseMaskPrompt,
    MaskedAttentionDecoder,
    MemoryPrompts,
    PixelDecoder,
    PixelDecoderOutput,
    PromptPoints,
    QueryGroup,
    SelfAttentionRule,
    SpatialQueries,
    TextPromptTokens,
    VisualSampler,
    pool_at_points,
    select_candidates,
)
from segblocks.heads import OpenVocabClassHead
from segblocks.inference import pad_targets, prepare_images
from segblocks.layers import FourierPositionFeatures
from segblocks.losses import GroupedCriterion
from segblocks.structures import MaskPredictions, Targets
from segblocks.zoo.seem.config import SEEMConfig
from segblocks.zoo.seem.outputs import ImageEncoding, SEEMOutput
from segblocks.zoo.seem.prompt_batch import PromptBatch

__all__ = ["SEEM"]


class SEEM(nn.Module):
    """SEEM: segment everything everywhere all at once, with visual, text and memory prompts.

    Args:
        backbone: the image backbone (``res2..res5``).
        clip: the frozen CLIP whose text encoder reads class names and prompt texts (may be the backbone).
        pixel_decoder: the pixel decoder.
        mask_decoder: the SEEM decoder (a masked-attention decoder; it holds the mask head).
        visual_sampler: visual prompt regions -> per-level tokens.
        spatial_queries: ``k`` candidates per prompt.
        memory_prompts: previous-mask tokens per prompt.
        text_tokens: projects the text encoder's token features for the decoder.
        class_head: object queries (and grounding candidates) vs text embeddings; learnable scale.
        criterion: per-group losses (``object``, ``spatial``) and the candidate-selection loss.
        num_queries: object queries (paper: 101).
        vocabulary: class names of generic segmentation.
        is_thing: one flag per class.
        text_embeddings: ``[C, E]`` the CLIP's class-name embeddings (a non-persistent buffer).
        pad_inputs: pad images to the size divisibility.
        config: the configuration the model was built from.
        pixel_position: adds where each pixel is to the mask features and the feature levels
            (None: the pixel decoder's features as they are, as in SEEM).
        dense_memory: previous masks into the mask features their candidates read (None: as SEEM).
    """

    text_embeddings: Tensor

    def __init__(
        self,
        *,
        backbone: nn.Module,
        clip: OpenCLIPBackbone,
        pixel_decoder: PixelDecoder,
        mask_decoder: MaskedAttentionDecoder,
        visual_sampler: VisualSampler,
        spatial_queries: SpatialQueries,
        memory_prompts: MemoryPrompts,
        text_tokens: TextPromptTokens,
        class_head: OpenVocabClassHead,
        criterion: GroupedCriterion,
        num_queries: int,
        vocabulary: Sequence[str],
        is_thing: Sequence[bool],
        text_embeddings: Tensor,
        pad_inputs: bool = True,
        config: SEEMConfig | None = None,
        pixel_position: FourierPositionFeatures | None = None,
        dense_memory: DenseMaskPrompt | None = None,
    ) -> None:
        super().__init__()
        if num_queries <= 0:
            raise ValueError(f"num_queries: expected a positive int, got {num_queries}")
        if len(vocabulary) == 0 or len(is_thing) != len(vocabulary):
            raise ValueError(
                f"vocabulary, is_thing: expected one flag per class name, got {len(vocabulary)} and {len(is_thing)}"
            )
        self.backbone = backbone
        self.clip = clip
        self.pixel_decoder = pixel_decoder
        self.pixel_position = pixel_position
        self.mask_decoder = mask_decoder
        self.visual_sampler = visual_sampler
        self.spatial_queries = spatial_queries
        self.memory_prompts = memory_prompts
        self.dense_memory = dense_memory
        self.text_tokens = text_tokens
        self.class_head = class_head
        self.criterion = criterion
        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, mask_decoder.dim)
        self.query_embed = nn.Embedding(num_queries, mask_decoder.dim)
        # SEEM scores a visual prompt's candidates by exp(scale) * cos(mask embedding, pooled feature)
        self.selection_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.vocabulary = list(vocabulary)
        self.is_thing = [bool(t) for t in is_thing]
        self.register_buffer("text_embeddings", text_embeddings, persistent=False)  # rebuilt from names
        self.pad_inputs = pad_inputs
        self.config = config

    @property
    def size_divisibility(self) -> int:
        """H and W must be multiples of this; inputs are padded to it."""
        return int(getattr(self.backbone, "size_divisibility", 32) or 32)

    @property
    def per_prompt(self) -> int:
        """``k``, candidate spatial queries per prompt."""
        return self.spatial_queries.per_prompt

    def refresh_vocabulary(self, vocabulary: Sequence[str] | None = None) -> None:
        """Re-encode class names with the current CLIP weights (after loading weights, or a new list).

        Args:
            vocabulary: new class names (default: the current ones).
        """
        if vocabulary is not None:
            self.vocabulary = list(vocabulary)
        self.text_embeddings = self.clip.encode_text(self.vocabulary).to(self.query_feat.weight.device)

    # ------------------------------------------------------------------------------ the figure
    def encode_image(self, images: Tensor) -> ImageEncoding:
        """Backbone and pixel decoder, once per image whatever the number of rounds.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.

        Raises:
            ValueError, TypeError: on bad images.
        """
        size = (int(images.shape[-2]), int(images.shape[-1])) if images.ndim == 4 else (0, 0)
        padded = prepare_images(images, self.size_divisibility, pad=self.pad_inputs)
        pixels = self.pixel_decoder(self.backbone(padded))
        if self.pixel_position is not None:  # mask features and levels learn where each pixel is
            mask_features, *levels = self.pixel_position([pixels.mask_features, *pixels.multi_scale_features])
            pixels = PixelDecoderOutput(mask_features=mask_features, multi_scale_features=levels)
        padded_size = (int(padded.shape[-2]), int(padded.shape[-1]))
        return ImageEncoding(pixels=pixels, padded=padded_size, image_size=size)

    def object_queries(self, batch: int) -> QueryGroup:
        """The learned object queries ``[B, Q, D]``; they self-attend among themselves only.

        Args:
            batch: batch size ``B``.
        """
        return QueryGroup(
            name="object",
            content=self.query_feat.weight.unsqueeze(0).expand(batch, -1, -1),
            positional=self.query_embed.weight.unsqueeze(0).expand(batch, -1, -1),
            self_attention=SelfAttentionRule.own_group(),
        )

    def encode_texts(self, prompts: PromptBatch) -> tuple[Tensor, Tensor, Tensor]:
        """The frozen text encoder on the prompts' texts.

        Returns:
            ``(tokens [B, P, L, E], valid [B, P, L], pooled [B, P, E])`` (zeros where no text).
        """
        b, p = prompts.valid.shape
        where = [(i, j) for i in range(b) for j in range(p) if prompts.texts[i][j] is not None]
        texts = [prompts.texts[i][j] for i, j in where]
        tokens, valid, pooled = self.clip.encode_text_tokens(texts)  # type: ignore[arg-type]
        length, e = tokens.shape[1], tokens.shape[2]
        out_tokens = tokens.new_zeros(b, p, length, e)
        out_valid = torch.zeros(b, p, length, dtype=torch.bool, device=prompts.valid.device)
        out_pooled = pooled.new_zeros(b, p, e)
        for n, (i, j) in enumerate(where):
            out_tokens[i, j], out_valid[i, j], out_pooled[i, j] = tokens[n], valid[n], pooled[n]
        return out_tokens, out_valid, out_pooled

    def decode(
        self,
        encoding: ImageEncoding,
        prompts: PromptBatch | None = None,
        *,
        use_memory: bool = True,
        generator: torch.Generator | None = None,
    ) -> SEEMOutput:
        """One pass of the SEEM decoder over object queries and the prompts' groups.

        Args:
            encoding: :meth:`encode_image`'s output.
            prompts: the batch's prompts at the image size, or None (generic segmentation only).
            use_memory: add the memory prompts and any dense memory (False: "memory off").
            generator: random generator of the visual sampler.

        Returns:
            :class:`SEEMOutput`.
        """
        pixels = encoding.pixels
        batch = pixels.mask_features.shape[0]
        groups = [self.object_queries(batch)]
        points = None
        text_pooled = None
        if prompts is not None:
            if prompts.valid.shape[0] != batch:
                raise ValueError(f"prompts: expected {batch} images, got {prompts.valid.shape[0]}")
            if tuple(prompts.positive.shape[-2:]) != encoding.image_size:
                raise ValueError(
                    f"prompts: regions of size {tuple(prompts.positive.shape[-2:])} do not match the images' "
                    f"{encoding.image_size}"
                )
            prompts = prompts.padded(encoding.padded)
            attend: list[str] = []
            tail: list[QueryGroup] = []
            if bool(prompts.has_visual.any()):
                tokens, points = self.visual_sampler(
                    pixels.multi_scale_features,
                    prompts.positive,
                    prompts.negative,
                    generator=generator,
                    clicks=prompts.clicks,
                )
                tail.append(tokens)
                attend.append(tokens.name)
            if bool(prompts.has_text.any()):
                text_tokens, text_valid, text_pooled = self.encode_texts(prompts)
                tail.append(self.text_tokens(text_tokens.to(pixels.mask_features.dtype), text_valid))
                attend.append("text_tokens")
            if use_memory:
                tail.append(self.memory_prompts(prompts.previous, prompts.valid))
                attend.append("memory")
            spatial = self.spatial_queries(prompts.valid, tuple(attend))
            if use_memory and self.dense_memory is not None:  # the previous mask, densely
                h, w = pixels.mask_features.shape[-2:]
                dense = self.dense_memory(prompts.previous, (h, w)).to(pixels.mask_features.dtype)
                spatial = dataclasses.replace(spatial, dense_prompt=dense)
            groups += [spatial, *tail]
        decoded = self.mask_decoder(groups, pixels.multi_scale_features, pixels.mask_features)

        generic_layers = []
        obj = decoded.slices["object"]
        for q, m in zip(decoded.queries, decoded.mask_logits):
            generic_layers.append(
                MaskPredictions(
                    mask_logits=m[:, obj],
                    class_logits=self.class_head(q[:, obj], self.text_embeddings),
                    query_embeddings=q[:, obj],
                )
            )
        generic = generic_layers[-1]
        generic.aux = generic_layers[:-1]
        if prompts is None:
            return SEEMOutput(generic=generic)

        s = decoded.slices["spatial"]
        queries = decoded.queries[-1][:, s]
        scores = self.candidate_scores(queries, pixels.mask_features, prompts, points, text_pooled)
        spatial_layers = [
            MaskPredictions(mask_logits=m[:, s], query_embeddings=q[:, s])
            for q, m in zip(decoded.queries[:-1], decoded.mask_logits[:-1])
        ]
        final = MaskPredictions(
            mask_logits=decoded.mask_logits[-1][:, s],
            iou_scores=scores,
            query_embeddings=queries,
            aux=spatial_layers,
        )
        return SEEMOutput(
            generic=generic,
            prompts=final,
            selected=select_candidates(scores.detach(), self.per_prompt),
            points=points,
        )

    def candidate_scores(
        self,
        queries: Tensor,
        mask_features: Tensor,
        prompts: PromptBatch,
        points: PromptPoints | None,
        text_pooled: Tensor | None,
    ) -> Tensor:
        """``[B, P * k]`` candidate scores: mask embedding vs pooled positive-point feature (visual
        prompts), class embedding vs pooled text embedding (text-only prompts).

        Args:
            queries: ``[B, P * k, D]`` the spatial queries after the last layer.
            mask_features: ``[B, C, H, W]`` per-pixel embeddings.
            prompts: the (padded) prompts.
            points: the visual sampler's pixels, or None.
            text_pooled: ``[B, P, E]`` pooled text embeddings, or None.
        """
        b, p = prompts.valid.shape
        k = self.per_prompt
        scores = queries.new_zeros(b, p, k, dtype=torch.float32)
        has_visual = torch.zeros(b, p, dtype=torch.bool, device=queries.device)
        if points is not None:
            key, has_visual = pool_at_points(
                mask_features, points.coords, points.prompt_ids, points.positive & points.valid, p
            )
            emb = F.normalize(self.mask_decoder.mask_head.embed(queries).float(), dim=-1).unflatten(1, (p, k))
            visual = torch.einsum("bpkc,bpc->bpk", emb, F.normalize(key.float(), dim=-1))
            scores = torch.where(has_visual[..., None], visual * self.selection_scale.exp(), scores)
        if text_pooled is not None:
            emb = F.normalize(self.class_head.proj(queries).float(), dim=-1).unflatten(1, (p, k))
            text = torch.einsum("bpkc,bpc->bpk", emb, F.normalize(text_pooled.float(), dim=-1))
            use_text = prompts.has_text & ~has_visual
            scores = torch.where(use_text[..., None], text * self.class_head.scale, scores)
        return scores.flatten(1)

    def forward(self, images: Tensor, prompts: PromptBatch | None = None) -> SEEMOutput:
        """Encode and decode once (first round; :meth:`decode` for later rounds).

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            prompts: the prompts at the image size, or None.
        """
        return self.decode(self.encode_image(images), prompts)

    # ------------------------------------------------------------------------------ losses
    def losses(
        self,
        outputs: SEEMOutput,
        targets: Sequence[Targets] | None,
        prompt_targets: Sequence[Targets] | None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Weighted losses: ``object/*`` (generic: class 2, BCE 5, Dice 5) and ``spatial/*`` (prompts:
        BCE 1, Dice 1, candidate choice 0.4), deep supervision included.

        Args:
            outputs: a :meth:`decode` output.
            targets: per image panoptic targets (labels index the vocabulary), or None.
            prompt_targets: per image, target ``p`` the mask prompt ``p`` asks for, or None.
            generator: random generator for the point sampling.
        """
        h, w = outputs.generic.mask_logits.shape[-2:]
        stride = self.pixel_decoder.mask_stride
        size = (h * stride, w * stride)
        predictions: dict[str, MaskPredictions] = {"object": outputs.generic}
        grouped: dict[str, list[Targets]] = {}
        if targets is not None:
            grouped["object"] = pad_targets(targets, size)
        if prompt_targets is not None:
            if outputs.prompts is None:
                raise ValueError("prompt_targets: the outputs have no prompt predictions")
            predictions["spatial"] = outputs.prompts
            grouped["spatial"] = pad_targets(prompt_targets, size)
        return self.criterion(predictions, grouped, generator=generator)

    def state_summary(self) -> dict[str, Any]:
        """Trainable and frozen parameter counts, and the count of each part (also on the meta device).

        Parts: ``backbone``, ``text_encoder`` (the CLIP text tower), ``pixel_decoder``, ``seem_decoder``
        (mask decoder, prompt blocks, class head, queries) and, when the image backbone is not the
        CLIP, ``unused_clip_image_tower`` (built by open_clip, never run).
        """
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.parameters() if not p.requires_grad)
        text = {id(p) for n, p in self.clip.clip.named_parameters() if not n.startswith("visual.")}
        clip_all = {id(p) for p in self.clip.parameters()}
        backbone = {id(p) for p in self.backbone.parameters()}
        pixel = {id(p) for p in self.pixel_decoder.parameters()}
        sizes = {id(p): p.numel() for p in self.parameters()}
        parts = {
            "backbone": sum(sizes[i] for i in backbone - (text if self.backbone is self.clip else set())),
            "text_encoder": sum(sizes[i] for i in text),
            "pixel_decoder": sum(sizes[i] for i in pixel),
            "seem_decoder": sum(sizes[i] for i in set(sizes) - clip_all - backbone - pixel),
        }
        if self.backbone is not self.clip:
            parts["unused_clip_image_tower"] = sum(sizes[i] for i in clip_all - text)
        return {"trainable": trainable, "frozen": frozen, "parts": parts}
