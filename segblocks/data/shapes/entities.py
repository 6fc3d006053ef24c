"""Entity parsing of shapes-world captions: the role of Uni-OVSeg's caption parser (NLTK / ChatGPT).

Captions are noun phrases joined by commas, ``and`` and ``on`` (``"a small red circle and a star on
grass and sky."``). The parser splits the sentence at those joints, strips articles, size and colour
words, and keeps each remaining head noun that is in its lexicon (the nouns of the world, the way a
real parser knows English nouns; it never sees the image or its masks). A caption that names no known
entity (``"an empty scene."``, or a web caption about something else) gives an empty list: stage-2
training skips such images and counts them.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from segblocks.data.shapes.categories import COLOURS, STUFF_CLASSES, THING_CLASSES

__all__ = ["WORLD_NOUNS", "parse_entities"]

#: The parser's lexicon: every noun of the shapes world.
WORLD_NOUNS: frozenset[str] = frozenset((*THING_CLASSES, *STUFF_CLASSES))

_MODIFIERS = frozenset(("a", "an", "the", "small", "large", *COLOURS))
_JOINTS = re.compile(r",|\band\b|\bon\b")


def parse_entities(caption: str, lexicon: Collection[str] = WORLD_NOUNS) -> list[str]:
    """The entities a caption mentions, in order, without repeats.

    Args:
        caption: one caption.
        lexicon: nouns the parser recognises.

    Returns:
        Entity names (possibly empty).

    Raises:
        TypeError: when ``caption`` is not a string.
        ValueError: on an empty lexicon.
    """
    if not isinstance(caption, str):
        raise TypeError(f"caption: expected a string, got {type(caption).__name__}")
    if not lexicon:
        raise ValueError("lexicon: expected at least one noun")
    known = {n.lower() for n in lexicon}
    out: list[str] = []
    for chunk in _JOINTS.split(caption.lower().strip().rstrip(".")):
        words = [w for w in chunk.split() if w not in _MODIFIERS]
        if not words:
            continue
        noun = " ".join(words)
        if noun in known and noun not in out:
            out.append(noun)
    return out
