"""The prompt grid of the content/style study (Cow of Rembrandt protocol).

Every combination of template × medium × content × style, in the order of
``itertools.product(templates, mediums, contents, styles)`` (style varies fastest), each
prompt seeded with its index. With the paper's lists: 4 × 1 × 80 × 50 = 16,000 prompts;
prompt 0 is "a painting of a person in the Abstract Expressionism style".

A template is a string with the placeholders ``<CONTENT>``, ``<STYLE>`` and optionally
``<MEDIUM>``, each a space-separated word of its own. The template's *words* are its
space-separated parts with the placeholders resolved: a multi-word content or style
("traffic light", "Vincent van Gogh") stays one word, and repeated words ("a" … "a")
are separate words.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from brushwork.errors import ConfigError

__all__ = [
    "MEDIUMS",
    "TEMPLATES",
    "PromptSpec",
    "build_grid",
    "load_list",
    "paper_contents",
    "paper_styles",
    "parse_list",
    "parse_templates",
    "template_words",
]

#: The four templates of the protocol, in its order.
TEMPLATES: tuple[str, ...] = (
    "a <MEDIUM> of a <CONTENT> in the <STYLE> style",
    "a <STYLE> <MEDIUM> of a <CONTENT>",
    "a <CONTENT> in the <STYLE> style",
    "a <CONTENT> with <STYLE> style",
)
#: The protocol's only medium.
MEDIUMS: tuple[str, ...] = ("painting",)
CONTENT, STYLE, MEDIUM = "<CONTENT>", "<STYLE>", "<MEDIUM>"


@dataclass(frozen=True)
class PromptSpec:
    """One prompt of the grid.

    Attributes:
        index: position in the grid (0-based); also the seed.
        prompt: the prompt text.
        seed: the generator seed (= ``index``).
        template_index: 0-based index of the template in the run's template list.
        template, medium, content, style: what the prompt was made from.
        words: the template's words with placeholders resolved, in prompt order.
        content_word, style_word: indices of the content and style word in ``words``.
    """

    index: int
    prompt: str
    seed: int
    template_index: int
    template: str
    medium: str
    content: str
    style: str
    words: tuple[str, ...]
    content_word: int
    style_word: int


def load_list(name: str) -> list[str]:
    """A list shipped with the package (``coco_objects``, ``wikiart_movements``, ...)."""
    text = resources.files("brushwork.experiments").joinpath(f"data/{name}.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def paper_contents() -> list[str]:
    """The 80 MS-COCO classes in COCO order (person … toothbrush)."""
    return load_list("coco_objects")


def paper_styles() -> list[str]:
    """27 WikiArt movements, then 23 WikiArt artists (50 styles)."""
    return load_list("wikiart_movements") + load_list("wikiart_artists")


def parse_list(text: str | None, default: Sequence[str]) -> list[str]:
    """A user list: ``None`` → ``default``; a file (one entry a line) or comma-separated."""
    if text is None:
        return list(default)
    path = Path(text)
    if path.is_file():
        items = [line.strip() for line in path.read_text("utf-8").splitlines()]
    else:
        items = [item.strip() for item in text.split(",")]
    items = [item for item in items if item]
    if not items:
        raise ConfigError(f"the list {text!r} is empty: give entries separated by commas or a file")
    if len(set(items)) != len(items):
        raise ConfigError(f"the list {text!r} repeats an entry")
    return items


def parse_templates(text: str | None) -> list[str]:
    """Templates: ``None`` → all four; ``"1,3"`` → the protocol's templates 1 and 3
    (1-based); otherwise template strings separated by ``|``, or a file, one per line."""
    if text is None:
        return list(TEMPLATES)
    path = Path(text)
    if path.is_file():
        items = [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]
    elif all(part.strip().isdigit() for part in text.split(",")):
        items = []
        for part in text.split(","):
            number = int(part)
            if not 1 <= number <= len(TEMPLATES):
                raise ConfigError(
                    f"template {number} does not exist: the protocol has templates "
                    f"1 to {len(TEMPLATES)}"
                )
            items.append(TEMPLATES[number - 1])
    else:
        items = [part.strip() for part in text.split("|") if part.strip()]
    for template in items:
        _check_template(template)
    return items


def _check_template(template: str) -> None:
    parts = template.split()
    for placeholder in (CONTENT, STYLE):
        if parts.count(placeholder) != 1:
            raise ConfigError(
                f"the template {template!r} must contain {placeholder} exactly once, as a "
                "word of its own (e.g. 'a <CONTENT> in the <STYLE> style')"
            )
    if parts.count(MEDIUM) > 1:
        raise ConfigError(f"the template {template!r} contains {MEDIUM} more than once")


def template_words(template: str, medium: str, content: str, style: str) -> list[str]:
    """The template's space-separated words with the placeholders resolved."""
    values = {CONTENT: content, STYLE: style, MEDIUM: medium}
    return [values.get(part, part) for part in template.split()]


def build_grid(
    *,
    templates: Sequence[str] = TEMPLATES,
    mediums: Sequence[str] = MEDIUMS,
    contents: Sequence[str] | None = None,
    styles: Sequence[str] | None = None,
) -> list[PromptSpec]:
    """All prompts in protocol order (defaults: the paper's 16,000-prompt grid)."""
    contents = paper_contents() if contents is None else list(contents)
    styles = paper_styles() if styles is None else list(styles)
    for template in templates:
        _check_template(template)
    if not (templates and mediums and contents and styles):
        raise ConfigError("the grid is empty: give at least one template, content and style")
    grid = []
    combos = itertools.product(enumerate(templates), mediums, contents, styles)
    for index, ((t_index, template), medium, content, style) in enumerate(combos):
        parts = template.split()
        words = template_words(template, medium, content, style)
        grid.append(
            PromptSpec(
                index=index,
                prompt=" ".join(words),
                seed=index,
                template_index=t_index,
                template=template,
                medium=medium,
                content=content,
                style=style,
                words=tuple(words),
                content_word=parts.index(CONTENT),
                style_word=parts.index(STYLE),
            )
        )
    return grid
