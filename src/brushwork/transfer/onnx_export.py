"""ONNX export of Johnson and AdaIN networks and the onnxruntime session that runs them.

A Johnson graph takes ``images`` (B, 3, H, W) float32 in [0, 1] with dynamic batch,
height and width (H and W multiples of 4; the Stylizer pads) and returns
``stylized`` of the same shape, clamped to [0, 1].

An AdaIN graph takes ``content`` (B, 3, H, W) (H and W multiples of 8), ``style``
(1 or B, 3, H', W') and ``alpha`` (a float32 scalar), all sizes dynamic, and returns
``stylized`` (B, 3, H, W) clamped to [0, 1]: encoder, AdaIN, α blend and decoder in one
graph, for one style at a time (interpolation and masks stay in PyTorch).

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


class _AdaINGraph(nn.Module):
    """(content, style, alpha) -> clamped AdaIN output, one style."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor
    ) -> torch.Tensor:
        from brushwork.transfer.adain import adain

        feats = self.model.encoder(content)
        target = adain(feats, self.model.encoder(style))
        mixed = alpha * target + (1 - alpha) * feats
        return self.model.decoder(mixed).clamp(0.0, 1.0)


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
) -> Path:
    """Export a Johnson or AdaIN network (a model file or the module) to ONNX, atomically.

    Raises:
        ConfigError: the model is a WCT model (not exportable).
        OutputPathError: the output does not end in ``.onnx`` or its folder is missing.
    """
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
    metadata = {
        "brushwork": json.dumps(
            {"architecture": architecture, "config": config, "style_sha256": style_sha256},
            sort_keys=True,
        )
    }
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(1, 3, example_size, example_size, generator=generator)
    if isinstance(net, TransformerNet):
        wrapper = _Clamped(net).eval().float().cpu()
        inputs: tuple[torch.Tensor, ...] = (example,)
        names = ["images"]
        dynamic = {"images": {0: "batch", 2: "height", 3: "width"}}
    else:
        wrapper = _AdaINGraph(net).eval().float().cpu()
        style = torch.rand(1, 3, example_size + 8, example_size - 8, generator=generator)
        inputs = (example, style, torch.tensor(0.5))
        names = ["content", "style", "alpha"]
        dynamic = {
            "content": {0: "batch", 2: "height", 3: "width"},
            "style": {0: "style_batch", 2: "style_height", 3: "style_width"},
        }
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                inputs,
                tmp,
                input_names=names,
                output_names=["stylized"],
                dynamic_axes={**dynamic, "stylized": {0: "batch", 2: "height", 3: "width"}},
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
