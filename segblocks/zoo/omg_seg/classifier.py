"""OMG-Seg's open-vocabulary classifier: mask-pooled pixel features added to the query, then cosine to text.

For every query (and every decoder layer) the stride-4 mask features are averaged inside the query's
own predicted mask (detached, logit > 0; a clip's tube pools over all its frames), passed through
LayerNorm + Linear and added to the query embedding; a 3-layer MLP maps the sum to the CLIP text
space, where the L2-normalised result is compared by cosine with the frozen text embeddings at a
fixed scale (100). A zero vector is the background prototype, so the void logit is always 0 (the
official rule); ``void="learned"`` learns the background prototype instead (FC-CLIP's rule).
"""

from __future__ import annotations

from torch import Tensor, nn

from segblocks._validation import check_dtype, check_ndim
from segblocks.heads import OpenVocabClassHead, mask_pool

__all__ = ["OMGClassifier"]


class OMGClassifier(nn.Module):
    """Mask-pooled features + query -> MLP -> cosine with frozen text embeddings (and a void prototype).

    Args:
        dim: query width ``D``.
        mask_dim: channels ``C`` of the mask features.
        embed_dim: text-embedding width ``E``.
        num_layers: depth of the MLP (official: 3).
        logit_scale: fixed cosine scale (official: 100).
        void: the background prototype: ``"zero"`` (official; the void logit is always 0) or
            ``"learned"`` (a learned embedding, FC-CLIP).
    """

    def __init__(
        self,
        *,
        dim: int,
        mask_dim: int,
        embed_dim: int,
        num_layers: int = 3,
        logit_scale: float = 100.0,
        void: str = "zero",
    ) -> None:
        super().__init__()
        if not logit_scale > 0:
            raise ValueError(f"logit_scale: expected a positive number, got {logit_scale}")
        if void not in ("zero", "learned"):
            raise ValueError(f"void: expected 'zero' or 'learned', got {void!r}")
        self.dim = dim
        self.mask_dim = mask_dim
        self.pool_proj = nn.Sequential(nn.LayerNorm(mask_dim), nn.Linear(mask_dim, dim))
        self.head = OpenVocabClassHead(
            dim=dim,
            embed_dim=embed_dim,
            temperature=1.0 / logit_scale,
            learnable_temperature=False,
            void=void,
            num_layers=num_layers,
        )

    @property
    def embed_dim(self) -> int:
        """``E``, the width of the text embeddings it compares with."""
        return self.head.embed_dim

    def pool(self, mask_features: Tensor, mask_logits: Tensor) -> Tensor:
        """Average the mask features inside each query's detached binary mask (or tube).

        Args:
            mask_features: ``[B, C, H, W]``, or ``[B * T, C, H, W]`` for clips.
            mask_logits: ``[B, Q, H, W]``, or tubes ``[B, Q, T, H, W]``.

        Returns:
            ``[B, Q, C]`` pooled features (zeros for an empty mask).
        """
        masks = (mask_logits.detach() > 0).to(mask_features.dtype)
        if mask_logits.ndim == 5:  # a tube: pool over every frame (frames stacked along H)
            b, q, t, h, w = mask_logits.shape
            feats = mask_features.reshape(b, t, -1, *mask_features.shape[-2:]).transpose(1, 2)
            return mask_pool(feats.flatten(2, 3), masks.reshape(b, q, t * h, w))
        return mask_pool(mask_features, masks)

    def forward(
        self, queries: Tensor, mask_logits: Tensor, mask_features: Tensor, text_embeddings: Tensor
    ) -> Tensor:
        """Classify every query against a vocabulary.

        Args:
            queries: ``[B, Q, D]`` normalised query embeddings.
            mask_logits: ``[B, Q, H, W]`` (tubes ``[B, Q, T, H, W]``), the queries' predicted masks.
            mask_features: ``[B, C, H, W]`` (``[B * T, C, H, W]`` for clips) at the masks' resolution.
            text_embeddings: ``[C_v, E]`` class embeddings.

        Returns:
            ``[B, Q, C_v + 1]`` float32 logits, the last column the background.

        Raises:
            ValueError: on mismatched ranks or widths, or an empty vocabulary.
            TypeError: on non-floating inputs.
        """
        check_ndim("queries", queries, 3, "[B, Q, D]")
        check_dtype("mask_features", mask_features, "floating")
        if mask_logits.ndim not in (4, 5) or tuple(mask_logits.shape[:2]) != tuple(queries.shape[:2]):
            raise ValueError(
                f"mask_logits: expected [B, Q, H, W] or [B, Q, T, H, W] with B, Q = {tuple(queries.shape[:2])}, "
                f"got {tuple(mask_logits.shape)}"
            )
        pooled = self.pool_proj(self.pool(mask_features, mask_logits).to(queries.dtype))
        return self.head(queries + pooled, text_embeddings)
