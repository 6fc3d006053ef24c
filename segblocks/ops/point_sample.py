"""Point sampling of maps at normalised coordinates, and Mask2Former's uncertainty-based point choice.

Mask2Former computes its mask losses and matching costs on a few thousand points per mask instead
of every pixel (PointRend's idea): ``point_sample`` reads a map at ``[0, 1]`` coordinates, and
``sample_points_by_uncertainty`` draws ``oversample_ratio * N`` random points, keeps the
``importance_sample_ratio * N`` most uncertain ones (logits closest to 0) and tops up with uniform
random points. Both are a single native op plus indexing, with no host synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks._validation import check_dtype, check_ndim

__all__ = ["logit_uncertainty", "point_sample", "sample_points_by_uncertainty"]


def point_sample(features: Tensor, point_coords: Tensor, *, align_corners: bool = False) -> Tensor:
    """Bilinearly sample ``features`` at normalised ``(x, y)`` points, zero outside the map.

    ``(0, 0)`` is the top-left corner of the map and ``(1, 1)`` the bottom-right one (``grid_sample``
    with ``[-1, 1]`` mapped to ``[0, 1]``). Points given for a single image (batch 1) are shared by
    every image of ``features`` without a copy.

    Args:
        features: ``[N, C, H, W]`` floating map.
        point_coords: ``[N, P, 2]`` or ``[1, P, 2]`` points, or a grid ``[N, Hp, Wp, 2]`` /
            ``[1, Hp, Wp, 2]``; (x, y) in ``[0, 1]``.
        align_corners: passed to ``grid_sample``; ``False`` (default) treats pixels as areas.

    Returns:
        ``[N, C, P]`` for point lists, ``[N, C, Hp, Wp]`` for grids, in ``features``' dtype.

    Raises:
        ValueError: on wrong ranks, a last dimension other than 2 or a batch mismatch.
        TypeError: on non-floating inputs.
    """
    check_ndim("features", features, 4, "[N, C, H, W]")
    check_dtype("features", features, "floating")
    check_dtype("point_coords", point_coords, "floating")
    if point_coords.ndim not in (3, 4) or point_coords.shape[-1] != 2:
        raise ValueError(
            "point_coords: expected [N, P, 2] or [N, Hp, Wp, 2] (x, y) points, "
            f"got {tuple(point_coords.shape)}"
        )
    batch = features.shape[0]
    if point_coords.shape[0] not in (1, batch):
        raise ValueError(
            f"point_coords: expected batch size 1 or {batch} (features'), got {point_coords.shape[0]}"
        )
    as_list = point_coords.ndim == 3
    grid = point_coords.unsqueeze(2) if as_list else point_coords
    grid = grid.expand(batch, *grid.shape[1:]).to(features.dtype)
    sampled = F.grid_sample(features, 2.0 * grid - 1.0, mode="bilinear", align_corners=align_corners)
    return sampled.squeeze(3) if as_list else sampled


def logit_uncertainty(logits: Tensor) -> Tensor:
    """Uncertainty of binary logits, ``-|logit|``: highest (0) on the decision boundary.

    Args:
        logits: any shape, e.g. ``[N, 1, P]``.

    Returns:
        Same shape as ``logits``.
    """
    return -logits.abs()


def sample_points_by_uncertainty(
    logits: Tensor,
    num_points: int,
    *,
    oversample_ratio: float = 3.0,
    importance_sample_ratio: float = 0.75,
    uncertainty_fn: Callable[[Tensor], Tensor] = logit_uncertainty,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Choose ``num_points`` points per map, biased towards uncertain regions (Mask2Former's rule).

    Draws ``int(oversample_ratio * num_points)`` uniform points, evaluates ``uncertainty_fn`` on the
    logits sampled there, keeps the ``int(importance_sample_ratio * num_points)`` most uncertain and
    fills the rest with fresh uniform points. Runs without host synchronisation.

    Args:
        logits: ``[N, 1, H, W]`` class-agnostic mask logits (detach them: no gradient is needed).
        num_points: points per map (Mask2Former: 12,544 = 112 * 112).
        oversample_ratio: candidates per kept point, ``>= 1`` (Mask2Former: 3.0).
        importance_sample_ratio: fraction of the points chosen by uncertainty, in ``[0, 1]``
            (Mask2Former: 0.75).
        uncertainty_fn: maps sampled logits ``[N, 1, P]`` to uncertainties ``[N, 1, P]`` (higher = more
            uncertain); default ``-|logit|``.
        generator: random generator for reproducible draws (on ``logits``' device).

    Returns:
        ``[N, num_points, 2]`` (x, y) coordinates in ``[0, 1]``, in ``logits``' dtype.

    Raises:
        ValueError: on a wrong ``logits`` shape or out-of-range counts and ratios.
        TypeError: on non-floating logits.
    """
    check_ndim("logits", logits, 4, "[N, 1, H, W]")
    check_dtype("logits", logits, "floating")
    if logits.shape[1] != 1:
        raise ValueError(f"logits: expected one channel [N, 1, H, W], got {tuple(logits.shape)}")
    if num_points < 1:
        raise ValueError(f"num_points: expected >= 1, got {num_points}")
    if oversample_ratio < 1:
        raise ValueError(f"oversample_ratio: expected >= 1, got {oversample_ratio}")
    if not 0.0 <= importance_sample_ratio <= 1.0:
        raise ValueError(
            f"importance_sample_ratio: expected a value in [0, 1], got {importance_sample_ratio}"
        )
    num_maps = logits.shape[0]
    num_candidates = int(num_points * oversample_ratio)
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain

    def uniform(count: int) -> Tensor:
        return torch.rand((num_maps, count, 2), device=logits.device, dtype=logits.dtype, generator=generator)

    candidates = uniform(num_candidates)
    uncertainty = uncertainty_fn(point_sample(logits, candidates))  # [N, 1, num_candidates]
    if uncertainty.shape != (num_maps, 1, num_candidates):
        raise ValueError(
            f"uncertainty_fn: expected an output of shape {(num_maps, 1, num_candidates)}, "
            f"got {tuple(uncertainty.shape)}"
        )
    top = uncertainty[:, 0].topk(num_uncertain, dim=1).indices  # [N, num_uncertain]
    chosen = candidates.gather(1, top.unsqueeze(-1).expand(-1, -1, 2))
    if num_random == 0:
        return chosen
    return torch.cat([chosen, uniform(num_random)], dim=1)
