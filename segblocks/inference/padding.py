"""Pad images to a size the backbone accepts, and bring mask logits back to the original image."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from segblocks._validation import check_dtype, check_ndim, check_size
from segblocks.structures import Targets

__all__ = ["pad_images", "pad_masks", "pad_targets", "padded_size", "prepare_images", "unpad_mask_logits"]


def padded_size(height: int, width: int, size_divisibility: int) -> tuple[int, int]:
    """Smallest ``(H', W') >= (height, width)`` with both multiples of ``size_divisibility``."""
    d = max(1, size_divisibility)
    return -(-height // d) * d, -(-width // d) * d


def pad_images(images: Tensor, size_divisibility: int, *, value: float = 0.0) -> Tensor:
    """Pad ``images`` at the bottom and right so that H and W are multiples of ``size_divisibility``.

    Args:
        images: ``[B, C, H, W]`` floating.
        size_divisibility: the multiple (``<= 1`` pads nothing).
        value: fill value of the padding.

    Returns:
        ``[B, C, H', W']``; ``images`` itself when no padding is needed.

    Raises:
        ValueError: on a wrong rank.
        TypeError: on a non-floating dtype.
    """
    check_ndim("images", images, 4, "[B, C, H, W]")
    check_dtype("images", images, "floating")
    h, w = images.shape[-2:]
    ph, pw = padded_size(h, w, size_divisibility)
    if (ph, pw) == (h, w):
        return images
    return F.pad(images, (0, pw - w, 0, ph - h), value=value)


def pad_masks(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Pad ``[N, H, W]`` masks (or tubes ``[N, T, H, W]``) with False (or 0) at the bottom and right to ``size``.

    Raises:
        ValueError: on a wrong rank or a mask larger than ``size``.
    """
    if masks.ndim not in (3, 4):
        raise ValueError(f"masks: expected [N, H, W] or [N, T, H, W], got shape {tuple(masks.shape)}")
    size = check_size("size", size)
    h, w = masks.shape[-2:]
    if h > size[0] or w > size[1]:
        raise ValueError(f"masks: {h}x{w} masks do not fit in the padded size {size[0]}x{size[1]}")
    if (h, w) == tuple(size):
        return masks
    return F.pad(masks, (0, size[1] - w, 0, size[0] - h), value=0)


def unpad_mask_logits(mask_logits: Tensor, padded: tuple[int, int], image_size: tuple[int, int]) -> Tensor:
    """Upsample mask logits to the padded input size, then crop the padding away.

    Args:
        mask_logits: ``[Q, h, w]`` logits (e.g. stride 4 of the padded input).
        padded: ``(H', W')`` size of the padded input.
        image_size: ``(H, W)`` of the original image, ``<= padded``.

    Returns:
        ``[Q, H, W]`` logits.

    Raises:
        ValueError: on a wrong rank, a size that is not positive (a negative one would crop from the
            end) or an image larger than the padded size.
        TypeError: on a size that is not a pair of ints.
    """
    check_ndim("mask_logits", mask_logits, 3, "[Q, h, w]")
    padded, image_size = check_size("padded", padded), check_size("image_size", image_size)
    if image_size[0] > padded[0] or image_size[1] > padded[1]:
        raise ValueError(f"image_size: {image_size} is larger than the padded size {padded}")
    up = F.interpolate(mask_logits[None], size=padded, mode="bilinear", align_corners=False)[0]
    return up[:, : image_size[0], : image_size[1]]


def prepare_images(images: Tensor, size_divisibility: int, *, pad: bool = True) -> Tensor:
    """Validate a model's input batch and pad it to ``size_divisibility`` (bottom/right, zeros).

    Args:
        images: ``[B, 3, H, W]`` floating RGB in ``[0, 1]``.
        size_divisibility: what the padded ``H`` and ``W`` must divide by.
        pad: pad indivisible sizes; when False, raise instead.

    Returns:
        ``[B, 3, H', W']``, the images themselves when no padding is needed.

    Raises:
        ValueError: on a wrong shape, an empty batch, or an indivisible size with ``pad=False``.
        TypeError: on a non-floating dtype.
    """
    check_ndim("images", images, 4, "[B, 3, H, W]")
    check_dtype("images", images, "floating")
    b, c, h, w = images.shape
    if c != 3 or b == 0 or h == 0 or w == 0:
        raise ValueError(f"images: expected a non-empty [B, 3, H, W] batch, got {tuple(images.shape)}")
    d = size_divisibility
    if h % d or w % d:
        if not pad:
            ph, pw = padded_size(h, w, d)
            raise ValueError(
                f"images: {h}x{w} is not a multiple of the backbone's size_divisibility={d} and "
                f"pad_inputs=False; pad to {ph}x{pw} or build the model with pad_inputs=True"
            )
        images = pad_images(images, d)
    return images


def pad_targets(targets: Sequence[Targets], size: tuple[int, int]) -> list[Targets]:
    """Pad every image's target masks (bottom/right, False) to the padded input size.

    Args:
        targets: one :class:`~segblocks.structures.Targets` per image, masks ``[N, h, w]`` at the
            image's own size (``N`` may be 0).
        size: ``(H', W')`` of the padded input.

    Returns:
        The targets with ``[N, H', W']`` masks (labels, instance ids and thing flags unchanged).

    Raises:
        TypeError: when ``targets`` is not a sequence of :class:`Targets`.
        ValueError: on masks larger than ``size``.
    """
    if not isinstance(targets, Sequence) or isinstance(targets, Targets):
        raise TypeError(f"targets: expected a list of Targets (one per image), got {type(targets).__name__}")
    out = []
    for i, t in enumerate(targets):
        if not isinstance(t, Targets):
            raise TypeError(f"targets[{i}]: expected a segblocks.structures.Targets, got {type(t).__name__}")
        out.append(
            Targets(
                masks=pad_masks(t.masks, size),
                labels=t.labels,
                instance_ids=t.instance_ids,
                is_thing=t.is_thing,
            )
        )
    return out
