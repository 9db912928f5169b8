"""Figures with matplotlib, imported only when a figure is asked for.

The rest of the library never imports matplotlib, so `import resnet_np` stays fast
and works where matplotlib cannot open a window.
"""


def _pyplot():
    import matplotlib.pyplot as plt   # falls back to the Agg backend on a machine without a display
    return plt


def plot_history(history, path=None):
    """Loss and accuracy per epoch, train and validation, side by side.

    history : History (or its to_dict()); path : optional file to save (PNG, PDF, ...).
    Returns the matplotlib Figure.
    """
    from .train import History
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
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


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
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def plot_accuracy_curves(curves, path=None, title=None, ylabel="test accuracy"):
    """One line per label: curves is a dict label -> list of values, one per epoch.

    Returns the matplotlib Figure.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title or ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
