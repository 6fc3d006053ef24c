"""Image files in: the one reader behind every ``segblocks predict`` command and file-based helper.

The result follows the library's image contract (RGB in ``[0, 1]``, channels first), so any model's
``predict`` takes it after ``[None]``. What the reader accepts, and what it refuses rather than
guess:

- 8-bit RGB, grey (``L``, ``1``), palette (``P``), ``CMYK`` and ``YCbCr`` pixels are converted to
  RGB by PIL (grey is repeated in the three channels, a palette is looked up).
- An alpha channel (``RGBA``, ``LA``, ``PA``, or a palette/RGB image with a transparent colour) is
  dropped when every pixel is fully opaque; an image with any transparent pixel is refused, since
  the colour under a transparent pixel is undefined: flatten it onto a background first.
- 16-bit, 32-bit and float samples (``I;16``, ``I``, ``F``) and other colour spaces (``LAB``,
  ``HSV``) are refused: a silent conversion would clip them.
- A multi-frame file (GIF, multi-page TIFF) gives its first frame. The pixels are read as stored:
  an EXIF orientation tag is not applied.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["IMAGE_MODES", "read_image"]

#: PIL modes :func:`read_image` accepts: 8-bit colour, grey or palette pixels, with or without alpha.
IMAGE_MODES: tuple[str, ...] = ("RGB", "L", "1", "P", "CMYK", "YCbCr", "RGBA", "LA", "PA")


def read_image(path: str | os.PathLike[str], *, name: str = "path") -> torch.Tensor:
    """Read an image file as ``[3, H, W]`` float32 RGB in ``[0, 1]`` (a byte value ``v`` is ``v / 255``).

    Args:
        path: the image file (any format PIL reads; the modes it accepts are :data:`IMAGE_MODES`).
        name: the argument or command-line option named in errors (e.g. ``"--image"``).

    Returns:
        ``[3, H, W]`` float32, contiguous, on the CPU. For ``[H, W, 3]`` uint8 RGB (the shapes
        world's and PIL's layout), ``(image.permute(1, 2, 0) * 255).round().to(torch.uint8)``
        recovers the stored bytes exactly.

    Raises:
        TypeError: when ``path`` is not a ``str`` or ``os.PathLike``.
        FileNotFoundError: when no file is at ``path``.
        IsADirectoryError: when ``path`` is a folder.
        PermissionError: when the file may not be read.
        ValueError: when ``path`` is not a regular file (a device, a pipe), is empty (0 bytes), is
            not an image PIL can decode (another kind of file, truncated, corrupt, too large), has
            no pixels, has a mode outside :data:`IMAGE_MODES`, or has transparent pixels.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{name}: expected an image file path (str or os.PathLike), got {type(path).__name__}"
        )
    file = Path(path)
    shown = repr(str(file))
    if not file.exists():
        raise FileNotFoundError(f"{name}: no such image file {shown}")
    if file.is_dir():
        raise IsADirectoryError(f"{name}: {shown} is a folder, not an image file")
    if not file.is_file():
        raise ValueError(f"{name}: {shown} is not a regular file (a device, a pipe or a socket?)")
    if file.stat().st_size == 0:
        raise ValueError(f"{name}: {shown} is an empty file (0 bytes), not an image")
    try:
        with Image.open(file) as img:
            img.load()  # decode now: the pixels stay in memory once the file is closed
    except PermissionError:
        raise PermissionError(f"{name}: {shown} may not be read (permission denied)") from None
    except Image.DecompressionBombError as err:
        raise ValueError(f"{name}: {shown} is too large to decode ({err})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # not an image, truncated, corrupt
        raise ValueError(f"{name}: {shown} is not a readable image ({err})") from None
    width, height = img.size
    if width == 0 or height == 0:
        raise ValueError(f"{name}: {shown} has no pixels ({width} x {height})")
    if img.mode not in IMAGE_MODES:
        raise ValueError(
            f"{name}: {shown} has PIL mode {img.mode!r}; expected 8-bit RGB, grey or palette pixels "
            f"(one of {', '.join(IMAGE_MODES)}): convert it to 8-bit RGB first"
        )
    if img.has_transparency_data:
        img = img.convert("RGBA")
        lowest, _ = img.getchannel("A").getextrema()
        if lowest < 255:
            raise ValueError(
                f"{name}: {shown} has transparent pixels (alpha down to {lowest} of 255) whose colour "
                "is undefined; flatten it onto a background (or drop its alpha channel) first"
            )
    array = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()
