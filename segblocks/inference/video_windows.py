"""Long videos in windows: link the queries of consecutive windows, follow objects from first-frame masks.

A video model predicts tubes of ``clip_size`` frames. A long video is cut into non-overlapping
windows (:func:`clip_windows`); the queries of each window are matched to those of the previous one
by Hungarian matching on the cosine similarity of their final embeddings (MinVIS, OMG-Seg), so query
``i`` of the linked result is one object for the whole video; class scores are averaged over the
windows (:class:`TubeLinker`). The model holds one window at a time, so its memory is bounded by the
window, not the video; the linker keeps the low-resolution tubes (fp16) and one embedding a query.

Video object segmentation (:func:`assign_objects`, :func:`object_masks`): each object given by its
first-frame mask takes the query whose first-frame mask overlaps it best; the linking then carries
that query's identity through the video.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from segblocks._validation import check_dtype, check_ndim

__all__ = ["TubeLinker", "assign_objects", "clip_windows", "link_queries", "object_masks"]


def clip_windows(num_frames: int, window: int) -> list[slice]:
    """Non-overlapping windows of ``window`` frames covering ``num_frames`` (the last may be shorter).

    Raises:
        ValueError: on fewer than one frame or a window of fewer than one frame.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames: expected a video of at least one frame, got {num_frames}")
    if window < 1:
        raise ValueError(f"window: expected at least one frame a window, got {window}")
    return [slice(s, min(s + window, num_frames)) for s in range(0, num_frames, window)]


def link_queries(previous: Tensor, current: Tensor) -> Tensor:
    """The permutation that continues each previous query with the most similar current one.

    Args:
        previous: ``[Q, D]`` final query embeddings of the previous window.
        current: ``[Q, D]`` those of the current window.

    Returns:
        ``[Q]`` int64 ``perm``: ``current[perm[i]]`` continues ``previous[i]`` (Hungarian matching on
        cosine similarity).

    Raises:
        ValueError: on shapes that differ or are not ``[Q, D]``.
    """
    check_ndim("previous", previous, 2, "[Q, D]")
    if current.shape != previous.shape:
        raise ValueError(f"current: expected shape {tuple(previous.shape)}, got {tuple(current.shape)}")
    sim = F.normalize(previous.float(), dim=-1) @ F.normalize(current.float(), dim=-1).T
    rows, cols = linear_sum_assignment(-sim.cpu().numpy())
    perm = np.empty(len(rows), dtype=np.int64)
    perm[rows] = cols
    return torch.from_numpy(perm).to(previous.device)


class TubeLinker:
    """Link the windows of one video into tubes over all its frames.

    Feed the windows in order with :meth:`add`; :meth:`result` returns the linked tubes and the class
    scores averaged over the windows.
    """

    def __init__(self) -> None:
        self._masks: list[Tensor] = []
        self._prob_sum: Tensor | None = None
        self._embeddings: Tensor | None = None
        self._windows = 0

    def add(self, mask_logits: Tensor, class_logits: Tensor, embeddings: Tensor) -> Tensor:
        """Add one window's predictions, reordered to continue the tracks so far.

        Args:
            mask_logits: ``[Q, T_w, h, w]`` the window's tube logits.
            class_logits: ``[Q, C + 1]`` class logits.
            embeddings: ``[Q, D]`` final query embeddings.

        Returns:
            ``[Q]`` the permutation applied (identity for the first window).

        Raises:
            ValueError: on shapes that do not fit each other or the previous windows.
        """
        check_ndim("mask_logits", mask_logits, 4, "[Q, T_w, h, w]")
        check_ndim("class_logits", class_logits, 2, "[Q, C + 1]")
        check_dtype("mask_logits", mask_logits, "floating")
        q = mask_logits.shape[0]
        if class_logits.shape[0] != q or embeddings.ndim != 2 or embeddings.shape[0] != q:
            raise ValueError(
                f"class_logits, embeddings: expected {q} rows (one per query), got "
                f"{tuple(class_logits.shape)} and {tuple(embeddings.shape)}"
            )
        if self._masks and mask_logits.shape[-2:] != self._masks[0].shape[-2:]:
            raise ValueError(
                f"mask_logits: window masks of size {tuple(mask_logits.shape[-2:])}, earlier windows "
                f"{tuple(self._masks[0].shape[-2:])}"
            )
        if self._embeddings is None:
            perm = torch.arange(q, device=embeddings.device)
        else:
            perm = link_queries(self._embeddings, embeddings)
        probs = class_logits.detach().float().softmax(-1)[perm]
        self._prob_sum = probs if self._prob_sum is None else self._prob_sum + probs
        self._embeddings = embeddings.detach()[perm]
        self._masks.append(mask_logits.detach()[perm].half())
        self._windows += 1
        return perm

    def result(self) -> tuple[Tensor, Tensor]:
        """``(mask_logits [Q, T, h, w] float32, class log-probabilities [Q, C + 1])`` of the whole video.

        The class scores are the mean of the windows' class probabilities (as log-probabilities, which
        the post-processing functions accept like logits).

        Raises:
            ValueError: before any window was added.
        """
        if self._prob_sum is None:
            raise ValueError("result: no window was added")
        masks = torch.cat(self._masks, dim=1).float()
        return masks, (self._prob_sum / self._windows).clamp_min(1e-12).log()


def assign_objects(first_masks: Tensor, proposals: Tensor) -> Tensor:
    """Which query follows each object: Hungarian matching on the IoU of first-frame masks.

    Args:
        first_masks: ``[K, H, W]`` bool, the objects' masks in the first frame.
        proposals: ``[Q, H, W]`` the queries' first-frame mask logits (any resolution; resized).

    Returns:
        ``[K]`` int64 query index of each object.

    Raises:
        ValueError: on no objects, an empty object mask, or fewer queries than objects.
    """
    check_ndim("first_masks", first_masks, 3, "[K, H, W]")
    check_dtype("first_masks", first_masks, "bool")
    check_ndim("proposals", proposals, 3, "[Q, H, W]")
    k, q = first_masks.shape[0], proposals.shape[0]
    if k == 0 or not bool(first_masks.flatten(1).any(1).all()):
        raise ValueError("first_masks: expected at least one object, each with a non-empty mask")
    if q < k:
        raise ValueError(f"proposals: {q} queries cannot follow {k} objects")
    pred = F.interpolate(proposals[None].float(), size=first_masks.shape[-2:], mode="bilinear")[0] > 0
    p, t = pred.flatten(1).float(), first_masks.flatten(1).float().to(pred.device)
    inter = t @ p.T  # [K, Q]
    iou = inter / (t.sum(1)[:, None] + p.sum(1)[None] - inter).clamp_min(1.0)
    rows, cols = linear_sum_assignment(-iou.cpu().numpy())
    out = np.empty(k, dtype=np.int64)
    out[rows] = cols
    return torch.from_numpy(out)


def object_masks(tube_logits: Tensor, assignment: Tensor) -> Tensor:
    """Each object's masks over the video, non-overlapping (DAVIS): a pixel goes to the object with the
    highest logit among those above 0.

    Args:
        tube_logits: ``[Q, T, H, W]`` linked tube logits at the output size.
        assignment: ``[K]`` query of each object (:func:`assign_objects`).

    Returns:
        ``[K, T, H, W]`` bool.
    """
    check_ndim("tube_logits", tube_logits, 4, "[Q, T, H, W]")
    chosen = tube_logits[assignment.to(tube_logits.device)]  # [K, T, H, W]
    best = chosen.argmax(dim=0)
    winner = torch.arange(chosen.shape[0], device=chosen.device)[:, None, None, None] == best[None]
    return winner & (chosen > 0)
