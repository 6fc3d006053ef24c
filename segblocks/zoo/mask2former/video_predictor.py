"""Mask2Former on video (Mask2Former-VIS, with MinVIS-style linking): clips, long videos in windows, VOS.

A clip of ``T`` frames goes through the model at once (tubes). A long video is cut into windows of
``window`` frames; each window's queries are linked to the previous window's by Hungarian matching
on their final embeddings, class scores are averaged over the windows, and the tubes are
concatenated (:class:`~segblocks.inference.TubeLinker`): the model holds one window at a time, so
its memory does not grow with the video. Video object segmentation follows the objects given by
their first-frame masks with the queries whose first-frame masks overlap them best.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from segblocks._validation import check_dtype, check_ndim
from segblocks.inference import (
    TASKS,
    ClipPrediction,
    TubeLinker,
    assign_objects,
    check_tasks,
    clip_windows,
    object_masks,
    padded_size,
    postprocess_clips,
    unpad_mask_logits,
)
from segblocks.zoo.mask2former.predictor import Mask2FormerPredictor

if TYPE_CHECKING:
    from segblocks.zoo.mask2former.model import Mask2Former

__all__ = ["LinkedVideo", "Mask2FormerVideoPredictor"]


@dataclass
class LinkedVideo:
    """A video's linked query predictions.

    Attributes:
        mask_logits: ``[Q, T, h, w]`` tube logits at the model's mask resolution (of the padded frame).
        class_logits: ``[Q, C + 1]`` class log-probabilities averaged over the windows.
        padded: ``(H', W')`` of the padded frames; frame_size: ``(H, W)`` of the frames.
    """

    mask_logits: Tensor
    class_logits: Tensor
    padded: tuple[int, int]
    frame_size: tuple[int, int]


class Mask2FormerVideoPredictor(Mask2FormerPredictor):
    """Video results of a :class:`Mask2Former`: per-frame panoptic/semantic maps and instance tubes.

    Args:
        model: the model (put it in eval mode).
        window: frames per window of a long video (OMG-Seg: 5 on YouTube-VIS, 2 on VIPSeg).
        top_k: instance tubes kept per video (YouTube-VIS: 10).
        object_mask_threshold: panoptic: minimum class probability of a kept query.
        overlap_threshold: panoptic: minimum kept fraction of a query's tube.
    """

    def __init__(
        self,
        model: Mask2Former,
        *,
        window: int = 2,
        top_k: int = 10,
        object_mask_threshold: float | None = None,
        overlap_threshold: float | None = None,
    ) -> None:
        super().__init__(
            model,
            object_mask_threshold=object_mask_threshold,
            overlap_threshold=overlap_threshold,
            top_k=top_k,
        )
        if window < 1:
            raise ValueError(f"window: expected at least one frame a window, got {window}")
        self.window = window

    @staticmethod
    def _check_frames(frames: Tensor) -> None:
        check_ndim("frames", frames, 4, "[T, 3, H, W]")
        check_dtype("frames", frames, "floating")
        if frames.shape[0] == 0:
            raise ValueError(
                f"frames: expected a video of at least one frame, got shape {tuple(frames.shape)}"
            )

    @torch.no_grad()
    def link(self, frames: Tensor | Iterable[Tensor]) -> LinkedVideo:
        """Run the model window by window over a video and link the windows' queries.

        Args:
            frames: ``[T, 3, H, W]`` RGB in ``[0, 1]``, or any iterable of ``[3, H, W]`` frames (a
                reader that decodes them one by one: then no more than a window is ever in memory).

        Raises:
            ValueError, TypeError: on a video of no frames, bad frames, or frames of different sizes.
        """
        if isinstance(frames, Tensor):
            self._check_frames(frames)
        model = self.model
        linker = TubeLinker()
        size: tuple[int, int] | None = None
        for window in _windows(frames, self.window):
            if size is None:
                size = (int(window.shape[-2]), int(window.shape[-1]))
            elif tuple(window.shape[-2:]) != size:
                raise ValueError(
                    f"frames: every frame must be {size[0]}x{size[1]}, got {tuple(window.shape[-2:])}"
                )
            out = model(window[None])
            assert out.class_logits is not None and out.query_embeddings is not None
            linker.add(out.mask_logits[0], out.class_logits[0], out.query_embeddings[0])
        if size is None:
            raise ValueError("frames: expected a video of at least one frame, got none")
        masks, classes = linker.result()
        h, w = size
        padded = padded_size(h, w, model.size_divisibility) if model.pad_inputs else (h, w)
        return LinkedVideo(mask_logits=masks, class_logits=classes, padded=padded, frame_size=(h, w))

    def postprocess(self, linked: LinkedVideo, tasks: Sequence[str] = TASKS) -> ClipPrediction:
        """Per-frame panoptic / semantic maps and instance tubes of a linked video.

        Args:
            linked: from :meth:`link`.
            tasks: any of ``"panoptic"``, ``"semantic"``, ``"instance"``.
        """
        return postprocess_clips(
            linked.mask_logits[None],
            linked.class_logits[None],
            self.model.is_thing,
            padded=linked.padded,
            image_sizes=[linked.frame_size],
            tasks=tasks,
            object_mask_threshold=self.object_mask_threshold,
            overlap_threshold=self.overlap_threshold,
            top_k=self.top_k,
        )[0]

    def predict_video(
        self, frames: Tensor | Iterable[Tensor], *, tasks: Sequence[str] = TASKS
    ) -> ClipPrediction:
        """Results of a video of any length, run in windows (ids and classes hold over the video).

        Args:
            frames: ``[T, 3, H, W]`` RGB in ``[0, 1]``, or an iterable of ``[3, H, W]`` frames.
            tasks: any of ``"panoptic"``, ``"semantic"``, ``"instance"``.

        Raises:
            ValueError, TypeError: on an unknown task, a video of no frames or bad frames.
        """
        check_tasks(tasks)
        return self.postprocess(self.link(frames), tasks)

    def follow_objects(
        self, frames: Tensor, first_masks: Tensor, *, linked: LinkedVideo | None = None
    ) -> Tensor:
        """Video object segmentation: follow the objects given by their first-frame masks.

        Each object takes the query whose first-frame mask overlaps it best (Hungarian on IoU); the
        windows' linking carries that query through the video; a pixel belongs to the object whose
        query has the highest positive logit there.

        Args:
            frames: ``[T, 3, H, W]`` RGB in ``[0, 1]``.
            first_masks: ``[K, H, W]`` bool masks of the objects in frame 0.
            linked: the video's :meth:`link` result, when already computed.

        Returns:
            ``[K, T, H, W]`` bool masks, non-overlapping.

        Raises:
            ValueError: on masks of another size than the frames, or no / empty objects.
        """
        self._check_frames(frames)
        check_ndim("first_masks", first_masks, 3, "[K, H, W]")
        if tuple(first_masks.shape[-2:]) != tuple(frames.shape[-2:]):
            raise ValueError(
                f"first_masks: expected the frames' size {tuple(frames.shape[-2:])}, got {tuple(first_masks.shape[-2:])}"
            )
        linked = self.link(frames) if linked is None else linked
        q, t = linked.mask_logits.shape[:2]
        full = unpad_mask_logits(linked.mask_logits.flatten(0, 1), linked.padded, linked.frame_size)
        tubes = full.reshape(q, t, *linked.frame_size)
        assignment = assign_objects(first_masks.to(tubes.device), tubes[:, 0])
        return object_masks(tubes, assignment)


def _windows(frames: Tensor | Iterable[Tensor], window: int) -> Iterator[Tensor]:
    """``[T_w, 3, H, W]`` windows of a video given as a tensor or as an iterable of ``[3, H, W]`` frames."""
    if isinstance(frames, Tensor):
        for s in clip_windows(int(frames.shape[0]), window):
            yield frames[s]
        return
    chunk: list[Tensor] = []
    for i, frame in enumerate(frames):
        if not isinstance(frame, Tensor) or frame.ndim != 3 or frame.shape[0] != 3:
            raise ValueError(
                f"frames[{i}]: expected a [3, H, W] tensor, got {getattr(frame, 'shape', type(frame))}"
            )
        chunk.append(frame)
        if len(chunk) == window:
            yield torch.stack(chunk)
            chunk = []
    if chunk:
        yield torch.stack(chunk)
