"""The image exercises: im2col, col2im, Conv2d and MaxPool2d (NCHW, square kernels).

Each case gives the batch N, channels C (C_in, C_out), image size H x W, the kernel
size k, the stride s and the padding p. The first public case has overlapping windows
(stride < kernel), so a backward that overwrites instead of adding shows; the others
add stride 2, odd and non-square sizes.
"""
import numpy as np

from ..layers import Conv2d, MaxPool2d, col2im, im2col
from . import reference
from .catalogue import Exercise


def _out_size(case):
    k, s, p = case["k"], case["s"], case.get("p", 0)
    return (case["H"] + 2 * p - k) // s + 1, (case["W"] + 2 * p - k) // s + 1


def _coverage(x_shape, k, s, p):
    """How many windows cover each input pixel: col2im of all-ones columns."""
    N, C, H, W = x_shape
    H_out, W_out = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    return col2im(np.ones((C * k * k, N * H_out * W_out)), x_shape, k, s, p)


def _cropped(out, shape):
    """The top-left corner of `out` with the spatial size of `shape` (N, C, H_out, W_out)."""
    return out[:, :, :shape[2], :shape[3]]


class Im2colExercise(Exercise):
    name, symbol, kind = "im2col", "im2col", "function"
    summary = "im2col: every kernel window of the padded input as one column"
    public = [{"seed": 0, "N": 2, "C": 3, "H": 5, "W": 5, "k": 3, "s": 1, "p": 1},
              {"seed": 1, "N": 3, "C": 2, "H": 5, "W": 7, "k": 3, "s": 2, "p": 1},
              {"seed": 2, "N": 1, "C": 1, "H": 4, "W": 6, "k": 2, "s": 2, "p": 0}]
    hidden = [{"seed": 70, "N": 3, "C": 2, "H": 6, "W": 5, "k": 3, "s": 2, "p": 0},
              {"seed": 71, "N": 1, "C": 4, "H": 7, "W": 4, "k": 2, "s": 1, "p": 1}]
    hints = {"STRIDE_IGNORED": "Window (h, w) starts at row h * stride and column w * stride "
                               "of the padded input.",
             "PADDING_IGNORED": "Pad first: xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))).",
             "KERNEL_FLIPPED": "Rows run over (c, i, j) with the kernel offset i, j counted "
                               "from the window's top-left corner, as W.reshape(C_out, -1).",
             "SHAPE": "cols has shape (C * k * k, N * H_out * W_out) with "
                      "H_out = (H + 2p - k) // s + 1."}

    def reference(self, case):
        return im2col

    def inputs(self, case, rng, params):
        return {"x": rng.standard_normal((case["N"], case["C"], case["H"], case["W"]))}

    def call(self, f, inputs, case):
        return {"cols": f(inputs["x"], case["k"], case["s"], case["p"])}

    def clues(self, case, inputs, params, dout):
        x, k, s, p = inputs["x"], case["k"], case["s"], case["p"]
        N, C = x.shape[:2]
        right = im2col(x, k, s, p)
        stride1 = im2col(x, k, 1, p)
        H1, W1 = x.shape[2] + 2 * p - k + 1, x.shape[3] + 2 * p - k + 1
        crop = _cropped(stride1.reshape(-1, N, H1, W1), (0, 0) + _out_size(case))
        flipped = right.reshape(C, k, k, -1)[:, ::-1, ::-1].reshape(right.shape)
        known = [("STRIDE_IGNORED", "takes the windows with stride 1.", stride1),
                 ("STRIDE_IGNORED", "takes the windows with stride 1 (and keeps the first "
                  "H_out x W_out).", crop.reshape(crop.shape[0], -1)),
                 ("PADDING_IGNORED", "leaves out the zero padding.", im2col(x, k, s, 0)),
                 ("KERNEL_FLIPPED", "lists each window's entries in reversed (flipped) order.",
                  flipped)]
        return {"cols": {"known": known}}


class Col2imExercise(Exercise):
    name, symbol, kind = "col2im", "col2im", "function"
    summary = "col2im: add every column entry back to its pixel (the adjoint of im2col)"
    public, hidden = Im2colExercise.public, Im2colExercise.hidden     # the same geometries
    hints = {"OVERWRITE": "A pixel inside several windows receives the sum of their entries: "
                          "dxp[...] += window, not dxp[...] = window.",
             "STRIDE_IGNORED": "Window (h, w) goes back to rows h * stride + i, columns "
                               "w * stride + j of the padded image.",
             "SHAPE": "dx has the shape x_shape (N, C, H, W): drop the padding at the end."}

    def reference(self, case):
        return col2im

    def inputs(self, case, rng, params):
        H_out, W_out = _out_size(case)
        K, L = case["C"] * case["k"] ** 2, case["N"] * H_out * W_out
        return {"cols": rng.standard_normal((K, L))}

    def _x_shape(self, case):
        return (case["N"], case["C"], case["H"], case["W"])

    def call(self, f, inputs, case):
        return {"dx": f(inputs["cols"], self._x_shape(case), case["k"], case["s"], case["p"])}

    def clues(self, case, inputs, params, dout):
        args = (inputs["cols"], self._x_shape(case), case["k"], case["s"], case["p"])
        known = [("STRIDE_IGNORED", "puts window (h, w) back at (h, w) instead of "
                  "(h * stride, w * stride).", reference.col2im_placed(*args, place_stride=1))]
        return {"dx": {"known": known, "coverage": _coverage(*args[1:])}}


class Conv2dExercise(Exercise):
    name, symbol = "conv2d", "Conv2d"
    summary = "Conv2d: cross-correlation with stride and padding; dx, dW, db"
    public = [{"seed": 0, "N": 2, "C_in": 3, "C_out": 4, "H": 5, "W": 5, "k": 3, "s": 1, "p": 1},
              {"seed": 1, "N": 3, "C_in": 2, "C_out": 3, "H": 6, "W": 7, "k": 3, "s": 2, "p": 1},
              {"seed": 2, "N": 1, "C_in": 1, "C_out": 2, "H": 4, "W": 5, "k": 2, "s": 2, "p": 0}]
    hidden = [{"seed": 80, "N": 3, "C_in": 2, "C_out": 2, "H": 7, "W": 5, "k": 3, "s": 2, "p": 0},
              {"seed": 81, "N": 1, "C_in": 3, "C_out": 2, "H": 4, "W": 6, "k": 3, "s": 1, "p": 2}]
    hints = {"KERNEL_FLIPPED": "Deep-learning 'convolution' is cross-correlation: "
                               "out[h, w] = sum W[i, j] * xp[h*s + i, w*s + j], no flip.",
             "STRIDE_IGNORED": "Output pixel (h, w) reads the window starting at "
                               "(h * stride, w * stride).",
             "PADDING_IGNORED": "Pad x with `padding` zeros on every side before the windows.",
             "OVERWRITE": "dx: overlapping windows send gradient to the same pixel; add "
                          "them up (col2im adds, dx[...] += ...).",
             ("SCALE", "grads['b']"): "db sums dout over N, H_out and W_out: no mean.",
             ("TRANSPOSED", "grads['W']"): "dW has W's shape (C_out, C_in, kH, kW)."}

    def reference(self, case):
        return Conv2d(case["C_in"], case["C_out"], case["k"], stride=case["s"],
                      padding=case["p"], rng=case["seed"])

    def construct(self, impl, case):
        return impl(case["C_in"], case["C_out"], case["k"], stride=case["s"], padding=case["p"],
                    rng=case["seed"])

    def inputs(self, case, rng, params):
        return {"x": rng.standard_normal((case["N"], case["C_in"], case["H"], case["W"]))}

    def factors(self, case):
        H_out, W_out = _out_size(case)
        return {"N": case["N"], "H_out*W_out": H_out * W_out,
                "N*H_out*W_out": case["N"] * H_out * W_out, "k*k": case["k"] ** 2}

    def _conv(self, case, x, W, b, stride, padding):
        conv = Conv2d(case["C_in"], case["C_out"], case["k"], stride=stride, padding=padding)
        conv.params["W"], conv.params["b"] = W, b
        return conv.forward(x)

    def clues(self, case, inputs, params, dout):
        x, W, b, s, p = inputs["x"], params["W"], params["b"], case["s"], case["p"]
        stride1 = self._conv(case, x, W, b, 1, p)
        known = [("STRIDE_IGNORED", "slides the kernel with stride 1.", stride1),
                 ("STRIDE_IGNORED", "slides the kernel with stride 1 (and keeps the first "
                  "H_out x W_out).", _cropped(stride1, dout.shape)),
                 ("PADDING_IGNORED", "leaves out the zero padding.", self._conv(case, x, W, b, s, 0)),
                 ("KERNEL_FLIPPED", "flips the kernel (a true convolution); deep learning "
                  "uses cross-correlation.", self._conv(case, x, W[..., ::-1, ::-1], b, s, p))]
        return {"out": {"known": known}, "dx": {"coverage": _coverage(x.shape, case["k"], s, p)}}


class MaxPoolExercise(Exercise):
    name, symbol = "maxpool", "MaxPool2d"
    summary = "MaxPool2d: the largest value of each window; the gradient goes to the winner"
    public = [{"seed": 0, "N": 2, "C": 3, "H": 5, "W": 5, "k": 3, "s": 2},
              {"seed": 1, "N": 3, "C": 2, "H": 4, "W": 6, "k": 2, "s": 2},
              {"seed": 2, "N": 1, "C": 2, "H": 7, "W": 5, "k": 3, "s": 1}]
    hidden = [{"seed": 90, "N": 3, "C": 1, "H": 6, "W": 7, "k": 2, "s": 1},
              {"seed": 91, "N": 2, "C": 2, "H": 9, "W": 6, "k": 3, "s": 3}]
    hints = {"OVERWRITE": "A pixel that wins several overlapping windows receives the sum of "
                          "their gradients: dx[...] += ..., and never assign a whole window.",
             "STRIDE_IGNORED": "Window (h, w) starts at (h * stride, w * stride)."}

    def reference(self, case):
        return MaxPool2d(case["k"], case["s"])

    def construct(self, impl, case):
        return impl(case["k"], case["s"])

    def inputs(self, case, rng, params):
        """Distinct values (no ties in any window), spread over [-2, 2]."""
        shape = (case["N"], case["C"], case["H"], case["W"])
        size = int(np.prod(shape))
        return {"x": (rng.permutation(size) * (4.0 / size) - 2.0).reshape(shape)}

    def clues(self, case, inputs, params, dout):
        x, k, s = inputs["x"], case["k"], case["s"]
        stride1 = MaxPool2d(k, 1).forward(x)
        known = [("STRIDE_IGNORED", "slides the window with stride 1.", stride1),
                 ("STRIDE_IGNORED", "slides the window with stride 1 (and keeps the first "
                  "H_out x W_out).", _cropped(stride1, dout.shape))]
        return {"out": {"known": known}, "dx": {"coverage": _coverage(x.shape, k, s, 0)}}
