"""Photorealistic smoothing (PhotoWCT's second step, Li et al. 2018).

Y. Li, M.-Y. Liu, X. Li, M.-H. Yang, J. Kautz, *A Closed-form Solution to Photorealistic
Image Stylization*, ECCV 2018. Reference code: ``NVIDIA/FastPhotoStyle``
(``photo_smooth.py``: ``Propagator``; ``photo_gif.py``: ``GIFSmoothing``).

The stylised image Y is replaced by the R that is smooth where the content is smooth
and stays close to Y::

    R* = (1 − β) (I − β S)⁻¹ Y,     S = D^{-1/2} W D^{-1/2},    β = 1 / (1 + λ)

with W the matting affinity of the *content* image (Levin et al. 2008: 3 × 3 windows,
ε = 1e-7), D its row sums, λ = 1e-4 (β = 0.9999) as in the reference. :func:`smooth_exact`
builds W (25 diagonals: two pixels interact when one 3 × 3 window holds both) and solves
the sparse system with SciPy's SuperLU in a nested-dissection order (one factorisation,
three right-hand sides).
:func:`smooth_fast` is the reference's fast approximation: the guided image filter
(He et al. 2013) of Y with the content as guide, radius 35.

Both take and return (3, H, W) tensors in [0, 1]. Differences to the reference: the
image is edge-padded by 2 pixels around the solve and cropped back, so the output has
the input's size (the reference returns an image 4 pixels smaller); the guided filter's
ε is given on [0, 1] values (the reference passes ε = 1e-3 to OpenCV on 0–255 values,
where it is ≈ 0; here the default 1e-4 keeps flat regions stable).

Example::

    out = smooth(stylised, content, "exact")     # (3, H, W) each
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from brushwork.choices import DEFAULT_SMOOTH, SMOOTH_CHOICES
from brushwork.errors import ConfigError

#: ``--smooth`` values; a bare ``--smooth`` means :data:`DEFAULT_SMOOTH` (the paper's and
#: the reference's default: the closed-form solve).
SMOOTH_MODES = SMOOTH_CHOICES
#: β = 1 / (1 + λ), λ = 1e-4 (the reference's ``Propagator(beta=0.9999)``).
BETA = 0.9999
#: Matting-affinity regulariser (the reference's ε).
MATTING_EPS = 1e-7
#: Guided filter radius (the reference's ``GIFSmoothing(r=35)``).
FAST_RADIUS = 35
#: Guided filter ε on [0, 1] values.
FAST_EPS = 1e-4
#: Pixels of edge padding around the exact solve.
PAD = 2


@dataclass(frozen=True)
class SmoothSettings:
    """Parameters of both smoothers (defaults: the reference's).

    Attributes:
        beta: β of the closed-form solve (1 / (1 + λ)); closer to 1 = smoother.
        matting_eps: ε of the matting affinity.
        radius, eps: the guided filter's window radius and regulariser.
    """

    beta: float = BETA
    matting_eps: float = MATTING_EPS
    radius: int = FAST_RADIUS
    eps: float = FAST_EPS
    normalised: bool = False

    def validate(self) -> None:
        """ConfigError for values that cannot work."""
        if not 0.0 < self.beta < 1.0:
            raise ConfigError(f"smoothing beta must be between 0 and 1, got {self.beta}")
        if self.matting_eps <= 0 or self.eps <= 0:
            raise ConfigError("smoothing eps values must be positive")
        if self.radius < 1:
            raise ConfigError(f"guided filter radius must be at least 1, got {self.radius}")


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`SMOOTH_MODES`, else ConfigError."""
    if mode not in SMOOTH_MODES:
        from brushwork.encoders import unknown_name_message

        raise ConfigError(unknown_name_message("smoothing", str(mode), SMOOTH_MODES))
    return mode


def _check_pair(image: torch.Tensor, guide: torch.Tensor) -> None:
    for name, t in (("image", image), ("guide", guide)):
        if t.ndim != 3 or t.shape[0] != 3:
            raise ConfigError(f"smoothing takes (3, H, W) images; the {name} is {tuple(t.shape)}")
    if image.shape != guide.shape:
        raise ConfigError(
            f"the image to smooth is {tuple(image.shape)} but the content guide is "
            f"{tuple(guide.shape)}; they must have one size"
        )
    if min(image.shape[-2:]) < 3:
        raise ConfigError(
            f"smoothing needs images of at least 3×3 pixels, got {tuple(image.shape)}"
        )


def smooth(
    image: torch.Tensor,
    guide: torch.Tensor,
    mode: str = DEFAULT_SMOOTH,
    settings: SmoothSettings | None = None,
) -> torch.Tensor:
    """Smooth ``image`` (3, H, W) guided by the content ``guide`` (3, H, W); see the module."""
    check_mode(mode)
    if mode == "exact":
        return smooth_exact(image, guide, settings)
    return smooth_fast(image, guide, settings)


# --------------------------------------------------------------------------- exact


def affinity_diagonals(guide: torch.Tensor, *, eps: float = MATTING_EPS) -> torch.Tensor:
    """The matting affinity of a (3, H, W) image as (5, 5, H, W) float64 diagonals.

    ``out[dy + 2, dx + 2, y, x]`` is W between pixel (y, x) and (y + dy, x + dx):
    Σ over the 3 × 3 windows k holding both of (1 + (I_i − μ_k)ᵀ (Σ_k + ε/9)⁻¹
    (I_j − μ_k)) / 9 (Levin et al.; the reference's ``__compute_laplacian`` values).
    """
    img = guide.detach().to("cpu", torch.float64).permute(1, 2, 0)  # (H, W, 3)
    h, w, _ = img.shape
    ch, cw = h - 2, w - 2
    # The nine pixels of every window centred inside the image: (ch, cw, 9, 3).
    patches = torch.stack(
        [img[dy : dy + ch, dx : dx + cw] for dy in range(3) for dx in range(3)], dim=2
    )
    mean = patches.mean(dim=2, keepdim=True)
    centred = patches - mean
    cov = centred.transpose(-1, -2) @ centred / 9
    inv = torch.linalg.inv(cov + (eps / 9) * torch.eye(3, dtype=torch.float64))
    vals = (1 + centred @ inv @ centred.transpose(-1, -2)) / 9  # (ch, cw, 9, 9)
    diags = torch.zeros(5, 5, h, w, dtype=torch.float64)
    offsets = [(dy, dx) for dy in range(3) for dx in range(3)]
    for a, (ay, ax) in enumerate(offsets):
        for b, (by, bx) in enumerate(offsets):
            diags[by - ay + 2, bx - ax + 2, ay : ay + ch, ax : ax + cw] += vals[:, :, a, b]
    return diags


def affinity_matrix(guide: torch.Tensor, *, eps: float = MATTING_EPS):
    """The matting affinity W of a (3, H, W) image as a SciPy CSC matrix (HW × HW).

    Built from the 25 diagonals directly (no COO sort): in row-major order pixel
    (y, x) and (y + dy, x + dx) are dy·W + dx apart, and the entries that would wrap
    around a row end are zero (no window holds both pixels).
    """
    import scipy.sparse as sp

    diags = affinity_diagonals(guide, eps=eps).numpy()
    _, _, h, w = diags.shape
    n = h * w
    offsets, data = [], []
    for oy in range(5):
        for ox in range(5):
            offset = (oy - 2) * w + (ox - 2)
            # dia_matrix stores diagonal k's entry of column j at data[k, j].
            column = np.zeros(n)
            values = diags[oy, ox].ravel()  # indexed by the row i; column j = i + offset
            if offset >= 0:
                column[offset:] = values[: n - offset]
            else:
                column[:offset] = values[-offset:]
            offsets.append(offset)
            data.append(column)
    return sp.dia_matrix((np.stack(data), np.array(offsets)), shape=(n, n)).tocsc()


def nested_dissection_order(height: int, width: int, *, leaf: int = 8) -> np.ndarray:
    """A nested-dissection elimination order of a height × width pixel grid, (H·W,) int64.

    The grid is cut in halves by separators two pixels wide (the matting affinity
    couples pixels up to two apart), each half ordered the same way, the separator
    last; blocks of at most ``leaf`` × ``leaf`` / 4 pixels are ordered row by row.
    Indices are row-major pixel numbers.
    """
    grid = np.arange(height * width, dtype=np.int64).reshape(height, width)
    parts: list[np.ndarray] = []

    def order(block: np.ndarray) -> None:
        h, w = block.shape
        if h * w <= leaf * leaf // 4 or min(h, w) < 6:
            parts.append(block.ravel())
            return
        if h >= w:
            cut = h // 2
            order(block[:cut])
            order(block[cut + 2 :])
            parts.append(block[cut : cut + 2].ravel())
        else:
            cut = w // 2
            order(block[:, :cut])
            order(block[:, cut + 2 :])
            parts.append(block[:, cut : cut + 2].ravel())

    order(grid)
    return np.concatenate(parts)


def smooth_exact(
    image: torch.Tensor, guide: torch.Tensor, settings: SmoothSettings | None = None
) -> torch.Tensor:
    """The closed-form smoothing R* = (1 − β)(I − βS)⁻¹ Y (sparse LU, SciPy).

    Args:
        image: (3, H, W) stylised image Y in [0, 1].
        guide: (3, H, W) content image whose matting affinity gives S.

    Returns:
        (3, H, W) float32 on the input's device, clamped to [0, 1].

    Memory and time grow faster than the pixel count (the LU factor's fill-in): at
    512² about 1.6 GB and seconds; see docs/photoreal.md.
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spl

    settings = settings or SmoothSettings()
    settings.validate()
    _check_pair(image, guide)
    _, h, w = image.shape
    pad = (PAD, PAD, PAD, PAD)
    y = F.pad(image.detach().float().cpu()[None], pad, mode="replicate")[0]
    g = F.pad(guide.detach().float().cpu()[None], pad, mode="replicate")[0]
    weights = affinity_matrix(g, eps=settings.matting_eps)
    n = weights.shape[0]
    degree = np.asarray(weights.sum(axis=1)).ravel()
    lam = 1.0 / settings.beta - 1.0
    if settings.normalised:
        scale = sp.diags(1.0 / np.sqrt(np.maximum(degree, 1e-12)))
        system = (sp.identity(n) - settings.beta * (scale @ weights @ scale)).tocsc()
        fidelity = np.full(n, 1.0 - settings.beta)
    else:
        # ((1 + λ) D − W) R = λ D Y: the same energy with the fidelity weighted by D.
        system = (sp.diags((1.0 + lam) * degree) - weights).tocsc()
        fidelity = lam * degree
    # Symmetric positive definite: no pivoting, and a nested-dissection order of the
    # pixel grid (fill-in about 0.8 of SuperLU's minimum degree, and as much less time).
    # Single precision halves memory and time again; its error (≈1e-4 of the [0, 1]
    # range) is far below 8 bits.
    order = nested_dissection_order(h + 2 * PAD, w + 2 * PAD)
    lu = spl.splu(
        system[order][:, order].tocsc().astype(np.float32),
        permc_spec="NATURAL",
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )
    rhs = fidelity[:, None] * y.reshape(3, n).T.numpy()
    solved = np.empty_like(rhs, dtype=np.float32)
    solved[order] = lu.solve(np.ascontiguousarray(rhs[order], dtype=np.float32))
    out = torch.from_numpy(np.ascontiguousarray(solved.T)).reshape(3, h + 2 * PAD, w + 2 * PAD)
    out = out[:, PAD : PAD + h, PAD : PAD + w].float().clamp(0, 1)
    return out.to(image.device)


# --------------------------------------------------------------------------- fast


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Sums over (2r + 1)² windows clipped at the border, via cumulative sums. x: (..., H, W)."""
    h, w = x.shape[-2:]
    c = x.cumsum(-2)
    c = F.pad(c, (0, 0, 1, 0))
    top = torch.arange(h, device=x.device) - r
    bottom = torch.arange(h, device=x.device) + r + 1
    c = c[..., bottom.clamp(max=h), :] - c[..., top.clamp(min=0), :]
    c = c.cumsum(-1)
    c = F.pad(c, (1, 0))
    left = torch.arange(w, device=x.device) - r
    right = torch.arange(w, device=x.device) + r + 1
    return c[..., right.clamp(max=w)] - c[..., left.clamp(min=0)]


def smooth_fast(
    image: torch.Tensor, guide: torch.Tensor, settings: SmoothSettings | None = None
) -> torch.Tensor:
    """Guided image filter of ``image`` with the colour ``guide`` (He et al. 2013).

    Per window, image ≈ A·guide + b (least squares, ridge ε); the output averages the
    windows' A and b: q = mean(A)·I + mean(b). Float64, O(1) per pixel (box sums).

    Args:
        image: (3, H, W) stylised image in [0, 1].
        guide: (3, H, W) content image.

    Returns:
        (3, H, W) float32 on the input's device, clamped to [0, 1].
    """
    settings = settings or SmoothSettings()
    settings.validate()
    _check_pair(image, guide)
    r, eps = settings.radius, settings.eps
    p = image.detach().double()
    g = guide.detach().double().to(p.device)
    count = _box(torch.ones_like(g[:1]), r)
    mean_g = _box(g, r) / count  # (3, H, W)
    mean_p = _box(p, r) / count
    gg = _box(g[:, None] * g[None, :], r) / count - mean_g[:, None] * mean_g[None, :]
    gp = _box(g[:, None] * p[None, :], r) / count - mean_g[:, None] * mean_p[None, :]
    # Per pixel: A = (Σ + εI)⁻¹ cov(I, p), (H, W, 3, 3); b = μ_p − Aᵀ μ_I.
    sigma = gg.permute(2, 3, 0, 1) + eps * torch.eye(3, dtype=p.dtype, device=p.device)
    a = torch.linalg.solve(sigma, gp.permute(2, 3, 0, 1))  # [i: guide channel, j: image channel]
    b = mean_p - torch.einsum("hwij,ihw->jhw", a, mean_g)
    mean_a = _box(a.permute(2, 3, 0, 1), r) / count  # (3, 3, H, W)
    mean_b = _box(b, r) / count
    q = torch.einsum("ijhw,ihw->jhw", mean_a, g) + mean_b
    return q.float().clamp(0, 1).to(image.device)
