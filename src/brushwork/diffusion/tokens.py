"""Which text positions a word of the prompt occupies, through the pipeline's tokenizer.

Positions are indices into the text encoder's sequence, i.e. into the rows of the
recorded token maps: position 0 is the start token, the prompt's first token is at 1.
CLIP tokenizers (SD 1.x, 2.x and XL) keep 77 positions: the start token, up to 75
prompt tokens and the end token; tokens past that are cut off by the pipeline.

A word (or phrase) matches a run of whole prompt words whose tokens, concatenated,
spell it without spaces — compared in the tokenizer's own normalised form, so case,
accents and punctuation behave as they do in the prompt. ``"Analytical Cubism"``
matches the tokens of "analytical" and "cubism"; "cat" does not match inside
"category".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from brushwork.errors import ConfigError

__all__ = [
    "TOKEN_RULES",
    "PromptTokens",
    "WordNotFoundError",
    "prompt_tokens",
    "word_positions",
]

#: How a word of several tokens becomes one map: its first token's, or the mean.
TOKEN_RULES = ("mean", "first")
_WORD_END = "</w>"


class WordNotFoundError(ConfigError):
    """A requested word is not in the prompt, or was cut off by the tokenizer limit."""


@dataclass(frozen=True)
class PromptTokens:
    """A prompt as the text encoder sees it.

    Attributes:
        prompt: the prompt text.
        tokens: the prompt's tokens (without start/end tokens), all of them, also those
            past the limit; ``tokens[i]`` sits at position ``i + 1``.
        limit: how many prompt tokens the model sees (``model_max_length - 2``).
    """

    prompt: str
    tokens: tuple[str, ...]
    limit: int

    @property
    def length(self) -> int:
        """Positions used in the text sequence: start + visible tokens + end."""
        return min(len(self.tokens), self.limit) + 2

    def pieces(self) -> list[str]:
        return [t.removesuffix(_WORD_END) for t in self.tokens]

    def word_starts(self) -> list[bool]:
        """True for tokens that begin a word (the previous token ended one)."""
        starts = [True]
        for token in self.tokens[:-1]:
            starts.append(token.endswith(_WORD_END) or not _has_word_markers(self.tokens))
        return starts[: len(self.tokens)]


def _has_word_markers(tokens: Sequence[str]) -> bool:
    return any(t.endswith(_WORD_END) for t in tokens)


def prompt_tokens(tokenizer: Any, prompt: str) -> PromptTokens:
    """Tokenise ``prompt`` with a pipeline's (CLIP) tokenizer."""
    limit = int(getattr(tokenizer, "model_max_length", 77))
    if limit > 100_000:  # tokenizers without a configured limit report a huge number
        limit = 77
    return PromptTokens(prompt, tuple(tokenizer.tokenize(prompt)), limit - 2)


def _spelling(tokenizer: Any, word: str) -> str:
    return "".join(t.removesuffix(_WORD_END) for t in tokenizer.tokenize(word))


def word_positions(
    tokenizer: Any,
    prompt: str | PromptTokens,
    word: str,
    *,
    occurrence: int | None = None,
    rule: str = "mean",
) -> list[int]:
    """Text positions whose maps make ``word``'s map.

    Args:
        tokenizer: the pipeline's tokenizer (``pipe.tokenizer``).
        prompt: the prompt, or its :func:`prompt_tokens`.
        word: a word or a phrase of several words, as written in the prompt.
        occurrence: which occurrence to use (0-based); ``None`` merges all of them.
        rule: ``"mean"`` — every token of the word (its map is their mean, as the DAAM
            package does); ``"first"`` — only the first token of each occurrence (the
            content/style study's rule).

    Raises:
        WordNotFoundError: the word is not in the prompt, the chosen occurrence does not
            exist, or the word lies past the tokenizer limit (named in the message).
    """
    if rule not in TOKEN_RULES:
        raise ConfigError(f"unknown token rule '{rule}': choose from {', '.join(TOKEN_RULES)}")
    tokens = prompt if isinstance(prompt, PromptTokens) else prompt_tokens(tokenizer, prompt)
    target = _spelling(tokenizer, word)
    if not target:
        raise WordNotFoundError(f"the word {word!r} is empty after tokenisation")
    runs = _find_runs(tokens, target)
    if not runs:
        shown = " ".join(tokens.pieces())
        raise WordNotFoundError(
            f"the word {word!r} is not in the prompt {tokens.prompt!r} (its tokens: {shown})"
        )
    if occurrence is not None:
        if not 0 <= occurrence < len(runs):
            raise WordNotFoundError(
                f"the word {word!r} occurs {len(runs)} time(s) in {tokens.prompt!r}; "
                f"occurrence {occurrence} does not exist (they are numbered from 0)"
            )
        runs = [runs[occurrence]]
    visible = [run for run in runs if run[-1] < tokens.limit]
    if len(visible) < len(runs):
        if not visible or occurrence is not None:
            raise WordNotFoundError(
                f"the word {word!r} lies past the tokenizer limit: the model sees only the "
                f"first {tokens.limit} of the prompt's {len(tokens.tokens)} tokens. Shorten "
                "the prompt or move the word forward"
            )
        runs = visible
    positions: list[int] = []
    for run in runs:
        chosen = run[:1] if rule == "first" else run
        positions += [index + 1 for index in chosen]  # +1: the start token
    return positions


def _find_runs(tokens: PromptTokens, target: str) -> list[list[int]]:
    """Token-index runs that spell ``target``, starting and ending on word boundaries."""
    pieces = tokens.pieces()
    starts = tokens.word_starts()
    markers = _has_word_markers(tokens.tokens)
    runs = []
    for begin in range(len(pieces)):
        if not starts[begin]:
            continue
        spelled = ""
        for end in range(begin, len(pieces)):
            spelled += pieces[end]
            if not target.startswith(spelled):
                break
            ends_word = tokens.tokens[end].endswith(_WORD_END) or not markers
            if spelled == target and ends_word:
                runs.append(list(range(begin, end + 1)))
                break
    return runs
