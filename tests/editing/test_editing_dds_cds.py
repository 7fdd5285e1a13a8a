"""DDS / CDS on the tiny SD pipeline."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from brushwork.diffusion.editing import (
    Editor,
    EditSettings,
    check_prompt,
    edit_image,
    encode_text,
    fit_image,
    latent_multiple,
    predict_noise,
)
from brushwork.diffusion.editing_features import (
    SelfAttentionFeatures,
    decoder_self_attention_layers,
)
from brushwork.errors import ConfigError, ImageError

FAST = EditSettings(iterations=3, num_patches=16, seed=1)


def _latent(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_dds_gradient_is_the_difference_of_guided_predictions(sd_edit_pipe):
    pipe = sd_edit_pipe
    settings = replace(FAST, method="dds")
    editor = Editor(pipe, "a cat", "a dog", settings)
    z_src = _latent(0)
    z_trg = (z_src + 0.3 * _latent(1)).requires_grad_(True)
    t = torch.tensor([500])
    eps = _latent(2)
    dds, cut, _ = editor.losses(z_src, z_trg, t, eps)
    dds.backward()
    # the same predictions made directly, one UNet call per branch
    a = pipe.scheduler.alphas_cumprod[500]
    cond_s, uncond_s = encode_text(pipe, "a cat")
    cond_t, uncond_t = encode_text(pipe, "a dog")

    def guided(z, cond, uncond):
        zt = a.sqrt() * z + (1 - a).sqrt() * eps
        with torch.no_grad():
            e_u = pipe.unet(zt, t, encoder_hidden_states=uncond.embeds).sample
            e_c = pipe.unet(zt, t, encoder_hidden_states=cond.embeds).sample
        return e_u + 7.5 * (e_c - e_u)

    expected = guided(z_trg.detach(), cond_t, uncond_t) - guided(z_src, cond_s, uncond_s)
    assert expected.abs().max() > 1e-3
    torch.testing.assert_close(z_trg.grad * 64 / 2000, expected, atol=5e-5, rtol=1e-4)
    assert float(cut) == 0.0


def test_cds_with_cut_weight_zero_equals_dds(sd_edit_pipe):
    z = _latent(3)
    dds, _ = Editor(sd_edit_pipe, "a cat", "a dog", replace(FAST, method="dds")).run(z)
    cds, _ = Editor(sd_edit_pipe, "a cat", "a dog", replace(FAST, cut_weight=0.0)).run(z)
    assert torch.equal(dds, cds)
    assert not torch.equal(dds, z)
    # the CDS path (3-row no-grad call + separate target row) gives the same DDS term
    tiny, history = Editor(sd_edit_pipe, "a cat", "a dog", replace(FAST, cut_weight=1e-12)).run(z)
    torch.testing.assert_close(tiny, dds, atol=5e-4, rtol=1e-3)
    assert all(cut > 0 for _, cut in history)


def test_cds_changes_the_result_and_is_repeatable(sd_edit_pipe):
    z = _latent(4)
    first, history = Editor(sd_edit_pipe, "a cat", "a dog", FAST).run(z)
    again, _ = Editor(sd_edit_pipe, "a cat", "a dog", FAST).run(z)
    dds, _ = Editor(sd_edit_pipe, "a cat", "a dog", replace(FAST, method="dds")).run(z)
    assert torch.equal(first, again)
    assert not torch.allclose(first, dds)
    assert len(history) == 3


def test_same_source_and_target_leaves_the_latent_unchanged(sd_edit_pipe):
    z = _latent(5)
    out, history = Editor(sd_edit_pipe, "a cat", "a cat", replace(FAST, method="dds")).run(z)
    torch.testing.assert_close(out, z, atol=1e-6, rtol=0)
    assert all(abs(d) < 1e-3 for d, _ in history)


def test_cut_gradient_flows_to_the_latent_only(sd_edit_pipe):
    pipe = sd_edit_pipe
    editor = Editor(pipe, "a cat", "a dog", FAST)
    z_src = _latent(6)
    z_trg = (z_src + 0.2 * _latent(7)).requires_grad_(True)
    before = dict(pipe.unet.attn_processors)
    with SelfAttentionFeatures(pipe.unet) as features:
        _, cut, _ = editor.losses(z_src, z_trg, torch.tensor([300]), _latent(8), features=features)
        assert features._store is None  # nothing kept between calls
    cut.backward()
    assert z_trg.grad is not None and z_trg.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in pipe.unet.parameters())
    assert dict(pipe.unet.attn_processors) == before


def test_feature_recorder_layers_and_restore_on_error(sd_edit_pipe):
    unet = sd_edit_pipe.unet
    layers = decoder_self_attention_layers(unet)
    assert [layer.level for layer in layers] == [1, 1, 0, 0]
    assert all(".attn1" in layer.name and layer.name.startswith("up_") for layer in layers)
    before = dict(unet.attn_processors)
    with pytest.raises(ValueError, match="boom"), SelfAttentionFeatures(unet) as features:
        with features.capture(rows=[1]) as kept:
            text = torch.zeros(2, 77, 32)
            unet(torch.zeros(2, 4, 8, 8), torch.tensor([10, 10]), encoder_hidden_states=text)
        assert set(kept) == {layer.name for layer in layers}
        assert kept[layers[0].name].shape == (1, 16, 64)
        raise ValueError("boom")
    assert dict(unet.attn_processors) == before
    with pytest.raises(ConfigError, match="unknown decoder self-attention"):
        SelfAttentionFeatures(unet, ["down_blocks.0.attentions.0.transformer_blocks.0.attn1"])


def test_edit_image_end_to_end_and_errors(sd_edit_pipe):
    pipe = sd_edit_pipe
    assert latent_multiple(pipe) == 4  # tiny VAE: 2×, tiny UNet: 2×
    image = torch.rand(3, 70, 50, generator=torch.Generator().manual_seed(0))
    assert fit_image(image, multiple=16, long_side=64).shape == (3, 64, 48)
    with pytest.raises(ImageError, match="multiples of 16"):
        fit_image(image, multiple=16, resize=False)
    fitted = fit_image(image, multiple=4, long_side=32)
    assert fitted.shape == (3, 32, 24)
    with pytest.raises(ImageError, match="not multiples"):
        edit_image(pipe, image, "a cat", "a dog", settings=FAST)
    calls = []
    result = edit_image(
        pipe, fitted, "a cat", "a dog", settings=FAST, callback=lambda *a: calls.append(a)
    )
    assert result.image.shape == (3, 32, 24)
    assert result.image.min() >= 0 and result.image.max() <= 1
    assert [c[0] for c in calls] == [1, 2, 3]
    with pytest.raises(ConfigError, match="tokens long"):
        check_prompt(pipe.tokenizer, "a zebra " * 40)
    with pytest.raises(ConfigError, match="unknown edit method"):
        Editor(pipe, "a", "b", replace(FAST, method="sds"))


def test_predict_noise_matches_the_unet(sd_edit_pipe):
    pipe = sd_edit_pipe
    cond, _ = encode_text(pipe, "a cat")
    z, t = _latent(9), torch.tensor([100])
    with torch.no_grad():
        ours = predict_noise(pipe, z, t, [cond])
        direct = pipe.unet(z, t, encoder_hidden_states=cond.embeds).sample
    torch.testing.assert_close(ours, direct)


def test_cds_runs_on_sdxl(tmp_path):
    from editing_tiny import build_sdxl_layout_pipeline

    pipe = build_sdxl_layout_pipeline(tmp_path)
    layers = decoder_self_attention_layers(pipe.unet)
    assert len(layers) == 6 and {layer.level for layer in layers} == {1, 2}
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    out, history = Editor(pipe, "a cat", "a dog", replace(FAST, iterations=2)).run(z)
    again, _ = Editor(pipe, "a cat", "a dog", replace(FAST, iterations=2)).run(z)
    assert torch.equal(out, again) and not torch.equal(out, z)
    assert all(cut > 0 for _, cut in history)


def test_nan_stops_with_a_clear_error(sd_edit_pipe):
    from brushwork.errors import OptimisationError

    z = _latent(10)
    z[0, 0, 0, 0] = float("nan")
    with pytest.raises(OptimisationError, match="iteration 1"):
        Editor(sd_edit_pipe, "a cat", "a dog", FAST).run(z)


def test_unet_rows_per_iteration(sd_edit_pipe):
    """CDS: a 3-row call without gradient and a 1-row call with it; DDS: one 4-row call."""
    rows: list[tuple[int, bool]] = []

    def count(module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        rows.append((sample.shape[0], torch.is_grad_enabled()))

    handle = sd_edit_pipe.unet.register_forward_pre_hook(count, with_kwargs=True)
    try:
        Editor(sd_edit_pipe, "a cat", "a dog", replace(FAST, iterations=2)).run(_latent(11))
        cds, rows[:] = list(rows), []
        Editor(sd_edit_pipe, "a cat", "a dog", replace(FAST, iterations=2, method="dds")).run(
            _latent(11)
        )
    finally:
        handle.remove()
    assert cds == [(3, False), (1, True)] * 2
    assert rows == [(4, False)] * 2
