"""Data: the synthetic shapes world and readers/writers for real dataset formats."""

from segblocks.data.formats import *  # noqa: F403
from segblocks.data.formats import __all__ as _formats_all
from segblocks.data.shapes import *  # noqa: F403
from segblocks.data.shapes import __all__ as _shapes_all
from segblocks.data.tubes import tubes_from_frames

__all__ = [*_shapes_all, *_formats_all, "tubes_from_frames"]
