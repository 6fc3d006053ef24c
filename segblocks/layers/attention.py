"""The three sub-layers of a masked-attention decoder layer: cross-attention, self-attention, FFN.

All three are post-norm (``x = norm(x + f(x))``) with dropout 0, as in Mask2Former. Both attentions
run through :func:`segblocks.ops.masked_attention`, so one boolean mask ``[B, Q, K]`` (True = may
attend) is shared by all heads and never copied per head, and a fully blocked row attends everywhere
without a host synchronisation.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn

from segblocks._validation import check_ndim
from segblocks.ops import masked_attention

__all__ = ["CrossAttentionLayer", "FFNLayer", "MultiHeadAttention", "SelfAttentionLayer"]


class MultiHeadAttention(nn.Module):
    """Multi-head attention with input/output projections and a head-shared boolean mask.

    Args:
        dim: model width ``D`` (divisible by ``num_heads``).
        num_heads: attention heads.
        backend: backend of :func:`segblocks.ops.masked_attention` (``"auto"``, ``"sdpa"``,
            ``"triton"``, ``"reference"``).
    """

    def __init__(self, *, dim: int, num_heads: int, backend: str = "auto") -> None:
        super().__init__()
        if dim <= 0 or num_heads <= 0 or dim % num_heads:
            raise ValueError(
                f"dim, num_heads: expected dim divisible by num_heads, got {dim} and {num_heads}"
            )
        self.dim = dim
        self.num_heads = num_heads
        self.backend = backend
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attend from ``Q`` queries to ``K`` keys.

        Args:
            query: ``[B, Q, D]``.
            key: ``[B, K, D]``.
            value: ``[B, K, D]``.
            mask: ``[B, Q, K]`` bool, True = may attend; None attends everywhere.

        Returns:
            ``[B, Q, D]``.

        Raises:
            ValueError: on inputs that are not ``[B, *, D]``, or mismatched shapes (see
                :func:`segblocks.ops.masked_attention`).
        """
        for name, t in (("query", query), ("key", key), ("value", value)):
            check_ndim(name, t, 3, "[B, N, D]")
            if t.shape[-1] != self.dim:
                raise ValueError(f"{name}: expected width D={self.dim}, got shape {tuple(t.shape)}")
        h = self.num_heads
        q = rearrange(self.q_proj(query), "b q (h d) -> b h q d", h=h)
        k = rearrange(self.k_proj(key), "b k (h d) -> b h k d", h=h)
        v = rearrange(self.v_proj(value), "b k (h d) -> b h k d", h=h)
        out = masked_attention(q, k, v, mask, backend=self.backend)
        return self.out_proj(rearrange(out, "b h q d -> b q (h d)"))


class CrossAttentionLayer(nn.Module):
    """Masked cross-attention from queries to image features, post-norm.

    ``queries = norm(queries + attn(queries + query_pos, memory + memory_pos, memory, mask))``.

    Args:
        dim: model width.
        num_heads: attention heads.
        backend: masked-attention backend.
    """

    def __init__(self, *, dim: int, num_heads: int, backend: str = "auto") -> None:
        super().__init__()
        self.attn = MultiHeadAttention(dim=dim, num_heads=num_heads, backend=backend)
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, queries: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor, mask: Tensor | None
    ) -> Tensor:
        """Update the queries with what they read from ``memory``.

        Args:
            queries: ``[B, Q, D]`` query content.
            query_pos: ``[B, Q, D]`` query positional embeddings.
            memory: ``[B, K, D]`` flattened feature map.
            memory_pos: ``[B, K, D]`` positional embeddings of the memory.
            mask: ``[B, Q, K]`` bool, True = may attend (e.g. inside the previous mask prediction).

        Returns:
            ``[B, Q, D]`` updated queries.
        """
        update = self.attn(queries + query_pos, memory + memory_pos, memory, mask)
        return self.norm(queries + update)


class SelfAttentionLayer(nn.Module):
    """Self-attention among queries under a boolean rule mask, post-norm.

    Args:
        dim: model width.
        num_heads: attention heads.
        backend: masked-attention backend.
    """

    def __init__(self, *, dim: int, num_heads: int, backend: str = "auto") -> None:
        super().__init__()
        self.attn = MultiHeadAttention(dim=dim, num_heads=num_heads, backend=backend)
        self.norm = nn.LayerNorm(dim)

    def forward(self, queries: Tensor, query_pos: Tensor, mask: Tensor | None) -> Tensor:
        """Let the queries exchange information.

        Args:
            queries: ``[B, Q, D]``.
            query_pos: ``[B, Q, D]``.
            mask: ``[B, Q, Q]`` bool, True = may attend (from
                :func:`~segblocks.decoders.build_self_attention_mask`), or None.

        Returns:
            ``[B, Q, D]`` updated queries.
        """
        qk = queries + query_pos
        return self.norm(queries + self.attn(qk, qk, queries, mask))


class FFNLayer(nn.Module):
    """Two-layer feed-forward block (Linear, ReLU, Linear), post-norm.

    Args:
        dim: model width.
        hidden_dim: hidden width (Mask2Former: 2048 in the mask decoder, 1024 in the pixel decoder).
    """

    def __init__(self, *, dim: int, hidden_dim: int) -> None:
        super().__init__()
        if dim <= 0 or hidden_dim <= 0:
            raise ValueError(f"dim, hidden_dim: expected positive ints, got {dim} and {hidden_dim}")
        self.linear1 = nn.Linear(dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, dim)
        self.activation = nn.ReLU()
        self.norm = nn.LayerNorm(dim)
        for lin in (self.linear1, self.linear2):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``norm(x + linear2(relu(linear1(x))))`` for ``x`` of shape ``[..., D]``."""
        return self.norm(x + self.linear2(self.activation(self.linear1(x))))
