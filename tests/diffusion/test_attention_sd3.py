"""The recorder on tiny SD3- and SD3.5-shaped pipelines, against a float64 reference."""

from __future__ import annotations

import pytest
import torch
from tiny_sd3 import T5_TOKENS, build_sd3_pipeline

from brushwork.diffusion.attention import AttentionRecorder, RecordingSettings
from brushwork.diffusion.backbones import backbone_for
from brushwork.diffusion.backbones.sd3 import SD3Backbone
from brushwork.errors import ConfigError

PROMPT = "a giraffe painting in the cubist style"
TEXT_KEYS = 77 + T5_TOKENS
NORMALISATIONS = ["text", "joint"]


@pytest.fixture(scope="module")
def sd3_pipe(tmp_path_factory):
    return build_sd3_pipeline(tmp_path_factory.mktemp("sd3"))


@pytest.fixture(scope="module")
def sd35_pipe(tmp_path_factory):
    return build_sd3_pipeline(tmp_path_factory.mktemp("sd35"), sd35=True)


def _run(pipe, prompt=PROMPT, *, seed=0, steps=2, height=16, width=24, **kwargs):
    generator = torch.Generator().manual_seed(seed)
    return pipe(
        prompt,
        num_inference_steps=steps,
        height=height,
        width=width,
        max_sequence_length=T5_TOKENS,
        generator=generator,
        output_type="pt",
        **kwargs,
    ).images


def _rms(tensor: torch.Tensor, norm) -> torch.Tensor:
    """diffusers' RMSNorm in float64: x / sqrt(mean(x²) + eps) · weight."""
    if norm is None:
        return tensor
    out = tensor * torch.rsqrt(tensor.pow(2).mean(-1, keepdim=True) + norm.eps)
    return out if norm.weight is None else out * norm.weight.double()


def reference_maps(pipe, *, guidance: bool, normalisation: str, indices=None, **run_kwargs):
    """The maps from plain hooks on to_q / to_k / add_k_proj, in float64.

    Per joint block and head: the image queries (QK-normed as JointAttnProcessor2_0
    does) against the text keys, softmax over the text keys ("text") or an explicit
    softmax over all image and text keys with the text columns kept ("joint"); the
    conditional rows; summed over steps, mean over (block, head). (images, T, h, w).
    """
    transformer = pipe.transformer
    blocks = [
        (i, block.attn)
        for i, block in enumerate(transformer.transformer_blocks)
        if indices is None or i in indices
    ]
    captured: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
    state = {"step": -1, "grid": None}

    def on_transformer(module, args, kwargs):
        state["step"] += 1
        latents = kwargs["hidden_states"]
        patch = transformer.config.patch_size
        state["grid"] = (latents.shape[-2] // patch, latents.shape[-1] // patch)

    handles = [transformer.register_forward_pre_hook(on_transformer, with_kwargs=True)]
    for index, attn in blocks:
        for part, module in (("q", attn.to_q), ("k", attn.to_k), ("text_k", attn.add_k_proj)):

            def hook(module, args, output, index=index, part=part):
                captured.setdefault((state["step"], index), {})[part] = output.detach().double()

            handles.append(module.register_forward_hook(hook))
    try:
        _run(pipe, **run_kwargs)
    finally:
        for handle in handles:
            handle.remove()

    h, w = state["grid"]
    sums: dict[tuple[int, int], torch.Tensor] = {}
    for (_step, index), tensors in captured.items():
        attn = dict(blocks)[index]
        heads = attn.heads

        def split(tensor, heads=heads):
            if guidance:
                tensor = tensor[tensor.shape[0] // 2 :]
            return tensor.view(tensor.shape[0], tensor.shape[1], heads, -1).transpose(1, 2)

        q = _rms(split(tensors["q"]), attn.norm_q)
        k_image = _rms(split(tensors["k"]), attn.norm_k)
        k_text = _rms(split(tensors["text_k"]), attn.norm_added_k)
        scale = q.shape[-1] ** -0.5
        tokens = k_text.shape[2]
        if normalisation == "text":
            probs = torch.softmax(q @ k_text.transpose(-1, -2) * scale, dim=-1)
        else:
            keys = torch.cat([k_image, k_text], dim=2)
            logits = q @ keys.transpose(-1, -2) * scale
            weights = torch.exp(logits - logits.amax(dim=-1, keepdim=True))
            probs = (weights / weights.sum(dim=-1, keepdim=True))[..., -tokens:]
        maps = probs.permute(0, 1, 3, 2).reshape(probs.shape[0], heads, tokens, h, w)
        for head in range(heads):
            sums[(index, head)] = sums.get((index, head), 0) + maps[:, head]
    return torch.stack(list(sums.values())).mean(dim=0).float()


def test_layers_are_the_joint_attentions_only(sd35_pipe):
    backbone = backbone_for(sd35_pipe)
    assert isinstance(backbone, SD3Backbone)
    names = [layer.name for layer in backbone.layers()]
    assert names == ["transformer_blocks.0.attn", "transformer_blocks.1.attn"]
    assert "transformer_blocks.0.attn2.processor" in sd35_pipe.transformer.attn_processors
    assert sd35_pipe.transformer.transformer_blocks[1].attn.context_pre_only
    assert [layer.index for layer in backbone.layers()] == [0, 1]


@pytest.mark.parametrize("normalisation", NORMALISATIONS)
@pytest.mark.parametrize("pipe_name", ["sd3_pipe", "sd35_pipe"])
def test_maps_equal_reference_and_image_is_unchanged(pipe_name, normalisation, request):
    """Guidance on, two images per prompt, a non-square 16×24 image (8×12 tokens)."""
    pipe = request.getfixturevalue(pipe_name)
    call = dict(num_images_per_prompt=2)
    plain = _run(pipe, **call)
    settings = RecordingSettings(normalisation=normalisation)
    with AttentionRecorder(pipe, settings) as recorder:
        recorded = _run(pipe, **call)
        maps = recorder.token_maps()
    assert torch.equal(plain, recorded)
    assert maps.shape == (2, TEXT_KEYS, 8, 12)
    expected = reference_maps(pipe, guidance=True, normalisation=normalisation, **call)
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-5)
    assert recorder.steps_recorded == [0, 1]
    assert not torch.allclose(maps[0], maps[1])
    per_pixel = maps.sum(dim=1) / 2  # two steps: each pixel's text share per step
    if normalisation == "text":
        torch.testing.assert_close(per_pixel, torch.ones_like(per_pixel))
    else:
        assert (per_pixel < 1).all() and (per_pixel > 0).all()


@pytest.mark.parametrize("normalisation", NORMALISATIONS)
def test_no_guidance(sd35_pipe, normalisation):
    with AttentionRecorder(sd35_pipe, RecordingSettings(normalisation=normalisation)) as recorder:
        _run(sd35_pipe, guidance_scale=1.0, height=24, width=16)
        maps = recorder.token_maps()
    assert maps.shape == (1, TEXT_KEYS, 12, 8)
    expected = reference_maps(
        sd35_pipe,
        guidance=False,
        normalisation=normalisation,
        guidance_scale=1.0,
        height=24,
        width=16,
    )
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-5)


def test_block_indices_and_per_layer_maps(sd35_pipe):
    settings = RecordingSettings(indices=(1,), keep_per_layer=True, normalisation="joint")
    with AttentionRecorder(sd35_pipe, settings) as recorder:
        _run(sd35_pipe)
        maps = recorder.token_maps()
        per_layer = recorder.layer_maps()
    assert list(per_layer) == ["transformer_blocks.1.attn"]
    expected = reference_maps(sd35_pipe, guidance=True, normalisation="joint", indices=(1,))
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-5)


def test_a_batch_of_three_prompts_gives_three_single_runs(sd3_pipe):
    prompts = ["a giraffe painting", "a cat in the style of a dog", "a dog painting"]
    generators = [torch.Generator().manual_seed(seed) for seed in (3, 4, 5)]
    call = dict(num_inference_steps=2, height=16, width=16, max_sequence_length=T5_TOKENS)
    with AttentionRecorder(sd3_pipe) as recorder:
        batch = sd3_pipe(prompts, generator=generators, output_type="pt", **call).images
        batch_maps = recorder.token_maps()
    for i, prompt in enumerate(prompts):
        with AttentionRecorder(sd3_pipe) as recorder:
            single = sd3_pipe(
                prompt, generator=torch.Generator().manual_seed(3 + i), output_type="pt", **call
            ).images
            single_maps = recorder.token_maps()
        torch.testing.assert_close(batch_maps[i : i + 1], single_maps, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batch[i : i + 1], single, atol=1e-4, rtol=1e-4)


def test_processors_restored_after_exit_and_after_an_exception(sd35_pipe):
    transformer = sd35_pipe.transformer
    before = dict(transformer.attn_processors)
    with AttentionRecorder(sd35_pipe):
        during = dict(transformer.attn_processors)
    assert transformer.attn_processors == before
    assert (
        during["transformer_blocks.0.attn2.processor"]
        is before["transformer_blocks.0.attn2.processor"]
    )
    assert (
        during["transformer_blocks.1.attn.processor"]
        is not before["transformer_blocks.1.attn.processor"]
    )

    def explode(pipe, step, timestep, callback_kwargs):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), AttentionRecorder(sd35_pipe):
        _run(sd35_pipe, callback_on_step_end=explode)
    assert transformer.attn_processors == before
    assert not transformer._forward_pre_hooks
    attn = transformer.transformer_blocks[0].attn
    assert not attn.to_q._forward_hooks and not attn.add_k_proj._forward_hooks


class _CustomProcessor:
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, **kwargs):
        raise AssertionError("never called")


@pytest.mark.parametrize("kind", ["AttnProcessor2_0", "custom"])
def test_an_unsupported_processor_is_refused_naming_the_layer(tmp_path, kind):
    from diffusers.models.attention_processor import AttnProcessor2_0

    pipe = build_sd3_pipeline(tmp_path)
    processor = AttnProcessor2_0() if kind == "AttnProcessor2_0" else _CustomProcessor()
    pipe.transformer.transformer_blocks[1].attn.set_processor(processor)
    before = dict(pipe.transformer.attn_processors)
    with pytest.raises(ConfigError) as error:
        AttentionRecorder(pipe).install()
    message = str(error.value)
    assert "'transformer_blocks.1.attn'" in message
    assert type(processor).__name__ in message
    assert "\n" not in message
    assert pipe.transformer.attn_processors == before
    # The other blocks can still be recorded.
    with AttentionRecorder(pipe, RecordingSettings(indices=(0,))):
        pass


def test_fused_projections_are_followed(tmp_path):
    """FusedJointAttnProcessor2_0 projects with to_qkv: the maps come from its thirds."""
    from diffusers.models.attention_processor import FusedJointAttnProcessor2_0

    pipe = build_sd3_pipeline(tmp_path)
    with AttentionRecorder(pipe, RecordingSettings(normalisation="joint")) as recorder:
        _run(pipe)
        unfused = recorder.token_maps()
    pipe.transformer.fuse_qkv_projections()
    pipe.transformer.set_attn_processor(FusedJointAttnProcessor2_0())
    plain = _run(pipe)
    with AttentionRecorder(pipe, RecordingSettings(normalisation="joint")) as recorder:
        assert torch.equal(_run(pipe), plain)
        fused = recorder.token_maps()
    torch.testing.assert_close(fused, unfused, atol=1e-5, rtol=1e-5)


def test_skip_layer_guidance_calls_are_not_recorded(sd3_pipe):
    """SLG's extra call (conditional rows only, block 0 skipped) adds nothing to the maps."""
    run = dict(steps=5, skip_guidance_layers=[0], skip_layer_guidance_stop=0.5)
    with AttentionRecorder(sd3_pipe, RecordingSettings(normalisation="joint")) as recorder:
        _run(sd3_pipe, **run)
        maps = recorder.token_maps()
    # Steps 1 and 2 each add an SLG call: seven denoiser calls, five steps, numbered as steps.
    assert recorder.steps_recorded == [0, 1, 2, 3, 4]
    assert maps.shape == (1, TEXT_KEYS, 8, 12)
    per_pixel = maps.sum(dim=1) / 5
    assert (per_pixel > 0).all() and (per_pixel < 1).all()


def test_text_streams_clip_then_t5(sd3_pipe):
    from types import SimpleNamespace

    backbone = backbone_for(sd3_pipe)
    clip, t5 = backbone.text_streams(sd3_pipe)
    assert (clip.name, clip.offset, clip.length) == ("clip", 0, 77)
    assert (t5.name, t5.offset, t5.length) == ("t5", 77, 256)
    assert clip.tokenizer is sd3_pipe.tokenizer and t5.tokenizer is sd3_pipe.tokenizer_3
    without_t5 = SimpleNamespace(
        tokenizer=sd3_pipe.tokenizer, tokenizer_max_length=77, text_encoder_3=None
    )
    assert [s.name for s in backbone.text_streams(without_t5)] == ["clip"]
