"""Mixed precision: bf16 training stays finite and learns, fp32 islands, scaler, full-model clipping."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from segblocks import engine

from .tiny_train import TinySegNet, parse_args, segmentation_loss, train


@pytest.mark.usefixtures("single_thread")
def test_bf16_autocast_trains_200_steps_without_nan_and_the_loss_falls(tmp_path: Path) -> None:
    losses = train(
        parse_args(["--run-dir", str(tmp_path), "--steps", "200", "--precision", "bf16", "--batch-size", "4"])
    )
    assert len(losses) == 200
    assert all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.6 * first, (first, last)


def test_autocast_really_runs_the_model_in_bf16_and_the_loss_in_fp32() -> None:
    model = TinySegNet()
    images = torch.rand(2, 3, 8, 8)
    with engine.autocast("cpu", "bf16"):
        logits = model(images)
        loss = segmentation_loss(logits, (images[:, 0] > 0.5).long())
    assert logits.dtype == torch.bfloat16
    assert loss.dtype == torch.float32
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())
    with engine.autocast("cpu", "fp32"):
        assert model(images).dtype == torch.float32


def test_fp32_decorator_and_context() -> None:
    a, b = torch.rand(4, 5), torch.rand(5, 3)
    seen: list[torch.dtype] = []

    @engine.fp32
    def cost(x: torch.Tensor, y: torch.Tensor, *, index: torch.Tensor) -> torch.Tensor:
        seen.extend([x.dtype, y.dtype, index.dtype])
        return x @ y

    @engine.fp32()
    def nested(pair: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return pair[0] @ pair[1]

    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16
        out = cost(a.bfloat16(), b, index=torch.arange(3))
        assert out.dtype == torch.float32 and seen == [torch.float32, torch.float32, torch.int64]
        assert nested((a.bfloat16(), b.bfloat16())).dtype == torch.float32
        with engine.fp32():
            assert (a @ b).dtype == torch.float32
            with engine.fp32():  # nesting is harmless
                assert (a @ b).dtype == torch.float32
            assert (a @ b).dtype == torch.float32
        assert (a @ b).dtype == torch.bfloat16  # autocast is back on after the fp32 island
    assert cost.__name__ == "cost"
    assert engine.to_fp32({"x": [a.half()], "n": 3})["x"][0].dtype == torch.float32
    with pytest.raises(TypeError, match="fn: expected a callable"):
        engine.fp32(3)  # type: ignore[call-overload]


def test_precision_and_device_validation() -> None:
    with pytest.raises(ValueError, match="precision: expected one of"):
        engine.autocast("cpu", "fp8")
    with pytest.raises(ValueError, match="device: expected a cpu or cuda device"):
        engine.autocast("meta", "bf16")
    assert engine.make_grad_scaler("fp16", "cpu").is_enabled()
    assert not engine.make_grad_scaler("bf16", "cpu").is_enabled()
    assert not engine.make_grad_scaler("fp32", "cpu").is_enabled()


def test_full_model_gradient_clipping() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
    model[0].bias.requires_grad_(False)
    (model(torch.randn(8, 4)).pow(2).sum() * 100).backward()
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    total = torch.cat([g.flatten() for g in grads]).norm()
    norm = engine.clip_grad_norm(model, 0.5)
    torch.testing.assert_close(norm, total)
    clipped = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    torch.testing.assert_close(clipped.norm(), torch.tensor(0.5), rtol=1e-4, atol=1e-6)
    # One factor for the whole model: every gradient keeps its direction and relative size.
    torch.testing.assert_close(
        clipped, torch.cat([g.flatten() for g in grads]) * (0.5 / total), rtol=1e-4, atol=1e-7
    )
    with pytest.raises(ValueError, match="max_norm: expected a positive"):
        engine.clip_grad_norm(model, 0.0)
    with pytest.raises(ValueError, match="optimizer: required to unscale"):
        engine.clip_grad_norm(model, 1.0, scaler=engine.make_grad_scaler("fp16", "cpu"))


def test_fp16_with_grad_scaler_trains() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    target = nn.Linear(8, 1)
    optimizer = engine.build_adamw(model, lr=1e-2, weight_decay=0.0)
    scaler = engine.make_grad_scaler("fp16", "cpu")
    mse = engine.fp32(nn.functional.mse_loss)
    losses = []
    for _ in range(40):
        x = torch.randn(32, 8)
        with engine.autocast("cpu", "fp16"):
            pred = model(x)
            loss = mse(pred, target(x).detach())
        assert pred.dtype == torch.float16 and loss.dtype == torch.float32
        norm = engine.backward_step(loss, optimizer=optimizer, scaler=scaler, max_norm=1.0)
        assert norm is not None and norm.dtype == torch.float32
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    assert scaler.get_scale() > 1.0  # the scaler is active
    assert all(p.grad is None for p in model.parameters())  # zeroed for the next step


def test_backward_step_validation() -> None:
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"loss: expected a torch\.Tensor"):
        engine.backward_step(1.0, optimizer=optimizer)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"loss: expected a scalar, got shape \(3, 1\)"):
        engine.backward_step(model(torch.randn(3, 2)), optimizer=optimizer)
    before = model.weight.detach().clone()
    assert engine.backward_step(model(torch.randn(3, 2)).sum(), optimizer=optimizer) is None
    assert not torch.equal(model.weight, before)
