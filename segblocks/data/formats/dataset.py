"""A torch ``Dataset`` of records, held in memory or loaded lazily from files."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from torch.utils.data import Dataset

from segblocks.data.formats.records import CategoryRecord

__all__ = ["RecordDataset"]

R = TypeVar("R")


class RecordDataset(Dataset[R], Generic[R]):
    """A sequence of records with the dataset's categories.

    Readers build it with a ``loader`` so that images are decoded only when an item is read (and
    file problems surface then, naming the file); exporters build it from records in memory.
    Two datasets compare equal when their categories and every record are equal.

    Example:
        >>> ds = RecordDataset(records=[], categories=[CategoryRecord(0, "cat", True)])
        >>> len(ds)
        0

    Args:
        records: the records, in order (give this or ``loader`` and ``length``).
        loader: ``index -> record``, called on each access.
        length: number of records behind ``loader``.
        categories: the dataset's categories.
    """

    def __init__(
        self,
        *,
        records: Sequence[R] | None = None,
        loader: Callable[[int], R] | None = None,
        length: int | None = None,
        categories: Sequence[CategoryRecord] = (),
    ) -> None:
        if (records is None) == (loader is None):
            raise ValueError("records, loader: give exactly one of them")
        if loader is not None and (length is None or length < 0):
            raise ValueError(f"length: a loader needs a non-negative length, got {length}")
        self._records = list(records) if records is not None else None
        self._loader = loader
        self._length = len(self._records) if self._records is not None else int(length or 0)
        ids = [c.id for c in categories]
        if len(set(ids)) != len(ids):
            raise ValueError(f"categories: repeated ids in {ids}")
        self.categories: list[CategoryRecord] = list(categories)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> R:
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"index: expected an int, got {type(index).__name__}")
        if not -self._length <= index < self._length:
            raise IndexError(f"index: {index} is out of range for {self._length} records")
        index %= max(self._length, 1)
        if self._records is not None:
            return self._records[index]
        assert self._loader is not None
        return self._loader(index)

    def __iter__(self) -> Iterator[R]:
        for i in range(self._length):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordDataset):
            return NotImplemented
        return (
            self.categories == other.categories
            and len(self) == len(other)
            and all(a == b for a, b in zip(self, other))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecordDataset({self._length} records, {len(self.categories)} categories)"
