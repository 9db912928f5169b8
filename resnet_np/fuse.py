"""Inference-only copies of a model, with every BatchNorm folded into the conv before it.

In eval mode BatchNorm is a fixed affine map per channel, y = z * scale + shift with

    scale = gamma / sqrt(running_var + eps),    shift = beta - running_mean * scale.

After a convolution z = W (*) x + b that map can be folded into the convolution itself:

    y = (W * scale) (*) x + (b * scale + shift)        (scale per output channel)

so conv -> BN becomes one conv with new weights and a bias, and a ReLU after it runs
in place on the conv's fresh output. `fuse(model)` (or `model.fuse()`) returns such a
copy for inference: the same logits as `model.eval()` (it uses the running statistics,
whatever mode the model is in), fewer passes over memory, and no caches (it has no
backward). The model itself is left unchanged; fuse again after its parameters change.

What is fused: Conv2d -> BatchNorm2d (-> ReLU) inside any Sequential (stems, projection
shortcuts), BatchNorm2d -> ReLU (pre-activation), BasicBlock and PreActBlock. Any other
layer is copied in eval mode and runs unfused. Sequentials become FusedSequential: the
same layers in turn, but the outermost one cuts a batch in one part per core and runs
each part through all the layers on its own thread (examples do not interact at
inference; docs/performance.md has the numbers).
"""
import copy

import numpy as np

from ._checks import check_array, message, short_pair
from .blocks.conv import BasicBlock
from .layers import _kernels
from .layers._fast_conv import conv_forward, conv_pair_forward, split_batch
from .layers.activations import ReLU
from .layers.base import Layer, Sequential, emptied_pass_state
from .layers.batchnorm import BatchNorm2d, _rows
from .layers.columns import im2col, output_size
from .layers.conv import Conv2d


def bn_scale_shift(bn):
    """(scale, shift), each (C,): eval BatchNorm as y = x * scale + shift (float64)."""
    scale = bn.params["gamma"] / np.sqrt(bn.buffers["running_var"].astype(np.float64) + bn.eps)
    return scale, bn.params["beta"] - bn.buffers["running_mean"] * scale


class _InferenceOnly(Layer):
    """A fused layer: forward only, no cache, always in eval mode."""

    def backward(self, dout):
        raise RuntimeError(message(f"{type(self).__name__}.backward",
                                   "a layer of a model that trains",
                                   "a fused, inference-only copy (model.fuse())",
                                   "Call backward on the model you fused, not on its copy."))


class FusedConv(_InferenceOnly):
    """out = relu(W (*) x + b), or without relu: Conv2d, BatchNorm2d and ReLU as one layer.

    Math
    ----
    With (scale, shift) of the eval BatchNorm:  W = W_conv * scale,  b = b_conv * scale +
    shift (per output channel); relu is max(., 0) when a ReLU followed the BatchNorm.
    Without a BatchNorm (a pre-activation conv2), W and b are the conv's own.

    Shape
    -----
    x: (N, C_in, H, W)   out: (N, C_out, H_out, W_out), as the Conv2d it came from.
    """

    def __init__(self, conv, bn=None, relu=False):
        super().__init__()
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding
        self.relu = relu
        W, dtype = conv.params["W"], conv.params["W"].dtype
        b = conv.params["b"] if conv.bias else np.zeros(self.out_channels)
        if bn is not None:
            scale, shift = bn_scale_shift(bn)
            W, b = W * scale[:, None, None, None], b * scale + shift
        self.params = {"W": W.astype(dtype), "b": b.astype(dtype)}
        self.training = False

    def forward(self, x):
        check_array(x, self._where, 4, f"(N, {self.in_channels}, H, W)", {1: self.in_channels})
        W2, b, window, _ = self._operands(np.result_type(x.dtype, self.params["W"].dtype))
        if _kernels.REFERENCE:                       # the readable convolution, as Conv2d's
            H_out, W_out = output_size(x.shape, *window)
            out2 = W2 @ im2col(x, *window)                                # (C_out, N*H_out*W_out)
            out = out2.reshape(-1, x.shape[0], H_out, W_out).transpose(1, 0, 2, 3)
        else:                                        # the fast path: the same numbers
            out = conv_forward(x, W2, *window)
        out += b[:, None, None]
        # (adding b and the max inside each chunk of conv_forward measured no faster)
        return np.maximum(out, 0, out=out) if self.relu else out

    def _operands(self, dtype):
        """(W2, b, (kernel_size, stride, padding), relu): W2 (C_out, C_in*kH*kW) and b (C_out,)
        in `dtype`, what this convolution computes with."""
        return (self.params["W"].reshape(self.out_channels, -1).astype(dtype, copy=False),
                self.params["b"].astype(dtype, copy=False),
                (self.kernel_size, self.stride, self.padding), self.relu)

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={short_pair(self.kernel_size)}"
        for name, value, default in (("stride", self.stride, 1), ("padding", self.padding, 0)):
            if value != (default, default):
                text += f", {name}={short_pair(value)}"
        return text + (", relu=True" if self.relu else "")


class FusedScaleShift(_InferenceOnly):
    """out = relu(x * scale + shift): an eval BatchNorm2d (and the ReLU after it) alone,
    where no conv comes before it (pre-activation blocks, the final BN)."""

    def __init__(self, bn, relu=False):
        super().__init__()
        scale, shift = bn_scale_shift(bn)
        dtype = bn.params["gamma"].dtype
        self.params = {"scale": scale.astype(dtype), "shift": shift.astype(dtype)}
        self.num_features, self.relu, self.training = bn.num_features, relu, False

    def forward(self, x):
        C = self.num_features
        check_array(x, self._where, 4, f"(N, {C}, H, W)", {1: C})
        x3 = x.reshape(x.shape[0], C, -1)                                 # (N, C, H*W)
        out = x3 * _rows(self.params["scale"].astype(x.dtype, copy=False), x3.shape[2])
        out += _rows(self.params["shift"].astype(x.dtype, copy=False), x3.shape[2])
        if self.relu:
            np.maximum(out, 0, out=out)
        return out.reshape(x.shape)

    def extra_repr(self):
        return f"{self.num_features}" + (", relu=True" if self.relu else "")


class FusedBasicBlock(_InferenceOnly):
    """a^[l+2] = relu(conv2'(relu(conv1'(a^[l]))) + shortcut(a^[l])), conv_i' = bn_i o conv_i."""

    def __init__(self, block):
        super().__init__()
        self.conv1 = FusedConv(block.conv1, block.bn1, relu=True)
        self.conv2 = FusedConv(block.conv2, block.bn2)
        self.shortcut = None if block.shortcut is None else fuse(block.shortcut)
        self.training = False

    def forward(self, a_l):
        a_l2 = _conv_pair(self.conv1, self.conv2, a_l)  # the fast path: the same z^[l+2],
        if a_l2 is None:                                # a^[l+1] kept in the cache
            a_l1 = self.conv1(a_l)                      # relu(bn1(conv1(a^[l])))
            a_l2 = self.conv2(a_l1)                     # z^[l+2] = bn2(conv2(a^[l+1]))
        if self.shortcut is not None:
            a_l2 += self.shortcut(a_l)                  # z^[l+2] + shortcut, in place
        return np.maximum(a_l2, 0, out=a_l2)            # g(...)


def _conv_pair(first, second, x):
    """second(first(x)) for two FusedConv in a row, by _fast_conv.conv_pair_forward: the
    same numbers, but first's output goes straight from the cache into the layout second
    reads (fused ResNet-20 inference ~10 % faster). None under reference_kernels(), for an
    input first would reject (its forward then says why), or where the pair does not fit."""
    if _kernels.REFERENCE or not (isinstance(x, np.ndarray) and x.ndim == 4 and len(x)
                                  and x.shape[1] == first.in_channels
                                  and np.issubdtype(x.dtype, np.floating)):
        return None
    if first.params["W"].dtype != second.params["W"].dtype:     # in turn: two dtypes
        return None
    dtype = np.result_type(x.dtype, first.params["W"].dtype)
    return conv_pair_forward(x, first._operands(dtype), second._operands(dtype))


class FusedPreActBlock(_InferenceOnly):
    """a^[l+2] = conv2(relu(bn2(conv1(h)))) + shortcut, h = relu(bn1(a^[l])), bn2 in conv1."""

    def __init__(self, block):
        super().__init__()
        self.act1 = FusedScaleShift(block.bn1, relu=True)
        self.conv1 = FusedConv(block.conv1, block.bn2, relu=True)
        self.conv2 = FusedConv(block.conv2)
        self.shortcut = None if block.shortcut is None else fuse(block.shortcut)
        self.shortcut_from_h = block.shortcut_from_h
        self.training = False

    def forward(self, a_l):
        h_l = self.act1(a_l)                            # h^[l] = relu(bn1(a^[l]))
        a_l2 = _conv_pair(self.conv1, self.conv2, h_l)  # the fast path: the same z^[l+2]
        if a_l2 is None:
            a_l2 = self.conv2(self.conv1(h_l))          # z^[l+2]
        if self.shortcut is not None:
            a_l2 += self.shortcut(h_l if self.shortcut_from_h else a_l)
        return a_l2


class FusedSequential(Sequential):
    """The fused copy of a Sequential: the same layers in turn, but a batch is first cut
    in one part per core and each core runs its part through every layer (at inference
    the examples of a batch do not interact, and the fused layers keep no state).

    Measured on 2 cores, ResNet-20 batch 128, float32, alternating in one process: median
    5-7 % more images/s than the same layers with each convolution split over the cores
    instead. Under resnet_np.reference_kernels() it runs the plain Sequential forward.
    """

    def forward(self, x):
        if _kernels.REFERENCE:
            return super().forward(x)
        try:
            return split_batch(lambda part: Sequential.forward(self, part), x)
        except (ValueError, TypeError):   # a wrong input: the message of the whole batch
            return super().forward(x)


def _fuse_sequence(children):
    """[(name, layer)] with Conv2d -> BatchNorm2d (-> ReLU) and BatchNorm2d (-> ReLU) fused."""
    fused, i = [], 0
    while i < len(children):
        name, layer = children[i]
        after = [child for _, child in children[i + 1:i + 3]]
        if isinstance(layer, Conv2d) and after and isinstance(after[0], BatchNorm2d):
            relu = len(after) > 1 and type(after[1]) is ReLU
            fused.append((name, FusedConv(layer, after[0], relu)))
            i += 3 if relu else 2
        elif isinstance(layer, Conv2d):                      # alone: no cache, at least
            fused.append((name, FusedConv(layer)))
            i += 1
        elif isinstance(layer, BatchNorm2d):
            relu = bool(after) and type(after[0]) is ReLU
            fused.append((name, FusedScaleShift(layer, relu)))
            i += 2 if relu else 1
        else:
            fused.append((name, fuse(layer)))
            i += 1
    return fused


def fuse(model):
    """An inference-only copy of `model` with BatchNorm folded into the convolutions.

    Its forward gives the logits of `model.eval().forward(x)` (equal to rounding: float64
    to about 1e-12); it keeps no caches and has no backward. `model` is not changed.

    Example
    -------
    >>> import resnet_np as rn
    >>> model = rn.resnet_cifar(20, rng=0).eval()
    >>> x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    >>> fused = model.fuse()
    >>> float(np.max(np.abs(fused(x) - model(x)))) < 1e-4
    True
    >>> sum(1 for _, layer in fused.named_layers() if isinstance(layer, rn.BatchNorm2d))
    0
    """
    if isinstance(model, BasicBlock):                # PreActBlock is a BasicBlock too
        return FusedPreActBlock(model) if model.variant == "pre" else FusedBasicBlock(model)
    if isinstance(model, Sequential) and type(model).forward is Sequential.forward:
        return FusedSequential(dict(_fuse_sequence(model.children()))).eval()
    # anything else runs unfused: a copy in eval mode, without the caches and records
    return copy.deepcopy(model, emptied_pass_state(model)).eval()
