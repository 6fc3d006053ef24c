"""A recipe-style loop (TrainingRun + training_step_fn) on a one-conv mask net, runnable under torchrun.

``python step_train.py RUN_DIR GLOBAL_BATCH STEPS`` writes ``RUN_DIR/final.safetensors``; used by
``test_run.py`` to check that the DDP-wrapped training step trains what one process trains.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.utils.data import Dataset

from segblocks import engine
from segblocks.structures import Batch, Targets


class Blobs(Dataset[tuple[Tensor, Targets]]):
    """8x8 images with one bright square; the target is its mask."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> tuple[Tensor, Targets]:
        g = torch.Generator().manual_seed(index)
        y, x = (int(v) for v in torch.randint(0, 5, (2,), generator=g))
        mask = torch.zeros(1, 8, 8, dtype=torch.bool)
        mask[0, y : y + 3, x : x + 3] = True
        image = 0.1 * torch.rand(3, 8, 8, generator=g) + mask.float()
        return image, Targets(masks=mask, labels=torch.zeros(1, dtype=torch.int64))


def collate(items: list[tuple[Tensor, Targets]]) -> Batch:
    """Stack the images, keep the targets as a list."""
    return Batch(images=torch.stack([i for i, _ in items]), targets=[t for _, t in items])


class MaskNet(nn.Module):
    """One conv predicting a mask; its training step is the BCE against the target mask."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, images: Tensor) -> Tensor:
        return self.conv(images)[:, 0]

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        assert batch.targets is not None
        masks = torch.stack([t.masks[0] for t in batch.targets]).float()
        return {"loss_mask": F.binary_cross_entropy_with_logits(self(batch.images), masks)}


def main(run_dir: Path, global_batch: int, steps: int) -> None:
    torch.set_num_threads(1)
    dist = engine.setup_distributed(device="cpu")
    torch.manual_seed(0)
    model = MaskNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    options = engine.TrainOptions(steps=steps, batch_size=global_batch // dist.world_size, log_every=1)
    run = engine.TrainingRun.start(
        model, optimizer=optimizer, scheduler=None, options=options, run_dir=run_dir, dist=dist
    )
    loader = engine.build_train_loader(
        Blobs(), batch_size=options.batch_size, dist=dist, seed=0, start_step=run.step, collate_fn=collate
    )
    training_step = engine.training_step_fn(model, dist)
    for batch in run.progress(loader, enabled=False):
        losses = training_step(batch)
        loss = sum(losses.values(), torch.zeros(()))
        engine.backward_step(loss, optimizer=optimizer)
        run.end_step(loss, losses, lr=0.5)
    if dist.is_main:
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()}, str(run_dir / "final.safetensors")
        )
    engine.cleanup_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
