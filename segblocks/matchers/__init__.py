"""Matchers: assign predictions to ground-truth targets."""

from segblocks.matchers.by_construction import ByConstructionMatcher
from segblocks.matchers.costs import pairwise_class_cost, pairwise_dice_cost, pairwise_sigmoid_ce_cost
from segblocks.matchers.hungarian import HungarianMatcher, Matcher, Matching, sample_at_points
from segblocks.matchers.many_to_many import ManyToManyMatcher
from segblocks.matchers.mask_text import MaskTextMatch, MaskTextMatcher

__all__ = [
    "ByConstructionMatcher",
    "HungarianMatcher",
    "ManyToManyMatcher",
    "MaskTextMatch",
    "MaskTextMatcher",
    "Matcher",
    "Matching",
    "pairwise_class_cost",
    "pairwise_dice_cost",
    "pairwise_sigmoid_ce_cost",
    "sample_at_points",
]
