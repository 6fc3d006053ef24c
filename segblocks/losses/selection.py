"""Candidate selection loss: teach a prompt's scores to pick the candidate the matcher trained.

A prompt answered by ``k`` candidate masks (SEEM's 3 spatial queries, SAM's 3 outputs) needs a
score that picks one at inference. SEEM scores each candidate by the similarity of its embedding with
the prompt's pooled feature and trains that score with cross-entropy whose target is the candidate
the matcher assigned to the prompt's ground truth (weight 0.4). Here the scores are the candidates'
``iou_scores`` ``[B, P * k]`` and the softmax runs over a prompt's own ``k`` candidates -- the same set
the answer is chosen from at inference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks.matchers.hungarian import Matching
from segblocks.structures import MaskPredictions, Targets

__all__ = ["CandidateSelectionLoss"]


class CandidateSelectionLoss:
    """Cross-entropy over each prompt's ``k`` candidate scores, the matched candidate the target.

    Args:
        group: the query group whose predictions carry the scores (``iou_scores [B, P * k]``).
        per_prompt: ``k``.
    """

    def __init__(self, *, group: str, per_prompt: int) -> None:
        if per_prompt < 1:
            raise ValueError(f"per_prompt: expected an int >= 1, got {per_prompt}")
        self.group = group
        self.per_prompt = per_prompt

    def __call__(
        self,
        predictions: Mapping[str, MaskPredictions],
        targets: Mapping[str, Sequence[Targets]],
        matchings: Mapping[str, Matching],
    ) -> Tensor:
        """The mean cross-entropy over the matched prompts (0 when none is matched).

        Args:
            predictions: ``{group: final MaskPredictions}``; the group's ``iou_scores`` are the scores.
            targets: ``{group: B Targets}`` (unused: the matching says which candidate is right).
            matchings: ``{group: the final prediction's matching}``.

        Raises:
            ValueError: when the group's predictions have no ``iou_scores``.
        """
        pred = predictions[self.group]
        if pred.iou_scores is None:
            raise ValueError(f"predictions[{self.group!r}].iou_scores: the candidate scores are missing")
        scores = pred.iou_scores.float()  # [B, P * k]
        k = self.per_prompt
        logits, labels = [], []
        for b, (src, _tgt) in enumerate(matchings[self.group]):
            if len(src) == 0:
                continue
            src = src.to(scores.device)
            prompt = torch.div(src, k, rounding_mode="floor")
            logits.append(scores[b].unflatten(0, (-1, k))[prompt])  # [n, k]
            labels.append(src % k)
        if not logits:
            return scores.sum() * 0.0
        return F.cross_entropy(torch.cat(logits), torch.cat(labels))
