"""Per-prompt overlap metrics of the content/style study, in one vectorised pass.

For one prompt with W word maps of P pixels (normalised to [0, 1]) every word is
binarised at every (mode, threshold) — masks as one (M, W, P) matrix with M = modes ×
thresholds — and the intersections of *all* word pairs come from one batched matrix
product ``masks @ masksᵀ`` (M, W, W) (on the CPU: bit-packed masks, AND and popcount
for all pairs, several times faster); areas are its diagonal, unions
``|A| + |B| − |A ∩ B|``. IoU_cs, the baselines and Δ are then picks and means over that
(M, W, W) cube: no Python loop over pairs. Pixels are processed in chunks so memory
stays small at 1024² (the counts are exact: float32 per chunk, float64 in total).

Definitions (protocol, cow-of-rembrandt.md):

* fixed mask ``map ≥ t``, quantile mask ``map ≥ quantile(map, t)`` (linear
  interpolation), both compared in float32;
* IoU = |A ∩ B| / |A ∪ B|, 0 when the union is empty;
* mIoU_B: mean (and population std) IoU over all unordered word pairs except the
  content–style pair; mIoU_B,cs: only the pairs involving the content or the style word
  (still without the content–style pair); Δ = mIoU_B − IoU_cs, Δ_cs = mIoU_B,cs − IoU_cs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from brushwork.diffusion.maps import BINARIZE_MODES, merge_tokens, normalize, quantiles, upsample
from brushwork.errors import ConfigError

__all__ = [
    "METRIC_COLUMNS",
    "MODES",
    "THRESHOLDS",
    "loop_metrics",
    "prompt_metrics",
    "word_heatmaps",
]

#: The protocol's thresholds 0.1 … 0.9.
THRESHOLDS: tuple[float, ...] = tuple(round(k / 10, 1) for k in range(1, 10))
MODES: tuple[str, ...] = BINARIZE_MODES  # ("fixed", "quantile")

#: Numeric columns of one (prompt, rule, mode, threshold) row, in order.
METRIC_COLUMNS: tuple[str, ...] = (
    "iou_cs",
    "area_content",
    "area_style",
    "area_inter",
    "area_union",
    "miou_b",
    "miou_b_std",
    "miou_b_inter",
    "miou_b_union",
    "pairs_b",
    "miou_bcs",
    "miou_bcs_std",
    "pairs_bcs",
    "delta",
    "delta_cs",
)

_CHUNK_BYTES = 48 * 2**20  # mask buffer: large chunks keep the batched products efficient


def word_heatmaps(
    token_maps: torch.Tensor, positions: Sequence[Sequence[int]], size: tuple[int, int]
) -> torch.Tensor:
    """(W, H, W') word maps at image size, min–max normalised.

    Args:
        token_maps: (tokens, h, w) DAAM maps of one image.
        positions: per word, the text positions merged (mean) into its map.
        size: (H, W') of the image.
    """
    return normalize(upsample(merge_tokens(token_maps.float(), positions), size))


def _cuts(flat: torch.Tensor, thresholds: Sequence[float], modes: Sequence[str]) -> torch.Tensor:
    """(M, W) float32 cut values, mode-major: rows ``[mode0 t0, mode0 t1, …, mode1 t0, …]``."""
    rows = []
    for mode in modes:
        if mode == "fixed":
            cut = torch.tensor(list(thresholds), dtype=torch.float32, device=flat.device)
            rows.append(cut[:, None].expand(-1, flat.shape[0]))
        elif mode == "quantile":
            rows.append(select_quantiles(flat, thresholds))
        else:
            raise ConfigError(
                f"unknown binarisation mode '{mode}': choose from {', '.join(BINARIZE_MODES)}"
            )
    return torch.cat(rows)


def select_quantiles(flat: torch.Tensor, levels: Sequence[float], bins: int = 4096) -> torch.Tensor:
    """(levels, W) per-row quantiles (linear interpolation), equal to a full sort's.

    The same numbers as :func:`brushwork.diffusion.maps.quantiles` without sorting whole
    maps. On the CPU each row is partitioned around the needed ranks (``np.partition``,
    introselect, rows spread over threads); elsewhere a histogram of each row locates
    the bins holding the needed order statistics, and only the pixels in those bins are
    sorted.

    Args:
        flat: (W, P) float32 rows.
    """
    flat = flat.to(torch.float32)
    count = flat.shape[1]
    if count <= 4 * bins:
        return quantiles(flat, levels)
    ranks_low, ranks_high, fracs = [], [], []
    for level in levels:
        position = float(level) * (count - 1)
        low = int(np.floor(position))
        ranks_low.append(low)
        ranks_high.append(min(low + 1, count - 1))
        fracs.append(position - low)
    ranks = sorted(set(ranks_low + ranks_high))
    if flat.device.type == "cpu":
        values = _order_statistics_cpu(flat, ranks)
    else:
        values = _order_statistics_histogram(flat, ranks, bins)
    lookup = {rank: i for i, rank in enumerate(ranks)}
    out = []
    for low, high, frac in zip(ranks_low, ranks_high, fracs, strict=True):
        a, b = values[:, lookup[low]], values[:, lookup[high]]
        out.append(a + (b - a) * frac)
    return torch.stack(out)


def _order_statistics_cpu(flat: torch.Tensor, ranks: list[int]) -> torch.Tensor:
    """(W, P) float32 -> (W, R) the values of the given ascending ranks in each row."""
    from concurrent.futures import ThreadPoolExecutor

    array = flat.contiguous().numpy()

    def row(r: int) -> np.ndarray:
        return np.partition(array[r], ranks)[ranks]  # numpy releases the GIL here

    workers = max(1, min(torch.get_num_threads(), len(array)))
    if workers == 1:
        picked = [row(r) for r in range(len(array))]
    else:
        with ThreadPoolExecutor(workers) as pool:
            picked = list(pool.map(row, range(len(array))))
    return torch.from_numpy(np.stack(picked))


def _order_statistics_histogram(flat: torch.Tensor, ranks: list[int], bins: int) -> torch.Tensor:
    """As :func:`_order_statistics_cpu`, for GPUs: a histogram, then a sort of few pixels."""
    rows = flat.shape[0]
    wanted = torch.tensor(ranks, device=flat.device)
    low_value, high_value = torch.aminmax(flat, dim=1, keepdim=True)
    span = high_value - low_value
    scale = torch.where(span > 0, (bins - 1) / span, torch.zeros_like(span))
    # bin of each value, monotone in the value; (v − min)·(bins − 1)/span ≤ bins − 1
    which = (flat - low_value).mul_(scale).to(torch.int32)
    which.clamp_(max=bins - 1)  # guards against rounding only
    which += torch.arange(rows, device=flat.device, dtype=torch.int32)[:, None] * bins
    counts = torch.bincount(which.view(-1), minlength=rows * bins).view(rows, bins)
    ends = counts.cumsum(dim=1)  # elements in bins ≤ b
    hit = torch.searchsorted(ends, wanted.expand(rows, -1).contiguous(), right=True)  # (W, R)
    needed = torch.zeros(rows, bins, dtype=torch.bool, device=flat.device)
    needed.scatter_(1, hit, True)
    kept = counts * needed
    kept_before = kept.cumsum(dim=1) - kept  # selected elements in earlier needed bins
    before = ends - counts
    index = (kept_before.gather(1, hit) + wanted[None] - before.gather(1, hit)).long()
    chosen = needed.view(-1)[which.view(-1)].nonzero().squeeze(1)  # row-major, ascending
    per_row = kept.sum(dim=1).tolist()
    candidates = flat.view(-1)[chosen].split(per_row)
    return torch.stack(
        [part.sort().values[index[r]] for r, part in enumerate(candidates)]
    )  # (W, R) exact order statistics


def pair_counts(
    maps: torch.Tensor, thresholds: Sequence[float], modes: Sequence[str] = MODES
) -> torch.Tensor:
    """(M, W, W) float64 pixel counts |A ∩ B| of every word pair (diagonal: |A|).

    Args:
        maps: (W, H, W') or (W, P) normalised maps (any float dtype; compared as float32).
    """
    flat = maps.reshape(maps.shape[0], -1).to(torch.float32)
    cuts = _cuts(flat, thresholds, modes)  # (M, W)
    if flat.device.type == "cpu":
        return _pair_counts_bits(flat, cuts)
    return _pair_counts_matmul(flat, cuts)


def _pair_counts_matmul(flat: torch.Tensor, cuts: torch.Tensor) -> torch.Tensor:
    """GPU form of :func:`pair_counts`: 0/1 masks in chunks, one batched product per chunk.

    Args:
        flat: (W, P) float32 maps. cuts: (M, W) cut values.
    """
    m, w = cuts.shape
    pixels = flat.shape[1]
    chunk = max(1024, _CHUNK_BYTES // (4 * m * w))
    total = torch.zeros(m, w, w, dtype=torch.float64, device=flat.device)
    masks = torch.empty(m, w, min(chunk, pixels), dtype=torch.float32, device=flat.device)
    for start in range(0, pixels, chunk):
        part = flat[None, :, start : start + chunk]
        if part.shape[2] != masks.shape[2]:
            masks = masks[:, :, : part.shape[2]]
        torch.ge(part, cuts[:, :, None], out=masks)  # (M, W, C) 0/1 masks, float32 compare
        total += torch.bmm(masks, masks.transpose(1, 2)).to(torch.float64)
    return total


def _pair_counts_bits(flat: torch.Tensor, cuts: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    """CPU form of :func:`pair_counts`: bit-packed masks, AND and popcount per word pair.

    Pixels go in chunks that stay in cache: each chunk is compared with every cut and
    packed to bits at once, and chunks (then mask rows) are spread over threads — numpy
    releases the GIL in these loops.

    Args:
        flat: (W, P) float32 maps. cuts: (M, W) cut values.
        chunk: pixels per chunk (a multiple of 64).
    """
    from concurrent.futures import ThreadPoolExecutor

    m, w = cuts.shape
    pixels = flat.shape[1]
    values = flat.contiguous().numpy()
    cut_values = cuts.contiguous().numpy()  # float32: the same comparison as on the GPU
    byte_count = -(-pixels // 64) * 8  # whole 64-bit words, zero-padded
    bits = np.zeros((m, w, byte_count), dtype=np.uint8)

    def pack(start: int) -> None:
        part = values[:, start : start + chunk]
        masks = np.empty(part.shape, dtype=bool)
        first = start // 8
        for row in range(m):
            np.greater_equal(part, cut_values[row][:, None], out=masks)
            packed = np.packbits(masks, axis=-1)
            bits[row, :, first : first + packed.shape[1]] = packed

    left, right = np.triu_indices(w)
    words = bits.view(np.uint64)

    def count(row: int) -> np.ndarray:
        return np.bitwise_count(words[row][left] & words[row][right]).sum(axis=-1, dtype=np.int64)

    workers = max(1, torch.get_num_threads())
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(pack, range(0, pixels, chunk)))
        counts = list(pool.map(count, range(m)))
    total = np.zeros((m, w, w), dtype=np.float64)
    for row, row_counts in enumerate(counts):
        total[row, left, right] = row_counts
        total[row, right, left] = row_counts
    return torch.from_numpy(total)


def prompt_metrics(
    maps: torch.Tensor,
    content: int,
    style: int,
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    modes: Sequence[str] = MODES,
) -> dict[str, Any]:
    """All metrics of one prompt: one entry per (mode, threshold), mode-major.

    Args:
        maps: (W, H, W') normalised word maps (see :func:`word_heatmaps`).
        content, style: indices of the content and style word among the W words.

    Returns:
        ``{"mode": [...], "threshold": [...], column: float64 array (M,)}`` for every
        column of :data:`METRIC_COLUMNS`.
    """
    words = maps.shape[0]
    if not (0 <= content < words and 0 <= style < words) or content == style:
        raise ConfigError(f"content/style word indices {content}, {style} invalid for {words}")
    pixels = float(np.prod(maps.shape[1:]))
    inter = pair_counts(maps, thresholds, modes).cpu().numpy()  # (M, W, W)
    area = np.diagonal(inter, axis1=1, axis2=2)  # (M, W)
    union = area[:, :, None] + area[:, None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)

    left, right = np.triu_indices(words, k=1)
    cs = (min(content, style), max(content, style))
    not_cs = ~((left == cs[0]) & (right == cs[1]))
    touches = (left == content) | (left == style) | (right == content) | (right == style)
    base, base_cs = not_cs, not_cs & touches
    pair_iou = iou[:, left, right]  # (M, pairs)

    def _mean(values: np.ndarray, select: np.ndarray) -> np.ndarray:
        if not select.any():
            return np.full(values.shape[0], np.nan)
        return values[:, select].mean(axis=1)

    def _std(values: np.ndarray, select: np.ndarray) -> np.ndarray:
        if not select.any():
            return np.full(values.shape[0], np.nan)
        return values[:, select].std(axis=1, ddof=0)

    m = inter.shape[0]
    iou_cs = iou[:, content, style]
    miou_b = _mean(pair_iou, base)
    miou_bcs = _mean(pair_iou, base_cs)
    out: dict[str, Any] = {
        "mode": [mode for mode in modes for _ in thresholds],
        "threshold": [float(t) for _ in modes for t in thresholds],
        "iou_cs": iou_cs,
        "area_content": area[:, content] / pixels,
        "area_style": area[:, style] / pixels,
        "area_inter": inter[:, content, style] / pixels,
        "area_union": union[:, content, style] / pixels,
        "miou_b": miou_b,
        "miou_b_std": _std(pair_iou, base),
        "miou_b_inter": _mean(inter[:, left, right], base) / pixels,
        "miou_b_union": _mean(union[:, left, right], base) / pixels,
        "pairs_b": np.full(m, float(base.sum())),
        "miou_bcs": miou_bcs,
        "miou_bcs_std": _std(pair_iou, base_cs),
        "pairs_bcs": np.full(m, float(base_cs.sum())),
        "delta": miou_b - iou_cs,
        "delta_cs": miou_bcs - iou_cs,
    }
    return out


def loop_metrics(
    maps: np.ndarray,
    content: int,
    style: int,
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    modes: Sequence[str] = MODES,
) -> dict[str, list[float]]:
    """The original's plain per-pair loop (a quantile per map and pair): slow reference.

    Returns ``iou_cs``, ``miou_b``, ``miou_b_std``, ``miou_bcs`` per (mode, threshold),
    mode-major, for checks and the benchmark.
    """
    maps = np.asarray(maps, dtype=np.float32)

    def mask(values: np.ndarray, t: float, mode: str) -> np.ndarray:
        cut = np.float32(t) if mode == "fixed" else np.float32(np.quantile(values, t))
        return values >= cut

    def iou(a: np.ndarray, b: np.ndarray, t: float, mode: str) -> float:
        ma, mb = mask(a, t, mode), mask(b, t, mode)
        union = np.logical_or(ma, mb).sum()
        return float(np.logical_and(ma, mb).sum() / union) if union > 0 else 0.0

    out: dict[str, list[float]] = {"iou_cs": [], "miou_b": [], "miou_b_std": [], "miou_bcs": []}
    for mode in modes:
        for t in thresholds:
            base, base_cs = [], []
            for i, j in itertools.combinations(range(len(maps)), 2):
                if {i, j} == {content, style}:
                    continue
                value = iou(maps[i], maps[j], t, mode)
                base.append(value)
                if {i, j} & {content, style}:
                    base_cs.append(value)
            out["iou_cs"].append(iou(maps[content], maps[style], t, mode))
            out["miou_b"].append(float(np.mean(base)) if base else float("nan"))
            out["miou_b_std"].append(float(np.std(base)) if base else float("nan"))
            out["miou_bcs"].append(float(np.mean(base_cs)) if base_cs else float("nan"))
    return out
