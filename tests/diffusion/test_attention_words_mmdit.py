"""Word maps end to end on transformer pipelines: the words' positions in each text
stream, generate_with_maps, and the map of a word equal to the mean of its token maps."""

from __future__ import annotations

import pytest
import torch
from tiny_sd3 import T5_TOKENS, build_sd3_pipeline

from brushwork.diffusion.pipelines import generate_with_maps, pipeline_family, text_stream
from brushwork.diffusion.tokens import WordNotFoundError, prompt_tokens, word_positions
from brushwork.errors import ConfigError

PROMPT = "a cow on a hill under the sky"


@pytest.fixture(scope="module")
def sd3_pipe(tmp_path_factory):
    return build_sd3_pipeline(tmp_path_factory.mktemp("sd3-words"))


def _call(pipe, stream=None, **kwargs):
    return generate_with_maps(
        pipe,
        PROMPT,
        ["cow", "sky"],
        num_inference_steps=2,
        height=32,
        width=32,
        stream=stream,
        max_sequence_length=T5_TOKENS,
        **kwargs,
    )


@pytest.mark.parametrize("stream", ["clip", "t5"])
def test_sd3_word_maps_are_the_mean_of_their_token_maps(sd3_pipe, stream):
    assert pipeline_family(sd3_pipe) == "sd3"
    result = _call(sd3_pipe, stream)
    text = text_stream(sd3_pipe, stream)
    if stream == "t5":
        assert text.offset == 77
    tokens = prompt_tokens(text.tokenizer, PROMPT, stream=text)
    for word, word_map in zip(["cow", "sky"], result.maps[0].maps, strict=True):
        positions = word_positions(text.tokenizer, tokens, word)
        assert all(text.offset <= p < text.offset + text.length for p in positions)
        expected = result.token_maps[0, positions].mean(dim=0)
        torch.testing.assert_close(word_map, expected)
        assert word_map.abs().sum() > 0  # real attention, not an empty map
    assert result.maps[0].positions != _call(sd3_pipe, "clip" if stream == "t5" else "t5").maps[
        0
    ].positions  # fmt: skip


def test_sd3_default_stream_is_clip_and_unknown_stream_is_named(sd3_pipe):
    assert text_stream(sd3_pipe).name == "clip"
    with pytest.raises(ConfigError, match=r"no 'umt5' text stream .*clip, t5"):
        text_stream(sd3_pipe, "umt5")


def test_sd3_word_missing_or_past_the_t5_limit_is_refused_before_generating(sd3_pipe):
    with pytest.raises(WordNotFoundError, match="not in the prompt"):
        generate_with_maps(sd3_pipe, PROMPT, ["giraffe"], num_inference_steps=1, stream="t5")
    long_prompt = "a cow " * 20 + "under the sky"
    with pytest.raises(WordNotFoundError, match="past the tokenizer limit"):
        generate_with_maps(
            sd3_pipe, long_prompt, ["sky"], num_inference_steps=1, stream="t5",
            max_sequence_length=T5_TOKENS,
        )  # fmt: skip


# --------------------------------------------------------------------------- Flux.2 (chat)


@pytest.fixture(scope="module")
def klein_pipe(tmp_path_factory):
    from tiny_flux import build_flux2_klein_pipeline

    return build_flux2_klein_pipeline(tmp_path_factory.mktemp("klein-words"))


def test_flux2_words_sit_inside_the_chat_template(klein_pipe):
    """The keys are the chat-formatted prompt's tokens: a word's positions are counted
    from the start of the template, and spell the word in the formatted sequence."""
    text = text_stream(klein_pipe)
    assert text.name == "qwen" and text.template is not None
    prompt = "a cow on a hill, under the sky"
    tokens = prompt_tokens(text.tokenizer, prompt, stream=text)
    formatted = text.tokenizer.convert_ids_to_tokens(
        text.tokenizer(text.template(prompt)).input_ids
    )
    assert tokens.start > 0  # "<|im_start|>user\n" comes first
    for word in ("cow", "hill", "sky"):  # "hill," and "sky" at the end: punctuation ends words
        positions = word_positions(text.tokenizer, tokens, word)
        assert "".join(formatted[p] for p in positions).replace("Ġ", "") == word


def test_flux2_generate_with_maps_of_words(klein_pipe):
    from tiny_flux import KLEIN_TEXT_LAYERS

    result = generate_with_maps(
        klein_pipe, "a cow under the sky", ["cow", "sky"], num_inference_steps=2, height=32,
        width=32, guidance_scale=1.0, text_encoder_out_layers=KLEIN_TEXT_LAYERS,
    )  # fmt: skip
    maps = result.maps[0]
    assert maps.maps.shape[0] == 2 and maps.maps.abs().sum() > 0
    tokens = prompt_tokens(text_stream(klein_pipe).tokenizer, "a cow under the sky",
                           stream=text_stream(klein_pipe))  # fmt: skip
    assert all(p >= tokens.start for positions in maps.positions for p in positions)
