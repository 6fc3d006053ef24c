"""What SEEM's passes return: an image encoded once, and one decoder pass's predictions and answers."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from segblocks.decoders import PixelDecoderOutput, PromptPoints
from segblocks.structures import MaskPredictions

__all__ = ["ImageEncoding", "SEEMOutput"]


@dataclass
class ImageEncoding:
    """An image batch encoded once (backbone + pixel decoder), decoded any number of rounds.

    Attributes:
        pixels: the pixel decoder's mask features and multi-scale features (of the padded input).
        padded: ``(H', W')`` of the padded input.
        image_size: ``(H, W)`` of the images.
    """

    pixels: PixelDecoderOutput
    padded: tuple[int, int]
    image_size: tuple[int, int]

    def detached(self) -> ImageEncoding:
        """The same features cut from the graph (for the rounds simulated without gradients)."""
        return ImageEncoding(
            pixels=PixelDecoderOutput(
                mask_features=self.pixels.mask_features.detach(),
                multi_scale_features=[f.detach() for f in self.pixels.multi_scale_features],
            ),
            padded=self.padded,
            image_size=self.image_size,
        )


@dataclass
class SEEMOutput:
    """One decoder pass.

    Attributes:
        generic: object queries' predictions (``class_logits`` against the vocabulary), earlier layers in ``aux``.
        prompts: spatial queries' predictions ``[B, P * k, h, w]`` with candidate scores as
            ``iou_scores`` (None without prompts).
        selected: ``[B, P]`` int64 chosen candidate of each prompt (None without prompts).
        points: the visual sampler's pixels (None without visual prompts).
    """

    generic: MaskPredictions
    prompts: MaskPredictions | None = None
    selected: Tensor | None = None
    points: PromptPoints | None = None

    def answers(self) -> Tensor:
        """``[B, P, h, w]`` mask logits of each prompt's chosen candidate.

        Raises:
            ValueError: when the pass had no prompts.
        """
        if self.prompts is None or self.selected is None:
            raise ValueError("answers: this pass had no prompts")
        p = self.selected.shape[1]
        k = self.prompts.mask_logits.shape[1] // p
        logits = self.prompts.mask_logits.unflatten(1, (p, k))
        index = self.selected[:, :, None, None, None].expand(-1, -1, 1, *logits.shape[-2:])
        return logits.gather(2, index)[:, :, 0]

    def answer_scores(self) -> Tensor:
        """``[B, P]`` the chosen candidates' scores (softmax over the prompt's candidates)."""
        if self.prompts is None or self.selected is None or self.prompts.iou_scores is None:
            raise ValueError("answer_scores: this pass had no prompts")
        p = self.selected.shape[1]
        probs = self.prompts.iou_scores.float().unflatten(1, (p, -1)).softmax(-1)
        return probs.gather(2, self.selected[..., None])[..., 0]
