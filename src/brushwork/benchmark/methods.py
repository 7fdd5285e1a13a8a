"""The methods a benchmark runs: a name (and optional weights) -> a library call.

A method spec is ``NAME`` or ``NAME:WEIGHTS``:

=============  =========================================================================
``gatys``      :func:`brushwork.transfer.gatys` (VGG-19, L-BFGS, 200 steps, coarse-to-fine);
               ``gatys:FILE``: a local VGG-19 file
``johnson``    a trained network through :func:`~brushwork.transfer.stylize.load_stylizer`:
               ``johnson:starry.safetensors`` (one style, used for every pair: its style
               is in its weights) or ``johnson:FOLDER`` (``<style>.safetensors`` or
               ``<style>.onnx`` per style image)
``adain``      AdaIN, α = 1; published weights, or ``adain:FOLDER|decoder.pth|x.safetensors``
``wct``        WCT, α = 1; ``wct:wct.safetensors`` (decoders from ``brushwork train wct``)
               or ``$BRUSHWORK_WCT_MODEL``
``wct2``       WCT² (cat5), α = 1; published weights or ``wct2:FOLDER|FILE``
``photowct``   PhotoWCT, α = 1, no smoothing; published weights or ``photowct:FILE``
``styleid``    :func:`brushwork.diffusion.styleid.stylize_styleid` (γ 0.75, T 1.5, 50 DDIM
               steps); ``styleid:MODEL``: a Stable Diffusion 1.x/2.x/XL id or folder
               (default SD 1.5)
=============  =========================================================================

Each method has a cheap :meth:`MethodSpec.missing` check (files, caches; no loading) and a
:func:`load_method` giving a :class:`LoadedMethod`: ``method.stylise(content, style,
style_name)`` with (3, H, W) images in [0, 1] gives the (3, H, W) result at the content's
size. The harness resizes contents and styles to the run's long side before calling.

Example::

    specs = parse_methods("gatys,adain,johnson:starry.safetensors")
    method = load_method(specs[1], MethodSettings(size=512, seed=0))
    result = method.stylise(content, style, "starry")
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brushwork.errors import ConfigError, WeightsError

if TYPE_CHECKING:
    import torch

__all__ = [
    "METHODS",
    "LoadedMethod",
    "MethodSettings",
    "MethodSpec",
    "load_method",
    "parse_methods",
]

#: Registry: method name -> what it is (for --help and the report).
METHODS: dict[str, str] = {
    "gatys": "Gatys et al. 2016: optimisation of the pixels (VGG-19 content and Gram losses)",
    "johnson": "Johnson et al. 2016: a feed-forward network trained per style",
    "adain": "Huang & Belongie 2017: adaptive instance normalisation, arbitrary style",
    "wct": "Li et al. 2017: whitening and colouring transforms, arbitrary style",
    "wct2": "Yoo et al. 2019: WCT with Haar wavelet pooling (photorealistic)",
    "photowct": "Li et al. 2018: WCT with max-unpooling (photorealistic)",
    "styleid": "Chung et al. 2024: style injection in diffusion (training-free)",
}
#: The diffusion model StyleID uses without ``styleid:MODEL``.
STYLEID_DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@dataclass(frozen=True)
class MethodSpec:
    """One ``--methods`` entry: the registry name, the weights given, a unique label.

    ``label`` names the method's result folder and its rows (``johnson-starry`` for
    ``johnson:starry.safetensors``).
    """

    name: str
    weights: str | None = None
    label: str = ""

    @property
    def text(self) -> str:
        return self.name if self.weights is None else f"{self.name}:{self.weights}"

    def missing(self) -> str | None:
        """Why this method cannot run here (missing weights), checked without loading;
        ``None`` when everything it needs is present (or downloadable)."""
        return _MISSING[self.name](self)


def parse_methods(text: str | list[str]) -> list[MethodSpec]:
    """``"gatys,johnson:starry.safetensors,adain"`` -> specs with unique labels.

    Raises:
        ConfigError: an unknown method name (with the nearest valid one), an empty entry.
    """
    entries = text if isinstance(text, list) else text.split(",")
    specs: list[MethodSpec] = []
    labels: set[str] = set()
    for entry in entries:
        entry = entry.strip()
        if not entry:
            raise ConfigError(f"empty method in --methods '{text}'")
        name, colon, weights = entry.partition(":")
        name = name.strip().lower()
        if name not in METHODS:
            close = difflib.get_close_matches(name, METHODS, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown method '{name}'{hint} (valid: {', '.join(METHODS)})")
        weights = weights.strip() if colon else None
        if colon and not weights:
            raise ConfigError(f"'{entry}': give the weights after ':' or leave the ':' out")
        slug = None if weights is None else _slug(weights)
        label = name if slug in (None, name) else f"{name}-{slug}"
        while label in labels:
            label += "_"
        labels.add(label)
        specs.append(MethodSpec(name, weights, label))
    return specs


def _slug(weights: str) -> str:
    stem = Path(weights.rstrip("/")).stem or weights
    return "".join(c if c.isalnum() or c in "-." else "-" for c in stem).strip("-") or "w"


@dataclass(frozen=True)
class MethodSettings:
    """What every method of a run shares.

    Attributes:
        size: long side (px) of the contents and styles given to the methods.
        seed: the fixed seed (set before every job; Gatys and StyleID record it).
        steps: Gatys' optimisation steps and StyleID's DDIM steps (``None``: each
            method's documented default, 200 and 50).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        precision: ``"auto"``: each method's documented default (Gatys: bf16 where
            fast, feed-forward networks: fp32, StyleID: fp16 on CUDA, else fp32);
            ``fp32``/``bf16``/``fp16``: every method in that precision.
    """

    size: int = 512
    seed: int = 0
    steps: int | None = None
    device: str = "auto"
    precision: str = "auto"


@dataclass
class LoadedMethod:
    """A method ready to run: ``stylise(content, style, style_name) -> result``.

    Attributes:
        spec: what was asked for.
        device, precision: where and in which precision it runs (resolved).
        defaults: the settings it runs with (recorded in the report).
        note: a remark for the report (e.g. a fixed-style network).
    """

    spec: MethodSpec
    device: str
    precision: str
    defaults: dict[str, Any]
    run: Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor] = field(repr=False)
    note: str = ""

    def stylise(self, content: torch.Tensor, style: torch.Tensor, style_name: str) -> torch.Tensor:
        """(3, H, W) content and (3, h, w) style in [0, 1] -> (3, H, W) in [0, 1], CPU."""
        from brushwork.image import resize_to

        out = self.run(content, style, style_name).detach().float().cpu().clamp(0, 1)
        if out.ndim == 4:
            out = out[0]
        if tuple(out.shape[-2:]) != tuple(content.shape[-2:]):
            out = resize_to(out, *content.shape[-2:])
        return out


# --------------------------------------------------------------------------- checks


def _networks_missing(networks: list[tuple[str, str, str | None]]) -> str | None:
    """Reasons of the missing (registry name, kind, local source) networks, in one line."""
    from brushwork.metrics.evaluation import Network, missing_networks

    needed = [Network(name, kind, source, ("benchmark",)) for name, kind, source in networks]
    missing = missing_networks(needed)
    if not missing:
        return None
    return "; ".join(f"{network.name}: {reason}" for network, reason in missing)


def _path_missing(path: str) -> str | None:
    return None if Path(path).expanduser().exists() else f"{path} does not exist"


def _gatys_missing(spec: MethodSpec) -> str | None:
    if spec.weights is not None:
        return _path_missing(spec.weights)
    return _networks_missing([("vgg19", "file", None)])


def _johnson_missing(spec: MethodSpec) -> str | None:
    if spec.weights is None:
        return (
            "Johnson needs a trained network per style: johnson:starry.safetensors (train one "
            "with `brushwork train johnson`) or johnson:FOLDER of <style>.safetensors files"
        )
    return _path_missing(spec.weights)


def _adain_missing(spec: MethodSpec) -> str | None:
    if spec.weights is not None:
        path = Path(spec.weights).expanduser()
        if path.is_dir():
            return _networks_missing(
                [("adain-vgg-normalised", "file", str(path)), ("adain-decoder", "file", str(path))]
            )
        return _path_missing(spec.weights)
    return _networks_missing(
        [("adain-vgg-normalised", "file", None), ("adain-decoder", "file", None)]
    )


def _wct_missing(spec: MethodSpec) -> str | None:
    from brushwork.transfer.stylize import ENV_WCT_MODEL

    model = spec.weights or os.environ.get(ENV_WCT_MODEL)
    if model is None:
        return (
            "WCT needs its decoders: train them with `brushwork train wct --content-dir DIR -o "
            f"wct.safetensors` and give wct:wct.safetensors (or set {ENV_WCT_MODEL})"
        )
    return _path_missing(model)


def _wct2_missing(spec: MethodSpec) -> str | None:
    from brushwork.transfer.wct2 import weight_names

    if spec.weights is not None:
        return _path_missing(spec.weights)
    return _networks_missing([(name, "file", None) for name in weight_names("cat5")])


def _photowct_missing(spec: MethodSpec) -> str | None:
    from brushwork.transfer.photowct import WEIGHT_NAME

    if spec.weights is not None:
        return _path_missing(spec.weights)
    return _networks_missing([(WEIGHT_NAME, "file", None)])


def _styleid_missing(spec: MethodSpec) -> str | None:
    model = spec.weights or STYLEID_DEFAULT_MODEL
    return _networks_missing([(model, "hub", model)])


_MISSING: dict[str, Callable[[MethodSpec], str | None]] = {
    "gatys": _gatys_missing,
    "johnson": _johnson_missing,
    "adain": _adain_missing,
    "wct": _wct_missing,
    "wct2": _wct2_missing,
    "photowct": _photowct_missing,
    "styleid": _styleid_missing,
}


# --------------------------------------------------------------------------- loading


def _feed_forward_precision(settings: MethodSettings) -> str:
    return "fp32" if settings.precision == "auto" else settings.precision


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _load_gatys(spec: MethodSpec, settings: MethodSettings) -> LoadedMethod:
    from brushwork.devices import resolve_device, resolve_precision
    from brushwork.encoders import load_vgg_encoder
    from brushwork.transfer.gatys import GatysSettings, gatys

    device = resolve_device(settings.device)
    gatys_settings = GatysSettings(
        size=None,
        steps=settings.steps or GatysSettings.steps,
        seed=settings.seed,
        precision=settings.precision,
    )
    encoder = load_vgg_encoder(gatys_settings.encoder, weights=spec.weights, device=device)

    def run(content: torch.Tensor, style: torch.Tensor, style_name: str) -> torch.Tensor:
        return gatys(
            content, [style], settings=gatys_settings, encoder=encoder, device=device
        ).image

    defaults = {
        "steps": gatys_settings.steps,
        "optimizer": gatys_settings.optimizer,
        "style_weight": gatys_settings.style_weight,
        "pyramid": gatys_settings.pyramid,
        "init": gatys_settings.init,
    }
    dtype = resolve_precision(gatys_settings.precision, device)
    return LoadedMethod(spec, str(device), _dtype_name(dtype), defaults, run)


def _stylizer_method(spec: MethodSpec, settings: MethodSettings, **load: Any) -> LoadedMethod:
    """AdaIN, WCT, WCT², PhotoWCT: one :class:`Stylizer` per style image (α = 1), the
    latest kept (jobs come style by style)."""
    from brushwork.transfer.stylize import load_stylizer

    precision = _feed_forward_precision(settings)
    cache: dict[str, Any] = {}

    def stylizer_for(style: torch.Tensor, style_name: str) -> Any:
        if style_name not in cache:
            cache.clear()
            cache[style_name] = load_stylizer(
                styles=[style], alpha=1.0, device=settings.device, precision=precision, **load
            )
        return cache[style_name]

    def run(content: torch.Tensor, style: torch.Tensor, style_name: str) -> torch.Tensor:
        return stylizer_for(style, style_name)(content[None])[0]

    import torch

    # Load once now, on a tiny style, so that missing or broken weights are found before
    # the first job (the reason is recorded as a skip).
    probe = stylizer_for(torch.full((3, 64, 64), 0.5), "\0probe")
    device, dtype = str(probe.device), _dtype_name(probe.dtype)
    cache.clear()
    return LoadedMethod(spec, device, dtype, {"alpha": 1.0, "preserve_color": "none"}, run)


def _load_adain(spec: MethodSpec, settings: MethodSettings) -> LoadedMethod:
    if spec.weights is not None and Path(spec.weights).suffix.lower() in (".safetensors", ".onnx"):
        return _stylizer_method(spec, settings, model=spec.weights, method="adain")
    return _stylizer_method(spec, settings, method="adain", weights=spec.weights)


def _load_wct(spec: MethodSpec, settings: MethodSettings) -> LoadedMethod:
    from brushwork.transfer.stylize import ENV_WCT_MODEL

    model = spec.weights or os.environ.get(ENV_WCT_MODEL)
    if model is None:
        raise WeightsError(str(_wct_missing(spec)))
    return _stylizer_method(spec, settings, model=model, method="wct")


def _load_photoreal(spec: MethodSpec, settings: MethodSettings) -> LoadedMethod:
    return _stylizer_method(spec, settings, method=spec.name, weights=spec.weights)


def _load_johnson(spec: MethodSpec, settings: MethodSettings) -> LoadedMethod:
    from brushwork.transfer.stylize import load_stylizer

    if spec.weights is None:
        raise WeightsError(str(_johnson_missing(spec)))
    precision = _feed_forward_precision(settings)
    given = Path(spec.weights).expanduser()
    if given.is_file():
        stylizer = load_stylizer(
            given, method="johnson", device=settings.device, precision=precision
        )

        def run_fixed(content: torch.Tensor, style: torch.Tensor, style_name: str) -> torch.Tensor:
            return stylizer(content[None])[0]

        note = f"one network ({given.name}) for every style: its style is in its weights"
        return LoadedMethod(
            spec, str(stylizer.device), _dtype_name(stylizer.dtype), {"model": given.name},
            run_fixed, note,
        )  # fmt: skip
    if not given.is_dir():
        raise WeightsError(f"{given} does not exist")
    cache: dict[str, Any] = {}

    def run_per_style(content: torch.Tensor, style: torch.Tensor, style_name: str) -> torch.Tensor:
        if style_name not in cache:
            files = [given / f"{style_name}{s}" for s in (".safetensors", ".onnx")]
            found = next((f for f in files if f.is_file()), None)
            if found is None:
                raise WeightsError(
                    f"no Johnson network for style '{style_name}' in {given} "
                    f"(looked for {style_name}.safetensors and {style_name}.onnx)"
                )
            cache.clear()
            cache[style_name] = load_stylizer(
                found, method="johnson", device=settings.device, precision=precision
            )
        return cache[style_name](content[None])[0]

    from brushwork.devices import resolve_device, resolve_precision

    device = resolve_device(settings.device)
    dtype = resolve_precision(precision, device)
    note = f"one network per style from {given.name}/"
    return LoadedMethod(
        spec, str(device), _dtype_name(dtype), {"folder": given.name}, run_per_style, note
    )


def _load_styleid(spec: MethodSpec, settings: MethodSettings) -> LoadedMethod:
    from brushwork.diffusion.editing import fit_image, latent_multiple
    from brushwork.diffusion.pipelines import load_pipeline
    from brushwork.diffusion.styleid import StyleIDSettings, stylize_styleid

    model = spec.weights or STYLEID_DEFAULT_MODEL
    dtype = "auto" if settings.precision == "auto" else settings.precision
    pipe = load_pipeline(model, dtype=dtype, device=settings.device)
    multiple = latent_multiple(pipe)
    steps = settings.steps or StyleIDSettings.steps
    defaults = {"model": model, "gamma": 0.75, "temperature": 1.5, "steps": steps}

    def run(content: torch.Tensor, style: torch.Tensor, style_name: str) -> torch.Tensor:
        fitted = fit_image(content, multiple=multiple, long_side=settings.size)
        fitted_style = fit_image(style, multiple=multiple, long_side=settings.size)
        return stylize_styleid(pipe, fitted, fitted_style, steps=steps, seed=settings.seed).image

    return LoadedMethod(spec, str(pipe.device), _dtype_name(pipe.unet.dtype), defaults, run)


_LOADERS: dict[str, Callable[[MethodSpec, MethodSettings], LoadedMethod]] = {
    "gatys": _load_gatys,
    "johnson": _load_johnson,
    "adain": _load_adain,
    "wct": _load_wct,
    "wct2": _load_photoreal,
    "photowct": _load_photoreal,
    "styleid": _load_styleid,
}


def load_method(spec: MethodSpec, settings: MethodSettings) -> LoadedMethod:
    """Load ``spec``'s networks for ``settings``.

    Raises:
        WeightsError: missing or broken weights (the benchmark records it as a skip).
        ConfigError: weights of another method, bad settings.
    """
    return _LOADERS[spec.name](spec, settings)
