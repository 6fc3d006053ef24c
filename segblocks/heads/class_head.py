"""Class heads: a closed-set linear classifier and an open-vocabulary (text-embedding) classifier.

Both return ``[B, Q, C + 1]`` logits whose last column is the void ("no object") class, the layout
:class:`~segblocks.structures.MaskPredictions` and the set criterion expect.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segblocks._validation import check_dtype, check_ndim, check_positive_int
from segblocks.layers.mlp import MLP

__all__ = ["LinearClassHead", "OpenVocabClassHead"]


def _check_queries(queries: Tensor, dim: int) -> None:
    check_ndim("queries", queries, 3, "[B, Q, D]")
    check_dtype("queries", queries, "floating")
    if queries.shape[-1] != dim:
        raise ValueError(f"queries: expected width D={dim}, got shape {tuple(queries.shape)}")


class LinearClassHead(nn.Module):
    """Closed-set classification: one linear layer to ``num_classes + 1`` logits (last = void).

    Args:
        dim: query width ``D``.
        num_classes: ``C``, the number of real classes.
    """

    def __init__(self, *, dim: int, num_classes: int) -> None:
        super().__init__()
        num_classes = check_positive_int("num_classes", num_classes)
        self.dim = dim
        self.num_classes = num_classes
        self.linear = nn.Linear(dim, num_classes + 1)

    def forward(self, queries: Tensor) -> Tensor:
        """Classify every query.

        Args:
            queries: ``[B, Q, D]``.

        Returns:
            ``[B, Q, C + 1]`` logits, the last column the void class.

        Raises:
            ValueError: on a wrong rank or width.
            TypeError: on a non-floating input.
        """
        _check_queries(queries, self.dim)
        return self.linear(queries)


class OpenVocabClassHead(nn.Module):
    """Open-vocabulary classification: scaled cosine between projected queries and text embeddings.

    ``logits[b, q, c] = scale * cos(MLP(queries[b, q]), text[c])``; the void logit is the scaled
    cosine with a learned void embedding (``void="learned"``, FC-CLIP), a constant 0
    (``void="zero"``, a zero prototype as in OMG-Seg) or a linear function of the queries, not
    scaled and so not bounded by the temperature (``void="linear"``, our option; it starts at 0).
    The linear void may read another input than the queries (``void_dim`` wide, given to
    :meth:`forward` as ``void_input``): e.g. a mask decoder's query when the head names mask-pooled
    regions, which two near-identical masks share, while their queries differ.
    ``scale = 1 / temperature``, learnable (stored as its logarithm and clamped at 100, CLIP's rule)
    or fixed (OMG-Seg: fixed 100). The vocabulary is an input, so the same trained head classifies
    any class list.

    Args:
        dim: query width ``D``.
        embed_dim: text-embedding width ``E``.
        temperature: initial (or fixed) temperature, > 0.
        learnable_temperature: learn the temperature.
        void: ``"learned"``, ``"zero"`` or ``"linear"``.
        num_layers: depth of the query projection MLP (1 = a linear layer).
        void_dim: width of the linear void's input (default ``dim``: the queries); ``"linear"`` only.
    """

    def __init__(
        self,
        *,
        dim: int,
        embed_dim: int,
        temperature: float = 0.07,
        learnable_temperature: bool = True,
        void: str = "learned",
        num_layers: int = 1,
        void_dim: int | None = None,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature: expected a positive number, got {temperature}")
        if void not in ("learned", "zero", "linear"):
            raise ValueError(f"void: expected 'learned', 'zero' or 'linear', got {void!r}")
        if void_dim is not None and (void != "linear" or void_dim <= 0):
            raise ValueError(
                f"void_dim: expected a positive width with void='linear', got {void_dim} with {void!r}"
            )
        self.dim = dim
        self.embed_dim = embed_dim
        self.void = void
        self.void_dim = dim if void_dim is None else void_dim
        #: the linear void reads ``forward``'s ``void_input``, not the queries (``void_dim`` was given)
        self.void_reads_input = void_dim is not None
        self.proj = MLP(in_dim=dim, hidden_dim=dim, out_dim=embed_dim, num_layers=num_layers)
        log_scale = torch.tensor(math.log(1.0 / temperature))
        self.log_scale: Tensor
        if learnable_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        self.void_embedding: nn.Parameter | None = None
        self.void_linear: nn.Linear | None = None
        if void == "learned":
            self.void_embedding = nn.Parameter(torch.randn(embed_dim) / math.sqrt(embed_dim))
        elif void == "linear":  # starts at logit 0, the zero prototype's
            self.void_linear = nn.Linear(self.void_dim, 1)
            nn.init.zeros_(self.void_linear.weight)
            nn.init.zeros_(self.void_linear.bias)

    @property
    def scale(self) -> Tensor:
        """The logit scale ``1 / temperature`` (a scalar tensor, at most 100)."""
        return self.log_scale.clamp(max=math.log(100.0)).exp()

    def forward(
        self,
        queries: Tensor,
        text_embeddings: Tensor,
        prior: Tensor | None = None,
        prior_gate: Tensor | None = None,
        void_input: Tensor | None = None,
    ) -> Tensor:
        """Classify every query against a vocabulary.

        Args:
            queries: ``[B, Q, D]`` query (or region) embeddings.
            text_embeddings: ``[C, E]`` or ``[B, C, E]`` class embeddings (normalised or not).
            prior: optional ``[B, Q, E]`` embeddings in the text space (e.g. frozen-CLIP region
                embeddings) that the projection corrects: the embedding compared with the class
                texts becomes ``normalize(prior_gate * MLP(queries) + normalize(prior))``, while the
                void logit still reads the queries alone (whether a query is an object is not
                the prior's to say); a zero prior adds nothing.
            prior_gate: scalar weight of the correction (default 1; with a prior only).
            void_input: ``[B, Q, void_dim]`` what the linear void reads instead of ``queries``;
                required when ``void_dim`` was given, refused by the other voids.

        Returns:
            ``[B, Q, C + 1]`` logits in float32, the last column the void class.

        Raises:
            ValueError: on wrong ranks or widths, an empty vocabulary or a prior of another shape.
            TypeError: on non-floating inputs.
        """
        _check_queries(queries, self.dim)
        if prior is not None:
            check_dtype("prior", prior, "floating")
            expected = (*queries.shape[:2], self.embed_dim)
            if tuple(prior.shape) != expected:
                raise ValueError(f"prior: expected shape {expected} ([B, Q, E]), got {tuple(prior.shape)}")
        check_dtype("text_embeddings", text_embeddings, "floating")
        if text_embeddings.ndim not in (2, 3) or text_embeddings.shape[-1] != self.embed_dim:
            raise ValueError(
                f"text_embeddings: expected [C, E={self.embed_dim}] or [B, C, E={self.embed_dim}], "
                f"got {tuple(text_embeddings.shape)}"
            )
        if text_embeddings.shape[-2] == 0:
            raise ValueError("text_embeddings: expected at least one class, got an empty vocabulary")
        b = queries.shape[0]
        if void_input is not None:
            if self.void_linear is None:
                raise ValueError(f"void_input: given, but this head's void is {self.void!r}, not 'linear'")
            check_dtype("void_input", void_input, "floating")
            expected = (*queries.shape[:2], self.void_dim)
            if tuple(void_input.shape) != expected:
                raise ValueError(
                    f"void_input: expected shape {expected} ([B, Q, void_dim]), got {tuple(void_input.shape)}"
                )
        elif self.void_reads_input:
            raise ValueError(
                f"void_input: required, this head's void reads a separate [B, Q, {self.void_dim}] input"
            )
        if text_embeddings.ndim == 3 and text_embeddings.shape[0] != b:
            raise ValueError(
                f"text_embeddings: batch {text_embeddings.shape[0]} does not match queries' batch {b}"
            )
        head = self.proj(queries).float()  # [B, Q, E]
        emb = F.normalize(head, dim=-1)
        void_emb = emb
        if prior is not None:
            gate = 1.0 if prior_gate is None else prior_gate.float()
            emb = F.normalize(gate * head + F.normalize(prior.float(), dim=-1), dim=-1)
        elif prior_gate is not None:
            raise ValueError("prior_gate: given without a prior")
        text = F.normalize(text_embeddings.float(), dim=-1)
        if text.ndim == 2:
            text = text.unsqueeze(0).expand(b, -1, -1)
        logits = torch.einsum("bqe,bce->bqc", emb, text) * self.scale
        if self.void_embedding is not None:
            void = (void_emb @ F.normalize(self.void_embedding.float(), dim=-1))[..., None] * self.scale
        elif self.void_linear is not None:
            void = self.void_linear(queries if void_input is None else void_input).float()
        else:
            void = logits.new_zeros(*logits.shape[:2], 1)
        return torch.cat([logits, void], dim=-1)
