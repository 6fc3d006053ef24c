"""One backend-selection rule shared by every op in :mod:`segblocks.ops`.

The rule:

* ``backend="auto"`` picks the Triton kernel when the tensors live on a CUDA device, Triton is
  installed and the dtype is one the kernel supports (float16, bfloat16, float32); otherwise the op's
  portable fallback (the pure-PyTorch reference, or PyTorch SDPA for masked attention). ``auto`` never
  selects the Triton *interpreter*: that one is for tests only.
* An explicit backend is honoured or refused with :class:`BackendUnavailableError`, which says why
  (no CUDA device, Triton not installed, unsupported dtype, ...). Triton on CPU tensors is allowed only
  when the environment variable ``TRITON_INTERPRET=1`` is set (Triton's interpreter), and it must be
  set before ``triton`` is first imported: Triton builds its own library functions at import time.

Kernel modules are imported lazily, on first use, so ``import segblocks`` never imports Triton.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

import torch

__all__ = [
    "TRITON_DTYPES",
    "BackendUnavailableError",
    "load_kernels",
    "resolve_backend",
    "triton_installed",
    "triton_interpreter_enabled",
]

#: dtypes the Triton kernels accept; low precision is accumulated in float32 inside the kernels.
TRITON_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32)


class BackendUnavailableError(RuntimeError):
    """Raised when an explicitly requested backend cannot run on the given inputs."""


@functools.lru_cache(maxsize=1)
def triton_installed() -> bool:
    """Return whether the ``triton`` package can be imported (checked once, without importing it)."""
    return importlib.util.find_spec("triton") is not None


def triton_interpreter_enabled() -> bool:
    """Return whether ``TRITON_INTERPRET`` is set to a true value (read at every call)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in {"1", "true", "yes", "on"}


def _triton_imported_compiled() -> bool:
    """Whether ``triton`` was already imported in compiled (non-interpreter) mode.

    Triton's own ``@triton.jit`` library functions (``tl.zeros``, ...) are built when ``triton`` is
    imported, so setting ``TRITON_INTERPRET=1`` afterwards cannot turn the interpreter on.
    """
    language = sys.modules.get("triton.language")
    probe = getattr(language, "zeros", None)
    return probe is not None and type(probe).__name__ == "JITFunction"


def _triton_problem(device: torch.device, dtypes: Sequence[torch.dtype]) -> str | None:
    """Return why Triton cannot run here, or ``None`` when it can."""
    if not triton_installed():
        return "the 'triton' package is not installed"
    if device.type == "cpu" and not triton_interpreter_enabled():
        return "the tensors are on the CPU; Triton runs on CUDA, or on CPU only with TRITON_INTERPRET=1"
    if device.type not in {"cpu", "cuda"}:
        return f"Triton does not support device type {device.type!r}"
    bad = [d for d in dtypes if d not in TRITON_DTYPES]
    if bad:
        names = ", ".join(str(d) for d in TRITON_DTYPES)
        return f"the Triton kernel supports {names}; got {bad[0]} (use backend='reference')"
    if device.type == "cpu" and _triton_imported_compiled():
        return (
            "TRITON_INTERPRET=1 is set but triton was imported before it was; set it before the first "
            "import of triton (e.g. in the environment of the process)"
        )
    return None


def resolve_backend(
    op: str,
    backend: str,
    *,
    device: torch.device,
    dtypes: Sequence[torch.dtype],
    choices: Sequence[str],
    fallback: str,
) -> str:
    """Turn a requested backend into the one that will run.

    Args:
        op: name of the op, for error messages.
        backend: ``"auto"`` or one of ``choices``.
        device: device of the op's main tensor.
        dtypes: floating dtypes of the inputs the kernel would read.
        choices: the backends this op implements (``"reference"``, ``"triton"``, ...).
        fallback: what ``"auto"`` picks when Triton cannot run.

    Returns:
        The backend name to run (never ``"auto"``).

    Raises:
        ValueError: if ``backend`` is not ``"auto"`` nor one of ``choices``.
        BackendUnavailableError: if the explicitly requested backend cannot run on these inputs.
    """
    if backend != "auto" and backend not in choices:
        raise ValueError(f"{op}: backend must be one of {['auto', *choices]}, got {backend!r}")
    if backend == "auto":
        if "triton" in choices and device.type == "cuda" and _triton_problem(device, dtypes) is None:
            return "triton"
        return fallback
    if backend == "triton":
        problem = _triton_problem(device, dtypes)
        if problem is not None:
            raise BackendUnavailableError(f"{op}: backend='triton' is unavailable: {problem}")
    return backend


def load_kernels(name: str) -> ModuleType:
    """Import a Triton kernel module on first use (keeps ``import segblocks`` free of Triton).

    Args:
        name: dotted module name, e.g. ``"segblocks.ops._triton_ms_deform_attn"``.

    Returns:
        The imported module.
    """
    module = sys.modules.get(name)
    return module if module is not None else importlib.import_module(name)
