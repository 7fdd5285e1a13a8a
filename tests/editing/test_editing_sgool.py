"""SGOOL on the tiny pipeline with a tiny CLIP; saliency detectors."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from brushwork.diffusion.editing import decode_latents, encode_text
from brushwork.diffusion.saliency import (
    ModuleSaliency,
    SpectralResidualSaliency,
    load_saliency_detector,
)
from brushwork.diffusion.sgool import (
    SGOOLSettings,
    ddim_sample,
    renormalise,
    salient_box,
    salient_view,
    sgool,
)
from brushwork.errors import ConfigError, WeightsError

FAST = SGOOLSettings(iterations=4, steps=3, learning_rate=0.3, seed=0)


def test_sgool_loss_decreases_and_keeps_the_initial_image(sd_edit_pipe, tiny_clip):
    calls = []
    result = sgool(
        sd_edit_pipe, "a cat", tiny_clip, settings=FAST, height=32, width=32,
        callback=lambda *a: calls.append(a),
    )  # fmt: skip
    assert len(result.losses) == FAST.iterations + 1
    assert result.losses[-1] < result.losses[0]
    assert [c[0] for c in calls] == [1, 2, 3, 4]
    assert result.image.shape == result.initial_image.shape == (3, 32, 32)
    assert result.saliency.shape == (1, 32, 32)
    assert not torch.allclose(result.image, result.initial_image)
    n = result.latent.numel()
    assert result.latent.norm().item() == pytest.approx(n**0.5, rel=1e-5)
    # the kept initial image is the plain sample of the initial latent
    latent = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    cond, uncond = encode_text(sd_edit_pipe, "a cat")
    with torch.no_grad():
        x0 = ddim_sample(sd_edit_pipe, renormalise(latent), cond, uncond, steps=3)
        plain = decode_latents(sd_edit_pipe, x0)[0]
    torch.testing.assert_close(result.initial_image, plain, atol=1e-5, rtol=1e-5)
    again = sgool(sd_edit_pipe, "a cat", tiny_clip, settings=FAST, height=32, width=32)
    assert torch.equal(again.image, result.image)


def _saved_bytes(pipe, steps: int, use_checkpoint: bool) -> int:
    """Bytes of the tensors autograd keeps for backward of the SGOOL graph."""
    cond, uncond = encode_text(pipe, "a cat")
    x_T = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    x_T.requires_grad_(True)
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[id(t)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        x0 = ddim_sample(pipe, x_T, cond, uncond, steps=steps, use_checkpoint=use_checkpoint)
        loss = decode_latents(pipe, x0).mean()
    loss.backward()
    assert x_T.grad is not None and x_T.grad.abs().sum() > 0
    return sum(seen.values())


def test_memory_does_not_grow_with_sampler_steps(sd_edit_pipe):
    flat_4 = _saved_bytes(sd_edit_pipe, 4, True)
    flat_16 = _saved_bytes(sd_edit_pipe, 16, True)
    plain_4 = _saved_bytes(sd_edit_pipe, 4, False)
    plain_16 = _saved_bytes(sd_edit_pipe, 16, False)
    assert plain_16 > 3 * plain_4  # the measurement sees per-step activations
    assert flat_16 <= 1.05 * flat_4
    assert flat_16 < plain_16 / 4


def test_checkpointing_gives_the_same_gradient(sd_edit_pipe):
    cond, uncond = encode_text(sd_edit_pipe, "a dog")
    grads = []
    for flag in (True, False):
        x_T = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
        x_T.requires_grad_(True)
        ddim_sample(sd_edit_pipe, x_T, cond, uncond, steps=3, use_checkpoint=flag).sum().backward()
        grads.append(x_T.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_spectral_saliency_shape_range_and_focus():
    images = torch.full((2, 3, 48, 64), 0.5)
    images[0, :, 12:17, 42:47] = 1.0  # one small bright square on a plain background
    images[1] = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0))
    maps = SpectralResidualSaliency()(images)
    assert maps.shape == (2, 1, 48, 64)
    assert maps.min() >= 0 and maps.max() <= 1
    assert maps.flatten(1).max(1).values.tolist() == [1.0, 1.0]
    peak = int(maps[0, 0].argmax())
    assert 12 <= peak // 64 < 17 and 42 <= peak % 64 < 47
    assert maps[0, 0, 8:21, 38:51].mean() > 10 * maps[0, 0, 30:, :30].mean()
    top, left, bottom, right = salient_box(maps[0], threshold=0.5, min_view=0.25)
    assert bottom - top == right - left == 12  # min_view · 48
    assert top <= 12 and bottom >= 17 and left <= 42 and right >= 47


def test_salient_view_is_differentiable():
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    sal = torch.zeros(1, 32, 32)
    sal[0, 4:12, 20:28] = 1
    crop = salient_view(image, sal, view="crop", min_view=0.1)
    assert crop.shape == (1, 3, 8, 8)
    masked = salient_view(image, sal, view="mask")
    (crop.sum() + masked.sum()).backward()
    assert image.grad[0, 0, 5, 21] == 2 and image.grad[0, 0, 0, 0] == 0


def test_learned_detector_interface(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3, padding=1), torch.nn.Sigmoid())
    detector = ModuleSaliency(net, input_size=(24, 32), mean=(0.5,) * 3, std=(0.5,) * 3)
    images = torch.rand(2, 3, 40, 50, generator=torch.Generator().manual_seed(1))
    maps = detector(images)
    assert maps.shape == (2, 1, 40, 50) and maps.min() >= 0 and maps.max() <= 1
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    # a one-node ONNX model: saliency = mean over channels (written in the real format)
    node = helper.make_node("ReduceMean", ["image"], ["saliency"], axes=[1], keepdims=1)
    graph = helper.make_graph(
        [node], "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 3, 24, 32])],
        [helper.make_tensor_value_info("saliency", TensorProto.FLOAT, [None, 1, 24, 32])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "sal.onnx")
    loaded = load_saliency_detector("onnx", weights=tmp_path / "sal.onnx", input_size=(24, 32))
    out = loaded(images)
    assert out.shape == (2, 1, 40, 50) and out.min() >= 0 and out.max() <= 1
    with pytest.raises(WeightsError, match="does not exist"):
        load_saliency_detector("onnx", weights=tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="needs its model file"):
        load_saliency_detector("onnx")
    with pytest.raises(ConfigError, match="unknown saliency detector"):
        load_saliency_detector("transalnet")


def test_settings_are_checked(sd_edit_pipe, tiny_clip):
    with pytest.raises(ConfigError, match="optimiser"):
        sgool(sd_edit_pipe, "a cat", tiny_clip, settings=replace(FAST, optimiser="lbfgs"))


def test_sgool_nan_is_a_clear_error(sd_edit_pipe, tiny_clip):
    from brushwork.errors import OptimisationError

    latent = torch.randn(1, 4, 8, 8)
    latent[0, 0, 0, 0] = float("inf")
    with pytest.raises(OptimisationError, match="iteration 1"):
        sgool(sd_edit_pipe, "a cat", tiny_clip, settings=FAST, latent=latent)
