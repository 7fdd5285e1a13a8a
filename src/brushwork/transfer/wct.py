"""Universal style transfer with whitening–colouring transforms (Li et al. 2017).

Y. Li, C. Fang, J. Yang, Z. Wang, X. Lu, M.-H. Yang, *Universal Style Transfer via
Feature Transforms*, NeurIPS 2017.

One normalised VGG-19 encoder (shared by every level) and one decoder per level
``relu{k}_1``, each trained only to reconstruct images (:func:`train_wct`). At
each level, coarse to fine (relu5_1 … relu1_1), the content features are
whitened, coloured with the style's covariance, blended with α and decoded.

The eigen-decompositions run in float64 on the small C × C covariance matrices
only (the feature maps stay float32); eigenvalues below ``eps`` times the
largest are dropped, so rank-deficient covariances (flat images, small feature
maps) give finite results.

Example::

    model = WCTModel()                                   # then load or train the decoders
    out = model.stylize(content, [style], alpha=0.6)     # (B, 3, H, W)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.errors import ConfigError
from brushwork.transfer.adain import (
    EncoderConfig,
    MirrorDecoder,
    NormalisedVGG,
    check_alpha,
    normalise_weights,
)
from brushwork.transfer.data import ImageFolder
from brushwork.transfer.training import TrainResult, TrainStep, train_loop


class StyleStats(NamedTuple):
    """A style feature map's mean (C, 1) and colouring matrix (C, C), float32."""

    mean: torch.Tensor
    colour: torch.Tensor


@contextlib.contextmanager
def _lapack_threads(device: torch.device) -> Iterator[None]:
    """One thread for the C × C work of the transform on the CPU: threading makes a
    512 × 512 ``eigh`` and the small products slower (measured: 0.10 s vs 0.2 s for one
    ``eigh`` on two threads; WCT²'s sixteen transforms at 32² 0.2 s vs 0.7–2.2 s when
    other processes share the cores)."""
    if device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _eig(cov: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues/-vectors of a symmetric matrix (float64) with the tiny eigenvalues dropped."""
    values, vectors = torch.linalg.eigh(cov.double())
    keep = values > eps * values.max().clamp_min(1e-30)
    return values[keep], vectors[:, keep]


def _mean_cov(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, N) -> float32 mean (C, 1) and covariance (C, C) (divided by N − 1).

    The big product runs in float32 (fast); only the C × C result goes to float64.
    """
    mean, _, cov = _centred_stats(flat)
    return mean, cov


def _centred_stats(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(C, N) -> float32 mean (C, 1), centred features (C, N) and covariance (C, C)."""
    flat = flat.float()
    mean = flat.mean(dim=1, keepdim=True)
    centred = flat - mean
    return mean, centred, centred @ centred.T / max(flat.shape[1] - 1, 1)


def covariance(features: torch.Tensor) -> torch.Tensor:
    """(C, N) -> (C, C) float64 covariance (divided by N − 1)."""
    centred = features.double() - features.double().mean(dim=1, keepdim=True)
    return centred @ centred.T / max(centred.shape[1] - 1, 1)


def _ridged(cov: torch.Tensor, ridge: float) -> torch.Tensor:
    if not ridge:
        return cov
    return cov + ridge * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)


def style_statistics(style: torch.Tensor, *, eps: float = 1e-5, ridge: float = 0.0) -> StyleStats:
    """Mean and colouring matrix E_s D_s^{1/2} E_sᵀ of (C, H, W) style features.

    ``ridge`` is added to the covariance's diagonal first (WCT² adds 1; PhotoWCT 0).
    """
    mean, cov = _mean_cov(style.reshape(style.shape[0], -1))
    with _lapack_threads(style.device):
        values, vectors = _eig(_ridged(cov, ridge), eps)
        colour = (vectors * values.sqrt()) @ vectors.T
    return StyleStats(mean, colour.float())


#: Values per chunk of the streamed transform (:func:`_whiten_colour_rows`): a chunk's
#: float32 copy (2 MB) stays in cache between its conversion and its products.
CHUNK_VALUES = 1 << 19


def whiten_colour(
    content: torch.Tensor,
    style: torch.Tensor | StyleStats,
    *,
    eps: float = 1e-5,
    ridge: float = 0.0,
    clamp: bool = False,
) -> torch.Tensor:
    """The whitening–colouring transform of one feature map.

    Args:
        content: (C, H, W) content features.
        style: (C, H', W') style features, or their :func:`style_statistics`.
        eps: eigenvalues below ``eps`` × the largest are dropped.
        ridge: added to the content covariance's diagonal before whitening (the
            photorealistic references add 1, which keeps tiny regions finite).
        clamp: clamp the result to the range of the content features (WCT²'s
            reference does).

    Returns:
        (C, H, W) features, in the content's dtype, whose covariance is the
        style's (on the subspace the content spans) and whose mean is the style's.
    """
    stats = style if isinstance(style, StyleStats) else style_statistics(style, eps=eps)
    c, h, w = content.shape
    if content.stride(0) == 1 and c > 1:
        # Channels-last maps (the CPU fast path): their memory is (N, C) rows already.
        rows = content.permute(1, 2, 0).reshape(-1, c)
        rows = _whiten_colour_rows(rows, stats, eps, ridge, clamp=clamp)
        return rows.reshape(h, w, c).permute(2, 0, 1)
    _, centred, cov_c = _centred_stats(content.reshape(c, -1))  # the large products
    transform = _transform(cov_c, stats, eps, ridge, content.device)
    out = torch.addmm(stats.mean.float(), transform, centred).reshape(c, h, w)
    if clamp:
        out = out.clamp_(*torch.aminmax(content))
    return out.to(content.dtype)


def _transform(
    cov_c: torch.Tensor, stats: StyleStats, eps: float, ridge: float, device: torch.device
) -> torch.Tensor:
    """(C, C) content covariance -> the float32 colouring ∘ whitening matrix."""
    with _lapack_threads(device):
        values, vectors = _eig(_ridged(cov_c, ridge), eps)
        whiten = (vectors * values.rsqrt()) @ vectors.T
        return (stats.colour.double() @ whiten).float()


def _whiten_colour_rows(
    rows: torch.Tensor, stats: StyleStats, eps: float, ridge: float, *, clamp: bool
) -> torch.Tensor:
    """:func:`whiten_colour` of (N, C) feature rows, streamed in chunks.

    The rows are read twice (mean and covariance, then transform) but never copied whole
    to float32: each chunk's float32 copy is made, used and dropped while in cache, so a
    bfloat16 map costs about a third of the memory traffic of converting it at once.
    The result, T (x − μ_c) + μ_s, is written into rows of the input's dtype.
    """
    n, c = rows.shape
    chunks = rows.split(max(1, CHUNK_VALUES // c))
    # One pass for mean and covariance: sums of the rows minus a shift near the mean
    # (the first chunk's), which keeps the float32 sums free of cancellation.
    shift = chunks[0].float().mean(dim=0)
    total = torch.zeros(c, dtype=torch.float32, device=rows.device)
    gram = torch.zeros(c, c, dtype=torch.float32, device=rows.device)
    for chunk in chunks:
        centred = chunk.float() - shift
        total += centred.sum(dim=0)
        gram.addmm_(centred.T, centred)
    offset = total / n
    mean = shift + offset
    cov = (gram - n * torch.outer(offset, offset)) / max(n - 1, 1)
    transform = _transform(cov, stats, eps, ridge, rows.device)
    bias = stats.mean.float().reshape(-1) - transform @ mean
    low, high = torch.aminmax(rows) if clamp else (None, None)
    out = torch.empty_like(rows, memory_format=torch.contiguous_format)
    for chunk, dest in zip(chunks, out.split(len(chunks[0])), strict=True):
        moved = torch.addmm(bias, chunk.float(), transform.T)
        dest.copy_(moved.clamp_(low, high) if clamp else moved)
    return out


def masked_whiten_colour(
    content: torch.Tensor,
    styles: Sequence[StyleStats],
    masks: torch.Tensor,
    *,
    eps: float = 1e-5,
) -> torch.Tensor:
    """The whitening–colouring transform with a different style per (soft) region.

    Region i's content mean and covariance are taken inside mask i (weighted by it),
    the region is whitened with them and coloured with style i's statistics; the results
    are blended with the masks (normalised to sum to 1; pixels outside every mask keep
    the content features), as :func:`~brushwork.transfer.adain.masked_adain` does for
    AdaIN.

    Args:
        content: (C, H, W) content features.
        styles: one :class:`StyleStats` per region (:func:`style_statistics`).
        masks: (R, H', W') in [0, 1], R = len(styles); resized to (H, W) by area.

    Returns:
        (C, H, W) float32.
    """
    from brushwork.losses import resize_mask

    if masks.shape[0] != len(styles):
        raise ConfigError(f"got {len(styles)} styles but {masks.shape[0]} masks; give one each")
    c, h, w = content.shape
    weights = resize_mask(masks.float()[None], (h, w))[0].reshape(len(styles), -1)
    x = content.reshape(c, -1).float()
    out = torch.zeros_like(x)
    for stats, weight in zip(styles, weights, strict=True):
        area = float(weight.sum())
        if area <= 1e-6:
            continue
        mean = (x @ weight / area)[:, None]
        centred = x - mean
        cov = (centred * weight) @ centred.T / max(area - 1, 1e-6)  # N − 1, as unmasked
        transform = _transform(cov, stats, eps, 0.0, content.device)
        out += torch.addmm(stats.mean.float(), transform, centred) * weight
    total = weights.sum(dim=0)
    out = torch.where(total > 1e-6, out / total.clamp_min(1e-8), x)
    return out.reshape(c, h, w)


def stack_maps(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """[(C, H, W)] -> (B, C, H, W), keeping channels-last memory where the maps have it.

    ``torch.stack`` and ``[None]`` give channels-last maps strides that torch's padding
    and convolution kernels do not recognise, and they then convert the whole map
    (measured: a 64 × 512² bfloat16 reflection pad 78 ms instead of 10 ms).
    """
    if maps[0].dim() == 3 and maps[0].stride(0) == 1 and maps[0].shape[0] > 1:
        return torch.stack([m.permute(1, 2, 0) for m in maps]).permute(0, 3, 1, 2)
    return torch.stack(list(maps))


@dataclass(frozen=True)
class WCTConfig:
    """Architecture: the encoder shape (its level is the deepest, 5) and the decoder levels."""

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(level=5))
    levels: tuple[int, ...] = (5, 4, 3, 2, 1)

    def validate(self) -> None:
        """ConfigError on levels outside 1 … encoder level."""
        self.encoder.validate()
        if not self.levels or any(not 1 <= k <= self.encoder.level for k in self.levels):
            raise ConfigError(
                f"WCT levels must be in 1 … {self.encoder.level}, got {list(self.levels)}"
            )
        if len(set(self.levels)) != len(self.levels):
            raise ConfigError(f"WCT levels repeat: {list(self.levels)}")

    def to_json(self) -> dict:
        """Plain JSON values."""
        return {"encoder": self.encoder.to_json(), "levels": list(self.levels)}

    @staticmethod
    def from_json(data: dict) -> WCTConfig:
        """Inverse of :meth:`to_json`."""
        enc = dict(data["encoder"])
        enc["widths"] = tuple(enc["widths"])
        return WCTConfig(EncoderConfig(**enc), tuple(data["levels"]))


class WCTModel(nn.Module):
    """Shared encoder (to relu{max level}_1) and one :class:`MirrorDecoder` per level."""

    def __init__(self, config: WCTConfig | None = None) -> None:
        super().__init__()
        self.config = config or WCTConfig()
        self.config.validate()
        self.encoder = NormalisedVGG(self.config.encoder)
        self.encoder.requires_grad_(False)
        enc = self.config.encoder
        self.decoders = nn.ModuleDict(
            {
                str(k): MirrorDecoder(
                    EncoderConfig(level=k, widths=enc.widths, padding=enc.padding)
                )
                for k in self.config.levels
            }
        )

    @property
    def multiple(self) -> int:
        """Input sides that are multiples of this decode back to the same size."""
        return 2 ** (max(self.config.levels) - 1)

    def style_features(self, style: torch.Tensor, *, eps: float = 1e-5) -> dict[int, StyleStats]:
        """(1, 3, H, W) style image -> level -> its :class:`StyleStats` (one encoder pass)."""
        levels = sorted(self.config.levels)
        feats = self.encoder.features(style, levels)
        return {k: style_statistics(f[0], eps=eps) for k, f in zip(levels, feats, strict=True)}

    def stylize(
        self,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor | dict[int, torch.Tensor]],
        *,
        style_weights: Sequence[float] | None = None,
        alpha: float = 1.0,
        eps: float = 1e-5,
        masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Coarse-to-fine WCT cascade.

        Args:
            content: (B, 3, H, W) in [0, 1].
            styles: style images (1, 3, H', W') or their :meth:`style_features`
                (one style image each; the first of a batch is used).
            style_weights: interpolation weights of the coloured features.
            alpha: blend of the transformed and the content features at every level
                (0 gives the cascade's reconstruction of the content).
            masks: (1 or B, len(styles), H'', W'') regions in [0, 1], one per style (no
                interpolation): each region gets its own statistics at every level
                (:func:`masked_whiten_colour`).

        Returns:
            (B, 3, H', W') unclamped, H', W' = H, W rounded up to :attr:`multiple`.
        """
        check_alpha(alpha)
        if not styles:
            raise ConfigError("WCT needs at least one style image (--style)")
        feats = [s if isinstance(s, dict) else self.style_features(s) for s in styles]
        weights = normalise_weights(style_weights, len(feats))
        image = content
        for level in self.config.levels:
            fc = self.encoder.features(image, [level])[0]
            mixed = []
            for b in range(fc.shape[0]):
                if masks is not None:
                    region_masks = masks[b if len(masks) > 1 else 0]
                    stats = [f[level] for f in feats]
                    coloured = masked_whiten_colour(fc[b], stats, region_masks, eps=eps)
                    coloured = coloured.to(fc.dtype)
                elif len(feats) == 1:
                    coloured = whiten_colour(fc[b], feats[0][level], eps=eps)
                else:
                    coloured = sum(
                        w * whiten_colour(fc[b], f[level], eps=eps)
                        for w, f in zip(weights, feats, strict=True)
                    )
                mixed.append(torch.lerp(fc[b], coloured, alpha))
            image = self.decoders[str(level)](stack_maps(mixed))
        return image

    def reconstruct(self, images: torch.Tensor, level: int) -> torch.Tensor:
        """decoder_k(encoder_k(images)) for one level."""
        return self.decoders[str(level)](self.encoder.features(images, [level])[0])


@dataclass
class WCTSettings:
    """Decoder training settings (reconstruction + feature loss, Li et al. 2017).

    Attributes:
        resize, image_size: shorter side before cropping; crop side.
        batch_size, learning_rate, steps: Adam schedule.
        feature_weight: λ of the feature (perceptual) loss ‖Φ(x̂) − Φ(x)‖².
        checkpoint_every, seed: as for the other trainers.
    """

    resize: int = 512
    image_size: int = 256
    batch_size: int = 8
    learning_rate: float = 1e-4
    steps: int = 40_000
    feature_weight: float = 1.0
    checkpoint_every: int = 1000
    seed: int = 0

    def validate(self) -> None:
        """ConfigError for values that cannot work."""
        for name in ("resize", "image_size", "batch_size", "steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.feature_weight < 0:
            raise ConfigError("learning_rate must be positive and feature_weight 0 or more")

    def to_json(self) -> dict:
        """Plain JSON values."""
        return asdict(self)


def wct_loss(model: WCTModel, images: torch.Tensor, settings: WCTSettings) -> dict:
    """Σ over levels of pixel MSE + λ · feature MSE of each decoder's reconstruction."""
    parts: dict[str, torch.Tensor] = {}
    levels = sorted(model.config.levels)
    with torch.no_grad():
        feats = dict(zip(levels, model.encoder.features(images, levels), strict=True))
    total = None
    for k in levels:
        out = model.decoders[str(k)](feats[k])
        out = out[..., : images.shape[-2], : images.shape[-1]]
        pixel = F.mse_loss(out, images)
        feature = F.mse_loss(model.encoder.features(out, [k])[0], feats[k])
        parts[f"level{k}"] = pixel + settings.feature_weight * feature
        total = parts[f"level{k}"] if total is None else total + parts[f"level{k}"]
    parts["total"] = total
    return parts


def train_wct(
    *,
    image_dir: str | os.PathLike,
    settings: WCTSettings | None = None,
    model: WCTModel | None = None,
    device: str | torch.device = "auto",
    checkpoint_path: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    callback: Callable[[TrainStep], None] | None = None,
) -> tuple[WCTModel, TrainResult]:
    """Train the reconstruction decoders of every level together (independent losses).

    Args:
        image_dir: folder of training images (MS-COCO in the paper).
        model: encoder + decoders; ``None`` uses the published normalised VGG-19.
    """
    from brushwork.devices import resolve_device
    from brushwork.transfer.adain import load_published_encoder
    from brushwork.transfer.johnson import reinitialise

    settings = settings or WCTSettings()
    settings.validate()
    dev = resolve_device(device)
    data = ImageFolder(
        image_dir, resize=settings.resize, crop=settings.image_size, what="image folder"
    )
    if model is None:
        model = WCTModel()
        model.encoder = load_published_encoder(model.config.encoder)
        model.encoder.requires_grad_(False)
    reinitialise(model.decoders, torch.Generator().manual_seed(settings.seed))
    model = model.to(dev)
    optimizer = torch.optim.Adam(model.decoders.parameters(), lr=settings.learning_rate)

    def loss_fn(step: int) -> dict[str, torch.Tensor]:
        batch = data.batch(step=step, batch_size=settings.batch_size, seed=settings.seed)
        return wct_loss(model, batch.to(dev), settings)

    result = train_loop(
        model=model,
        optimizer=optimizer,
        loss_fn=loss_fn,
        steps=settings.steps,
        batch_size=settings.batch_size,
        config={"architecture": "wct", **model.config.to_json()},
        checkpoint_every=settings.checkpoint_every,
        checkpoint_path=checkpoint_path,
        resume=resume,
        callback=callback,
    )
    return model, result
