"""Planted bugs ("mutants") in a student's usual styles, each with the code it must get.

MUTANTS maps a short name to (exercise, implementation, expected code, expected tensor).
Each mutant is a correct solution (tests/exercise_solutions/) or a library layer with
one mistake, written the way students write it.
"""
import os

import numpy as np

import resnet_np as rn
from resnet_np.exercises.student import load

HERE = os.path.dirname(os.path.abspath(__file__))


def solution(name):
    """The correct student-style solution of exercise `name`."""
    from resnet_np.exercises.catalogue import get
    return load(os.path.join(HERE, "exercise_solutions", f"{name}.py"), get(name).symbol)


Dense, ReLU = solution("dense"), solution("relu")
Softmax, BatchNorm = solution("softmax_cross_entropy"), solution("batchnorm")
Conv2d, MaxPool = solution("conv2d"), solution("maxpool")
Block = solution("residual_block")


class DenseTransposedDW(Dense):
    def backward(self, dout):
        x = self.cache["x"]
        self.grads["W"] = x.T @ dout                       # (in, out): transposed
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"]


class DenseMeanDB(Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"] = np.mean(dout, axis=0)            # averaged instead of summed
        return dx


class DenseKeepdimsDB(Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"] = dout.sum(axis=0, keepdims=True)  # (1, out)
        return dx


class DenseAccumulates(Dense):
    def backward(self, dout):
        x = self.cache["x"]
        self.grads["W"] += dout.T @ x
        self.grads["b"] += dout.sum(axis=0)
        return dout @ self.params["W"]


class DenseNoBias(Dense):
    def backward(self, dout):
        self.grads["W"] = dout.T @ self.cache["x"]         # forgot db
        return dout @ self.params["W"]


class DenseForgetsBiasInForward(Dense):
    def forward(self, x):
        self.cache = {"x": x}
        return x @ self.params["W"].T


class DenseCrashes(Dense):
    def backward(self, dout):
        x = self.cache["x"]
        self.grads["W"] = dout.T @ x
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"].T                   # shapes do not fit


class ReLUInPlace(ReLU):
    def backward(self, dout):
        dout[~self.cache["mask"]] = 0                      # writes into dout
        return dout


class ReLUMaskFromDout(ReLU):
    def backward(self, dout):
        return dout * (dout > 0)


class ReLUWrongSign(ReLU):
    def backward(self, dout):
        return -dout * self.cache["mask"]


class SoftmaxNoOneOverN(Softmax):
    def backward(self):
        log_probs, y = self.cache["log_probs"], self.cache["y"]
        dlogits = np.exp(log_probs)
        dlogits[np.arange(len(y)), y] -= 1
        return dlogits                                     # forgot / N


class SoftmaxNaive(Softmax):
    def forward(self, logits, y):
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)   # no max shift
        self.cache = {"log_probs": np.log(probs), "y": y}
        return float(-np.log(probs[np.arange(len(y)), y]).mean())


class BatchNormNoMeanTerm(BatchNorm):
    def backward(self, dout):
        xhat, var = self.cache["xhat"], self.cache["var"]
        N = dout.shape[0]
        self.grads["beta"] = dout.sum(axis=0)
        self.grads["gamma"] = (dout * xhat).sum(axis=0)
        k = self.params["gamma"] / np.sqrt(var + self.eps)
        return k * (dout - xhat * self.grads["gamma"] / N)  # the mean term is missing


class BatchNormUnbiasedVar(BatchNorm):
    def forward(self, x):
        mean, var = x.mean(axis=0), x.var(axis=0, ddof=1)   # unbiased: N - 1
        xhat = (x - mean) / np.sqrt(var + self.eps)
        self.cache = {"xhat": xhat, "var": var}
        return self.params["gamma"] * xhat + self.params["beta"]


class BatchNormDgammaFromX(BatchNorm):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["gamma"] = (dout * self.cache["xhat"] * 1.5 + dout).sum(axis=0)
        return dx


class BatchNormNoVarianceTerm(BatchNorm):
    def backward(self, dout):
        xhat, var = self.cache["xhat"], self.cache["var"]
        self.grads["beta"] = dout.sum(axis=0)
        self.grads["gamma"] = (dout * xhat).sum(axis=0)
        k = self.params["gamma"] / np.sqrt(var + self.eps)
        return k * (dout - dout.mean(axis=0))               # the variance term is missing


class SoftmaxPerExample(Softmax):
    def forward(self, logits, y):
        super().forward(logits, y)
        return -self.cache["log_probs"][np.arange(len(y)), y]   # (N,), not the mean


class ConvMeanDb(Conv2d):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"] = dout.mean(axis=(0, 2, 3))
        return dx


class ConvSwappedDW(Conv2d):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["W"] = self.grads["W"].transpose(1, 0, 2, 3)   # (C_in, C_out, k, k)
        return dx


class BlockTransposedDW1(Block):
    def backward(self, da_l2):
        da_l = super().backward(da_l2)
        self.grads["W1"] = self.grads["W1"].T              # square: only the values tell
        return da_l


def sgd_forgets_lr(param, grad, velocity, lr, momentum, weight_decay):
    velocity = momentum * velocity + grad + weight_decay * param
    return param - velocity, velocity


def im2col_ignores_stride(x, kernel_size, stride, padding):
    return rn.im2col(x, kernel_size, 1, padding)


def im2col_ignores_padding(x, kernel_size, stride, padding):
    return rn.im2col(x, kernel_size, stride, 0)


def col2im_assigns(cols, x_shape, kernel_size, stride, padding):
    N, C, H, W = x_shape
    k, s, p = kernel_size, stride, padding
    H_out, W_out = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    cols = cols.reshape(C, k, k, N, H_out, W_out)
    dxp = np.zeros((N, C, H + 2 * p, W + 2 * p))
    for n in range(N):
        for h in range(H_out):
            for w in range(W_out):
                window = cols[:, :, :, n, h, w]
                dxp[n, :, h * s:h * s + k, w * s:w * s + k] = window   # = instead of +=
    return dxp[:, :, p:p + H, p:p + W]


class ConvFlipped(Conv2d):
    def forward(self, x):
        W = self.params["W"]
        self.params["W"] = W[:, :, ::-1, ::-1]             # "convolution" with the flip
        out = super().forward(x)
        self.params["W"] = W
        return out


class ConvLoopsOverwrite(Conv2d):
    def backward(self, dout):
        super().backward(dout)
        N, C_in, H, W = self.cache["x_shape"]
        k, s, p = self.kernel_size, self.stride, self.padding
        Wt = self.params["W"]
        dxp = np.zeros((N, C_in, H + 2 * p, W + 2 * p))
        for h in range(dout.shape[2]):
            for w in range(dout.shape[3]):
                # (N, C_out) x (C_out, C_in, k, k) -> (N, C_in, k, k), assigned: overlaps lost
                dxp[:, :, h * s:h * s + k, w * s:w * s + k] = np.einsum(
                    "no,oikl->nikl", dout[:, :, h, w], Wt)
        return dxp[:, :, p:p + H, p:p + W]


class MaxPoolAssigns(MaxPool):
    def backward(self, dout):
        x, out = self.cache["x"], self.cache["out"]
        k, s = self.kernel_size, self.stride
        dx = np.zeros_like(x)
        for h in range(out.shape[2]):
            for w in range(out.shape[3]):
                window = x[:, :, h * s:h * s + k, w * s:w * s + k]
                mask = window == out[:, :, h:h + 1, w:w + 1]
                dx[:, :, h * s:h * s + k, w * s:w * s + k] = mask * dout[:, :, h:h + 1, w:w + 1]
        return dx


class MaxPoolIgnoresStride(MaxPool):
    def forward(self, x):
        stride, self.stride = self.stride, 1
        out = super().forward(x)
        self.stride = stride
        return out


class BlockForgetsShortcut(Block):
    def backward(self, da_l2):
        super().backward(da_l2)
        return self.da_l_branch                            # the shortcut's gradient is lost


class BlockMaskBeforeAddition(Block):
    def backward(self, da_l2):
        a_l, z_l1, a_l1, z_l2 = (self.cache[k] for k in ("a_l", "z_l1", "a_l1", "z_l2"))
        dz_l2 = da_l2 * (z_l2 > 0)                         # mask of z^[l+2], not z^[l+2] + a^[l]
        self.grads["W2"], self.grads["b2"] = dz_l2.T @ a_l1, dz_l2.sum(axis=0)
        dz_l1 = (dz_l2 @ self.params["W2"]) * (z_l1 > 0)
        self.grads["W1"], self.grads["b1"] = dz_l1.T @ a_l, dz_l1.sum(axis=0)
        self.da_l_shortcut, self.da_l_branch = dz_l2, dz_l1 @ self.params["W1"]
        return self.da_l_shortcut + self.da_l_branch


def sgd_decay_after_momentum(param, grad, velocity, lr, momentum, weight_decay):
    velocity = momentum * velocity + grad
    return param - lr * (velocity + weight_decay * param), velocity


def sgd_cs231n(param, grad, velocity, lr, momentum, weight_decay):
    velocity = momentum * velocity - lr * (grad + weight_decay * param)
    return param + velocity, velocity


def sgd_mutates_grad(param, grad, velocity, lr, momentum, weight_decay):
    grad += weight_decay * param                           # changes the caller's grad
    velocity = momentum * velocity + grad
    return param - lr * velocity, velocity


MUTANTS = {
    "dense transposed dW": ("dense", DenseTransposedDW, "TRANSPOSED", "grads['W']"),
    "dense db averaged": ("dense", DenseMeanDB, "SCALE", "grads['b']"),
    "dense db keepdims": ("dense", DenseKeepdimsDB, "SHAPE", "grads['b']"),
    "dense +=": ("dense", DenseAccumulates, "ACCUMULATES", "grads['W']"),
    "dense forgot db": ("dense", DenseNoBias, "MISSING_GRADIENT", "grads['b']"),
    "dense forward without b": ("dense", DenseForgetsBiasInForward, "FORWARD_MISMATCH", "out"),
    "dense crashes": ("dense", DenseCrashes, "EXCEPTION", ""),
    "relu writes into dout": ("relu", ReLUInPlace, "MUTATES_INPUT", "dout"),
    "relu mask from dout": ("relu", ReLUMaskFromDout, "WRONG_MASK", "dx"),
    "relu wrong sign": ("relu", ReLUWrongSign, "SCALE", "dx"),
    "softmax without 1/N": ("softmax_cross_entropy", SoftmaxNoOneOverN, "SCALE", "dlogits"),
    "softmax without max shift": ("softmax_cross_entropy", SoftmaxNaive, "UNSTABLE", "out"),
    "batchnorm no mean term": ("batchnorm", BatchNormNoMeanTerm, "MISSING_TERM", "dx"),
    "batchnorm no variance term": ("batchnorm", BatchNormNoVarianceTerm, "MISSING_TERM", "dx"),
    "softmax loss per example": ("softmax_cross_entropy", SoftmaxPerExample, "SHAPE", "out"),
    "conv db averaged": ("conv2d", ConvMeanDb, "SCALE", "grads['b']"),
    "conv dW C_in, C_out swapped": ("conv2d", ConvSwappedDW, "TRANSPOSED", "grads['W']"),
    "block dW1 transposed": ("residual_block", BlockTransposedDW1, "TRANSPOSED", "grads['W1']"),
    "sgd forgets lr": ("sgd_momentum", sgd_forgets_lr, "SCALE", "param step (new param - param)"),
    "batchnorm unbiased var": ("batchnorm", BatchNormUnbiasedVar, "FORWARD_MISMATCH", "out"),
    "batchnorm dgamma": ("batchnorm", BatchNormDgammaFromX, "GRADIENT_MISMATCH",
                         "grads['gamma']"),
    "im2col ignores stride": ("im2col", im2col_ignores_stride, "STRIDE_IGNORED", "cols"),
    "im2col ignores padding": ("im2col", im2col_ignores_padding, "PADDING_IGNORED", "cols"),
    "col2im assigns": ("col2im", col2im_assigns, "OVERWRITE", "dx"),
    "conv flipped kernel": ("conv2d", ConvFlipped, "KERNEL_FLIPPED", "out"),
    "conv backward overwrites": ("conv2d", ConvLoopsOverwrite, "OVERWRITE", "dx"),
    "maxpool assigns windows": ("maxpool", MaxPoolAssigns, "OVERWRITE", "dx"),
    "maxpool ignores stride": ("maxpool", MaxPoolIgnoresStride, "STRIDE_IGNORED", "out"),
    "block forgets the shortcut": ("residual_block", BlockForgetsShortcut, "MISSING_TERM", "da_l"),
    "block mask before addition": ("residual_block", BlockMaskBeforeAddition, "WRONG_MASK",
                                   "da_l"),
    # the same step as torch's, but the velocity it keeps leaves out weight decay:
    "sgd decay after momentum": ("sgd_momentum", sgd_decay_after_momentum, "UPDATE_RULE",
                                 "velocity"),
    "sgd cs231n rule": ("sgd_momentum", sgd_cs231n, "UPDATE_RULE",
                        "param step (new param - param)"),
    "sgd changes grad": ("sgd_momentum", sgd_mutates_grad, "MUTATES_INPUT", "grad"),
}
