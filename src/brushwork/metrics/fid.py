"""Fréchet Inception Distance (Heusel et al. 2017) and ArtFID (Wright & Ommer 2022).

FID between two image sets is the Fréchet distance between Gaussians fitted to
their Inception-v3 pool features::

    FID = |μ₁ − μ₂|² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½)

with sample means and (unbiased, ``np.cov``) covariances, as in pytorch-fid.
ArtFID combines it with the content distance::

    ArtFID = (1 + mean LPIPS(content, stylised)) × (1 + FID(style set, stylised set))

computed with the art-fine-tuned Inception (``variant="art"``). FID needs at
least :data:`MIN_FID_IMAGES` images per set; with fewer images than feature
dimensions (2048) the covariances are rank-deficient and the value is biased
upwards — the standard style-transfer protocol uses 800 results.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from brushwork.errors import ConfigError, ImageError
from brushwork.metrics.inception import InceptionFeatures, load_inception_state

__all__ = [
    "MIN_FID_IMAGES",
    "FidInfinity",
    "art_fid",
    "feature_statistics",
    "fid_from_features",
    "fid_infinity",
    "frechet_distance",
    "inception_features",
    "load_inception",
]

#: Fewest images per set for which a covariance (and so FID) exists.
MIN_FID_IMAGES = 2
#: Registry names of the Inception weight files per variant.
INCEPTION_WEIGHTS = {"fid": "inception-fid", "art": "inception-art"}


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < MIN_FID_IMAGES:
        raise ImageError(
            f"FID needs at least {MIN_FID_IMAGES} images per set, got {x.shape[0]}; "
            "add images (reliable FID values need hundreds) or leave fid/artfid out with --metrics"
        )
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigen-decomposition)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Tr((Σ₁Σ₂)^½) is computed as Σ √λᵢ of the symmetric PSD matrix Σ₁^½ Σ₂ Σ₁^½ (same
    eigenvalues as Σ₁Σ₂), which avoids the complex round-off of a general ``sqrtm``.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    sigma2 = np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ConfigError(
            f"feature statistics differ in size: {mu1.shape} vs {mu2.shape}, "
            f"{sigma1.shape} vs {sigma2.shape}"
        )
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    eigen = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eigen, 0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)
    return max(value, 0.0)


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two (N, D) feature sets.

    With centred features A₁, A₂, Σᵢ = AᵢᵀAᵢ/(nᵢ−1), so the eigenvalues of Σ₁Σ₂ are the
    squared singular values of A₁A₂ᵀ/√((n₁−1)(n₂−1)): Tr((Σ₁Σ₂)^½) is that matrix's
    nuclear norm — an (n₁ × n₂) SVD instead of (D × D) eigen-decompositions when there
    are fewer images than feature dimensions.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    for x in (a, b):  # validates the count and shape
        feature_statistics(x[:MIN_FID_IMAGES] if x.ndim == 2 else x)
    if a.shape[1] != b.shape[1]:
        raise ConfigError(f"feature sets differ in dimension: {a.shape[1]} vs {b.shape[1]}")
    if min(len(a), len(b)) >= a.shape[1]:
        return frechet_distance(*feature_statistics(a), *feature_statistics(b))
    ca, cb = a - a.mean(0), b - b.mean(0)
    na, nb = len(a) - 1, len(b) - 1
    cross = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    diff = a.mean(0) - b.mean(0)
    trace_a, trace_b = (ca**2).sum() / na, (cb**2).sum() / nb
    return max(float(diff @ diff + trace_a + trace_b - 2 * cross), 0.0)


@dataclass(frozen=True)
class FidInfinity:
    """FID extrapolated to infinitely many images (Chong & Forsyth 2020).

    Attributes:
        value: the intercept of the least-squares line FID_N = value + slope / N.
        slope: the bias coefficient (FID_N - FID∞ ≈ slope / N).
        sizes: the subset sizes N of the fit.
        fids: FID_N at each size.
    """

    value: float
    slope: float
    sizes: tuple[int, ...]
    fids: tuple[float, ...]


def fid_infinity(
    features_a: np.ndarray,
    features_b: np.ndarray,
    *,
    num_points: int = 15,
    min_size: int | None = None,
    paired: bool = False,
    seed: int = 0,
) -> FidInfinity:
    """FID∞ of (N_a, D) reference and (N_b, D) generated features.

    As in Chong & Forsyth's ``calculate_FID_infinity``: FID is computed on random subsets
    of the generated set of ``num_points`` sizes evenly spaced from ``min_size``
    (default: a tenth of the set, their 5,000 of 50,000, at least
    :data:`MIN_FID_IMAGES`) to the whole set, the reference set kept whole, and the
    line FID_N = FID∞ + k / N is fitted by least squares; FID∞ is its value at 1/N = 0.
    ``paired=True`` (StyleID's variant, both sets of one size, row i of each belonging
    together) draws the same rows from both sets. Subsets come from a NumPy generator
    seeded with ``seed``: the same call gives the same value.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    n = len(b)
    if paired and len(a) != n:
        raise ConfigError(f"paired FID∞ needs sets of one size, got {len(a)} and {n}")
    if num_points < 2:
        raise ConfigError(f"FID∞ needs at least 2 subset sizes, got {num_points}")
    low = max(MIN_FID_IMAGES, n // 10) if min_size is None else int(min_size)
    if not MIN_FID_IMAGES <= low < n:
        raise ImageError(
            f"FID∞ fits FID over subsets of {low} to {n} images; it needs more than "
            f"{max(low, MIN_FID_IMAGES)} images (reliable values need thousands)"
        )
    sizes = np.unique(np.linspace(low, n, num_points).astype(int))
    if len(sizes) < 2:
        raise ImageError(f"FID∞ needs at least 2 distinct subset sizes, got {sizes.tolist()}")
    rng = np.random.default_rng(seed)
    fids = []
    for size in sizes:
        rows = rng.permutation(n)[:size]
        reference = a[rows] if paired else a
        fids.append(fid_from_features(reference, b[rows]))
    x = 1.0 / sizes.astype(np.float64)
    slope, intercept = np.polyfit(x, np.asarray(fids), 1)
    return FidInfinity(float(intercept), float(slope), tuple(int(s) for s in sizes), tuple(fids))


def art_fid(fid: float, lpips: float) -> float:
    """ArtFID = (1 + LPIPS) × (1 + FID)."""
    return (1.0 + lpips) * (1.0 + fid)


def load_inception(
    variant: str = "fid",
    *,
    weights: str | os.PathLike[str] | None = None,
    input_size: int | str | None = "default",
    device: torch.device | str | None = None,
    download: bool = True,
) -> InceptionFeatures:
    """The Inception for ``variant`` with its published weights (see :mod:`brushwork.weights`).

    A file under the published name is hash-checked; a file of another name only for
    its keys and shapes.
    """
    from brushwork import weights as store

    model = InceptionFeatures(variant, input_size=input_size)
    name = INCEPTION_WEIGHTS[variant]
    published = weights is None or os.path.basename(str(weights)) == store.get(name).filename
    state = store.load_state_dict(name, path=weights, download=download, verify_hash=published)
    load_inception_state(model, state, source=str(weights or name))
    return model.to(device) if device is not None else model


@torch.no_grad()
def inception_features(
    model: InceptionFeatures,
    images: Sequence[torch.Tensor] | Callable[[int], torch.Tensor],
    *,
    count: int | None = None,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(N, 2048) features of images given as (3, H, W) tensors or a loader ``i -> tensor``.

    Images of different sizes are fine: with a fixed input size each is resized on
    its own before batching; without one (the art variant) a batch holds
    consecutive images of one size.
    """
    n = len(images) if count is None else count  # type: ignore[arg-type]
    get = images if callable(images) else images.__getitem__
    out = np.empty((n, 2048), dtype=np.float64)
    size = model.input_size
    batch: list[torch.Tensor] = []
    done = 0

    def flush() -> None:
        nonlocal done
        if batch:
            x = torch.stack(batch).to(device)
            out[done : done + len(batch)] = model(x).double().cpu().numpy()
            done += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
            batch.clear()

    for i in range(n):
        image = get(i).float()
        if size is not None:
            image = torch.nn.functional.interpolate(
                image[None], size=(size, size), mode="bilinear", align_corners=False
            )[0]
        if batch and (len(batch) >= batch_size or batch[0].shape != image.shape):
            flush()
        batch.append(image)
    flush()
    return out
