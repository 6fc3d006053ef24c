"""Query groups: the queries a mask decoder refines, and who may attend to whom in self-attention.

Every Mask2Former-family model feeds the same masked-attention decoder with one or several groups of
queries: Mask2Former's learned semantic queries; OMG-Seg's location queries (each attends only to
itself); Uni-OVSeg's prompt tokens (attend only within their own prompt); SEEM's object, grounding,
spatial and memory queries with their own wiring. A :class:`QueryGroup` carries the content and
positional embeddings of one group and a :class:`SelfAttentionRule` that says which keys each of its
queries may attend to. :func:`build_self_attention_mask` turns the rules of all groups into one
boolean mask in the convention of :func:`segblocks.ops.masked_attention` (True = may attend).

A rule is a list of :class:`AttendTo` clauses, read from the point of view of the *querying* group:

* ``AttendTo()`` -- every (valid) query of the querying group itself;
* ``AttendTo("text")`` -- every query of the group named ``"text"``;
* ``AttendTo("memory", same_segment=True)`` -- the queries of ``"memory"`` whose segment id equals
  the querying query's (segment ids group queries by prompt, for example).

A query always attends to itself, so no row of the mask is ever empty. Keys marked invalid
(padding, ``QueryGroup.valid``) are hidden from every other query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from segblocks._validation import check_dtype, check_ndim, check_shape

__all__ = [
    "AttendTo",
    "ConcatenatedQueries",
    "QueryGroup",
    "SelfAttentionRule",
    "build_self_attention_mask",
    "check_query_groups",
    "concat_query_groups",
]


@dataclass(frozen=True)
class AttendTo:
    """One clause of a self-attention rule: attend to (part of) one group.

    Attributes:
        group: name of the key group; ``None`` means the querying group itself.
        same_segment: only keys whose segment id equals the querying query's (both groups then
            need ``segment_ids``).
    """

    group: str | None = None
    same_segment: bool = False


@dataclass(frozen=True)
class SelfAttentionRule:
    """Which keys the queries of one group may attend to in self-attention.

    Attributes:
        attend_to: clauses, OR-ed together; an empty tuple means "only itself".
        all_groups: attend to every valid query of every group (the clauses are then ignored).
    """

    attend_to: tuple[AttendTo, ...] = ()
    all_groups: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.attend_to, tuple) or not all(isinstance(c, AttendTo) for c in self.attend_to):
            raise TypeError(f"attend_to: expected a tuple of AttendTo clauses, got {self.attend_to!r}")

    @classmethod
    def everything(cls) -> SelfAttentionRule:
        """Attend to every query of every group (Mask2Former's semantic queries)."""
        return cls(all_groups=True)

    @classmethod
    def own_group(cls) -> SelfAttentionRule:
        """Attend to the queries of the own group only (SEEM's object queries)."""
        return cls(attend_to=(AttendTo(),))

    @classmethod
    def only_self(cls) -> SelfAttentionRule:
        """Attend to nothing but itself (OMG-Seg's location queries)."""
        return cls()

    @classmethod
    def same_segment(cls, *other_groups: str) -> SelfAttentionRule:
        """Attend to the queries with the same segment id in the own group and in ``other_groups``.

        Uni-OVSeg's prompt tokens (``same_segment()``: within their prompt) and SEEM's spatial queries
        (``same_segment("spatial_tokens", "memory")``) follow this rule.
        """
        clauses = (AttendTo(same_segment=True), *(AttendTo(g, same_segment=True) for g in other_groups))
        return cls(attend_to=clauses)


@dataclass
class QueryGroup:
    """One group of decoder queries.

    Attributes:
        name: unique name of the group within one decoder call (rules refer to groups by name).
        content: ``[B, Q, D]`` content embeddings (the part the decoder updates).
        positional: ``[B, Q, D]`` positional embeddings (added to queries and keys of attention).
        self_attention: who these queries may attend to in self-attention.
        cross_attends: whether these queries cross-attend to the image features (SEEM's prompt tokens
            do not; their content is left unchanged by cross-attention).
        segment_ids: ``[B, Q]`` integer ids grouping queries into segments (prompts), needed by
            ``same_segment`` clauses that involve this group.
        valid: ``[B, Q]`` bool, False for padding queries, which no other query attends to.
        cross_mask: ``[B, Q, H, W]`` (or ``[B, Q, T, H, W]`` for clips) bool, any resolution: the
            region each query cross-attends to in the first layer (True = may attend), instead of
            the mask predicted from its initial content -- a box, a stroke, a previous-round mask.
            A query whose region misses every pixel of a level attends everywhere there.
        fixed_cross_mask: keep ``cross_mask`` for every layer instead of following the queries' own
            predictions (SEEM's memory prompts). Needs ``cross_mask``.
        union_by_segment: queries with the same segment id cross-attend under the union of their
            predicted masks (Uni-OVSeg: a prompt's tokens share the union of its masks). Needs
            ``segment_ids``.
        union_from: ``[B, Q]`` bool, which queries' masks form their segment's union (Uni-OVSeg: the
            output tokens, not the corner tokens); None = every query of the segment.
        level_content: ``L`` tensors ``[B, Q, D]``, one per feature level: before each layer the
            group's content is reset to that of the level the layer reads (SEEM's visual-prompt
            tokens, point-sampled anew from every level). Usually with ``cross_attends=False``.
        dense_prompt: ``[B, S, C, H, W]`` per-segment features added to the mask features for this
            group's masks (images only; ``C`` and ``H, W`` those of the mask features): the group's
            ``Q = S * k`` queries are ``S`` runs of ``k`` consecutive queries, run ``s`` reading
            ``mask_features + dense_prompt[:, s]`` -- a dense prompt, as SAM adds its mask prompt
            to the image embedding (SEEM's world scale: the previous round's mask).
    """

    name: str
    content: Tensor
    positional: Tensor
    self_attention: SelfAttentionRule = field(default_factory=SelfAttentionRule.everything)
    cross_attends: bool = True
    segment_ids: Tensor | None = None
    valid: Tensor | None = None
    cross_mask: Tensor | None = None
    fixed_cross_mask: bool = False
    union_by_segment: bool = False
    union_from: Tensor | None = None
    level_content: Sequence[Tensor] | None = None
    dense_prompt: Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty string, got {self.name!r}")
        check_ndim(f"{self.name}.content", self.content, 3, "[B, Q, D]")
        check_dtype(f"{self.name}.content", self.content, "floating")
        b, q, d = self.content.shape
        check_shape(f"{self.name}.positional", self.positional, (b, q, d), f"[B={b}, Q={q}, D={d}]")
        check_dtype(f"{self.name}.positional", self.positional, "floating")
        if not isinstance(self.self_attention, SelfAttentionRule):
            raise TypeError(
                f"{self.name}.self_attention: expected a SelfAttentionRule, got {type(self.self_attention).__name__}"
            )
        if self.segment_ids is not None:
            check_shape(f"{self.name}.segment_ids", self.segment_ids, (b, q), f"[B={b}, Q={q}]")
            check_dtype(f"{self.name}.segment_ids", self.segment_ids, "integer")
        if self.valid is not None:
            check_shape(f"{self.name}.valid", self.valid, (b, q), f"[B={b}, Q={q}]")
            check_dtype(f"{self.name}.valid", self.valid, "bool")
        if self.cross_mask is not None:
            if self.cross_mask.ndim not in (4, 5) or tuple(self.cross_mask.shape[:2]) != (b, q):
                raise ValueError(
                    f"{self.name}.cross_mask: expected [B={b}, Q={q}, H, W] or [B={b}, Q={q}, T, H, W], "
                    f"got shape {tuple(self.cross_mask.shape)}"
                )
            check_dtype(f"{self.name}.cross_mask", self.cross_mask, "bool")
        if self.fixed_cross_mask and self.cross_mask is None:
            raise ValueError(f"{self.name}.fixed_cross_mask: a fixed cross-attention mask needs cross_mask")
        if self.union_by_segment and self.segment_ids is None:
            raise ValueError(
                f"{self.name}.union_by_segment: sharing masks within a segment needs segment_ids"
            )
        if self.union_from is not None:
            if not self.union_by_segment:
                raise ValueError(f"{self.name}.union_from: only meaningful with union_by_segment=True")
            check_shape(f"{self.name}.union_from", self.union_from, (b, q), f"[B={b}, Q={q}]")
            check_dtype(f"{self.name}.union_from", self.union_from, "bool")
        if self.level_content is not None:
            if len(self.level_content) == 0:
                raise ValueError(
                    f"{self.name}.level_content: expected one [B, Q, D] tensor per level, got none"
                )
            for i, level in enumerate(self.level_content):
                check_shape(f"{self.name}.level_content[{i}]", level, (b, q, d), f"[B={b}, Q={q}, D={d}]")
                check_dtype(f"{self.name}.level_content[{i}]", level, "floating")
        if self.dense_prompt is not None:
            check_ndim(f"{self.name}.dense_prompt", self.dense_prompt, 5, "[B, S, C, H, W]")
            check_dtype(f"{self.name}.dense_prompt", self.dense_prompt, "floating")
            segments = int(self.dense_prompt.shape[1])
            if self.dense_prompt.shape[0] != b or segments == 0 or q % segments:
                raise ValueError(
                    f"{self.name}.dense_prompt: expected [B={b}, S, C, H, W] with S dividing Q={q}, "
                    f"got shape {tuple(self.dense_prompt.shape)}"
                )

    @property
    def num_queries(self) -> int:
        """``Q``, the number of queries of the group."""
        return int(self.content.shape[1])


@dataclass
class ConcatenatedQueries:
    """All groups laid end to end along the query axis.

    Attributes:
        content: ``[B, Qt, D]`` content of every group.
        positional: ``[B, Qt, D]`` positional embeddings of every group.
        slices: ``{name: slice}``, where each group lives along ``Qt``.
        cross_attends: ``[Qt]`` bool, or None when every query cross-attends.
    """

    content: Tensor
    positional: Tensor
    slices: dict[str, slice]
    cross_attends: Tensor | None


def check_query_groups(groups: Sequence[QueryGroup]) -> None:
    """Validate a decoder call's groups together (each group validated itself when it was made).

    Raises:
        ValueError: on an empty list, duplicate names, groups of different batch size, width or
            device, a rule clause naming an unknown group, or a ``same_segment`` clause between groups
            without ``segment_ids``.
        TypeError: on an element that is not a :class:`QueryGroup`.
    """
    if len(groups) == 0:
        raise ValueError("groups: expected at least one QueryGroup, got none")
    for i, g in enumerate(groups):
        if not isinstance(g, QueryGroup):
            raise TypeError(f"groups[{i}]: expected a QueryGroup, got {type(g).__name__}")
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ValueError(f"groups: group names must be unique, got {names}")
    first = groups[0]
    b, d = first.content.shape[0], first.content.shape[2]
    for g in groups[1:]:
        if g.content.shape[0] != b or g.content.shape[2] != d:
            raise ValueError(
                f"groups: every group needs batch {b} and width {d} (those of {first.name!r}), "
                f"got {tuple(g.content.shape)} for {g.name!r}"
            )
        if g.content.device != first.content.device:
            raise ValueError(
                f"groups: {g.name!r} is on {g.content.device}, {first.name!r} on {first.content.device}"
            )
    by_name = {g.name: g for g in groups}
    for g in groups:
        for clause in g.self_attention.attend_to:
            key_name = g.name if clause.group is None else clause.group
            if key_name not in by_name:
                raise ValueError(
                    f"{g.name}.self_attention: clause names unknown group {key_name!r}; "
                    f"groups are {list(by_name)}"
                )
            if clause.same_segment and (g.segment_ids is None or by_name[key_name].segment_ids is None):
                raise ValueError(
                    f"{g.name}.self_attention: a same_segment clause between {g.name!r} and {key_name!r} "
                    "needs segment_ids on both groups"
                )


def concat_query_groups(groups: Sequence[QueryGroup], *, checked: bool = False) -> ConcatenatedQueries:
    """Lay the groups end to end along the query axis.

    Args:
        groups: the query groups, each ``[B, Q_g, D]``.
        checked: the caller already validated ``groups`` (the decoder does, once per call).

    Returns:
        :class:`ConcatenatedQueries` with ``Qt = sum(Q_g)``.

    Raises:
        ValueError: on an empty list, duplicate names, or groups of different batch size or width.
        TypeError: on an element that is not a :class:`QueryGroup`.
    """
    if not checked:
        check_query_groups(groups)
    slices: dict[str, slice] = {}
    start = 0
    for g in groups:
        slices[g.name] = slice(start, start + g.num_queries)
        start += g.num_queries
    cross: Tensor | None = None
    if not all(g.cross_attends for g in groups):
        device = groups[0].content.device
        cross = torch.cat(
            [torch.full((g.num_queries,), g.cross_attends, dtype=torch.bool, device=device) for g in groups]
        )
    return ConcatenatedQueries(
        content=torch.cat([g.content for g in groups], dim=1),
        positional=torch.cat([g.positional for g in groups], dim=1),
        slices=slices,
        cross_attends=cross,
    )


def build_self_attention_mask(groups: Sequence[QueryGroup], *, checked: bool = False) -> Tensor | None:
    """Turn the groups' self-attention rules into one boolean mask over the concatenated queries.

    The queries are laid out as by :func:`concat_query_groups`. Row ``i`` says which keys query ``i``
    may attend to: the union of its group's clauses, minus invalid (padding) keys, plus itself.
    When every group attends to everything and no query is padding, the mask would be all True and
    ``None`` is returned, so attention can take its unmasked fast path. No host synchronisation.

    Args:
        groups: the query groups.
        checked: the caller already validated ``groups`` with :func:`check_query_groups`.

    Returns:
        ``[B, Qt, Qt]`` bool (True = may attend), or None for "attend everywhere".

    Raises:
        ValueError: on the problems :func:`concat_query_groups` reports, a clause naming an unknown
            group, or a ``same_segment`` clause between groups without ``segment_ids``.
        TypeError: on an element that is not a :class:`QueryGroup`.
    """
    if not checked:
        check_query_groups(groups)
    if all(g.self_attention.all_groups and g.valid is None for g in groups):
        return None

    first = groups[0]
    batch, device = first.content.shape[0], first.content.device
    total = sum(g.num_queries for g in groups)
    key_valid = torch.cat(
        [
            g.valid
            if g.valid is not None
            else torch.ones(batch, g.num_queries, dtype=torch.bool, device=device)
            for g in groups
        ],
        dim=1,
    )  # [B, Qt]
    rows = []
    for g in groups:
        rule = g.self_attention
        if rule.all_groups:
            row = key_valid[:, None, :].expand(batch, g.num_queries, total)
        else:
            blocks = []
            for h in groups:
                block = torch.zeros(batch, g.num_queries, h.num_queries, dtype=torch.bool, device=device)
                for clause in rule.attend_to:
                    if (g.name if clause.group is None else clause.group) != h.name:
                        continue
                    if clause.same_segment:
                        assert g.segment_ids is not None and h.segment_ids is not None
                        block = block | (g.segment_ids[:, :, None] == h.segment_ids[:, None, :])
                    else:
                        block = torch.ones_like(block)
                blocks.append(block)
            row = torch.cat(blocks, dim=2) & key_valid[:, None, :]
        rows.append(row)
    mask = torch.cat(rows, dim=1)  # [B, Qt, Qt]
    return mask | torch.eye(total, dtype=torch.bool, device=device)
