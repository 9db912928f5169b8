"""resnet_np.stats: t quantiles, summaries over seeds, paired differences."""
import math

import numpy as np
import pytest

from resnet_np.stats import T_975, format_summary, paired, summary, t_quantile_975


def t_cdf(t, df, n=400_001):
    """P(T <= t) for Student's t, by integrating its density (trapezoids) from -t to t."""
    x = np.linspace(0.0, t, n)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    density = np.exp(log_c - (df + 1) / 2 * np.log1p(x ** 2 / df))
    inner = float(np.sum((density[1:] + density[:-1]) / 2 * np.diff(x)))
    return 0.5 + inner


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 20, 30, 31, 40, 60, 120, 1000])
def test_t_quantile_has_97_5_percent_below_it(df):
    assert t_cdf(t_quantile_975(df), df) == pytest.approx(0.975, abs=2e-5)


def test_t_quantile_known_values_and_limits():
    assert t_quantile_975(1) == 12.7062 and t_quantile_975(4) == 2.7764
    assert len(T_975) == 30
    assert t_quantile_975(40) == pytest.approx(2.0211, abs=1e-4)
    assert t_quantile_975(120) == pytest.approx(1.9799, abs=1e-4)
    assert t_quantile_975(10 ** 6) == pytest.approx(1.95996, abs=1e-5)
    quantiles = [t_quantile_975(df) for df in range(1, 200)]
    assert all(a > b for a, b in zip(quantiles, quantiles[1:]))   # falls towards 1.96


def test_summary_by_hand():
    s = summary([1.0, 2.0, 4.0])
    assert s["n"] == 3 and s["values"] == [1.0, 2.0, 4.0]
    assert s["mean"] == pytest.approx(7 / 3)
    assert s["std"] == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2
                                                 + (4 - 7 / 3) ** 2) / 2))
    half = 4.3027 * s["std"] / math.sqrt(3)
    assert s["ci95"] == pytest.approx([7 / 3 - half, 7 / 3 + half])


def test_summary_of_one_value_has_no_spread():
    assert summary([0.5]) == {"values": [0.5], "n": 1, "mean": 0.5, "std": None, "ci95": None}
    assert paired([0.5], [0.25])["within_noise"] is None


def test_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = [summary(rng.normal(3.0, 2.0, size=3))["ci95"] for _ in range(4000)]
    coverage = np.mean([lo <= 3.0 <= hi for lo, hi in hits])
    assert 0.94 < coverage < 0.96


def test_paired_is_the_summary_of_the_differences_and_narrower():
    seed_effect = np.array([0.90, 0.95, 0.99, 0.93])       # easy and hard data draws
    a, b = seed_effect + 0.010, seed_effect + np.array([0.004, 0.006, 0.005, 0.003])
    d = paired(a, b)
    assert d["differences"] == pytest.approx((a - b).tolist())
    assert d["mean_difference"] == pytest.approx(0.0055)
    assert d["within_noise"] is False and d["ci95"][0] > 0
    width = d["ci95"][1] - d["ci95"][0]
    assert width < (summary(a)["ci95"][1] - summary(a)["ci95"][0]) / 10
    assert paired([1.0, 2.0, 3.0], [1.1, 1.9, 3.05])["within_noise"] is True


def test_format_summary():
    assert format_summary(summary([1.0, 3.0]), digits=1) == "2.0 ± 12.7"
    assert format_summary(paired([2.0, 4.0], [1.0, 3.0]), digits=1) == "1.0 ± 0.0"


@pytest.mark.parametrize("call, match", [
    (lambda: summary([]), r"summary: expected a non-empty list of finite numbers"),
    (lambda: summary([1.0, float("nan")]), r"Leave out diverged runs"),
    (lambda: paired([1.0, 2.0], [1.0]), r"paired: expected one value of b per value of a"),
    (lambda: t_quantile_975(0), r"t_quantile_975: expected an int df >= 1, got 0"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
