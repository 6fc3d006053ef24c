"""Open-vocabulary ensembles of an in-vocabulary and a frozen-CLIP (out-of-vocabulary) classifier.

Both blocks take, per mask, the in-vocabulary logits ``[B, Q, C + 1]`` (last column void, e.g. from
LDP or an :class:`~segblocks.heads.OpenVocabClassHead`) and the frozen CLIP's mask-pooled logits
``[B, Q, C]`` (no void), and return ``[B, Q, C + 1]`` **log-probabilities** (each row sums to one in
probability space), so the softmax-based post-processing in :mod:`segblocks.inference` reads them
as ordinary logits. The void probability comes from the in-vocabulary classifier (CLIP has none).

* :class:`GeometricEnsemble` (FC-CLIP, ODISE): ``p = p_in^(1 - a) * p_clip^a`` with a fixed ``a``:
  ``alpha`` (0.4) for classes seen in training and ``beta`` (0.8) for unseen ones.
* :class:`MaskAwareSelectiveEnsemble` (PosSAM's MASE): the same geometric mean, but each mask's
  exponent moves with the relative confidence of the two classifiers, and the non-void probability
  of every mask is weighted by its predicted IoU.

:func:`exponent_pairs` and :func:`best_exponents` are the grid and the choosing rule for ``alpha``
and ``beta`` when a model scores them (e.g. on a proxy split of its training classes,
:meth:`segblocks.data.ClassSplit.proxy`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from segblocks._validation import check_dtype, check_ndim, check_unit_grid

__all__ = [
    "EXPONENT_GRID",
    "GeometricEnsemble",
    "MaskAwareSelectiveEnsemble",
    "best_exponents",
    "check_seen_and_unseen",
    "exponent_pairs",
]

_EPS = 1e-8

#: Candidate ensemble exponents (CLIP's share of the geometric mean), 0 to 1 in steps of 0.2.
EXPONENT_GRID = tuple(round(0.2 * k, 1) for k in range(6))
#: FC-CLIP's exponents ``(alpha, beta)``: the defaults, and where ties in :func:`best_exponents` go.
FC_CLIP_EXPONENTS = (0.4, 0.8)


def exponent_pairs(grid: Sequence[float] = EXPONENT_GRID) -> list[tuple[float, float]]:
    """Every ``(alpha, beta)`` of ``grid x grid``.

    Raises:
        ValueError: on an empty grid or an exponent outside ``[0, 1]``.
    """
    values = check_unit_grid("grid", grid, "exponent")
    return [(a, b) for a in values for b in values]


def check_seen_and_unseen(seen: Tensor) -> None:
    """Raise unless a vocabulary's ``seen`` flags ``[C]`` hold both seen and unseen classes.

    Scoring ``beta`` (the unseen classes' exponent) needs both, e.g. a proxy model's vocabulary
    with classes it did not train on.

    Raises:
        ValueError: when every class is seen or none is.
    """
    if bool(seen.all()) or not bool(seen.any()):
        raise ValueError(
            "predictor: expected a vocabulary with seen and unseen classes (a proxy model scored on "
            f"classes it did not train on), got {int(seen.sum())} seen of {len(seen)}"
        )


def best_exponents(scores: Mapping[tuple[float, float], float]) -> tuple[float, float]:
    """The ``(alpha, beta)`` of the highest score; ties go to the pair nearest FC-CLIP's (0.4, 0.8).

    Args:
        scores: ``{(alpha, beta): score}`` (higher is better, e.g. PQ; NaN ranks last).

    Raises:
        ValueError: on no scores.
    """
    if not scores:
        raise ValueError("scores: expected at least one (alpha, beta) pair, got none")

    def rank(pair: tuple[float, float]) -> tuple[float, float]:
        score = scores[pair]
        distance = abs(pair[0] - FC_CLIP_EXPONENTS[0]) + abs(pair[1] - FC_CLIP_EXPONENTS[1])
        return (float("-inf") if math.isnan(score) else score, -distance)

    return max(scores, key=rank)


def _check_inputs(in_vocab_logits: Tensor, clip_logits: Tensor, seen: Tensor) -> None:
    check_ndim("in_vocab_logits", in_vocab_logits, 3, "[B, Q, C + 1]")
    check_dtype("in_vocab_logits", in_vocab_logits, "floating")
    check_ndim("clip_logits", clip_logits, 3, "[B, Q, C]")
    check_dtype("clip_logits", clip_logits, "floating")
    b, q, c1 = in_vocab_logits.shape
    if c1 < 2:
        raise ValueError(
            f"in_vocab_logits: expected at least one class plus void, got {tuple(in_vocab_logits.shape)}"
        )
    if tuple(clip_logits.shape) != (b, q, c1 - 1):
        raise ValueError(
            f"clip_logits: expected shape ({b}, {q}, {c1 - 1}) (in_vocab_logits without the void column), "
            f"got {tuple(clip_logits.shape)}"
        )
    check_ndim("seen", seen, 1, "[C]")
    check_dtype("seen", seen, "bool")
    if seen.shape[0] != c1 - 1:
        raise ValueError(f"seen: expected {c1 - 1} flags (one per class), got shape {tuple(seen.shape)}")


def _check_weight(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a value in [0, 1], got {value}")


def _mask_invalid(weight: Tensor, valid: Tensor | None, shape: tuple[int, ...]) -> Tensor:
    """Zero CLIP's exponent on masks without pixels (FC-CLIP's ensemble on valid masks only)."""
    if valid is None:
        return weight
    check_dtype("valid", valid, "bool")
    if tuple(valid.shape) != shape:
        raise ValueError(f"valid: expected shape {shape} (one flag per mask), got {tuple(valid.shape)}")
    return weight * valid.to(weight.device, weight.dtype).unsqueeze(-1)


def _split(in_vocab_logits: Tensor, clip_logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(p_in [B, Q, C], void [B, Q, 1], p_clip [B, Q, C])``: class distributions and void probability."""
    probs = in_vocab_logits.float().softmax(-1)
    void = probs[..., -1:]
    p_in = in_vocab_logits[..., :-1].float().softmax(-1)  # = the non-void probabilities renormalised
    return p_in, void, clip_logits.float().softmax(-1)


def _combine(p_in: Tensor, p_clip: Tensor, clip_weight: Tensor) -> Tensor:
    """``softmax_c((1 - w) log p_in + w log p_clip)``: the renormalised weighted geometric mean."""
    log_mix = (1.0 - clip_weight) * p_in.clamp_min(_EPS).log() + clip_weight * p_clip.clamp_min(_EPS).log()
    return log_mix.softmax(-1)


def _with_void(class_probs: Tensor, object_prob: Tensor) -> Tensor:
    """Log of ``[object_prob * class_probs, 1 - object_prob]`` (``[B, Q, C + 1]``)."""
    probs = torch.cat([class_probs * object_prob, 1.0 - object_prob], dim=-1)
    return probs.clamp_min(_EPS).log()


class GeometricEnsemble(nn.Module):
    """FC-CLIP's fixed geometric ensemble of an in-vocabulary classifier and frozen CLIP.

    ``p[c] = norm(p_in[c]^(1 - a_c) * p_clip[c]^a_c) * (1 - p_void)`` with ``a_c = alpha`` for seen
    classes and ``beta`` for unseen ones; ``p_void`` is the in-vocabulary void probability.

    Args:
        alpha: CLIP's exponent for classes seen in training (FC-CLIP: 0.4).
        beta: CLIP's exponent for unseen classes (FC-CLIP: 0.8).

    Raises:
        ValueError: on exponents outside ``[0, 1]``.
    """

    def __init__(self, *, alpha: float = 0.4, beta: float = 0.8) -> None:
        super().__init__()
        _check_weight("alpha", alpha)
        _check_weight("beta", beta)
        self.alpha = alpha
        self.beta = beta

    def forward(
        self, in_vocab_logits: Tensor, clip_logits: Tensor, seen: Tensor, valid: Tensor | None = None
    ) -> Tensor:
        """Combine the two classifiers.

        Args:
            in_vocab_logits: ``[B, Q, C + 1]`` logits, the last column void.
            clip_logits: ``[B, Q, C]`` frozen-CLIP logits (scaled cosines to the same C classes).
            seen: ``[C]`` bool, True for classes of the training vocabulary.
            valid: optional ``[B, Q]`` bool, False for masks without pixels: their CLIP logits pool
                nothing, so they keep the in-vocabulary distribution (FC-CLIP).

        Returns:
            ``[B, Q, C + 1]`` float32 log-probabilities, the last column void.

        Raises:
            ValueError: on mismatched shapes.
            TypeError: on non-floating logits or a non-bool ``seen``.
        """
        _check_inputs(in_vocab_logits, clip_logits, seen)
        p_in, void, p_clip = _split(in_vocab_logits, clip_logits)
        weight = torch.where(seen.to(p_in.device), self.alpha, self.beta).to(p_in.dtype)  # [C]
        weight = _mask_invalid(weight.expand_as(p_in), valid, tuple(p_in.shape[:2]))
        return _with_void(_combine(p_in, p_clip, weight), 1.0 - void)


class MaskAwareSelectiveEnsemble(nn.Module):
    """PosSAM's MASE: a confidence-adaptive geometric ensemble with IoU-weighted masks.

    For mask ``q`` and class ``c``, with base exponent ``a_c`` (``alpha`` for seen classes, ``beta``
    for unseen ones) and the two classifiers' confidences ``k_in = max p_in``, ``k_clip = max p_clip``,
    CLIP's exponent is

    ``w[q, c] = a_c k_clip / (a_c k_clip + (1 - a_c) k_in)``,

    i.e. ``logit(w) = logit(a_c) + log(k_clip / k_in)``: the fixed ensemble when both are equally
    confident, CLIP's share rising when CLIP is more confident and LDP's when LDP is. The combined
    class distribution ``norm(p_in^(1 - w) p_clip^w)`` is then weighted by the mask's object
    probability ``(1 - p_void) * sigmoid(iou)`` (the predicted IoU as a per-mask regulariser); the
    remainder goes to void, so low-quality masks fall below the post-processing thresholds.

    Args:
        alpha: base CLIP exponent for seen classes (FC-CLIP's 0.4).
        beta: base CLIP exponent for unseen classes (FC-CLIP's 0.8).
        use_iou: weight masks by the predicted IoU (when ``iou_logits`` are given).

    Raises:
        ValueError: on exponents outside ``[0, 1]``.
    """

    def __init__(self, *, alpha: float = 0.4, beta: float = 0.8, use_iou: bool = True) -> None:
        super().__init__()
        _check_weight("alpha", alpha)
        _check_weight("beta", beta)
        self.alpha = alpha
        self.beta = beta
        self.use_iou = use_iou

    def clip_weights(self, in_vocab_logits: Tensor, clip_logits: Tensor, seen: Tensor) -> Tensor:
        """CLIP's per-mask, per-class exponent ``w`` (see the class docstring).

        Args:
            in_vocab_logits: ``[B, Q, C + 1]`` logits, the last column void.
            clip_logits: ``[B, Q, C]`` frozen-CLIP logits.
            seen: ``[C]`` bool, True for classes of the training vocabulary.

        Returns:
            ``[B, Q, C]`` float32 exponents in ``[0, 1]``.

        Raises:
            ValueError: on mismatched shapes.
            TypeError: on non-floating logits or a non-bool ``seen``.
        """
        _check_inputs(in_vocab_logits, clip_logits, seen)
        p_in, _, p_clip = _split(in_vocab_logits, clip_logits)
        return self._weights(p_in, p_clip, seen)

    def _weights(self, p_in: Tensor, p_clip: Tensor, seen: Tensor) -> Tensor:
        base = torch.where(seen.to(p_in.device), self.alpha, self.beta).to(p_in.dtype)  # [C]
        k_in = p_in.amax(-1, keepdim=True)  # [B, Q, 1]
        k_clip = p_clip.amax(-1, keepdim=True)
        num = base * k_clip
        return num / (num + (1.0 - base) * k_in).clamp_min(_EPS)

    def forward(
        self,
        in_vocab_logits: Tensor,
        clip_logits: Tensor,
        seen: Tensor,
        iou_logits: Tensor | None = None,
        valid: Tensor | None = None,
    ) -> Tensor:
        """Combine the two classifiers mask by mask.

        Args:
            in_vocab_logits: ``[B, Q, C + 1]`` LDP logits, the last column void.
            clip_logits: ``[B, Q, C]`` frozen-CLIP mask-pooled logits.
            seen: ``[C]`` bool, True for classes of the training vocabulary.
            iou_logits: ``[B, Q]`` predicted-IoU logits (``sigmoid`` = IoU), or None (no IoU weighting).
            valid: optional ``[B, Q]`` bool, False for masks without pixels (they keep the
                in-vocabulary distribution: CLIP pooled nothing for them).

        Returns:
            ``[B, Q, C + 1]`` float32 log-probabilities, the last column void.

        Raises:
            ValueError: on mismatched shapes.
            TypeError: on non-floating logits or a non-bool ``seen``.
        """
        _check_inputs(in_vocab_logits, clip_logits, seen)
        p_in, void, p_clip = _split(in_vocab_logits, clip_logits)
        weight = _mask_invalid(self._weights(p_in, p_clip, seen), valid, tuple(p_in.shape[:2]))
        class_probs = _combine(p_in, p_clip, weight)
        object_prob = 1.0 - void
        if iou_logits is not None and self.use_iou:
            b, q = in_vocab_logits.shape[:2]
            check_ndim("iou_logits", iou_logits, 2, "[B, Q]")
            check_dtype("iou_logits", iou_logits, "floating")
            if tuple(iou_logits.shape) != (b, q):
                raise ValueError(f"iou_logits: expected shape ({b}, {q}), got {tuple(iou_logits.shape)}")
            object_prob = object_prob * iou_logits.float().sigmoid().unsqueeze(-1)
        return _with_void(class_probs, object_prob)
