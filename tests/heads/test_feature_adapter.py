"""The multi-scale LoRA feature adapter and multi-scale region embeddings."""

from __future__ import annotations

import pytest
import torch

from segblocks.heads import MultiScaleFeatureAdapter, ensemble_region_embeddings, multiscale_region_embeddings


def feats() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"res3": torch.randn(2, 6, 8, 8), "res4": torch.randn(2, 10, 4, 4)}


def test_adapter_starts_as_identity_trains_only_lora_and_merges_exactly() -> None:
    torch.manual_seed(0)
    adapter = MultiScaleFeatureAdapter(in_channels={"res3": 6, "res4": 10}, embed_dim=5, rank=2)
    f, dense = feats(), torch.randn(2, 5, 4, 4)
    assert adapter.is_identity() and torch.equal(adapter(f, dense), dense)
    trainable = {n for n, p in adapter.named_parameters() if p.requires_grad}
    assert trainable == {f"adapters.{s}.lora_{ab}" for s in ("res3", "res4") for ab in "AB"}
    # one optimiser step moves it away from the identity, and the gradient reaches both scales
    out = adapter(f, dense)
    out.pow(2).sum().backward()
    assert all(p.grad is not None for p in adapter.trainable_parameters())
    with torch.no_grad():
        for p in adapter.trainable_parameters():
            p.add_(0.1 * torch.randn_like(p))
    before = adapter(f, dense)
    assert not torch.allclose(before, dense)
    adapter.merge()
    assert torch.allclose(adapter(f, dense), before, atol=1e-5)
    adapter.merge(False)
    assert torch.allclose(adapter(f, dense), before, atol=1e-5)


def test_adapter_errors() -> None:
    adapter = MultiScaleFeatureAdapter(in_channels={"res3": 6}, embed_dim=5)
    with pytest.raises(ValueError, match="missing scale"):
        adapter({}, torch.randn(2, 5, 4, 4))
    with pytest.raises(ValueError, match="dense"):
        adapter(feats(), torch.randn(2, 4, 4, 4))
    with pytest.raises(ValueError, match="res3"):
        adapter({"res3": torch.randn(2, 7, 8, 8)}, torch.randn(2, 5, 4, 4))
    with pytest.raises(ValueError, match="in_channels"):
        MultiScaleFeatureAdapter(in_channels={}, embed_dim=5)


class ToyCLIP:
    """A dense 'CLIP' whose embedding at a cell is the mean colour of the cell (E = 3)."""

    size_divisibility = 8

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        dense = torch.nn.functional.avg_pool2d(images, 8)
        return {"clip_dense": dense, "res3": dense}

    def pool_masks(self, dense: torch.Tensor, masks: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        from segblocks.ops.mask_pooling import mask_pool

        pooled = mask_pool(dense, masks)
        return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled


def test_multiscale_region_embeddings_pool_each_scale() -> None:
    images = torch.zeros(1, 3, 32, 32)
    images[:, 0, :16] = 1.0  # top half red
    images[:, 2, 16:] = 1.0  # bottom half blue
    masks = torch.zeros(1, 2, 32, 32, dtype=torch.bool)
    masks[0, 0, :16] = True
    masks[0, 1, 16:] = True
    emb = multiscale_region_embeddings(ToyCLIP(), images, masks, sizes=(16, 32))  # type: ignore[arg-type]
    assert emb.shape == (2, 1, 2, 3)
    assert torch.allclose(emb[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]).expand(2, 3), atol=1e-4)
    ens = ensemble_region_embeddings(emb)
    assert ens.shape == (1, 2, 3) and torch.allclose(ens.norm(dim=-1), torch.ones(1, 2))
    with pytest.raises(ValueError, match="sizes"):
        multiscale_region_embeddings(ToyCLIP(), images, masks, sizes=(20,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sizes"):
        multiscale_region_embeddings(ToyCLIP(), images, masks, sizes=())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="masks"):
        multiscale_region_embeddings(ToyCLIP(), images, masks[0], sizes=(32,))  # type: ignore[arg-type]
