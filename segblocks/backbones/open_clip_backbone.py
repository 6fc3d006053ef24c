"""OpenCLIPBackbone: an open_clip CLIP (ConvNeXt or ViT) as a multi-scale, dense, text-aware backbone."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.timm_model import TimmModel
from open_clip.transformer import VisionTransformer
from torch import Tensor, nn

from segblocks._validation import check_ndim
from segblocks.backbones.base import Backbone, freeze
from segblocks.backbones.clip_image_towers import (
    STRIDES,
    cnn_features,
    cnn_head_dim,
    cnn_stages,
    vit_outputs,
)
from segblocks.backbones.clip_loading import create_clip_model
from segblocks.backbones.simple_fpn import SimpleFeaturePyramid
from segblocks.backbones.text_prompts import (
    DEFAULT_TEMPLATES,
    build_prompts,
    parse_vocabulary,
    validate_templates,
)
from segblocks.ops import mask_pool
from segblocks.structures import ShapeSpec

__all__ = ["OpenCLIPBackbone"]

logger = logging.getLogger(__name__)


class OpenCLIPBackbone(Backbone):
    """An open_clip CLIP model as a backbone: ``res2..res5``, a dense CLIP map, and text embeddings.

    - **ConvNeXt CLIP** (open_clip ``timm_model_name`` towers, e.g. ``convnext_large_d_320``):
      ``res2..res5`` are the trunk's stage outputs; ``clip_dense`` applies the trunk head's norm and
      the CLIP projection head (linear or MLP) at every location of the last stage (stride 32, or
      16 for a trunk with a dilated last stage such as ``regnetx_002_os16``), as FC-CLIP does.
    - **ViT CLIP** (e.g. ``ViT-B-16``): the final patch tokens, reshaped to a map, go through a
      :class:`SimpleFeaturePyramid` (trainable) to ``res2..res5``; ``clip_dense`` is ``ln_post`` and
      the projection applied to every patch token. Other input sizes resample the positional
      embedding at forward time exactly as open_clip does when it loads a checkpoint at another
      ``force_image_size`` (bicubic, antialiased).

    The CLIP model is frozen by default (eval mode, no gradients); the pyramid of a ViT stays trainable.

    Args:
        model_name: an open_clip model name, or one registered with
            :func:`segblocks.backbones.register_clip_config`.
        pretrained: ``None`` (random init), an open_clip pretrained tag, a local checkpoint
            (``.safetensors`` or a PyTorch file, read with ``weights_only=True``), or a tag registered or
            bundled with segblocks (e.g. ``"shapes"``).
        frozen: freeze the CLIP model.
        fpn_channels: channels of ``res2..res5`` for ViT models.
        strict: raise on missing/unexpected keys when loading a file.
        cache_dir: open_clip's download cache for pretrained tags.
        device: where the CLIP model is created (``"meta"``: no memory, for inspecting shapes and
            parameter counts).

    Example (needs the published weights, so it is not run by the tests; ``images`` is
    ``[B, 3, H, W]`` in ``[0, 1]``, ``masks`` ``[B, N, H, W]``)::

        clip = OpenCLIPBackbone("convnext_large_d_320", pretrained="laion2b_s29b_b131k_ft_soup")
        feats = clip(images)
        text = clip.encode_text(["cat", "person, people, man"])  # [2, 768], unit norm
        regions = clip.pool_masks(feats["clip_dense"], masks)    # [B, N, 768]
        logits = clip.logit_scale * regions @ text.T
    """

    clip: Any  # an open_clip CLIP / CustomTextCLIP (its attributes are not typed)

    def __init__(
        self,
        model_name: str,
        *,
        pretrained: str | os.PathLike[str] | None = None,
        frozen: bool = True,
        fpn_channels: int = 256,
        strict: bool = True,
        cache_dir: str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        clip, report = create_clip_model(
            model_name, pretrained, strict=strict, cache_dir=cache_dir, device=device
        )
        cfg = open_clip.get_model_preprocess_cfg(clip)
        super().__init__(pixel_mean=cfg["mean"], pixel_std=cfg["std"])
        self.model_name = model_name
        self.pretrained = None if pretrained is None else str(pretrained)
        self.load_report = report
        self.clip = clip
        self.frozen = frozen
        self.fpn: SimpleFeaturePyramid | None = None
        visual = clip.visual
        if isinstance(visual, TimmModel):
            self.kind = "cnn"
            self._init_cnn(visual)
        elif isinstance(visual, VisionTransformer):
            self.kind = "vit"
            self._init_vit(visual, fpn_channels)
        else:
            raise ValueError(
                f"model_name: {model_name!r} has a {type(visual).__name__} image tower; OpenCLIPBackbone "
                "supports timm CNN towers (ConvNeXt) and open_clip VisionTransformer towers"
            )
        if frozen:
            freeze(self.clip)
        self._tokenizer: Callable[..., Tensor] | None = None
        self._text_cache: dict[tuple[object, ...], Tensor] = {}
        # new weights make cached text embeddings stale (also when a parent module loads them)
        self.register_load_state_dict_post_hook(lambda module, _keys: module._text_cache.clear())
        self.to(device)

    # ------------------------------------------------------------------------------------- set-up
    def _init_cnn(self, visual: TimmModel) -> None:
        stages = cnn_stages(visual.trunk, self.model_name)
        self._stage_indices = stages.indices
        self._stage_strides = stages.strides
        self._stage_channels = stages.channels
        self.embed_dim = cnn_head_dim(visual, int(visual.trunk.num_features))
        self.dense_stride = stages.strides[-1]
        self._size_divisibility = 32

    def _init_vit(self, visual: VisionTransformer, fpn_channels: int) -> None:
        if visual.attn_pool is not None or visual.pool_type not in ("tok", "avg") or visual.proj is None:
            raise ValueError(
                f"model_name: {self.model_name!r} uses attentional or no pooling (pool_type="
                f"{visual.pool_type!r}); OpenCLIPBackbone supports ViT towers with token or average pooling"
            )
        ph, pw = visual.patch_size
        if ph != pw:
            raise ValueError(f"model_name: non-square patches {visual.patch_size} are not supported")
        self.patch_size = int(ph)
        self.embed_dim = int(visual.proj.shape[1])
        self.dense_stride = self.patch_size
        self._size_divisibility = math.lcm(self.patch_size, 32)
        width = int(visual.conv1.out_channels)
        self.fpn = SimpleFeaturePyramid(
            in_channels=width, in_stride=self.patch_size, out_channels=fpn_channels
        )

    def train(self, mode: bool = True) -> OpenCLIPBackbone:
        """Set train/eval mode; a frozen CLIP model stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.clip.eval()
        return self

    def freeze_pyramid(self) -> None:
        """Freeze a ViT CLIP's feature pyramid too (for models that read only ``clip_dense``; no-op for CNNs)."""
        if self.fpn is not None:
            self.fpn.requires_grad_(False)

    def output_shape(self) -> dict[str, ShapeSpec]:
        """``res2..res5`` and ``clip_dense`` (``embed_dim`` channels, ``dense_stride``: 32, 16 or the ViT patch)."""
        if self.fpn is not None:
            shapes = {f"res{i + 2}": ShapeSpec(self.fpn.out_channels, s) for i, s in enumerate(STRIDES)}
        else:
            shapes = {
                f"res{i + 2}": ShapeSpec(c, s)
                for i, (c, s) in enumerate(zip(self._stage_channels, self._stage_strides))
            }
        shapes["clip_dense"] = ShapeSpec(self.embed_dim, self.dense_stride)
        return shapes

    # ------------------------------------------------------------------------------------- images
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Multi-scale features, the dense CLIP map and the global image embedding.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``; ``H``, ``W`` multiples of ``size_divisibility``.

        Returns:
            ``res2..res5``: ``[B, C_i, H / s, W / s]`` for ``s`` = 4, 8, 16, 32 (16 for ``res5`` of a
            dilated CNN trunk);
            ``clip_dense``: ``[B, D, H / d, W / d]`` (``d`` = ``dense_stride``), CLIP embeddings per
            location (not normalised); ``clip_global``: ``[B, D]`` the image embedding, equal to
            open_clip's ``encode_image`` (not normalised).

        Raises:
            ValueError, TypeError: on bad ``images`` (see :meth:`Backbone.check_images`).
        """
        images = self.check_images(images)
        x = self.normalize(images)
        return self._forward_cnn(x) if self.kind == "cnn" else self._forward_vit(x)

    def _forward_cnn(self, x: Tensor) -> dict[str, Tensor]:
        return cnn_features(self.clip.visual, x, self._stage_indices)

    def _forward_vit(self, x: Tensor) -> dict[str, Tensor]:
        tower = vit_outputs(self.clip.visual, x)
        assert self.fpn is not None
        out = self.fpn(tower.grid, image_size=(x.shape[-2], x.shape[-1]))
        out["clip_global"] = tower.clip_global
        out["clip_dense"] = tower.clip_dense
        return out

    def encode_image(self, images: Tensor, *, normalize: bool = False) -> Tensor:
        """The global CLIP image embedding (open_clip's ``encode_image`` on normalised pixels).

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            normalize: L2-normalise the result.

        Returns:
            ``[B, D]``.
        """
        emb = self(images)["clip_global"]
        return F.normalize(emb, dim=-1) if normalize else emb

    # ------------------------------------------------------------------------------------- regions
    def pool_masks(self, dense: Tensor, masks: Tensor, *, normalize: bool = True) -> Tensor:
        """One CLIP embedding per mask: the masked average of the dense CLIP map.

        Args:
            dense: ``[B, D, h, w]`` the ``clip_dense`` output.
            masks: ``[B, N, H', W']`` bool or probabilities (resized bilinearly to ``h, w``).
            normalize: L2-normalise the embeddings (empty masks give zero vectors).

        Returns:
            ``[B, N, D]`` region embeddings in the text space.

        Raises:
            ValueError: if ``dense`` does not have ``embed_dim`` channels or on bad shapes.
        """
        check_ndim("dense", dense, 4, "[B, D, h, w]")
        if dense.shape[1] != self.embed_dim:
            raise ValueError(f"dense: expected {self.embed_dim} channels, got shape {tuple(dense.shape)}")
        pooled = mask_pool(dense, masks)
        return F.normalize(pooled, dim=-1) if normalize else pooled

    def embed_masks(self, features: Tensor, masks: Tensor, *, normalize: bool = True) -> Tensor:
        """FC-CLIP's order for ConvNeXt CLIP: pool the trunk's stride-32 features, then apply the head.

        For a mask covering the whole image this reproduces the global image embedding.

        Args:
            features: ``[B, C5, h, w]`` the ``res5`` output.
            masks: ``[B, N, H', W']`` bool or probabilities.
            normalize: L2-normalise the embeddings.

        Returns:
            ``[B, N, D]``.

        Raises:
            ValueError: for ViT models (use :meth:`pool_masks`) or bad shapes.
        """
        if self.kind != "cnn":
            raise ValueError("embed_masks: only ConvNeXt (CNN) CLIP models; use pool_masks for ViT models")
        check_ndim("features", features, 4, "[B, C5, h, w]")
        if features.shape[1] != self._stage_channels[-1]:
            raise ValueError(
                f"features: expected the res5 map with {self._stage_channels[-1]} channels, "
                f"got shape {tuple(features.shape)}"
            )
        visual = self.clip.visual
        norm_pre = getattr(visual.trunk, "norm_pre", None) or nn.Identity()
        pooled = mask_pool(norm_pre(features), masks)
        b, n, c = pooled.shape
        emb = visual.head(visual.trunk.forward_head(pooled.reshape(b * n, c, 1, 1))).reshape(b, n, -1)
        return F.normalize(emb, dim=-1) if normalize else emb

    # ------------------------------------------------------------------------------------- text
    @property
    def logit_scale(self) -> Tensor:
        """CLIP's learned temperature, ``exp(logit_scale)`` (a scalar tensor)."""
        return self.clip.logit_scale.exp()

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        """Tokenize with open_clip's tokenizer for this model.

        Args:
            texts: N strings.

        Returns:
            ``[N, context_length]`` int64 token ids.
        """
        if self._tokenizer is None:
            self._tokenizer = open_clip.get_tokenizer(self.model_name)
        return self._tokenizer(list(texts))

    def encode_text_tokens(self, texts: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
        """Per-token text features of sentences (for grounding queries to attend to) and their pooled embedding.

        Every token's final feature goes through CLIP's text projection, so tokens live in the same
        space as :meth:`encode_text`'s embeddings. Frozen models run without gradients.

        Args:
            texts: N sentences (referring expressions, class names), each with at least one word.

        Returns:
            ``(tokens [N, L, E], valid [N, L] bool (start token to end token), pooled [N, E] unit norm)``,
            ``L`` the longest tokenized sentence.

        Raises:
            ValueError: on an empty list, a non-string, or a text with no words.
            TypeError: on a text tower without per-token outputs (Hugging Face text towers).
        """
        if isinstance(texts, str) or len(texts) == 0:
            raise ValueError(f"texts: expected a non-empty list of strings, got {texts!r}")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not any(ch.isalnum() for ch in text):
                raise ValueError(f"texts[{i}]: expected a text with at least one word, got {text!r}")
        clip = self.clip
        if not hasattr(clip, "token_embedding"):
            raise TypeError(f"{self.model_name!r}: its text tower has no per-token outputs")
        device = clip.logit_scale.device
        ids = self.tokenize(texts).to(device)  # [N, ctx]
        end = ids.argmax(dim=-1)  # the end-of-text token has the largest id (open_clip's argmax pooling)
        for i, n in enumerate(end.tolist()):
            if n <= 1:
                raise ValueError(f"texts[{i}]: no word of {texts[i]!r} is in the tokenizer's vocabulary")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            cast = clip.transformer.get_cast_dtype()
            x = clip.token_embedding(ids).to(cast) + clip.positional_embedding.to(cast)
            x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))  # [N, ctx, W]
            proj = clip.text_projection
            if proj is not None:
                x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
            length = int(end.max()) + 1
            tokens = x[:, :length]
            valid = torch.arange(length, device=device)[None, :] <= end[:, None]
            pooled = F.normalize(x[torch.arange(len(texts), device=device), end], dim=-1)
        return tokens, valid, pooled

    def encode_text(
        self,
        class_names: Sequence[str | Sequence[str]],
        *,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        batch_size: int = 256,
    ) -> Tensor:
        """One unit-norm text embedding per class, ensembling templates and synonyms.

        Every (synonym, template) sentence is encoded and L2-normalised; a class's embedding is the
        normalised mean over its sentences. With a frozen model the result is cached by (model,
        vocabulary, templates, device), so repeated calls cost nothing (the same tensor is returned;
        do not modify it in place); ``load_state_dict`` clears the cache.

        Args:
            class_names: K classes; ``"person, people, man"`` or ``["person", "people"]`` are synonyms.
            templates: prompt templates with one ``{}``.
            batch_size: sentences per text-encoder call.

        Returns:
            ``[K, D]`` unit-norm embeddings on the model's device.

        Raises:
            ValueError: on an empty vocabulary, an empty class name or a bad template.
        """
        vocabulary = parse_vocabulary(class_names)
        templates = validate_templates(templates)
        if batch_size <= 0:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
        device = self.clip.logit_scale.device
        key = (self.model_name, self.pretrained, vocabulary, templates, str(device))
        if self.frozen and key in self._text_cache:
            return self._text_cache[key]
        sentences, owners = build_prompts(vocabulary, templates)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            chunks = []
            for start in range(0, len(sentences), batch_size):
                tokens = self.tokenize(sentences[start : start + batch_size]).to(device)
                chunks.append(self.clip.encode_text(tokens, normalize=True))
            per_sentence = torch.cat(chunks)
            index = torch.tensor(owners, device=device)
            sums = per_sentence.new_zeros(len(vocabulary), per_sentence.shape[1])
            sums = sums.index_add_(0, index, per_sentence)
            embeddings = F.normalize(sums, dim=-1)
        if self.frozen:
            self._text_cache[key] = embeddings
        return embeddings
