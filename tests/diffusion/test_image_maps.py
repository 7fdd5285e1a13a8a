"""Word maps of an existing image (maps_of_image) on tiny SD, SDXL, SD3 and Flux pipelines."""

from __future__ import annotations

import pytest
import torch

from brushwork.diffusion.attention import AttentionRecorder, RecordingSettings
from brushwork.diffusion.image_maps import default_timesteps, input_size, maps_of_image
from brushwork.diffusion.tokens import WordNotFoundError, prompt_tokens, word_positions
from brushwork.errors import ConfigError, ImageError

CAPTION = "a giraffe in the painting style"


def _image(height: int = 40, width: int = 56, seed: int = 0) -> torch.Tensor:
    return torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))


def _reference(pipe, image, timesteps, seed, words):
    """encode (latent mean × scaling), x_t = √ᾱ·x0 + √(1−ᾱ)·ε, one UNet call per timestep."""
    from brushwork.image import resize_to

    size = input_size(pipe, tuple(image.shape[-2:]))
    with torch.no_grad():
        pixels = resize_to(image, *size)[None] * 2 - 1
        x0 = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor
        eps = torch.randn(x0.shape, generator=torch.Generator("cpu").manual_seed(seed))
        embeds, _ = pipe.encode_prompt(CAPTION, "cpu", 1, False)
        tokens = prompt_tokens(pipe.tokenizer, CAPTION)
        settings = RecordingSettings(max_tokens=tokens.end)
        with AttentionRecorder(pipe, settings, guidance=False) as recorder:
            for t in timesteps:
                alpha = pipe.scheduler.alphas_cumprod[int(t)]
                x_t = alpha**0.5 * x0 + (1 - alpha) ** 0.5 * eps
                pipe.unet(x_t, torch.tensor([int(t)]), encoder_hidden_states=embeds)
            token_maps = recorder.token_maps()[0]
    positions = [word_positions(pipe.tokenizer, tokens, w) for w in words]
    return torch.stack([token_maps[p].mean(dim=0) for p in positions])


def test_equals_a_manual_encode_noise_record_loop(sd_pipe):
    image = _image()
    result = maps_of_image(
        sd_pipe, image, CAPTION, ["giraffe", "painting"], timesteps=[700, 400], seed=3
    )
    expected = _reference(sd_pipe, image, [700, 400], 3, ["giraffe", "painting"])
    torch.testing.assert_close(result.maps[0].maps, expected, rtol=0, atol=0)
    assert result.extra["steps_recorded"] == [0, 1]
    assert result.extra["timesteps"] == [700.0, 400.0]


def test_same_seed_same_maps_other_timesteps_or_seed_other_maps(sd_pipe):
    image = _image()
    first = maps_of_image(sd_pipe, image, CAPTION, ["giraffe"], seed=1).maps[0].maps
    again = maps_of_image(sd_pipe, image, CAPTION, ["giraffe"], seed=1).maps[0].maps
    assert torch.equal(first, again)
    other_t = maps_of_image(sd_pipe, image, CAPTION, ["giraffe"], seed=1, timesteps=[100, 900])
    other_seed = maps_of_image(sd_pipe, image, CAPTION, ["giraffe"], seed=2)
    assert not torch.allclose(first, other_t.maps[0].maps)
    assert not torch.allclose(first, other_seed.maps[0].maps)


def test_default_timesteps_are_the_middle_half_high_noise_first(sd_pipe):
    assert default_timesteps(sd_pipe) == [750.0, 625.0, 500.0, 375.0, 250.0]


class _Calls:
    def __init__(self, module):
        self.count = 0
        self.handle = module.register_forward_pre_hook(self._seen)

    def _seen(self, module, args):
        self.count += 1


def test_bad_inputs_refused_before_any_model_runs(sd_pipe):
    unet, vae = _Calls(sd_pipe.unet), _Calls(sd_pipe.vae.encoder)
    try:
        with pytest.raises(WordNotFoundError, match="'zebra' is not in the prompt"):
            maps_of_image(sd_pipe, _image(), CAPTION, ["giraffe", "zebra"])
        with pytest.raises(ImageError, match="not an image"):
            maps_of_image(sd_pipe, "photo.jpg", CAPTION, ["giraffe"])
        with pytest.raises(ImageError, match="not an image"):
            maps_of_image(sd_pipe, torch.rand(4, 8, 8), CAPTION, ["giraffe"])
        with pytest.raises(ConfigError, match="out of range"):
            maps_of_image(sd_pipe, _image(), CAPTION, ["giraffe"], timesteps=[1000])
        with pytest.raises(ConfigError, match="no 't5' text stream"):
            maps_of_image(sd_pipe, _image(), CAPTION, ["giraffe"], stream="t5")
        with pytest.raises(ConfigError, match="caption is empty"):
            maps_of_image(sd_pipe, _image(), " ", ["giraffe"])
        settings = RecordingSettings(blocks=("joint",))
        with pytest.raises(ConfigError, match="unknown block kind"):
            maps_of_image(sd_pipe, _image(), CAPTION, ["giraffe"], settings=settings)
    finally:
        unet.handle.remove()
        vae.handle.remove()
    assert unet.count == 0 and vae.count == 0


def test_non_square_input_gives_maps_at_the_input_size(sd_pipe):
    image = _image(40, 72)
    result = maps_of_image(sd_pipe, image, CAPTION, ["giraffe"], timesteps=[500])
    words = result.maps[0]
    assert words.image_size == (40, 72)
    assert words.heatmaps().shape == (1, 40, 72)
    assert words.masks(0.4).shape == (1, 1, 40, 72)
    assert torch.equal(result.images[0], image)
    h, w = result.extra["input_size"]
    assert words.maps.shape[-2:] == (h // 2, w // 2)  # the tiny VAE's factor is 2
    assert abs(w / h - 72 / 40) < 0.2


def test_sdxl_image_maps(sdxl_pipe):
    image = _image()
    first = maps_of_image(sdxl_pipe, image, CAPTION, ["giraffe", "style"], timesteps=[600])
    again = maps_of_image(sdxl_pipe, image, CAPTION, ["giraffe", "style"], timesteps=[600])
    assert first.maps[0].maps.shape[0] == 2
    assert torch.isfinite(first.token_maps).all() and first.token_maps.sum() > 0
    assert torch.equal(first.maps[0].maps, again.maps[0].maps)


@pytest.fixture(scope="module")
def sd3_pipe(tmp_path_factory):
    tiny_sd3 = pytest.importorskip("tiny_sd3")
    return tiny_sd3.build_sd3_pipeline(tmp_path_factory.mktemp("sd3_image"))


@pytest.fixture(scope="module")
def flux_pipe(tmp_path_factory):
    tiny_flux = pytest.importorskip("tiny_flux")
    folder = tmp_path_factory.mktemp("flux_image")
    return tiny_flux.build_flux_pipeline(folder, guidance_embeds=True)


def _needs_text_streams(pipe):
    from brushwork.diffusion.backbones import backbone_for

    try:
        backbone_for(pipe).text_streams(pipe)
    except NotImplementedError:
        pytest.skip("this family's adapter has no text_streams() yet")


@pytest.mark.parametrize("stream", ["clip", "t5"])
def test_sd3_image_maps_end_to_end(sd3_pipe, stream):
    _needs_text_streams(sd3_pipe)
    image = _image(40, 56)
    result = maps_of_image(sd3_pipe, image, CAPTION, ["giraffe"], stream=stream, timesteps=[500])
    h, w = result.extra["input_size"]  # the tiny VAE keeps the size; patch 2
    assert result.maps[0].maps.shape == (1, h // 2, w // 2)
    assert result.maps[0].heatmaps().shape == (1, 40, 56)
    assert torch.isfinite(result.token_maps).all() and result.maps[0].maps.sum() > 0


def test_flux_image_maps_end_to_end(flux_pipe):
    _needs_text_streams(flux_pipe)
    image = _image(40, 56)
    result = maps_of_image(flux_pipe, image, CAPTION, ["giraffe"], side=32, seed=4)
    h, w = result.extra["input_size"]  # 2×2 packing halves the (unreduced) latents
    assert result.maps[0].maps.shape == (1, h // 2, w // 2)
    assert result.maps[0].heatmaps().shape == (1, 40, 56)
    assert result.extra["steps_recorded"] == [0, 1, 2, 3, 4]
    again = maps_of_image(flux_pipe, image, CAPTION, ["giraffe"], side=32, seed=4)
    assert torch.equal(result.maps[0].maps, again.maps[0].maps)


@pytest.fixture(scope="module")
def klein_pipe(tmp_path_factory):
    tiny_flux = pytest.importorskip("tiny_flux")
    folder = tmp_path_factory.mktemp("klein_image")
    return tiny_flux.build_flux2_klein_pipeline(folder, default_text_layers=True)


def test_flux2_image_maps_end_to_end(klein_pipe):
    from brushwork.diffusion.image_maps import encode_image

    image = _image(40, 56)
    result = maps_of_image(klein_pipe, image, CAPTION, ["giraffe"], side=32, seed=4)
    h, w = result.extra["input_size"]  # the tiny VAE keeps the size; 2×2 patchified
    assert result.maps[0].maps.shape == (1, h // 2, w // 2)
    assert result.maps[0].heatmaps().shape == (1, 40, 56)
    assert result.extra["steps_recorded"] == [0, 1, 2, 3, 4]
    assert torch.isfinite(result.token_maps).all() and result.maps[0].maps.sum() > 0
    # the latents are the pipeline's own reference-image encoding (batch-norm normalised)
    latents = encode_image(klein_pipe, image, (h, w))
    assert latents.shape == (1, 4 * klein_pipe.vae.config.latent_channels, h // 2, w // 2)
    again = maps_of_image(klein_pipe, image, CAPTION, ["giraffe"], side=32, seed=4)
    assert torch.equal(result.maps[0].maps, again.maps[0].maps)
    other = maps_of_image(klein_pipe, image, CAPTION, ["giraffe"], side=32, seed=5)
    assert not torch.equal(result.maps[0].maps, other.maps[0].maps)  # the noise matters


def test_flux2_default_timesteps_use_the_empirical_shift(klein_pipe):
    from diffusers.pipelines.flux2.pipeline_flux2 import compute_empirical_mu

    from brushwork.diffusion.image_maps import DEFAULT_FRACTIONS, default_timesteps

    steps = default_timesteps(klein_pipe, (16, 16))
    scheduler = type(klein_pipe.scheduler).from_config(klein_pipe.scheduler.config)
    if scheduler.config.get("use_dynamic_shifting", False):
        scheduler.set_timesteps(
            sigmas=list(reversed(DEFAULT_FRACTIONS)), mu=compute_empirical_mu(64, 50)
        )
    else:
        scheduler.set_timesteps(sigmas=list(reversed(DEFAULT_FRACTIONS)))
    assert steps == [float(t) for t in scheduler.timesteps]
    assert steps == sorted(steps, reverse=True) and len(steps) == len(DEFAULT_FRACTIONS)
