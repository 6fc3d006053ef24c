"""OMG-Seg's vocabulary: class names, thing flags, frozen-CLIP text embeddings, and which classes were trained.

The open-vocabulary ensemble gives the frozen CLIP a smaller say (``alpha``) on classes the model was
trained on than on the others (``beta``). OMG-Seg decides "trained on" by word matching; our rule,
:func:`in_training_vocabulary`, states it exactly: a class is *in the training vocabulary* when one
of its synonyms equals a synonym of a training class, after splitting names on ``,``, ``/`` and the
word ``or`` and comparing lower-cased, space-trimmed words (``"person, people"`` and ``"People"``
match; ``"red circle"`` and ``"circle"`` do not).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from segblocks._validation import check_bool_flags, check_vocabulary
from segblocks.zoo.common.vocabulary import ClassVocabulary

__all__ = [
    "NEGATIVES",
    "OMGVocabulary",
    "encode_vocabulary",
    "in_training_vocabulary",
    "negative_prototypes",
    "synonyms",
]

#: Kinds of training negatives of the classifier (:func:`negative_prototypes`).
NEGATIVES = ("none", "opposite", "sphere")

_SPLIT = re.compile(r",|/|\bor\b|_or_")


def synonyms(name: str) -> frozenset[str]:
    """The synonyms of one class name: split on ``,``, ``/``, ``or``; lower-cased and trimmed.

    Args:
        name: a class name such as ``"person, people"`` or ``"sofa/couch"``.
    """
    return frozenset(" ".join(s.split()).lower() for s in _SPLIT.split(name) if s.strip())


def in_training_vocabulary(class_names: Sequence[str], training_names: Sequence[str]) -> Tensor:
    """``[C]`` bool: True where a class shares a synonym with a class of the training vocabulary.

    Args:
        class_names: the ``C`` classes to flag.
        training_names: the classes the model was trained on.

    Returns:
        ``[C]`` bool on the CPU.
    """
    known: set[str] = set()
    for name in training_names:
        known |= synonyms(name)
    return torch.tensor([bool(synonyms(n) & known) for n in class_names], dtype=torch.bool)


@dataclass(frozen=True, eq=False)  # tensors: compare by identity
class OMGVocabulary(ClassVocabulary):
    """The classes an OMG-Seg names.

    Attributes:
        names: ``C`` class names (``"person, people"`` lists synonyms).
        is_thing: ``C`` flags, True for countable things.
        text_embeddings: ``[C, E]`` unit-norm frozen-CLIP text embeddings.
        seen: ``[C]`` bool, :func:`in_training_vocabulary` of the names.
    """


def encode_vocabulary(
    clip: Any,
    class_names: Sequence[str],
    is_thing: Sequence[bool] | None = None,
    *,
    training_names: Sequence[str] | None = None,
    meta: bool = False,
) -> OMGVocabulary:
    """Encode class names with the frozen CLIP text encoder (ViLD-style templates, synonyms averaged).

    Args:
        clip: an :class:`~segblocks.backbones.OpenCLIPBackbone` (``encode_text``, ``embed_dim``).
        class_names: ``C`` class names.
        is_thing: ``C`` flags (default: all things).
        training_names: the training vocabulary (default: ``class_names``, every class trained).
        meta: build placeholder embeddings on the meta device (no text encoder runs).

    Returns:
        The :class:`OMGVocabulary`.

    Raises:
        ValueError: on an empty vocabulary, empty or repeated names, or flags of the wrong length.
        TypeError: on a single string instead of a list of names.
    """
    names = check_vocabulary("vocabulary", class_names)
    flags = [True] * len(names) if is_thing is None else check_bool_flags("is_thing", is_thing, len(names))
    if meta:
        text = torch.empty(len(names), int(clip.embed_dim), device="meta")
    else:
        text = clip.encode_text(names).detach()
    seen = in_training_vocabulary(names, names if training_names is None else training_names)
    return OMGVocabulary(
        names=tuple(names), is_thing=tuple(flags), text_embeddings=text, seen=seen.to(text.device)
    )


def negative_prototypes(text_embeddings: Tensor, kind: str, *, count: int = 64, seed: int = 0) -> Tensor:
    """Prototypes the classifier's training cross-entropy treats as wrong for every query.

    The classifier learns against the training names only, and its void prototype is a zero vector,
    so "no training class" is cheapest to say by pointing away from all training names at once: along
    ``-mean(training names)``. Where unseen names lie in that direction (a text space whose names sum
    to about zero), every unmatched query then names an unseen class at test time. Negatives are extra
    columns of the training cross-entropy that are never a target, so the classifier is penalised for
    pointing at them; none of them is a test class name.

    * ``"none"``: no negatives (the official classifier).
    * ``"opposite"``: the negated training names ``-t_c``, one per training class: "not any training
      class" can no longer be said by pointing away from the names (uses the training names only).
    * ``"sphere"``: ``count`` random unit directions (a fixed generator of ``seed``).

    Args:
        text_embeddings: ``[C, E]`` training-vocabulary text embeddings.
        kind: one of :data:`NEGATIVES`.
        count: directions of ``"sphere"``.
        seed: generator seed of ``"sphere"``.

    Returns:
        ``[K, E]`` unit vectors on the text embeddings' device and dtype (``K = 0`` for ``"none"``).

    Raises:
        ValueError: on an unknown kind, a non-positive count, or text embeddings that are not ``[C, E]``.
    """
    if kind not in NEGATIVES:
        raise ValueError(f"kind: expected one of {NEGATIVES}, got {kind!r}")
    if text_embeddings.ndim != 2:
        raise ValueError(f"text_embeddings: expected [C, E], got shape {tuple(text_embeddings.shape)}")
    dim = int(text_embeddings.shape[1])
    if kind == "none":
        return text_embeddings.new_zeros(0, dim)
    if kind == "opposite":
        return -torch.nn.functional.normalize(text_embeddings, dim=-1)
    if count <= 0:
        raise ValueError(f"count: expected a positive number of directions, got {count}")
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(count, dim, generator=generator)
    directions = torch.nn.functional.normalize(directions, dim=-1)
    return directions.to(device=text_embeddings.device, dtype=text_embeddings.dtype)
