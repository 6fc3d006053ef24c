"""Matchers: assign predictions to ground-truth targets."""

from segblocks.matchers.costs import pairwise_class_cost, pairwise_dice_cost, pairwise_sigmoid_ce_cost
from segblocks.matchers.hungarian import HungarianMatcher, Matching

__all__ = [
    "HungarianMatcher",
    "Matching",
    "pairwise_class_cost",
    "pairwise_dice_cost",
    "pairwise_sigmoid_ce_cost",
]
