"""LoRA files: write, read, describe, check against a pipeline, apply (and fuse).

The file is a safetensors file in the layout diffusers' ``load_lora_weights`` reads and
ComfyUI/Forge/InvokeAI read as "diffusers/PEFT" LoRAs: keys
``<component>.<module>.lora_A.weight`` (rank × in) and ``...lora_B.weight`` (out × rank),
components ``unet``, ``transformer``, ``text_encoder``, ``text_encoder_2``. There are no
``.alpha`` keys: the trained ``alpha / rank`` is multiplied into ``lora_B``, so every
loader (which then assumes alpha = rank) applies the strength the LoRA was trained at.

Metadata (the safetensors header's string map):

* ``brushwork``: JSON of :class:`LoraInfo` (base model id, family, rank, alpha, target
  modules, trigger, steps, B-LoRA part, brushwork version);
* ``brushwork_sha256``: SHA-256 of the tensors (key-sorted names, dtypes, shapes and
  bytes), checked on load, so a damaged file is refused rather than giving garbage;
* kohya-style ``ss_network_dim``, ``ss_network_alpha``, ``ss_base_model_version``,
  ``ss_sd_model_name`` and SAI ``modelspec.*`` keys for the UIs that show them.

Files written by kohya's sd-scripts or A1111 extensions (``lora_unet_...``,
``lora_te_...``, ``.lora_down/.lora_up/.alpha``) are accepted too: diffusers converts
their names when they are loaded. Only safetensors files are read (nothing is unpickled).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from brushwork.atomic import atomic_path
from brushwork.diffusion.lora.targets import B_LORA_BLOCKS
from brushwork.errors import ConfigError, WeightsError

__all__ = [
    "COMPONENTS",
    "LoadedLoras",
    "LoraFile",
    "LoraInfo",
    "LoraSpec",
    "apply_loras",
    "check_fits",
    "describe",
    "load_loras",
    "read_lora",
    "read_specs",
    "save_lora",
    "select_part",
    "tensor_digest",
    "unload_loras",
]

#: Pipeline attributes a LoRA file may hold layers for (its key prefixes).
COMPONENTS = ("unet", "transformer", "text_encoder", "text_encoder_2")
#: kohya's key prefixes (sd-scripts, A1111): UNet / text encoder(s).
KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_", "lora_transformer_")
#: Family -> kohya's ``ss_base_model_version`` and SAI modelspec architecture.
_BASE_VERSIONS = {
    "sd": ("sd_v1", "stable-diffusion-v1/lora"),
    "sdxl": ("sdxl_base_v1-0", "stable-diffusion-xl-v1-base/lora"),
    "flux": ("flux1", "flux-1-dev/lora"),
}
_DIFFUSERS_KEY = re.compile(
    r"(?P<component>[a-z_0-9]+)\.(?P<module>.+)\.lora_(?P<side>[AB])\.weight"
)


@dataclass
class LoraInfo:
    """What a brushwork LoRA file says about itself (its ``brushwork`` metadata).

    Attributes:
        base_model: Hub id or folder of the pipeline it was trained on.
        family: ``"sd"``, ``"sdxl"`` or ``"flux"``.
        rank: the LoRA rank r.
        alpha: the trained alpha (the file's ``lora_B`` already holds ``alpha / r``).
        target_modules: the module-name endings (or B-LoRA's expression) trained.
        components: pipeline components with layers in the file.
        trigger: the trigger phrase, if any.
        steps: optimiser steps trained.
        b_lora: ``"style"``, ``"content"``, ``"both"`` or ``None``.
        resolution: side of the square training bucket.
        brushwork_version: the version that wrote it.
    """

    base_model: str
    family: str
    rank: int
    alpha: float
    target_modules: list[str] | str
    components: list[str]
    trigger: str | None = None
    steps: int = 0
    b_lora: str | None = None
    resolution: int = 0
    brushwork_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA to apply: file, strength, and (B-LoRA) which part of it.

    ``part``: ``"style"`` or ``"content"`` keeps only that B-LoRA block's layers.
    """

    path: Path
    scale: float = 1.0
    part: str | None = None


@dataclass
class LoraFile:
    """A LoRA file as read: its tensors, header metadata, layout and brushwork info."""

    path: Path
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    layout: str  # "diffusers" or "kohya"
    info: LoraInfo | None

    @property
    def rank(self) -> int:
        """The largest rank among the file's layers."""
        ranks = [t.shape[0] for k, t in self.tensors.items() if _is_down(k) and t.ndim >= 2]
        return max(ranks) if ranks else 0

    def modules(self) -> list[str]:
        """``component.module`` of every layer (diffusers layout) or kohya's layer names."""
        names = []
        for key in self.tensors:
            if self.layout == "diffusers":
                match = _DIFFUSERS_KEY.fullmatch(key)
                if match and match["side"] == "A":
                    names.append(f"{match['component']}.{match['module']}")
            elif key.endswith(".lora_down.weight"):
                names.append(key.removesuffix(".lora_down.weight"))
        return sorted(names)


def _is_down(key: str) -> bool:
    return key.endswith((".lora_A.weight", ".lora_down.weight", ".lora.down.weight"))


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the key-sorted names, dtypes, shapes and bytes of ``tensors``."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_lora(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    info: LoraInfo,
    *,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a LoRA file atomically (layout and metadata: see the module docstring).

    Args:
        tensors: ``<component>.<module>.lora_A|B.weight`` -> tensor, ``alpha / r`` already
            in ``lora_B``.
        dtype: store in this dtype (``None``: as given).
    """
    from safetensors.torch import save_file

    out = Path(path)
    if out.suffix.lower() != ".safetensors":
        raise ConfigError(f"a LoRA file must end in .safetensors, got '{out.name}'")
    state = {
        k: (v.detach().to(dtype) if dtype is not None else v.detach()).cpu().contiguous()
        for k, v in tensors.items()
    }
    bad = [k for k in state if not _DIFFUSERS_KEY.fullmatch(k)]
    if bad:
        raise ConfigError(f"not a LoRA tensor name in the diffusers layout: {bad[0]}")
    version, architecture = _BASE_VERSIONS.get(info.family, ("", ""))
    metadata = {
        "format": "pt",
        "brushwork": json.dumps(asdict(info), sort_keys=True),
        "brushwork_sha256": tensor_digest(state),
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(info.rank),
        # alpha / rank is in lora_B, so readers must apply the weights at alpha = rank.
        "ss_network_alpha": str(info.rank),
        "ss_base_model_version": version,
        "ss_sd_model_name": info.base_model,
        "ss_steps": str(info.steps),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": architecture,
        "modelspec.implementation": "diffusers",
        "modelspec.title": out.stem,
    }
    if info.trigger:
        metadata["modelspec.trigger_phrase"] = info.trigger
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return out


def read_lora(path: str | os.PathLike) -> LoraFile:
    """Read and check a LoRA file (brushwork's, diffusers', or kohya's layout).

    Raises:
        WeightsError: missing, not safetensors, damaged (unreadable, digest mismatch,
            non-finite values), or holding no LoRA layers.
    """
    from safetensors import safe_open

    file = Path(path).expanduser()
    if not file.is_file():
        raise WeightsError(f"LoRA file {file} does not exist")
    if file.suffix.lower() != ".safetensors":
        raise WeightsError(
            f"{file} is not a .safetensors file: LoRAs are read as safetensors only "
            "(pickled .ckpt/.pt/.bin files are not loaded)"
        )
    try:
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(
            f"{file} is damaged or not a safetensors file ({reason}); download or train it again"
        ) from error
    expected = metadata.get("brushwork_sha256")
    if expected and tensor_digest(tensors) != expected:
        raise WeightsError(
            f"{file} is damaged: its tensors do not match the digest written with them; "
            "download or train it again"
        )
    layout = _layout(file, tensors)
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise WeightsError(f"{file} is damaged: {key} holds NaN or infinite values")
    return LoraFile(file, tensors, metadata, layout, _info(file, metadata))


def _layout(file: Path, tensors: dict[str, torch.Tensor]) -> str:
    if not tensors:
        raise WeightsError(f"{file} holds no tensors: not a LoRA file")
    keys = list(tensors)
    if all(k.startswith(KOHYA_PREFIXES) for k in keys):
        return "kohya"
    if all(k.split(".", 1)[0] in COMPONENTS and "lora" in k for k in keys):
        return "diffusers"
    if not any("lora" in k for k in keys):
        raise WeightsError(
            f"{file} holds no LoRA layers (keys such as {keys[0]}): is it a full model "
            "checkpoint rather than a LoRA?"
        )
    # Bare diffusers/PEFT keys without a component prefix: loaders take them as the denoiser.
    return "diffusers"


def _info(file: Path, metadata: dict[str, str]) -> LoraInfo | None:
    text = metadata.get("brushwork")
    if not text:
        return None
    try:
        data = json.loads(text)
        known = set(LoraInfo.__dataclass_fields__)
        return LoraInfo(**{k: v for k, v in data.items() if k in known})
    except (ValueError, TypeError) as error:
        raise WeightsError(f"{file} has unreadable brushwork metadata ({error})") from error


def describe(lora: LoraFile) -> dict[str, Any]:
    """What ``brushwork lora info`` prints: base model, rank, blocks, trigger, steps, ..."""
    meta = lora.metadata
    info = lora.info
    blocks: dict[str, int] = {}
    kohya = {"lora_unet_": "unet.", "lora_transformer_": "transformer.",
             "lora_te1_": "text_encoder.", "lora_te2_": "text_encoder_2.",
             "lora_te_": "text_encoder."}  # fmt: skip
    for name in lora.modules():
        for prefix, component in kohya.items():
            if name.startswith(prefix):
                name = component + name[len(prefix) :]
                break
        match = re.match(
            r"([a-z_0-9]+\.)?((down|up)_blocks[._]\d+[._]attentions[._]\d+|mid_block|"
            r"(single_)?transformer_blocks[._]\d+|[a-z_]+)",
            name,
        )
        block = match.group(0) if match else name
        blocks[block] = blocks.get(block, 0) + 1
    alpha = info.alpha if info else _float(meta.get("ss_network_alpha"))
    return {
        "file": str(lora.path),
        "layout": lora.layout,
        "base_model": info.base_model if info else meta.get("ss_sd_model_name"),
        "family": info.family if info else meta.get("ss_base_model_version"),
        "rank": info.rank if info else lora.rank,
        "alpha": alpha,
        "target_modules": info.target_modules if info else None,
        "components": info.components if info else sorted({m.split(".")[0] for m in blocks}),
        "layers": len(lora.modules()),
        "blocks": blocks,
        "b_lora": info.b_lora if info else None,
        "trigger": info.trigger if info else meta.get("modelspec.trigger_phrase"),
        "steps": info.steps if info else _int(meta.get("ss_steps")),
        "resolution": info.resolution if info else None,
        "brushwork_version": info.brushwork_version if info else None,
        "parameters": sum(t.numel() for t in lora.tensors.values()),
    }


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- checks


def _base_text(lora: LoraFile) -> str:
    info = lora.info
    if info is None:
        model = lora.metadata.get("ss_sd_model_name")
        return f" (trained on {model})" if model else ""
    return f" (trained on {info.base_model}, a {info.family} model)"


def check_fits(pipe: Any, lora: LoraFile) -> None:
    """Refuse a LoRA made for another base model, before anything is loaded.

    Checks the family the file names (brushwork metadata) against the pipeline's, then
    that every layer of a diffusers-layout file names a module of the pipeline with the
    LoRA's input and output sizes. (kohya names are checked by diffusers on loading.)

    Raises:
        WeightsError: one line naming the file's base model and the first mismatch.
    """
    from brushwork.diffusion.pipelines import pipeline_family

    family = pipeline_family(pipe)
    if lora.info is not None and lora.info.family != family:
        raise WeightsError(
            f"{lora.path.name} was trained for a {lora.info.family} model "
            f"({lora.info.base_model}), this pipeline is {family}: use --model "
            f"{lora.info.base_model} or a LoRA trained on this model"
        )
    if lora.layout != "diffusers":
        return
    for key, tensor in lora.tensors.items():
        match = _DIFFUSERS_KEY.fullmatch(key)
        if not match:
            continue
        component = getattr(pipe, match["component"], None)
        if component is None:
            raise WeightsError(
                f"{lora.path.name} has layers for '{match['component']}', which this "
                f"{family} pipeline does not have{_base_text(lora)}"
            )
        try:
            module = component.get_submodule(match["module"])
        except AttributeError:
            raise WeightsError(
                f"{lora.path.name} does not fit this {family} pipeline: it has no layer "
                f"{match['component']}.{match['module']}{_base_text(lora)}"
            ) from None
        module = getattr(module, "base_layer", module)  # already wrapped by peft
        inputs, outputs = _features(module)
        want = inputs if match["side"] == "A" else outputs
        have = tensor.shape[1] if match["side"] == "A" else tensor.shape[0]
        if want is not None and want != have:
            raise WeightsError(
                f"{lora.path.name} does not fit this {family} pipeline: layer "
                f"{match['component']}.{match['module']} has {want} "
                f"{'inputs' if match['side'] == 'A' else 'outputs'}, the LoRA {have}"
                f"{_base_text(lora)}"
            )


def _features(module: Any) -> tuple[int | None, int | None]:
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, torch.nn.Conv2d):
        return module.in_channels, module.out_channels
    return None, None


def select_part(lora: LoraFile, part: str | None) -> dict[str, torch.Tensor]:
    """The tensors of ``lora``, or only those of one B-LoRA block (``"style"``/``"content"``).

    Raises:
        ConfigError: an unknown part, a kohya file, or a file without that block.
    """
    if part is None:
        return dict(lora.tensors)
    if part not in B_LORA_BLOCKS:
        raise ConfigError(f"unknown LoRA part '{part}' (valid: {', '.join(B_LORA_BLOCKS)})")
    if lora.layout != "diffusers":
        raise ConfigError(f"{lora.path.name}: @{part} needs a file in the diffusers layout")
    prefix = f"unet.{B_LORA_BLOCKS[part]}."
    chosen = {k: v for k, v in lora.tensors.items() if k.startswith(prefix)}
    if not chosen:
        raise ConfigError(
            f"{lora.path.name} has no {part} block ({B_LORA_BLOCKS[part]}): it is not a "
            f"B-LoRA trained with --b-lora {part} or both"
        )
    return chosen


# --------------------------------------------------------------------------- applying


@dataclass
class LoadedLoras:
    """LoRAs loaded into a pipeline by :func:`load_loras`: adapter names, whether fused."""

    files: list[LoraFile]
    names: list[str]
    fused: bool = False


def read_specs(specs: Sequence[LoraSpec]) -> list[LoraFile]:
    """Read every file of ``specs`` (damaged or missing files fail here, before any load)."""
    files = [read_lora(spec.path) for spec in specs]
    for lora, spec in zip(files, specs, strict=True):
        select_part(lora, spec.part)
    return files


def load_loras(
    pipe: Any,
    specs: Sequence[LoraSpec],
    *,
    fuse: bool = False,
    files: Sequence[LoraFile] | None = None,
) -> LoadedLoras:
    """Load LoRAs into ``pipe`` at their scales (undo with :func:`unload_loras`).

    Every file is read and checked (:func:`read_lora`, :func:`check_fits`) before any is
    loaded (``files``: already read by :func:`read_specs`). Several LoRAs combine as a
    weighted sum (``set_adapters``): a style B-LoRA and a content B-LoRA touch different
    blocks and apply side by side. ``fuse=True`` merges them into the weights (faster
    steps; :func:`unload_loras` unfuses, restoring the weights up to rounding).

    Raises:
        WeightsError: a missing, damaged or mismatched file (the pipeline is left as it was).
    """
    files = list(files) if files is not None else read_specs(specs)
    for lora in files:
        check_fits(pipe, lora)
    states = [select_part(lora, spec.part) for lora, spec in zip(files, specs, strict=True)]
    loaded = LoadedLoras(files, [])
    try:
        for index, (lora, state) in enumerate(zip(files, states, strict=True)):
            name = f"brushwork_lora_{index}"
            _load_one(pipe, lora, state, name)
            loaded.names.append(name)
        if loaded.names:
            pipe.set_adapters(loaded.names, adapter_weights=[float(s.scale) for s in specs])
            if fuse:
                pipe.fuse_lora(adapter_names=loaded.names, lora_scale=1.0)
                loaded.fused = True
    except BaseException:
        unload_loras(pipe, loaded)
        raise
    return loaded


def unload_loras(pipe: Any, loaded: LoadedLoras) -> None:
    """Unfuse (if fused) and delete the adapters :func:`load_loras` added."""
    if loaded.fused:
        pipe.unfuse_lora()
        loaded.fused = False
    if loaded.names:
        pipe.delete_adapters(loaded.names)
        loaded.names = []


@contextlib.contextmanager
def apply_loras(
    pipe: Any, specs: Sequence[LoraSpec], *, fuse: bool = False
) -> Iterator[list[LoraFile]]:
    """:func:`load_loras` for the ``with`` block, :func:`unload_loras` after it.

    Yields the files read. Example::

        specs = [LoraSpec(Path("style.safetensors"), 0.6), LoraSpec(Path("b.safetensors"), 0.4)]
        with apply_loras(pipe, specs):
            image = pipe("a lighthouse in sks style").images[0]
    """
    loaded = load_loras(pipe, specs, fuse=fuse)
    try:
        yield loaded.files
    finally:
        unload_loras(pipe, loaded)


def _load_one(pipe: Any, lora: LoraFile, state: dict[str, torch.Tensor], name: str) -> None:
    """Load one file as adapter ``name``: the denoiser's layers (and kohya files) through
    diffusers' ``load_lora_weights``, text-encoder layers through peft (:mod:`.adapters`)."""
    from brushwork.diffusion.lora.adapters import load_text_encoder_lora

    text_parts: dict[str, dict[str, torch.Tensor]] = {}
    if lora.layout == "diffusers":
        for component in ("text_encoder", "text_encoder_2"):
            prefix = component + "."
            part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if part:
                text_parts[component] = part
        text_keys = ("text_encoder.", "text_encoder_2.")
        state = {k: v for k, v in state.items() if not k.startswith(text_keys)}
    before = _adapter_names(pipe)
    try:
        if state:
            pipe.load_lora_weights(state, adapter_name=name)
        for component, part in text_parts.items():
            load_text_encoder_lora(getattr(pipe, component), part, name)
    except (ValueError, RuntimeError, KeyError, AttributeError) as error:
        with contextlib.suppress(Exception):
            pipe.delete_adapters([name])
        lines = str(error).strip().splitlines()
        reason = lines[0] if lines else type(error).__name__
        raise WeightsError(
            f"{lora.path.name} does not fit this pipeline{_base_text(lora)}: {reason[:300]}"
        ) from error
    if name not in _adapter_names(pipe) - before:
        raise WeightsError(
            f"no layer of {lora.path.name} matches this pipeline{_base_text(lora)}: it was "
            "made for another model"
        )


def _adapter_names(pipe: Any) -> set[str]:
    return {name for names in pipe.get_list_adapters().values() for name in names}
