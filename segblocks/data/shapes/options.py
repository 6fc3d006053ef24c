"""The shapes world's command-line options, shared by the recipes that train on it."""

from __future__ import annotations

import argparse

__all__ = ["add_world_arguments"]


def add_world_arguments(parser: argparse.ArgumentParser, *, image_size: int = 96) -> None:
    """Add ``--image-size``, ``--train-images`` and ``--val-images`` to a recipe's parser.

    Args:
        parser: the recipe's parser.
        image_size: default image side in pixels.
    """
    parser.add_argument(
        "--image-size", type=int, default=image_size, help="shapes-world image side in pixels"
    )
    parser.add_argument(
        "--train-images", type=int, default=100000, help="length of the (generated) train set"
    )
    parser.add_argument("--val-images", type=int, default=100, help="images of the validation set")
