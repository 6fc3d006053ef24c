"""An interactive SEEM session: set an image once, then prompt one or several objects round after round.

Example (the shipped world-scale model; ``image`` is ``[H, W, 3]`` uint8)::

    session = SEEMSession(load_shipped_seem())
    session.set_image(image)                              # encoded once
    first = session.prompt(clicks=[(40, 52)])             # a new object: object 0
    fixed = session.prompt(0, clicks=[(60, 20, False)])   # round 2: a negative click corrects it
    star = session.prompt(text="the red star")            # another object, by text
    both = session.prompt(text="the circle", clicks=[(90, 90)])  # text + click, composed
    fixed.masks, fixed.scores                             # [N, H, W] bool, [N]

Every call is one round: the object's new prompts are added to what it already has, the decoder
reads all of them plus the previous round's mask (memory prompt), and the call returns the current
masks and scores of every object. Prompts are validated with errors naming the argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from segblocks.decoders import box_region, click_region, stroke_region
from segblocks.zoo.seem.model import SEEM
from segblocks.zoo.seem.outputs import ImageEncoding
from segblocks.zoo.seem.prompt_batch import PromptBatch

__all__ = ["COMPOSITIONS", "SEEMSession", "SessionResult"]

#: How a visual and a text prompt of one object are combined: one pass in which the spatial queries
#: attend to both (``"attention"``, SEEM), or the average of a text-only and a visual-only answer
#: (``"ensemble"``, the alternative the supplementary's Table 1 compares to).
COMPOSITIONS = ("attention", "ensemble")

Click = tuple[float, float] | tuple[float, float, bool]


@dataclass
class SessionResult:
    """The current answer for every object of the session.

    Attributes:
        masks: ``[N, H, W]`` bool, one mask per object (object ids ``0..N-1``).
        scores: ``[N]`` float in ``[0, 1]``, the chosen candidate's share of its prompt's scores.
        probabilities: ``[N, H, W]`` float mask probabilities.
        round: how many rounds the session has run.
    """

    masks: Tensor
    scores: Tensor
    probabilities: Tensor
    round: int


@dataclass
class _Object:
    positive: Tensor
    negative: Tensor
    clicks: Tensor
    text: str | None = None
    probabilities: Tensor | None = None
    score: float = 0.0
    history: list[str] = field(default_factory=list)


class SEEMSession:
    """Interactive segmentation with a SEEM: one image, any objects, any rounds.

    Args:
        model: a SEEM (put in eval mode).
        composition: :data:`COMPOSITIONS`.
        use_memory: pass the previous round's masks as memory prompts.
        seed: seeds the visual sampler (the same prompts give the same answer).
    """

    def __init__(
        self, model: SEEM, *, composition: str = "attention", use_memory: bool = True, seed: int = 0
    ) -> None:
        if not isinstance(model, SEEM):
            raise TypeError(f"model: expected a SEEM, got {type(model).__name__}")
        if composition not in COMPOSITIONS:
            raise ValueError(f"composition: expected one of {COMPOSITIONS}, got {composition!r}")
        self.model = model.eval()
        self.composition = composition
        self.use_memory = use_memory
        self.seed = seed
        self._encoding: ImageEncoding | None = None
        self._size: tuple[int, int] = (0, 0)
        self._objects: list[_Object] = []
        self._round = 0

    # --------------------------------------------------------------------------- image and objects
    @property
    def device(self) -> torch.device:
        """The model's device."""
        return self.model.query_feat.weight.device

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the current image."""
        return self._size

    @property
    def num_objects(self) -> int:
        """Objects prompted so far."""
        return len(self._objects)

    @torch.no_grad()
    def set_image(self, image: NDArray[np.uint8] | Tensor) -> None:
        """Encode an image once (backbone and pixel decoder); forget the previous image's objects.

        Args:
            image: ``[H, W, 3]`` uint8 RGB, or ``[3, H, W]`` float RGB in ``[0, 1]``.

        Raises:
            ValueError: on another shape or dtype.
        """
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"image: expected a [H, W, 3] uint8 array, got {image.dtype} {image.shape}")
            tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        elif isinstance(image, Tensor):
            if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
                raise ValueError(
                    f"image: expected a [3, H, W] float tensor, got {image.dtype} {tuple(image.shape)}"
                )
            tensor = image.float()
        else:
            raise ValueError(f"image: expected a numpy array or a tensor, got {type(image).__name__}")
        self._encoding = self.model.encode_image(tensor[None].to(self.device))
        self._size = (int(tensor.shape[1]), int(tensor.shape[2]))
        self._objects = []
        self._round = 0

    def _check_image(self) -> ImageEncoding:
        if self._encoding is None:
            raise ValueError("image: call set_image(image) before prompting")
        return self._encoding

    # --------------------------------------------------------------------------- prompting
    def prompt(
        self,
        obj: int | None = None,
        *,
        clicks: Sequence[Click] = (),
        box: Sequence[float] | None = None,
        stroke: NDArray[np.bool_] | Tensor | Sequence[Sequence[float]] | None = None,
        negative_stroke: NDArray[np.bool_] | Tensor | Sequence[Sequence[float]] | None = None,
        mask: NDArray[np.bool_] | Tensor | None = None,
        text: str | None = None,
    ) -> SessionResult:
        """One round: add prompts to an object (a new one when ``obj`` is None) and answer every object.

        Args:
            obj: the object id to correct, or None to start a new object.
            clicks: ``(x, y)`` positive clicks or ``(x, y, positive)``.
            box: ``(x1, y1, x2, y2)`` in pixels.
            stroke: a positive stroke: an ``[H, W]`` bool mask, or a polyline of ``(x, y)`` points.
            negative_stroke: a negative stroke (mask or polyline).
            mask: an ``[H, W]`` bool mask prompt.
            text: a text prompt (referring expression or class name); replaces the object's text.

        Returns:
            :class:`SessionResult` for every object.

        Raises:
            ValueError: no image set; an unknown object; no prompt at all; a click outside the image;
                an empty stroke or mask; a stroke or mask of another size; a new object whose only
                prompts are negative; a text with no words.
        """
        self._check_image()
        size = self._size
        if obj is not None and not 0 <= obj < len(self._objects):
            raise ValueError(f"obj: no object {obj}; objects are 0..{len(self._objects) - 1}")
        if (
            not clicks
            and box is None
            and stroke is None
            and negative_stroke is None
            and mask is None
            and text is None
        ):
            raise ValueError("prompt: give at least one of clicks, box, stroke, negative_stroke, mask, text")
        if text is not None and (not isinstance(text, str) or not any(c.isalnum() for c in text)):
            raise ValueError(f"text: expected a text with at least one word, got {text!r}")
        pos = torch.zeros(size, dtype=torch.bool)
        neg = torch.zeros(size, dtype=torch.bool)
        clicked = torch.zeros(size, dtype=torch.bool)  # clicks: regions of their own for the sampler
        for i, click in enumerate(clicks):
            if len(click) not in (2, 3):
                raise ValueError(f"clicks[{i}]: expected (x, y) or (x, y, positive), got {click!r}")
            region = click_region(float(click[0]), float(click[1]), size, name=f"clicks[{i}]")
            positive = bool(click[2]) if len(click) == 3 else True
            (pos if positive else neg)[:] |= region
            clicked |= region
        if box is not None:
            pos |= box_region(box, size, name="box")
        if stroke is not None:
            pos |= self._stroke("stroke", stroke)
        if negative_stroke is not None:
            neg |= self._stroke("negative_stroke", negative_stroke)
        if mask is not None:
            pos |= self._mask("mask", mask)
        if obj is None:
            if not bool(pos.any()) and text is None:
                raise ValueError(
                    "clicks: a new object needs a positive prompt (a positive click, box, stroke, mask or text); "
                    "negative prompts alone say only where it is not"
                )
            self._objects.append(_Object(positive=pos, negative=neg & ~pos, clicks=clicked, text=text))
            obj = len(self._objects) - 1
        else:
            o = self._objects[obj]
            o.positive |= pos
            o.negative = (o.negative & ~pos) | (neg & ~o.positive)
            o.positive &= ~(neg & ~pos)
            o.clicks |= clicked
            if text is not None:
                o.text = text
        return self._answer([obj])

    def _stroke(self, name: str, stroke: NDArray[np.bool_] | Tensor | Sequence[Sequence[float]]) -> Tensor:
        if isinstance(stroke, np.ndarray | Tensor) and (stroke.dtype in (np.bool_, torch.bool)):
            return self._mask(name, stroke)
        points = torch.as_tensor(np.asarray(stroke, dtype=np.float32))
        return stroke_region(
            points, self._size, width=self.model.config.stroke_width if self.model.config else 3.0, name=name
        )

    def _mask(self, name: str, mask: NDArray[np.bool_] | Tensor) -> Tensor:
        m = torch.as_tensor(np.asarray(mask)) if isinstance(mask, np.ndarray) else mask.cpu()
        if m.dtype != torch.bool or m.ndim != 2:
            raise ValueError(f"{name}: expected an [H, W] bool mask, got {m.dtype} {tuple(m.shape)}")
        if tuple(m.shape) != self._size:
            raise ValueError(f"{name}: expected the image's size {self._size}, got {tuple(m.shape)}")
        if not bool(m.any()):
            raise ValueError(f"{name}: the mask is empty; mark at least one pixel")
        return m

    # --------------------------------------------------------------------------- decoding
    @torch.no_grad()
    def _decode(self, visual: bool, text: bool) -> tuple[Tensor, Tensor]:
        """Probabilities ``[N, H, W]`` and scores ``[N]`` of every object from the chosen parts of its prompts."""
        encoding = self._check_image()
        objs = self._objects
        device = self.device
        positive = torch.stack([o.positive if visual else torch.zeros_like(o.positive) for o in objs])
        negative = torch.stack([o.negative if visual else torch.zeros_like(o.negative) for o in objs])
        previous = torch.stack(
            [
                (o.probabilities > 0.5)
                if (o.probabilities is not None and self.use_memory)
                else torch.zeros_like(o.positive)
                for o in objs
            ]
        )
        texts: list[str | None] = [o.text if text else None for o in objs]
        usable = positive.flatten(1).any(1) | torch.tensor([t is not None for t in texts])
        batch = PromptBatch(
            positive=positive[None].to(device),
            negative=negative[None].to(device),
            previous=previous[None].to(device),
            texts=[texts],
            valid=usable[None].to(device),
            clicks=torch.stack([o.clicks for o in objs])[None].to(device),
        )
        generator = torch.Generator(device=device).manual_seed(self.seed)
        out = self.model.decode(encoding, batch, use_memory=self.use_memory, generator=generator)
        logits = torch.nn.functional.interpolate(out.answers().float(), size=encoding.padded, mode="bilinear")
        probs = logits[0, :, : self._size[0], : self._size[1]].sigmoid().cpu()
        scores = out.answer_scores()[0].cpu()
        return torch.where(usable[:, None, None], probs, torch.zeros_like(probs)), torch.where(
            usable, scores, 0.0
        )

    def _answer(self, touched: Sequence[int]) -> SessionResult:
        if self.composition == "ensemble":
            vis_p, vis_s = self._decode(True, False)
            txt_p, txt_s = self._decode(False, True)
            has_v = torch.stack([o.positive.any() for o in self._objects])
            has_t = torch.tensor([o.text is not None for o in self._objects])
            both = (has_v & has_t)[:, None, None]
            probs = torch.where(both, 0.5 * (vis_p + txt_p), torch.where(has_v[:, None, None], vis_p, txt_p))
            scores = torch.where(has_v & has_t, 0.5 * (vis_s + txt_s), torch.where(has_v, vis_s, txt_s))
        else:
            probs, scores = self._decode(True, True)
        for i in touched:  # untouched objects keep their answer (and memory) from their last round
            self._objects[i].probabilities = probs[i]
            self._objects[i].score = float(scores[i])
        self._round += 1
        current = torch.stack(
            [
                o.probabilities if o.probabilities is not None else probs[i]
                for i, o in enumerate(self._objects)
            ]
        )
        return SessionResult(
            masks=current > 0.5,
            scores=torch.tensor([o.score for o in self._objects]),
            probabilities=current,
            round=self._round,
        )
