"""AdaIN: the op, the published weight layout, α, interpolation, masks, training, files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from brushwork.errors import ConfigError, WeightsError
from brushwork.losses import mean_std
from brushwork.transfer import modelfile
from brushwork.transfer.adain import (
    AdaINModel,
    AdaINSettings,
    adain,
    load_published_adain,
    masked_adain,
    train_adain,
)
from brushwork.transfer.stylize import load_stylizer


def test_adain_output_has_the_style_statistics() -> None:
    g = torch.Generator().manual_seed(0)
    content = torch.randn(2, 16, 12, 10, generator=g) * 3 + 1
    style = torch.randn(1, 16, 9, 7, generator=g) * 0.5 - 2
    out = adain(content, style)
    mean, std = mean_std(out)
    s_mean, s_std = mean_std(style)
    torch.testing.assert_close(mean, s_mean.expand_as(mean), rtol=0, atol=1e-4)
    torch.testing.assert_close(std, s_std.expand_as(std), rtol=0, atol=1e-4)


def test_masked_adain_with_a_full_mask_is_adain() -> None:
    g = torch.Generator().manual_seed(1)
    content = torch.randn(1, 8, 10, 10, generator=g)
    a, b = torch.randn(1, 8, 6, 6, generator=g), torch.randn(1, 8, 6, 6, generator=g) + 2
    masks = torch.zeros(1, 2, 10, 10)
    masks[:, 0] = 1
    torch.testing.assert_close(masked_adain(content, [a, b], masks), adain(content, a))
    half = torch.zeros(1, 2, 10, 10)
    half[:, 0, :5], half[:, 1, 5:] = 1, 1
    out = masked_adain(content, [a, b], half)
    # each region has its own style's mean
    top, bottom = out[..., :5, :].mean(dim=(2, 3)), out[..., 5:, :].mean(dim=(2, 3))
    torch.testing.assert_close(top, a.mean(dim=(2, 3)), rtol=0, atol=1e-4)
    torch.testing.assert_close(bottom, b.mean(dim=(2, 3)), rtol=0, atol=1e-4)


def test_alpha_zero_returns_the_content_reconstruction(tiny_adain, content_batch, style_tensor):
    x = content_batch[..., :32, :40]
    out = tiny_adain.stylize(x, [style_tensor[None]], alpha=0.0)
    torch.testing.assert_close(out, tiny_adain.decoder(tiny_adain.encoder(x)))
    with pytest.raises(ConfigError, match="alpha"):
        tiny_adain.stylize(x, [style_tensor[None]], alpha=1.5)


def test_interpolation_weights(tiny_adain, content_batch, style_tensor) -> None:
    x = content_batch[..., :32, :40]
    other = style_tensor.flip(-1).roll(7, -2) * 0.5
    one = tiny_adain.stylize(x, [style_tensor[None]])
    mixed = tiny_adain.stylize(x, [style_tensor[None], other[None]], style_weights=[3, 0])
    torch.testing.assert_close(mixed, one)
    with pytest.raises(ConfigError, match="style weights"):
        tiny_adain.stylize(x, [style_tensor[None], other[None]], style_weights=[1])


def _reference_vgg() -> nn.Sequential:
    """The normalised VGG-19 exactly as the reference repository builds it (to relu5_4)."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    cin = 3
    for block, (width, convs) in enumerate(
        zip((64, 128, 256, 512, 512), (2, 2, 4, 4, 4), strict=False)
    ):
        if block:
            layers.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
        for _ in range(convs):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, width, 3), nn.ReLU()]
            cin = width
    return nn.Sequential(*layers)


def _reference_decoder() -> nn.Sequential:
    spec = [
        (512, 256),
        "up",
        (256, 256),
        (256, 256),
        (256, 256),
        (256, 128),
        "up",
        (128, 128),
        (128, 64),
        "up",
        (64, 64),
        (64, 3),
    ]
    layers: list[nn.Module] = []
    for item in spec:
        if item == "up":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(*item, 3), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no ReLU after the last conv


def test_published_layout_loads_and_matches_the_reference(tmp_path, style_tensor) -> None:
    torch.manual_seed(0)
    vgg, decoder = _reference_vgg(), _reference_decoder()
    with torch.no_grad():  # keep the random network's activations in range
        for m in vgg.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(0.5)
        vgg[0].weight.mul_(1 / 255)
    torch.save(vgg.state_dict(), tmp_path / "my_vgg_normalised.pth")
    torch.save(decoder.state_dict(), tmp_path / "my_decoder.pth")
    model = load_published_adain(
        encoder_path=tmp_path / "my_vgg_normalised.pth", decoder_path=tmp_path / "my_decoder.pth"
    )
    content = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    style = style_tensor[None, :, :32, :32]
    encode = vgg[:31]  # up to relu4_1, as the reference truncates it
    with torch.no_grad():
        expected = decoder(adain(encode(content), encode(style)))
        got = model.stylize(content, [style])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)

    torch.save(decoder.state_dict(), tmp_path / "swapped.pth")
    with pytest.raises(WeightsError, match="does not hold the weights of a normalised VGG"):
        load_published_adain(
            encoder_path=tmp_path / "swapped.pth", decoder_path=tmp_path / "my_decoder.pth"
        )


def test_training_reduces_the_loss_and_round_trips(tiny_adain, content_dir, style_dir, tmp_path):
    from brushwork.transfer.adain import adain_loss

    settings = AdaINSettings(
        resize=40,
        image_size=32,
        batch_size=2,
        steps=10,
        learning_rate=5e-3,
        checkpoint_every=0,
        seed=4,
    )
    from brushwork.transfer.data import ImageFolder

    c = ImageFolder(content_dir, resize=40, crop=32).batch(step=0, batch_size=2, seed=9)
    s = ImageFolder(style_dir, resize=40, crop=32).batch(step=0, batch_size=2, seed=9)
    from brushwork.transfer.johnson import reinitialise

    reinitialise(tiny_adain.decoder, torch.Generator().manual_seed(settings.seed))
    with torch.no_grad():
        before = float(adain_loss(tiny_adain, c, s, settings)["total"])
    model, _ = train_adain(
        content_dir=content_dir,
        style_dir=style_dir,
        settings=settings,
        model=tiny_adain,
        device="cpu",
    )
    with torch.no_grad():
        after = float(adain_loss(model, c, s, settings)["total"])
    assert after < before

    path = modelfile.save_model(tmp_path / "adain.safetensors", model, settings=settings.to_json())
    loaded, info = modelfile.load_model(path)
    assert isinstance(loaded, AdaINModel) and info.settings["steps"] == 10
    style = s[:1]
    x = c[..., :28, :30]
    a = load_stylizer(path, styles=[style[0]], alpha=0.7, device="cpu")(x)
    b = load_stylizer(path, styles=[style[0]], alpha=0.7, device="cpu")(x)
    assert a.shape == x.shape and torch.equal(a, b)


def test_missing_style_and_empty_folders(tiny_adain, tmp_path, content_dir) -> None:
    path = modelfile.save_model(tmp_path / "adain.safetensors", tiny_adain)
    with pytest.raises(ConfigError, match="needs at least one style"):
        load_stylizer(path, device="cpu")
    with pytest.raises(WeightsError, match="holds an adain model, but a johnson model is needed"):
        load_stylizer(path, method="johnson", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"style folder .* holds no images"):
        train_adain(
            content_dir=content_dir,
            style_dir=tmp_path / "empty",
            model=tiny_adain,
            settings=AdaINSettings(steps=1),
            device="cpu",
        )


def test_masks_and_colour_preservation_through_the_stylizer(
    tiny_adain, tmp_path, style_tensor, content_batch
) -> None:
    path = modelfile.save_model(tmp_path / "adain.safetensors", tiny_adain)
    other = 1 - style_tensor
    masks = torch.zeros(2, 36, 44)
    masks[0, :, :22], masks[1, :, 22:] = 1, 1
    stylizer = load_stylizer(path, styles=[style_tensor, other], masks=masks, device="cpu")
    out = stylizer(content_batch)
    assert out.shape == content_batch.shape
    # the raw (unclamped) decoder outputs differ between one style and two regional styles
    x = content_batch[..., :32, :40]
    regional = tiny_adain.stylize(x, [style_tensor[None], other[None]], masks=masks[None])
    single = tiny_adain.stylize(x, [style_tensor[None]])
    assert (regional - single).abs().max() > 1e-4
    kept = load_stylizer(path, styles=[style_tensor], preserve_color=True, device="cpu")
    assert kept(content_batch).shape == content_batch.shape
    with pytest.raises(ConfigError, match="one mask per style"):
        load_stylizer(path, styles=[style_tensor], masks=masks, device="cpu")


def test_onnx_export_of_adain_matches_pytorch(tiny_adain, tiny_wct, tmp_path) -> None:
    from brushwork.transfer.onnx_export import export_onnx

    path = modelfile.save_model(tmp_path / "adain.safetensors", tiny_adain)
    onnx_path = export_onnx(path, tmp_path / "adain.onnx")
    generator = torch.Generator().manual_seed(4)
    style = torch.rand(3, 40, 28, generator=generator)
    content = torch.rand(2, 3, 36, 44, generator=generator)  # padded to multiples of 8
    for alpha, preserve in ((0.7, False), (1.0, True)):
        options = dict(styles=[style], alpha=alpha, preserve_color=preserve, device="cpu")
        exported = load_stylizer(onnx_path, **options)
        assert (exported.backend, exported.method) == ("onnxruntime", "adain")
        reference = load_stylizer(path, **options)
        torch.testing.assert_close(exported(content), reference(content), rtol=0, atol=1e-4)
    with pytest.raises(ConfigError, match="one style"):
        load_stylizer(onnx_path, styles=[style, style], device="cpu")
    with pytest.raises(ConfigError, match="ONNX adain model"):
        load_stylizer(onnx_path, method="johnson", styles=[style], device="cpu")
    with pytest.raises(ConfigError, match="eigendecomposition"):
        export_onnx(tiny_wct, tmp_path / "wct.onnx")
    assert not (tmp_path / "wct.onnx").exists()


def test_int8_onnx_export_of_adain_and_johnson(tiny_adain, tmp_path) -> None:
    from brushwork.transfer.johnson import JohnsonConfig, TransformerNet
    from brushwork.transfer.onnx_export import export_onnx, open_session, read_metadata

    generator = torch.Generator().manual_seed(6)
    calibration = [torch.rand(3, 48, 40, generator=generator) for _ in range(4)]
    style = torch.rand(3, 40, 32, generator=generator)
    content = torch.rand(1, 3, 40, 48, generator=generator)
    johnson = TransformerNet(JohnsonConfig(channels=8, residual_blocks=1), generator=generator)
    errors = {}
    for model, options in ((tiny_adain, {"styles": [style], "alpha": 0.8}), (johnson, {})):
        path = export_onnx(model, tmp_path / "int8.onnx", int8=True, calibration=calibration)
        metadata = read_metadata(open_session(path))
        assert metadata["int8"] is True
        if model is tiny_adain:  # between convolutions only ReLU/pad/pool/upsampling: 8-bit
            import onnx

            ops = [node.op_type for node in onnx.load(str(path)).graph.node]
            assert ops.count("QLinearConv") > 4 and "Relu" not in ops  # folded into them
            assert ops.count("DequantizeLinear") < ops.count("QLinearConv") / 2
        reference = export_onnx(model, tmp_path / "fp32.onnx")
        out = load_stylizer(path, device="cpu", **options)(content)
        expected = load_stylizer(reference, device="cpu", **options)(content)
        assert out.shape == expected.shape
        errors[metadata["architecture"]] = float((out - expected).abs().mean())
        assert 0 < metadata["int8_mean_abs_error"] < 1  # measured on the calibration set
    # 8-bit convolutions calibrated on images like the content: close to the float graph.
    assert all(0 < error < 0.05 for error in errors.values()), errors
    with pytest.raises(ConfigError, match="calibration"):
        export_onnx(tiny_adain, tmp_path / "x.onnx", int8=True)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
