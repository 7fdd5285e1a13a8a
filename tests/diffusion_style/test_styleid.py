"""StyleID (brushwork.diffusion.styleid) on tiny SD 1.x / 2.x / XL pipelines."""

from __future__ import annotations

import pytest
import torch
from styleid_tiny import build_pipeline, smooth_image, unet_without_decoder_attention

from brushwork.diffusion.inversion import ddim_invert, ddim_reconstruct, make_schedule
from brushwork.diffusion.styleid import (
    StyleInjection,
    adain_latent,
    default_styleid_layers,
    feature_bytes,
    injected_attention,
    stylize_styleid,
)
from brushwork.errors import ConfigError

STEPS = 3


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    kinds = ("sd", "sd2", "sdxl")
    return {kind: build_pipeline(kind, tmp_path_factory.mktemp(kind)) for kind in kinds}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_default_layers_are_the_first_blocks_of_the_two_finest_decoder_levels(pipes):
    names = [layer.name for layer in default_styleid_layers(pipes["sd"].unet)]
    assert names == [
        f"up_blocks.{b}.attentions.{a}.transformer_blocks.0.attn1" for b in (0, 1) for a in (0, 1)
    ]


def test_gamma_one_and_temperature_one_leave_the_reconstruction_unchanged(pipes):
    """Features kept from a plain reconstruction, injected back into the same
    reconstruction as content *and* style with γ = 1 and T = 1: nothing changes."""
    pipe = pipes["sd"]
    noise = ddim_invert(pipe, smooth_image(0), steps=STEPS).noise
    patch = StyleInjection(pipe, gamma=1.0, temperature=1.0)
    with patch:
        with patch.capture({"content": 0, "style": 0}):
            plain = ddim_reconstruct(pipe, noise, steps=STEPS, step_hook=patch.at_step)
        with patch.inject():
            injected = ddim_reconstruct(pipe, noise, steps=STEPS, step_hook=patch.at_step)
        assert patch.injected_calls == STEPS * len(patch.layers)
        patch.temperature = 1.5  # the same features at T = 1.5 do change it
        with patch.inject():
            warmer = ddim_reconstruct(pipe, noise, steps=STEPS, step_hook=patch.at_step)
    assert torch.allclose(injected, plain, atol=1e-5)
    assert (warmer - plain).abs().max() > 1e-3


def _record_outputs(module: torch.nn.Module, kept: list[torch.Tensor]):
    return module.register_forward_hook(lambda m, args, out: kept.append(out.detach().clone()))


def test_keys_and_values_come_from_the_style_inversion_and_queries_mix_the_content(pipes):
    pipe = pipes["sd"]
    content, style = smooth_image(1), smooth_image(2)
    name = default_styleid_layers(pipe.unet)[-1].name
    attn = pipe.unet.get_submodule(name)
    keys, values, queries = [], [], []
    handles = [_record_outputs(attn.to_k, keys), _record_outputs(attn.to_v, values)]
    handles.append(_record_outputs(attn.to_q, queries))
    try:
        result = stylize_styleid(
            pipe, content, style, steps=STEPS, gamma=0.5, batch_inversions=True
        )
    finally:
        for handle in handles:
            handle.remove()
    # inversion: one batched call (content, style) per step; stylisation: one row
    injected_k = [k for k in keys if k.shape[0] == 1]
    injected_v = [v for v in values if v.shape[0] == 1]
    injected_q = [q for q in queries if q.shape[0] == 1]
    assert len(injected_k) == STEPS and len(injected_q) == 2 * STEPS
    # the layer's inputs, recomputed independently: the style's (and content's) own
    # inversion trajectory, the UNet at (latent below step j, timestep of step j)
    schedule = make_schedule(pipe, STEPS)
    from brushwork.diffusion.editing import encode_text, predict_noise

    trajectories = [ddim_invert(pipe, image, steps=STEPS).latents for image in (style, content)]
    seen = []
    hook = attn.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    try:
        text = [encode_text(pipe, "")[0]]
        for trajectory in trajectories:
            for j in range(STEPS):
                with torch.no_grad():
                    predict_noise(pipe, trajectory[j + 1], schedule.timesteps[j], text)
    finally:
        hook.remove()
    style_inputs, content_inputs = seen[:STEPS], seen[STEPS:]
    with torch.no_grad():
        for j in range(STEPS):
            assert torch.allclose(injected_k[j], attn.to_k(style_inputs[j]), atol=1e-4)
            assert torch.allclose(injected_v[j], attn.to_v(style_inputs[j]), atol=1e-4)
            assert not torch.allclose(injected_k[j], attn.to_k(content_inputs[j]), atol=1e-3)
            # second to_q call of the step: the content's query (the first: the image's own)
            assert torch.allclose(injected_q[2 * j + 1], attn.to_q(content_inputs[j]), atol=1e-4)
    assert result.layers[-1] == name


def test_injected_attention_is_the_formula(pipes):
    attn = pipes["sd"].unet.get_submodule(default_styleid_layers(pipes["sd"].unet)[0].name)
    g = torch.Generator().manual_seed(0)
    channels = attn.to_q.in_features
    x, c = torch.randn(1, 6, channels, generator=g), torch.randn(1, 6, channels, generator=g)
    s = torch.randn(1, 9, channels, generator=g)  # the style may have other token counts
    with torch.no_grad():
        out = injected_attention(attn, x, c, s, gamma=0.75, temperature=1.5)
        d = attn.to_q.weight.double()
        q = 0.75 * (c.double() @ d.T) + 0.25 * (x.double() @ d.T)
        k, v = s.double() @ attn.to_k.weight.double().T, s.double() @ attn.to_v.weight.double().T
        heads = attn.heads
        q, k, v = (t.view(1, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (q, k, v))
        weights = torch.softmax(1.5 * attn.scale * q @ k.transpose(-1, -2), dim=-1)
        mixed = (weights @ v).transpose(1, 2).reshape(1, 6, -1)
        expected = mixed @ attn.to_out[0].weight.double().T + attn.to_out[0].bias.double()
    assert torch.allclose(out.double(), expected, atol=1e-5)


def test_adain_gives_the_style_latent_statistics():
    g = torch.Generator().manual_seed(0)
    content = torch.randn(1, 4, 8, 8, generator=g) * 3 + 1
    style = torch.randn(1, 4, 10, 6, generator=g) * torch.tensor([0.5, 1, 2, 4]).view(1, 4, 1, 1)
    out = adain_latent(content, style)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), style.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(out.std(dim=(0, 2, 3)), style.std(dim=(0, 2, 3)), atol=1e-5)
    # and it keeps the content's layout: a per-channel affine map of it
    assert torch.allclose(adain_latent(content, content), content, atol=1e-5)


def test_processors_restored_after_an_exception_and_after_a_run(pipes):
    pipe = pipes["sd"]
    before = dict(pipe.unet.attn_processors)

    def fail(phase, done, total):
        if phase == "stylisation" and done == 2:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        stylize_styleid(pipe, smooth_image(0), smooth_image(1), steps=STEPS, callback=fail)
    after = pipe.unet.attn_processors
    assert all(after[key] is processor for key, processor in before.items())
    stylize_styleid(pipe, smooth_image(0), smooth_image(1), steps=1)
    assert all(pipe.unet.attn_processors[k] is p for k, p in before.items())


def test_same_inputs_same_image_and_each_part_changes_it(pipes):
    pipe = pipes["sd"]
    content, style = smooth_image(3), smooth_image(4)
    phases = []
    first = stylize_styleid(pipe, content, style, steps=STEPS, callback=lambda *a: phases.append(a))
    assert phases[0] == ("inversion", 1, 2 * STEPS)  # on a CPU: one image after the other
    assert phases[-1] == ("stylisation", STEPS, STEPS)
    again = stylize_styleid(pipe, content, style, steps=STEPS)
    assert torch.equal(first.image, again.image)
    assert first.image.shape == (3, 32, 32) and 0 <= first.image.min() <= first.image.max() <= 1
    other_style = stylize_styleid(pipe, content, smooth_image(5), steps=STEPS)
    no_injection = stylize_styleid(pipe, content, style, steps=STEPS, inject=False)
    no_adain = stylize_styleid(pipe, content, style, steps=STEPS, init_adain=False)
    for other in (other_style, no_injection, no_adain):
        assert (other.latent - first.latent).abs().max() > 1e-4
    assert no_injection.feature_bytes == 0


def test_cache_holds_the_injected_steps_only_and_matches_the_bound(pipes):
    pipe = pipes["sdxl"]  # the SDXL layout carries over (pooled text, time ids)
    content, style = smooth_image(6), smooth_image(7, size=48)  # other size: two inversions
    full = stylize_styleid(pipe, content, style, steps=4)
    part = stylize_styleid(pipe, content, style, steps=4, injection_steps=2)
    bound = feature_bytes(pipe.unet, (16, 16), (24, 24), steps=4)
    assert full.feature_bytes == bound
    assert part.feature_bytes == bound // 2
    assert full.image.shape == (3, 32, 32)


def test_errors(pipes, tmp_path):

    pipe = pipes["sd"]
    with pytest.raises(ConfigError, match=r"gamma .* \[0, 1\]"):
        stylize_styleid(pipe, smooth_image(0), smooth_image(1), gamma=1.5, steps=1)
    with pytest.raises(ConfigError, match="temperature"):
        stylize_styleid(pipe, smooth_image(0), smooth_image(1), temperature=0, steps=1)
    with pytest.raises(ConfigError, match="multiples of 4"):
        stylize_styleid(pipe, torch.rand(3, 30, 32), smooth_image(1), steps=1)
    with pytest.raises(ConfigError, match="no decoder self-attention layer"):
        stylize_styleid(pipe, smooth_image(0), smooth_image(1), steps=1, layers=["nope.attn1"])
    plain = unet_without_decoder_attention()
    with pytest.raises(ConfigError, match="no self-attention layers in its decoder"):
        StyleInjection(plain)
    with pytest.raises(ConfigError, match="needs a Stable Diffusion UNet"):
        StyleInjection(torch.nn.Linear(2, 2))


def test_sd2_v_prediction_runs_and_injection_matters(pipes):
    pipe = pipes["sd2"]  # linear projections, per-level head counts, v-prediction
    content, style = smooth_image(8), smooth_image(9)
    injected = stylize_styleid(pipe, content, style, steps=STEPS)
    plain = stylize_styleid(pipe, content, style, steps=STEPS, inject=False)
    assert torch.isfinite(injected.latent).all()
    assert (injected.latent - plain.latent).abs().max() > 1e-4


def test_batched_and_separate_inversions_give_the_same_result(pipes):
    pipe = pipes["sd"]
    content, style = smooth_image(10), smooth_image(11)
    phases = []
    batched = stylize_styleid(
        pipe, content, style, steps=STEPS, batch_inversions=True,
        callback=lambda *a: phases.append(a),
    )  # fmt: skip
    assert phases[STEPS - 1] == ("inversion", STEPS, STEPS)  # one call per step for both
    separate = stylize_styleid(pipe, content, style, steps=STEPS, batch_inversions=False)
    assert torch.allclose(batched.latent, separate.latent, atol=1e-4)
    assert batched.feature_bytes == separate.feature_bytes
