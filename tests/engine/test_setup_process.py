"""engine.setup_process: the set-up every recipe runs from its add_train_arguments flags."""

from __future__ import annotations

import argparse

import torch

from segblocks.engine import add_train_arguments, setup_process


def test_setup_process_sets_threads_and_seeds_from_the_flags() -> None:
    p = argparse.ArgumentParser()
    add_train_arguments(p, out="runs/x", eval_every=0, lr=1e-3)
    threads = torch.get_num_threads()
    try:
        args = p.parse_args(["--device", "cpu", "--threads", "1", "--seed", "3"])
        dist = setup_process(args)
        assert dist.rank == 0 and dist.world_size == 1 and torch.get_num_threads() == 1
        first = torch.rand(3)
        setup_process(args)
        torch.testing.assert_close(torch.rand(3), first)  # seeded again, same draws
    finally:
        torch.set_num_threads(threads)
