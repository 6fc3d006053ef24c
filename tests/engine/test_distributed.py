"""Single-process distributed helpers, the resumable sharded samplers, and seeding."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, Dataset

from segblocks import engine


def test_setup_without_torchrun_is_a_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    dist = engine.setup_distributed(device="cpu")
    assert (dist.rank, dist.world_size, dist.backend, dist.device) == (0, 1, None, torch.device("cpu"))
    assert dist.is_main and not dist.is_distributed
    model = nn.Linear(2, 2)
    assert engine.wrap_ddp(model, dist) is model
    engine.barrier(dist)
    engine.cleanup_distributed()


def test_setup_rejects_bad_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK/WORLD_SIZE"):
        engine.setup_distributed(device="cpu")
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="environment variable RANK: expected an integer"):
        engine.setup_distributed(device="cpu")
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    with pytest.raises(ValueError, match="device: expected 'cuda' or 'cpu'"):
        engine.setup_distributed(device="meta")


def test_unwrap_model() -> None:
    inner = nn.Linear(2, 2)

    class Compiled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._orig_mod = inner

    assert engine.unwrap_model(Compiled()) is inner
    assert engine.unwrap_model(inner) is inner
    with pytest.raises(TypeError, match=r"model: expected an nn\.Module"):
        engine.unwrap_model("model")  # type: ignore[arg-type]


def test_reduce_metrics_single_process() -> None:
    dist = engine.DistInfo()
    out = engine.reduce_metrics({"loss": torch.tensor(0.25), "acc": 0.5, "n": 3}, dist)
    assert out == {"loss": 0.25, "acc": 0.5, "n": 3.0}
    assert engine.reduce_metrics({}, dist) == {}
    with pytest.raises(ValueError, match=r"metrics\['x'\]: expected a scalar tensor, got shape \(2,\)"):
        engine.reduce_metrics({"x": torch.ones(2)}, dist)
    with pytest.raises(TypeError, match=r"metrics\['x'\]: expected a float or a tensor, got str"):
        engine.reduce_metrics({"x": "high"}, dist)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="op: expected one of"):
        engine.reduce_metrics({"x": 1.0}, dist, op="median")  # type: ignore[arg-type]
    counts = torch.arange(4)
    reduced = engine.all_reduce(counts, dist)
    assert torch.equal(reduced, counts) and reduced is not counts
    assert engine.sum_over_ranks(7) == 7  # no process group: the value itself


def _global_batch(size: int, batch: int, step: int, seed: int) -> list[int]:
    sampler = engine.InfiniteSampler(size, seed=seed, start=step * batch)
    return list(itertools.islice(iter(sampler), batch))


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 23),
    world=st.integers(1, 4),
    local_batch=st.integers(1, 5),
    step=st.integers(0, 12),
    seed=st.integers(0, 2**31 - 1),
)
def test_ranks_together_read_the_single_process_global_batch(
    size: int, world: int, local_batch: int, step: int, seed: int
) -> None:
    rank_batches = []
    for rank in range(world):
        sampler = engine.InfiniteSampler(
            size, seed=seed, rank=rank, world_size=world, start=step * local_batch
        )
        rank_batches.append(list(itertools.islice(iter(sampler), local_batch)))
    interleaved = [rank_batches[r][j] for j in range(local_batch) for r in range(world)]
    assert interleaved == _global_batch(size, local_batch * world, step, seed)


@settings(max_examples=25, deadline=None)
@given(size=st.integers(1, 17), start=st.integers(0, 40), shuffle=st.booleans())
def test_infinite_sampler_resumes_the_stream_and_covers_each_epoch(
    size: int, start: int, shuffle: bool
) -> None:
    full = list(
        itertools.islice(iter(engine.InfiniteSampler(size, shuffle=shuffle, seed=5)), start + 2 * size)
    )
    resumed = list(
        itertools.islice(iter(engine.InfiniteSampler(size, shuffle=shuffle, seed=5, start=start)), 2 * size)
    )
    assert resumed == full[start:]
    for epoch in range(2):
        assert sorted(full[epoch * size : (epoch + 1) * size]) == list(range(size))


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 30), world=st.integers(1, 5))
def test_sharded_sampler_reads_each_item_once(size: int, world: int) -> None:
    shards = [list(engine.ShardedSampler(size, rank=r, world_size=world)) for r in range(world)]
    assert sorted(itertools.chain(*shards)) == list(range(size))
    assert [len(engine.ShardedSampler(size, rank=r, world_size=world)) for r in range(world)] == [
        len(s) for s in shards
    ]


def test_sampler_errors() -> None:
    with pytest.raises(ValueError, match="size: expected an int >= 1"):
        engine.InfiniteSampler(0)
    with pytest.raises(ValueError, match=r"rank: expected an int in \[0, 2\)"):
        engine.InfiniteSampler(4, rank=2, world_size=2)
    with pytest.raises(ValueError, match="start: expected an int >= 0"):
        engine.InfiniteSampler(4, start=-1)
    with pytest.raises(ValueError, match="world_size: expected an int >= 1"):
        engine.ShardedSampler(4, world_size=0)


class _Noise(Dataset[tuple[float, float, float]]):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(torch.rand(()))  # noqa: NPY002


def _draws(loader: DataLoader[tuple[float, float, float]], n: int) -> list[tuple[float, ...]]:
    batches = list(itertools.islice(iter(loader), n))
    return [tuple(float(v) for v in column) for batch in batches for column in zip(*batch)]


def test_train_loader_seeds_each_rank_and_worker_reproducibly() -> None:
    def loader(rank: int, workers: int) -> DataLoader[tuple[float, float, float]]:
        dist = engine.DistInfo(rank=rank, world_size=2)
        return engine.build_train_loader(_Noise(), batch_size=2, dist=dist, seed=3, num_workers=workers)

    rank0 = _draws(loader(0, 2), 2)
    assert rank0 == _draws(loader(0, 2), 2)  # reproducible
    assert set(rank0).isdisjoint(_draws(loader(1, 2), 2))  # ranks draw different numbers
    # Worker 0 made batch 0, worker 1 batch 1: their Python, NumPy and torch streams all differ.
    assert all(a != b for a, b in zip(rank0[0], rank0[2]))
    evaluation = engine.build_eval_loader(_Noise(), batch_size=3, dist=engine.DistInfo(rank=1, world_size=2))
    assert sum(len(b[0]) for b in evaluation) == 4
    with pytest.raises(ValueError, match="batch_size: expected an int >= 1"):
        engine.build_train_loader(_Noise(), batch_size=0, dist=engine.DistInfo(), seed=0)
    with pytest.raises(TypeError, match="dataset: expected a map-style dataset"):
        engine.build_eval_loader(iter([1]), batch_size=1, dist=engine.DistInfo())  # type: ignore[arg-type]


def test_eval_loader_leaves_the_global_generator_alone() -> None:
    """An evaluation between training steps must not shift the training's later random draws."""
    evaluation = engine.build_eval_loader(list(range(5)), batch_size=2, dist=engine.DistInfo())
    state = torch.get_rng_state()
    assert [len(b) for b in evaluation] == [2, 2, 1]
    assert torch.equal(state, torch.get_rng_state())


def test_preserved_rng_restores_torch_numpy_and_python_generators() -> None:
    def draws() -> tuple[float, float, float]:
        return torch.rand(()).item(), float(np.random.rand()), random.random()  # noqa: NPY002

    engine.seed_everything(5)
    expected = draws()
    engine.seed_everything(5)
    with engine.preserved_rng("cpu"):
        draws()  # an evaluation drawing from every generator
    assert draws() == expected
    engine.seed_everything(5)
    with pytest.raises(RuntimeError), engine.preserved_rng():  # restored on errors too
        draws()
        raise RuntimeError("evaluation failed")
    assert draws() == expected


def test_seeding() -> None:
    assert engine.derive_seed(0, 1) != engine.derive_seed(1, 0)
    assert len({engine.derive_seed(7, rank) for rank in range(64)}) == 64
    assert 0 <= engine.derive_seed(2**40, 3) < 2**31
    used = engine.seed_everything(11, rank=2)
    first = (random.random(), np.random.rand(), torch.rand(()))  # noqa: NPY002
    assert engine.seed_everything(11, rank=2) == used
    assert (random.random(), np.random.rand(), torch.rand(())) == first  # noqa: NPY002
    engine.seed_everything(11, rank=3)
    assert torch.rand(()) != first[2]
    with pytest.raises(ValueError, match="seed: expected a non-negative int"):
        engine.derive_seed(-1)
    with pytest.raises(TypeError, match=r"keys\[0\]: expected an int"):
        engine.derive_seed(0, 1.5)  # type: ignore[arg-type]
