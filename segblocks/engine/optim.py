"""AdamW with Mask2Former-style parameter groups, and warm-up + multi-step / cosine schedules.

Mask2Former trains with AdamW (lr 1e-4, weight decay 0.05), a backbone learning-rate multiplier of
0.1, no weight decay on normalisation layers and embeddings, and a step schedule (decay by 0.1 at
about 89% and 96% of training) after a short linear warm-up. Frozen parameters
(``requires_grad=False``) never enter the optimizer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

__all__ = [
    "DEFAULT_NO_DECAY_NAMES",
    "WarmupCosine",
    "WarmupMultiStep",
    "build_adamw",
    "param_groups",
    "warmup_cosine_schedule",
    "warmup_multistep_schedule",
]

DEFAULT_NO_DECAY_NAMES: tuple[str, ...] = (
    "pos_embed",
    "cls_token",
    "rel_pos",
    "relative_position_bias_table",
    "absolute_pos_embed",
)


def _is_norm(module: nn.Module) -> bool:
    # Class names catch custom norms such as segment_anything's LayerNorm2d.
    norm_types = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
    return isinstance(module, norm_types) or "norm" in type(module).__name__.lower()


def param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    backbone_prefixes: Sequence[str] = ("backbone.",),
    backbone_lr_multiplier: float = 1.0,
    no_decay_names: Sequence[str] = DEFAULT_NO_DECAY_NAMES,
) -> list[dict[str, Any]]:
    """Split the trainable parameters into AdamW groups.

    Weight decay is 0 for parameters of normalisation layers, of ``nn.Embedding`` modules and for
    parameters whose name contains one of ``no_decay_names``; parameters whose qualified name starts
    with one of ``backbone_prefixes`` get ``lr * backbone_lr_multiplier``. Frozen parameters are left
    out; parameters shared between modules appear once.

    Args:
        model: The (unwrapped) model.
        lr: Base learning rate.
        weight_decay: Weight decay of the decayed groups.
        backbone_prefixes: Name prefixes of backbone parameters.
        backbone_lr_multiplier: Learning-rate factor for the backbone (0.1 in Mask2Former).
        no_decay_names: Name fragments of embedding-like parameters kept free of weight decay.

    Returns:
        Non-empty groups, each ``{"name", "params", "lr", "weight_decay"}``, ready for an optimizer.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``.
        ValueError: If ``lr`` or ``weight_decay`` is negative, or the model has no trainable parameter.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if not lr >= 0 or not weight_decay >= 0 or not backbone_lr_multiplier >= 0:
        raise ValueError(
            "lr, weight_decay, backbone_lr_multiplier: expected non-negative values, got "
            f"{lr!r}, {weight_decay!r}, {backbone_lr_multiplier!r}"
        )
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        module_no_decay = _is_norm(module) or isinstance(module, nn.Embedding)
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            name = f"{module_name}.{param_name}" if module_name else param_name
            is_backbone = any(name.startswith(prefix) for prefix in backbone_prefixes)
            decay = not (module_no_decay or any(frag in name for frag in no_decay_names))
            groups.setdefault((is_backbone, decay), []).append(param)
    if not groups:
        raise ValueError("model: has no trainable parameter (all requires_grad=False)")
    out = []
    for (is_backbone, decay), params in sorted(groups.items()):
        out.append(
            {
                "name": f"{'backbone' if is_backbone else 'model'}.{'decay' if decay else 'no_decay'}",
                "params": params,
                "lr": lr * (backbone_lr_multiplier if is_backbone else 1.0),
                "weight_decay": weight_decay if decay else 0.0,
            }
        )
    return out


def build_adamw(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.05,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    backbone_prefixes: Sequence[str] = ("backbone.",),
    backbone_lr_multiplier: float = 1.0,
    no_decay_names: Sequence[str] = DEFAULT_NO_DECAY_NAMES,
) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` of ``model``.

    Args:
        model: The (unwrapped) model.
        lr: Base learning rate (1e-4 in Mask2Former).
        weight_decay: Weight decay (0.05 in Mask2Former).
        betas: Adam betas.
        eps: Adam epsilon.
        backbone_prefixes: Name prefixes of backbone parameters.
        backbone_lr_multiplier: Learning-rate factor for the backbone.
        no_decay_names: Name fragments of parameters kept free of weight decay.

    Returns:
        The optimizer.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``.
        ValueError: As :func:`param_groups`.
    """
    groups = param_groups(
        model,
        lr=lr,
        weight_decay=weight_decay,
        backbone_prefixes=backbone_prefixes,
        backbone_lr_multiplier=backbone_lr_multiplier,
        no_decay_names=no_decay_names,
    )
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def _warmup(step: int, warmup_steps: int, warmup_factor: float) -> float:
    if step >= warmup_steps:
        return 1.0
    alpha = step / warmup_steps
    return warmup_factor * (1.0 - alpha) + alpha


@dataclass
class WarmupMultiStep:
    """Learning-rate factor: linear warm-up, then ``gamma ** (number of milestones passed)``.

    A plain data object (not a closure), so ``LambdaLR.state_dict()`` records its settings.

    Attributes:
        milestones: Steps at which the rate is multiplied by ``gamma``, increasing.
        gamma: Decay factor.
        warmup_steps: Length of the linear warm-up.
        warmup_factor: Factor at step 0 of the warm-up.
    """

    milestones: list[int]
    gamma: float = 0.1
    warmup_steps: int = 0
    warmup_factor: float = 0.001

    def __call__(self, step: int) -> float:
        """The learning-rate factor at ``step`` (0-based optimizer step).

        Args:
            step: the optimizer step.
        """
        passed = sum(1 for m in self.milestones if step >= m)
        return _warmup(step, self.warmup_steps, self.warmup_factor) * self.gamma**passed


@dataclass
class WarmupCosine:
    """Learning-rate factor: linear warm-up, then a cosine from 1 down to ``min_factor``.

    Attributes:
        total_steps: Length of the run; the factor reaches ``min_factor`` there.
        warmup_steps: Length of the linear warm-up.
        warmup_factor: Factor at step 0 of the warm-up.
        min_factor: Final factor.
    """

    total_steps: int
    warmup_steps: int = 0
    warmup_factor: float = 0.001
    min_factor: float = 0.0

    def __call__(self, step: int) -> float:
        """The learning-rate factor at ``step`` (0-based optimizer step).

        Args:
            step: the optimizer step.
        """
        progress = min(1.0, step / self.total_steps)
        cosine = self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return _warmup(step, self.warmup_steps, self.warmup_factor) * cosine


def _check_warmup(warmup_steps: int, warmup_factor: float) -> None:
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps: expected an int >= 0, got {warmup_steps!r}")
    if not 0.0 <= warmup_factor <= 1.0:
        raise ValueError(f"warmup_factor: expected a value in [0, 1], got {warmup_factor!r}")


def warmup_multistep_schedule(
    optimizer: torch.optim.Optimizer,
    *,
    milestones: Sequence[int],
    gamma: float = 0.1,
    warmup_steps: int = 0,
    warmup_factor: float = 0.001,
) -> LambdaLR:
    """Per-step schedule: linear warm-up then step decay (call ``scheduler.step()`` every step).

    Args:
        optimizer: The optimizer whose groups' ``lr`` are scaled.
        milestones: Increasing steps at which the rate is multiplied by ``gamma``.
        gamma: Decay factor.
        warmup_steps: Length of the linear warm-up.
        warmup_factor: Factor at the first step.

    Returns:
        A ``LambdaLR`` scheduler.

    Raises:
        ValueError: If ``milestones`` is not increasing or the warm-up settings are invalid.
    """
    milestones = [int(m) for m in milestones]
    if any(b <= a for a, b in itertools.pairwise(milestones)) or any(m < 0 for m in milestones):
        raise ValueError(f"milestones: expected increasing non-negative steps, got {milestones}")
    _check_warmup(warmup_steps, warmup_factor)
    rule = WarmupMultiStep(milestones, gamma, warmup_steps, warmup_factor)
    return LambdaLR(optimizer, rule)


def warmup_cosine_schedule(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    warmup_factor: float = 0.001,
    min_factor: float = 0.0,
) -> LambdaLR:
    """Per-step schedule: linear warm-up then cosine decay to ``min_factor`` at ``total_steps``.

    Args:
        optimizer: The optimizer whose groups' ``lr`` are scaled.
        total_steps: Length of the run.
        warmup_steps: Length of the linear warm-up.
        warmup_factor: Factor at the first step.
        min_factor: Final factor.

    Returns:
        A ``LambdaLR`` scheduler.

    Raises:
        ValueError: If ``total_steps`` < 1, ``min_factor`` is outside [0, 1] or the warm-up is invalid.
    """
    if not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps: expected an int >= 1, got {total_steps!r}")
    if not 0.0 <= min_factor <= 1.0:
        raise ValueError(f"min_factor: expected a value in [0, 1], got {min_factor!r}")
    _check_warmup(warmup_steps, warmup_factor)
    return LambdaLR(optimizer, WarmupCosine(total_steps, warmup_steps, warmup_factor, min_factor))
