"""Look inside a network: step-through tables, gradient norms, the identity-path audit.

    step_through(model, x)          every layer's output and every block's a^[l], z^[l+1], ...
    gradient_norms(model, x, y, L)  ||dL/da|| at the input of each block, and ||dL/dW||
    identity_path_report(model)     does a^[l] reach the next block unchanged? any linear path?
    linearity_probe(block, x)       R^2 of the best affine fit of a block, frozen ReLU units

The tools read a model through the Layer interface only: they temporarily wrap the
`forward` / `backward` of its sub-layers (an instance attribute, removed afterwards)
to record what each one received and returned. Nothing in the model changes.

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
from contextlib import contextmanager

import numpy as np

from ._checks import message
from .blocks import ResidualBlock
from .layers.activations import Identity, LeakyReLU, ReLU
from .layers.base import Layer
from .layers.batchnorm import BatchNorm1d, BatchNorm2d
from .layers.conv import Conv2d
from .layers.dense import Dense
from .layers.pooling import AvgPool2d, GlobalAvgPool2d
from .layers.reshape import Flatten, Upsample2d
from .shortcuts import ZeroPadShortcut

# Layers whose output is an affine function of their input, example by example
# (BatchNorm with fixed statistics, as in eval mode). Everything else counts as nonlinear.
AFFINE = (Dense, Conv2d, BatchNorm1d, BatchNorm2d, Identity, Flatten, AvgPool2d,
          GlobalAvgPool2d, ZeroPadShortcut, Upsample2d)
AFFINE_NAMES = ("Concat",)
PIECEWISE = (ReLU, LeakyReLU)      # units with an on/off pattern for linearity_probe


def _table(pairs, labels):
    """Aligned rows: key, label, shape, mean, std and fraction of exact zeros."""
    rows = [(key, labels.get(key, key), str(np.shape(v)), np.asarray(v)) for key, v in pairs.items()]
    wk = max([3] + [len(r[0]) for r in rows])
    wl = max([5] + [len(r[1]) for r in rows])
    ws = max([5] + [len(r[2]) for r in rows])
    lines = [f"{'key':<{wk}}  {'label':<{wl}}  {'shape':<{ws}}  {'mean':>8} {'std':>8} {'zeros':>6}"]
    for key, label, shape, v in rows:
        lines.append(f"{key:<{wk}}  {label:<{wl}}  {shape:<{ws}}  {float(v.mean()):>8.4f} "
                     f"{float(v.std()):>8.4f} {float(np.mean(v == 0)):>6.1%}")
    return "\n".join(lines)


def intermediates_table(block):
    """One line per named intermediate of the last forward: label, shape, mean, std, zeros."""
    return _table(block.intermediates(), block.LABELS)


def gradients_table(block):
    """One line per named gradient of the last backward, output first, split at a^[l] last."""
    return _table(block.gradients(), block.LABELS)


# -- shared helpers ---------------------------------------------------------------------
def _check_layer(model, where):
    if not isinstance(model, Layer):
        raise TypeError(message(where, "a Layer (a model, block or layer)", type(model).__name__,
                                "Pass the network itself, e.g. resnet_cifar(20)."))
    return model


def _check_x(x, where):
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        got = f"dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(message(where, "x to be a floating-point NumPy array", got,
                                "Convert it with np.asarray(x, dtype=np.float32)."))
    return x


@contextmanager
def _recording(layers, method):
    """Wrap `method` of each (name, layer) so that record[name] = (input, output)."""
    record, saved = OrderedDict(), []
    for name, layer in layers:
        original = getattr(layer, method)

        def hooked(value, _original=original, _name=name):
            result = _original(value)
            record[_name] = (value, result)
            return result
        saved.append((layer, layer.__dict__.get(method)))
        object.__setattr__(layer, method, hooked)
    try:
        yield record
    finally:
        for layer, previous in saved:
            if previous is None:
                object.__delattr__(layer, method)
            else:
                object.__setattr__(layer, method, previous)


def _stats(v):
    v = np.asarray(v)
    return {"shape": tuple(v.shape), "mean": float(v.mean()), "std": float(v.std()),
            "zeros": float(np.mean(v == 0))}


def _contains_block(layer):
    return any(isinstance(sub, ResidualBlock) for _, sub in layer.named_layers())


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def units(model):
    """(name, layer) of the units gradient_norms and identity_path_report look at.

    A unit is a residual block, or a sub-layer holding no residual block. The model
    itself and any container that holds residual blocks are opened, so resnet_cifar
    gives stem, stage1.0, ..., stage3.{n-1}, (final,) pool, fc and residual_mlp gives
    stem, stem_act, blocks.0, ..., head. A lone block or layer is one unit.

    >>> import resnet_np as rn
    >>> [name for name, _ in units(rn.residual_mlp(3, 4, 2, 2, rng=0))]
    ['stem', 'stem_act', 'blocks.0', 'blocks.1', 'head']
    """
    if isinstance(model, ResidualBlock) or not model.children():
        return [(type(model).__name__, model)]

    def walk(layer, prefix):
        for name, child in layer.children():
            path = _join(prefix, name)
            if not isinstance(child, ResidualBlock) and _contains_block(child):
                yield from walk(child, path)
            else:
                yield path, child
    return list(walk(model, ""))


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
        cells = [("  " * r["depth"] + (r["name"].rsplit(".", 1)[-1] if r["kind"] == "intermediate"
                                       else r["name"]),
                  r["label"] or r["type"], str(r["shape"]), r) for r in self.rows]
        wn = max([4] + [len(c[0]) for c in cells])
        wt = max([4] + [len(c[1]) for c in cells])
        ws = max([5] + [len(c[2]) for c in cells])
        lines = [f"{'name':<{wn}}  {'what':<{wt}}  {'shape':<{ws}}  {'mean':>9} {'std':>9} {'zeros':>6}"]
        for name, what, shape, r in cells:
            lines.append(f"{name:<{wn}}  {what:<{wt}}  {shape:<{ws}}  {r['mean']:>9.4f} "
                         f"{r['std']:>9.4f} {r['zeros']:>6.1%}")
        return "\n".join(lines)

    __repr__ = __str__


def _block_rows(block, prefix, depth):
    rows = []
    for key, value in block.intermediates().items():
        rows.append(dict(name=_join(prefix, key), kind="intermediate", type=type(value).__name__,
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
    _check_x(x, "step_through")
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
    _check_x(x, where)
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


# -- identity_path_report -------------------------------------------------------------------
def _nonlinear(layer):
    """Types of the leaf layers inside `layer` that are not affine (in path order)."""
    return [type(sub).__name__ for _, sub in layer.named_layers()
            if not sub.children() and not isinstance(sub, AFFINE)
            and type(sub).__name__ not in AFFINE_NAMES]


def _after_add(block):
    """The layers applied after the addition: g for post-activation, nothing for pre."""
    return block.act(block.skip) if block.variant == "post" else []


def _block_verdict(block):
    """(verdict, note, has_linear_path) for one residual block."""
    k, s = block.skip, block.shortcut
    g_after = [type(layer).__name__ for layer in _after_add(block) if _nonlinear(layer)]
    branch_linear = not any(_nonlinear(layer) for i in range(1, k + 1)
                            for layer in block.weight(i) + block.act(i) if layer not in
                            _after_add(block))
    fed_h = block.variant == "pre" and block.shortcut_from_h and s is not None
    then_g = f", then g = {'-'.join(g_after)} after the addition" if g_after else ""
    source = "g(BN(a^[l])) (not a^[l])" if fed_h else "a^[l]"
    if s is None:
        verdict, note, short_linear = "no shortcut", "plain twin: only the branch" + then_g, False
    elif isinstance(s, Identity):
        verdict = "through g" if g_after else "identity"
        note = (f"a^[l+{k}] = g(z^[l+{k}] + a^[l])" if g_after
                else f"a^[l+{k}] = a^[l] + F(a^[l]): a^[l] passes unchanged")
        short_linear = True
    elif isinstance(s, ZeroPadShortcut):
        verdict, short_linear = "changed by zero-pad", not fed_h
        note = f"subsample and zero channels of {source}" + then_g
    else:
        verdict, short_linear = "changed by projection", not (fed_h or _nonlinear(s))
        note = f"W_s {source} ({type(s).__name__})" + then_g
    return verdict, note, not g_after and (short_linear or branch_linear)


class IdentityPathReport:
    """Per residual block, what happens to a^[l] on its way out; then the global verdict.

    Attributes
    ----------
    blocks : list of dict with keys name, type, variant, shortcut, verdict, note. verdict is
        one of "identity", "through g", "changed by projection", "changed by zero-pad",
        "no shortcut".
    linear_path : bool, whether some input-to-output path is purely linear (affine).
    reasons : list of str, why (or why not).
    """

    def __init__(self, blocks, linear_path, reasons, spans):
        self.blocks, self.linear_path, self.reasons, self.spans = blocks, linear_path, reasons, spans

    def __str__(self):
        cols = ("name", "type", "variant", "shortcut", "verdict", "note")
        widths = [max([len(c)] + [len(str(b[c])) for b in self.blocks]) for c in cols]
        lines = ["  ".join(f"{c:<{w}}" for c, w in zip(cols, widths)).rstrip()]
        lines += ["  ".join(f"{str(b[c]):<{w}}" for c, w in zip(cols, widths)).rstrip()
                  for b in self.blocks]
        if self.spans:
            lines.append("a^[l] passes unchanged (x_L = x_l + sum of F) through: " +
                         ", ".join(f"{a} .. {b}" if a != b else a for a, b in self.spans))
        head = ("A purely linear input-to-output path exists:" if self.linear_path else
                "No input-to-output path is purely linear:")
        return "\n".join(lines + [head] + [f"  - {r}" for r in self.reasons])

    __repr__ = __str__


def _identity_spans(blocks):
    """Runs of consecutive blocks whose verdict is "identity", as (first, last) names."""
    spans, run = [], []
    for b in blocks + [None]:
        if b is not None and b["verdict"] == "identity":
            run.append(b["name"])
            continue
        if run:
            spans.append((run[0], run[-1]))
        run = []
    return spans


def _reasons(parts, blocks, linear):
    """Why the unit chain has (or lacks) a linear path, grouped by cause."""
    by = {b["name"]: b for b in blocks}
    reasons = []
    for i, (name, layer) in enumerate(parts):
        if name not in by and not linear[name]:
            chain = " -> ".join(type(sub).__name__ for _, sub in layer.named_layers()
                                if not sub.children())
            after = f" before {parts[i + 1][0]}" if i + 1 < len(parts) else ""
            reasons.append(f"{name} ({chain}) applies {', '.join(dict.fromkeys(_nonlinear(layer)))}"
                           f"{after}")
    groups = (("post-activation blocks apply g after each addition",
               lambda b: b["variant"] == "post" and not linear[b["name"]] and b["shortcut"] != "none"),
              ("stage boundaries project or zero-pad g(BN(a^[l])), not a^[l]",
               lambda b: "g(BN(a^[l]))" in b["note"]),
              ("no shortcut (plain blocks): every path runs through the branch's nonlinearities",
               lambda b: b["verdict"] == "no shortcut" and not linear[b["name"]]))
    for text, keep in groups:
        names = [b["name"] for b in blocks if keep(b)]
        if names:
            reasons.append(f"{text}: {', '.join(names)}")
    last_name, last = parts[-1]
    if not all(linear.values()) and last_name not in by and linear[last_name]:
        reasons.append(f"the classifier {last_name} is affine (linear), but what feeds it is not")
    return reasons


def identity_path_report(model):
    """Per block: does a^[l] reach the next block unchanged? And is any path linear?

    Verdicts per residual block (dotted name):
      "identity"               pre-activation with identity shortcut: out = a^[l] + F(a^[l])
      "through g"              post-activation: out = g(F(a^[l]) + a^[l])
      "changed by projection"  W_s at a shape change (1x1 conv + BN, or Dense); for a
                               pre-activation block the note says it is fed g(BN(a^[l]))
      "changed by zero-pad"    subsample + zero channels (He et al. option A), same note
      "no shortcut"            the plain twin
    The global verdict walks `units(model)` in order: a linear path exists only if every
    unit has one (a block through its shortcut or an affine branch, with nothing
    nonlinear after the addition; any other unit only if all its layers are affine:
    Dense, Conv2d, BatchNorm with fixed statistics, pooling by averaging, Flatten, ...).
    Models that do not run their units in sequence (a U-Net) are judged the same way.

    Example
    -------
    >>> import resnet_np as rn
    >>> report = identity_path_report(rn.resnet_cifar(8, variant="pre", rng=0))
    >>> [b["verdict"] for b in report.blocks]
    ['identity', 'changed by zero-pad', 'changed by zero-pad']
    >>> report.linear_path
    False
    >>> print(report.reasons[-1])
    the classifier fc is affine (linear), but what feeds it is not
    """
    model = _check_layer(model, "identity_path_report")
    blocks, linear = [], {}
    for name, layer in model.named_layers():
        if isinstance(layer, ResidualBlock):
            verdict, note, has_linear = _block_verdict(layer)
            shortcut = "none" if layer.shortcut is None else type(layer.shortcut).__name__
            blocks.append(dict(name=name or type(layer).__name__, type=type(layer).__name__,
                               variant=layer.variant, shortcut=shortcut, verdict=verdict,
                               note=note))
            linear[blocks[-1]["name"]] = has_linear
    parts = units(model)
    for name, layer in parts:
        linear.setdefault(name, not _nonlinear(layer))
    linear_path = all(linear[name] for name, _ in parts)
    reasons = _reasons(parts, blocks, linear)
    if linear_path:
        reasons = ["every unit has an affine path (identity or linear shortcuts, no g after "
                   "an addition, no nonlinear layer outside the blocks)"]
    return IdentityPathReport(blocks, linear_path, reasons, _identity_spans(blocks))


# -- linearity_probe ------------------------------------------------------------------------
def _r2(X, Y):
    """R^2 of the least-squares affine fit Y ~ [X, 1] B, pooled over every output column."""
    A = np.hstack([X, np.ones((len(X), 1))])                  # (N, D_in + 1)
    coef, *_ = np.linalg.lstsq(A, Y, rcond=None)              # (D_in + 1, D_out)
    ss_res = float(np.sum((Y - A @ coef) ** 2))
    ss_tot = float(np.sum((Y - Y.mean(axis=0)) ** 2))
    return 1.0 if ss_tot == 0 else 1.0 - ss_res / ss_tot


def linearity_probe(block, x):
    """How affine is a block on this batch? R^2 of the best affine fit and frozen ReLUs.

    r2: R^2 = 1 - SS_res / SS_tot of the least-squares fit out ~ x B + c (np.linalg.lstsq
        with a bias column), each example's input and output flattened ((C, H, W) for conv
        blocks), SS summed over every output coordinate. 1.0 means the block acts as one
        affine map on this batch (a constant output counts as 1.0).
    r2_adjusted: 1 - (1 - r2)(N - 1)/(N - D_in - 1), which removes the inflation from
        fitting D_in + 1 coefficients per output to N examples.
    frozen_fraction: over the units = every output element of every ReLU / LeakyReLU
        inside the block (for post-activation blocks, including the g after the
        addition), the fraction whose on/off pattern (input > 0) is the same for every
        example. A block whose units are all frozen is exactly affine on the batch.
        None when the block has no such unit (sigmoid, tanh, identity: smooth, no pattern).
    always_on, always_off: the frozen units split by state (None likewise).
    Also "batch" (N), "in_dim" (D_in), "units" (number of ReLU units).

    The block runs forward once in its current mode (BatchNorm in training mode uses
    the batch statistics; call block.eval() for a fixed function). N must be at least
    D_in + 2; several times D_in gives a meaningful R^2.

    Example
    -------
    >>> import resnet_np as rn
    >>> x = np.random.default_rng(0).standard_normal((64, 4))
    >>> probe = linearity_probe(rn.DenseResidualBlock(4, skip=1, activation="identity", rng=0), x)
    >>> round(probe["r2"], 6), probe["frozen_fraction"]
    (1.0, None)
    >>> probe = linearity_probe(rn.DenseResidualBlock(4, skip=2, rng=0), x)
    >>> bool(probe["r2"] < 1), 0 <= probe["frozen_fraction"] <= 1
    (True, True)
    """
    where = "linearity_probe"
    block = _check_layer(block, where)
    _check_x(x, where)
    N, D_in = x.shape[0], int(np.prod(x.shape[1:]))
    if N < D_in + 2:
        raise ValueError(message(where, f"a batch of at least {D_in + 2} examples (input "
                                 f"dimension {D_in} + 2)", f"{N} examples",
                                 "An affine fit has D_in + 1 coefficients per output, so a "
                                 "smaller batch fits anything exactly; use several times D_in."))
    relus = [(name, sub) for name, sub in block.named_layers() if isinstance(sub, PIECEWISE)]
    with _recording(relus, "forward") as record:
        out = block.forward(x)
    X = x.reshape(N, -1).astype(np.float64)                  # (N, D_in)
    Y = np.asarray(out).reshape(N, -1).astype(np.float64)   # (N, D_out)
    r2 = _r2(X, Y)
    result = {"r2": r2, "r2_adjusted": 1.0 - (1.0 - r2) * (N - 1) / (N - D_in - 1),
              "frozen_fraction": None, "always_on": None, "always_off": None,
              "batch": N, "in_dim": D_in, "units": 0}
    if record:
        on = np.concatenate([(z > 0).reshape(N, -1) for z, _ in record.values()], axis=1)
        all_on, all_off = on.all(axis=0), (~on).all(axis=0)   # (units,)
        result.update(frozen_fraction=float(np.mean(all_on | all_off)),
                      always_on=float(np.mean(all_on)), always_off=float(np.mean(all_off)),
                      units=int(on.shape[1]))
    return result
