"""The vocabulary fields and checks that PosSAM's and OMG-Seg's vocabularies share."""

from __future__ import annotations

import pytest
import torch

from segblocks.zoo.common.vocabulary import ClassVocabulary
from segblocks.zoo.omg_seg.vocabulary import OMGVocabulary
from segblocks.zoo.possam.vocabulary import Vocabulary


@pytest.mark.parametrize("cls", [ClassVocabulary, Vocabulary, OMGVocabulary])
def test_every_vocabulary_checks_its_fields(cls: type[ClassVocabulary]) -> None:
    emb, seen = torch.randn(2, 4), torch.tensor([True, False])
    assert len(cls(("a", "b"), (True, False), emb, seen)) == 2
    with pytest.raises(ValueError, match="names, is_thing: expected at least one class"):
        cls((), (), emb[:0], seen[:0])
    with pytest.raises(ValueError, match="one flag per class, got 2 names and 1 flags"):
        cls(("a", "b"), (True,), emb, seen)
    with pytest.raises(ValueError, match="text_embeddings: expected shape"):
        cls(("a", "b"), (True, False), torch.randn(3, 4), seen)
    with pytest.raises(TypeError, match="text_embeddings: expected a floating dtype"):
        cls(("a", "b"), (True, False), torch.ones(2, 4, dtype=torch.int64), seen)
    with pytest.raises(TypeError, match="seen: expected a bool dtype"):
        cls(("a", "b"), (True, False), emb, torch.tensor([1, 0]))
