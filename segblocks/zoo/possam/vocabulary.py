"""A vocabulary for open-vocabulary inference: class names, thing flags, CLIP text embeddings, seen flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from segblocks._validation import check_bool_flags, check_vocabulary
from segblocks.zoo.common.vocabulary import ClassVocabulary

__all__ = ["Vocabulary", "encode_vocabulary", "seen_flags"]


@dataclass(frozen=True, eq=False)  # tensors: compare by identity, not elementwise
class Vocabulary(ClassVocabulary):
    """The classes a PosSAM segments.

    Attributes:
        names: ``C`` class names (a name may list synonyms: ``"person, people"``).
        is_thing: ``C`` flags, True for countable things (stuff segments of one class are merged).
        text_embeddings: ``[C, E]`` CLIP text embeddings (unit norm).
        seen: ``[C]`` bool, True for classes of the training vocabulary (the ensembles' alpha/beta rule).
    """


def _synonyms(name: str) -> set[str]:
    return {s.strip().lower() for s in name.split(",") if s.strip()}


def seen_flags(class_names: Sequence[str], seen_names: Sequence[str]) -> Tensor:
    """``[C]`` bool: a class is seen when one of its synonyms names a training class (case-insensitive).

    Args:
        class_names: the ``C`` classes to flag.
        seen_names: the training vocabulary.

    Returns:
        ``[C]`` bool on the CPU.
    """
    known: set[str] = set()
    for name in seen_names:
        known |= _synonyms(name)
    return torch.tensor([bool(_synonyms(n) & known) for n in class_names], dtype=torch.bool)


def _check_names(class_names: Sequence[str], is_thing: Sequence[bool] | None) -> tuple[list[str], list[bool]]:
    names = check_vocabulary("class_names", class_names)
    flags = [True] * len(names) if is_thing is None else check_bool_flags("is_thing", is_thing, len(names))
    return names, flags


def encode_vocabulary(
    clip: Any,
    class_names: Sequence[str],
    is_thing: Sequence[bool] | None = None,
    *,
    seen_names: Sequence[str] | None = None,
) -> Vocabulary:
    """Encode class names with a CLIP backbone's text encoder.

    Args:
        clip: an object with ``encode_text(names) -> [C, E]`` (an
            :class:`~segblocks.backbones.OpenCLIPBackbone`; cached when frozen).
        class_names: ``C`` class names.
        is_thing: ``C`` flags (default: every class a thing).
        seen_names: the training vocabulary (default: ``class_names``, i.e. every class seen).

    Returns:
        The :class:`Vocabulary`.

    Raises:
        ValueError: on an empty vocabulary, empty or repeated names or flags of the wrong length.
        TypeError: when ``class_names`` is a single string or a flag is not a bool.
    """
    names, flags = _check_names(class_names, is_thing)
    text = clip.encode_text(names).detach()
    seen = seen_flags(names, names if seen_names is None else seen_names)
    return Vocabulary(
        names=tuple(names), is_thing=tuple(flags), text_embeddings=text, seen=seen.to(text.device)
    )


def placeholder_vocabulary(
    class_names: Sequence[str], is_thing: Sequence[bool] | None, embed_dim: int, device: torch.device | str
) -> Vocabulary:
    """A vocabulary with uninitialised embeddings (for builds on the meta device, which cannot run text).

    Args:
        class_names: ``C`` class names.
        is_thing: ``C`` flags (default: all things).
        embed_dim: ``E``.
        device: where the embeddings live.

    Returns:
        The :class:`Vocabulary` (every class seen).
    """
    names, flags = _check_names(class_names, is_thing)
    text = torch.empty(len(names), embed_dim, device=device)
    seen = torch.ones(len(names), dtype=torch.bool, device=device)
    return Vocabulary(names=tuple(names), is_thing=tuple(flags), text_embeddings=text, seen=seen)
