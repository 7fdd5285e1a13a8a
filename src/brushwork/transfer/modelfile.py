"""Model files: safetensors weights with a JSON config in the file's own metadata.

The metadata key ``"brushwork"`` holds::

    {"format": 1, "architecture": "johnson" | "adain" | "wct",
     "config": {...architecture...}, "settings": {...training...},
     "style_sha256": "..." (Johnson: the style image), "created_with": "brushwork 0.1.0"}

:func:`load_model` rebuilds the network from the config and refuses files whose
tensors do not match it (missing, unexpected or mis-shaped keys) with a message
naming the problem. Nothing is unpickled: safetensors only.

Example::

    save_model("starry.safetensors", net, settings=settings.to_json(), style_sha256=digest)
    model, info = load_model("starry.safetensors")
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from brushwork.atomic import write_bytes_atomic
from brushwork.errors import OutputPathError, WeightsError

FORMAT_VERSION = 1
METADATA_KEY = "brushwork"
ARCHITECTURES = ("johnson", "adain", "wct")


@dataclass
class ModelInfo:
    """What a model file says about itself."""

    architecture: str
    config: dict
    settings: dict
    style_sha256: str | None
    path: Path | None = None


def tensor_sha256(image: torch.Tensor) -> str:
    """SHA-256 of an image tensor's float32 bytes (identifies a style image)."""
    return hashlib.sha256(image.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    from brushwork.weights import sha256_file

    return sha256_file(path)


def architecture_of(model: nn.Module) -> tuple[str, dict]:
    """(architecture name, JSON config) of a Johnson, AdaIN or WCT model."""
    from brushwork.transfer.adain import AdaINModel
    from brushwork.transfer.johnson import TransformerNet
    from brushwork.transfer.wct import WCTModel

    if isinstance(model, TransformerNet):
        return "johnson", asdict(model.config)
    if isinstance(model, AdaINModel):
        return "adain", model.config.to_json()
    if isinstance(model, WCTModel):
        return "wct", model.config.to_json()
    raise TypeError(f"cannot save a {type(model).__name__}; expected a brushwork model")


def build_model(architecture: str, config: dict) -> nn.Module:
    """An untrained network of ``architecture`` with ``config``; WeightsError if invalid."""
    from brushwork.transfer.adain import AdaINConfig, AdaINModel
    from brushwork.transfer.johnson import JohnsonConfig, TransformerNet
    from brushwork.transfer.wct import WCTConfig, WCTModel

    try:
        if architecture == "johnson":
            return TransformerNet(JohnsonConfig.from_json(config))
        if architecture == "adain":
            return AdaINModel(AdaINConfig.from_json(config))
        if architecture == "wct":
            return WCTModel(WCTConfig.from_json(config))
    except (TypeError, KeyError, ValueError) as error:
        raise WeightsError(f"invalid {architecture} config {config}: {error}") from error
    raise WeightsError(f"unknown architecture '{architecture}' (known: {', '.join(ARCHITECTURES)})")


def save_model(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    settings: dict | None = None,
    style_sha256: str | None = None,
) -> Path:
    """Write ``model`` as safetensors with its config in the metadata (atomically).

    Returns:
        The written path.

    Raises:
        OutputPathError: the suffix is not ``.safetensors`` or the folder is missing.
    """
    from safetensors.torch import save

    from brushwork import __version__

    out = Path(path)
    if out.suffix.lower() != ".safetensors":
        raise OutputPathError(f"model files end in .safetensors, got '{out}'")
    if not out.parent.is_dir():
        raise OutputPathError(f"folder {out.parent} for '{out}' does not exist; create it first")
    architecture, config = architecture_of(model)
    meta = {
        "format": FORMAT_VERSION,
        "architecture": architecture,
        "config": config,
        "settings": settings or {},
        "style_sha256": style_sha256,
        "created_with": f"brushwork {__version__}",
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # Serialised in memory and written through brushwork.atomic: safetensors' save_file
    # replaces the file with one of mode 0600 whatever the umask.
    data = save(state, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})
    write_bytes_atomic(out, data)
    return out


def read_info(path: str | os.PathLike) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    """The metadata and tensors of a model file, checked for form (not yet for shape)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = Path(path)
    if file.suffix.lower() != ".safetensors":
        raise WeightsError(
            f"model file {file} is not a .safetensors file; brushwork models are "
            "safetensors (or .onnx for `stylize --model`)"
        )
    if not file.is_file():
        raise WeightsError(f"model file {file} does not exist")
    try:
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise WeightsError(
            f"{file} is not a valid safetensors file ({str(error).splitlines()[0]}); "
            "was it truncated? re-export or re-download it"
        ) from error
    if METADATA_KEY not in metadata:
        raise WeightsError(
            f"{file} has no brushwork model metadata; it was not written by "
            "`brushwork train` (for published weights use `brushwork weights`)"
        )
    try:
        meta = json.loads(metadata[METADATA_KEY])
        info = ModelInfo(
            architecture=str(meta["architecture"]),
            config=dict(meta["config"]),
            settings=dict(meta.get("settings") or {}),
            style_sha256=meta.get("style_sha256"),
            path=file,
        )
        version = int(meta.get("format", 0))
    except (ValueError, KeyError, TypeError) as error:
        raise WeightsError(f"{file} has damaged brushwork metadata: {error}") from error
    if version > FORMAT_VERSION:
        raise WeightsError(
            f"{file} uses model format {version}, this brushwork reads up to "
            f"{FORMAT_VERSION}; update brushwork"
        )
    return info, state


def load_model(
    path: str | os.PathLike, *, architecture: str | None = None
) -> tuple[nn.Module, ModelInfo]:
    """Rebuild and load the model stored in ``path`` (eval mode, CPU).

    Args:
        architecture: if given, refuse files of another architecture.

    Raises:
        WeightsError: missing/invalid file, other architecture, or tensors that do
            not match the architecture in the file's config.
    """
    info, state = read_info(path)
    if architecture is not None and info.architecture != architecture:
        raise WeightsError(
            f"{path} holds {_article(info.architecture)} {info.architecture} model, but "
            f"{_article(architecture)} {architecture} model is needed"
        )
    model = build_model(info.architecture, info.config)
    check_state(model, state, source=str(path), architecture=info.architecture)
    model.load_state_dict(state)
    return model.eval(), info


def check_state(
    model: nn.Module, state: dict[str, torch.Tensor], *, source: str, architecture: str
) -> None:
    """WeightsError listing missing, unexpected and mis-shaped tensors."""
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k} is {tuple(state[k].shape)}, the architecture needs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; … ({len(problems)} problems)" if len(problems) > 3 else ""
        )
        raise WeightsError(
            f"{source} does not match the {architecture} architecture in its own config: "
            f"{shown}; the file is damaged or was edited"
        )


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
