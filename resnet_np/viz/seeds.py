"""Figures over several seeds: the mean with its 95 % t interval, each seed a faint mark.

The examples train every variant on K seeds (resnet_np.stats summarises them); these
figures show the spread, so that a difference inside the noise looks like one.
"""
from .figures import _finish, _grouped_axes, _pyplot
def _mean_and_interval(runs):
    """Mean over seeds (rows of `runs`) and the 95 % t interval's half-width, per column.

    runs : (K, T) array, one row per seed. The half-width is t_{0.975, K-1} s / sqrt(K)
    (resnet_np.stats); with one seed it is None.
    """
    import numpy as np

    from ..stats import t_quantile_975
    K = runs.shape[0]
    mean = runs.mean(axis=0)
    if K < 2:
        return mean, None
    return mean, t_quantile_975(K - 1) * runs.std(axis=0, ddof=1) / np.sqrt(K)


def plot_seed_curves(panels, path=None, title=None, ylabel="training loss", xlabel="epoch",
                     x=None, logy=False):
    """Curves over several seeds: each seed faint, the mean bold, its 95 % interval as a band.

    panels : {"panel title": {"label": [[seed 1 values], [seed 2 values], ...]}, ...};
        every seed of a label has the same length T
    x : the x value of each of the T points (default 1..T, e.g. epochs; or the depths)
    The band is mean -/+ t_{0.975, K-1} s / sqrt(K) at each point (Student's t over the
    K seeds; no band with one seed). Panels share the y axis.
    Returns the matplotlib Figure; saves it when `path` is given.

    Example
    -------
    >>> fig = plot_seed_curves({"relu": {"a": [[2.3, 1.0], [2.2, 1.2]]}})
    >>> len(fig.axes[0].lines), len(fig.axes[0].collections)    # 2 seeds + mean, 1 band
    (3, 1)
    """
    import numpy as np
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), sharey=True,
                             squeeze=False)
    for ax, (panel, curves) in zip(axes[0], panels.items()):
        for label, seeds in curves.items():
            runs = np.asarray(seeds, dtype=float)                   # (K, T)
            xs = np.arange(1, runs.shape[1] + 1) if x is None else np.asarray(x)
            mean, half = _mean_and_interval(runs)
            line, = ax.plot(xs, mean, marker="o", markersize=2.5,
                            label=f"{label} ({len(runs)} seed{'s' * (len(runs) > 1)})")
            for run in runs:
                ax.plot(xs, run, color=line.get_color(), alpha=0.25, lw=0.8)
            if half is not None:
                ax.fill_between(xs, mean - half, mean + half, color=line.get_color(), alpha=0.2)
        ax.set_title(str(panel))
        ax.set_xlabel(xlabel)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="mean, 95% t band; faint: each seed", title_fontsize=7)
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


def plot_seed_points(values, path=None, title=None, ylabel=None):
    """One number per seed, grouped by category: faint dots for the seeds, the mean with
    its 95 % t interval as an error bar, one colour per series.

    values : {"series": {"category": [one value per seed], ...}, ...}; every series lists
    the same categories (the first series fixes their order).
    Returns the matplotlib Figure; saves it when `path` is given.

    Example
    -------
    >>> fig = plot_seed_points({"test accuracy": {"A": [0.97, 0.98, 0.99], "B": [0.96, 0.97, 0.99]}})
    >>> [round(float(v), 4) for v in fig.axes[0].lines[0].get_ydata()]     # the means
    [0.98, 0.9733]
    """
    import numpy as np
    fig, ax, categories, x, width = _grouped_axes(values, margin=1.6)
    for i, (series, by_category) in enumerate(values.items()):
        xs = x + (i - (len(values) - 1) / 2) * width
        stats = [_mean_and_interval(np.asarray(by_category[c], dtype=float)[:, None])
                 for c in categories]
        means = [float(m[0]) for m, _ in stats]
        halves = [0.0 if h is None else float(h[0]) for _, h in stats]
        bars = ax.errorbar(xs, means, yerr=halves, fmt="o", capsize=4, label=str(series))
        for xi, c in zip(xs, categories):
            seeds = np.asarray(by_category[c], dtype=float)
            ax.scatter(np.full(len(seeds), xi + 0.08 * width), seeds, s=12, alpha=0.35,
                       color=bars.lines[0].get_color())
        for xi, m in zip(xs, means):
            ax.annotate(f"{m:.3g}", (xi, m), textcoords="offset points", xytext=(6, 0),
                        fontsize=7, va="center")
    ax.set_xticks(x, [str(c) for c in categories])
    ax.set_ylabel(ylabel or "")
    ax.set_title(title or "")
    ax.grid(alpha=0.3, axis="y")
    if len(values) > 1:
        ax.legend(fontsize=8)
    return _finish(fig, path)
