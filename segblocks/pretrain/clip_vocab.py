"""The tiny CLIP's tokenizer: open_clip's own BPE, cut down to the merges the shapes world needs.

open_clip's ``SimpleTokenizer`` reads its merges from a gzipped text file (``bpe_path``); the
vocabulary is the 512 byte symbols, one symbol per merge and the two special tokens. A tiny text
tower cannot afford open_clip's 49,408-row embedding table, so the shapes CLIP uses a *subset* of
the official merges: every merge the full tokenizer applies to the words of the shapes world
(class names, colours, caption and template words), in the official order. Because BPE always
applies the lowest-ranked merge present, and the subset keeps the relative ranks, those words get
exactly the same pieces as with the full file; any other word still tokenizes (into smaller
pieces, down to bytes). The file is shipped next to the model config and named by it through
``text_cfg.tokenizer_kwargs.bpe_path``, so ``open_clip.get_tokenizer("shapes-clip-tiny")`` is the
tokenizer.
"""

from __future__ import annotations

import gzip
import itertools
import re
from collections.abc import Iterable
from pathlib import Path

from open_clip.tokenizer import SimpleTokenizer, default_bpe

from segblocks.backbones.text_prompts import DEFAULT_TEMPLATES
from segblocks.data.shapes import COLOURS, STUFF_CLASSES, THING_CLASSES
from segblocks.data.shapes.language import RELATIONS

__all__ = ["SHAPES_WORDS", "bpe_merges_for", "write_bpe_subset"]

_BASE_WORDS = (
    "a an the of on and in is this there one with two three some many small large big tiny medium "
    "photo picture image good cropped close up scene object shape thing things stuff region area "
    "background empty colour color coloured colored"
)

#: Every word the shapes world and segblocks' prompt templates use (lower case).
SHAPES_WORDS: tuple[str, ...] = tuple(
    sorted(
        set(_BASE_WORDS.split())
        | set(THING_CLASSES)
        | set(STUFF_CLASSES)
        | set(COLOURS)
        | set(RELATIONS)
        | {w for t in DEFAULT_TEMPLATES for w in re.findall(r"[a-z]+", t.lower())}
    )
)


def bpe_merges_for(words: Iterable[str], *, bpe_path: str | Path | None = None) -> list[tuple[str, str]]:
    """The merges of a BPE file that tokenizing ``words`` applies, in the file's order.

    Args:
        words: lower-case words (letters only).
        bpe_path: the full merges file (default: open_clip's ``bpe_simple_vocab_16e6.txt.gz``).

    Returns:
        The merges as ``(left, right)`` symbol pairs, sorted by their rank in the full file.

    Raises:
        ValueError: on an empty word list or a word that is not lower-case letters.
    """
    words = list(words)
    if not words:
        raise ValueError("words: expected at least one word")
    bad = [w for w in words if not re.fullmatch(r"[a-z]+", w)]
    if bad:
        raise ValueError(f"words: expected lower-case letters only, got {bad[:5]}")
    full = SimpleTokenizer(bpe_path=str(bpe_path or default_bpe()))
    ranks = full.bpe_ranks
    used: set[tuple[str, str]] = set()
    for word in words:
        symbols = [*word[:-1], word[-1] + "</w>"]
        while len(symbols) > 1:
            pairs = set(itertools.pairwise(symbols))
            best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
            if best not in ranks:
                break
            used.add(best)
            merged: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
    return sorted(used, key=lambda p: ranks[p])


def write_bpe_subset(path: str | Path, words: Iterable[str] = SHAPES_WORDS) -> int:
    """Write the merges ``words`` need as a gzipped BPE file that ``SimpleTokenizer`` reads.

    Args:
        path: the ``.txt.gz`` file to write.
        words: the words whose tokenization must match the full open_clip tokenizer.

    Returns:
        The vocabulary size of a tokenizer built from the file (``text_cfg.vocab_size``).
    """
    merges = bpe_merges_for(words)
    # SimpleTokenizer skips the first line of the file (a version header in open_clip's file).
    text = "#version: segblocks shapes-clip-tiny subset of bpe_simple_vocab_16e6\n"
    text += "\n".join(f"{a} {b}" for a, b in merges)  # no trailing newline: it would add a merge
    Path(path).write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    return 2 * 256 + len(merges) + 2
