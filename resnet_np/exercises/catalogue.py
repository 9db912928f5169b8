"""The exercises: what a student writes, how the checker builds it, its cases and known bugs.

Each exercise is a small class. The checker (checker.py) asks it for

    reference(case)              the right answer: a library layer, or a function
    construct(impl, case)        the student's object, built as the issue's table says
    seeded_params(ref, rng)      float64 values the checker writes into params[...]
    inputs(case, rng, params)    a dict of float64 inputs (drawn away from kinks and ties)
    clues(case, inputs, params, dout)
                                 per tensor: "known" wrong variants (code, message, array),
                                 "terms" of the right gradient, "coverage" of windows
    factors(case)                names for SCALE factors, e.g. {"N": 5}

`public` and `hidden` list the cases; the first public case is the one the
interface, forward and backward stages use, the others are the robustness stage.
"""
import numpy as np

from .._checks import message
from ..layers import BatchNorm1d, Dense, ReLU
from ..losses import SoftmaxCrossEntropy
from . import reference


def away_from_zero(rng, shape, low=0.2, high=1.5):
    """Random numbers with |x| in [low, high]: no input sits near a ReLU kink."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


class Exercise:
    """Defaults shared by the exercises; see the module docstring."""

    name = symbol = summary = ""
    kind = "layer"              # "layer", "loss" or "function"
    dx_name = "dx"
    public = hidden = ()
    hints = {}

    def seeded_params(self, ref, rng):
        return {k: 0.5 * rng.standard_normal(v.shape) for k, v in ref.params.items()}

    def clues(self, case, inputs, params, dout):
        return {}

    def factors(self, case):
        return {"N": case["N"]}

    def extra_gradients(self, obj):
        """Gradients a student stores as attributes, besides dx and grads."""
        return {}

    def hint(self, code, tensor):
        return self.hints.get((code, tensor)) or self.hints.get(code, "")

    def label(self, case):
        return ", ".join(f"{k}={v}" for k, v in case.items() if k != "seed")


class ReLUExercise(Exercise):
    name, symbol = "relu", "ReLU"
    summary = "ReLU: a = max(z, 0) and its backward dz = da * [z > 0]"
    public = [{"seed": 0, "shape": (4, 5)}, {"seed": 1, "shape": (3, 2, 5, 7)}]
    hidden = [{"seed": 10, "shape": (7, 3)}, {"seed": 11, "shape": (2, 3, 4, 5)}]
    hints = {"WRONG_MASK": "The mask comes from the forward input: dz = da * (z > 0). Save "
                           "z > 0 (or z) in self.cache during forward.",
             "MUTATES_INPUT": "Do not write into dout: return a new array, e.g. "
                              "dout * mask, instead of dout[~mask] = 0.",
             "SCALE": "dz = da where z > 0 and 0 elsewhere: no factor."}

    def reference(self, case):
        return ReLU()

    def construct(self, impl, case):
        return impl()

    def inputs(self, case, rng, params):
        return {"x": away_from_zero(rng, case["shape"])}

    def clues(self, case, inputs, params, dout):
        known = [("WRONG_MASK", "masks with dout > 0 instead of the forward input z > 0.",
                  dout * (dout > 0)),
                 ("WRONG_MASK", "applies no mask: it passes dout through where z < 0 too.", dout)]
        return {"dx": {"known": known}}

    def factors(self, case):
        return {}


class DenseExercise(Exercise):
    name, symbol = "dense", "Dense"
    summary = "Dense: Z = A @ W.T + b with W (out, in); backward dW, db, dA"
    public = [{"seed": 0, "N": 5, "D_in": 3, "D_out": 4}, {"seed": 1, "N": 1, "D_in": 6, "D_out": 2},
              {"seed": 2, "N": 7, "D_in": 2, "D_out": 5}]
    hidden = [{"seed": 20, "N": 9, "D_in": 5, "D_out": 3}, {"seed": 21, "N": 3, "D_in": 4, "D_out": 7}]
    hints = {("TRANSPOSED", "grads['W']"): "dW has W's shape (out_features, in_features): "
                                           "dW = dout.T @ x, not x.T @ dout.",
             ("SCALE", "grads['b']"): "db sums dout over the batch (axis 0); the loss already "
                                      "divided by N, so no layer divides again.",
             ("SCALE", "grads['W']"): "dW = dout.T @ x has no 1/N: the loss already divided by N.",
             "ACCUMULATES": "Set the gradient (self.grads['W'] = ...), do not add to it (+=): "
                            "backward may run many times on one set of grads.",
             "MISSING_GRADIENT": "Store every gradient in self.grads: 'W' and 'b'.",
             "FORWARD_MISMATCH": "out = x @ W.T + b with W of shape (out_features, in_features)."}

    def reference(self, case):
        return Dense(case["D_in"], case["D_out"], rng=case["seed"])

    def construct(self, impl, case):
        return impl(case["D_in"], case["D_out"], rng=case["seed"])

    def inputs(self, case, rng, params):
        return {"x": rng.standard_normal((case["N"], case["D_in"]))}


class SoftmaxExercise(Exercise):
    name, symbol, kind, dx_name = ("softmax_cross_entropy", "SoftmaxCrossEntropy", "loss",
                                   "dlogits")
    summary = "SoftmaxCrossEntropy: mean -log softmax(z)[y], stable at large logits; dlogits"
    public = [{"seed": 0, "N": 5, "C": 4, "scale": 1.0}, {"seed": 1, "N": 3, "C": 6, "scale": 1e4},
              {"seed": 2, "N": 1, "C": 2, "scale": 3.0}]
    hidden = [{"seed": 30, "N": 7, "C": 3, "scale": 2.0}, {"seed": 31, "N": 4, "C": 5, "scale": -1e4}]
    hints = {("SCALE", "dlogits"): "The loss is a mean over the batch, so dL/dz = (softmax(z) - "
                                   "onehot(y)) / N: divide by N exactly once.",
             "UNSTABLE": "Subtract the row maximum before exp: softmax(z) = softmax(z - max(z)), "
                         "and compute log softmax as (z - m) - log(sum(exp(z - m))).",
             "FORWARD_MISMATCH": "L = -(1/N) sum over examples of log softmax(z_i)[y_i]."}

    def reference(self, case):
        return SoftmaxCrossEntropy()

    def construct(self, impl, case):
        return impl()

    def inputs(self, case, rng, params):
        logits = case["scale"] * rng.standard_normal((case["N"], case["C"]))
        return {"logits": logits, "y": rng.integers(0, case["C"], size=case["N"])}


class BatchNormExercise(Exercise):
    name, symbol = "batchnorm", "BatchNorm1d"
    summary = "BatchNorm1d, training mode: normalise each feature over the batch; dx, dgamma, dbeta"
    public = [{"seed": 0, "N": 6, "D": 3}, {"seed": 1, "N": 3, "D": 5}]
    hidden = [{"seed": 40, "N": 9, "D": 2}, {"seed": 41, "N": 2, "D": 4}]
    hints = {"MISSING_TERM": "mean and var depend on every x of the batch: dx = gamma / std * "
                             "(dy - mean(dy) - xhat * mean(dy * xhat)).",
             "FORWARD_MISMATCH": "Use the biased variance (divide by N) and eps inside the "
                                 "square root: xhat = (x - mean) / sqrt(var + eps)."}

    def reference(self, case):
        return BatchNorm1d(case["D"])

    def construct(self, impl, case):
        return impl(case["D"])

    def seeded_params(self, ref, rng):
        D = len(ref.params["gamma"])
        return {"gamma": 1 + 0.3 * rng.standard_normal(D), "beta": 0.5 * rng.standard_normal(D)}

    def inputs(self, case, rng, params):
        return {"x": 2 + 3 * rng.standard_normal((case["N"], case["D"]))}

    def clues(self, case, inputs, params, dout):
        x, M = inputs["x"], case["N"]
        xhat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
        k = params["gamma"] / np.sqrt(x.var(axis=0) + 1e-5)
        terms = {"direct term gamma/std * dy": k * dout,
                 "mean term (the path through the batch mean)":
                     -k * np.broadcast_to(dout.sum(axis=0) / M, dout.shape),
                 "variance term (the path through the batch variance)":
                     -k * xhat * (dout * xhat).sum(axis=0) / M}
        return {"dx": {"terms": terms}}


class ResidualBlockExercise(Exercise):
    name, symbol, dx_name = "residual_block", "ResidualBlock", "da_l"
    summary = "ResidualBlock: Ng's a^[l+2] = relu(z^[l+2] + a^[l]); da_l = shortcut + branch"
    public = [{"seed": 0, "N": 5, "features": 4}, {"seed": 1, "N": 3, "features": 6}]
    hidden = [{"seed": 50, "N": 7, "features": 3}, {"seed": 51, "N": 2, "features": 5}]
    hints = {"MISSING_TERM": "a^[l] reaches the output twice, through the branch and along the "
                             "shortcut: da_l = da_l_shortcut + da_l_branch, with "
                             "da_l_shortcut = dz^[l+2].",
             "WRONG_MASK": "The last ReLU acts on z^[l+2] + a^[l]: its mask is "
                           "(z^[l+2] + a^[l] > 0), not (z^[l+2] > 0)."}

    def reference(self, case):
        return reference.ResidualBlock(case["features"], rng=case["seed"])

    def construct(self, impl, case):
        return impl(case["features"], rng=case["seed"])

    def inputs(self, case, rng, params):
        """Redraw a^[l] until no pre-activation is within 0.05 of a ReLU kink."""
        W1, b1, W2, b2 = (params[k] for k in ("W1", "b1", "W2", "b2"))
        for _ in range(1000):
            a_l = rng.standard_normal((case["N"], case["features"]))
            z_l1 = a_l @ W1.T + b1
            z_l2 = np.maximum(z_l1, 0) @ W2.T + b2
            if min(np.abs(z_l1).min(), np.abs(z_l2 + a_l).min(), np.abs(z_l2).min()) > 0.05:
                return {"x": a_l}
        raise RuntimeError(f"residual_block: no kink-free input for case {case}")

    def extra_gradients(self, obj):
        return {"self.da_l_shortcut": getattr(obj, "da_l_shortcut", None),
                "self.da_l_branch": getattr(obj, "da_l_branch", None)}

    def clues(self, case, inputs, params, dout):
        a_l = inputs["x"]
        right = _block_backward(params, a_l, dout, after_addition=True)
        wrong = _block_backward(params, a_l, dout, after_addition=False)
        message = "uses the mask (z^[l+2] > 0) instead of (z^[l+2] + a^[l] > 0)."
        clues = {key: {"known": [("WRONG_MASK", message, wrong[key])]} for key in wrong}
        clues["da_l"]["terms"] = {"shortcut gradient (identity path)": right["self.da_l_shortcut"],
                                  "branch gradient": right["self.da_l_branch"]}
        return clues


def _block_backward(params, a_l, da_l2, after_addition):
    """Every gradient of the block, with the last ReLU's mask from z_l2 + a_l or from z_l2."""
    z_l1 = a_l @ params["W1"].T + params["b1"]
    a_l1 = np.maximum(z_l1, 0)
    z_l2 = a_l1 @ params["W2"].T + params["b2"]
    dz_l2 = da_l2 * ((z_l2 + a_l if after_addition else z_l2) > 0)
    dz_l1 = (dz_l2 @ params["W2"]) * (z_l1 > 0)
    branch = dz_l1 @ params["W1"]
    return {"da_l": dz_l2 + branch, "self.da_l_shortcut": dz_l2, "self.da_l_branch": branch,
            "grads['W2']": dz_l2.T @ a_l1, "grads['b2']": dz_l2.sum(axis=0),
            "grads['W1']": dz_l1.T @ a_l, "grads['b1']": dz_l1.sum(axis=0)}


class SGDExercise(Exercise):
    name, symbol, kind = "sgd_momentum", "sgd_step", "function"
    summary = "sgd_step: one torch.optim.SGD update with momentum and weight decay"
    public = [{"seed": 0, "shape": (3, 4), "lr": 0.1, "momentum": 0.9, "weight_decay": 0.05},
              {"seed": 1, "shape": (5,), "lr": 0.01, "momentum": 0.0, "weight_decay": 0.0},
              {"seed": 2, "shape": (2, 3, 2), "lr": 0.5, "momentum": 0.5, "weight_decay": 0.1}]
    hidden = [{"seed": 60, "shape": (4, 3), "lr": 0.05, "momentum": 0.8, "weight_decay": 0.2},
              {"seed": 61, "shape": (7,), "lr": 0.2, "momentum": 0.99, "weight_decay": 0.01}]
    hints = {"UPDATE_RULE": "torch.optim.SGD: g = grad + weight_decay * param; "
                            "velocity = momentum * velocity + g; param = param - lr * velocity.",
             "MUTATES_INPUT": "Do not change grad in place."}
    allowed_in_place = ("param", "velocity")

    def reference(self, case):
        return reference.sgd_step

    def inputs(self, case, rng, params):
        shape = case["shape"]
        return {"param": rng.standard_normal(shape), "grad": rng.standard_normal(shape),
                "velocity": rng.standard_normal(shape)}

    def call(self, f, inputs, case):
        """Run sgd_step; the outputs compared are the step (new - old param) and velocity.

        The student may update param in place (torch does), so keep the old value first.
        """
        old_param = inputs["param"].copy()
        result = f(inputs["param"], inputs["grad"], inputs["velocity"],
                   case["lr"], case["momentum"], case["weight_decay"])
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(message("sgd_step", "a pair (param, velocity) as the result",
                                    type(result).__name__, "End with: return param, velocity."))
        new_param, velocity = result
        return {"param step (new param - param)": np.asarray(new_param) - old_param,
                "velocity": velocity}

    def factors(self, case):
        return {"lr": case["lr"]}

    def clues(self, case, inputs, params, dout):
        p, g, v = inputs["param"], inputs["grad"], inputs["velocity"]
        lr, m, wd = case["lr"], case["momentum"], case["weight_decay"]
        rules = [("adds weight decay after the momentum update", m * v + g,
                  -lr * (m * v + g + wd * p)),
                 ("leaves out weight decay", m * v + g, -lr * (m * v + g)),
                 ("uses dampening (1 - momentum) on the gradient", m * v + (1 - m) * (g + wd * p),
                  -lr * (m * v + (1 - m) * (g + wd * p))),
                 ("puts lr inside the velocity (CS231n's v = m v - lr g, p += v)",
                  m * v - lr * (g + wd * p), m * v - lr * (g + wd * p)),
                 ("is Nesterov's rule", m * v + g + wd * p,
                  -lr * (g + wd * p + m * (m * v + g + wd * p))),
                 ("steps with the velocity before its update", m * v + g + wd * p, -lr * v)]
        step, vel = "param step (new param - param)", "velocity"
        return {step: {"known": [("UPDATE_RULE", f"{w}; torch.optim.SGD does not.", s)
                                 for w, _, s in rules]},
                vel: {"known": [("UPDATE_RULE", f"{w}; torch.optim.SGD does not.", new_v)
                                for w, new_v, _ in rules]}}


def _catalogue():
    from .catalogue_images import Col2imExercise, Conv2dExercise, Im2colExercise, MaxPoolExercise
    exercises = [ReLUExercise(), DenseExercise(), SoftmaxExercise(), BatchNormExercise(),
                 Im2colExercise(), Col2imExercise(), Conv2dExercise(), MaxPoolExercise(),
                 ResidualBlockExercise(), SGDExercise()]
    return {e.name: e for e in exercises}


CATALOGUE = _catalogue()


def get(name):
    """The exercise called `name`, with a clear error for an unknown name."""
    if name not in CATALOGUE:
        raise ValueError(message("resnet_np.exercises", f"an exercise from {', '.join(CATALOGUE)}",
                                 repr(name), "List them with: python -m resnet_np exercise list."))
    return CATALOGUE[name]
