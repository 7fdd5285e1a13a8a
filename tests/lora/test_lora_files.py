"""LoRA files: diffusers' loader reads them, scales, combining, kohya names, B-LoRA blocks,
mismatched base models and damaged files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lora_tiny import TRIGGER, build, settings, to_kohya
from safetensors.torch import load_file, save_file
from tiny_flux import run_flux

from brushwork.diffusion.lora import (
    LoraSpec,
    LoraTrainer,
    apply_loras,
    describe,
    load_training_set,
    read_lora,
    save_lora,
    size_multiple,
    train_lora,
)
from brushwork.errors import WeightsError


def _image(pipe, family: str) -> torch.Tensor:
    if family == "flux":
        return run_flux(pipe, "a cat", height=32, width=32, steps=2)
    generator = torch.Generator().manual_seed(0)
    out = pipe("a cat", num_inference_steps=2, height=32, width=32, generator=generator,
               output_type="pt")  # fmt: skip
    return out.images


def _train(pipe, family, images, path: Path, **changes) -> Path:
    data = load_training_set([images], trigger=TRIGGER, resolution=32, multiple=size_multiple(pipe))
    result = train_lora(
        pipe, data, settings(family, learning_rate=2e-2, **changes), base_model=f"tiny-{family}"
    )
    return save_lora(path, result.tensors, result.info)


@pytest.fixture(scope="module")
def sd(tmp_path_factory, training_images):
    """A tiny SD pipeline and two LoRAs trained on it (seeds 0 and 1)."""
    tmp = tmp_path_factory.mktemp("sd_lora")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the one-thread fixture
    pipe = build("sd", tmp)
    a = _train(pipe, "sd", training_images, tmp / "a.safetensors")
    b = _train(pipe, "sd", training_images, tmp / "b.safetensors", seed=1)
    torch.set_num_threads(threads)
    return pipe, a, b


@pytest.mark.parametrize("family", ["sd", "flux"])
def test_diffusers_reads_the_file_and_scale_zero_is_the_base(family, tmp_path, training_images):
    pipe = build(family, tmp_path)
    path = _train(pipe, family, training_images, tmp_path / "style.safetensors")
    base = _image(pipe, family)
    pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name="style")
    styled = _image(pipe, family)
    pipe.set_adapters(["style"], adapter_weights=[0.0])
    assert torch.equal(_image(pipe, family), base)
    assert (styled - base).abs().max() > 1e-3
    pipe.delete_adapters(["style"])
    with apply_loras(pipe, [LoraSpec(path, 1.0)]):
        torch.testing.assert_close(_image(pipe, family), styled, rtol=0, atol=1e-5)
    with apply_loras(pipe, [LoraSpec(path, 0.0)]):
        assert torch.equal(_image(pipe, family), base)
    assert torch.equal(_image(pipe, family), base)


def test_the_file_applies_what_was_trained_alpha_included(tmp_path, training_images):
    pipe = build("sd", tmp_path)
    data = load_training_set([training_images], trigger=TRIGGER, resolution=32, multiple=4)
    trainer = LoraTrainer(pipe, data, settings("sd", rank=4, alpha=8.0, learning_rate=2e-2))
    for _ in range(3):
        trainer.step()
    trained = _image(pipe, "sd")
    path = save_lora(tmp_path / "l.safetensors", trainer.lora_tensors(), trainer.info())
    trainer.close()
    with apply_loras(pipe, [LoraSpec(path, 1.0)]):
        torch.testing.assert_close(_image(pipe, "sd"), trained, rtol=0, atol=1e-5)
    facts = describe(read_lora(path))
    assert facts["rank"] == 4 and facts["alpha"] == 8.0 and facts["family"] == "sd"
    header = json.loads(read_lora(path).metadata["brushwork"])
    assert header["target_modules"] == ["to_q", "to_k", "to_v", "to_out.0"]


def test_two_loras_combine_as_a_weighted_sum_and_fuse(sd):
    pipe, a, b = sd
    layer = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    weight = pipe.unet.get_submodule(layer).weight.detach().clone()
    delta = {}
    for name, path in (("a", a), ("b", b)):
        t = load_file(str(path))
        delta[name] = t[f"unet.{layer}.lora_B.weight"] @ t[f"unet.{layer}.lora_A.weight"]
    specs = [LoraSpec(a, 0.6), LoraSpec(b, 0.4)]
    with apply_loras(pipe, specs, fuse=True):
        fused = pipe.unet.get_submodule(layer).base_layer.weight.detach().clone()
        image_fused = _image(pipe, "sd")
    expected = weight + 0.6 * delta["a"] + 0.4 * delta["b"]
    torch.testing.assert_close(fused, expected, rtol=0, atol=1e-6)
    with apply_loras(pipe, specs):
        torch.testing.assert_close(_image(pipe, "sd"), image_fused, rtol=0, atol=1e-5)
        assert pipe.get_list_adapters() == {"unet": ["brushwork_lora_0", "brushwork_lora_1"]}
    restored = pipe.unet.get_submodule(layer)
    torch.testing.assert_close(getattr(restored, "base_layer", restored).weight, weight)
    assert not pipe.get_list_adapters()


def test_a_kohya_named_file_loads_with_its_alphas(sd, tmp_path):
    pipe, a, _ = sd
    with apply_loras(pipe, [LoraSpec(a, 1.0)]):
        expected = _image(pipe, "sd")
    kohya = tmp_path / "kohya.safetensors"
    save_file(to_kohya(load_file(str(a)), alpha=2.0), str(kohya), metadata={"ss_network_dim": "4"})
    lora = read_lora(kohya)
    assert lora.layout == "kohya" and lora.rank == 4
    with apply_loras(pipe, [LoraSpec(kohya, 1.0)]):
        torch.testing.assert_close(_image(pipe, "sd"), expected, rtol=0, atol=1e-5)
    assert describe(lora)["layers"] == len(read_lora(a).modules())
    assert "unet.up_blocks_1_attentions_0" in describe(lora)["blocks"]


def test_b_lora_changes_only_the_named_blocks_and_parts_combine(tmp_path, training_images):
    pipe = build("sdxl-layout", tmp_path)
    style = _train(pipe, "sdxl", training_images, tmp_path / "s.safetensors", b_lora="both")
    other = _train(pipe, "sdxl", training_images, tmp_path / "o.safetensors", b_lora="both",
                   seed=3)  # fmt: skip

    def weights():
        return {k.replace(".base_layer", ""): v.clone() for k, v in pipe.unet.state_dict().items()}

    before = weights()

    def changed(specs):
        with apply_loras(pipe, specs, fuse=True):
            after = weights()
        return {k for k, v in before.items() if not torch.equal(v, after[k])}

    blocks = lambda keys: {".".join(k.split(".")[:4]) for k in keys}  # noqa: E731
    assert blocks(changed([LoraSpec(style, 1.0, "style")])) == {"up_blocks.0.attentions.1"}
    assert blocks(changed([LoraSpec(style, 1.0)])) == {
        "up_blocks.0.attentions.0",
        "up_blocks.0.attentions.1",
    }
    mixed = changed([LoraSpec(other, 1.0, "content"), LoraSpec(style, 1.0, "style")])
    assert blocks(mixed) == {"up_blocks.0.attentions.0", "up_blocks.0.attentions.1"}
    for key, value in weights().items():
        torch.testing.assert_close(value, before[key])


def test_text_encoder_layers_load_and_unload(tmp_path, training_images):
    pipe = build("sd", tmp_path)
    path = _train(pipe, "sd", training_images, tmp_path / "te.safetensors",
                  train_text_encoder=True)  # fmt: skip
    base = _image(pipe, "sd")
    with apply_loras(pipe, [LoraSpec(path, 1.0)]):
        assert set(pipe.get_list_adapters()) == {"unet", "text_encoder"}
        assert (_image(pipe, "sd") - base).abs().max() > 1e-4
    with apply_loras(pipe, [LoraSpec(path, 0.0)]):
        assert torch.equal(_image(pipe, "sd"), base)
    assert torch.equal(_image(pipe, "sd"), base)


def _load(pipe, path: Path) -> None:
    with apply_loras(pipe, [LoraSpec(path)]):
        pass


def test_a_lora_of_another_base_model_is_a_clear_error(sd, tmp_path):
    _, a, _ = sd
    sdxl = build("sdxl", tmp_path)
    with pytest.raises(WeightsError, match=r"trained for a sd model \(tiny-sd\).*sdxl"):
        _load(sdxl, a)
    bare = tmp_path / "bare.safetensors"  # no brushwork metadata: the shapes tell
    save_file(load_file(str(a)), str(bare))
    with pytest.raises(WeightsError, match=r"does not fit this sdxl pipeline"):
        _load(sdxl, bare)
    assert not sdxl.get_list_adapters()
    flux = build("flux", tmp_path / "flux")
    kohya = tmp_path / "k.safetensors"
    save_file(to_kohya(load_file(str(a)), alpha=4.0), str(kohya))
    with pytest.raises(WeightsError, match=r"does not fit|no layer"):
        _load(flux, kohya)
    assert not flux.get_list_adapters()


def test_damaged_files_are_clear_errors(sd, tmp_path):
    _, a, _ = sd
    data = a.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    flipped = tmp_path / "flipped.safetensors"
    flipped.write_bytes(data[:-100] + bytes(b ^ 0xFF for b in data[-100:]))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file at all" * 10)
    pickled = tmp_path / "style.ckpt"
    pickled.write_bytes(b"PK")
    for path, reason in [(truncated, "damaged"), (flipped, "damaged"), (garbage, "damaged"),
                         (pickled, "safetensors only"), (tmp_path / "none.safetensors",
                         "does not exist")]:  # fmt: skip
        with pytest.raises(WeightsError, match=reason):
            read_lora(path)
    model = tmp_path / "model.safetensors"
    save_file({"conv_in.weight": torch.zeros(2, 2)}, str(model))
    with pytest.raises(WeightsError, match="no LoRA layers"):
        read_lora(model)
