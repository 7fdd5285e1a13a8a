"""Which text positions a word of the prompt occupies, through the pipeline's tokenizer.

Positions are indices into the text keys the attention sees, i.e. into the rows of the
recorded token maps. A model's keys may hold several text streams one after the other
(:class:`TextStream`: SD3 has 77 CLIP positions, then the T5 ones); a position is the
stream's ``offset`` plus the index in that stream's sequence.

* CLIP tokenizers (SD 1.x, 2.x, XL, SD3's first stream) keep 77 positions: the start
  token, up to 75 prompt tokens and the end token; "</w>" ends a word.
* T5 (SentencePiece; Flux, SD3's second stream) has no start token: the prompt's first
  token is at position 0, then up to ``max_sequence_length - 1`` tokens and ``</s>``;
  "▁" begins a word.

Tokens past a stream's limit are cut off by the pipeline.

A word (or phrase) matches a run of whole prompt words whose tokens, concatenated,
spell it without spaces — compared in the tokenizer's own normalised form, so case,
accents and punctuation behave as they do in the prompt. ``"Analytical Cubism"``
matches the tokens of "analytical" and "cubism"; "cat" does not match inside
"category".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from brushwork.errors import ConfigError

__all__ = [
    "TOKEN_RULES",
    "PromptTokens",
    "TextStream",
    "WordNotFoundError",
    "prompt_tokens",
    "word_positions",
]

#: How a word of several tokens becomes one map: its first token's, or the mean.
TOKEN_RULES = ("mean", "first")
_WORD_END = "</w>"  # CLIP BPE: a token that ends a word
_WORD_START = "▁"  # SentencePiece (T5): a token that begins a word
_SPACE_START = "Ġ"  # byte-level BPE (Qwen, Mistral): a token after a space
_STARTS = (_WORD_START, _SPACE_START)


@dataclass(frozen=True)
class TextStream:
    """One text encoder's tokens in the keys of the attention.

    Attributes:
        name: ``"clip"`` or ``"t5"`` (what ``--text-stream`` names).
        tokenizer: that encoder's tokenizer.
        offset: the key index of the stream's first position.
        length: positions the stream has (CLIP 77; T5 ``max_sequence_length``).
        template: for chat-formatted encoders (Flux.2's Qwen-3 / Mistral-3): the function
            that wraps a prompt as the pipeline does; the prompt's tokens then start after
            the template's prefix tokens.
    """

    name: str
    tokenizer: Any
    offset: int
    length: int
    template: Callable[[str], str] | None = None


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
    start: int = 1
    offset: int = 0

    @property
    def length(self) -> int:
        """Positions used in the stream: start token (if any) + visible tokens + end."""
        return self.start + min(len(self.tokens), self.limit) + 1

    @property
    def end(self) -> int:
        """One past the last key position used (``offset + length``)."""
        return self.offset + self.length

    def pieces(self) -> list[str]:
        return [_strip_markers(t) for t in self.tokens]

    def word_starts(self) -> list[bool]:
        """True for tokens that begin a word (punctuation is a word of its own)."""
        if _has_start_markers(self.tokens):
            pieces = self.pieces()
            return [
                i == 0
                or t.startswith(_STARTS)
                or _is_punctuation(pieces[i])
                or _is_punctuation(pieces[i - 1])
                for i, t in enumerate(self.tokens)
            ]
        starts = [True]
        for token in self.tokens[:-1]:
            starts.append(token.endswith(_WORD_END) or not _has_word_markers(self.tokens))
        return starts[: len(self.tokens)]

    def ends_word(self, index: int) -> bool:
        """True if token ``index`` ends a word."""
        if _has_start_markers(self.tokens):
            following = index + 1
            return following >= len(self.tokens) or self.word_starts()[following]
        return self.tokens[index].endswith(_WORD_END) or not _has_word_markers(self.tokens)


def _strip_markers(token: str) -> str:
    return token.removesuffix(_WORD_END).removeprefix(_WORD_START).removeprefix(_SPACE_START)


def _is_punctuation(piece: str) -> bool:
    return bool(piece) and not any(c.isalnum() for c in piece)


def _has_word_markers(tokens: Sequence[str]) -> bool:
    return any(t.endswith(_WORD_END) for t in tokens)


def _has_start_markers(tokens: Sequence[str]) -> bool:
    return any(t.startswith(_STARTS) for t in tokens)


def prompt_tokens(tokenizer: Any, prompt: str, *, stream: TextStream | None = None) -> PromptTokens:
    """Tokenise ``prompt`` with a text stream's tokenizer (default: a CLIP stream at 0).

    The number of special tokens (start and end) is the tokenizer's own; the limit is
    the stream's length (else the tokenizer's ``model_max_length``) minus them.
    """
    if stream is not None:
        tokenizer = stream.tokenizer
    length = (
        stream.length if stream is not None else int(getattr(tokenizer, "model_max_length", 77))
    )
    if length > 100_000:  # tokenizers without a configured limit report a huge number
        length = 77
    if stream is not None and stream.template is not None:
        return _templated_tokens(tokenizer, prompt, stream, length)
    special = _special_tokens(tokenizer)
    return PromptTokens(
        prompt,
        tuple(tokenizer.tokenize(prompt)),
        length - special,
        start=special - 1,
        offset=stream.offset if stream is not None else 0,
    )


def _templated_tokens(tokenizer: Any, prompt: str, stream: TextStream, length: int) -> PromptTokens:
    """The prompt inside its chat template: positions start after the template's prefix.

    The pipeline truncates the whole formatted text at ``length``, so the prompt's
    visible tokens are the ``length - prefix`` after the prefix.
    """
    formatted = stream.template(prompt)  # type: ignore[misc]
    where = formatted.find(prompt)
    if where < 0:
        raise ConfigError(f"the {stream.name} chat template does not contain the prompt")
    prefix = len(tokenizer.tokenize(formatted[:where]))
    return PromptTokens(
        prompt,
        tuple(tokenizer.tokenize(prompt)),
        max(0, length - prefix - 1),
        start=prefix,
        offset=stream.offset,
    )


def _special_tokens(tokenizer: Any) -> int:
    """Special tokens the tokenizer adds to one sequence: CLIP 2 (start, end), T5 1 (end)."""
    counter = getattr(tokenizer, "num_special_tokens_to_add", None)
    return int(counter()) if callable(counter) else 2


def _spelling(tokenizer: Any, word: str) -> str:
    return "".join(_strip_markers(t) for t in tokenizer.tokenize(word))


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
        tokenizer: the stream's tokenizer (``pipe.tokenizer`` for a UNet).
        prompt: the prompt, or its :func:`prompt_tokens` (which carries the stream's
            offset: give it for a stream other than a CLIP one at offset 0).
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
    pieces = tokens.pieces()
    for run in runs:
        # A bare "▁" (SentencePiece's word start split from the word) spells nothing.
        run = [index for index in run if pieces[index]] or run
        chosen = run[:1] if rule == "first" else run
        positions += [tokens.offset + tokens.start + index for index in chosen]
    return positions


def _find_runs(tokens: PromptTokens, target: str) -> list[list[int]]:
    """Token-index runs that spell ``target``, starting and ending on word boundaries."""
    pieces = tokens.pieces()
    starts = tokens.word_starts()
    runs = []
    for begin in range(len(pieces)):
        if not starts[begin]:
            continue
        spelled = ""
        for end in range(begin, len(pieces)):
            spelled += pieces[end]
            if not target.startswith(spelled):
                break
            if spelled == target and tokens.ends_word(end):
                runs.append(list(range(begin, end + 1)))
                break
    return runs
