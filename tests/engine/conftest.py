"""Shared helpers for the engine tests: running the tiny training script in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_TRAIN = Path(__file__).with_name("tiny_train.py")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The worktree's segblocks first, one thread per process (bitwise-reproducible CPU maths).
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


RunTiny = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_tiny() -> RunTiny:
    """Run tests/engine/tiny_train.py with the given CLI arguments (``nproc`` > 1 uses torchrun)."""

    def run(*args: str, nproc: int = 1, expect_rc: int | None = 0) -> subprocess.CompletedProcess[str]:
        launcher = [sys.executable]
        if nproc > 1:
            launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        proc = subprocess.run(
            [*launcher, str(TINY_TRAIN), *args],
            cwd=REPO_ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if expect_rc is not None and proc.returncode != expect_rc:
            raise AssertionError(
                f"tiny_train exited with {proc.returncode}, expected {expect_rc}\n"
                f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
            )
        return proc

    return run


def load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file."""
    return load_file(path)


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Run the test body with one intra-op thread (as the subprocesses), restoring the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
