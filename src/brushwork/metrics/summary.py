"""Summaries of per-item scores: mean, standard deviation, 95 % confidence interval,
and paired tests between two result sets scored on the same items.

Example::

    stats = summarize([0.71, 0.64, 0.69])      # Summary(n=3, mean=..., ci95=(lo, hi))
    test = paired_comparison(scores_a, scores_b)
    test.t_pvalue, test.wilcoxon_pvalue
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from brushwork.errors import ConfigError

__all__ = ["PairedComparison", "Summary", "paired_comparison", "summarize"]


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof=1) and Student-t 95 % CI of the mean.

    ``std`` and the interval are NaN for fewer than two values.
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict for CSV/JSON output."""
        return {
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "ci95_low": self.ci_low,
            "ci95_high": self.ci_high,
        }


def summarize(values: Sequence[float], *, confidence: float = 0.95) -> Summary:
    """Summary of finite ``values`` (NaNs, e.g. from skipped items, are left out)."""
    data = np.asarray([v for v in values if v is not None], dtype=np.float64)
    data = data[np.isfinite(data)]
    n = int(data.size)
    if n == 0:
        nan = math.nan
        return Summary(0, nan, nan, nan, nan)
    mean = float(data.mean())
    if n < 2:
        return Summary(n, mean, math.nan, math.nan, math.nan)
    from scipy import stats

    std = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class PairedComparison:
    """A vs B on the same items: difference B − A and two paired tests.

    ``t_pvalue`` is the two-sided paired t-test, ``wilcoxon_pvalue`` the two-sided
    Wilcoxon signed-rank test (NaN when all differences are zero or n < 2).
    """

    n: int
    mean_a: float
    mean_b: float
    difference: Summary
    t_statistic: float
    t_pvalue: float
    wilcoxon_pvalue: float


def paired_comparison(a: Sequence[float], b: Sequence[float]) -> PairedComparison:
    """Compare paired scores ``a[i]`` and ``b[i]`` (pairs with a NaN are dropped).

    Raises:
        ConfigError: the sequences have different lengths.
    """
    if len(a) != len(b):
        raise ConfigError(f"paired comparison needs equal lengths, got {len(a)} and {len(b)}")
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    diff = y - x
    n = int(diff.size)
    t_stat = t_p = w_p = math.nan
    if n >= 2:
        from scipy import stats

        if np.any(diff != diff[0]):
            result = stats.ttest_rel(y, x)
            t_stat, t_p = float(result.statistic), float(result.pvalue)
        if np.any(diff != 0):
            w_p = float(stats.wilcoxon(y, x).pvalue)
    return PairedComparison(
        n=n,
        mean_a=float(x.mean()) if n else math.nan,
        mean_b=float(y.mean()) if n else math.nan,
        difference=summarize(diff.tolist()),
        t_statistic=t_stat,
        t_pvalue=t_p,
        wilcoxon_pvalue=w_p,
    )
