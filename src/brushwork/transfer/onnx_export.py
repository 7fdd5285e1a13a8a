"""ONNX export of Johnson networks and the onnxruntime session that runs them.

The exported graph takes ``images`` (B, 3, H, W) float32 in [0, 1] with dynamic
batch, height and width (H and W multiples of 4; the Stylizer pads) and returns
``stylized`` of the same shape, clamped to [0, 1]. The model file's brushwork
metadata is copied into the ONNX ``metadata_props``.

Example::

    export_onnx("starry.safetensors", "starry.onnx")
    stylizer = load_stylizer("starry.onnx")
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from brushwork.errors import ConfigError, OutputPathError, WeightsError

OPSET = 17


class _Clamped(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).clamp(0.0, 1.0)


def export_onnx(
    model: str | os.PathLike | nn.Module,
    output: str | os.PathLike,
    *,
    opset: int = OPSET,
    example_size: int = 64,
) -> Path:
    """Export a Johnson network (a model file or the module) to ONNX, atomically.

    Raises:
        ConfigError: the model is an AdaIN/WCT model (not exportable as one image→image graph).
        OutputPathError: the output does not end in ``.onnx`` or its folder is missing.
    """
    from brushwork.transfer.johnson import TransformerNet
    from brushwork.transfer.modelfile import load_model

    out = Path(output)
    if out.suffix.lower() != ".onnx":
        raise OutputPathError(f"the ONNX output must end in .onnx, got '{out}'")
    if not out.parent.is_dir():
        raise OutputPathError(f"folder {out.parent} for '{out}' does not exist; create it first")
    metadata: dict[str, str] = {}
    if isinstance(model, nn.Module):
        net = model
    else:
        net, info = load_model(model)
        metadata["brushwork"] = json.dumps(
            {
                "architecture": info.architecture,
                "config": info.config,
                "style_sha256": info.style_sha256,
            },
            sort_keys=True,
        )
    if not isinstance(net, TransformerNet):
        raise ConfigError(
            f"only Johnson networks export to ONNX (got {type(net).__name__}); AdaIN and WCT "
            "need the style image at run time — use them through PyTorch"
        )
    wrapper = _Clamped(net).eval().float().cpu()
    example = torch.rand(
        1, 3, example_size, example_size, generator=torch.Generator().manual_seed(0)
    )
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (example,),
                tmp,
                input_names=["images"],
                output_names=["stylized"],
                dynamic_axes={
                    "images": {0: "batch", 2: "height", 3: "width"},
                    "stylized": {0: "batch", 2: "height", 3: "width"},
                },
                opset_version=opset,
                dynamo=False,
            )
        import onnx

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
