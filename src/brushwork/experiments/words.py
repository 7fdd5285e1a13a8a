"""Template words → text positions, left to right (the study's word→token rule).

Each word of a template is looked up in the prompt's tokens in order: the first
occurrence that starts after the previous word's tokens (a cursor moving left to right),
so the two "a" of "a painting of a cow" are two words with their own tokens. Lookup uses
:func:`brushwork.diffusion.tokens.word_positions` (whole words, tokenizer-normalised
spelling, lower-cased by CLIP). With ``rule="first"`` (the original study) a word's map
is its first token's; with ``rule="mean"`` the mean of all its tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from brushwork.diffusion.tokens import (
    TOKEN_RULES,
    PromptTokens,
    WordNotFoundError,
    prompt_tokens,
)
from brushwork.diffusion.tokens import word_positions as _word_positions
from brushwork.errors import ConfigError

__all__ = ["locate_words"]


def locate_words(
    tokenizer: Any,
    prompt: str | PromptTokens,
    words: Sequence[str],
    *,
    rule: str = "first",
) -> list[list[int]]:
    """Per word, the text positions (start token = 0) of its successive occurrence.

    Raises:
        WordNotFoundError: a word is missing after the previous word, or cut off by the
            tokenizer limit (the original study silently dropped such words).
    """
    if rule not in TOKEN_RULES:
        raise ConfigError(f"unknown token rule '{rule}': choose from {', '.join(TOKEN_RULES)}")
    tokens = prompt if isinstance(prompt, PromptTokens) else prompt_tokens(tokenizer, prompt)
    cursor = tokens.offset + tokens.start - 1  # every position must be > cursor
    located: list[list[int]] = []
    for word in words:
        occurrence = 0
        while True:
            try:
                run = _word_positions(tokenizer, tokens, word, occurrence=occurrence, rule="mean")
            except WordNotFoundError as error:
                if occurrence == 0:
                    raise
                raise WordNotFoundError(
                    f"the word {word!r} does not occur after the earlier words of "
                    f"{tokens.prompt!r} (words are matched left to right)"
                ) from error
            if run[0] > cursor:
                break
            occurrence += 1
        located.append(run[:1] if rule == "first" else run)
        cursor = run[-1]
    return located
