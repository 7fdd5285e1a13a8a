"""DDIM inversion and reconstruction (brushwork.diffusion.inversion) on tiny pipelines."""

from __future__ import annotations

import pytest
import torch
from styleid_tiny import build_pipeline, smooth_image

from brushwork.diffusion.inversion import (
    ddim_inversion_trajectory,
    ddim_invert,
    ddim_reconstruct,
    ddim_step,
    make_schedule,
)
from brushwork.errors import ConfigError

KINDS = ("sd", "sd2", "sdxl")


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    return {kind: build_pipeline(kind, tmp_path_factory.mktemp(kind)) for kind in KINDS}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_ddim_step_is_its_own_inverse():
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    there = ddim_step(x, eps, 0.9, 0.05)
    assert torch.allclose(ddim_step(there, eps, 0.05, 0.9), x, atol=1e-5)


def test_schedule_matches_the_scheduler(pipes):
    schedule = make_schedule(pipes["sd"], 5)
    assert schedule.timesteps.tolist() == [801, 601, 401, 201, 1]
    cumulative = pipes["sd"].scheduler.alphas_cumprod
    assert schedule.alphas[0] == pytest.approx(float(cumulative[801]))
    assert schedule.alphas[-1] == pytest.approx(float(cumulative[0]))  # set_alpha_to_one=False
    assert make_schedule(pipes["sdxl"], 5).alphas[-1] == 1.0  # DDIM default for Euler configs


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_inversion_then_reconstruction_is_exact_when_eps_does_not_depend_on_x(pipes, kind):
    """With ε independent of the latent the DDIM approximation is exact: the round trip
    must give z_0 back to float precision (any schedule mismatch would be O(1))."""
    pipe = pipes[kind]
    conv = pipe.unet.conv_out
    saved = conv.weight.detach().clone()
    try:
        with torch.no_grad():
            conv.weight.zero_()  # ε = the bias, per channel: independent of x, nonzero
        inversion = ddim_invert(pipe, smooth_image(0), steps=6)
        z0 = ddim_reconstruct(pipe, inversion.noise, steps=6)
    finally:
        with torch.no_grad():
            conv.weight.copy_(saved)
    assert (inversion.noise - inversion.clean).abs().max() > 0.1  # it did move
    scale = inversion.clean.abs().max()
    assert (z0 - inversion.clean).abs().max() <= 1e-5 * max(1.0, float(scale))


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_inversion_matches_diffusers_inverse_scheduler(pipes, kind):
    """ε-models: the same steps as diffusers' DDIMInverseScheduler. (For v-prediction it
    converts v with the lower step's alpha, ours with the UNet's timestep's: see the
    module docstring.)"""
    from diffusers import DDIMInverseScheduler

    from brushwork.diffusion.editing import _time_ids, encode_image, encode_text

    pipe = pipes[kind]
    image = smooth_image(1)
    inversion = ddim_invert(pipe, image, steps=4)
    inverse = DDIMInverseScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    inverse.set_timesteps(4)
    x = encode_image(pipe, image)
    cond, _ = encode_text(pipe, "")
    time_ids = _time_ids(pipe, 32, 32)
    for t in inverse.timesteps:
        out = pipe.unet(
            x,
            t,
            encoder_hidden_states=cond.embeds,
            added_cond_kwargs=None
            if time_ids is None
            else {"text_embeds": cond.pooled, "time_ids": time_ids},
        ).sample
        x = inverse.step(out, t, x).prev_sample
    assert torch.allclose(inversion.noise, x, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_reconstruction_matches_the_ddim_scheduler(pipes, kind):
    from brushwork.diffusion.editing import _time_ids, encode_text
    from brushwork.diffusion.inversion import ddim_scheduler

    pipe = pipes[kind]
    noise = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    ours = ddim_reconstruct(pipe, noise, steps=4)
    scheduler = ddim_scheduler(pipe)
    scheduler.set_timesteps(4)
    cond, _ = encode_text(pipe, "")
    time_ids = _time_ids(pipe, 32, 32)
    x = noise
    for t in scheduler.timesteps:
        extra = None if time_ids is None else {"text_embeds": cond.pooled, "time_ids": time_ids}
        out = pipe.unet(x, t, encoder_hidden_states=cond.embeds, added_cond_kwargs=extra).sample
        x = scheduler.step(out, t, x).prev_sample
    assert torch.allclose(ours, x, atol=1e-4, rtol=1e-4)


def test_trajectory_hooks_and_determinism(pipes):
    pipe = pipes["sd"]
    image = smooth_image(3)
    seen, progress = [], []
    result = ddim_invert(
        pipe,
        image,
        steps=3,
        step_hook=seen.append,
        callback=lambda done, total: progress.append((done, total)),
    )
    assert seen == [2, 1, 0]  # inversion runs the denoising steps backwards
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert result.latents.shape == (4, 1, 4, 16, 16)
    trajectory = ddim_inversion_trajectory(pipe, image, steps=3)
    assert torch.equal(trajectory, result.latents[:, 0])  # same input, same result
    short = ddim_invert(pipe, image, steps=3, keep_trajectory=False)
    assert torch.equal(short.latents, result.latents[[0, 3]])
    batch = ddim_invert(pipe, torch.stack([image, smooth_image(4)]), steps=3)
    assert torch.allclose(batch.latents[:, :1], result.latents, atol=1e-5)


def test_guided_inversion_and_errors(pipes):
    pipe = pipes["sd"]
    plain = ddim_invert(pipe, smooth_image(5), "a cat", steps=2)
    guided = ddim_invert(pipe, smooth_image(5), "a cat", steps=2, guidance_scale=2.0)
    assert not torch.allclose(plain.noise, guided.noise)
    with pytest.raises(ConfigError, match="multiples of 4"):
        ddim_invert(pipe, torch.rand(3, 30, 32), steps=2)
    with pytest.raises(ConfigError, match="at least 1 step"):
        ddim_invert(pipe, smooth_image(0), steps=0)
    with pytest.raises(ConfigError, match="not both"):
        ddim_invert(pipe, smooth_image(0), latents=torch.zeros(1, 4, 8, 8))
    with pytest.raises(ConfigError, match="tokens long"):
        ddim_invert(pipe, smooth_image(0), "word " * 100, steps=1)
