"""Mixed precision: autocast, the fp16 gradient scaler, fp32 islands for losses, gradient clipping.

``bf16`` autocast works on CPU and CUDA and needs no scaler. ``fp16`` needs a ``GradScaler`` so that
small gradients do not underflow. Losses and matching costs run in fp32 whatever the autocast state
(:func:`fp32`), as Mask2Former's matcher and criterion do.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Literal, TypeVar, cast, overload

import torch
from torch import Tensor, nn

__all__ = [
    "PRECISIONS",
    "autocast",
    "backward_step",
    "clip_grad_norm",
    "fp32",
    "make_grad_scaler",
    "to_fp32",
]

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_AUTOCAST_DEVICES = ("cpu", "cuda")

F = TypeVar("F", bound=Callable[..., Any])


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")


def _device_type(device: str | torch.device) -> str:
    dev = torch.device(device)
    if dev.type not in _AUTOCAST_DEVICES:
        raise ValueError(f"device: expected a cpu or cuda device, got {device!r}")
    return dev.type


def autocast(device: str | torch.device, precision: str) -> torch.autocast:
    """The ``torch.autocast`` context for ``precision`` on ``device`` (disabled for ``"fp32"``).

    Args:
        device: The device the forward pass runs on.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    Returns:
        A context manager; wrap the forward pass and the loss in it.

    Raises:
        ValueError: If ``precision`` or ``device`` is not supported.
    """
    _check_precision(precision)
    device_type = _device_type(device)
    if precision == "fp32":
        return torch.autocast(device_type=device_type, enabled=False)
    return torch.autocast(device_type=device_type, dtype=_DTYPES[precision])


def make_grad_scaler(precision: str, device: str | torch.device) -> torch.amp.GradScaler:
    """A ``GradScaler``, enabled only for ``"fp16"`` (bf16 and fp32 keep the fp32 exponent range).

    A disabled scaler is a pass-through, so a loop can call ``scaler.scale(loss)`` in every case and
    checkpoint its (empty) state.

    Args:
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: The training device.

    Returns:
        The gradient scaler.

    Raises:
        ValueError: If ``precision`` or ``device`` is not supported.
    """
    _check_precision(precision)
    return torch.amp.GradScaler(_device_type(device), enabled=precision == "fp16")


def to_fp32(value: Any) -> Any:
    """Cast floating-point tensors in ``value`` (nested in lists, tuples and dicts) to float32.

    Args:
        value: A tensor, a container of tensors, or anything else (returned unchanged).

    Returns:
        ``value`` with every floating tensor as ``torch.float32``; integer/bool tensors unchanged.
    """
    if isinstance(value, Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
        return type(value)(*(to_fp32(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(to_fp32(v) for v in value)
    if isinstance(value, dict):
        return type(value)((k, to_fp32(v)) for k, v in value.items())
    return value


class _Fp32:
    """Context manager and decorator that turns autocast off (see :func:`fp32`)."""

    def __init__(self) -> None:
        self._stack: list[contextlib.ExitStack] = []

    def __enter__(self) -> None:
        stack = contextlib.ExitStack()
        for device_type in _AUTOCAST_DEVICES:
            if torch.is_autocast_enabled(device_type):
                stack.enter_context(torch.autocast(device_type=device_type, enabled=False))
        self._stack.append(stack)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.pop().close()

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _Fp32():  # a fresh context per call: safe under recursion and threads
                return fn(*to_fp32(args), **to_fp32(kwargs))

        return cast(F, wrapper)


@overload
def fp32(fn: F) -> F: ...
@overload
def fp32(fn: None = None) -> _Fp32: ...
def fp32(fn: F | None = None) -> F | _Fp32:
    """Run losses and matching costs in fp32, even inside an autocast region.

    As a decorator (``@fp32`` or ``@fp32()``) it disables autocast for the call and casts every
    floating tensor argument to float32. As a context manager (``with fp32():``) it disables
    autocast; cast the inputs with :func:`to_fp32` or ``.float()``.

    Args:
        fn: The function to wrap, when used as a bare decorator.

    Returns:
        The wrapped function, or a context manager / decorator when called without ``fn``.

    Raises:
        TypeError: If ``fn`` is given but not callable.

    Example:
        >>> import torch
        >>> @fp32
        ... def squared_error(pred, target):
        ...     return ((pred - target) ** 2).sum()
        >>> half = torch.ones(3, dtype=torch.bfloat16)
        >>> with torch.autocast("cpu", dtype=torch.bfloat16):
        ...     squared_error(half, torch.zeros(3)).dtype
        torch.float32
        >>> with fp32():  # as a context manager: autocast is off inside
        ...     torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype
        torch.float32
    """
    if fn is None:
        return _Fp32()
    if not callable(fn):
        raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
    return _Fp32()(fn)


def _trainable(parameters: nn.Module | Iterable[Tensor]) -> list[Tensor]:
    params = parameters.parameters() if isinstance(parameters, nn.Module) else parameters
    return [p for p in params if p.requires_grad]


def clip_grad_norm(
    parameters: nn.Module | Iterable[Tensor],
    max_norm: float,
    *,
    scaler: torch.amp.GradScaler | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> Tensor:
    """Clip the gradient norm of the whole model at once ("full-model" clipping, as Mask2Former).

    With an enabled ``scaler`` the gradients are unscaled first (``optimizer`` is then required),
    so the threshold applies to true gradients.

    Args:
        parameters: A model or an iterable of parameters; frozen ones are ignored.
        max_norm: The L2 norm above which all gradients are rescaled together.
        scaler: The fp16 gradient scaler, if any.
        optimizer: The optimizer that owns the parameters (needed to unscale).

    Returns:
        The total L2 norm before clipping, a 0-d tensor (no host synchronisation).

    Raises:
        ValueError: If ``max_norm`` is not positive, or a scaler is enabled without ``optimizer``.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm: expected a positive float, got {max_norm!r}")
    if scaler is not None and scaler.is_enabled():
        if optimizer is None:
            raise ValueError("optimizer: required to unscale gradients when the GradScaler is enabled")
        scaler.unscale_(optimizer)
    return torch.nn.utils.clip_grad_norm_(_trainable(parameters), max_norm)


def _optimizer_params(optimizer: torch.optim.Optimizer) -> Iterator[Tensor]:
    for group in optimizer.param_groups:
        yield from group["params"]


def backward_step(
    loss: Tensor,
    *,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
    max_norm: float | None = None,
) -> Tensor | None:
    """Backward pass, optional full-model clipping, optimizer step, scaler update, zero grads.

    Args:
        loss: The scalar loss ``[]`` (fp32).
        optimizer: The optimizer.
        scaler: The gradient scaler from :func:`make_grad_scaler`, or ``None`` (no scaling).
        max_norm: Clip the full-model gradient norm to this value; ``None`` or 0 disables it.

    Returns:
        The gradient norm before clipping (0-d tensor) when clipping, else ``None``.

    Raises:
        TypeError: If ``loss`` is not a tensor.
        ValueError: If ``loss`` is not a scalar.
    """
    if not isinstance(loss, Tensor):
        raise TypeError(f"loss: expected a torch.Tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(f"loss: expected a scalar, got shape {tuple(loss.shape)}")
    use_scaler = scaler is not None and scaler.is_enabled()
    if use_scaler:
        assert scaler is not None
        scaler.scale(loss).backward()
    else:
        loss.backward()
    grad_norm = None
    if max_norm:
        grad_norm = clip_grad_norm(_optimizer_params(optimizer), max_norm, scaler=scaler, optimizer=optimizer)
    if use_scaler:
        assert scaler is not None
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm
