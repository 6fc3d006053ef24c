"""LoRA adapters for frozen layers (Hu et al., 2021; loralib's initialisation), and the seam to add them.

``W x + (alpha / r) * B A x`` with ``A`` Kaiming-uniform initialised and ``B`` zero, so an adapted
layer starts equal to the frozen one. The adapter keeps the wrapped layer's own parameters under the
same names (``weight``, ``bias``), so the frozen weights load from the original checkpoints and the
adapter adds only ``lora_A``/``lora_B`` to a state dict. :meth:`LoRALinear.merge` folds ``B A`` into
the weight for inference (and :meth:`~LoRALinear.unmerge` takes it out again).

:func:`add_lora` is the seam: it wraps the chosen ``nn.Linear``/``nn.Conv2d`` sub-modules of any
module by qualified name or pattern, leaving every base weight frozen.
"""

from __future__ import annotations

import fnmatch
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LoRAConv2d", "LoRALinear", "add_lora", "lora_parameters", "merge_lora"]


class _LoRA(ABC):
    """What the two adapted layers share: rank, scaling, merge state."""

    lora_A: nn.Parameter
    lora_B: nn.Parameter
    weight: Tensor
    rank: int
    scaling: float
    merged: bool

    def _setup(self, rank: int, alpha: float) -> None:
        if rank < 1:
            raise ValueError(f"rank: expected an int >= 1, got {rank}")
        if not alpha > 0:
            raise ValueError(f"alpha: expected a positive number, got {alpha}")
        self.rank = rank
        self.scaling = alpha / rank
        self.merged = False
        self.weight.requires_grad_(False)
        bias = getattr(self, "bias", None)
        if bias is not None:
            bias.requires_grad_(False)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    @abstractmethod
    def delta(self) -> Tensor:
        """``scaling * B A`` in the shape of ``weight``."""

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the adapter into ``weight`` (inference); the adapter path is then skipped."""
        if not self.merged:
            self.weight.add_(self.delta().to(self.weight.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the adapter out of ``weight`` again (to train on)."""
        if self.merged:
            self.weight.sub_(self.delta().to(self.weight.dtype))
            self.merged = False


class LoRALinear(nn.Linear, _LoRA):
    """A frozen ``nn.Linear`` with a trainable rank-``r`` update.

    Args:
        base: the layer to adapt (its parameters are shared, not copied).
        rank: ``r`` (Uni-OVSeg: 8).
        alpha: the update is scaled by ``alpha / r`` (loralib default 1).
    """

    def __init__(self, base: nn.Linear, *, rank: int = 8, alpha: float = 1.0) -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.empty(base.out_features, rank, device=device, dtype=dtype))
        self._setup(rank, alpha)

    def delta(self) -> Tensor:
        """``scaling * B A``, ``[out, in]``."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: Tensor) -> Tensor:
        """``x W^T + b`` plus ``scaling * x A^T B^T`` unless merged; ``x`` is ``[..., in]``."""
        out = F.linear(x, self.weight, self.bias)
        if self.merged:
            return out
        return out + self.scaling * F.linear(F.linear(x, self.lora_A.to(x.dtype)), self.lora_B.to(x.dtype))


class LoRAConv2d(nn.Conv2d, _LoRA):
    """A frozen ``nn.Conv2d`` with a trainable rank-``r`` update (``A``: the conv's kernel to ``r``
    channels, ``B``: 1x1 to the output channels).

    Args:
        base: the convolution to adapt (ungrouped; its parameters are shared, not copied).
        rank: ``r``.
        alpha: the update is scaled by ``alpha / r``.
    """

    def __init__(self, base: nn.Conv2d, *, rank: int = 8, alpha: float = 1.0) -> None:
        if base.groups != 1 or base.padding_mode != "zeros":
            raise ValueError("base: LoRA supports ungrouped, zero-padded convolutions only")
        nn.Module.__init__(self)
        for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation"):
            setattr(self, name, getattr(base, name))
        self.groups, self.padding_mode = 1, base.padding_mode
        self.transposed, self.output_padding = False, base.output_padding
        self.weight = base.weight
        self.bias = base.bias
        device, dtype = base.weight.device, base.weight.dtype
        kh, kw = base.kernel_size
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_channels, kh, kw, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.empty(base.out_channels, rank, 1, 1, device=device, dtype=dtype))
        self._setup(rank, alpha)

    def delta(self) -> Tensor:
        """``scaling * B A``, ``[out, in, kh, kw]``."""
        return self.scaling * torch.einsum("or,rikl->oikl", self.lora_B[:, :, 0, 0], self.lora_A)

    def forward(self, x: Tensor) -> Tensor:
        """The convolution plus ``scaling * B(A(x))`` unless merged; ``x`` is ``[B, C, H, W]``."""
        out = self._conv_forward(x, self.weight, self.bias)
        if self.merged:
            return out
        low = F.conv2d(x, self.lora_A.to(x.dtype), None, self.stride, self.padding, self.dilation)
        return out + self.scaling * F.conv2d(low, self.lora_B.to(x.dtype))


def add_lora(module: nn.Module, layers: Sequence[str], *, rank: int = 8, alpha: float = 1.0) -> list[str]:
    """Wrap the chosen ``nn.Linear``/``nn.Conv2d`` sub-modules of ``module`` with LoRA adapters.

    Base weights are frozen; only ``lora_A``/``lora_B`` train. Names are qualified as in
    ``module.named_modules()`` and may be ``fnmatch`` patterns (``"trunk.stages.3.*.mlp.fc1"``).

    Args:
        module: any module (a frozen backbone).
        layers: names or patterns; each must match at least one Linear or Conv2d.
        rank: LoRA rank ``r``.
        alpha: scaling numerator.

    Returns:
        The qualified names of the wrapped layers, in module order.

    Raises:
        ValueError: on no names, a name or pattern that matches no Linear/Conv2d, or a layer that is
            already adapted.
    """
    if isinstance(layers, str) or not layers:
        raise ValueError(f"layers: expected a non-empty list of names or patterns, got {layers!r}")
    candidates = {
        name: m for name, m in module.named_modules() if isinstance(m, nn.Linear | nn.Conv2d) and name
    }
    chosen: list[str] = []
    for pattern in layers:
        hits = [n for n in candidates if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ValueError(
                f"layers: {pattern!r} matches no nn.Linear or nn.Conv2d of {type(module).__name__}"
            )
        chosen += [n for n in hits if n not in chosen]
    for name in chosen:
        layer = candidates[name]
        if isinstance(layer, _LoRA):
            raise ValueError(f"layers: {name!r} already has a LoRA adapter")
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        wrapped = (
            LoRALinear(layer, rank=rank, alpha=alpha)
            if isinstance(layer, nn.Linear)
            else LoRAConv2d(layer, rank=rank, alpha=alpha)
        )
        setattr(parent, child, wrapped)
    return sorted(chosen, key=list(candidates).index)


def lora_parameters(module: nn.Module) -> Iterator[nn.Parameter]:
    """The trainable adapter parameters (``lora_A``, ``lora_B``) of every adapted layer in ``module``."""
    for m in module.modules():
        if isinstance(m, _LoRA):
            yield m.lora_A
            yield m.lora_B


def merge_lora(module: nn.Module, merged: bool = True) -> None:
    """Fold every adapter of ``module`` into its weight (``merged=True``) or take it out again.

    Args:
        module: a module with adapted layers.
        merged: the state to put every adapter in.
    """
    for m in module.modules():
        if isinstance(m, _LoRA):
            m.merge() if merged else m.unmerge()
