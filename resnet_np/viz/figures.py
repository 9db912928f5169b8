"""Curves and bar charts: training history, gradient norms, parameter counts, masks.

matplotlib is imported inside each function, so importing this module is cheap.
"""


def _pyplot():
    import matplotlib.pyplot as plt   # falls back to the Agg backend on a machine without a display
    return plt


def _finish(fig, path):
    """Tighten the layout, save to `path` if given (PNG at 100 dpi), return the Figure."""
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def plot_history(history, path=None):
    """Loss and accuracy per epoch, train and validation, side by side.

    history : History (or its to_dict()); path : optional file to save (PNG, PDF, ...).
    Returns the matplotlib Figure.
    """
    from ..train import History
    if isinstance(history, dict):
        history = History.from_dict(history)
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = history["epoch"]
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(epochs, history[key], marker="o", label="train")
        val = history[f"val_{key}"]
        if any(v is not None for v in val):
            ax.plot(epochs, val, marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    return _finish(fig, path)


def plot_shortcut_params(params, shortcut_params, path=None, title=None):
    """Stacked bars per shortcut option: branch parameters, shortcut parameters on top.

    params, shortcut_params : dicts option -> int (or None where the option is
    impossible, e.g. "identity" across a shape change; drawn as an empty slot).
    Returns the matplotlib Figure.
    """
    plt = _pyplot()
    options = list(params)
    ok = [params[o] is not None for o in options]
    branch = [params[o] - shortcut_params[o] if k else 0 for o, k in zip(options, ok)]
    short = [shortcut_params[o] if k else 0 for o, k in zip(options, ok)]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.bar(options, branch, color="tab:blue", label="branch (convs, BN, stem, fc)")
    ax.bar(options, short, bottom=branch, color="tab:orange", label="shortcuts")
    top = max(params[o] for o, k in zip(options, ok) if k)
    for i, (o, k) in enumerate(zip(options, ok)):
        text = f"{params[o]:,}\n(+{shortcut_params[o]:,})" if k else "impossible:\nshape change"
        ax.text(i, (params[o] if k else 0) + 0.02 * top, text, ha="center", va="bottom",
                fontsize=8)
    ax.set_ylim(0, 1.3 * top)
    ax.set_ylabel("trainable parameters")
    ax.set_title(title or "parameters by shortcut option")
    ax.legend(loc="upper left", fontsize=8)
    return _finish(fig, path)


def plot_gradient_norms(results, path=None, key="da"):
    """Depth index vs gradient norm (log scale) for several models on one axis.

    results : {"model label": gradient_norms(model, ...) output, ...}
    key : "da" (||dL/da|| at each unit's input) or "dW" (norm of its parameter grads).
    Units are plotted in order, 0 = the first (e.g. the stem); zero norms are left out
    (a log axis cannot show them). With one model or identical unit names, the x ticks
    name the units. Returns the matplotlib Figure; saves it when `path` is given.

    Example
    -------
    >>> import numpy as np, resnet_np as rn
    >>> net = rn.residual_mlp(3, 4, num_blocks=2, num_classes=2, rng=0)
    >>> x, y = np.ones((4, 3), dtype=np.float32), np.array([0, 1, 0, 1])
    >>> fig = plot_gradient_norms({"mlp": rn.gradient_norms(net, x, y, rn.SoftmaxCrossEntropy())})
    >>> fig.axes[0].get_yscale()
    'log'
    """
    import numpy as np
    from .._checks import check_choice, message
    check_choice(key, "key", "plot_gradient_norms", ("da", "dW"))
    if not isinstance(results, dict) or not results:
        raise TypeError(message("plot_gradient_norms", "a non-empty dict {label: gradient_norms(...)}",
                                type(results).__name__))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, norms in results.items():
        values = np.array([entry[key] for entry in norms.values()], dtype=float)
        values[values <= 0] = np.nan
        ax.plot(np.arange(len(values)), values, marker="o", markersize=3, label=str(label))
    names = [list(norms) for norms in results.values()]
    if all(n == names[0] for n in names) and len(names[0]) <= 40:
        ax.set_xticks(range(len(names[0])))
        ax.set_xticklabels(names[0], rotation=90, fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel("depth (unit index, input side first)")
    ax.set_ylabel("||dL/da|| at the unit's input" if key == "da" else "||dL/dW|| of the unit")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _finish(fig, path)


def plot_block_pass(block, path=None):
    """Bar charts of one block's pass: RMS of each intermediate, norm of each gradient.

    Left: sqrt(mean(v^2)) of a_l, z_l1, a_l1, ..., a_l{k} (labels in Ng's notation).
    Right (after a backward): ||.|| of da_l{k}, dz_l{k}, ..., and the split at a^[l]:
    da_l_shortcut, da_l_branch, da_l. Returns the Figure; saves it when `path` is given.

    Example
    -------
    >>> import numpy as np, resnet_np as rn
    >>> block = rn.DenseResidualBlock(3, rng=0)
    >>> out = block(np.ones((2, 3)))
    >>> len(plot_block_pass(block).axes)
    1
    """
    import numpy as np
    plt = _pyplot()
    panels = [("forward: RMS of each intermediate", block.intermediates(), "rms")]
    if getattr(block, "_backward_values", None):
        panels.append(("backward: norm of each gradient", block.gradients(), "norm"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (title, values, kind) in zip(axes[0], panels):
        labels = [f"{key}\n{block.LABELS.get(key, key).split(' =')[0]}" for key in values]
        heights = [float(np.sqrt(np.mean(np.square(v)))) if kind == "rms"
                   else float(np.linalg.norm(v)) for v in values.values()]
        colors = ["tab:orange" if "shortcut" in key else "tab:green" if "branch" in key
                  else "tab:blue" for key in values]
        ax.bar(range(len(heights)), heights, color=colors)
        ax.set_xticks(range(len(heights)))
        ax.set_xticklabels(labels, rotation=60, fontsize=7, ha="right")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(repr(block).split("\n")[0].rstrip("("), fontsize=9)
    return _finish(fig, path)


def plot_step_losses(curves, path=None, title=None, smooth=20):
    """Training loss per step for several models on one axis, with a moving average.

    curves : {"label": list of per-step losses (History.step_loss), ...}
    smooth : window of the moving average drawn over the faint raw curve (1: none).
    Returns the matplotlib Figure; saves it when `path` is given.

    Example
    -------
    >>> fig = plot_step_losses({"a": [2.3, 2.0, 1.5, 1.2], "b": [2.3, 2.2, 2.1, 2.0]}, smooth=2)
    >>> len(fig.axes[0].lines)
    4
    """
    import numpy as np
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, losses in curves.items():
        losses = np.asarray(losses, dtype=float)
        w = max(1, min(int(smooth), len(losses)))
        avg = np.convolve(losses, np.ones(w) / w, mode="valid")        # len - w + 1 points
        line, = ax.plot(np.arange(w, len(losses) + 1), avg, label=str(label))
        ax.plot(np.arange(1, len(losses) + 1), losses, color=line.get_color(), alpha=0.2, lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss" + (f" (moving average of {int(smooth)})" if smooth > 1 else ""))
    ax.set_title(title or "training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return _finish(fig, path)


def plot_segmentation(X, masks, predictions, path=None, title=None):
    """Rows of examples: the image, its true mask, then each model's predicted mask.

    X : (n, C, H, W) images in [0, 1] (C = 3 shown in colour, C = 1 in grey)
    masks : (n, H, W) integer labels; predictions : {"label": (n, H, W) labels, ...}
    Each predicted mask's title gives its pixel accuracy on that image.
    Returns the matplotlib Figure; saves it when `path` is given.

    Example
    -------
    >>> import numpy as np
    >>> M = np.zeros((2, 4, 4), dtype=int); M[:, 1:3, 1:3] = 1
    >>> fig = plot_segmentation(np.ones((2, 3, 4, 4)), M, {"model": M})
    >>> len(fig.axes)
    6
    """
    import numpy as np
    plt = _pyplot()
    n, cols = len(X), 2 + len(predictions)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.6 * n + 0.4), squeeze=False)
    for i in range(n):
        image = np.clip(np.moveaxis(np.asarray(X[i]), 0, -1), 0, 1)      # (H, W, C)
        panels = [("image", image.squeeze(-1) if image.shape[-1] == 1 else image),
                  ("true mask", masks[i])]
        panels += [(f"{label}\n{float(np.mean(pred[i] == masks[i])):.1%}", pred[i])
                   for label, pred in predictions.items()]
        for ax, (name, picture) in zip(axes[i], panels):
            ax.imshow(picture, cmap="gray", vmin=0, vmax=max(1, int(np.max(masks))),
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0 or "\n" in name:
                ax.set_title(name if i == 0 else name.split("\n")[1], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _finish(fig, path)


def plot_curve_panels(panels, path=None, title=None, ylabel="training loss", xlabel="epoch"):
    """Side-by-side panels sharing the y axis, one line per label in each.

    panels : {"panel title": {"label": list of values, one per epoch}, ...}
    Sharing the y axis lets the panels' levels be compared directly (relu vs sigmoid,
    plain vs residual). Returns the matplotlib Figure; saves it when `path` is given.

    Example
    -------
    >>> fig = plot_curve_panels({"relu": {"a": [2.3, 1.0], "b": [2.3, 1.5]},
    ...                          "sigmoid": {"a": [2.3, 2.2]}})
    >>> len(fig.axes), len(fig.axes[0].lines), fig.axes[1].get_title()
    (2, 2, 'sigmoid')
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), sharey=True,
                             squeeze=False)
    for ax, (panel, curves) in zip(axes[0], panels.items()):
        for label, values in curves.items():
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=2.5, label=str(label))
        ax.set_title(str(panel))
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


def _grouped_axes(values, margin):
    """A figure for bars grouped by category: (fig, ax, categories, x positions, bar width).

    values: {series: {category: ...}}; series i of n sits at x + (i - (n - 1) / 2) * width.
    """
    import numpy as np
    categories = list(next(iter(values.values())))
    fig, ax = _pyplot().subplots(
        figsize=(margin + 1.1 * len(categories) * max(1, len(values) / 2), 3.6))
    return fig, ax, categories, np.arange(len(categories)), 0.8 / len(values)


def plot_grouped_bars(values, path=None, title=None, ylabel=None):
    """Bars grouped by category, one colour per series, each bar labelled with its value.

    values : {"series": {"category": float, ...}, ...}; every series lists the same
    categories (the first series fixes their order). Returns the matplotlib Figure.

    Example
    -------
    >>> fig = plot_grouped_bars({"init": {"skip1": 0.9, "skip2": 0.8},
    ...                          "trained": {"skip1": 0.95, "skip2": 0.6}})
    >>> [round(float(p.get_height()), 2) for p in fig.axes[0].patches]
    [0.9, 0.8, 0.95, 0.6]
    """
    fig, ax, categories, x, width = _grouped_axes(values, margin=1.2)
    for i, (series, bars) in enumerate(values.items()):
        heights = [float(bars[c]) for c in categories]
        rects = ax.bar(x + (i - (len(values) - 1) / 2) * width, heights, width, label=str(series))
        ax.bar_label(rects, fmt="%.3f", fontsize=7)
    ax.set_xticks(x, [str(c) for c in categories])
    ax.set_ylabel(ylabel or "")
    ax.set_title(title or "")
    ax.grid(alpha=0.3, axis="y")
    if len(values) > 1:
        ax.legend(fontsize=8, loc="lower left")
    return _finish(fig, path)


def plot_error_vs_depth(depths, errors, path=None, title=None, ylabel="training error"):
    """Final error against depth, one line per model family (plain, residual).

    depths : list of ints; errors : {"plain": [one value per depth], "residual": [...]}.
    Returns the matplotlib Figure; saves it when `path` is given.

    Example
    -------
    >>> fig = plot_error_vs_depth([8, 20], {"plain": [0.1, 0.3], "residual": [0.1, 0.05]})
    >>> [[int(v) for v in line.get_xdata()] for line in fig.axes[0].lines]
    [[8, 20], [8, 20]]
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for label, values in errors.items():
        ax.plot(list(depths), values, marker="o", label=str(label))
    ax.set_xticks(list(depths))
    ax.set_xlabel("depth (weight layers)")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{ylabel} vs depth")
    ax.grid(alpha=0.3)
    ax.legend()
    return _finish(fig, path)
