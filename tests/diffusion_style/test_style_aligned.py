"""StyleAligned on tiny SD-1.x and SDXL pipelines built from the real diffusers classes."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "diffusion"))

from tiny_sd import build_sd_pipeline, build_sdxl_pipeline

from brushwork.diffusion.style_aligned import (
    StyleAligned,
    StyleAlignedSettings,
    generate_style_aligned,
    self_attention_layers,
)
from brushwork.errors import ConfigError

STEPS = 2
SIZE = dict(height=32, width=32)


@pytest.fixture(scope="module")
def sd_pipe(tmp_path_factory):
    return build_sd_pipeline(tmp_path_factory.mktemp("sa_sd"))


@pytest.fixture(scope="module")
def sdxl_pipe(tmp_path_factory):
    return build_sdxl_pipeline(tmp_path_factory.mktemp("sa_sdxl"))


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _plain(pipe, prompt, seed):
    generator = torch.Generator("cpu").manual_seed(seed)
    out = pipe(prompt, num_inference_steps=STEPS, generator=generator, output_type="pt", **SIZE)
    return out.images[0].float()


def _adain(x, y, eps=1e-5):
    mx, sx = x.mean(-2, keepdim=True), (x.var(-2, keepdim=True) + eps).sqrt()
    my, sy = y.mean(-2, keepdim=True), (y.var(-2, keepdim=True) + eps).sqrt()
    return (x - mx) / sx * sy + my


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_batch_of_one_is_plain_generation(family, sd_pipe, sdxl_pipe):
    pipe = sd_pipe if family == "sd" else sdxl_pipe
    before = {k: type(v) for k, v in pipe.unet.attn_processors.items()}
    result = generate_style_aligned(pipe, ["a cat"], steps=STEPS, seed=4, **SIZE)
    assert result.images.shape == (1, 3, 32, 32)
    torch.testing.assert_close(result.images[0], _plain(pipe, "a cat", 4), atol=1e-5, rtol=0)
    assert {k: type(v) for k, v in pipe.unet.attn_processors.items()} == before


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_reference_unchanged_and_others_aligned(family, sd_pipe, sdxl_pipe):
    pipe = sd_pipe if family == "sd" else sdxl_pipe
    prompts = ["a cat painting", "a dog painting", "a giraffe"]
    result = generate_style_aligned(pipe, prompts, steps=STEPS, seed=1, **SIZE)
    assert result.images.shape == (3, 3, 32, 32)
    # The reference (first image) is what its prompt gives alone with its seed ...
    torch.testing.assert_close(result.images[0], _plain(pipe, prompts[0], 1), atol=1e-4, rtol=0)
    # ... and the others differ from their plain generation (the sharing is active).
    for i in (1, 2):
        plain = _plain(pipe, prompts[i], 1 + i)
        assert (result.images[i] - plain).abs().max() > 1e-3
    assert len(result.layers) == len(self_attention_layers(pipe.unet))


def test_shared_attention_equals_the_formula(sd_pipe):
    """A real UNet self-attention layer, three images with CFG: the patched processor's
    output against softmax([q̂k̂ᵀ, s·q̂k_refᵀ + b]·scale)[v; v_ref] in float64."""
    unet = sd_pipe.unet
    name = self_attention_layers(unet)[0].name
    attn = unet.get_submodule(name)
    heads, inner = attn.heads, attn.to_q.out_features
    d = inner // heads
    x = torch.randn(6, 5, attn.to_q.in_features, generator=torch.Generator().manual_seed(0))
    settings = StyleAlignedSettings(shared_score_scale=0.7, shared_score_shift=math.log(2))
    original = type(attn.processor)
    with torch.no_grad():
        plain = attn(x)
        with StyleAligned(unet, settings, guidance=True):
            got = attn(x)
    assert type(attn.processor) is original  # restored

    xd = x.double()
    w = {n: p.detach().double() for n, p in attn.named_parameters()}

    def project(part):
        bias = w.get(f"{part}.bias")
        y = xd @ w[f"{part}.weight"].T + (0 if bias is None else bias)
        return y.view(6, 5, heads, d).transpose(1, 2)

    q, k, v = project("to_q"), project("to_k"), project("to_v")
    shift = torch.cat([torch.zeros(5), torch.full((5,), math.log(2))]).double()
    for ref in (0, 3):
        torch.testing.assert_close(got[ref], plain[ref])
        for i in (ref + 1, ref + 2):
            qi = _adain(q[i : i + 1], q[ref : ref + 1])
            ki = _adain(k[i : i + 1], k[ref : ref + 1])
            own = qi @ ki.transpose(-1, -2)
            shared = 0.7 * qi @ k[ref : ref + 1].transpose(-1, -2)
            logits = torch.cat([own, shared], dim=-1) * d**-0.5 + shift
            values = torch.cat([v[i : i + 1], v[ref : ref + 1]], dim=2)
            out = (logits.softmax(-1) @ values).transpose(1, 2).reshape(1, 5, inner)
            out = out @ w["to_out.0.weight"].T + w["to_out.0.bias"]
            torch.testing.assert_close(got[i].double(), out[0], atol=1e-5, rtol=1e-5)
        assert (got[ref + 1] - plain[ref + 1]).abs().max() > 1e-3


def test_shared_group_norm_changes_only_the_others(sd_pipe):
    prompts = ["a cat", "a dog"]
    plain = generate_style_aligned(pipe := sd_pipe, prompts, steps=STEPS, seed=2, **SIZE)
    shared = generate_style_aligned(
        pipe,
        prompts,
        settings=StyleAlignedSettings(share_group_norm=True),
        steps=STEPS,
        seed=2,
        **SIZE,
    )
    torch.testing.assert_close(shared.images[0], plain.images[0], atol=1e-5, rtol=0)
    assert (shared.images[1] - plain.images[1]).abs().max() > 1e-4
    assert not pipe.unet._forward_hooks
    assert all(not m._forward_hooks for m in pipe.unet.modules())


def test_only_self_level_keeps_some_layers_plain(sd_pipe):
    every = self_attention_layers(sd_pipe.unet)
    half = StyleAligned(sd_pipe, StyleAlignedSettings(only_self_level=0.5))
    assert 0 < len(half.layers) < len(every)
    assert StyleAligned(sd_pipe, StyleAlignedSettings(only_self_level=1.0)).layers == []


def test_processors_restored_after_an_exception(sd_pipe):
    before = {k: type(v) for k, v in sd_pipe.unet.attn_processors.items()}

    def fail(*args):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        generate_style_aligned(sd_pipe, ["a cat", "a dog"], steps=STEPS, callback=fail, **SIZE)
    assert {k: type(v) for k, v in sd_pipe.unet.attn_processors.items()} == before
    assert all(not m._forward_hooks for m in sd_pipe.unet.modules())


def test_errors(sd_pipe):
    with pytest.raises(ConfigError, match="at least 1 prompt"):
        generate_style_aligned(sd_pipe, [], steps=STEPS)
    with pytest.raises(ConfigError, match="tokens long"):
        generate_style_aligned(sd_pipe, ["a cat", "word " * 80], steps=STEPS)
    with pytest.raises(ConfigError, match="shared_score_scale"):
        StyleAlignedSettings(shared_score_scale=-1).validate()
    with pytest.raises(ConfigError, match="only_self_level"):
        StyleAligned(sd_pipe, StyleAlignedSettings(only_self_level=2))


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_reference_photo_through_inversion(family, sd_pipe, sdxl_pipe):
    from brushwork.diffusion.editing import decode_latents, encode_image
    from brushwork.diffusion.style_aligned import style_aligned_from_image

    pipe = sd_pipe if family == "sd" else sdxl_pipe
    scheduler = pipe.scheduler
    photo = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(5))
    kwargs = dict(steps=3, guidance_scale=3.0, offset=1, seed=2)
    result = style_aligned_from_image(
        pipe, photo, "a cat painting", ["a dog", "a giraffe"], **kwargs
    )
    assert pipe.scheduler is scheduler  # the pipeline's own scheduler is back
    assert result.images.shape == (2, 3, 32, 32) and result.prompts == ["a dog", "a giraffe"]
    # The reference row follows the photo's inverted trajectory to its end, z_0: its image
    # is the VAE's reconstruction of the photo.
    with torch.no_grad():
        expected = decode_latents(pipe, encode_image(pipe, photo))[0]
    torch.testing.assert_close(result.reference_image, expected.clamp(0, 1), atol=2e-3, rtol=0)
    # The targets depend on the photo (they attend to its features).
    other = style_aligned_from_image(
        pipe, 1 - photo, "a cat painting", ["a dog", "a giraffe"], **kwargs
    )
    assert (other.images - result.images).abs().max() > 1e-4
    with pytest.raises(ConfigError, match="offset"):
        style_aligned_from_image(pipe, photo, "a cat", ["a dog"], steps=3, offset=3)


def test_cli_end_to_end_on_a_saved_tiny_pipeline(tmp_path, sd_pipe, capsys):
    from brushwork.cli.main import main
    from brushwork.image import load_image, save_image

    model = tmp_path / "sd"
    sd_pipe.save_pretrained(model)
    common = ["--model", str(model), "--steps", "2", "--size", "32", "--seed", "3",
              "--device", "cpu", "-q"]  # fmt: skip
    out = tmp_path / "set"
    assert main(["generate", "a cat", "a dog", "--style-aligned", *common, "--sheet",
                 "-o", str(out)]) == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["00-a-cat.png", "01-a-dog.png", "sheet.png"]
    assert main(["generate", "a cat", *common, "-o", str(tmp_path / "cat.png")]) == 0
    first, plain = load_image(out / "00-a-cat.png"), load_image(tmp_path / "cat.png")
    assert (first - plain).abs().max() <= 1.5 / 255  # the reference is plain generation
    photo = tmp_path / "photo.png"
    save_image(torch.rand(3, 36, 30, generator=torch.Generator().manual_seed(1)), photo)
    ref_out = tmp_path / "ref"
    args = ["generate", "a dog", "--style-aligned", "--reference", str(photo),
            "--reference-prompt", "a cat painting", *common, "-o", str(ref_out)]  # fmt: skip
    assert main(args) == 0
    assert [p.name for p in ref_out.iterdir()] == ["00-a-dog.png"]
    reference_only = ["--style-aligned", "--reference", str(photo)]
    for bad, message in [
        (["generate", "a cat", "a dog", *common, "-o", str(tmp_path / "x.png")], "--style-aligned"),
        (["generate", "a cat", *reference_only, *common, "-o", str(tmp_path / "y")], "-prompt"),
        (["generate", "a cat", "--style-aligned", *common, "-o", str(tmp_path / "z.png")], "fold"),
    ]:
        assert main(bad) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "y").exists() and not (tmp_path / "x.png").exists()
