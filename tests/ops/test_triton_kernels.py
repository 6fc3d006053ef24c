"""Run the Triton kernel checks under the CPU interpreter in a fresh process.

Triton reads TRITON_INTERPRET when it is first imported, and a pytest(-xdist) worker may already have
imported it, so ``interpreted_kernels_cases.py`` runs in a subprocess with the variable set. The two
groups below are separate tests so that ``pytest -n 2`` runs them side by side.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

CASES = Path(__file__).with_name("interpreted_kernels_cases.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("group", ["ms_deform_attn or import", "masked_attention"])
def test_triton_kernels_match_references_under_interpreter(group: str) -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", group, str(CASES)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    assert " passed" in result.stdout and "skipped" not in result.stdout.splitlines()[-1], report
