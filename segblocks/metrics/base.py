"""The streaming-metric contract shared by every metric in :mod:`segblocks.metrics`.

A metric is fed one image (or clip) at a time with ``update``, summarised with ``compute`` at the
end, and can be combined with metrics that saw other shards of the data: ``merge`` folds in another
metric of the same configuration, ``sync`` does the same across the processes of a
``torch.distributed`` group. The state of every metric is a small picklable dictionary of numpy
arrays and Python scalars, so it travels through ``all_gather_object`` unchanged.
"""

from __future__ import annotations

import abc
import logging
from typing import Any, Generic, TypeVar

import torch.distributed as dist

__all__ = ["Metric"]

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")
MetricT = TypeVar("MetricT", bound="Metric[Any]")


class Metric(abc.ABC, Generic[ResultT]):
    """Base class of streaming metrics: ``update`` per sample, ``compute`` at the end, mergeable.

    Subclasses implement :meth:`reset`, :meth:`get_state`, :meth:`merge_state`, :meth:`compute`,
    :meth:`config` and an ``update`` method with the inputs natural to the metric.
    """

    def __init__(self) -> None:
        self.reset()

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget every update (the metric is then as if just constructed)."""

    @abc.abstractmethod
    def config(self) -> tuple[Any, ...]:
        """Return the settings that must agree for two metrics to be merged."""

    @abc.abstractmethod
    def get_state(self) -> dict[str, Any]:
        """Return the accumulated state as a picklable dictionary (numpy arrays, Python scalars)."""

    @abc.abstractmethod
    def merge_state(self, state: dict[str, Any]) -> None:
        """Fold a state returned by :meth:`get_state` of a same-configured metric into this one."""

    @abc.abstractmethod
    def compute(self) -> ResultT:
        """Summarise every update so far (does not reset)."""

    def merge(self: MetricT, other: MetricT) -> MetricT:
        """Fold ``other``'s updates into this metric and return ``self``.

        Args:
            other: a metric of the same class and configuration.

        Returns:
            ``self``, now holding the updates of both metrics.

        Raises:
            TypeError: ``other`` is not of the same class.
            ValueError: the two metrics are configured differently.
        """
        if type(other) is not type(self):
            raise TypeError(f"other: expected a {type(self).__name__}, got {type(other).__name__}")
        if other.config() != self.config():
            raise ValueError(
                f"other: cannot merge metrics with different settings: {self.config()} vs {other.config()}"
            )
        self.merge_state(other.get_state())
        return self

    def sync(self, group: Any = None) -> None:
        """Gather and merge the states of every process of a ``torch.distributed`` group, in place.

        After the call every process holds the updates of all processes. Without an initialised
        process group this is a no-op, so single-process code can call it unconditionally.

        Args:
            group: the process group (``None`` for the default group).
        """
        if not (dist.is_available() and dist.is_initialized()):
            return
        world = dist.get_world_size(group)
        states: list[Any] = [None] * world
        dist.all_gather_object(states, (self.config(), self.get_state()), group=group)
        for rank, (cfg, _) in enumerate(states):
            if cfg != self.config():
                raise ValueError(f"sync: rank {rank} has different metric settings: {cfg} vs {self.config()}")
        self.reset()
        for _, state in states:
            self.merge_state(state)
        logger.debug("synced %s across %d processes", type(self).__name__, world)
