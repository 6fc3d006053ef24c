"""IoU / objectness head: one score per query from its embedding."""

from __future__ import annotations

from torch import Tensor, nn

from segblocks._validation import check_dtype, check_ndim
from segblocks.layers.mlp import MLP

__all__ = ["IoUHead"]


class IoUHead(nn.Module):
    """An MLP mapping each query embedding to one logit: predicted mask IoU or objectness.

    Trained with a regression loss on the true IoU (PosSAM, Uni-OVSeg) or a focal loss on
    matched/unmatched (OMG-Seg's objectness); ``sigmoid`` of the logit is the score.

    Args:
        dim: query width ``D``.
        num_layers: MLP depth (OMG-Seg: 3).
    """

    def __init__(self, *, dim: int, num_layers: int = 3) -> None:
        super().__init__()
        self.mlp = MLP(in_dim=dim, hidden_dim=dim, out_dim=1, num_layers=num_layers)
        self.dim = dim

    def forward(self, queries: Tensor) -> Tensor:
        """Score every query.

        Args:
            queries: ``[B, Q, D]`` query embeddings.

        Returns:
            ``[B, Q]`` logits.

        Raises:
            ValueError: on a wrong rank or width.
            TypeError: on a non-floating input.
        """
        check_ndim("queries", queries, 3, "[B, Q, D]")
        check_dtype("queries", queries, "floating")
        if queries.shape[-1] != self.dim:
            raise ValueError(f"queries: expected width D={self.dim}, got shape {tuple(queries.shape)}")
        return self.mlp(queries).squeeze(-1)
