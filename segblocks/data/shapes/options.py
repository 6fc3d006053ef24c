"""The shapes world's command-line options, shared by the recipes that train on it."""

from __future__ import annotations

import argparse

from segblocks.data.shapes.categories import ClassSplit

__all__ = ["add_split_argument", "add_world_arguments", "split_from_args"]


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


def _class_names(value: str) -> tuple[str, ...]:
    """``"heart,crescent"`` -> ``("heart", "crescent")``, a valid held-out set (argparse type)."""
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    try:
        ClassSplit(unseen=names)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return names


def add_split_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--unseen-classes`` (the classes held out of training) to an open-vocabulary recipe.

    Args:
        parser: the recipe's parser; :func:`split_from_args` reads the option back.
    """
    parser.add_argument(
        "--unseen-classes",
        type=_class_names,
        default=None,
        metavar="NAMES",
        help="comma-separated classes held out of training (default: the world's split, "
        f"{','.join(ClassSplit().unseen)}); ClassSplit.proxy() holds out more, for choosing the "
        "ensemble's exponents",
    )


def split_from_args(args: argparse.Namespace) -> ClassSplit:
    """The :class:`~segblocks.data.ClassSplit` of ``--unseen-classes`` (the default split when unset).

    Args:
        args: the parsed options of a parser given :func:`add_split_argument`.
    """
    return ClassSplit() if args.unseen_classes is None else ClassSplit(unseen=args.unseen_classes)
