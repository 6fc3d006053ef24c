"""Progress bars and metric logs: a JSON-lines file per run, TensorBoard events when installed.

Only rank 0 shows bars and writes logs; other ranks get disabled, silent objects so a training
loop needs no ``if rank == 0`` around them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from torch import Tensor
from tqdm.auto import tqdm

__all__ = ["MetricLogger", "progress_bar"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def progress_bar(
    iterable: Iterable[T],
    *,
    total: int | None = None,
    initial: int = 0,
    desc: str | None = None,
    enabled: bool = True,
) -> tqdm[T]:
    """A tqdm bar over ``iterable``, shown only when ``enabled`` (pass ``dist.is_main``).

    Args:
        iterable: What the loop iterates over.
        total: Number of items, when ``iterable`` has no length.
        initial: Start count (the resumed step).
        desc: Label.
        enabled: Show the bar; a disabled bar is a plain pass-through iterator.

    Returns:
        The bar; call ``bar.set_postfix(loss=...)`` to show numbers.
    """
    return tqdm(iterable, total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True)


def _tensorboard_writer(log_dir: Path, purge_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"metrics[{name!r}]: expected a scalar, got shape {tuple(value.shape)}")
        return float(value.item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"metrics[{name!r}]: expected a number or a scalar tensor, got {type(value).__name__}")


class MetricLogger:
    """Append metrics to ``<run_dir>/metrics.jsonl`` and, if tensorboard is installed, ``<run_dir>/tb``.

    Each record is one JSON object per line: ``{"step": 100, "time": ..., "train/loss": 0.52, ...}``.
    When a run resumes at step ``s``, records after ``s`` (written before the interruption, for
    steps that will be trained again) are dropped, so the file stays one clean curve.

    Args:
        run_dir: The run's directory.
        enabled: Write anything at all (pass ``dist.is_main``).
        resume_step: The step the run resumes from; later records are removed.
        tensorboard: Also write TensorBoard events: ``None`` when installed, ``True`` requires it.
        filename: Name of the JSON-lines file.

    Raises:
        ImportError: If ``tensorboard=True`` and tensorboard is not installed.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        enabled: bool = True,
        resume_step: int | None = None,
        tensorboard: bool | None = None,
        filename: str = "metrics.jsonl",
    ) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / filename
        self._tb: Any = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            self._truncate_after(resume_step)
        if tensorboard is not False:
            self._tb = _tensorboard_writer(Path(run_dir) / "tb", resume_step)
            if self._tb is None and tensorboard:
                raise ImportError("tensorboard: requested but not installed (pip install tensorboard)")

    def _truncate_after(self, step: int) -> None:
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut by the interruption
            if isinstance(record, dict) and record.get("step", 0) <= step:
                kept.append(line)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
        os.replace(tmp, self.path)

    def log(self, step: int, metrics: Mapping[str, Any], *, prefix: str | None = None) -> None:
        """Record scalar ``metrics`` at ``step`` (values are converted with one host sync each).

        Args:
            step: The optimizer step.
            metrics: ``{name: number or scalar tensor}``.
            prefix: Prepended as ``"<prefix>/<name>"`` (e.g. ``"train"``, ``"val"``).

        Raises:
            TypeError: If a value is not a number or a tensor.
            ValueError: If a tensor value is not a scalar.
        """
        if not self.enabled:
            return
        record: dict[str, Any] = {"step": int(step), "time": time.time()}
        for name, value in metrics.items():
            key = f"{prefix}/{name}" if prefix else name
            number = _as_float(key, value)
            record[key] = number if math.isfinite(number) else str(number)
            if self._tb is not None:
                self._tb.add_scalar(key, number, int(step))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def close(self) -> None:
        """Flush and close the TensorBoard writer."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
