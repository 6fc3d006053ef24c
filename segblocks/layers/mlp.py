"""A small multi-layer perceptron, the building block of the query heads."""

from __future__ import annotations

import itertools

from torch import Tensor, nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU in between (none after the last).

    Args:
        in_dim: input width.
        hidden_dim: width of the hidden layers.
        out_dim: output width.
        num_layers: number of linear layers, at least 1.
    """

    def __init__(self, *, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers: expected >= 1, got {num_layers}")
        for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim)):
            if value <= 0:
                raise ValueError(f"{name}: expected a positive int, got {value}")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.in_dim = in_dim
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        """Apply the MLP to ``x`` of shape ``[..., in_dim]``; returns ``[..., out_dim]``."""
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"x: expected last dim {self.in_dim}, got shape {tuple(x.shape)}")
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = x.relu()
        return x
