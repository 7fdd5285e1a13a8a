"""ONNX export of Johnson and AdaIN networks and the onnxruntime session that runs them.

A Johnson graph takes ``images`` (B, 3, H, W) float32 in [0, 1] with dynamic batch,
height and width (H and W multiples of 4; the Stylizer pads) and returns
``stylized`` of the same shape, clamped to [0, 1].

An AdaIN graph holds two independent parts: ``style`` (1, 3, H', W') ->
``style_mean``, ``style_std`` (1, C), the style's statistics; and ``content``
(B, 3, H, W) (H and W multiples of 8), ``mean``, ``std`` (1, C) and ``alpha`` (a
float32 scalar) -> ``stylized`` (B, 3, H, W) clamped to [0, 1] (encoder, AdaIN, α blend,
decoder). So a style is encoded once and reused for every image; one style at a time
(interpolation and masks stay in PyTorch). ``int8=True`` quantises the convolutions
(onnxruntime static quantisation, calibrated on given images) for CPUs with VNNI.

WCT does not export: its whitening needs an eigendecomposition, which ONNX has no
operator for.

The model's architecture and config (and, from a model file, the style hash) go
into the ONNX ``metadata_props`` under ``brushwork``; :func:`read_metadata` reads
them back, and ``load_stylizer`` uses them to pick the stylizer.

Example::

    export_onnx("starry.safetensors", "starry.onnx")
    stylizer = load_stylizer("starry.onnx")
    export_onnx("adain.safetensors", "adain.onnx")
    stylizer = load_stylizer("adain.onnx", styles=[style], alpha=0.7)
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from brushwork.atomic import create_temp_file
from brushwork.errors import ConfigError, OutputPathError, WeightsError

OPSET = 17


class _Clamped(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).clamp(0.0, 1.0)


class _AdaINGraph(nn.Module):
    """Two independent parts in one graph, so a style is encoded once, not per image.

    ``style`` (1, 3, H', W') -> ``style_mean``, ``style_std`` (1, C), the statistics AdaIN
    needs; ``content`` (B, 3, H, W), ``mean``, ``std`` (1, C) and ``alpha`` -> ``stylized``.
    A caller asks for one part's outputs and feeds a tiny dummy to the other's input.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        content: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        alpha: torch.Tensor,
        style: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from brushwork.losses import mean_std

        feats = self.model.encoder(content)
        c_mean, c_std = mean_std(feats)
        target = (feats - c_mean[..., None, None]) / c_std[..., None, None]
        target = target * std[..., None, None] + mean[..., None, None]
        mixed = alpha * target + (1 - alpha) * feats
        stylized = self.model.decoder(mixed).clamp(0.0, 1.0)
        style_mean, style_std = mean_std(self.model.encoder(style))
        return stylized, style_mean, style_std


def _calibration_feeds(
    session, images: Sequence[torch.Tensor], architecture: str
) -> list[dict[str, np.ndarray]]:
    """Graph inputs for calibration: each image as a content, the next one as its style.

    ``session`` runs the float model (AdaIN: for the styles' statistics).
    """
    from brushwork.image import resize_long_side

    def prepared(image: torch.Tensor) -> np.ndarray:
        image = image.float()[None]
        if max(image.shape[-2:]) > 256:  # calibration at a modest size keeps it quick
            image = resize_long_side(image, 256).clamp(0, 1)
        h, w = (side // 8 * 8 for side in image.shape[-2:])
        if h < 16 or w < 16:
            raise ConfigError("calibration images must be at least 16 pixels on each side")
        return image[..., :h, :w].contiguous().numpy()

    arrays = [prepared(image) for image in images]
    if architecture == "johnson":
        return [{"images": array} for array in arrays]
    channels = {node.name: node.shape for node in session.get_inputs()}["mean"][1]
    alpha = np.asarray(1.0, dtype=np.float32)
    ones = np.ones((1, channels), dtype=np.float32)
    feeds = []
    for i, content in enumerate(arrays):
        style = arrays[(i + 1) % len(arrays)]
        stub = {"content": content[..., :16, :16], "mean": ones, "std": ones, "alpha": alpha}
        mean, std = session.run(["style_mean", "style_std"], {**stub, "style": style})
        feeds.append({"content": content, "mean": mean, "std": std, "alpha": alpha, "style": style})
    return feeds


#: The operators the int8 export quantises: the convolutions (the time) and the layers
#: between them that are exact on 8-bit values (ReLU, padding, max pooling, nearest
#: upsampling), so that activations stay 8-bit from one convolution to the next instead
#: of a dequantise/quantise pair around each (AdaIN at 384 px: 0.284 → 0.233 s, outputs
#: within 2e-5 of the convolutions-only export). Normalisations and AdaIN's arithmetic
#: stay in float, where 8 bits would cost most accuracy.
INT8_OPS = ("Conv", "Relu", "Pad", "MaxPool", "Resize")


def _quantise(path: str, images: Sequence[torch.Tensor], architecture: str) -> float:
    """Replace the float ONNX model at ``path`` by its static int8 quantisation.

    Returns:
        The mean absolute difference between the int8 and the float model's outputs
        on the calibration inputs (pixels in [0, 1]): what 8 bits cost on such images.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    float_session = open_session(path)
    feeds = _calibration_feeds(float_session, images, architecture)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self._items, None)

    folder = Path(path).parent
    prepared = folder / f".{Path(path).name}.pre.onnx"
    quantised = folder / f".{Path(path).name}.int8.onnx"
    import logging

    # The quantiser logs a warning for every non-float tensor it skips (shape
    # arithmetic): noise for the user, so logging is muted while it runs.
    previous_level = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(path, str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(quantised),
                _Reader(),
                quant_format=QuantFormat.QOperator,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                # Without VNNI, onnxruntime's u8×s8 kernels add pairs of products in int16,
                # which saturates with full 8-bit ranges: 7-bit weights avoid it.
                reduce_range=not cpu_has_vnni(),
                op_types_to_quantize=list(INT8_OPS),
            )
        error = _mean_output_difference(float_session, open_session(quantised), feeds)
        os.replace(quantised, path)
        return error
    finally:
        logging.disable(previous_level)
        for leftover in (prepared, quantised):
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)


def cpu_has_vnni() -> bool:
    """Whether this CPU has 8-bit dot-product instructions (AVX-512 VNNI or AVX-VNNI)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: assume a recent CPU
        return True
    return "avx512_vnni" in flags or "avx_vnni" in flags


def _mean_output_difference(first, second, feeds: list[dict]) -> float:
    """Mean |Δ| of the two sessions' first outputs over ``feeds``."""
    sessions = [first, second]
    name = sessions[0].get_outputs()[0].name
    differences = []
    for feed in feeds:
        a, b = (session.run([name], feed)[0] for session in sessions)
        differences.append(float(np.abs(a - b).mean()))
    return float(np.mean(differences))


def read_metadata(session) -> dict:
    """The ``brushwork`` metadata of an open session's model (``{}`` when absent)."""
    raw = session.get_modelmeta().custom_metadata_map.get("brushwork")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return {}


def export_onnx(
    model: str | os.PathLike | nn.Module,
    output: str | os.PathLike,
    *,
    opset: int = OPSET,
    example_size: int = 64,
    int8: bool = False,
    calibration: Sequence[torch.Tensor] | None = None,
) -> Path:
    """Export a Johnson or AdaIN network (a model file or the module) to ONNX, atomically.

    Args:
        int8: quantise weights and activations to 8 bits (onnxruntime static
            quantisation, per-channel weights): several times faster on CPUs with
            VNNI, at some cost in accuracy.
        calibration: with ``int8``, (3, H, W) images in [0, 1] whose activations set
            the quantisation ranges (a few dozen typical contents and styles).

    Raises:
        ConfigError: the model is a WCT model (not exportable), or ``int8`` without
            calibration images.
        OutputPathError: the output does not end in ``.onnx`` or its folder is missing.
    """
    if int8 and not calibration:
        raise ConfigError(
            "--int8 needs calibration images: --calibration-dir DIR with a few dozen typical "
            "content and style images"
        )
    from brushwork.transfer.johnson import TransformerNet
    from brushwork.transfer.modelfile import load_model

    out = Path(output)
    if out.suffix.lower() != ".onnx":
        raise OutputPathError(f"the ONNX output must end in .onnx, got '{out}'")
    if not out.parent.is_dir():
        raise OutputPathError(f"folder {out.parent} for '{out}' does not exist; create it first")
    from brushwork.transfer.adain import AdaINModel
    from brushwork.transfer.modelfile import architecture_of

    if isinstance(model, nn.Module):
        net, style_sha256 = model, None
    else:
        net, info = load_model(model)
        style_sha256 = info.style_sha256
    if not isinstance(net, TransformerNet | AdaINModel):
        raise ConfigError(
            f"{type(net).__name__} does not export to ONNX: only Johnson and AdaIN networks do "
            "(WCT's whitening needs an eigendecomposition, which ONNX lacks); use it through "
            "PyTorch"
        )
    architecture, config = architecture_of(net)
    info = {"architecture": architecture, "config": config, "style_sha256": style_sha256}
    if int8:
        info["int8"] = True
    metadata = {"brushwork": json.dumps(info, sort_keys=True)}
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(1, 3, example_size, example_size, generator=generator)
    if isinstance(net, TransformerNet):
        wrapper = _Clamped(net).eval().float().cpu()
        inputs: tuple[torch.Tensor, ...] = (example,)
        names, outputs = ["images"], ["stylized"]
        dynamic = {"images": {0: "batch", 2: "height", 3: "width"}}
    else:
        wrapper = _AdaINGraph(net).eval().float().cpu()
        style = torch.rand(1, 3, example_size + 8, example_size - 8, generator=generator)
        with torch.no_grad():
            _, mean, std = wrapper(example, *[torch.ones(1, 1)] * 2, torch.tensor(0.5), style)
        inputs = (example, mean, std, torch.tensor(0.5), style)
        names = ["content", "mean", "std", "alpha", "style"]
        outputs = ["stylized", "style_mean", "style_std"]
        dynamic = {
            "content": {0: "batch", 2: "height", 3: "width"},
            "style": {2: "style_height", 3: "style_width"},
        }
    fd, temp_path = create_temp_file(out, ".part")
    os.close(fd)
    tmp = str(temp_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                inputs,
                tmp,
                input_names=names,
                output_names=outputs,
                dynamic_axes={**dynamic, "stylized": {0: "batch", 2: "height", 3: "width"}},
                opset_version=opset,
                dynamo=False,
            )
        import onnx

        if int8:
            info["int8_mean_abs_error"] = _quantise(tmp, calibration, architecture)
            metadata = {"brushwork": json.dumps(info, sort_keys=True)}
        proto = onnx.load(tmp)
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
    return out


def open_session(path: str | os.PathLike, *, device: torch.device | None = None):
    """An onnxruntime session with full graph optimisation (CUDA provider on CUDA devices).

    Raises:
        WeightsError: the file is missing or not a valid ONNX model.
    """
    import onnxruntime as ort

    file = Path(path)
    if not file.is_file():
        raise WeightsError(f"ONNX model {file} does not exist")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    providers = ["CPUExecutionProvider"]
    if device is not None and device.type == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(file), options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types
        raise WeightsError(
            f"{file} is not a valid ONNX model ({str(error).splitlines()[0]}); "
            "re-export it with `brushwork export`"
        ) from error
