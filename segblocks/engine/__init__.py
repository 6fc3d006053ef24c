"""What every training loop shares: distributed set-up, autocast, checkpoints, logging, seeding.

Small functions rather than a framework: each recipe's ``train.py`` writes its loop out top to
bottom (set-up, data, model, optimizer, loop, evaluation, checkpoint) and calls the helpers of
:class:`TrainingRun` (resume, timing, logging, checkpoints) where every loop does the same thing.
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
from .logs import MetricLogger, progress_bar
from .optim import (
    WarmupCosine,
    WarmupMultiStep,
    build_adamw,
    param_groups,
    warmup_cosine_schedule,
    warmup_multistep_schedule,
)
from .options import TrainOptions, add_train_arguments, parse_overrides, setup_process
from .precision import PRECISIONS, autocast, backward_step, clip_grad_norm, fp32, make_grad_scaler, to_fp32
from .resume import load_checkpoint, resume
from .run import TrainingRun, training_step_fn
from .samplers import InfiniteSampler, ShardedSampler, build_eval_loader, build_train_loader
from .seeding import derive_seed, preserved_rng, seed_everything, seed_worker
from .weights import CheckpointError, load_weights

__all__ = [
    "PRECISIONS",
    "Checkpoint",
    "CheckpointError",
    "DistInfo",
    "InfiniteSampler",
    "MetricLogger",
    "ShardedSampler",
    "TrainOptions",
    "TrainingRun",
    "WarmupCosine",
    "WarmupMultiStep",
    "add_train_arguments",
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
    "fp32",
    "list_checkpoints",
    "load_checkpoint",
    "load_weights",
    "make_grad_scaler",
    "param_groups",
    "parse_overrides",
    "preserved_rng",
    "progress_bar",
    "reduce_metrics",
    "resume",
    "save_checkpoint",
    "seed_everything",
    "seed_worker",
    "setup_distributed",
    "setup_logging",
    "setup_process",
    "sum_over_ranks",
    "to_fp32",
    "training_step_fn",
    "unwrap_model",
    "verify_checkpoint",
    "warmup_cosine_schedule",
    "warmup_multistep_schedule",
    "wrap_ddp",
]
