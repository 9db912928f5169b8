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
