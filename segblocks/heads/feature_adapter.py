"""Uni-OVSeg's multi-scale feature adapter: low-rank updates of the dense CLIP map from several scales.

The frozen CLIP's dense embedding map (the one mask pooling reads) is corrected by a rank-``r`` update
from each chosen feature scale (``res3``, ``res4``, ``res5`` of the CLIP trunk)::

    dense' = dense + sum_l resize( (alpha / r) * B_l A_l f_l )

Each scale's update is a :class:`~segblocks.layers.LoRALinear` around a frozen, zero-initialised
``C_l -> E`` projection (loralib's initialisation: ``A`` Kaiming, ``B`` zero), so the adapter starts as
the identity and :func:`~segblocks.layers.merge_lora` folds ``B A`` into that projection for inference
(one matrix per scale instead of two). The paper's Fig. 6 puts a non-linearity between ``A`` and
``B``; the linear form here is what makes it mergeable (see the model card). The CLIP itself stays
untouched, so the mask branch that reads the same CLIP features is not affected by the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segblocks._validation import check_ndim
from segblocks.layers.lora import LoRALinear, lora_parameters, merge_lora

__all__ = ["MultiScaleFeatureAdapter"]


class MultiScaleFeatureAdapter(nn.Module):
    """Rank-``r`` corrections of a dense CLIP map from several feature scales.

    Args:
        in_channels: ``{scale name: channels}`` of the feature maps read (e.g. ``res3``, ``res4``, ``res5``).
        embed_dim: channels ``E`` of the dense CLIP map.
        rank: LoRA rank ``r`` (Uni-OVSeg: 8).
        alpha: scaling numerator (loralib default 1).
    """

    def __init__(
        self, *, in_channels: Mapping[str, int], embed_dim: int, rank: int = 8, alpha: float = 1.0
    ) -> None:
        super().__init__()
        if not in_channels:
            raise ValueError("in_channels: expected at least one feature scale")
        if embed_dim <= 0:
            raise ValueError(f"embed_dim: expected a positive int, got {embed_dim}")
        self.embed_dim = embed_dim
        self.rank = rank
        self.adapters = nn.ModuleDict()
        for name, c in in_channels.items():
            base = nn.Linear(int(c), embed_dim, bias=False)
            nn.init.zeros_(base.weight)
            self.adapters[name] = LoRALinear(base, rank=rank, alpha=alpha)

    @property
    def scales(self) -> list[str]:
        """Names of the feature scales read."""
        return list(self.adapters.keys())

    def forward(self, features: Mapping[str, Tensor], dense: Tensor) -> Tensor:
        """Adapt the dense CLIP map.

        Args:
            features: ``{scale: [B, C_l, H_l, W_l]}`` containing every scale of :attr:`scales`.
            dense: ``[B, E, h, w]`` the frozen CLIP's dense embedding map.

        Returns:
            ``[B, E, h, w]`` the adapted map.

        Raises:
            ValueError: on a missing scale or mismatched shapes.
        """
        check_ndim("dense", dense, 4, "[B, E, h, w]")
        if dense.shape[1] != self.embed_dim:
            raise ValueError(f"dense: expected {self.embed_dim} channels, got shape {tuple(dense.shape)}")
        out = dense
        for name, module in self.adapters.items():
            assert isinstance(module, LoRALinear)
            adapter = module
            if name not in features:
                raise ValueError(f"features: missing scale {name!r}; got {sorted(features)}")
            f = features[name]
            check_ndim(f"features[{name!r}]", f, 4, "[B, C, H, W]")
            if f.shape[0] != dense.shape[0] or f.shape[1] != adapter.in_features:
                raise ValueError(
                    f"features[{name!r}]: expected [B={dense.shape[0]}, C={adapter.in_features}, H, W], "
                    f"got {tuple(f.shape)}"
                )
            update = adapter(f.permute(0, 2, 3, 1).to(adapter.weight.dtype)).permute(0, 3, 1, 2)
            if update.shape[-2:] != dense.shape[-2:]:
                update = F.interpolate(update, size=dense.shape[-2:], mode="bilinear", align_corners=False)
            out = out + update.to(out.dtype)
        return out

    def merge(self, merged: bool = True) -> None:
        """Fold every scale's ``B A`` into its projection (inference) or take it out again.

        Args:
            merged: the state to put every scale's adapter in.
        """
        merge_lora(self, merged)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The ``lora_A``/``lora_B`` parameters (the projections stay frozen)."""
        return list(lora_parameters(self))

    @torch.no_grad()
    def is_identity(self) -> bool:
        """True while every update is zero (freshly initialised)."""
        return all(bool((a.delta() == 0).all()) for a in self.adapters.values() if isinstance(a, LoRALinear))
