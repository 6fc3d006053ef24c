"""The fields and checks every zoo model's vocabulary shares: names, thing flags, text embeddings, seen flags."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from segblocks._validation import check_dtype, check_shape

__all__ = ["ClassVocabulary"]


@dataclass(frozen=True, eq=False)  # tensors: compare by identity, not elementwise
class ClassVocabulary:
    """``C`` classes for open-vocabulary inference; zoo models subclass it with their own builders.

    Attributes:
        names: ``C`` class names (a name may list synonyms: ``"person, people"``).
        is_thing: ``C`` flags, True for countable things.
        text_embeddings: ``[C, E]`` unit-norm frozen-CLIP text embeddings.
        seen: ``[C]`` bool, True for classes of the training vocabulary.

    Raises:
        ValueError: on no class, a flag count other than ``C``, or a tensor of the wrong shape or dtype.
    """

    names: tuple[str, ...]
    is_thing: tuple[bool, ...]
    text_embeddings: Tensor
    seen: Tensor

    def __post_init__(self) -> None:
        c = len(self.names)
        if c == 0 or len(self.is_thing) != c:
            raise ValueError(
                f"names, is_thing: expected at least one class and one flag per class, got {c} names and "
                f"{len(self.is_thing)} flags"
            )
        check_shape("text_embeddings", self.text_embeddings, (c, None), f"[C={c}, E]")
        check_dtype("text_embeddings", self.text_embeddings, "floating")
        check_shape("seen", self.seen, (c,), f"[C={c}]")
        check_dtype("seen", self.seen, "bool")

    def __len__(self) -> int:
        return len(self.names)
