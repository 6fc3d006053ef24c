"""The shapes world: synthetic images and videos with every annotation the papers use."""

from segblocks.data.shapes.categories import (
    CATEGORIES,
    COLOURS,
    STUFF_CLASSES,
    THING_CLASSES,
    Category,
    ClassSplit,
    category_id,
)
from segblocks.data.shapes.config import ShapesWorldConfig
from segblocks.data.shapes.dataset import (
    ShapesBatch,
    ShapesClipDataset,
    ShapesClipExample,
    ShapesDataset,
    ShapesExample,
    collate_batch,
    collate_clip_batch,
    collate_clips,
    collate_shapes,
)
from segblocks.data.shapes.language import resolve_referring
from segblocks.data.shapes.options import add_split_argument, add_world_arguments, split_from_args
from segblocks.data.shapes.prompts import (
    Click,
    coarse_mask,
    first_click,
    jitter_box,
    next_click,
    sample_point,
    sample_polygon,
    sample_scribble,
)
from segblocks.data.shapes.sample import ReferringExpression, Segment, ShapesClip, ShapesSample
from segblocks.data.shapes.world import SPLITS, ShapesWorld

__all__ = [
    "CATEGORIES",
    "COLOURS",
    "SPLITS",
    "STUFF_CLASSES",
    "THING_CLASSES",
    "Category",
    "ClassSplit",
    "Click",
    "ReferringExpression",
    "Segment",
    "ShapesBatch",
    "ShapesClip",
    "ShapesClipDataset",
    "ShapesClipExample",
    "ShapesDataset",
    "ShapesExample",
    "ShapesSample",
    "ShapesWorld",
    "ShapesWorldConfig",
    "add_split_argument",
    "add_world_arguments",
    "category_id",
    "coarse_mask",
    "collate_batch",
    "collate_clip_batch",
    "collate_clips",
    "collate_shapes",
    "first_click",
    "jitter_box",
    "next_click",
    "resolve_referring",
    "sample_point",
    "sample_polygon",
    "sample_scribble",
    "split_from_args",
]
