"""Step-through tables and gradient norms: every value of a forward and backward pass.

    >>> import resnet_np as rn
    >>> block = rn.DenseResidualBlock(4, skip=2, rng=0)
    >>> x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    >>> out = block(x); dx = block.backward(np.ones_like(out))
    >>> print(intermediates_table(block))       # doctest: +ELLIPSIS
    key       label                            shape       mean      std  zeros
    a_l       a^[l]                            (8, 4)  ...
    a_l2      a^[l+2] = g(z^[l+2] + shortcut)  (8, 4)  ...
"""
from collections import OrderedDict

import numpy as np

from .._checks import check_array, message
from ..blocks import ResidualBlock
from ..layers.base import dotted
from .walk import _check_layer, _recording, units


def _aligned(header, rows):
    """Text columns: three left-aligned (name, label, shape), then mean, std, zeros."""
    widths = [max([len(header[c])] + [len(r[c]) for r in rows]) for c in range(3)]
    def line(r, numbers):
        left = "  ".join(f"{r[c]:<{widths[c]}}" for c in range(3))
        return f"{left}  {numbers}"
    lines = [line(header, f"{'mean':>9} {'std':>9} {'zeros':>6}")]
    lines += [line(r, f"{r[3]:>9.4f} {r[4]:>9.4f} {r[5]:>6.1%}") for r in rows]
    return "\n".join(lines)


def _table(pairs, labels):
    """Aligned rows: key, label, shape, mean, std and fraction of exact zeros."""
    rows = []
    for key, value in pairs.items():
        st = _stats(np.asarray(value))
        rows.append((key, labels.get(key, key), str(st["shape"]), st["mean"], st["std"], st["zeros"]))
    return _aligned(("key", "label", "shape"), rows)


def intermediates_table(block):
    """One line per named intermediate of the last forward: label, shape, mean, std, zeros."""
    return _table(block.intermediates(), block.LABELS)


def gradients_table(block):
    """One line per named gradient of the last backward, output first, split at a^[l] last."""
    return _table(block.gradients(), block.LABELS)


def _stats(v):
    v = np.asarray(v)
    return {"shape": tuple(v.shape), "mean": float(v.mean()), "std": float(v.std()),
            "zeros": float(np.mean(v == 0))}



# -- step_through -------------------------------------------------------------------------
class StepThrough:
    """The forward pass of a model, layer by layer, with each block's intermediates.

    Attributes
    ----------
    rows : list of dict with keys name, kind ("layer", "container", "block" or
        "intermediate"), type, label, depth, shape, mean, std, zeros (fraction of exact 0s).
        Intermediate rows are named "<block>.<key>" (e.g. "stage1.0.z_l1"), or just the
        key for a lone block, with label in Ng's notation (e.g. "z^[l+1]").
    output : the model's output for x.
    """

    def __init__(self, rows, output):
        self.rows, self.output = rows, output

    def row(self, name):
        """The row called `name` ("stage1.0", "stage1.0.a_l2", ...)."""
        for row in self.rows:
            if row["name"] == name:
                return row
        raise KeyError(message("StepThrough.row", "one of the row names", repr(name),
                               "See [r['name'] for r in step.rows]."))

    def __str__(self):
        rows = [("  " * r["depth"] + (r["name"].rsplit(".", 1)[-1] if r["kind"] == "intermediate"
                                      else r["name"]),
                 r["label"] or r["type"], str(r["shape"]), r["mean"], r["std"], r["zeros"])
                for r in self.rows]
        return _aligned(("name", "what", "shape"), rows)

    __repr__ = __str__


def _block_rows(block, prefix, depth):
    rows = []
    for key, value in block.intermediates().items():
        rows.append(dict(name=dotted(prefix, key), kind="intermediate", type=type(value).__name__,
                         label=block.LABELS.get(key, key), depth=depth, **_stats(value)))
    return rows


def step_through(model_or_block, x):
    """Run model(x) once and tabulate every layer's output and every block's intermediates.

    Layers are listed depth first in registration order (containers such as stages
    too, indented by depth). A residual block is one row (its output a^[l+k]) followed
    by its named intermediates a_l, z_l1, a_l1, ... indented under it, instead of its
    sub-layers. Given a lone residual block, the rows are its intermediates. The forward
    pass is kept: caches stay filled, so model.backward(dout) may follow.

    Shape
    -----
    x: whatever the model takes, e.g. (N, D) or (N, C, H, W).

    Example
    -------
    >>> import resnet_np as rn
    >>> net = rn.residual_mlp(3, 4, num_blocks=1, num_classes=2, rng=0)
    >>> step = step_through(net, np.ones((5, 3), dtype=np.float32))
    >>> [r["name"] for r in step.rows][:5]
    ['stem', 'stem_act', 'blocks', 'blocks.0', 'blocks.0.a_l']
    >>> step.row("blocks.0.z_l1")["label"], step.row("head")["shape"]
    ('z^[l+1]', (5, 2))
    """
    model = _check_layer(model_or_block, "step_through")
    check_array(x, "step_through")
    if isinstance(model, ResidualBlock):
        output = model.forward(x)
        return StepThrough(_block_rows(model, "", 0), output)
    shown, inside = [], set()
    for name, layer in model.named_layers():
        if any(name.startswith(b + ".") for b in inside):
            continue
        if isinstance(layer, ResidualBlock):
            inside.add(name)
        shown.append((name or type(model).__name__, layer))
    with _recording(shown, "forward") as record:
        output = model.forward(x)
    rows = []
    for name, layer in shown:
        if name not in record or (layer is model and model.children()):
            continue
        depth = name.count(".")
        kind = ("block" if isinstance(layer, ResidualBlock) else
                "container" if layer.children() else "layer")
        rows.append(dict(name=name, kind=kind, type=type(layer).__name__, label="", depth=depth,
                         **_stats(record[name][1])))
        if kind == "block":
            rows += _block_rows(layer, name, depth + 1)
    return StepThrough(rows, output)


# -- gradient_norms -----------------------------------------------------------------------
def gradient_norms(model, x, y, loss):
    """||dL/da|| at the input of each unit and ||dL/dW|| of its parameters, in forward order.

    Runs logits = model(x), L = loss.forward(logits, y), loss.backward() and
    model.backward(dlogits), in the model's current mode (training mode: BatchNorm
    uses batch statistics). The units are those of `units(model)`: every residual
    block (e.g. "stage1.0"), and every other top-level sub-layer (e.g. "stem", "pool",
    "fc"; for residual_mlp "stem", "stem_act", "head"). For each:

        da = ||dL/da||_F, a the unit's input (for a block, its da_l; for the first unit,
             dL/dx)
        dW = sqrt(sum of squared gradients of every parameter inside the unit)
             (0.0 for a unit without parameters)

    Returns an OrderedDict name -> {"da": float, "dW": float}; plot several with
    viz.plot_gradient_norms. Parameter grads are left set, as after any backward.

    Example
    -------
    >>> import resnet_np as rn
    >>> net = rn.residual_mlp(3, 4, num_blocks=2, num_classes=2, rng=0)
    >>> x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    >>> norms = gradient_norms(net, x, np.array([0, 1, 0, 1, 0, 1]), rn.SoftmaxCrossEntropy())
    >>> list(norms)
    ['stem', 'stem_act', 'blocks.0', 'blocks.1', 'head']
    >>> sorted(norms["blocks.0"]), norms["stem_act"]["dW"]
    (['dW', 'da'], 0.0)
    """
    where = "gradient_norms"
    model = _check_layer(model, where)
    check_array(x, where)
    if not (callable(getattr(loss, "forward", None)) and callable(getattr(loss, "backward", None))):
        raise TypeError(message(where, "a loss with forward(logits, y) and backward()",
                                type(loss).__name__, "Pass e.g. SoftmaxCrossEntropy()."))
    parts = units(model)
    with _recording(parts, "backward") as record:
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
    norms = OrderedDict()
    for name, layer in parts:
        if name in record:
            dW = sum(float(np.sum(np.square(g, dtype=np.float64))) for _, g in layer.named_grads())
            da = float(np.linalg.norm(np.asarray(record[name][1], dtype=np.float64)))
            norms[name] = {"da": da, "dW": float(np.sqrt(dW))}
    return norms

