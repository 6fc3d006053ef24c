"""Checks that turn what a user hands :meth:`OMGSegPredictor.predict` into the tensors the model takes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from segblocks._validation import check_dtype
from segblocks.structures import Prompts

__all__ = ["as_clip", "as_images", "as_prompt_list"]


def as_images(images: Tensor | Sequence[Tensor]) -> Tensor:
    """``[B, 3, H, W]`` from ``[B, 3, H, W]`` or one ``[3, H, W]`` image.

    Args:
        images: ``[B, 3, H, W]`` or ``[3, H, W]`` floating RGB.

    Raises:
        ValueError: on another shape. TypeError: on a non-tensor or non-floating input.
    """
    if not isinstance(images, Tensor):
        raise TypeError(
            f"images: expected a [B, 3, H, W] tensor for an image task, got {type(images).__name__}"
        )
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ValueError(f"images: expected [B, 3, H, W] (or [3, H, W]), got shape {tuple(images.shape)}")
    check_dtype("images", images, "floating")
    return images


def as_clip(frames: Tensor | Sequence[Tensor]) -> Tensor:
    """``[T, 3, H, W]`` from ``[T, 3, H, W]``, ``[1, T, 3, H, W]`` or a list of ``[3, H, W]`` frames.

    Args:
        frames: one clip as a tensor or a list of frames of one size.

    Raises:
        ValueError: on no frames, a wrong shape, or frames of different sizes.
        TypeError: on non-tensor frames or a non-floating dtype.
    """
    if isinstance(frames, Tensor):
        clip = frames[0] if frames.ndim == 5 and frames.shape[0] == 1 else frames
    else:
        items = list(frames)
        if not items:
            raise ValueError("frames: expected a clip of at least one frame, got none")
        for i, f in enumerate(items):
            if not isinstance(f, Tensor) or f.ndim != 3 or f.shape[0] != 3:
                raise ValueError(
                    f"frames[{i}]: expected a [3, H, W] tensor, got {getattr(f, 'shape', type(f).__name__)}"
                )
            if f.shape != items[0].shape:
                raise ValueError(
                    f"frames[{i}]: every frame of a clip must have one size; frame 0 is "
                    f"{tuple(items[0].shape[-2:])}, frame {i} is {tuple(f.shape[-2:])}"
                )
        clip = torch.stack(items)
    if clip.ndim != 4 or clip.shape[1] != 3 or clip.shape[0] == 0:
        raise ValueError(
            f"frames: expected one clip [T, 3, H, W] or [1, T, 3, H, W], got shape {tuple(clip.shape)}"
        )
    check_dtype("frames", clip, "floating")
    return clip


def as_prompt_list(prompts: Prompts | Sequence[Prompts] | None, count: int, task: str) -> list[Prompts]:
    """``count`` :class:`Prompts` from one or a list.

    Args:
        prompts: one :class:`Prompts` (for one image) or one per image.
        count: the number of images.
        task: the task asking (named in the errors).

    Raises:
        ValueError: on missing prompts or a wrong count. TypeError: on a non-Prompts element.
    """
    if prompts is None:
        raise ValueError(f"prompts: task {task!r} needs prompts")
    items = [prompts] if isinstance(prompts, Prompts) else list(prompts)
    if len(items) != count:
        raise ValueError(f"prompts: expected {count} Prompts (one per image), got {len(items)}")
    for i, p in enumerate(items):
        if not isinstance(p, Prompts):
            raise TypeError(f"prompts[{i}]: expected Prompts, got {type(p).__name__}")
    return items
