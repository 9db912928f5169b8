"""Linear paths: does a^[l] reach the output unchanged, and how affine is a block?

identity_path_report reads the structure of a model (no forward pass);
linearity_probe measures one block on a batch.
"""
import numpy as np

from .._checks import check_array, message
from ..blocks import ResidualBlock
from ..layers.activations import Identity, LeakyReLU, ReLU
from ..layers.batchnorm import BatchNorm1d, BatchNorm2d
from ..layers.conv import Conv2d
from ..layers.dense import Dense
from ..layers.pooling import AvgPool2d, GlobalAvgPool2d
from ..layers.reshape import Concat, Flatten, Upsample2d
from ..shortcuts import ZeroPadShortcut
from .walk import _check_layer, _recording, units

# Layers whose output is an affine function of their input, example by example
# (BatchNorm with fixed statistics, as in eval mode). Everything else counts as nonlinear.
AFFINE = (Dense, Conv2d, BatchNorm1d, BatchNorm2d, Identity, Flatten, AvgPool2d,
          GlobalAvgPool2d, ZeroPadShortcut, Upsample2d, Concat)
PIECEWISE = (ReLU, LeakyReLU)      # units with an on/off pattern for linearity_probe


# -- identity_path_report -------------------------------------------------------------------
def _nonlinear(layer):
    """Types of the leaf layers inside `layer` that are not affine (in path order)."""
    return [type(sub).__name__ for _, sub in layer.named_layers()
            if not sub.children() and not isinstance(sub, AFFINE)]


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
    check_array(x, where)
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
