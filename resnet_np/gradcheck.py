"""Gradient checks: compare a hand-written backward with central differences.

For a layer f and a fixed random upstream gradient G (same shape as the output),
the scalar L(x, params) = sum(f(x) * G) has dL/dx = backward(G) and dL/dparam =
grads[param]. Central differences estimate each entry of those gradients:

    dL/dt ~ (L(t + eps) - L(t - eps)) / (2 eps)        error O(eps^2)

and the relative error of a tensor is taken over the whole tensor,

    rel_error(a, n) = max|a - n| / max(max|a|, max|n|, tiny),

so that entries near zero do not dominate. In float64 with eps = 1e-6 a correct
backward gives about 1e-9 or less; the pass threshold is 1e-7.
"""
import copy

import numpy as np

from ._checks import check_array, message

TINY = 1e-12
UPSTREAM_STREAM = 0x6772616463686B   # "gradchk": keeps the upstream gradient's stream apart


def numerical_gradient(f, x, eps=1e-6):
    """Central-difference gradient of a scalar function f() with respect to array x.

    `f` takes no arguments and reads `x`, which is perturbed in place one entry
    at a time and restored.

    Example
    -------
    >>> x = np.array([1.0, 2.0])
    >>> np.round(numerical_gradient(lambda: float(np.sum(x ** 2)), x), 6)
    array([2., 4.])
    """
    check_array(x, "numerical_gradient")                   # x is perturbed in place by eps
    grad = np.zeros_like(x, dtype=np.float64)
    if not x.flags.c_contiguous:
        raise ValueError(message("numerical_gradient", "a C-contiguous array x",
                                 "a non-contiguous view", "Pass np.ascontiguousarray(x)."))
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)   # views of x and grad
    for i in range(flat_x.size):
        old = flat_x[i]
        flat_x[i] = old + eps
        plus = f()
        flat_x[i] = old - eps
        minus = f()
        flat_x[i] = old
        flat_grad[i] = (plus - minus) / (2 * eps)
    return grad


def rel_error(a, b):
    """max|a - b| / max(max|a|, max|b|, tiny): one number for a whole tensor.

    >>> rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.2]))
    0.090909...
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(message("rel_error", "two arrays of the same shape",
                                 f"{a.shape} and {b.shape}",
                                 "A gradient has the shape of what it differentiates."))
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), TINY)
    return float(np.max(np.abs(a - b), initial=0.0) / scale)


class GradReport:
    """The result of check_gradients: one row per tensor (dx, then each parameter).

    Attributes
    ----------
    rows : list of dict with keys name, shape, analytic (max |a|), numeric (max |n|),
        rel_error, ok
    threshold : float
    passed : bool, True when every row's rel_error < threshold
    """

    def __init__(self, title, rows, threshold):
        self.title, self.rows, self.threshold = title, rows, threshold

    @property
    def passed(self):
        return all(row["ok"] for row in self.rows)

    @property
    def max_error(self):
        return max((row["rel_error"] for row in self.rows), default=0.0)

    def __getitem__(self, name):
        """The relative error of one tensor, e.g. report["W"] or report["dx"]."""
        for row in self.rows:
            if row["name"] == name:
                return row["rel_error"]
        raise KeyError(name)

    def __str__(self):
        header = f"{'tensor':<24} {'shape':<18} {'max|analytic|':>13} {'max|numeric|':>13} " \
                 f"{'rel error':>10}  ok"
        lines = [f"gradient check: {self.title} (float64, pass if rel error < {self.threshold:g})",
                 header, "-" * len(header)]
        for row in self.rows:
            lines.append(f"{row['name']:<24} {str(row['shape']):<18} {row['analytic']:>13.4e} "
                         f"{row['numeric']:>13.4e} {row['rel_error']:>10.2e}  "
                         f"{'yes' if row['ok'] else 'NO'}")
        for row in self.rows:
            if row.get("grad_shape", row["shape"]) != row["shape"]:
                lines.append(f"{row['name']}: gradient has shape {row['grad_shape']}, "
                             f"the tensor has shape {row['shape']}")
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)

    __repr__ = __str__

    def assert_ok(self):
        """Raise AssertionError carrying the table unless every tensor passed."""
        if not self.passed:
            raise AssertionError("\n" + str(self))
        return self


def _parameters(module):
    """(name, array) pairs for a library layer, or a student's object with .params."""
    if hasattr(module, "named_parameters"):
        return list(module.named_parameters()), list(module.named_grads())
    params = getattr(module, "params", {})
    return list(params.items()), [(k, module.grads[k]) for k in params]


def _to_float64(module):
    if hasattr(module, "astype"):
        return module.astype(np.float64)
    for store in ("params", "grads", "buffers"):
        d = getattr(module, store, {})
        for key in d:
            d[key] = np.asarray(d[key], dtype=np.float64)
    return module


def check_gradients(module, x, eps=1e-6, seed=0, target=None, threshold=1e-7):
    """Check dx and every parameter gradient of `module` at input x.

    Works on a float64 deep copy, so the caller's module is untouched. The module
    keeps its mode (BatchNorm in training mode is checked with batch statistics).

    Parameters
    ----------
    module : any object with forward(x) -> out, backward(dout) -> dx and a
        `params`/`grads` pair of dicts (or named_parameters()/named_grads()).
        A loss is checked by passing its labels as `target`: then
        forward(x, target) returns a scalar and backward(dout) takes a scalar.
    x : array, the input.
    eps : float, central-difference step.
    seed : int, seeds the random upstream gradient (drawn from a stream of its own,
        so it never repeats data drawn from np.random.default_rng(seed)).

    Returns
    -------
    GradReport; `print(report)` shows the table, `report.passed`, `report.assert_ok()`.

    Example
    -------
    >>> from resnet_np import Dense
    >>> x = np.random.default_rng(0).standard_normal((4, 3))
    >>> report = check_gradients(Dense(3, 2, rng=0), x)
    >>> report.passed, [row["name"] for row in report.rows]
    (True, ['dx', 'W', 'b'])
    """
    where = "check_gradients"
    if not all(callable(getattr(module, m, None)) for m in ("forward", "backward")):
        raise TypeError(message(where, "a module with forward(x) and backward(dout)",
                                type(module).__name__, "Pass a layer, block, model or loss."))
    try:
        x = np.array(x, dtype=np.float64)                 # a private contiguous copy
    except (TypeError, ValueError):
        raise TypeError(message(where, "x to be numbers (an array or nested lists)",
                                type(x).__name__, "Pass e.g. rng.standard_normal(shape).")) from None
    module = _to_float64(copy.deepcopy(module))
    run = (lambda: module.forward(x)) if target is None else \
          (lambda: module.forward(x, target))
    out = run()
    # Its own stream: with default_rng(seed) itself, x drawn by a student from
    # default_rng(0) would equal the upstream gradient, making dW = x^T x symmetric
    # and a transposed dW invisible.
    upstream = np.random.default_rng([seed, UPSTREAM_STREAM]).standard_normal(np.shape(out))

    def objective():                                      # L = sum(f(x) * upstream)
        return float(np.sum(run() * upstream))

    objective()                                           # refill the cache at x
    dx = module.backward(upstream if np.ndim(out) else float(upstream))
    named_params, named_grads = _parameters(module)
    analytic = [("dx", dx)] + [(name, np.array(g)) for name, g in named_grads]
    tensors = [x] + [p for _, p in named_params]

    rows = []
    for (name, a), tensor in zip(analytic, tensors):
        n = numerical_gradient(objective, tensor, eps)
        a = np.zeros(0) if a is None else np.asarray(a, dtype=np.float64)
        # A gradient of the wrong shape (say a transposed dW) fails; it is not broadcast.
        err = rel_error(a, n) if a.shape == tensor.shape else float("inf")
        rows.append({"name": name, "shape": tuple(tensor.shape), "grad_shape": a.shape,
                     "analytic": float(np.max(np.abs(a), initial=0)),
                     "numeric": float(np.max(np.abs(n), initial=0)),
                     "rel_error": err, "ok": bool(err < threshold)})
    return GradReport(type(module).__name__, rows, threshold)


# -- every layer type at once: python -m resnet_np gradcheck -------------------------
class _ConcatCheck:
    """Concat takes several inputs: check it as x -> concat(x[:, :1], 2 x[:, 1:])."""

    def __init__(self):
        from .layers.reshape import Concat
        self.concat, self.params, self.grads = Concat(), {}, {}

    def forward(self, x):
        return self.concat.forward(x[:, :1], 2 * x[:, 1:])

    def backward(self, dout):
        dx_first, dx_rest = self.concat.backward(dout)
        return np.concatenate([dx_first, 2 * dx_rest], axis=1)


def every_layer_cases():
    """(name, module, input shape, target) for every layer, loss and block type.

    Used by `python -m resnet_np gradcheck`; shapes are small, odd, and have stride 2 and
    overlapping pooling windows where a layer has them.
    """
    import resnet_np as rn
    r = np.random.default_rng(0)
    labels = r.integers(0, 3, size=4)
    cases = [("Dense", rn.Dense(5, 3, rng=0), (4, 5), None)]
    cases += [(a.__name__, a(), (4, 5), None)
              for a in (rn.ReLU, rn.LeakyReLU, rn.Sigmoid, rn.Tanh, rn.Identity)]
    cases += [("SoftmaxCrossEntropy", rn.SoftmaxCrossEntropy(), (4, 3), labels),
              ("MSELoss", rn.MSELoss(), (4, 3), r.standard_normal((4, 3))),
              ("Conv2d stride 2 pad 1", rn.Conv2d(2, 3, (3, 2), stride=2, padding=1, rng=0),
               (2, 2, 5, 6), None),
              ("BatchNorm1d", rn.BatchNorm1d(3), (6, 3), None),
              ("BatchNorm2d train", rn.BatchNorm2d(2), (3, 2, 3, 3), None),
              ("BatchNorm2d eval", rn.BatchNorm2d(2).eval(), (3, 2, 3, 3), None),
              ("MaxPool2d overlapping", rn.MaxPool2d(3, stride=2, padding=1), (2, 2, 5, 5), None),
              ("AvgPool2d", rn.AvgPool2d(2), (2, 2, 4, 4), None),
              ("GlobalAvgPool2d", rn.GlobalAvgPool2d(), (2, 3, 3, 3), None),
              ("Flatten", rn.Flatten(), (2, 2, 3, 3), None),
              ("Upsample2d", rn.Upsample2d(2), (2, 2, 3, 3), None),
              ("Concat", _ConcatCheck(), (2, 3, 2, 2), None)]
    cases += [(f"DenseResidualBlock skip={k}", rn.DenseResidualBlock(4, skip=k, rng=0), (5, 4), None)
              for k in (1, 2, 3)]
    cases += [(f"BasicBlock shortcut={sc}", rn.BasicBlock(2, 4, stride=2, shortcut=sc, rng=0),
               (2, 2, 5, 5), None) for sc in ("A", "B", "C", None)]
    cases += [("PreActBlock", rn.PreActBlock(2, 4, stride=2, rng=0), (2, 2, 5, 5), None),
              ("Bottleneck post", rn.Bottleneck(2, 2, 4, stride=2, rng=0), (2, 2, 5, 5), None),
              ("Bottleneck pre", rn.Bottleneck(2, 2, 4, stride=2, variant="pre", rng=0),
               (2, 2, 5, 5), None),
              ("resnet_cifar(8, width=2)", rn.resnet_cifar(8, num_classes=3, width=2, rng=0),
               (2, 3, 8, 8), None),
              ("unet_tiny(levels=1, width=2)", rn.unet_tiny(1, 2, width=2, levels=1, rng=0),
               (2, 1, 4, 4), None)]
    return cases


def check_every_layer(verbose=False):
    """Print one line per case of every_layer_cases() (and the full table of a failure);
    return the number of failures."""
    rng = np.random.default_rng(1)
    failed = 0
    print(f"{'module':<30} {'tensors':>7} {'max rel error':>14}  result")
    for name, module, shape, target in every_layer_cases():
        report = check_gradients(module, rng.standard_normal(shape), target=target)
        failed += not report.passed
        print(f"{name:<30} {len(report.rows):>7} {report.max_error:>14.2e}  "
              f"{'ok' if report.passed else 'FAILED'}")
        if verbose or not report.passed:
            print(report, end="\n\n")
    print("all passed (threshold 1e-7, float64)" if not failed else f"{failed} FAILED")
    return failed
