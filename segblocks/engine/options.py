"""The options every zoo recipe's loop shares, their command-line flags and ``--set`` overrides.

:class:`TrainOptions` holds how a loop runs (steps, batch, time budget, clipping, precision,
evaluation, logging and checkpoint timing, resume, seed); :func:`add_train_arguments` adds the
matching flags so the recipes agree; a recipe adds its own model options and, for the shapes world,
:func:`segblocks.data.shapes.add_world_arguments`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from segblocks.engine.distributed import DistInfo, setup_distributed, setup_logging
from segblocks.engine.precision import PRECISIONS
from segblocks.engine.seeding import seed_everything

__all__ = ["TrainOptions", "add_train_arguments", "parse_overrides", "setup_process"]


@dataclass(frozen=True)
class TrainOptions:
    """How a recipe's loop runs (read by :class:`~segblocks.engine.TrainingRun`).

    Attributes:
        steps: optimizer steps (an upper bound when ``time_budget_min`` is set).
        batch_size: images per step and process.
        time_budget_min: stop training after this many minutes of wall time (None: no budget).
        clip_grad: full-model gradient-norm clipping (0: off).
        precision: one of :data:`~segblocks.engine.PRECISIONS`.
        eval_every: steps between evaluations (0: only at the end).
        eval_every_min: also evaluate every this many minutes (None: off).
        log_every: steps between records of the training losses.
        checkpoint_every: steps between checkpoints (0: only at the end).
        resume: resume from the newest checkpoint of the run directory.
        seed: seed of the training sampler (the batch of step ``s`` is the same after a resume).
        num_workers: data-loader worker processes.
    """

    steps: int
    batch_size: int
    time_budget_min: float | None = None
    clip_grad: float = 0.01
    precision: str = "fp32"
    eval_every: int = 0
    eval_every_min: float | None = None
    log_every: int = 20
    checkpoint_every: int = 1000
    resume: bool = False
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected an int >= 0, got {getattr(self, name)}")
        for name in ("time_budget_min", "eval_every_min"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name}: expected a positive number of minutes or None, got {value}")
        if not self.clip_grad >= 0:
            raise ValueError(f"clip_grad: expected >= 0, got {self.clip_grad}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainOptions:
        """The options from a namespace parsed with :func:`add_train_arguments`.

        Args:
            args: the parsed options; each field of :class:`TrainOptions` is read from the attribute
                of the same name.
        """
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def add_train_arguments(parser: argparse.ArgumentParser, *, out: str, eval_every: int, lr: float) -> None:
    """Add the options that every recipe's loop shares (the fields of :class:`TrainOptions` and more).

    Args:
        parser: the recipe's parser (its model and data options are added by the recipe).
        out: default run directory.
        eval_every: default steps between evaluations.
        lr: default AdamW learning rate.
    """
    p = parser
    p.add_argument("--batch-size", type=int, default=8, help="per process")
    p.add_argument("--steps", type=int, default=20000, help="optimizer steps (upper bound)")
    p.add_argument("--time-budget-min", type=float, default=None, help="stop training after this wall time")
    p.add_argument("--lr", type=float, default=lr, help="AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--clip-grad", type=float, default=0.01, help="full-model gradient-norm clipping (0: off)")
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--log-every", type=int, default=20, help="steps between training-loss records")
    p.add_argument(
        "--eval-every", type=int, default=eval_every, help="steps between evaluations (0: only at the end)"
    )
    p.add_argument("--eval-every-min", type=float, default=None, help="also evaluate every this many minutes")
    p.add_argument("--out", default=out, help="run directory (checkpoints, metrics.jsonl, final.json)")
    p.add_argument("--resume", action="store_true", help="resume from the newest checkpoint in --out")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads on the CPU")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="model config overrides")


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["num_queries=50", "mask_head=mlp"]`` -> ``{"num_queries": 50, "mask_head": "mlp"}``.

    Values are read as JSON when they parse (numbers, booleans, lists), else kept as strings.

    Args:
        pairs: ``FIELD=VALUE`` strings (the ``--set`` option).

    Returns:
        ``{FIELD: value}``.

    Raises:
        ValueError: on an item without ``=``.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set: expected FIELD=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def setup_process(args: argparse.Namespace) -> DistInfo:
    """A recipe's process set-up from the :func:`add_train_arguments` flags.

    Joins the process group (``--device``; torchrun's environment when launched by it), sets up
    logging, the intra-op threads (``--threads``) and the seeds (``--seed``, offset by the rank).

    Args:
        args: the parsed command line (``device``, ``threads`` and ``seed``).

    Returns:
        The process's :class:`~segblocks.engine.distributed.DistInfo`.
    """
    dist = setup_distributed(device=args.device)
    setup_logging(dist)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed, rank=dist.rank)
    return dist
