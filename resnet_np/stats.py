"""Seeds and intervals: the mean of a few runs, their spread and a 95 % interval.

An experiment run with one seed gives one number; run with K seeds (each changing the
initial weights, the data order and, where the data is generated, the data) it gives
K numbers x_1..x_K. We report

    mean   m = (1/K) sum x_i
    std    s = sqrt( sum (x_i - m)^2 / (K - 1) )          (sample standard deviation)
    95 % interval   m -/+ t_{0.975, K-1} * s / sqrt(K)

where t_{0.975, K-1} is the 97.5 % quantile of Student's t-distribution with K - 1
degrees of freedom (12.71 for K = 2, 4.30 for K = 3, 2.78 for K = 5; 1.96 as K grows).
The interval assumes the K values are independent draws from a normal distribution;
with K = 3 it is wide on purpose: three runs say little.

Two variants trained on the same seeds (same data, same order, same initial branch
weights) are compared *paired*: the differences d_i = a_i - b_i get the same summary.
Pairing removes what the seed does to both (an easy data draw lifts both), so the
interval of the mean difference is usually much narrower than the two intervals side
by side. If it contains 0, the difference is within the noise of these K seeds.

No SciPy: the t quantiles for 1..30 degrees of freedom are a table (the textbook
values, checked in tests/test_stats.py against a numerical integral of the density);
above 30, the Cornish-Fisher expansion around the normal quantile 1.959964 is exact to
better than 1e-4.

>>> s = summary([0.97, 0.98, 0.99])
>>> round(s["mean"], 4), round(s["std"], 4), [round(v, 4) for v in s["ci95"]]
(0.98, 0.01, [0.9552, 1.0048])
>>> d = paired([0.97, 0.98, 0.99], [0.96, 0.972, 0.981])     # same 3 seeds
>>> round(d["mean_difference"], 4), d["within_noise"]
(0.009, False)
"""
import math

import numpy as np

from ._checks import message

# 97.5 % quantiles of Student's t with 1..30 degrees of freedom (two-sided 95 %).
T_975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
Z_975 = 1.959964                                  # the normal distribution's 97.5 % quantile


def t_quantile_975(df):
    """The 97.5 % quantile of Student's t with `df` degrees of freedom.

    >>> t_quantile_975(2), round(t_quantile_975(60), 4)
    (4.3027, 2.0003)
    """
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(message("t_quantile_975", "an int df >= 1", repr(df),
                                 "An interval needs at least 2 values (df = K - 1)."))
    if df <= len(T_975):
        return T_975[df - 1]
    z = Z_975                                     # Cornish-Fisher: z + g1/df + g2/df^2 + ...
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3


def _values(values, where):
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(message(where, "a non-empty list of finite numbers (one per seed)",
                                 repr(list(values)),
                                 "Leave out diverged runs and say so, or report them apart."))
    return x


def summary(values):
    """{"values", "n", "mean", "std", "ci95"} of one number measured on several seeds.

    std is the sample standard deviation (K - 1 in the denominator); ci95 is
    [mean - h, mean + h] with h = t_{0.975, K-1} std / sqrt(K). With a single value,
    std and ci95 are None: one run has no spread to report.
    """
    x = _values(values, "summary")
    K, mean = len(x), float(x.mean())
    if K == 1:
        return {"values": x.tolist(), "n": 1, "mean": mean, "std": None, "ci95": None}
    std = float(x.std(ddof=1))
    half = t_quantile_975(K - 1) * std / math.sqrt(K)
    return {"values": x.tolist(), "n": K, "mean": mean, "std": std,
            "ci95": [mean - half, mean + half]}


def paired(a, b):
    """The mean difference a - b of two variants run on the same seeds, with its interval.

    Returns {"differences", "n", "mean_difference", "std", "ci95", "within_noise"};
    within_noise is True when the interval contains 0 (None with a single seed).
    """
    x, y = _values(a, "paired"), _values(b, "paired")
    if x.shape != y.shape:
        raise ValueError(message("paired", "one value of b per value of a (the same seeds)",
                                 f"{len(x)} and {len(y)} values"))
    d = summary(x - y)
    within = None if d["ci95"] is None else bool(d["ci95"][0] <= 0 <= d["ci95"][1])
    return {"differences": d["values"], "n": d["n"], "mean_difference": d["mean"],
            "std": d["std"], "ci95": d["ci95"], "within_noise": within}


def format_summary(s, scale=1.0, digits=2, unit=""):
    """"m ± h" for a summary or paired dict (h: the interval's half-width), e.g. for a table.

    >>> format_summary(summary([0.97, 0.98, 0.99]), scale=100, unit=" %")
    '98.00 ± 2.48 %'
    >>> format_summary(summary([0.5]))
    '0.50 (1 seed)'
    """
    mean = s["mean"] if "mean" in s else s["mean_difference"]
    if s["ci95"] is None:
        return f"{mean * scale:.{digits}f}{unit} (1 seed)"
    half = (s["ci95"][1] - s["ci95"][0]) / 2
    return f"{mean * scale:.{digits}f} ± {half * scale:.{digits}f}{unit}"
