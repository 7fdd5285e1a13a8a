"""generate_with_maps on tiny pipelines: batching, IP-Adapter, loading, errors."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from brushwork.diffusion.attention import AttentionRecorder, cross_attention_layers
from brushwork.diffusion.pipelines import generate_with_maps, load_pipeline, pipeline_family
from brushwork.diffusion.tokens import WordNotFoundError
from brushwork.errors import ConfigError, WeightsError

PROMPTS = ["a giraffe painting", "a cat in the style of a dog", "a dog painting"]
WORDS = [["giraffe", "painting"], ["cat", "dog"], ["dog", "painting"]]
CALL = dict(num_inference_steps=2, height=64, width=64)


def test_a_batch_gives_the_maps_of_single_runs(sd_pipe):
    batch = generate_with_maps(sd_pipe, PROMPTS, WORDS, seeds=[3, 4, 5], **CALL)
    for i, prompt in enumerate(PROMPTS):
        single = generate_with_maps(sd_pipe, prompt, WORDS[i], seeds=[3 + i], **CALL)
        torch.testing.assert_close(batch.maps[i].maps, single.maps[0].maps, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batch.images[i], single.images[0], atol=1e-4, rtol=1e-4)
    assert batch.maps[1].words == ["cat", "dog"]
    heat = batch.maps[0].heatmaps()
    assert heat.shape == (2, 64, 64)
    assert heat.min() >= 0 and heat.max() <= 1
    assert batch.maps[0].masks([0.3, 0.6], "quantile").shape == (2, 2, 64, 64)


def test_sdxl_batch_with_images_per_prompt(sdxl_pipe):
    result = generate_with_maps(
        sdxl_pipe, PROMPTS[:2], WORDS[:2], num_images_per_prompt=2, seeds=0, **CALL
    )
    assert result.images.shape == (4, 3, 64, 64)
    assert result.prompts == [PROMPTS[0]] * 2 + [PROMPTS[1]] * 2
    assert result.token_maps.shape[0] == 4
    assert not torch.allclose(result.maps[0].maps, result.maps[1].maps)
    assert pipeline_family(sdxl_pipe) == "sdxl"


def test_a_missing_word_fails_before_generating(sd_pipe):
    calls = []
    handle = sd_pipe.unet.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(WordNotFoundError, match="'zebra'"):
            generate_with_maps(sd_pipe, PROMPTS[:2], [["giraffe"], ["zebra"]], **CALL)
    finally:
        handle.remove()
    assert not calls


def test_word_and_seed_count_errors(sd_pipe):
    with pytest.raises(ConfigError, match="2 word lists given for 3 prompts"):
        generate_with_maps(sd_pipe, PROMPTS, WORDS[:2], **CALL)
    with pytest.raises(ConfigError, match="2 seeds given for 3 images"):
        generate_with_maps(sd_pipe, PROMPTS, WORDS, seeds=[1, 2], **CALL)


def test_ip_adapter_loaded_output_unchanged_and_maps_match_plain_keys(tmp_path):
    from tiny_sd import build_sd_pipeline, write_ip_adapter

    pipe = build_sd_pipeline(tmp_path / "pipe")
    folder = write_ip_adapter(pipe, tmp_path)
    pipe.load_ip_adapter(
        str(folder), subfolder="", weight_name="ip-adapter.safetensors", image_encoder_folder=None
    )
    embeds = [torch.randn(2, 1, 16, generator=torch.Generator().manual_seed(1))]

    def run():
        return pipe(
            "a giraffe painting",
            generator=torch.Generator().manual_seed(0),
            ip_adapter_image_embeds=embeds,
            output_type="pt",
            **CALL,
        ).images

    plain = run()
    processors = dict(pipe.unet.attn_processors)
    assert any("IPAdapter" in type(p).__name__ for p in processors.values())
    with AttentionRecorder(pipe) as recorder:
        recorded = run()
        maps = recorder.token_maps()
        wrapped = next(iter(recorder.unet.attn_processors.values()))
    assert torch.equal(plain, recorded)  # tuple encoder states and IP keys pass through
    assert dict(pipe.unet.attn_processors) == processors
    assert maps.shape == (1, 77, 32, 32)
    assert maps.sum() > 0 and torch.isfinite(maps).all()
    del wrapped
    # the text keys are the layer's to_k of the text states, never the image tokens
    layer = cross_attention_layers(pipe.unet)[0]
    processor = pipe.unet.get_submodule(layer.name).processor
    assert processor.scale == [1.0]


def test_extra_processor_arguments_pass_through(sd_pipe):
    from diffusers.models.attention_processor import AttnProcessor2_0

    class GainProcessor(AttnProcessor2_0):
        """A processor with an extra keyword argument, like IP-Adapter's ip_adapter_masks."""

        seen: ClassVar[list[float]] = []

        def __call__(self, attn, hidden_states, encoder_hidden_states=None,
                     attention_mask=None, temb=None, gain: float = 1.0):  # fmt: skip
            GainProcessor.seen.append(gain)
            out = super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask)
            return out * gain

    original = dict(sd_pipe.unet.attn_processors)
    sd_pipe.unet.set_attn_processor(GainProcessor())
    try:
        kwargs = dict(cross_attention_kwargs={"gain": 0.5}, output_type="pt", **CALL)
        plain = sd_pipe("a cat", generator=torch.Generator().manual_seed(0), **kwargs).images
        GainProcessor.seen.clear()
        with AttentionRecorder(sd_pipe):
            traced = sd_pipe("a cat", generator=torch.Generator().manual_seed(0), **kwargs).images
        assert GainProcessor.seen and set(GainProcessor.seen) == {0.5}
        assert torch.equal(plain, traced)
    finally:
        sd_pipe.unet.set_attn_processor(original)


def test_load_pipeline_from_a_saved_folder(sd_pipe, tmp_path):
    sd_pipe.save_pretrained(tmp_path / "model")
    pipe = load_pipeline(str(tmp_path / "model"), dtype="float32", device="cpu")
    result = generate_with_maps(pipe, "a giraffe", ["giraffe"], **CALL)
    reference = generate_with_maps(sd_pipe, "a giraffe", ["giraffe"], **CALL)
    torch.testing.assert_close(result.maps[0].maps, reference.maps[0].maps)


def test_load_pipeline_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(WeightsError, match=r"(?s)org/not-a-model.*Hugging Face cache.*--model"):
        load_pipeline("org/not-a-model", device="cpu")
    with pytest.raises(WeightsError, match="does not exist"):
        load_pipeline(str(tmp_path / "missing" / "folder"), device="cpu")
    with pytest.raises(ConfigError, match="unknown dtype"):
        load_pipeline(str(tmp_path), dtype="float8", device="cpu")
