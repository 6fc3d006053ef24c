"""What every backbone shares: the output contract, input checks and pixel normalisation."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segblocks._validation import check_images as check_image_values
from segblocks._validation import check_tensor
from segblocks.layers.lora import add_lora, lora_parameters, merge_lora
from segblocks.structures import ShapeSpec

__all__ = ["Backbone"]


class Backbone(nn.Module, metaclass=ABCMeta):
    """Base class: ``forward(images[B, 3, H, W]) -> {"res2".."res5": Tensor, ...}``.

    Images enter as RGB floats in ``[0, 1]``; each backbone normalises them with the statistics its
    weights were trained with (``pixel_mean``/``pixel_std``, non-persistent buffers), so models that
    combine several backbones (a CLIP and a SAM) feed all of them the same tensor. ``H`` and ``W``
    must be multiples of :attr:`size_divisibility` (pad first).

    Subclasses set ``_size_divisibility`` and implement :meth:`output_shape` and ``forward``.
    """

    pixel_mean: Tensor
    pixel_std: Tensor
    _size_divisibility: int

    def __init__(self, *, pixel_mean: Sequence[float], pixel_std: Sequence[float]) -> None:
        super().__init__()
        if len(pixel_mean) != 3 or len(pixel_std) != 3:
            raise ValueError(
                f"pixel_mean, pixel_std: expected 3 values each, got {len(pixel_mean)} and {len(pixel_std)}"
            )
        if any(s <= 0 for s in pixel_std):
            raise ValueError(f"pixel_std: expected positive values, got {tuple(pixel_std)}")
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, 3, 1, 1), persistent=False)

    @property
    def size_divisibility(self) -> int:
        """``H`` and ``W`` of the input must be multiples of this."""
        return self._size_divisibility

    @abstractmethod
    def output_shape(self) -> dict[str, ShapeSpec]:
        """Channels and stride of every map ``forward`` returns."""

    def check_images(self, images: Tensor) -> Tensor:
        """Validate ``images`` and return them in the backbone's dtype (float16 / float64 are cast).

        ``[B, 3, H, W]`` floating RGB in ``[0, 1]`` with ``H``, ``W`` multiples of
        ``size_divisibility``. The values (finite, in ``[0, 1]``: 0..255 images are refused) are
        checked on CPU tensors and under ``torch.no_grad`` (prediction); a GPU training step skips
        that check, which would cost a host sync.

        Raises:
            ValueError: on a wrong rank, channel count, empty batch, indivisible size, NaN / infinity
                or values outside ``[0, 1]``.
            TypeError: on a non-tensor or non-floating (e.g. uint8) input.
        """
        check_tensor("images", images)
        cheap = images.device.type == "cpu" or not torch.is_grad_enabled()
        images = check_image_values("images", images, check_values=cheap).to(self.pixel_mean.dtype)
        b, _, h, w = images.shape
        if b == 0:
            raise ValueError(f"images: empty batch, got shape {tuple(images.shape)}")
        d = self.size_divisibility
        if h % d or w % d or h == 0 or w == 0:
            ph, pw = max(d, -(-h // d) * d), max(d, -(-w // d) * d)
            raise ValueError(
                f"images: height and width must be positive multiples of size_divisibility={d}, "
                f"got {h}x{w}; pad to {ph}x{pw}"
            )
        return images

    def add_adapters(self, layers: Sequence[str], *, rank: int = 8, alpha: float = 1.0) -> list[str]:
        """Wrap chosen layers of this (frozen) backbone with trainable LoRA adapters.

        The base weights stay frozen and keep their state-dict names; the adapters' ``lora_A`` and
        ``lora_B`` train and are saved with the model. See :func:`segblocks.layers.add_lora`.

        Args:
            layers: qualified names of ``nn.Linear``/``nn.Conv2d`` sub-modules, as in
                ``self.named_modules()``, or ``fnmatch`` patterns (``"clip.visual.trunk.stages.3.*.fc1"``).
            rank: LoRA rank ``r`` (Uni-OVSeg: 8).
            alpha: the update is scaled by ``alpha / r``.

        Returns:
            The names of the wrapped layers.

        Raises:
            ValueError: on a name or pattern that matches no Linear/Conv2d, or one already adapted.
        """
        return add_lora(self, layers, rank=rank, alpha=alpha)

    def adapter_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters of the adapters added by :meth:`add_adapters`."""
        return list(lora_parameters(self))

    def merge_adapters(self, merged: bool = True) -> None:
        """Fold the adapters into the base weights for inference (``merged=False``: take them out).

        Args:
            merged: the state to put every adapter in.
        """
        merge_lora(self, merged)

    def normalize(self, images: Tensor) -> Tensor:
        """``(images - pixel_mean) / pixel_std`` for ``[B, 3, H, W]`` images in ``[0, 1]``."""
        return (images - self.pixel_mean.to(images.dtype)) / self.pixel_std.to(images.dtype)


def freeze(module: nn.Module) -> None:
    """Turn off gradients of every parameter of ``module`` and put it in eval mode."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
