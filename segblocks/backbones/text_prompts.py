"""Class vocabularies and prompt templates for open-vocabulary text embeddings."""

from __future__ import annotations

from collections.abc import Sequence

from segblocks._validation import check_vocabulary

__all__ = ["DEFAULT_TEMPLATES", "build_prompts", "parse_vocabulary", "validate_templates"]

# A short prompt ensemble in the style of ViLD / FC-CLIP; ``{}`` is replaced by a class synonym.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of one {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "a good photo of a {}.",
    "a cropped photo of a {}.",
    "a close-up photo of the {}.",
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "a {} in the scene.",
)


def parse_vocabulary(class_names: Sequence[str | Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    """Normalise a vocabulary to one tuple of synonyms per class.

    A class is either a string whose comma-separated parts are synonyms (``"person, people, man"``)
    or a sequence of synonym strings. Whitespace is stripped and empty parts dropped.

    Args:
        class_names: K classes.

    Returns:
        K tuples of synonyms, each non-empty.

    Raises:
        ValueError: on an empty vocabulary, a class without any non-empty synonym or a repeated class.
        TypeError: on a vocabulary that is a bare string or holds non-strings.
    """
    if isinstance(class_names, str):
        raise TypeError(f"class_names: expected a sequence of class names, got the string {class_names!r}")
    if len(class_names) == 0:
        raise ValueError("class_names: empty vocabulary; give at least one class name")
    vocabulary = []
    for i, entry in enumerate(class_names):
        parts = entry.split(",") if isinstance(entry, str) else list(entry)
        if not all(isinstance(p, str) for p in parts):
            raise TypeError(f"class_names[{i}]: expected a string or a sequence of strings, got {entry!r}")
        synonyms = tuple(p.strip() for p in parts if p.strip())
        if not synonyms:
            raise ValueError(f"class_names[{i}]: empty class name {entry!r}")
        vocabulary.append(synonyms)
    check_vocabulary("class_names", [", ".join(v) for v in vocabulary])  # a repeated class would vanish
    return tuple(vocabulary)


def validate_templates(templates: Sequence[str]) -> tuple[str, ...]:
    """Check prompt templates: a non-empty sequence of strings, each with exactly one ``{}``.

    Raises:
        ValueError: on an empty sequence or a template without exactly one ``{}``.
        TypeError: on a bare string or a non-string template.
    """
    if isinstance(templates, str):
        raise TypeError(f"templates: expected a sequence of templates, got the string {templates!r}")
    if len(templates) == 0:
        raise ValueError("templates: expected at least one template such as 'a photo of a {}.'")
    for i, t in enumerate(templates):
        if not isinstance(t, str):
            raise TypeError(f"templates[{i}]: expected a string, got {type(t).__name__}")
        if t.count("{}") != 1:
            raise ValueError(f"templates[{i}]: expected exactly one '{{}}' placeholder, got {t!r}")
    return tuple(templates)


def build_prompts(
    vocabulary: Sequence[Sequence[str]], templates: Sequence[str]
) -> tuple[list[str], list[int]]:
    """Every (synonym, template) sentence of every class and the class index of each sentence.

    Args:
        vocabulary: K tuples of synonyms (see :func:`parse_vocabulary`).
        templates: T templates with one ``{}``.

    Returns:
        ``(sentences, class_index)``: ``sum_k len(vocabulary[k]) * T`` sentences, class-major.
    """
    sentences: list[str] = []
    owners: list[int] = []
    for k, synonyms in enumerate(vocabulary):
        for name in synonyms:
            for t in templates:
                sentences.append(t.format(name))
                owners.append(k)
    return sentences, owners
