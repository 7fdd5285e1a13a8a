"""The light Johnson family (``--arch light``), processing at a smaller size, compile cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from brushwork.cli.main import main
from brushwork.encoders import VGGEncoder
from brushwork.errors import ConfigError
from brushwork.image import load_image, resize_long_side
from brushwork.transfer import modelfile
from brushwork.transfer.johnson import (
    JohnsonConfig,
    JohnsonSettings,
    TransformerNet,
    compile_cache_dir,
    enable_compile_cache,
    train_johnson,
)
from brushwork.transfer.onnx_export import export_onnx
from brushwork.transfer.stylize import AdaINStylizer, JohnsonStylizer, load_stylizer

#: The light shape at a test's size: 32 channels are 8 here, the 8/4 decoder kept.
TINY_LIGHT = JohnsonConfig.preset("light", channels=8, residual_blocks=1)


def test_light_preset_is_the_32_channel_shape() -> None:
    light = TransformerNet(JohnsonConfig.preset("light"))
    convs = [m for m in light.modules() if isinstance(m, torch.nn.Conv2d)]
    assert {c.out_channels for c in convs[:-3]} == {32}  # 32 channels up to the decoder
    assert [c.out_channels for c in convs[-3:]] == [8, 4, 3]
    params = sum(p.numel() for p in light.parameters())
    standard = sum(p.numel() for p in TransformerNet().parameters())
    assert 100_000 < params < 150_000 and standard > 10 * params
    separable = TransformerNet(JohnsonConfig.preset("light", separable=True))
    assert sum(p.numel() for p in separable.parameters()) < params
    with pytest.raises(ConfigError, match="unknown Johnson architecture"):
        JohnsonConfig.preset("huge")


@pytest.mark.parametrize("separable", [False, True])
def test_light_network_trains_and_matches_its_onnx_export(
    separable, vgg16, style_tensor, content_dir, tmp_path, content_batch
) -> None:
    config = JohnsonConfig.preset("light", channels=8, residual_blocks=1, separable=separable)
    settings = JohnsonSettings(
        image_size=32,
        batch_size=2,
        steps=6,
        learning_rate=3e-3,
        checkpoint_every=0,
        seed=3,
        config=config,
    )
    seen = []
    net, result = train_johnson(
        style_tensor,
        content_dir=content_dir,
        settings=settings,
        vgg=vgg16,
        device="cpu",
        callback=seen.append,
    )
    assert result.steps == 6
    assert seen[-1].losses["total"] < seen[0].losses["total"]
    path = modelfile.save_model(tmp_path / "light.safetensors", net, settings=settings.to_json())
    onnx_path = export_onnx(path, tmp_path / "light.onnx")
    torch_out = load_stylizer(path, device="cpu")(content_batch)
    onnx_stylizer = load_stylizer(onnx_path, device="cpu")
    assert onnx_stylizer.backend == "onnxruntime"
    torch.testing.assert_close(onnx_stylizer(content_batch), torch_out, rtol=0, atol=1e-4)


def test_stored_architecture_is_restored_and_old_files_are_standard(tmp_path) -> None:
    net = TransformerNet(TINY_LIGHT, generator=torch.Generator().manual_seed(2))
    path = modelfile.save_model(tmp_path / "light.safetensors", net)
    loaded, info = modelfile.load_model(path)
    assert info.config["arch"] == "light"
    assert loaded.config == TINY_LIGHT
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded(x), net.eval()(x))

    # A file of the first format: its config holds only channels and residual blocks.
    old = TransformerNet(JohnsonConfig(channels=4, residual_blocks=1))
    old_path = modelfile.save_model(tmp_path / "old.safetensors", old)
    meta = json.loads(_metadata(old_path)[modelfile.METADATA_KEY])
    meta["config"] = {"channels": 4, "residual_blocks": 1}
    save_file(
        load_file(str(old_path)),
        str(old_path),
        metadata={modelfile.METADATA_KEY: json.dumps(meta)},
    )
    restored, _ = modelfile.load_model(old_path)
    assert restored.config.arch == "standard" and restored.config.widths == (4, 8, 16, 8, 4)


def _metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()


def test_process_size_runs_smaller_and_returns_the_input_size(tiny_adain, style_tensor) -> None:
    net = TransformerNet(JohnsonConfig(4, 1), generator=torch.Generator().manual_seed(1))
    images = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(3))
    full = JohnsonStylizer(net, device=torch.device("cpu"))
    small = JohnsonStylizer(net, device=torch.device("cpu"), process_size=28)
    out = small(images)
    assert out.shape == images.shape
    # exactly: the network on the image shrunk to a long side of 28, upscaled (bicubic)
    shrunk = resize_long_side(images, 28)
    assert shrunk.shape[-2:] == (20, 28)
    expected = F.interpolate(full(shrunk), size=(40, 56), mode="bicubic").clamp(0, 1)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    assert (out - full(images)).abs().mean() > 1e-3  # not the full-size run
    # no effect on images already small enough
    large = JohnsonStylizer(net, device=torch.device("cpu"), process_size=64)
    torch.testing.assert_close(large(images), full(images))

    adain = AdaINStylizer(
        tiny_adain,
        styles=[style_tensor],
        style_weights=None,
        alpha=1.0,
        device=torch.device("cpu"),
        process_size=32,
    )
    assert adain(images).shape == images.shape
    with pytest.raises(ConfigError, match="process_size"):
        JohnsonStylizer(net, device=torch.device("cpu"), process_size=4)


def test_cli_trains_light_and_stylizes_at_a_process_size(
    tmp_path, content_dir, style_dir, content_batch
) -> None:
    vgg = tmp_path / "my-vgg16.pth"
    torch.save(VGGEncoder("vgg16", generator=torch.Generator().manual_seed(0)).state_dict(), vgg)
    model = tmp_path / "light.safetensors"
    argv = ["train", "johnson", "--style", str(style_dir / "img00.png"), "--content-dir"]
    argv += [str(content_dir), "-o", str(model), "--steps", "1", "--batch-size", "1"]
    argv += ["--crop-size", "32", "--arch", "light", "--channels", "8", "--residual-blocks", "1"]
    assert main([*argv, "--weights", str(vgg), "--device", "cpu", "-q"]) == 0
    info, _ = modelfile.read_info(model)
    assert info.config["arch"] == "light" and info.config["growth"] == 1
    assert info.config["decoder_channels"] == [8, 4] and info.config["channels"] == 8
    assert info.config["separable"] is False
    assert main([*argv, "--separable", "--weights", str(vgg), "--device", "cpu", "-q"]) == 0
    assert modelfile.read_info(model)[0].config["separable"] is True
    content = content_dir / "img00.png"
    out = tmp_path / "out.png"
    argv = ["stylize", str(content), "--model", str(model), "-o", str(out), "--device", "cpu"]
    assert main([*argv, "--process-size", "24", "-q"]) == 0
    assert load_image(out).shape == load_image(content).shape


def test_compile_cache_goes_to_brushwork_cache_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BRUSHWORK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert compile_cache_dir() == tmp_path / "cache" / "inductor"
    assert enable_compile_cache() == tmp_path / "cache" / "inductor"
    assert (tmp_path / "cache" / "inductor").is_dir()
    import torch._inductor.config as inductor_config

    assert inductor_config.fx_graph_cache
    # a folder the user chose is kept
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert enable_compile_cache() == tmp_path / "mine"


def test_compiled_adain_equals_the_eager_one(tmp_path, monkeypatch) -> None:
    """``compile=True`` for AdaIN (encoder and decoder): the same numbers (≈ 20 s: inductor)."""
    from brushwork.transfer.adain import AdaINConfig, AdaINModel, EncoderConfig
    from brushwork.transfer.johnson import reinitialise

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    model = AdaINModel(AdaINConfig(EncoderConfig(level=4, widths=(4, 6, 8, 8, 8))))
    reinitialise(model, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(0)
    style, content = torch.rand(3, 32, 32, generator=g), torch.rand(1, 3, 40, 48, generator=g)
    common = dict(styles=[style], style_weights=None, alpha=0.8, device=torch.device("cpu"))
    eager = AdaINStylizer(model, **common)
    compiled = AdaINStylizer(model, compile=True, **common)
    assert type(compiled.model.encoder).__name__ == "OptimizedModule"
    torch.testing.assert_close(compiled(content), eager(content), rtol=0, atol=1e-5)
