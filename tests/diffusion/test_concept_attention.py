"""ConceptAttention on tiny Flux.1 pipelines against a float64 re-statement of the method."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from tiny_flux import MAX_SEQUENCE_LENGTH, build_flux_pipeline, run_flux, tiny_flux2_transformer

from brushwork.diffusion.concept_attention import (
    ConceptAttention,
    ConceptSettings,
    generate_with_concept_maps,
)
from brushwork.errors import ConfigError

PROMPT = "a giraffe painting in the cubism style"
CONCEPTS = ["giraffe", "sky", "grass"]
HEIGHT, WIDTH = 16, 24  # non-square; the token grid is 8×12
GRID = (HEIGHT // 2, WIDTH // 2)
SETTINGS = ConceptSettings(max_sequence_length=MAX_SEQUENCE_LENGTH)


@pytest.fixture(scope="module")
def dev_pipe(tmp_path_factory):
    return build_flux_pipeline(tmp_path_factory.mktemp("flux-dev"), guidance_embeds=True)


@pytest.fixture(scope="module")
def schnell_pipe(tmp_path_factory):
    return build_flux_pipeline(tmp_path_factory.mktemp("flux-schnell"), guidance_embeds=False)


def _run(pipe, prompt=PROMPT, **kwargs):
    return run_flux(pipe, prompt, height=HEIGHT, width=WIDTH, **kwargs)


def _rms(x: torch.Tensor, norm: torch.nn.RMSNorm) -> torch.Tensor:
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps)
    return x * norm.weight if norm.weight is not None else x


def _concept_embeddings(pipe, concepts):
    """(C, D): T5 on each concept alone, padded to the sequence length, first token kept."""
    rows = []
    for concept in concepts:
        ids = pipe.tokenizer_2(
            concept,
            padding="max_length",
            max_length=MAX_SEQUENCE_LENGTH,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        rows.append(pipe.text_encoder_2(ids)[0][0, 0])
    return torch.stack(rows)


def _capture(pipe, blocks, **run_kwargs):
    """A plain run: per transformer call, the inputs ConceptAttention reads (no wrapper)."""
    transformer = pipe.transformer
    calls: list[dict] = []

    def on_call(module, args, kwargs):
        calls.append({"text_length": kwargs["encoder_hidden_states"].shape[1], "block": {}})

    def on_time(module, args, output):
        calls[-1]["time"] = [a.detach() for a in args[:-1]]  # timestep (, guidance)

    def on_rotary(module, args, output):
        calls[-1]["rotary"] = output

    handles = [
        transformer.register_forward_pre_hook(on_call, with_kwargs=True),
        transformer.time_text_embed.register_forward_hook(on_time),
        transformer.pos_embed.register_forward_hook(on_rotary),
    ]
    for i in blocks:
        attn = transformer.transformer_blocks[i].attn

        def keep(module, args, output, i=i, role=""):
            calls[-1]["block"].setdefault(i, {}).setdefault(role, output.detach())

        def keep_out(module, args, i=i):
            calls[-1]["block"].setdefault(i, {}).setdefault("out", args[0].detach())

        handles += [
            attn.to_k.register_forward_hook(lambda m, a, o, i=i: keep(m, a, o, i, "k")),
            attn.to_v.register_forward_hook(lambda m, a, o, i=i: keep(m, a, o, i, "v")),
            attn.to_out[0].register_forward_pre_hook(keep_out),
        ]
    try:
        images = _run(pipe, **run_kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return calls, images


def reference_maps(pipe, concepts, *, indices, steps=None, per_layer=False, **run_kwargs):
    """ConceptAttention re-stated in float64 from a plain run's captured tensors.

    Per call and block up to the last chosen: the concept stream (T5 first-token
    embeddings through ``context_embedder``) is modulated by adaLN-Zero of the step's
    time (and guidance) embedding with a zero pooled vector; concept queries attend
    to [concept keys; image keys] (QK-RMSNorm; the concepts' position ids are 0, so
    their rotation is the identity; image keys rotated by their part of the call's
    RoPE); the map is softmax over concepts of ⟨image output, concept output⟩ before
    the output projections; the stream is updated by the gated to_add_out and
    ff_context. Returns the mean over (step, chosen block) maps, (N, C, h, w).
    """
    from diffusers.models.embeddings import apply_rotary_emb

    last = max(indices)
    calls, images = _capture(pipe, range(last + 1), **run_kwargs)
    model = copy.deepcopy(pipe.transformer).double()
    embeddings = _concept_embeddings(pipe, concepts).double()
    maps, layer_sums = [], {}
    with torch.no_grad():
        for step, call in enumerate(calls):
            if steps is not None and step not in steps:
                continue
            time = [t.double() for t in call["time"]]
            pooled = torch.zeros(time[0].shape[0], model.config.pooled_projection_dim).double()
            temb = model.time_text_embed(*time, pooled)
            batch = temb.shape[0]
            stream = model.context_embedder(embeddings)[None].expand(batch, -1, -1)
            cos, sin = call["rotary"]
            image_rotary = (cos[call["text_length"] :], sin[call["text_length"] :])
            for i in range(last + 1):
                block = model.transformer_blocks[i]
                attn = block.attn
                captured = call["block"][i]

                def split(t, attn=attn):
                    return t.double().unflatten(-1, (attn.heads, -1))  # (B, S, H, d)

                chunks = block.norm1_context.linear(F.silu(temb)).chunk(6, dim=1)
                shift, scale, gate, shift_mlp, scale_mlp, gate_mlp = chunks
                normed = F.layer_norm(stream, stream.shape[-1:], eps=1e-6)
                normed = normed * (1 + scale[:, None]) + shift[:, None]
                query = _rms(split(attn.add_q_proj(normed)), attn.norm_added_q)
                concept_key = _rms(split(attn.add_k_proj(normed)), attn.norm_added_k)
                image_key = _rms(split(captured["k"]), attn.norm_k)
                image_key = apply_rotary_emb(image_key, image_rotary, sequence_dim=1).double()
                key = torch.cat([concept_key, image_key], 1).transpose(1, 2)
                value = torch.cat([split(attn.add_v_proj(normed)), split(captured["v"])], 1)
                scores = query.transpose(1, 2) @ key.transpose(-1, -2) * attn.head_dim**-0.5
                out = torch.softmax(scores, -1) @ value.transpose(1, 2)  # (B, H, C, d)
                concept_out = out.transpose(1, 2).flatten(2)  # (B, C, H·d)
                if i in indices:
                    image_out = captured["out"].double()[:, : GRID[0] * GRID[1]]
                    probs = torch.softmax(image_out @ concept_out.transpose(1, 2), dim=-1)
                    layer_map = probs.transpose(1, 2).reshape(batch, -1, *GRID)
                    maps.append(layer_map)
                    layer_sums.setdefault(i, []).append(layer_map)
                stream = stream + gate[:, None] * attn.to_add_out(concept_out)
                normed = F.layer_norm(stream, stream.shape[-1:], eps=1e-6)
                normed = normed * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
                stream = stream + gate_mlp[:, None] * block.ff_context(normed)
    mean = torch.stack(maps).mean(0).float()
    if per_layer:
        return mean, {i: torch.stack(v).mean(0).float() for i, v in layer_sums.items()}, images
    return mean, images


def _concept_run(pipe, concepts=CONCEPTS, settings=SETTINGS, **run_kwargs):
    with ConceptAttention(pipe, concepts, settings) as concept:
        images = _run(pipe, **run_kwargs)
    return concept, images


# --------------------------------------------------------------------------- maps
@pytest.mark.parametrize("style", ["dev", "schnell"])
def test_maps_equal_float64_reference(request, style):
    pipe = request.getfixturevalue(f"{style}_pipe")
    run = {"num_images_per_prompt": 2, "seeds": (0, 1)}
    expected, reference_images = reference_maps(pipe, CONCEPTS, indices=(0, 1), **run)
    concept, images = _concept_run(pipe, **run)
    maps = concept.concept_maps()
    assert maps.shape == (2, len(CONCEPTS), *GRID)
    assert concept.steps_recorded == [0, 1]
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=0)
    assert torch.equal(images, reference_images)  # the image stream is untouched


def test_chosen_block_and_step_equal_the_reference(dev_pipe):
    settings = ConceptSettings(indices=(0,), steps=(1,), max_sequence_length=MAX_SEQUENCE_LENGTH)
    expected, _ = reference_maps(dev_pipe, CONCEPTS, indices=(0,), steps=(1,))
    concept, _ = _concept_run(dev_pipe, settings=settings)
    assert concept.steps_recorded == [1]
    assert [layer.name for layer in concept.layers] == ["transformer_blocks.0.attn"]
    torch.testing.assert_close(concept.concept_maps(), expected, atol=1e-5, rtol=0)


def test_default_blocks_are_the_last_four():
    assert ConceptSettings().block_indices(19) == (15, 16, 17, 18)
    assert ConceptSettings().block_indices(2) == (0, 1)
    with pytest.raises(ConfigError, match=r"0\.\.1"):
        ConceptSettings(indices=(2,)).block_indices(2)


def test_maps_are_a_softmax_over_concepts_per_layer(schnell_pipe):
    settings = ConceptSettings(keep_per_layer=True, max_sequence_length=MAX_SEQUENCE_LENGTH)
    _, expected_layers, _ = reference_maps(schnell_pipe, CONCEPTS, indices=(0, 1), per_layer=True)
    concept, _ = _concept_run(schnell_pipe, settings=settings)
    layers = concept.layer_maps()
    assert list(layers) == ["transformer_blocks.0.attn", "transformer_blocks.1.attn"]
    for index, maps in enumerate(layers.values()):
        torch.testing.assert_close(maps.sum(dim=1), torch.ones(1, *GRID))
        assert maps.min() >= 0
        torch.testing.assert_close(maps, expected_layers[index], atol=1e-5, rtol=0)
    torch.testing.assert_close(concept.concept_maps().sum(dim=1), torch.ones(1, *GRID))


def test_images_bit_identical_with_and_without(dev_pipe):
    plain = _run(dev_pipe, seeds=(3,))
    _, with_concepts = _concept_run(dev_pipe, seeds=(3,))
    assert torch.equal(plain, with_concepts)


def test_processors_and_hooks_restored_after_exit_and_after_an_exception(schnell_pipe):
    transformer = schnell_pipe.transformer
    before = dict(transformer.attn_processors)
    with ConceptAttention(schnell_pipe, CONCEPTS, SETTINGS):
        wrapped = [type(p).__name__ for p in transformer.attn_processors.values()]
        assert sum(name.startswith("Concept") for name in wrapped) == 2
    assert transformer.attn_processors == before
    with (
        pytest.raises(RuntimeError, match="boom"),
        ConceptAttention(schnell_pipe, CONCEPTS, SETTINGS),
    ):
        raise RuntimeError("boom")
    assert transformer.attn_processors == before
    attn = transformer.transformer_blocks[0].attn
    assert not transformer._forward_pre_hooks
    assert not transformer.time_text_embed._forward_hooks
    assert not attn.to_k._forward_hooks and not attn.to_out[0]._forward_pre_hooks


def test_generate_with_concept_maps_batch_equals_single_runs(schnell_pipe):
    prompts = [PROMPT, "a cat on a hill at dusk"]
    common = dict(
        num_inference_steps=2, height=HEIGHT, width=WIDTH, max_sequence_length=MAX_SEQUENCE_LENGTH
    )
    result = generate_with_concept_maps(
        schnell_pipe, prompts, CONCEPTS, num_images_per_prompt=2, seeds=0, **common
    )
    assert result.token_maps.shape == (4, len(CONCEPTS), *GRID)
    assert result.prompts == [prompts[0]] * 2 + [prompts[1]] * 2
    assert result.extra["method"] == "concept" and result.extra["steps_recorded"] == [0, 1]
    for i, seed in enumerate(range(4)):
        single = generate_with_concept_maps(
            schnell_pipe, result.prompts[i], CONCEPTS, seeds=seed, **common
        )
        torch.testing.assert_close(result.token_maps[i], single.token_maps[0], atol=1e-5, rtol=0)
        word_maps = result.maps[i]
        assert word_maps.words == CONCEPTS and word_maps.positions == [[0], [1], [2]]
        assert word_maps.image_size == (HEIGHT, WIDTH)
        assert word_maps.heatmaps().shape == (3, HEIGHT, WIDTH)


@pytest.mark.parametrize(
    ("concepts", "message"),
    [
        (["giraffe"], "at least 2 concepts"),
        ([], "at least 2 concepts"),
        ("giraffe", "not one string"),
        (["giraffe", " "], "empty"),
    ],
)
def test_bad_concept_lists_are_refused(schnell_pipe, concepts, message):
    with pytest.raises(ConfigError, match=message):
        ConceptAttention(schnell_pipe, concepts)


def test_other_families_are_refused():
    with pytest.raises(ConfigError, match=r"Flux\.1"):
        ConceptAttention(tiny_flux2_transformer(), CONCEPTS)


def test_unsupported_processor_is_refused_naming_the_layer(schnell_pipe):
    from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

    class OtherProcessor(FluxAttnProcessor):
        pass

    transformer = schnell_pipe.transformer
    before = dict(transformer.attn_processors)
    transformer.transformer_blocks[1].attn.set_processor(OtherProcessor())
    try:
        with pytest.raises(ConfigError, match=r"transformer_blocks\.1\.attn"):
            ConceptAttention(schnell_pipe, CONCEPTS, SETTINGS).install()
    finally:
        transformer.set_attn_processor(before)
    assert not transformer._forward_pre_hooks


def test_no_map_outside_the_context(schnell_pipe):
    concept = ConceptAttention(schnell_pipe, CONCEPTS, SETTINGS)
    with pytest.raises(ConfigError, match="no concept attention was recorded"):
        concept.concept_maps()


# --------------------------------------------------------------------------- existing image
def test_concept_maps_of_an_image_equal_explicit_noised_calls(dev_pipe):
    from brushwork.diffusion.concept_attention import concept_maps_of_image
    from brushwork.diffusion.image_maps import FLUX_GUIDANCE, input_size
    from brushwork.image import resize_to

    image = torch.rand(3, 20, 28, generator=torch.Generator().manual_seed(3))
    timesteps = [700.0, 400.0]
    result = concept_maps_of_image(
        dev_pipe, image, CONCEPTS, caption=PROMPT, timesteps=timesteps, seed=2,
        settings=SETTINGS, side=32,
    )  # fmt: skip
    h, w = input_size(dev_pipe, (20, 28), 32)
    assert result.extra["input_size"] == (h, w) and result.extra["timesteps"] == timesteps
    assert result.extra["steps_recorded"] == [0, 1]
    maps = result.maps[0].maps
    assert maps.shape == (len(CONCEPTS), h // 2, w // 2)
    torch.testing.assert_close(maps.sum(0), torch.ones(h // 2, w // 2), atol=1e-5, rtol=0)
    assert result.maps[0].heatmaps().shape == (len(CONCEPTS), 20, 28)

    # the reference: VAE mean, shifted and scaled, x_t = (1 − σ)·x0 + σ·ε, one call each
    vae, transformer = dev_pipe.vae, dev_pipe.transformer
    with torch.no_grad():
        pixels = resize_to(image, h, w)[None] * 2 - 1
        x0 = vae.encode(pixels).latent_dist.mean - vae.config.shift_factor
        x0 = x0 * vae.config.scaling_factor
        eps = torch.randn(x0.shape, generator=torch.Generator("cpu").manual_seed(2))
        embeds, pooled, text_ids = dev_pipe.encode_prompt(PROMPT, None, device="cpu")
        _, c, lh, lw = x0.shape
        img_ids = dev_pipe._prepare_latent_image_ids(1, lh // 2, lw // 2, "cpu", x0.dtype)
        with ConceptAttention(dev_pipe, CONCEPTS, SETTINGS) as concept:
            for t in timesteps:
                sigma = t / 1000
                x_t = (1 - sigma) * x0 + sigma * eps
                transformer(
                    hidden_states=dev_pipe._pack_latents(x_t, 1, c, lh, lw),
                    timestep=torch.tensor([sigma]),
                    guidance=torch.tensor([FLUX_GUIDANCE]),
                    pooled_projections=pooled,
                    encoder_hidden_states=embeds,
                    txt_ids=text_ids,
                    img_ids=img_ids,
                )
            expected = concept.concept_maps()[0]
    torch.testing.assert_close(maps, expected, atol=1e-6, rtol=0)
    other = concept_maps_of_image(
        dev_pipe, image, CONCEPTS, caption=PROMPT, timesteps=timesteps, seed=3,
        settings=SETTINGS, side=32,
    )  # fmt: skip
    assert not torch.equal(other.maps[0].maps, maps)  # the seed is the noise's


def test_concept_maps_of_an_image_refuse_bad_input_before_work(dev_pipe):
    from brushwork.diffusion.concept_attention import concept_maps_of_image

    image = torch.rand(3, 16, 16)
    with pytest.raises(ConfigError, match="at least 2 concepts"):
        concept_maps_of_image(dev_pipe, image, ["giraffe"], caption=PROMPT)
    with pytest.raises(ConfigError, match="caption is empty"):
        concept_maps_of_image(dev_pipe, image, CONCEPTS, caption=" ")
    with pytest.raises(ConfigError, match="out of range"):
        concept_maps_of_image(dev_pipe, image, CONCEPTS, caption=PROMPT, timesteps=[1500])
