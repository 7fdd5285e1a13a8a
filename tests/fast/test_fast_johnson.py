"""Johnson networks: training, checkpoints, model files, ONNX, tiling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from brushwork.errors import ConfigError, WeightsError
from brushwork.transfer import modelfile
from brushwork.transfer.data import ImageFolder
from brushwork.transfer.johnson import (
    JohnsonConfig,
    JohnsonSettings,
    TransformerNet,
    _JohnsonLoss,
    train_johnson,
)
from brushwork.transfer.stylize import load_stylizer

TINY_JOHNSON = JohnsonConfig(channels=4, residual_blocks=1)


def _settings(**kw) -> JohnsonSettings:
    base = dict(
        image_size=32,
        batch_size=2,
        steps=6,
        learning_rate=3e-3,
        checkpoint_every=0,
        config=TINY_JOHNSON,
        seed=3,
    )
    base.update(kw)
    return JohnsonSettings(**base)


def _loss_at_step0(net, vgg, style, content_dir, settings) -> float:
    data = ImageFolder(content_dir, resize=settings.image_size, crop=settings.image_size)
    loss = _JohnsonLoss(
        net=net, vgg=vgg, style=style, data=data, settings=settings, device=torch.device("cpu")
    )
    with torch.no_grad():
        return float(loss(0)["total"])


def test_transformer_keeps_size_and_refuses_odd_sizes() -> None:
    net = TransformerNet(TINY_JOHNSON, generator=torch.Generator().manual_seed(0))
    assert net(torch.rand(1, 3, 16, 20)).shape == (1, 3, 16, 20)
    with pytest.raises(ConfigError, match="divisible by 4"):
        net(torch.rand(1, 3, 17, 20))
    default = TransformerNet()
    assert sum(p.numel() for p in default.parameters()) > 1_500_000  # the paper's 1.7 M


def test_training_reduces_the_loss(vgg16, style_tensor, content_dir) -> None:
    settings = _settings(steps=8)
    start = TransformerNet(TINY_JOHNSON, generator=torch.Generator().manual_seed(settings.seed))
    before = _loss_at_step0(start, vgg16, style_tensor, content_dir, settings)
    seen = []
    net, result = train_johnson(
        style_tensor,
        content_dir=content_dir,
        settings=settings,
        vgg=vgg16,
        device="cpu",
        callback=seen.append,
    )
    after = _loss_at_step0(net, vgg16, style_tensor, content_dir, settings)
    assert after < 0.7 * before
    assert [s.step for s in seen] == list(range(1, 9))
    assert {"content", "style", "total"} <= set(seen[-1].losses)
    assert seen[-1].images_per_second > 0
    assert result.steps == 8


def test_resume_equals_uninterrupted_training(vgg16, style_tensor, content_dir, tmp_path) -> None:
    full, _ = train_johnson(
        style_tensor,
        content_dir=content_dir,
        settings=_settings(steps=4),
        vgg=vgg16,
        device="cpu",
    )
    ckpt = tmp_path / "run.ckpt"
    train_johnson(
        style_tensor,
        content_dir=content_dir,
        settings=_settings(steps=2),
        vgg=vgg16,
        device="cpu",
        checkpoint_path=ckpt,
    )
    resumed, _result = train_johnson(
        style_tensor,
        content_dir=content_dir,
        settings=_settings(steps=4),
        vgg=vgg16,
        device="cpu",
        resume=ckpt,
    )
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    with pytest.raises(WeightsError, match="another model"):
        train_johnson(
            style_tensor,
            content_dir=content_dir,
            vgg=vgg16,
            device="cpu",
            resume=ckpt,
            settings=_settings(steps=4, config=type(TINY_JOHNSON)(channels=8, residual_blocks=1)),
        )


def test_same_seed_same_network(vgg16, style_tensor, content_dir) -> None:
    a, _ = train_johnson(
        style_tensor, content_dir=content_dir, settings=_settings(steps=2), vgg=vgg16, device="cpu"
    )
    b, _ = train_johnson(
        style_tensor, content_dir=content_dir, settings=_settings(steps=2), vgg=vgg16, device="cpu"
    )
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(a(x), b(x))


def test_empty_or_missing_content_folder(vgg16, style_tensor, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(ConfigError, match="holds no images"):
        train_johnson(
            style_tensor,
            content_dir=tmp_path / "empty",
            settings=_settings(),
            vgg=vgg16,
            device="cpu",
        )
    with pytest.raises(ConfigError, match="does not exist"):
        train_johnson(
            style_tensor,
            content_dir=tmp_path / "nope",
            settings=_settings(),
            vgg=vgg16,
            device="cpu",
        )


def _tiny_model_file(tmp_path: Path) -> Path:
    net = TransformerNet(TINY_JOHNSON, generator=torch.Generator().manual_seed(5))
    return modelfile.save_model(
        tmp_path / "tiny.safetensors", net, settings={"steps": 1}, style_sha256="ab" * 32
    )


def test_save_load_round_trip_gives_identical_outputs(tmp_path, content_batch) -> None:
    net = TransformerNet(TINY_JOHNSON, generator=torch.Generator().manual_seed(5))
    path = _tiny_model_file(tmp_path)
    loaded, info = modelfile.load_model(path)
    assert info.architecture == "johnson" and info.style_sha256 == "ab" * 32
    x = torch.rand(2, 3, 24, 28)
    assert torch.equal(net.eval()(x), loaded(x))
    stylizer = load_stylizer(path, device="cpu")
    out = stylizer(content_batch)
    assert out.shape == content_batch.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, stylizer(content_batch))  # deterministic


def test_bad_model_files_are_refused(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a model" * 10)
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        modelfile.load_model(garbage)
    with pytest.raises(WeightsError, match="does not exist"):
        modelfile.load_model(tmp_path / "missing.safetensors")
    with pytest.raises(WeightsError, match=r"not a \.safetensors"):
        load_stylizer(tmp_path / "model.pth")

    good = _tiny_model_file(tmp_path)
    state = load_file(str(good))
    plain = tmp_path / "plain.safetensors"
    save_file(state, str(plain))
    with pytest.raises(WeightsError, match="no brushwork model metadata"):
        modelfile.load_model(plain)

    meta = json.loads(_metadata(good))
    meta["config"]["channels"] = 8
    wrong = tmp_path / "wrong.safetensors"
    save_file(state, str(wrong), metadata={"brushwork": json.dumps(meta)})
    with pytest.raises(WeightsError, match="does not match the johnson architecture"):
        modelfile.load_model(wrong)
    with pytest.raises(WeightsError, match="holds a johnson model, but an adain model is needed"):
        modelfile.load_model(good, architecture="adain")


def _metadata(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()["brushwork"]


def test_onnx_export_matches_pytorch(tmp_path, content_batch) -> None:
    from brushwork.transfer.onnx_export import export_onnx

    path = _tiny_model_file(tmp_path)
    onnx_path = export_onnx(path, tmp_path / "tiny.onnx")
    torch_out = load_stylizer(path, device="cpu")(content_batch)
    onnx_stylizer = load_stylizer(onnx_path, device="cpu")
    assert onnx_stylizer.backend == "onnxruntime"
    torch.testing.assert_close(onnx_stylizer(content_batch), torch_out, rtol=0, atol=1e-4)
    # dynamic height and width: another size through the same graph
    other = torch.rand(1, 3, 52, 20)
    torch.testing.assert_close(
        onnx_stylizer(other), load_stylizer(path, device="cpu")(other), rtol=0, atol=1e-4
    )
    with pytest.raises(WeightsError, match="not a valid ONNX"):
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(b"nonsense")
        load_stylizer(bad)


def test_preserve_color_keeps_the_content_chroma(tmp_path, content_batch) -> None:
    from brushwork.image import rgb_to_yiq

    path = _tiny_model_file(tmp_path)
    out = load_stylizer(path, device="cpu", preserve_color=True)(content_batch)
    yiq_out, yiq_in = rgb_to_yiq(out), rgb_to_yiq(content_batch)
    inside = (out > 0.02).all(1, keepdim=True) & (out < 0.98).all(1, keepdim=True)
    diff = (yiq_out[:, 1:] - yiq_in[:, 1:]).abs() * inside
    assert diff.max() < 1e-3
