"""Pictures of a benchmark: image grids and the content-vs-style trade-off plot.

* :func:`method_grid` — one method: its style images across the top, its content images
  down the left, each result where its row and column meet (a missing result: grey);
* :func:`pairs_grid` — the methods side by side on the same (content, style) pairs:
  one row per pair (content, style, then each method's result);
* :func:`tradeoff_plot` — per method its results' content metric (x) against their
  style metric (y), small dots per result and the mean with 95 % intervals.

Grids are JPEG bytes (``thumb`` px per cell), plots PNG bytes (matplotlib, Agg).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brushwork.experiments.stats import mean_ci

__all__ = ["method_grid", "pairs_grid", "tradeoff_plot"]

_GAP = 2
_LABEL = 14
_BLANK = (200, 200, 200)


def _thumb(path: Path | None, size: int) -> Any:
    """A ``size`` × ``size`` cell: the image fitted inside (letterboxed), or grey."""
    from PIL import Image, ImageOps

    cell = Image.new("RGB", (size, size), (255, 255, 255))
    if path is None or not Path(path).is_file():
        cell.paste(_BLANK, (0, 0, size, size))
        return cell
    try:
        with Image.open(path) as image:
            fitted = ImageOps.contain(ImageOps.exif_transpose(image).convert("RGB"), (size, size))
    except OSError:
        cell.paste(_BLANK, (0, 0, size, size))
        return cell
    cell.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    return cell


def _jpeg(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _text(draw: Any, xy: tuple[int, int], text: str, width: int) -> None:
    """``text`` cut to fit ``width`` px (PIL's default bitmap font: ≈6 px a character)."""
    limit = max(1, width // 6)
    draw.text(xy, text if len(text) <= limit else text[: limit - 1] + "…", fill=(0, 0, 0))


def method_grid(
    contents: Sequence[tuple[str, Path]],
    styles: Sequence[tuple[str, Path]],
    results: dict[tuple[str, str], Path],
    *,
    thumb: int = 96,
) -> bytes:
    """JPEG: a corner cell, the styles across, then one row per content: the content,
    then its result with each style (``results``: (content, style) -> file)."""
    from PIL import Image, ImageDraw

    step = thumb + _GAP
    width = step * (len(styles) + 1)
    height = _LABEL + step * (len(contents) + 1)
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for j, (name, path) in enumerate(styles, start=1):
        _text(draw, (j * step + 2, 1), name, thumb)
        grid.paste(_thumb(path, thumb), (j * step, _LABEL))
    for i, (name, path) in enumerate(contents, start=1):
        top = _LABEL + i * step
        grid.paste(_thumb(path, thumb), (0, top))
        for j, (style, _) in enumerate(styles, start=1):
            grid.paste(_thumb(results.get((name, style)), thumb), (j * step, top))
    _text(draw, (2, 1), "content \\ style", thumb)
    return _jpeg(grid)


def pairs_grid(
    pairs: Sequence[tuple[tuple[str, Path], tuple[str, Path]]],
    methods: Sequence[str],
    results: dict[tuple[str, str, str], Path],
    *,
    thumb: int = 128,
) -> bytes:
    """JPEG: one row per (content, style) pair: the content, the style, then each
    method's result (``results``: (method, content, style) -> file)."""
    from PIL import Image, ImageDraw

    step = thumb + _GAP
    headers = ["content", "style", *methods]
    grid = Image.new("RGB", (step * len(headers), _LABEL + step * len(pairs)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for j, header in enumerate(headers):
        _text(draw, (j * step + 2, 1), header, thumb)
    for i, ((content, content_path), (style, style_path)) in enumerate(pairs):
        top = _LABEL + i * step
        grid.paste(_thumb(content_path, thumb), (0, top))
        grid.paste(_thumb(style_path, thumb), (step, top))
        for j, method in enumerate(methods, start=2):
            grid.paste(_thumb(results.get((method, content, style)), thumb), (j * step, top))
    return _jpeg(grid)


def tradeoff_plot(
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    x_label: str,
    y_label: str,
) -> bytes:
    """PNG: per (label, x values, y values) a cloud of results and its mean with 95 %
    t-intervals on both axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4.5))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, xs, ys) in enumerate(series):
        colour = cycle[k % len(cycle)]
        pairs = [
            (x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(x) and math.isfinite(y)
        ]
        if not pairs:
            continue
        px, py = zip(*pairs, strict=True)
        axis.scatter(px, py, s=8, alpha=0.25, color=colour)
        mx, lx, hx = mean_ci(px)
        my, ly, hy = mean_ci(py)
        xerr = [[mx - lx], [hx - mx]] if math.isfinite(lx) else None
        yerr = [[my - ly], [hy - my]] if math.isfinite(ly) else None
        axis.errorbar([mx], [my], xerr=xerr, yerr=yerr, marker="o", markersize=7, capsize=3,
                      color=colour, label=label)  # fmt: skip
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.set_title("content vs style: each method's results and mean (95% CI)")
    if series:
        axis.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
