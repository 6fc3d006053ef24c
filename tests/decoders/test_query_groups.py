"""Query groups and their self-attention rules: the mask builder against a brute-force reading of the
rules, the wirings the zoo models need (OMG-Seg, Uni-OVSeg, SEEM), and the errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segblocks.decoders import (
    AttendTo,
    QueryGroup,
    SelfAttentionRule,
    build_self_attention_mask,
    concat_query_groups,
)

D = 8


def group(
    name: str, q: int, rule: SelfAttentionRule, *, b: int = 2, seg=None, valid=None, cross=True
) -> QueryGroup:
    return QueryGroup(
        name=name,
        content=torch.randn(b, q, D),
        positional=torch.randn(b, q, D),
        self_attention=rule,
        cross_attends=cross,
        segment_ids=seg,
        valid=valid,
    )


def brute_force(groups: list[QueryGroup]) -> torch.Tensor:
    """The rules read literally, one (query, key) pair at a time."""
    owners, index, seg, valid = [], [], [], []
    b = groups[0].content.shape[0]
    for g in groups:
        for i in range(g.num_queries):
            owners.append(g)
            index.append(i)
            seg.append(None if g.segment_ids is None else g.segment_ids[:, i])
            valid.append(torch.ones(b, dtype=torch.bool) if g.valid is None else g.valid[:, i])
    n = len(owners)
    mask = torch.zeros(b, n, n, dtype=torch.bool)
    for bi in range(b):
        for i in range(n):
            for j in range(n):
                if i == j:
                    mask[bi, i, j] = True
                    continue
                if not valid[j][bi]:
                    continue
                rule = owners[i].self_attention
                if rule.all_groups:
                    mask[bi, i, j] = True
                    continue
                for clause in rule.attend_to:
                    target = owners[i].name if clause.group is None else clause.group
                    if owners[j].name != target:
                        continue
                    if clause.same_segment and seg[i][bi] != seg[j][bi]:
                        continue
                    mask[bi, i, j] = True
    return mask


@st.composite
def random_groups(draw: st.DrawFn) -> list[QueryGroup]:
    num = draw(st.integers(1, 4))
    names = [f"g{k}" for k in range(num)]
    b = draw(st.integers(1, 2))
    groups = []
    for name in names:
        q = draw(st.integers(1, 4))
        seg = torch.tensor(
            draw(st.lists(st.lists(st.integers(0, 2), min_size=q, max_size=q), min_size=b, max_size=b))
        )
        valid = None
        if draw(st.booleans()):
            valid = torch.tensor(
                draw(st.lists(st.lists(st.booleans(), min_size=q, max_size=q), min_size=b, max_size=b))
            )
        if draw(st.integers(0, 4)) == 0:
            rule = SelfAttentionRule.everything()
        else:
            clauses = tuple(
                AttendTo(group=draw(st.sampled_from([None, *names])), same_segment=draw(st.booleans()))
                for _ in range(draw(st.integers(0, 3)))
            )
            rule = SelfAttentionRule(attend_to=clauses)
        groups.append(group(name, q, rule, b=b, seg=seg, valid=valid))
    return groups


@settings(max_examples=40, deadline=None)
@given(random_groups())
def test_mask_matches_the_rules_read_literally(groups: list[QueryGroup]) -> None:
    mask = build_self_attention_mask(groups)
    expected = brute_force(groups)
    if mask is None:
        assert bool(expected.all())
    else:
        assert torch.equal(mask, expected)
        assert bool(mask.diagonal(dim1=1, dim2=2).all()), "a query always attends to itself"


def test_single_semantic_group_needs_no_mask() -> None:
    assert build_self_attention_mask([group("semantic", 5, SelfAttentionRule.everything())]) is None


def test_omg_seg_location_queries_attend_only_to_themselves() -> None:
    groups = [
        group("semantic", 3, SelfAttentionRule.everything()),
        group("location", 4, SelfAttentionRule.only_self()),
    ]
    mask = build_self_attention_mask(groups)
    assert mask is not None
    assert bool(mask[:, :3].all()), "semantic queries see everything"
    assert torch.equal(mask[:, 3:, 3:], torch.eye(4, dtype=torch.bool).expand(2, 4, 4))
    assert not bool(mask[:, 3:, :3].any())


def test_uni_ovseg_prompt_tokens_stay_within_their_prompt() -> None:
    seg = torch.tensor([[0, 0, 0, 1, 1, 1, 2]]).expand(2, -1)
    mask = build_self_attention_mask([group("prompts", 7, SelfAttentionRule.same_segment(), seg=seg)])
    assert mask is not None
    assert torch.equal(mask, seg[:, :, None] == seg[:, None, :])


def test_seem_wiring() -> None:
    b = 1
    groups = [
        group("object", 3, SelfAttentionRule.own_group(), b=b),
        group("grounding", 3, SelfAttentionRule(attend_to=(AttendTo(), AttendTo("text"))), b=b),
        group("text", 2, SelfAttentionRule.own_group(), b=b, cross=False),
        group(
            "spatial",
            4,
            SelfAttentionRule.same_segment("spatial_tokens", "memory"),
            b=b,
            seg=torch.tensor([[0, 0, 1, 1]]),
        ),
        group(
            "spatial_tokens",
            3,
            SelfAttentionRule.same_segment(),
            b=b,
            seg=torch.tensor([[0, 1, 1]]),
            cross=False,
        ),
        group("memory", 2, SelfAttentionRule.same_segment("spatial"), b=b, seg=torch.tensor([[1, 0]])),
    ]
    mask = build_self_attention_mask(groups)
    assert mask is not None
    sl = concat_query_groups(groups).slices
    obj, grd, txt, spa, tok, mem = (
        sl[n] for n in ("object", "grounding", "text", "spatial", "spatial_tokens", "memory")
    )
    m = mask[0]
    assert bool(m[obj, obj].all()) and not bool(m[obj, grd].any()) and not bool(m[obj, spa].any())
    assert bool(m[grd, grd].all()) and bool(m[grd, txt].all()) and not bool(m[grd, obj].any())
    # spatial query 0 (prompt 0) sees spatial 0-1, token 0 and memory 1 (prompt 0), nothing of prompt 1
    row = m[spa.start]
    assert row[spa].tolist() == [True, True, False, False]
    assert row[tok].tolist() == [True, False, False]
    assert row[mem].tolist() == [False, True]
    assert not bool(row[obj].any())
    assert m[mem.start, spa].tolist() == [False, False, True, True]
    cross = concat_query_groups(groups).cross_attends
    assert cross is not None
    assert not bool(cross[txt].any()) and not bool(cross[tok].any()) and bool(cross[obj].all())


def test_padding_queries_are_hidden_from_others() -> None:
    valid = torch.tensor([[True, False, True], [True, True, False]])
    mask = build_self_attention_mask([group("prompts", 3, SelfAttentionRule.everything(), valid=valid)])
    assert mask is not None
    assert mask[0, :, 1].tolist() == [False, True, False]
    assert mask[1, :, 2].tolist() == [False, False, True]


def test_concat_lays_groups_end_to_end() -> None:
    a, b = group("a", 2, SelfAttentionRule.everything()), group("b", 3, SelfAttentionRule.everything())
    cat = concat_query_groups([a, b])
    assert cat.slices == {"a": slice(0, 2), "b": slice(2, 5)}
    assert torch.equal(cat.content[:, 2:], b.content)
    assert cat.cross_attends is None


def test_errors_name_the_problem() -> None:
    ok = SelfAttentionRule.everything()
    with pytest.raises(ValueError, match="unknown group 'nope'"):
        build_self_attention_mask([group("a", 2, SelfAttentionRule(attend_to=(AttendTo("nope"),)))])
    with pytest.raises(ValueError, match="needs segment_ids"):
        build_self_attention_mask([group("a", 2, SelfAttentionRule.same_segment())])
    with pytest.raises(ValueError, match="unique"):
        build_self_attention_mask([group("a", 2, ok), group("a", 2, ok)])
    with pytest.raises(ValueError, match="batch 2 and width"):
        concat_query_groups([group("a", 2, ok), group("b", 2, ok, b=3)])
    with pytest.raises(ValueError, match="at least one"):
        concat_query_groups([])
    with pytest.raises(TypeError, match="QueryGroup"):
        concat_query_groups(["a"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"a\.positional"):
        QueryGroup(name="a", content=torch.zeros(1, 2, D), positional=torch.zeros(1, 3, D))
    with pytest.raises(TypeError, match=r"a\.content"):
        QueryGroup(name="a", content=torch.zeros(1, 2, D, dtype=torch.long), positional=torch.zeros(1, 2, D))
    with pytest.raises(TypeError, match=r"a\.valid"):
        QueryGroup(
            name="a", content=torch.zeros(1, 2, D), positional=torch.zeros(1, 2, D), valid=torch.ones(1, 2)
        )
    with pytest.raises(ValueError, match="name"):
        QueryGroup(name="", content=torch.zeros(1, 2, D), positional=torch.zeros(1, 2, D))
    with pytest.raises(TypeError, match="attend_to"):
        SelfAttentionRule(attend_to=["a"])  # type: ignore[arg-type]
