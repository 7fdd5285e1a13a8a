"""The recorder against a straightforward DAAM reference on tiny SD and SDXL pipelines."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from brushwork.diffusion.attention import (
    AttentionRecorder,
    RecordingSettings,
    bicubic_matrix,
    cross_attention_layers,
)
from brushwork.errors import ConfigError

PROMPT = "a giraffe painting in the cubist style"


def _run(pipe, prompt=PROMPT, *, seed=0, steps=3, height=64, width=64, **kwargs):
    generator = torch.Generator().manual_seed(seed)
    return pipe(
        prompt,
        num_inference_steps=steps,
        height=height,
        width=width,
        generator=generator,
        output_type="pt",
        **kwargs,
    ).images


def reference_maps(
    pipe, *, guidance: bool, blocks=("down", "up"), clamp="after-steps", **run_kwargs
):
    """DAAM as the spec writes it, from queries and keys captured by plain hooks.

    softmax(q kᵀ / √d) per head in float64 on the conditional rows; per (layer, head),
    the raw maps summed over steps, upsampled bicubically (F.interpolate) to the grid
    and clamped at 0 once (``clamp="after-steps"``, daam 0.2.0's order) — or each
    step's upsampled map clamped before the sum (``"per-step"``); then the mean over all
    (layer, head) maps. Returns (images, 77, gh, gw).
    """
    unet = pipe.unet
    layers = [layer for layer in cross_attention_layers(unet) if layer.block in blocks]
    captured: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    state = {"step": -1, "latent": None}

    def on_unet(module, args, kwargs):
        state["step"] += 1
        sample = args[0] if args else kwargs["sample"]
        state["latent"] = tuple(sample.shape[-2:])

    handles = [unet.register_forward_pre_hook(on_unet, with_kwargs=True)]
    for layer in layers:
        attn = unet.get_submodule(layer.name)
        for part in ("q", "k"):

            def hook(module, args, output, name=layer.name, part=part):
                captured.setdefault((state["step"], name), {})[part] = output.detach()

            handles.append(getattr(attn, f"to_{part}").register_forward_hook(hook))
    try:
        _run(pipe, **run_kwargs)
    finally:
        for handle in handles:
            handle.remove()

    lat_h, lat_w = state["latent"]
    top = min(layer.level for layer in layers)
    grid = (lat_h >> top, lat_w >> top)
    sums: dict[tuple[str, int], torch.Tensor] = {}
    for (_step, name), qk in captured.items():
        attn = unet.get_submodule(name)
        q, k = qk["q"].double(), qk["k"].double()
        if guidance:
            q, k = q[q.shape[0] // 2 :], k[k.shape[0] // 2 :]
        n, queries, channels = q.shape
        heads = attn.heads
        scale = 1 / math.sqrt(channels // heads)
        factor = int(math.sqrt(lat_h * lat_w / queries))
        h, w = lat_h // factor, lat_w // factor
        qh = q.view(n, queries, heads, -1).transpose(1, 2)
        kh = k.view(n, k.shape[1], heads, -1).transpose(1, 2)
        probs = torch.softmax(qh @ kh.transpose(-1, -2) * scale, dim=-1)  # (n, H, S, T)
        maps = probs.permute(0, 1, 3, 2).reshape(n * heads, -1, h, w)
        if clamp == "per-step":
            maps = F.interpolate(maps, size=grid, mode="bicubic", align_corners=False)
            maps = maps.clamp(min=0)
        maps = maps.view(n, heads, *maps.shape[1:])
        for head in range(heads):
            key = (name, head)
            sums[key] = sums.get(key, 0) + maps[:, head]
    if clamp == "after-steps":
        for key, summed in sums.items():
            if summed.shape[-2:] != grid:
                summed = F.interpolate(summed, size=grid, mode="bicubic", align_corners=False)
            sums[key] = summed.clamp(min=0)
    return torch.stack(list(sums.values())).mean(dim=0).float()


def test_both_clamp_orders_equal_their_reference(sd_pipe):
    """daam's order (clamp once after the step sum) is the default; per-step on request."""
    results = {}
    for clamp in ("after-steps", "per-step"):
        with AttentionRecorder(sd_pipe, RecordingSettings(clamp=clamp)) as recorder:
            _run(sd_pipe, height=96, width=64)
            results[clamp] = recorder.token_maps()
        expected = reference_maps(sd_pipe, guidance=True, clamp=clamp, height=96, width=64)
        torch.testing.assert_close(results[clamp], expected, atol=1e-6, rtol=1e-5)
    assert RecordingSettings().clamp == "after-steps"
    # The two orders are different quantities (they differ where an overshoot dips below 0).
    assert not torch.equal(results["after-steps"], results["per-step"])


@pytest.mark.parametrize("pipe_name", ["sd_pipe", "sdxl_pipe"])
def test_maps_equal_reference_and_image_is_unchanged(pipe_name, request):
    pipe = request.getfixturevalue(pipe_name)
    plain = _run(pipe)
    with AttentionRecorder(pipe) as recorder:
        recorded = _run(pipe)
        maps = recorder.token_maps()
    assert torch.equal(plain, recorded)
    expected = reference_maps(pipe, guidance=True)
    assert maps.shape == expected.shape
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-5)
    assert recorder.steps_recorded == [0, 1, 2]


def test_sd2_shaped_pipeline(tmp_path):
    from tiny_sd import build_sd_pipeline

    pipe = build_sd_pipeline(tmp_path, sd2=True)
    heads = {
        pipe.unet.get_submodule(layer.name).heads for layer in cross_attention_layers(pipe.unet)
    }
    assert len(heads) == 2  # heads differ per level, as in SD 2.x
    plain = _run(pipe, steps=2)
    with AttentionRecorder(pipe) as recorder:
        assert torch.equal(_run(pipe, steps=2), plain)
        maps = recorder.token_maps()
    torch.testing.assert_close(
        maps, reference_maps(pipe, guidance=True, steps=2), atol=1e-5, rtol=1e-5
    )


def test_non_square_and_no_guidance(sd_pipe):
    with AttentionRecorder(sd_pipe) as recorder:
        _run(sd_pipe, height=64, width=96, guidance_scale=1.0)
        maps = recorder.token_maps()
    assert maps.shape == (1, 77, 32, 48)
    expected = reference_maps(sd_pipe, guidance=False, height=64, width=96, guidance_scale=1.0)
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-5)


def test_several_images_per_prompt_keep_their_own_maps(sd_pipe):
    with AttentionRecorder(sd_pipe) as recorder:
        _run(sd_pipe, num_images_per_prompt=2)
        maps = recorder.token_maps()
    assert maps.shape[0] == 2
    expected = reference_maps(sd_pipe, guidance=True, num_images_per_prompt=2)
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(maps[0], maps[1])


def test_processors_restored_after_exit_and_after_an_exception(sd_pipe):
    before = dict(sd_pipe.unet.attn_processors)
    with AttentionRecorder(sd_pipe):
        during = dict(sd_pipe.unet.attn_processors)
    assert sd_pipe.unet.attn_processors == before
    assert any(during[k] is not before[k] for k in before)

    def explode(pipe, step, timestep, callback_kwargs):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), AttentionRecorder(sd_pipe):
        _run(sd_pipe, callback_on_step_end=explode)
    assert sd_pipe.unet.attn_processors == before
    assert not sd_pipe.unet._forward_pre_hooks
    attn = sd_pipe.unet.get_submodule(cross_attention_layers(sd_pipe.unet)[0].name)
    assert not attn.to_q._forward_hooks


def test_step_range_layers_and_kept_maps_add_up(sd_pipe):
    settings = RecordingSettings(
        steps=(1, 2), keep_per_layer=True, keep_per_step=True, clamp="per-step"
    )
    with AttentionRecorder(sd_pipe, settings) as recorder:
        _run(sd_pipe)
        total = recorder.token_maps()
        per_step = recorder.step_maps()
        per_layer = recorder.layer_maps()
    assert recorder.steps_recorded == [1, 2]
    torch.testing.assert_close(per_step.sum(dim=0), total)
    heads = {name: sd_pipe.unet.get_submodule(name).heads for name in per_layer}
    weighted = sum(per_layer[n] * heads[n] for n in per_layer) / sum(heads.values())
    torch.testing.assert_close(weighted, total)
    assert all(n.startswith(("down", "up")) for n in per_layer)


def test_mid_block_can_be_added(sd_pipe):
    settings = RecordingSettings(blocks=("down", "mid", "up"))
    with AttentionRecorder(sd_pipe, settings) as recorder:
        _run(sd_pipe)
        maps = recorder.token_maps()
    expected = reference_maps(sd_pipe, guidance=True, blocks=("down", "mid", "up"))
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-5)


def test_factors_choose_resolutions(sd_pipe):
    full = RecordingSettings(factors=(1,), keep_per_layer=True)
    with AttentionRecorder(sd_pipe, full) as recorder:
        _run(sd_pipe)
        layers = recorder.layer_maps()
    levels = {layer.name: layer.level for layer in cross_attention_layers(sd_pipe.unet)}
    assert layers and all(levels[name] == 0 for name in layers)
    with pytest.raises(ConfigError, match="factors"):
        RecordingSettings(factors=(0,)).validate()


def test_bad_settings_and_no_recording():
    with pytest.raises(ConfigError, match="unknown block kind"):
        RecordingSettings(blocks=("middle",)).validate()
    with pytest.raises(ConfigError, match="max_tokens"):
        RecordingSettings(max_tokens=0).validate()


def test_results_before_generation_are_a_clear_error(sd_pipe):
    with (
        AttentionRecorder(sd_pipe) as recorder,
        pytest.raises(ConfigError, match="no text attention"),
    ):
        recorder.token_maps()


@pytest.mark.parametrize(("size_in", "size_out"), [(8, 16), (16, 64), (12, 48), (5, 7)])
def test_bicubic_matrix_equals_interpolate(size_in, size_out):
    x = torch.rand(3, size_in, size_in + 2)
    expected = F.interpolate(
        x[None], size=(size_out, size_out + 3), mode="bicubic", align_corners=False
    )[0]
    got = bicubic_matrix(size_in, size_out) @ x @ bicubic_matrix(size_in + 2, size_out + 3).T
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_upsample_of_word_maps_equals_interpolate():
    from brushwork.diffusion.maps import upsample

    maps = torch.rand(4, 16, 12, generator=torch.Generator().manual_seed(2))
    expected = F.interpolate(maps[:, None], size=(70, 45), mode="bicubic", align_corners=False)
    torch.testing.assert_close(upsample(maps, (70, 45)), expected[:, 0], atol=1e-6, rtol=1e-5)


def test_kept_layer_maps_add_up_in_daam_order(sd_pipe):
    settings = RecordingSettings(keep_per_layer=True, keep_per_step=True)
    with AttentionRecorder(sd_pipe, settings) as recorder:
        _run(sd_pipe)
        total = recorder.token_maps()
        per_layer = recorder.layer_maps()
        per_step = recorder.step_maps()
    heads = {name: sd_pipe.unet.get_submodule(name).heads for name in per_layer}
    weighted = sum(per_layer[n] * heads[n] for n in per_layer) / sum(heads.values())
    torch.testing.assert_close(weighted, total)
    # Each step clamped on its own: equal to the total up to the bicubic overshoot.
    torch.testing.assert_close(per_step.sum(dim=0), total, atol=1e-3, rtol=1e-2)
