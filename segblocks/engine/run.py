"""What a recipe's visible loop asks of the engine: resume, timing, logging and checkpoints.

A recipe writes its loop out (nanoGPT-style) and calls these helpers at the points where every
loop does the same thing::

    run = TrainingRun.start(model, optimizer=optimizer, scheduler=scheduler, options=options,
                            run_dir=run_dir, dist=dist, args=vars(args))
    loader = build_train_loader(train_set, ..., start_step=run.step)  # step s's batch, resumed or not
    step_fn = training_step_fn(model, dist)  # model.training_step, through DDP when distributed
    for batch in run.progress(loader, desc="model"):  # ends at --steps or the time budget
        with autocast(device, options.precision):
            losses = step_fn(batch.to(device))
        loss = sum(losses.values())
        grad_norm = backward_step(loss, optimizer=optimizer, scaler=run.scaler, max_norm=...)
        scheduler.step()
        run.end_step(loss, losses, grad_norm=grad_norm, lr=optimizer.param_groups[0]["lr"])
        if run.eval_due():
            run.log_eval(evaluate(model))
        if run.checkpoint_due():
            run.save_checkpoint()
    final = evaluate(model)
    run.finish(final)  # logs the final evaluation, writes the last checkpoint
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from torch import Tensor, nn

from segblocks.engine.checkpoint import save_checkpoint
from segblocks.engine.distributed import DistInfo, wrap_ddp
from segblocks.engine.logs import MetricLogger, progress_bar
from segblocks.engine.options import TrainOptions
from segblocks.engine.precision import make_grad_scaler
from segblocks.engine.resume import resume
from segblocks.engine.seeding import preserved_rng

__all__ = ["TrainingRun", "training_step_fn"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Losses = dict[str, Tensor]


class _TrainingStep(nn.Module):
    """``forward`` is the wrapped model's ``training_step``, so DDP can wrap the whole step."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> Losses:
        return self.model.training_step(batch)  # type: ignore[operator]


def training_step_fn(model: nn.Module, dist: DistInfo) -> Callable[[Any], Losses]:
    """``model.training_step``, run through ``DistributedDataParallel`` when the job has several processes.

    Args:
        model: a model on ``dist.device`` with ``training_step(batch) -> {name: loss}``.
        dist: this process's :class:`~segblocks.engine.DistInfo`.

    Returns:
        A callable ``batch -> {name: scalar loss}`` (the model's own method for a single process).

    Raises:
        TypeError: when ``model`` has no ``training_step`` method.
    """
    if not callable(getattr(model, "training_step", None)):
        raise TypeError(f"model: expected a module with a training_step(batch) method, got {type(model)}")
    if not dist.is_distributed:
        return cast(Callable[[Any], Losses], model.training_step)
    return wrap_ddp(_TrainingStep(model), dist)


class TrainingRun:
    """One run's bookkeeping: resumed step, wall clock, metric log, evaluation and checkpoint timing.

    Build it with :meth:`start`; the recipe's loop calls :meth:`progress`, :meth:`end_step`,
    :meth:`eval_due` / :meth:`log_eval`, :meth:`checkpoint_due` / :meth:`save_checkpoint` and
    :meth:`finish`.

    Args:
        model: the (unwrapped) model; its dataclass ``config`` goes into the checkpoints.
        optimizer: the optimizer (checkpointed).
        scheduler: the learning-rate schedule (checkpointed).
        scaler: the gradient scaler (checkpointed).
        options: the loop's :class:`~segblocks.engine.TrainOptions`.
        run_dir: the run directory.
        dist: this process's :class:`~segblocks.engine.DistInfo`.
        step: the step the run starts from.
        elapsed_before: training seconds spent before a resume.
        log: the metric log.
        checkpoint_extra: JSON-serialisable data stored in every checkpoint.

    Attributes:
        step: optimizer steps completed (the resumed step at the start).
        scaler: the fp16 gradient scaler (disabled for other precisions), restored on resume.
        log: the run's :class:`~segblocks.engine.MetricLogger` (rank 0 writes).
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        scaler: torch.amp.GradScaler,
        options: TrainOptions,
        run_dir: Path,
        dist: DistInfo,
        step: int,
        elapsed_before: float,
        log: MetricLogger,
        checkpoint_extra: Mapping[str, Any] | None,
    ) -> None:
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.options, self.run_dir, self.dist, self.log = options, run_dir, dist, log
        self.step = step
        self.checkpoint_extra = dict(checkpoint_extra or {})
        config = getattr(model, "config", None)
        self._config = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None  # type: ignore[arg-type]
        self._budget = options.time_budget_min * 60.0 if options.time_budget_min else math.inf
        self._t0 = time.perf_counter() - elapsed_before
        self._last_eval = self.wall_seconds
        self._bar: Any = None

    @classmethod
    def start(
        cls,
        model: nn.Module,
        *,
        optimizer: torch.optim.Optimizer | None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        options: TrainOptions,
        run_dir: str | Path,
        dist: DistInfo,
        args: Mapping[str, Any] | None = None,
        checkpoint_extra: Mapping[str, Any] | None = None,
        tensorboard: bool | None = None,
    ) -> TrainingRun:
        """Resume (with ``options.resume``), open the metric log and write ``args.json``.

        Args:
            model: the (unwrapped) model on ``dist.device``; a dataclass ``model.config``, when
                present, is stored in the checkpoints.
            optimizer: the optimizer (restored on resume).
            scheduler: the learning-rate schedule (restored on resume).
            options: the loop's :class:`~segblocks.engine.TrainOptions`.
            run_dir: where checkpoints, ``metrics.jsonl`` and ``args.json`` go.
            dist: this process's :class:`~segblocks.engine.DistInfo`.
            args: the recipe's options, written to ``args.json``.
            checkpoint_extra: JSON-serialisable data stored in every checkpoint.
            tensorboard: passed to :class:`~segblocks.engine.MetricLogger`.

        Returns:
            The run, at step 0 or the resumed step.
        """
        run_dir = Path(run_dir)
        scaler = make_grad_scaler(options.precision, dist.device)  # enabled for fp16 only
        ckpt = resume(
            options.resume,
            checkpoint_dir=run_dir / "checkpoints",
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            dist=dist,
        )
        step = ckpt.step if ckpt is not None else 0
        elapsed = float(ckpt.extra.get("train_seconds", 0.0)) if ckpt is not None and ckpt.extra else 0.0
        log = MetricLogger(
            run_dir, enabled=dist.is_main, resume_step=step if ckpt else None, tensorboard=tensorboard
        )
        if dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            if args is not None:
                (run_dir / "args.json").write_text(json.dumps(dict(args), indent=2))
        return cls(
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            options=options,
            run_dir=run_dir,
            dist=dist,
            step=step,
            elapsed_before=elapsed,
            log=log,
            checkpoint_extra=checkpoint_extra,
        )

    # ----------------------------------------------------------------------------------- timing
    @property
    def wall_seconds(self) -> float:
        """Training wall time so far (a resumed run includes the time before the resume)."""
        return time.perf_counter() - self._t0

    @property
    def finished(self) -> bool:
        """True once ``options.steps`` steps are done or the time budget is spent."""
        return self.step >= self.options.steps or self.wall_seconds >= self._budget

    def progress(self, batches: Iterable[T], *, desc: str = "train", enabled: bool = True) -> Iterator[T]:
        """Yield training batches with a progress bar (rank 0) until :attr:`finished`.

        Args:
            batches: the (endless) training loader.
            desc: label of the progress bar.
            enabled: show the bar (on rank 0).
        """
        self._bar = progress_bar(
            batches,
            total=self.options.steps,
            initial=self.step,
            desc=desc,
            enabled=enabled and self.dist.is_main,
        )
        try:
            for batch in self._bar:
                if self.finished:
                    break
                yield batch
        finally:
            self._bar.close()

    # ---------------------------------------------------------------------------------- logging
    def end_step(
        self, loss: Tensor, losses: Mapping[str, Tensor], *, lr: float, grad_norm: Tensor | None = None
    ) -> None:
        """Count one optimizer step; every ``log_every`` steps (and at step 1) record the losses.

        Deep-supervision copies (names ending in a digit) are not recorded.

        Args:
            loss: the total loss ``[]``.
            losses: the named losses ``{name: []}``.
            lr: the learning rate of the first parameter group.
            grad_norm: the gradient norm before clipping, when clipping.
        """
        self.step += 1
        if self.step % self.options.log_every != 0 and self.step != 1:
            return
        values: dict[str, Any] = {"loss": loss.detach(), "lr": lr}
        values.update({k: v.detach() for k, v in losses.items() if not k[-1].isdigit()})
        if grad_norm is not None:
            values["grad_norm"] = grad_norm
        values["wall_minutes"] = self.wall_seconds / 60.0
        self.log.log(self.step, values, prefix="train")
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{float(loss.detach()):.3f}")

    def eval_due(self) -> bool:
        """True every ``eval_every`` steps and when ``eval_every_min`` minutes passed since the last one."""
        o = self.options
        due_steps = bool(o.eval_every) and self.step % o.eval_every == 0
        due_time = (
            bool(o.eval_every_min) and self.wall_seconds - self._last_eval >= (o.eval_every_min or 0) * 60
        )
        return due_steps or due_time

    def evaluate(self, evaluation: Callable[[], Mapping[str, float]]) -> Mapping[str, float]:
        """Run an evaluation in the middle of training, leaving the training's random streams alone, and log it.

        ``evaluation`` runs inside :func:`~segblocks.engine.seeding.preserved_rng`, so a run
        evaluated every N steps (or every N minutes, whose steps depend on the machine's speed)
        trains exactly as the same run evaluated only at the end.

        Args:
            evaluation: returns the flat ``{name: value}`` numbers to log under ``val/``.

        Returns:
            Those numbers.
        """
        with preserved_rng(self.dist.device):
            values = evaluation()
        self.log_eval(values)
        return values

    def log_eval(self, values: Mapping[str, float], *, wall_seconds: float | None = None) -> None:
        """Record an evaluation's flat ``{name: value}`` under ``val/`` and restart the evaluation timer.

        Args:
            values: the evaluation's numbers.
            wall_seconds: the wall time to record (default: now).
        """
        wall = self.wall_seconds if wall_seconds is None else wall_seconds
        logger.info("step %d (%.1f min): %s", self.step, wall / 60.0, json.dumps(dict(values)))
        self.log.log(self.step, {**values, "wall_minutes": wall / 60.0}, prefix="val")
        self._last_eval = self.wall_seconds

    # ------------------------------------------------------------------------------ checkpoints
    def checkpoint_due(self) -> bool:
        """True every ``checkpoint_every`` steps."""
        every = self.options.checkpoint_every
        return bool(every) and self.step % every == 0

    def save_checkpoint(self, *, train_seconds: float | None = None) -> Path:
        """Write a checkpoint of the model and training state at :attr:`step` (call on every rank).

        Args:
            train_seconds: the training time to store (default: now), read back on resume.

        Returns:
            The checkpoint directory.
        """
        seconds = self.wall_seconds if train_seconds is None else train_seconds
        return save_checkpoint(
            self.run_dir / "checkpoints",
            step=self.step,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            config=self._config,
            extra={"train_seconds": seconds, **self.checkpoint_extra},
            dist=self.dist,
            keep_last=2,
        )

    def finish(self, values: Mapping[str, float], *, wall_seconds: float, checkpoint: bool = True) -> None:
        """Record the final evaluation, write the last checkpoint and close the log.

        Args:
            values: the final evaluation's flat numbers.
            wall_seconds: the training wall time, taken when the loop ended (before the evaluation).
            checkpoint: write the last checkpoint.
        """
        self.log_eval(values, wall_seconds=wall_seconds)
        if checkpoint:
            self.save_checkpoint(train_seconds=wall_seconds)
        self.log.close()
