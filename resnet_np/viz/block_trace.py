"""The block-trace figure: one residual block drawn as its diagram, with every value on it.

    a^[l] -> z^[l+1] -> a^[l+1] -> z^[l+2] -> (+) -> a^[l+2]      forward, black
       \\______________ shortcut(a^[l]) ______/                    the arc (absent: plain twin)
    <- ||dz^[l+1]|| <- ||da^[l+1]|| <- ...                         backward, red

Each named intermediate is a small histogram of its values with its mean, standard
deviation and fraction of exact zeros. Each backward edge carries the norm of the
gradient that arrives at the node it points to; at a^[l] the gradient splits into the
part that came along the shortcut and the part that came through the branch, drawn as
two arrows whose widths are proportional to their norms.
"""
import re

import numpy as np

FORWARD, BACKWARD, SUM = "black", "tab:red", "+"
ROW, NODE_H, ARC = 0.40, 0.22, 0.77          # figure fractions: node row, node height, arc row
BACK_Y = 0.17                                # the backward arrows run along this line


def node_stats(values):
    """mean, std and fraction of exact zeros of an array: the numbers under each node."""
    v = np.asarray(values)
    return {"mean": float(v.mean()), "std": float(v.std()), "zeros": float(np.mean(v == 0))}


def mathtext(label):
    """'a^[l+1] = g(z^[l+1])' -> '$a^{[l+1]}$': the part before ' =', typeset by matplotlib."""
    head = label.split(" =")[0]
    return "$" + re.sub(r"\^\[([^\]]+)\]", r"^{[\1]}", head).replace(" ", r"\ ") + "$"


def _slots(values):
    """Forward order of what the diagram shows on its main row: nodes, then (+), then output."""
    chain = [key for key in values if key != "shortcut"]
    return chain[:-1] + ([SUM] if "shortcut" in values else []) + chain[-1:]


def _arrow(ax, start, end, color, width=1.2, rad=0.0, gid=None):
    from matplotlib.patches import FancyArrowPatch
    patch = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10 + 2 * width,
                            connectionstyle=f"arc3,rad={rad}", color=color, linewidth=width,
                            shrinkA=0, shrinkB=0)
    patch.set_gid(gid)
    ax.add_patch(patch)
    return patch


def _norm_label(ax, xy, key, norm, color=BACKWARD):
    """The printed norm of gradient `key`, findable by its gid 'grad:<key>'."""
    text = ax.text(*xy, f"||{key}|| = {norm:.3g}", ha="center", va="top", fontsize=7,
                   color=color, zorder=5,        # on a white patch, readable over an arrow
                   bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1})
    text.set_gid(f"grad:{key}")
    return text


def _draw_node(fig, rect, key, value, label):
    """One intermediate: histogram of its values, its label on top, its statistics below."""
    ax = fig.add_axes(rect, label=key)
    color = "tab:green" if key == "shortcut" else "tab:orange" if key.startswith("z") \
        else "tab:blue"
    ax.hist(np.asarray(value, dtype=np.float64).ravel(), bins=20, color=color)
    ax.set_title(f"{mathtext(label)}  ({key})", fontsize=8)
    st = node_stats(value)
    sep = "  " if key == "shortcut" else "\n"          # the arc's node: one line, above the row
    ax.set_xlabel(sep.join([f"mean {st['mean']:.3g}", f"std {st['std']:.3g}",
                            f"zeros {st['zeros']:.0%}"]), fontsize=7)
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=6)
    return ax


def _ensure_pass(block, x):
    """Run a seeded forward and backward unless a full pass is recorded (or x is given)."""
    from ..inspect.trace import run_block
    if x is not None:
        run_block(block, x)
        return
    try:
        block.gradients()
    except RuntimeError:           # nothing recorded yet: forward and backward first
        run_block(block)


def _norm(grads, key):
    return float(np.linalg.norm(grads[key])) if key in grads else None


def plot_block_trace(block, path=None, x=None):
    """Draw a residual block as its diagram, with every named intermediate and gradient.

    One histogram axis per key of `block.intermediates()` (forward order, labels from
    `block.LABELS`), the addition as (+), the shortcut as an arc around the branch (no
    arc for the plain twin, shortcut=None), and, in red along the backward edges, the
    norm of the gradient arriving at each node. At a^[l] the two red arrows have widths
    proportional to ||da_l_shortcut|| and ||da_l_branch||.

    Parameters
    ----------
    block : DenseResidualBlock, BasicBlock, PreActBlock or Bottleneck (any shortcut)
    path : optional file name; the figure is saved there (PNG at 100 dpi)
    x : optional input batch. Given, the block runs forward on it and backward with a
        seeded upstream gradient. Not given, the last recorded pass is drawn, and a
        block that has not run a backward yet runs one seeded pass first.

    Returns
    -------
    Figure
        fig.axes[0] is the diagram's canvas, fig.axes[1:] the nodes (each labelled with
        its key); the printed gradient norms are text objects with gid "grad:<key>".

    Example
    -------
    >>> import resnet_np as rn
    >>> fig = plot_block_trace(rn.DenseResidualBlock(4, rng=0))
    >>> [ax.get_label() for ax in fig.axes[1:]]
    ['a_l', 'z_l1', 'a_l1', 'z_l2', 'shortcut', 'a_l2']
    """
    from .figures import _pyplot
    _ensure_pass(block, x)
    values, grads = block.intermediates(), block.gradients()
    slots = _slots(values)
    sw = 0.94 / len(slots)                               # margins for the upstream arrow
    centre = {key: 0.01 + (i + 0.5) * sw for i, key in enumerate(slots)}
    fig = _pyplot().figure(figsize=(2.0 * len(slots) + 0.5, 5.4))
    canvas = fig.add_axes([0, 0, 1, 1], label="canvas")
    canvas.set_xlim(0, 1)
    canvas.set_ylim(0, 1)
    canvas.set_axis_off()
    half = 0.36 * sw
    for key in values:                                   # the nodes, in forward order
        if key == "shortcut":
            cx = (centre[slots[0]] + centre[SUM]) / 2
            rect = [cx - half, ARC, 2 * half, 0.12]
        else:
            rect = [centre[key] - half, ROW, 2 * half, NODE_H]
        _draw_node(fig, rect, key, values[key], block.LABELS.get(key, key))
    _draw_forward(canvas, slots, centre, half, "shortcut" in values)
    _draw_backward(canvas, slots, centre, half, grads)
    _draw_split(canvas, slots, centre, half, grads, "shortcut" in values)
    fig.suptitle(f"{type(block).__name__}({block.extra_repr()})", fontsize=9)
    canvas.text(0.99, 0.01, "black: forward pass.  red: backward pass, the norm of the gradient "
                "arriving at each node; at a^[l] the arrow widths are proportional to the "
                "two parts of the split.", ha="right", va="bottom", fontsize=7, color="dimgrey")
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def _edge(centre, half, key, side):
    """x of the left or right edge of a slot ((+) is a small circle)."""
    width = 0.015 if key == SUM else half
    return centre[key] + (width if side == "right" else -width)


def _draw_forward(ax, slots, centre, half, residual):
    y = ROW + NODE_H / 2
    for left, right in zip(slots, slots[1:]):
        _arrow(ax, (_edge(centre, half, left, "right"), y), (_edge(centre, half, right, "left"), y),
               FORWARD)
    if residual:
        ax.plot([centre[SUM]], [y], marker="o", markersize=16, markerfacecolor="white",
                markeredgecolor=FORWARD, zorder=3)
        ax.text(centre[SUM], y, "+", ha="center", va="center", fontsize=14, zorder=4)
        sc = (centre[slots[0]] + centre[SUM]) / 2
        top = ROW + NODE_H + 0.07
        _arrow(ax, (centre[slots[0]], top), (sc - half, ARC + 0.06), FORWARD, rad=-0.3)
        _arrow(ax, (sc + half, ARC + 0.06), (centre[SUM], y + 0.03), FORWARD, rad=-0.3)


def _draw_backward(ax, slots, centre, half, grads):
    """Red arrows right to left along the branch, each with the norm it carries."""
    last = slots[-1]
    upstream = _norm(grads, "d" + last)
    _arrow(ax, (min(1.0, _edge(centre, half, last, "right") + 0.04), BACK_Y),
           (_edge(centre, half, last, "right"), BACK_Y), BACKWARD)
    if upstream is not None:
        _norm_label(ax, (centre[last], BACK_Y - 0.02), "d" + last, upstream)
    for left, right in zip(slots[1:-1], slots[2:]):
        _arrow(ax, (_edge(centre, half, right, "left"), BACK_Y),
               (_edge(centre, half, left, "right"), BACK_Y), BACKWARD)
        norm = _norm(grads, "d" + left)
        if norm is not None:
            middle = (centre[left] + centre[right]) / 2
            _norm_label(ax, (middle, BACK_Y - 0.02), "d" + left, norm)


def _draw_split(ax, slots, centre, half, grads, residual):
    """At a^[l]: the branch arrow and the shortcut arrow, widths proportional to norms."""
    first, start = slots[0], slots[1]
    branch, shortcut = _norm(grads, "da_l_branch"), _norm(grads, "da_l_shortcut")
    scale = 7.0 / max(branch, shortcut, 1e-30)
    _arrow(ax, (_edge(centre, half, start, "left"), BACK_Y),
           (_edge(centre, half, first, "right"), BACK_Y), BACKWARD, 0.5 + scale * branch,
           gid="split:branch")
    _norm_label(ax, ((centre[first] + centre[start]) / 2, BACK_Y - 0.04), "da_l_branch", branch)
    _norm_label(ax, (centre[first], BACK_Y - 0.09), "da_l", _norm(grads, "da_l"), "black")
    if not residual:
        _norm_label(ax, (centre[first], ARC), "da_l_shortcut", shortcut, "grey")
        ax.text(centre[first], ARC + 0.03, "plain twin: no shortcut", ha="center", fontsize=7,
                color="grey")
        return
    sc = (centre[first] + centre[SUM]) / 2
    y = ROW + NODE_H / 2
    _arrow(ax, (centre[SUM] + 0.01, y + 0.05), (sc + half, ARC - 0.01), BACKWARD, rad=0.3)
    _arrow(ax, (sc - half, ARC - 0.01), (centre[first] + 0.02, ROW + NODE_H + 0.06), BACKWARD,
           0.5 + scale * shortcut, rad=0.3, gid="split:shortcut")
    _norm_label(ax, ((centre[first] + sc - half) / 2, ARC - 0.02), "da_l_shortcut", shortcut)
