"""Local Discriminative Pooling (LDP, PosSAM Sec. 3.4): one class embedding per mask from SAM and CLIP.

The paper's description, and how each step is realised here (PosSAM's code is unreleased, so the
concrete layers are our choice; see ``zoo/possam/README.md``):

1. mask-pool the class-agnostic SAM-side mask features and the frozen CLIP dense features inside
   every predicted mask (:func:`segblocks.ops.mask_pool`);
2. project each stream into the other's space (SAM ``Ds -> E``, CLIP ``E -> Ds``, one linear layer each);
3. concatenate along the channels, one ``E + Ds`` token per mask;
4. fuse with self-attention among the masks of an image (post-norm self-attention + FFN layers);
5. normalise (a final LayerNorm): the LDP embedding of every mask.

The embeddings are classified by an :class:`~segblocks.heads.OpenVocabClassHead` (cosine with CLIP
text embeddings, learnable temperature, void class), which the module receives built. With
``clip_residual=True`` (our option; the paper only says LDP avoids "overfitting to seen classes")
the class head corrects the frozen CLIP's own region embedding instead of replacing it: it names
classes by the mask-pooled CLIP embedding plus a gated correction from the fused tokens (the gate
starts at 0, so LDP starts as the frozen-CLIP classifier), and names it never trained on keep
CLIP's evidence; whether a mask is an object at all (the void logit) is the fused tokens' alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from segblocks._validation import check_dtype, check_ndim
from segblocks.heads.class_head import OpenVocabClassHead
from segblocks.layers.attention import FFNLayer, SelfAttentionLayer
from segblocks.ops import mask_pool

__all__ = ["LocalDiscriminativePooling"]


class LocalDiscriminativePooling(nn.Module):
    """PosSAM's LDP: fuse mask-pooled SAM and CLIP features into one discriminative embedding per mask.

    Example::

        ldp = LocalDiscriminativePooling(sam_dim=256, clip_dim=768)
        emb = ldp(mask_features, clip_dense, mask_logits > 0)   # [B, Q, 1024]
        logits = ldp.classify(emb, text_embeddings)            # [B, Q, C + 1], last column void

    Args:
        sam_dim: ``Ds``, channels of the SAM-side mask features (the pixel decoder's ``mask_dim``).
        clip_dim: ``E``, channels of the CLIP dense features (the CLIP embedding width).
        num_heads: heads of the fusing self-attention (must divide ``Ds + E``).
        ffn_dim: hidden width of the FFN after each self-attention.
        num_layers: fusing (self-attention + FFN) layers, at least 1.
        class_head: classifies the embeddings; default an :class:`OpenVocabClassHead` with
            ``dim = Ds + E``, ``embed_dim = E``, a learnable temperature (initial 0.07) and a learned
            void embedding.
        attention_backend: backend of :func:`segblocks.ops.masked_attention`.
        clip_residual: name classes by ``normalize(g * head(tokens) + normalize(pooled CLIP))`` with a
            learned gate ``g`` starting at 0, so LDP starts as the frozen CLIP's mask-pooled
            classifier; the void logit reads the tokens alone (then :meth:`classify` needs
            ``clip_regions``).

    Raises:
        ValueError: on non-positive sizes, ``num_heads`` not dividing ``Ds + E`` or a class head of
            the wrong width.
    """

    def __init__(
        self,
        *,
        sam_dim: int,
        clip_dim: int,
        num_heads: int = 8,
        ffn_dim: int = 2048,
        num_layers: int = 1,
        class_head: OpenVocabClassHead | None = None,
        attention_backend: str = "auto",
        clip_residual: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (
            ("sam_dim", sam_dim),
            ("clip_dim", clip_dim),
            ("num_heads", num_heads),
            ("ffn_dim", ffn_dim),
            ("num_layers", num_layers),
        ):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        dim = sam_dim + clip_dim
        if dim % num_heads:
            raise ValueError(f"num_heads: {num_heads} does not divide sam_dim + clip_dim = {dim}")
        if class_head is None:
            class_head = OpenVocabClassHead(dim=dim, embed_dim=clip_dim)
        if class_head.dim != dim:
            raise ValueError(
                f"class_head: expected input width {dim} (sam_dim + clip_dim), got {class_head.dim}"
            )
        self.sam_dim = sam_dim
        self.clip_dim = clip_dim
        self.dim = dim
        self.sam_to_clip = nn.Linear(sam_dim, clip_dim)
        self.clip_to_sam = nn.Linear(clip_dim, sam_dim)
        self.fusion = nn.ModuleList(
            SelfAttentionLayer(dim=dim, num_heads=num_heads, backend=attention_backend)
            for _ in range(num_layers)
        )
        self.ffns = nn.ModuleList(FFNLayer(dim=dim, hidden_dim=ffn_dim) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)
        self.class_head = class_head
        self.clip_residual = bool(clip_residual)
        self.residual_gate: nn.Parameter | None = None
        if self.clip_residual:  # the correction's weight starts at zero: LDP starts as CLIP
            self.residual_gate = nn.Parameter(torch.zeros(()))

    def pool(self, mask_features: Tensor, clip_features: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        """Mask-pool both streams (step 1).

        Args:
            mask_features: ``[B, Ds, H, W]`` SAM-side mask features.
            clip_features: ``[B, E, h, w]`` CLIP dense features.
            masks: ``[B, Q, H', W']`` bool masks or probabilities (resized to each map by
                :func:`segblocks.ops.mask_pool`).

        Returns:
            ``(sam [B, Q, Ds], clip [B, Q, E])`` pooled features; an empty mask pools to zeros.

        Raises:
            ValueError: on wrong ranks, channel counts or batch sizes.
            TypeError: on non-floating features.
        """
        check_ndim("mask_features", mask_features, 4, "[B, Ds, H, W]")
        check_dtype("mask_features", mask_features, "floating")
        check_ndim("clip_features", clip_features, 4, "[B, E, h, w]")
        check_dtype("clip_features", clip_features, "floating")
        check_ndim("masks", masks, 4, "[B, Q, H, W]")
        if mask_features.shape[1] != self.sam_dim:
            raise ValueError(
                f"mask_features: expected Ds={self.sam_dim} channels, got shape {tuple(mask_features.shape)}"
            )
        if clip_features.shape[1] != self.clip_dim:
            raise ValueError(
                f"clip_features: expected E={self.clip_dim} channels, got shape {tuple(clip_features.shape)}"
            )
        b = mask_features.shape[0]
        if clip_features.shape[0] != b or masks.shape[0] != b:
            raise ValueError(
                f"mask_features, clip_features, masks: expected one batch size, got "
                f"{b}, {clip_features.shape[0]} and {masks.shape[0]}"
            )
        return mask_pool(mask_features, masks), mask_pool(clip_features.to(mask_features.dtype), masks)

    def fuse(self, sam: Tensor, clip: Tensor) -> Tensor:
        """Project, concatenate, fuse and normalise pooled features (steps 2-5).

        Args:
            sam: ``[B, Q, Ds]`` mask-pooled SAM-side features (from :meth:`pool`).
            clip: ``[B, Q, E]`` mask-pooled CLIP features.

        Returns:
            ``[B, Q, Ds + E]`` normalised embeddings.
        """
        sam_in_clip, clip_in_sam = self.sam_to_clip(sam), self.clip_to_sam(clip)
        tokens = torch.cat([sam_in_clip, clip_in_sam.to(sam_in_clip.dtype)], dim=-1)  # [B, Q, E + Ds]
        zeros = tokens.new_zeros(()).expand_as(tokens)
        for attention, ffn in zip(self.fusion, self.ffns):
            tokens = ffn(attention(tokens, zeros, None))
        return self.norm(tokens)

    def forward(self, mask_features: Tensor, clip_features: Tensor, masks: Tensor) -> Tensor:
        """The LDP embedding of every mask: :meth:`fuse` of :meth:`pool`.

        Args:
            mask_features: ``[B, Ds, H, W]`` SAM-side mask features (stride 4).
            clip_features: ``[B, E, h, w]`` frozen CLIP dense features (any stride).
            masks: ``[B, Q, H', W']`` bool masks or probabilities (e.g. ``mask_logits.detach() > 0``).

        Returns:
            ``[B, Q, Ds + E]`` normalised embeddings.

        Raises:
            ValueError: on wrong ranks, channel counts or batch sizes.
            TypeError: on non-floating features.
        """
        return self.fuse(*self.pool(mask_features, clip_features, masks))

    def classify(
        self,
        embeddings: Tensor,
        text_embeddings: Tensor,
        clip_regions: Tensor | None = None,
        void_input: Tensor | None = None,
    ) -> Tensor:
        """Class logits of LDP embeddings against a vocabulary.

        Args:
            embeddings: ``[B, Q, Ds + E]`` from :meth:`forward`.
            text_embeddings: ``[C, E]`` or ``[B, C, E]`` CLIP text embeddings.
            clip_regions: ``[B, Q, E]`` the mask-pooled CLIP features (:meth:`pool`'s second output);
                required with ``clip_residual=True``, refused without it.
            void_input: ``[B, Q, void_dim]`` what a class head with a linear void reads instead of
                the embeddings (e.g. the decoder's queries: two near-identical masks pool the same
                features, so only their queries can tell the duplicate from the match).

        Returns:
            ``[B, Q, C + 1]`` float32 logits, the last column void.

        Raises:
            ValueError: on ``clip_regions`` missing or given against ``clip_residual``, and as
                :class:`OpenVocabClassHead`.
            TypeError: see :class:`OpenVocabClassHead`.
        """
        if self.clip_residual and clip_regions is None:
            raise ValueError("clip_regions: required by an LDP built with clip_residual=True")
        if not self.clip_residual and clip_regions is not None:
            raise ValueError("clip_regions: given, but this LDP was built with clip_residual=False")
        return self.class_head(
            embeddings,
            text_embeddings,
            prior=clip_regions,
            prior_gate=self.residual_gate,
            void_input=void_input,
        )
