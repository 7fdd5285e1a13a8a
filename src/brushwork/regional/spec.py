"""Region specs: ``WORDS=TARGET`` strings, checked before any model loads.

A spec names one region by one or more words of the caption and says what it becomes::

    cow=rembrandt.jpg          # the cow in Rembrandt's style
    hill,sky=monet.jpg         # hill and sky together, in one style (shell: "hill,sky"=...)
    rest=photo                 # what no word claims keeps the photo (the default)
    cow=photo                  # the cow stays as it is, the rest follows the other specs

``rest`` is the reserved name of the pixels no named word claims; ``photo`` (any case) is
the reserved target "keep the content here" (write ``./photo`` for a file of that name).
Edited masks come back as ``WORD=MASK.png`` (:func:`parse_mask_spec`).

Errors (:class:`~brushwork.errors.ConfigError`, one line each): a spec without ``=``, an
empty word, ``rest`` mixed with words, a word in two specs (overlapping regions), a word
not in the caption (named), a style that is not an image (named, via the image loader).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from brushwork.errors import ConfigError

__all__ = [
    "PHOTO",
    "REST",
    "RegionSpec",
    "check_in_caption",
    "check_specs",
    "is_word_mask",
    "parse_mask_spec",
    "parse_region_spec",
    "style_targets",
]

#: The region of what no named word claims.
REST = "rest"
#: The target that keeps the content (the photo) in a region.
PHOTO = "photo"


@dataclass(frozen=True)
class RegionSpec:
    """One region: its words and its target.

    Attributes:
        words: the caption's words (or phrases) that make up the region, or ``("rest",)``.
        target: a style image path, or :data:`PHOTO` (keep the content).
        text: the spec as given (for messages).
    """

    words: tuple[str, ...]
    target: str
    text: str

    @property
    def name(self) -> str:
        """``"cow"``, ``"hill,sky"`` or ``"rest"``."""
        return ",".join(self.words)

    @property
    def is_rest(self) -> bool:
        return self.words == (REST,)

    @property
    def keeps_photo(self) -> bool:
        return self.target == PHOTO


def _split(text: str, what: str) -> tuple[tuple[str, ...], str]:
    words_text, equals, target = str(text).partition("=")
    if not equals or not target.strip():
        raise ConfigError(
            f"{what} '{text}' is not WORDS=FILE: e.g. cow=rembrandt.jpg, \"hill,sky\"=monet.jpg"
        )
    words = tuple(w.strip() for w in words_text.strip().strip("\"'").split(","))
    if not words or any(not w for w in words):
        raise ConfigError(f"{what} '{text}' has an empty word before '=': name caption words")
    lowered = [w.lower() for w in words]
    if REST in lowered and len(words) > 1:
        raise ConfigError(f"{what} '{text}' mixes 'rest' with words; 'rest' is a region alone")
    if lowered == [REST]:
        words = (REST,)
    return words, target.strip()


def parse_region_spec(text: str) -> RegionSpec:
    """``"cow=rembrandt.jpg"`` -> :class:`RegionSpec` (``photo`` in any case is :data:`PHOTO`)."""
    words, target = _split(text, "region")
    if target.lower() == PHOTO:
        target = PHOTO
    return RegionSpec(words, target, str(text))


def parse_mask_spec(text: str) -> tuple[str, str]:
    """``"cow=cow_edited.png"`` -> ``("cow", "cow_edited.png")`` (one word per mask)."""
    words, path = _split(text, "mask")
    if len(words) != 1:
        raise ConfigError(f"mask '{text}' names {len(words)} words; give one mask per word")
    return words[0], path


def is_word_mask(text: str) -> bool:
    """Whether a ``--mask`` value is ``WORD=FILE`` (and not a file whose name has ``=``)."""
    return "=" in str(text) and not Path(str(text)).exists()


def check_in_caption(words: Sequence[str], caption: str, *, what: str = "region word") -> None:
    """ConfigError naming the first word or phrase that does not occur in ``caption``.

    A text check (case-insensitive, whole words) that needs no tokenizer, so it runs
    before any model loads; the tokenizer's own lookup follows once the model is there.
    """
    lowered = caption.lower()
    for word in words:
        if word == REST:
            continue
        pattern = r"(?<!\w)" + r"\s+".join(re.escape(p) for p in word.lower().split()) + r"(?!\w)"
        if not re.search(pattern, lowered):
            raise ConfigError(
                f"{what} '{word}' is not in the caption \"{caption}\"; name words the caption has"
            )


def check_specs(specs: Sequence[RegionSpec], *, caption: str | None) -> list[RegionSpec]:
    """The specs, refused when two name the same word or a word is not in the caption.

    Raises:
        ConfigError: no region, a word (or ``rest``) in two specs, only ``rest``, or a
            word missing from ``caption`` (when a caption is given).
    """
    if not specs:
        raise ConfigError("no region given: --region WORD=STYLE.jpg")
    owner: dict[str, RegionSpec] = {}
    for spec in specs:
        for word in spec.words:
            key = word.lower()
            if key in owner:
                first = owner[key]
                raise ConfigError(
                    f"overlapping regions: '{word}' is in both '{first.text}' and "
                    f"'{spec.text}'; each word belongs to one region"
                )
            owner[key] = spec
    if all(spec.is_rest for spec in specs):
        raise ConfigError("only 'rest' given: name at least one word's region (cow=STYLE.jpg)")
    if all(spec.keeps_photo for spec in specs):
        raise ConfigError("every region keeps the photo: give at least one a style image")
    if caption is not None:
        check_in_caption([w for s in specs for w in s.words], caption)
    return list(specs)


def style_targets(specs: Sequence[RegionSpec]) -> list[str]:
    """The distinct style image paths, in the order they first appear."""
    seen: dict[str, None] = {}
    for spec in specs:
        if not spec.keeps_photo:
            seen.setdefault(os.path.normpath(spec.target), None)
    return list(seen)
