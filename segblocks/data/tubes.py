"""Per-frame ground truth of a clip to mask tubes: one target per track, empty where the track is absent."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from segblocks.structures import Targets

__all__ = ["tubes_from_frames"]


def tubes_from_frames(frames: Sequence[Targets]) -> Targets:
    """Stack the targets of a clip's frames into tubes, one per track id.

    Args:
        frames: ``T`` :class:`~segblocks.structures.Targets` with ``[N_t, H, W]`` masks whose
            ``instance_ids`` are track ids (the same object has the same id in every frame).

    Returns:
        :class:`~segblocks.structures.Targets` with ``[N, T, H, W]`` masks, ``N`` the distinct track
        ids in id order; a track's mask is empty in the frames it is absent from (``.present``).

    Raises:
        ValueError: on no frames, frames of different sizes, or a track whose class or thing flag
            changes between frames.
        TypeError: on a frame that is not :class:`Targets`.
    """
    if len(frames) == 0:
        raise ValueError("frames: expected a clip of at least one frame, got 0 frames")
    for t, f in enumerate(frames):
        if not isinstance(f, Targets):
            raise TypeError(f"frames[{t}]: expected Targets, got {type(f).__name__}")
        if f.masks.ndim != 3:
            raise ValueError(f"frames[{t}]: expected image masks [N, H, W], got {tuple(f.masks.shape)}")
        if f.masks.shape[-2:] != frames[0].masks.shape[-2:]:
            raise ValueError(
                f"frames[{t}]: masks of size {tuple(f.masks.shape[-2:])}, frame 0 has {tuple(frames[0].masks.shape[-2:])}"
            )
    tracks: dict[int, tuple[int, bool]] = {}
    for t, f in enumerate(frames):
        assert f.instance_ids is not None and f.is_thing is not None
        for tid, label, thing in zip(f.instance_ids.tolist(), f.labels.tolist(), f.is_thing.tolist()):
            if tracks.setdefault(tid, (label, thing)) != (label, thing):
                raise ValueError(
                    f"frames[{t}]: track {tid} is class {label} (thing={thing}) here but "
                    f"{tracks[tid]} in an earlier frame; a track id names one object"
                )
    ids = sorted(tracks)
    row = {tid: i for i, tid in enumerate(ids)}
    h, w = frames[0].masks.shape[-2:]
    masks = torch.zeros(len(ids), len(frames), h, w, dtype=torch.bool, device=frames[0].masks.device)
    for t, f in enumerate(frames):
        assert f.instance_ids is not None
        for j, tid in enumerate(f.instance_ids.tolist()):
            masks[row[tid], t] = f.masks[j]
    return Targets(
        masks=masks,
        labels=torch.tensor([tracks[i][0] for i in ids], dtype=torch.int64),
        instance_ids=torch.tensor(ids, dtype=torch.int64),
        is_thing=torch.tensor([tracks[i][1] for i in ids], dtype=torch.bool),
    )
