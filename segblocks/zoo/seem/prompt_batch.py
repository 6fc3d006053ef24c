"""The prompts of a batch as SEEM's decoder reads them: regions, previous masks and texts per object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks._validation import check_dtype, check_ndim, check_shape
from segblocks.decoders.prompt_regions import ObjectRegions

__all__ = ["PromptBatch"]


@dataclass
class PromptBatch:
    """``P`` prompts (objects) per image, padded; each with visual regions, a previous mask and a text.

    Attributes:
        positive: ``[B, P, H, W]`` bool positive regions (clicks, boxes, strokes, masks).
        negative: ``[B, P, H, W]`` bool negative regions.
        previous: ``[B, P, H, W]`` bool previous round's mask (all False in the first round).
        texts: B lists of P entries: the prompt's text, or None.
        valid: ``[B, P]`` bool, False for padding prompts.
        clicks: ``[B, P, H, W]`` bool, the pixels of ``positive`` and ``negative`` that are clicks
            (the visual sampler can sample them as regions of their own), or None (none marked).
    """

    positive: Tensor
    negative: Tensor
    previous: Tensor
    texts: list[list[str | None]]
    valid: Tensor
    clicks: Tensor | None = None

    def __post_init__(self) -> None:
        check_ndim("positive", self.positive, 4, "[B, P, H, W]")
        check_dtype("positive", self.positive, "bool")
        shape = tuple(self.positive.shape)
        for name in ("negative", "previous", "clicks"):
            if name == "clicks" and self.clicks is None:
                continue
            check_shape(name, getattr(self, name), shape, "[B, P, H, W] like positive")
            check_dtype(name, getattr(self, name), "bool")
        b, p = shape[:2]
        check_shape("valid", self.valid, (b, p), f"[B={b}, P={p}]")
        check_dtype("valid", self.valid, "bool")
        if len(self.texts) != b or any(len(t) != p for t in self.texts):
            raise ValueError(f"texts: expected {b} lists of {p} entries (a text or None per prompt)")
        for i, row in enumerate(self.texts):
            for j, text in enumerate(row):
                if text is not None and (not isinstance(text, str) or not any(c.isalnum() for c in text)):
                    raise ValueError(f"texts[{i}][{j}]: expected a text with at least one word, got {text!r}")

    @property
    def num_prompts(self) -> list[int]:
        """Real prompts per image."""
        return [int(v) for v in self.valid.sum(1).tolist()]

    @property
    def has_text(self) -> Tensor:
        """``[B, P]`` bool: the prompt has a text."""
        return torch.tensor([[t is not None for t in row] for row in self.texts], device=self.valid.device)

    @property
    def has_visual(self) -> Tensor:
        """``[B, P]`` bool: the prompt has a visual region (positive or negative)."""
        return (self.positive | self.negative).flatten(2).any(-1)

    @classmethod
    def from_objects(
        cls,
        regions: Sequence[ObjectRegions | None],
        texts: Sequence[Sequence[str | None]],
        size: tuple[int, int],
        *,
        previous: Sequence[Tensor | None] | None = None,
        clicks: Sequence[Tensor | None] | None = None,
        device: torch.device | str = "cpu",
    ) -> PromptBatch:
        """Pad per-image objects into a batch.

        Args:
            regions: per image, its objects' :class:`~segblocks.decoders.ObjectRegions` ``[N_i, H, W]``
                (None: text-only objects).
            texts: per image, ``N_i`` texts or None.
            size: ``(H, W)`` of the images.
            previous: per image, ``[N_i, H, W]`` bool previous masks, or None.
            clicks: per image, ``[N_i, H, W]`` bool pixels of its regions that are clicks, or None
                (the batch's ``clicks`` is None when no image gives any).
            device: where to put the tensors.

        Raises:
            ValueError: on counts that disagree or an object with neither a region nor a text.
        """
        if len(regions) != len(texts):
            raise ValueError(
                f"regions, texts: expected one entry per image, got {len(regions)} and {len(texts)}"
            )
        counts = [len(t) for t in texts]
        for i, r in enumerate(regions):
            if r is not None and len(r) != counts[i]:
                raise ValueError(f"regions[{i}]: {len(r)} objects but {counts[i]} texts (None where no text)")
        b, p = len(texts), max(1, max(counts, default=0))
        h, w = size
        pos = torch.zeros(b, p, h, w, dtype=torch.bool)
        neg = torch.zeros(b, p, h, w, dtype=torch.bool)
        prev = torch.zeros(b, p, h, w, dtype=torch.bool)
        valid = torch.zeros(b, p, dtype=torch.bool)
        clicked = torch.zeros(b, p, h, w, dtype=torch.bool)
        rows: list[list[str | None]] = []
        for i, (r, t) in enumerate(zip(regions, texts)):
            n = counts[i]
            valid[i, :n] = True
            if r is not None:
                pos[i, :n], neg[i, :n] = r.positive.cpu(), r.negative.cpu()
            if previous is not None and previous[i] is not None:
                prev[i, :n] = previous[i].cpu()  # type: ignore[union-attr]
            if clicks is not None and clicks[i] is not None:
                clicked[i, :n] = clicks[i].cpu()  # type: ignore[union-attr]
            rows.append(list(t) + [None] * (p - n))
            for j in range(n):
                if t[j] is None and not bool(pos[i, j].any()):
                    raise ValueError(
                        f"prompts: object {j} of image {i} has neither a positive visual prompt nor a text"
                    )
        return cls(
            positive=pos.to(device),
            negative=neg.to(device),
            previous=prev.to(device),
            texts=rows,
            valid=valid.to(device),
            clicks=None if clicks is None else clicked.to(device),
        )

    def padded(self, size: tuple[int, int]) -> PromptBatch:
        """The same prompts with regions padded (bottom/right, False) to ``size`` (the padded input)."""
        h, w = self.positive.shape[-2:]
        if (h, w) == tuple(size):
            return self
        dh, dw = size[0] - h, size[1] - w
        if dh < 0 or dw < 0:
            raise ValueError(f"size: {tuple(size)} is smaller than the prompts' {(h, w)}")
        pad = (0, dw, 0, dh)
        return PromptBatch(
            positive=F.pad(self.positive, pad),
            negative=F.pad(self.negative, pad),
            previous=F.pad(self.previous, pad),
            texts=self.texts,
            valid=self.valid,
            clicks=None if self.clicks is None else F.pad(self.clicks, pad),
        )

    def to(self, device: torch.device | str) -> PromptBatch:
        """A copy on ``device``."""
        return PromptBatch(
            positive=self.positive.to(device),
            negative=self.negative.to(device),
            previous=self.previous.to(device),
            texts=self.texts,
            valid=self.valid.to(device),
            clicks=None if self.clicks is None else self.clicks.to(device),
        )
