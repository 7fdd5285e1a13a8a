"""The recorder on tiny Flux.1 pipelines (dev- and schnell-shaped) against a float64 reference."""

from __future__ import annotations

import pytest
import torch
from tiny_flux import MAX_SEQUENCE_LENGTH, build_flux_pipeline, run_flux

from brushwork.diffusion.attention import AttentionRecorder, RecordingSettings
from brushwork.diffusion.backbones import backbone_for
from brushwork.diffusion.backbones.flux import FluxBackbone, image_token_grid
from brushwork.diffusion.concept_attention import ConceptAttention
from brushwork.errors import ConfigError

PROMPT = "a giraffe painting in the cubism style"
HEIGHT, WIDTH = 16, 24  # non-square; the token grid is 8×12 (VAE factor 1, 2×2 packing)


@pytest.fixture(scope="module")
def dev_pipe(tmp_path_factory):
    return build_flux_pipeline(tmp_path_factory.mktemp("flux-dev"), guidance_embeds=True)


@pytest.fixture(scope="module")
def schnell_pipe(tmp_path_factory):
    return build_flux_pipeline(tmp_path_factory.mktemp("flux-schnell"), guidance_embeds=False)


def _run(pipe, prompt=PROMPT, **kwargs):
    return run_flux(pipe, prompt, height=HEIGHT, width=WIDTH, **kwargs)


def _rms(x: torch.Tensor, norm: torch.nn.RMSNorm) -> torch.Tensor:
    """RMSNorm over the last dim in float64."""
    x = x.double()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps)
    return x * norm.weight.double() if norm.weight is not None else x


def _flux_layers(transformer, blocks):
    layers = []
    if "joint" in blocks:
        layers += [(f"transformer_blocks.{i}.attn", "joint") for i in range(2)]
    if "single" in blocks:
        layers += [(f"single_transformer_blocks.{i}.attn", "single") for i in range(2)]
    return layers


def reference_maps(pipe, *, blocks, normalisation, every_other_call=False, **run_kwargs):
    """Flux text attention re-derived from plain hooks, in float64. Returns (N, T, h, w).

    The processor's steps, literally: projections split into heads, QK-RMSNorm,
    [text; image] concatenated, RoPE (from ``pos_embed``'s output) on the whole
    sequence with diffusers' ``apply_rotary_emb``, then per head the image-query rows of
    softmax(q kᵀ/√d) over the text keys ("text") or over all keys ("joint", text columns
    kept); the sum over steps of the mean over (layer, head). ``every_other_call`` keeps
    calls 0, 2, 4, … (true CFG: the negative prompt's call follows each step's).
    """
    from diffusers.models.embeddings import apply_rotary_emb

    transformer = pipe.transformer
    layers = _flux_layers(transformer, blocks)
    calls: list[dict] = []

    def on_call(module, args, kwargs):
        calls.append({"text_length": kwargs["encoder_hidden_states"].shape[1], "proj": {}})

    def on_rotary(module, args, output):
        calls[-1]["rotary"] = output

    handles = [
        transformer.register_forward_pre_hook(on_call, with_kwargs=True),
        transformer.pos_embed.register_forward_hook(on_rotary),
    ]
    for name, _block in layers:
        attn = transformer.get_submodule(name)
        for role in ("to_q", "to_k", "add_q_proj", "add_k_proj"):
            if hasattr(attn, role):

                def hook(module, args, output, name=name, role=role):
                    calls[-1]["proj"].setdefault(name, {})[role] = output.detach()

                handles.append(getattr(attn, role).register_forward_hook(hook))
    try:
        images = _run(pipe, **run_kwargs)
    finally:
        for handle in handles:
            handle.remove()

    if every_other_call:
        calls = calls[::2]
    grid_h, grid_w = HEIGHT // 2, WIDTH // 2
    total = None
    heads_total = 0
    for call in calls:
        text_length = call["text_length"]
        rotary = call["rotary"]
        for name, block in layers:
            attn = transformer.get_submodule(name)
            proj = call["proj"][name]

            def split(t, attn=attn):
                return t.double().unflatten(-1, (attn.heads, -1))  # (B, S, H, d)

            query = _rms(split(proj["to_q"]), attn.norm_q)
            key = _rms(split(proj["to_k"]), attn.norm_k)
            if block == "joint":
                query = torch.cat([_rms(split(proj["add_q_proj"]), attn.norm_added_q), query], 1)
                key = torch.cat([_rms(split(proj["add_k_proj"]), attn.norm_added_k), key], 1)
            query = apply_rotary_emb(query, rotary, sequence_dim=1).double().transpose(1, 2)
            key = apply_rotary_emb(key, rotary, sequence_dim=1).double().transpose(1, 2)
            scores = query[:, :, text_length:] @ key.transpose(-1, -2) * attn.head_dim**-0.5
            if normalisation == "text":
                probs = torch.softmax(scores[..., :text_length], dim=-1)
            else:
                probs = torch.softmax(scores, dim=-1)[..., :text_length]
            summed = probs.sum(dim=1)  # (B, S_img, T)
            total = summed if total is None else total + summed
            if call is calls[0]:
                heads_total += attn.heads
    maps = (total / heads_total).transpose(1, 2).reshape(total.shape[0], -1, grid_h, grid_w)
    return maps.float(), images


def _recorded(pipe, settings, **run_kwargs):
    with AttentionRecorder(pipe, settings) as recorder:
        images = _run(pipe, **run_kwargs)
    return recorder, images


# --------------------------------------------------------------------------- maps
NORMALISATIONS = ["text", "joint"]


@pytest.mark.parametrize("normalisation", NORMALISATIONS)
@pytest.mark.parametrize("blocks", [("joint",), ("single",)])
@pytest.mark.parametrize("style", ["dev", "schnell"])
def test_maps_equal_float64_reference(request, style, blocks, normalisation):
    pipe = request.getfixturevalue(f"{style}_pipe")
    run = {"num_images_per_prompt": 2, "seeds": (0, 1)}
    expected, reference_images = reference_maps(
        pipe, blocks=blocks, normalisation=normalisation, **run
    )
    settings = RecordingSettings(blocks=blocks, normalisation=normalisation)
    recorder, images = _recorded(pipe, settings, **run)
    maps = recorder.token_maps()
    assert maps.shape == (2, MAX_SEQUENCE_LENGTH, HEIGHT // 2, WIDTH // 2)
    assert recorder.steps_recorded == [0, 1]
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=0)
    assert torch.equal(images, reference_images)


def test_default_records_both_kinds_of_blocks(dev_pipe):
    recorder = AttentionRecorder(dev_pipe)
    assert {layer.block for layer in recorder.layers} == {"joint", "single"}
    assert [layer.name for layer in recorder.layers] == [
        "transformer_blocks.0.attn",
        "transformer_blocks.1.attn",
        "single_transformer_blocks.0.attn",
        "single_transformer_blocks.1.attn",
    ]
    picked = AttentionRecorder(dev_pipe, RecordingSettings(blocks=("joint",), indices=(1,)))
    assert [layer.name for layer in picked.layers] == ["transformer_blocks.1.attn"]


def test_images_bit_identical_with_and_without_recording(dev_pipe):
    plain = _run(dev_pipe)
    recorder, recorded = _recorded(dev_pipe, RecordingSettings(keep_per_layer=True))
    assert torch.equal(plain, recorded)
    assert len(recorder.layer_maps()) == 4


def test_processors_restored_after_exit_and_after_an_exception(schnell_pipe):
    transformer = schnell_pipe.transformer
    before = dict(transformer.attn_processors)
    with AttentionRecorder(schnell_pipe):
        assert all(
            type(p).__name__.startswith("Recording") for p in transformer.attn_processors.values()
        )
    assert transformer.attn_processors == before
    with pytest.raises(RuntimeError, match="boom"), AttentionRecorder(schnell_pipe):
        raise RuntimeError("boom")
    assert transformer.attn_processors == before
    assert not transformer._forward_pre_hooks
    assert not transformer.transformer_blocks[0].attn.to_q._forward_hooks


def test_batch_of_three_prompts_equals_three_single_runs(schnell_pipe):
    prompts = [PROMPT, "a cat on a hill at dusk", "an oil sketch of a red boat"]
    recorder, images = _recorded(schnell_pipe, None, prompt=prompts, seeds=(0, 1, 2))
    batch_maps = recorder.token_maps()
    for i, prompt in enumerate(prompts):
        single, single_images = _recorded(schnell_pipe, None, prompt=prompt, seeds=(i,))
        torch.testing.assert_close(batch_maps[i : i + 1], single.token_maps(), atol=1e-5, rtol=0)
        torch.testing.assert_close(images[i : i + 1], single_images, atol=1e-5, rtol=0)


def test_true_cfg_negative_calls_are_not_recorded(dev_pipe):
    run = {"true_cfg_scale": 2.0, "negative_prompt": "a blue cow"}
    expected, _ = reference_maps(
        dev_pipe, blocks=("joint", "single"), normalisation="joint", every_other_call=True, **run
    )
    both_calls, _ = reference_maps(
        dev_pipe, blocks=("joint", "single"), normalisation="joint", **run
    )
    recorder, _ = _recorded(dev_pipe, RecordingSettings(normalisation="joint"), **run)
    maps = recorder.token_maps()
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(maps, both_calls, atol=1e-4)
    assert len(recorder.steps_recorded) == 2  # one per step, not per transformer call


def test_no_cfg_halves(dev_pipe, schnell_pipe):
    assert backbone_for(dev_pipe).guidance_in_batch(dev_pipe) is False
    assert backbone_for(schnell_pipe).guidance_in_batch(schnell_pipe) is False


# --------------------------------------------------------------------------- refusals
def test_unsupported_processor_is_refused_naming_the_layer(schnell_pipe):
    from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

    class OtherProcessor(FluxAttnProcessor):
        pass

    transformer = schnell_pipe.transformer
    before = dict(transformer.attn_processors)
    attn = transformer.single_transformer_blocks[1].attn
    attn.set_processor(OtherProcessor())
    try:
        with pytest.raises(
            ConfigError, match=r"single_transformer_blocks\.1\.attn.*OtherProcessor"
        ):
            AttentionRecorder(schnell_pipe).install()
    finally:
        transformer.set_attn_processor(dict(before))  # diffusers empties the dict given
    assert transformer.attn_processors == before


def test_fused_projections_are_followed(schnell_pipe):
    unfused, _ = _recorded(schnell_pipe, None)
    transformer = schnell_pipe.transformer
    transformer.fuse_qkv_projections()
    try:
        fused, _ = _recorded(schnell_pipe, None)  # the hooked QK-norms run either way
        with pytest.raises(ConfigError, match=r"transformer_blocks\.0\.attn.*fused"):
            ConceptAttention(schnell_pipe, ["cow", "sky"]).install()  # reads to_k / to_v
    finally:
        transformer.unfuse_qkv_projections()
    assert fused.steps_recorded == unfused.steps_recorded == [0, 1]
    torch.testing.assert_close(fused.token_maps(), unfused.token_maps(), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- grid, streams
def test_image_token_grid_non_square_and_kontext_reference_tokens(dev_pipe):
    ids = dev_pipe._prepare_latent_image_ids(1, 3, 5, "cpu", torch.float32)
    assert image_token_grid(ids) == (15, 3, 5)
    reference = dev_pipe._prepare_latent_image_ids(1, 4, 4, "cpu", torch.float32)
    reference[:, 0] = 1  # Kontext's conditioning image, appended after the generated one
    assert image_token_grid(torch.cat([ids, reference])) == (15, 3, 5)
    with pytest.raises(ConfigError, match="row-major"):
        image_token_grid(ids.flip(0))


def test_text_streams_are_t5_at_key_zero(dev_pipe):
    backbone = backbone_for(dev_pipe)
    assert isinstance(backbone, FluxBackbone)
    (stream,) = backbone.text_streams(dev_pipe)
    assert (stream.name, stream.offset, stream.length) == ("t5", 0, 512)
    assert stream.tokenizer is dev_pipe.tokenizer_2


# --------------------------------------------------------------------------- Flux.2
@pytest.fixture(scope="module")
def flux2():
    from tiny_flux import tiny_flux2_transformer

    return tiny_flux2_transformer()


def flux2_reference(transformer, inputs, *, normalisation):
    """Flux.2 attention re-derived in float64 from plain hooks: (B, T, h, w) per call.

    Double blocks as Flux.1; single blocks split ``to_qkv_mlp_proj``'s output into Q, K
    (and V, MLP) as the processor does. RoPE: ``pos_embed`` of the text ids and of the
    image ids (two calls), joined text first.
    """
    from diffusers.models.embeddings import apply_rotary_emb

    captured: dict[str, dict[str, torch.Tensor]] = {}
    rotary: list = []
    handles = [transformer.pos_embed.register_forward_hook(lambda m, a, out: rotary.append(out))]
    names = [f"transformer_blocks.{i}.attn" for i in range(2)]
    names += [f"single_transformer_blocks.{i}.attn" for i in range(2)]
    for name in names:
        attn = transformer.get_submodule(name)
        for role in ("to_q", "to_k", "add_q_proj", "add_k_proj", "to_qkv_mlp_proj"):
            if hasattr(attn, role):

                def hook(module, args, output, name=name, role=role):
                    captured.setdefault(name, {})[role] = output.detach()

                handles.append(getattr(attn, role).register_forward_hook(hook))
    try:
        with torch.no_grad():
            output = transformer(**inputs)[0]
    finally:
        for handle in handles:
            handle.remove()
    (image_cos, image_sin), (text_cos, text_sin) = rotary
    freqs = (torch.cat([text_cos, image_cos]), torch.cat([text_sin, image_sin]))
    text_length = inputs["encoder_hidden_states"].shape[1]
    total = 0
    for name in names:
        attn = transformer.get_submodule(name)
        proj = captured[name]

        def split(t, attn=attn):
            return t.double().unflatten(-1, (attn.heads, -1))

        if "to_qkv_mlp_proj" in proj:
            qkv = proj["to_qkv_mlp_proj"][..., : 3 * attn.inner_dim]
            q, k, _ = qkv.chunk(3, dim=-1)
            query, key = _rms(split(q), attn.norm_q), _rms(split(k), attn.norm_k)
        else:
            query = _rms(split(proj["to_q"]), attn.norm_q)
            key = _rms(split(proj["to_k"]), attn.norm_k)
            query = torch.cat([_rms(split(proj["add_q_proj"]), attn.norm_added_q), query], 1)
            key = torch.cat([_rms(split(proj["add_k_proj"]), attn.norm_added_k), key], 1)
        query = apply_rotary_emb(query, freqs, sequence_dim=1).double().transpose(1, 2)
        key = apply_rotary_emb(key, freqs, sequence_dim=1).double().transpose(1, 2)
        scores = query[:, :, text_length:] @ key.transpose(-1, -2) * attn.head_dim**-0.5
        if normalisation == "text":
            probs = torch.softmax(scores[..., :text_length], dim=-1)
        else:
            probs = torch.softmax(scores, dim=-1)[..., :text_length]
        total = total + probs.sum(dim=1)
    h = int(inputs["img_ids"][0, :, 1].max()) + 1
    maps = (total / (len(names) * 2)).transpose(1, 2).unflatten(-1, (h, -1))
    return maps.float(), output


@pytest.mark.parametrize("normalisation", NORMALISATIONS)
def test_flux2_maps_equal_float64_reference(flux2, normalisation):
    from tiny_flux import flux2_inputs

    inputs = flux2_inputs(flux2, batch=2, grid=(4, 6))
    expected, plain = flux2_reference(flux2, inputs, normalisation=normalisation)
    settings = RecordingSettings(normalisation=normalisation)
    with AttentionRecorder(flux2, settings, guidance=False) as recorder, torch.no_grad():
        recorded = flux2(**inputs)[0]
    assert torch.equal(plain, recorded)
    maps = recorder.token_maps()
    assert maps.shape == (2, 8, 4, 6)
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=0)


def test_flux2_layers_restore_and_refusals(flux2):
    from diffusers.models.transformers.transformer_flux2 import Flux2KVParallelSelfAttnProcessor

    recorder = AttentionRecorder(flux2, guidance=False)
    assert [(layer.block, layer.index) for layer in recorder.layers] == [
        ("joint", 0),
        ("joint", 1),
        ("single", 0),
        ("single", 1),
    ]
    before = dict(flux2.attn_processors)
    with pytest.raises(RuntimeError, match="boom"), recorder:
        raise RuntimeError("boom")
    assert flux2.attn_processors == before
    flux2.single_transformer_blocks[0].attn.set_processor(Flux2KVParallelSelfAttnProcessor())
    try:
        with pytest.raises(ConfigError, match=r"single_transformer_blocks\.0\.attn.*KV"):
            AttentionRecorder(flux2, guidance=False).install()
    finally:
        flux2.set_attn_processor(dict(before))
    assert flux2.attn_processors == before


def test_word_maps_use_t5_positions_from_key_zero(dev_pipe):
    from brushwork.diffusion.pipelines import generate_with_maps

    prompt = "a cat in the sky"
    tokens = dev_pipe.tokenizer_2.tokenize(prompt)  # no start token: token i is key i
    result = generate_with_maps(
        dev_pipe,
        prompt,
        ["cat", "sky"],
        num_inference_steps=2,
        height=HEIGHT,
        width=WIDTH,
        max_sequence_length=MAX_SEQUENCE_LENGTH,
    )
    cat, sky = result.maps[0].positions
    assert "".join(tokens[i] for i in cat) == "▁cat"
    assert "".join(tokens[i] for i in sky) == "▁sky"
    torch.testing.assert_close(result.maps[0].maps[0], result.token_maps[0, cat].mean(0))


def test_flux2_repeat_call_on_the_same_latents_is_not_recorded(flux2):
    """Flux.2 klein's CFG: the negative call reuses the step's latents tensor."""
    from tiny_flux import flux2_inputs

    inputs = flux2_inputs(flux2, batch=1)
    negative = dict(inputs, encoder_hidden_states=torch.randn_like(inputs["encoder_hidden_states"]))
    with AttentionRecorder(flux2, guidance=False) as once, torch.no_grad():
        flux2(**inputs)
    with AttentionRecorder(flux2, guidance=False) as twice, torch.no_grad():
        flux2(**inputs)
        flux2(**negative)  # same hidden_states object: the negative prompt's call
    assert len(twice.steps_recorded) == 1
    torch.testing.assert_close(twice.token_maps(), once.token_maps(), atol=0, rtol=0)


@pytest.fixture(scope="module")
def klein_pipe(tmp_path_factory):
    from tiny_flux import build_flux2_klein_pipeline

    return build_flux2_klein_pipeline(tmp_path_factory.mktemp("flux2-klein"))


def test_flux2_klein_pipeline_maps_equal_reference_cfg_calls_skipped(klein_pipe):
    """Flux2KleinPipeline (Qwen-3 encoder): CFG's negative call per step is not recorded.

    The reference replays each step's conditional transformer call (its inputs kept by a
    pre-hook) through :func:`flux2_reference`.
    """
    from tiny_flux import KLEIN_TEXT_LAYERS

    pipe = klein_pipe

    def run():  # klein's first argument is the reference image
        return pipe(
            prompt="a cat in the sky",
            num_inference_steps=2,
            height=HEIGHT,
            width=WIDTH,
            guidance_scale=4.0,
            generator=torch.Generator().manual_seed(0),
            max_sequence_length=24,
            text_encoder_out_layers=KLEIN_TEXT_LAYERS,
            output_type="pt",
        ).images

    calls = []
    handle = pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(dict(kwargs)), with_kwargs=True
    )
    try:
        plain = run()
    finally:
        handle.remove()
    assert pipe.do_classifier_free_guidance and len(calls) == 4
    expected = sum(
        flux2_reference(pipe.transformer, call, normalisation="text")[0] for call in calls[::2]
    )
    with AttentionRecorder(pipe) as recorder:
        images = run()
    assert torch.equal(images, plain)
    assert len(recorder.steps_recorded) == 2  # one per step, not per transformer call
    torch.testing.assert_close(recorder.token_maps(), expected, atol=1e-5, rtol=0)


def test_flux2_klein_text_stream(klein_pipe):
    pipe = klein_pipe
    (stream,) = backbone_for(pipe).text_streams(pipe)
    assert (stream.name, stream.offset, stream.length) == ("qwen", 0, 512)
    assert stream.tokenizer is pipe.tokenizer
