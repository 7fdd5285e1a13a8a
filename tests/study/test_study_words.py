"""Template words → text positions, left to right, first-token and mean rules."""

from __future__ import annotations

import pytest

from brushwork.diffusion.tokens import WordNotFoundError, word_positions
from brushwork.experiments.grid import build_grid
from brushwork.experiments.words import locate_words


def test_study_repeated_words_take_successive_occurrences(study_tokenizer):
    spec = build_grid(contents=["giraffe"], styles=["Rembrandt"])[0]
    first = locate_words(study_tokenizer, spec.prompt, spec.words, rule="first")
    # tokens: a | painting | o f | a | giraffe | i n | t h e | r e m b ... | style
    assert first[0] == [1] and first[3] == [5]  # the two "a" are different tokens
    assert first[2] == [3] and first[4] == [6]
    flat = [p[0] for p in first]
    assert flat == sorted(flat) and len(set(flat)) == len(flat)


def test_study_first_and_mean_rules(study_tokenizer):
    spec = build_grid(
        contents=["traffic light"],
        styles=["Vincent van Gogh"],
        templates=["a <CONTENT> with <STYLE> style"],
    )[0]
    first = locate_words(study_tokenizer, spec.prompt, spec.words, rule="first")
    mean = locate_words(study_tokenizer, spec.prompt, spec.words, rule="mean")
    for f, m in zip(first, mean, strict=True):
        assert f == m[:1]
    content = mean[spec.content_word]
    assert content == word_positions(study_tokenizer, spec.prompt, "traffic light")
    assert len(content) == len("trafficlight")  # the tiny tokenizer splits it into bytes
    assert mean[spec.style_word] == word_positions(study_tokenizer, spec.prompt, "Vincent van Gogh")


def test_study_missing_or_cut_off_words_raise(study_tokenizer):
    with pytest.raises(WordNotFoundError):
        locate_words(study_tokenizer, "a cat in the style", ["a", "dog"])
    with pytest.raises(WordNotFoundError, match="after"):
        locate_words(study_tokenizer, "cat a", ["a", "cat"])  # order matters
    long_style = "x" * 80  # 80 byte tokens: past the 75-token limit
    with pytest.raises(WordNotFoundError, match="limit"):
        locate_words(study_tokenizer, f"a cat {long_style} style", ["a", "cat", long_style])
