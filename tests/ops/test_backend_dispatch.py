"""The one backend rule of segblocks.ops."""

from __future__ import annotations

import pytest
import torch

from segblocks.ops import BackendUnavailableError
from segblocks.ops._dispatch import resolve_backend, triton_installed

CHOICES = ("reference", "triton")
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def resolve(backend: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    return resolve_backend(
        "op", backend, device=device, dtypes=(dtype,), choices=CHOICES, fallback="reference"
    )


def test_auto_uses_the_fallback_on_cpu_even_with_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve("auto", CPU) == "reference"


@pytest.mark.skipif(not triton_installed(), reason="needs triton")
def test_auto_picks_triton_on_cuda_for_supported_dtypes() -> None:
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        assert resolve("auto", CUDA, dtype) == "triton"
    assert resolve("auto", CUDA, torch.float64) == "reference"


def test_explicit_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve("reference", CUDA) == "reference"
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(BackendUnavailableError, match=r"op: backend='triton' is unavailable: .*CPU"):
        resolve("triton", CPU)
    with pytest.raises(ValueError, match=r"op: backend must be one of \['auto', 'reference', 'triton'\]"):
        resolve("cuda", CPU)
    with pytest.raises(BackendUnavailableError, match=r"device type 'mps'"):
        resolve("triton", torch.device("mps"))


def test_missing_triton_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("segblocks.ops._dispatch.triton_installed", lambda: False)
    assert resolve("auto", CUDA) == "reference"
    with pytest.raises(BackendUnavailableError, match=r"'triton' package is not installed"):
        resolve("triton", CUDA)


def test_interpreter_set_after_triton_was_imported_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("triton")
    import triton.language as tl

    if type(tl.zeros).__name__ != "JITFunction":
        pytest.skip("this process imported triton in interpreter mode")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(BackendUnavailableError, match=r"before the first import of triton"):
        resolve("triton", CPU)
