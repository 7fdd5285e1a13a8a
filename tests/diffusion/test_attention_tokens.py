"""Word -> text positions through a real (tiny) CLIP tokenizer, and map post-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brushwork.diffusion.maps import (
    binarize,
    colorize,
    merge_tokens,
    normalize,
    quantiles,
    upsample,
)
from brushwork.diffusion.tokens import WordNotFoundError, prompt_tokens, word_positions
from brushwork.errors import ConfigError


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from tiny_sd import tiny_tokenizer

    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def test_single_token_word(tokenizer):
    # "a" -> position 1, "giraffe" (one merged token) -> position 2
    assert word_positions(tokenizer, "a giraffe", "giraffe") == [2]


def test_multi_token_phrase_mean_and_first_rule(tokenizer):
    prompt = "a giraffe in the Analytical Cubism style"
    tokens = prompt_tokens(tokenizer, prompt).pieces()
    mean = word_positions(tokenizer, prompt, "Analytical Cubism")
    spelled = "".join(tokens[p - 1] for p in mean)
    assert spelled == "analyticalcubism"
    assert word_positions(tokenizer, prompt, "analytical cubism", rule="first") == mean[:1]


def test_repeated_word_all_or_one_occurrence(tokenizer):
    prompt = "a cat and a dog"  # "and" is three tokens here: a, n, d</w>
    assert word_positions(tokenizer, prompt, "a") == [1, 6]
    assert word_positions(tokenizer, prompt, "a", occurrence=1) == [6]
    with pytest.raises(WordNotFoundError, match="occurs 2 time"):
        word_positions(tokenizer, prompt, "a", occurrence=2)


def test_word_inside_another_word_does_not_match(tokenizer):
    with pytest.raises(WordNotFoundError, match="'cat' is not in the prompt"):
        word_positions(tokenizer, "a category", "cat")
    assert word_positions(tokenizer, "a category of cat", "cat") == [
        len(prompt_tokens(tokenizer, "a category of").tokens) + 1
    ]


def test_missing_word_names_it(tokenizer):
    with pytest.raises(WordNotFoundError, match="'zebra' is not in the prompt 'a giraffe'"):
        word_positions(tokenizer, "a giraffe", "zebra")


def test_word_cut_off_by_the_tokenizer_limit(tokenizer):
    # Unknown words split into one token per letter: this prompt is far past 75 tokens.
    prompt = "a " + "verylongword " * 10 + "giraffe"
    assert len(prompt_tokens(tokenizer, prompt).tokens) > 75
    with pytest.raises(WordNotFoundError, match="past the tokenizer limit"):
        word_positions(tokenizer, prompt, "giraffe")


def test_bad_rule(tokenizer):
    with pytest.raises(ConfigError, match="unknown token rule"):
        word_positions(tokenizer, "a cat", "cat", rule="last")


def test_merge_tokens_is_the_mean():
    maps = torch.rand(10, 4, 4)
    merged = merge_tokens(maps, [[1], [2, 3]])
    torch.testing.assert_close(merged[0], maps[1])
    torch.testing.assert_close(merged[1], (maps[2] + maps[3]) / 2)


def test_normalize_min_max_and_constant_map():
    maps = torch.stack([torch.arange(16.0).view(4, 4), torch.full((4, 4), 3.0)])
    out = normalize(maps)
    assert out[0].min() == 0 and out[0].max() == pytest.approx(1.0, abs=1e-6)
    assert torch.all(out[1] == 0)


def test_quantiles_match_numpy():
    maps = torch.rand(3, 17, 13)
    levels = [0.1, 0.5, 0.9]
    expected = np.quantile(maps.flatten(1).numpy().astype(np.float64), levels, axis=1)
    torch.testing.assert_close(quantiles(maps, levels), torch.from_numpy(expected).float())


def test_binarize_fixed_and_quantile_semantics():
    heat = torch.stack([torch.linspace(0, 1, 100).view(10, 10), torch.zeros(10, 10)])
    fixed = binarize(heat, [0.5], "fixed")[0]
    assert fixed.shape == (2, 10, 10)
    assert fixed[0].sum() == (torch.linspace(0, 1, 100) >= 0.5).sum()
    assert not fixed[1].any()  # all-zero map: empty in fixed mode
    quant = binarize(heat, [0.7], "quantile")[0]
    assert quant[1].all()  # ... and full in quantile mode
    assert quant[0].float().mean() == pytest.approx(0.3, abs=0.011)
    # float32 comparison: a pixel at float32(0.7) is inside the 0.7 mask
    assert binarize(torch.full((1, 2, 2), 0.7), [0.7])[0].all()
    with pytest.raises(ConfigError, match="binarisation mode"):
        binarize(heat, 0.5, "otsu")


def test_upsample_and_colorize_shapes():
    maps = torch.rand(2, 8, 8)
    assert upsample(maps, (32, 48)).shape == (2, 32, 48)
    colours = colorize(torch.linspace(0, 1, 5).view(1, 5))
    assert colours.shape == (3, 1, 5)
    torch.testing.assert_close(colours[:, 0, 0], torch.tensor([0.0, 0.0, 0.5]))  # jet: dark blue
    torch.testing.assert_close(colours[:, 0, -1], torch.tensor([0.5, 0.0, 0.0]))  # dark red


# --------------------------------------------------------------------------- T5 (SentencePiece)


@pytest.fixture(scope="module")
def t5_tokenizer():
    from tiny_t5 import tiny_t5_tokenizer

    return tiny_t5_tokenizer()


def test_t5_words_have_no_start_token_and_sit_at_the_stream_offset(t5_tokenizer):
    from brushwork.diffusion.tokens import TextStream

    stream = TextStream("t5", t5_tokenizer, offset=77, length=64)
    prompt = "a giraffe in the Analytical Cubism style, a cow"
    tokens = prompt_tokens(t5_tokenizer, prompt, stream=stream)
    assert (tokens.start, tokens.limit, tokens.offset) == (0, 63, 77)
    pieces = t5_tokenizer.tokenize(prompt)
    giraffe = word_positions(t5_tokenizer, tokens, "giraffe")
    spelled = "".join(pieces[p - 77] for p in giraffe).replace("▁", "")
    assert spelled == "giraffe" and giraffe[0] > 78  # "a" comes first
    first_of_a = [  # the word "a", not the "a" inside "giraffe"
        77 + i
        for i, piece in enumerate(pieces)
        if piece.replace("▁", "") == "a" and (piece.startswith("▁") or pieces[i - 1] == "▁")
    ]
    assert word_positions(t5_tokenizer, tokens, "a", rule="first") == first_of_a
    assert all(pieces[p - 77] != "▁" for p in giraffe)  # a bare word-start spells nothing
    phrase = word_positions(t5_tokenizer, tokens, "Analytical Cubism")
    assert "".join(pieces[p - 77] for p in phrase).replace("▁", "") == "analyticalcubism"
    with pytest.raises(WordNotFoundError, match="not in the prompt"):
        word_positions(t5_tokenizer, tokens, "gira")  # inside a word: not a match
    assert tokens.end == 77 + len(pieces) + 1  # the tokens and </s>


def test_t5_word_past_the_limit_is_named(t5_tokenizer):
    from brushwork.diffusion.tokens import TextStream

    stream = TextStream("t5", t5_tokenizer, offset=0, length=8)
    tokens = prompt_tokens(t5_tokenizer, "a cat on the hill under the sky", stream=stream)
    assert tokens.limit == 7
    with pytest.raises(WordNotFoundError, match="past the tokenizer limit"):
        word_positions(t5_tokenizer, tokens, "sky")


def test_t5_words_before_punctuation_are_found(t5_tokenizer):
    from brushwork.diffusion.tokens import TextStream

    stream = TextStream("t5", t5_tokenizer, offset=0, length=64)
    prompt = "a cow, under the sky."
    tokens = prompt_tokens(t5_tokenizer, prompt, stream=stream)
    pieces = t5_tokenizer.tokenize(prompt)
    for word in ("cow", "sky"):
        positions = word_positions(t5_tokenizer, tokens, word)
        assert "".join(pieces[p] for p in positions).replace("▁", "") == word
