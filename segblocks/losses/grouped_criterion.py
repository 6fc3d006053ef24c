"""A criterion per query group: each group with its own matcher, loss terms and weights, plus extra losses.

The zoo's models feed several query groups through one decoder and supervise each differently:
OMG-Seg's semantic queries are Hungarian-matched with class, mask and objectness losses while its
location queries are matched by construction (prompt ``i`` <-> target ``i``) with mask losses only;
Uni-OVSeg's multi-granularity outputs are matched many-to-many; SEEM weighs each task on its own;
Uni-OVSeg adds a mask-text alignment loss built on a matching. :class:`GroupedCriterion` holds one
:class:`~segblocks.losses.SetCriterion` per group (deep supervision as there) and any number of
extra losses, each called with every group's predictions, targets and final matching.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from segblocks.losses.set_criterion import SetCriterion
from segblocks.matchers.hungarian import Matching
from segblocks.structures import MaskPredictions, Targets

__all__ = ["ExtraLoss", "GroupedCriterion"]


class ExtraLoss(Protocol):
    """A loss beyond the per-group set losses (e.g. Uni-OVSeg's mask-text alignment)."""

    def __call__(
        self,
        predictions: Mapping[str, MaskPredictions],
        targets: Mapping[str, Sequence[Targets]],
        matchings: Mapping[str, Matching],
    ) -> Tensor:
        """The unweighted scalar loss.

        Args:
            predictions: ``{group: final MaskPredictions}`` of the supervised groups.
            targets: ``{group: B Targets}``.
            matchings: ``{group: the final prediction's matching}``.
        """
        ...


class GroupedCriterion(nn.Module):
    """Losses of several query groups, each by its own :class:`SetCriterion`, plus weighted extra losses.

    Loss keys are ``"{group}/{key}"`` (``"location/loss_mask"``, ``"semantic/loss_class_3"``) and
    ``"{name}"`` for the extra losses; the total is ``sum(losses.values())``.

    Args:
        groups: ``{group name: criterion}``; a group's matcher, terms and weights live in its criterion.
        extra_losses: ``{name: (weight, loss)}``; each loss sees every supervised group's final
            predictions, targets and matching.
    """

    def __init__(
        self,
        *,
        groups: Mapping[str, SetCriterion],
        extra_losses: Mapping[str, tuple[float, ExtraLoss]] | None = None,
    ) -> None:
        super().__init__()
        if not groups:
            raise ValueError("groups: expected at least one {name: SetCriterion}")
        for name, criterion in groups.items():
            if not isinstance(criterion, SetCriterion):
                raise TypeError(f"groups[{name!r}]: expected a SetCriterion, got {type(criterion).__name__}")
        self.groups = nn.ModuleDict(dict(groups))
        self.extra_losses: dict[str, tuple[float, ExtraLoss]] = {}
        for name, (weight, loss) in (extra_losses or {}).items():
            if name in self.groups or not weight >= 0:
                raise ValueError(
                    f"extra_losses[{name!r}]: expected a name that is not a group and a weight >= 0, got {weight}"
                )
            if not callable(loss):
                raise TypeError(
                    f"extra_losses[{name!r}]: expected a callable loss, got {type(loss).__name__}"
                )
            self.extra_losses[name] = (float(weight), loss)

    def forward(
        self,
        predictions: Mapping[str, MaskPredictions],
        targets: Mapping[str, Sequence[Targets]],
        *,
        generator: torch.Generator | None = None,
        match_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, Tensor]:
        """Weighted losses of every group that has both predictions and targets in this batch.

        Args:
            predictions: ``{group: MaskPredictions}`` (with ``aux`` for deep supervision).
            targets: ``{group: B Targets}``; a group without targets in a batch (a task not drawn)
                is skipped, as are extra losses then.
            generator: random generator for point sampling.
            match_kwargs: ``{group: keyword arguments of its matcher}`` (e.g. ``eligible``).

        Returns:
            ``{"{group}/{key}": loss, ..., extra name: loss}``, float32 scalars.

        Raises:
            KeyError: on targets or matcher arguments for a group the criterion does not know.
        """
        unknown = (set(targets) | set(match_kwargs or {})) - set(self.groups)
        if unknown:
            raise KeyError(
                f"targets: no criterion for groups {sorted(unknown)}; groups are {list(self.groups)}"
            )
        losses: dict[str, Tensor] = {}
        matchings: dict[str, Matching] = {}
        for name, criterion in self.groups.items():
            if name not in targets or name not in predictions:
                continue
            assert isinstance(criterion, SetCriterion)
            group_losses, matchings[name] = criterion.losses_and_matching(
                predictions[name], targets[name], generator, **(match_kwargs or {}).get(name, {})
            )
            losses.update({f"{name}/{key}": value for key, value in group_losses.items()})
        if matchings:
            supervised = {name: predictions[name] for name in matchings}
            supervised_targets = {name: targets[name] for name in matchings}
            for name, (weight, loss) in self.extra_losses.items():
                losses[name] = weight * loss(supervised, supervised_targets, matchings).float()
        return losses
