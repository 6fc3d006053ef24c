"""What every training loop shares: distributed set-up, autocast, checkpoints, logging, seeding.

Small functions rather than a framework: each zoo model's ``train.py`` calls them in a loop that
reads top to bottom (set-up, data, model, optimizer, resume, loop, evaluation, checkpoint). The
zoo recipes write out their data, model, optimizer and evaluation and share the rest through
:func:`fit`.
"""

from .checkpoint import (
    Checkpoint,
    find_latest_checkpoint,
    list_checkpoints,
    save_checkpoint,
    verify_checkpoint,
)
from .distributed import (
    DistInfo,
    all_reduce,
    barrier,
    cleanup_distributed,
    reduce_metrics,
    setup_distributed,
    setup_logging,
    sum_over_ranks,
    unwrap_model,
    wrap_ddp,
)
from .fit import FitOptions, FitResult, add_fit_arguments, fit, parse_overrides
from .logs import MetricLogger, progress_bar
from .optim import (
    WarmupCosine,
    WarmupMultiStep,
    build_adamw,
    param_groups,
    warmup_cosine_schedule,
    warmup_multistep_schedule,
)
from .precision import PRECISIONS, autocast, backward_step, clip_grad_norm, fp32, make_grad_scaler, to_fp32
from .resume import load_checkpoint, resume
from .samplers import InfiniteSampler, ShardedSampler, build_eval_loader, build_train_loader
from .seeding import derive_seed, seed_everything, seed_worker
from .weights import CheckpointError, load_weights

__all__ = [
    "PRECISIONS",
    "Checkpoint",
    "CheckpointError",
    "DistInfo",
    "FitOptions",
    "FitResult",
    "InfiniteSampler",
    "MetricLogger",
    "ShardedSampler",
    "WarmupCosine",
    "WarmupMultiStep",
    "add_fit_arguments",
    "all_reduce",
    "autocast",
    "backward_step",
    "barrier",
    "build_adamw",
    "build_eval_loader",
    "build_train_loader",
    "cleanup_distributed",
    "clip_grad_norm",
    "derive_seed",
    "find_latest_checkpoint",
    "fit",
    "fp32",
    "list_checkpoints",
    "load_checkpoint",
    "load_weights",
    "make_grad_scaler",
    "param_groups",
    "parse_overrides",
    "progress_bar",
    "reduce_metrics",
    "resume",
    "save_checkpoint",
    "seed_everything",
    "seed_worker",
    "setup_distributed",
    "setup_logging",
    "sum_over_ranks",
    "to_fp32",
    "unwrap_model",
    "verify_checkpoint",
    "warmup_cosine_schedule",
    "warmup_multistep_schedule",
    "wrap_ddp",
]
