"""Data: the synthetic shapes world, readers/writers for real dataset formats, and the image-file reader."""

from segblocks.data.formats import *  # noqa: F403
from segblocks.data.formats import __all__ as _formats_all
from segblocks.data.image_files import IMAGE_MODES, read_image
from segblocks.data.shapes import *  # noqa: F403
from segblocks.data.shapes import __all__ as _shapes_all
from segblocks.data.tubes import tubes_from_frames

__all__ = [*_shapes_all, *_formats_all, "IMAGE_MODES", "read_image", "tubes_from_frames"]
