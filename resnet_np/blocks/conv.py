"""Convolutional residual blocks: BasicBlock and PreActBlock written out, and Bottleneck.

    BasicBlock (He et al. 2015):   a^[l+2] = relu2(bn2(conv2(relu1(bn1(conv1(a^[l]))))) + shortcut)
    PreActBlock (He et al. 2016):  a^[l+2] = conv2(relu2(bn2(conv1(relu1(bn1(a^[l])))))) + shortcut
    Bottleneck: 1x1 -> 3x3 -> 1x1, run by ResidualBlock's loop over k = 3.
"""
import numpy as np

from .._checks import as_generator, check_array, check_choice, check_int
from ..layers.activations import ReLU
from ..layers.batchnorm import BatchNorm2d
from ..layers.conv import Conv2d
from ..shortcuts import SHORTCUTS, make_shortcut
from .base import VARIANTS, ResidualBlock


class _ConvBlock(ResidualBlock):
    """Conv + BN layers with a shortcut: what BasicBlock, PreActBlock and Bottleneck share.

    `specs` lists (in_channels, out_channels, kernel_size, stride) per layer. Post-activation
    layer i: conv_i -> bn_i, then relu_i. Pre-activation: bn_i -> relu_i in front of conv_i
    (bn_i then normalises the layer's input channels).
    """

    def __init__(self, where, specs, shortcut, variant, zero_init_residual, rng):
        super().__init__(len(specs), check_choice(variant, "variant", where, VARIANTS))
        self.in_channels, self.out_channels = specs[0][0], specs[-1][1]
        self.stride = max(spec[3] for spec in specs)
        self.shortcut_kind = check_choice(shortcut, "shortcut", where, SHORTCUTS)
        rng = as_generator(rng)
        shortcut_rng = np.random.default_rng(rng.integers(2**63))  # drawn for every kind
        for i, (c_in, c_out, kernel, stride) in enumerate(specs, start=1):
            setattr(self, f"conv{i}", Conv2d(c_in, c_out, kernel, stride=stride,
                                             padding=kernel // 2, bias=False, rng=rng))
            setattr(self, f"bn{i}", BatchNorm2d(c_in if variant == "pre" else c_out))
            setattr(self, f"relu{i}", ReLU())
        self.shortcut = make_shortcut(shortcut, self.in_channels, self.out_channels,
                                      self.stride, where, rng=shortcut_rng)
        changes_shape = self.stride != 1 or self.in_channels != self.out_channels
        self.shortcut_from_h = variant == "pre" and changes_shape and self.shortcut is not None
        if zero_init_residual:
            getattr(self, f"bn{self.skip}").params["gamma"][...] = 0

    def weight(self, i):
        conv = getattr(self, f"conv{i}")
        return [conv] if self.variant == "pre" else [conv, getattr(self, f"bn{i}")]

    def act(self, i):
        relu = getattr(self, f"relu{i}")
        return [getattr(self, f"bn{i}"), relu] if self.variant == "pre" else [relu]

    def _check_input(self, a_l):
        check_array(a_l, self._where, 4,
                    f"(N, {self.in_channels}, H, W)", {1: self.in_channels},
                    "Images are NCHW: check the previous layer's out_channels.")

    def extra_repr(self):
        channels = [self.in_channels, getattr(self, "mid_channels", None), self.out_channels]
        args = [str(c) for c in channels if c is not None]
        args += [f"stride={self.stride}"] if self.stride != 1 else []
        args += [f"shortcut={self.shortcut_kind!r}"]
        if self.variant != "post" and not isinstance(self, PreActBlock):
            args += [f"variant={self.variant!r}"]
        return ", ".join(args)


class BasicBlock(_ConvBlock):
    """a^[l+2] = relu(bn2(conv2(relu(bn1(conv1(a^[l]))))) + shortcut(a^[l])).

    He et al. 2015, post-activation. conv1 is 3x3 with `stride`, conv2 3x3 stride 1;
    both without bias (the BN beta plays that role).

    Math
    ----
        z^[l+1] = bn1(conv1(a^[l]))        a^[l+1] = relu1(z^[l+1])
        z^[l+2] = bn2(conv2(a^[l+1]))      a^[l+2] = relu2(z^[l+2] + shortcut(a^[l]))
    Backward, in reverse: dz^[l+2] = relu2'(.) da^[l+2] goes to both terms of the sum;
    da^[l] = da_l_shortcut (back through the shortcut) + da_l_branch (back through
    bn1, conv1, ..., conv2, bn2).

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int, 1 or 2 (2 halves H and W at a stage boundary)
    shortcut : "identity", "A" (subsample + zero channels, no parameters),
        "B" (identity where shapes match, else 1x1 conv + BN), "C" (1x1 conv + BN
        always) or None (the plain twin)
    variant : "post" (this block) or "pre" (the same as PreActBlock)
    zero_init_residual : bool, bn2's gamma starts at 0 so the block starts as relu(shortcut)
    rng : None, int or np.random.Generator

    Shape
    -----
    a_l: (N, in_channels, H, W)   a_l2: (N, out_channels, ceil(H/stride), ceil(W/stride))

    Example
    -------
    >>> block = BasicBlock(4, 8, stride=2, shortcut="A", rng=0)
    >>> out = block(np.random.default_rng(0).standard_normal((2, 4, 6, 6)))
    >>> out.shape, block.intermediates()["shortcut"].shape
    ((2, 8, 3, 3), (2, 8, 3, 3))
    """

    def __init__(self, in_channels, out_channels, stride=1, shortcut="B", variant="post",
                 zero_init_residual=False, rng=None):
        where = type(self).__name__                  # PreActBlock reports its own name
        c_in = check_int(in_channels, "in_channels", where)
        c_out = check_int(out_channels, "out_channels", where)
        stride = check_int(stride, "stride", where)
        super().__init__(where, [(c_in, c_out, 3, stride), (c_out, c_out, 3, 1)],
                         shortcut, variant, zero_init_residual, rng)

    def forward(self, a_l):
        """a^[l] -> a^[l+2], line by line as in Math (variant="pre": PreActBlock's pass)."""
        if self.variant == "pre":
            return PreActBlock.forward(self, a_l)
        self._check_input(a_l)
        z_l1 = self.bn1(self.conv1(a_l))                        # z^[l+1]
        a_l1 = self.relu1(z_l1)                                 # a^[l+1] = g(z^[l+1])
        z_l2 = self.bn2(self.conv2(a_l1))                       # z^[l+2]
        if self.shortcut is None:                               # the plain twin: no addition
            shortcut, a_l2 = None, self.relu2(z_l2)
        else:
            shortcut = self.shortcut(a_l)                       # a^[l], zero-padded, or W_s a^[l]
            a_l2 = self.relu2(z_l2 + shortcut)                  # a^[l+2] = g(z^[l+2] + shortcut)
        self._record(a_l=a_l, z_l1=z_l1, a_l1=a_l1, z_l2=z_l2, shortcut=shortcut, a_l2=a_l2)
        return a_l2

    def backward(self, da_l2):
        """da^[l+2] -> da^[l] = da_l_shortcut + da_l_branch, in reverse order."""
        if self.variant == "pre":
            return PreActBlock.backward(self, da_l2)
        self._require_forward()
        dz_l2 = self.relu2.backward(da_l2)         # through g; the sum hands dz_l2 to both terms
        da_l1 = self.conv2.backward(self.bn2.backward(dz_l2))
        dz_l1 = self.relu1.backward(da_l1)
        da_l_branch = self.conv1.backward(self.bn1.backward(dz_l1))
        da_l_shortcut = (self.shortcut.backward(dz_l2) if self.shortcut is not None
                         else np.zeros_like(da_l_branch))      # the plain twin: nothing
        da_l = da_l_shortcut + da_l_branch
        self._record_gradients(da_l2=da_l2, dz_l2=dz_l2, da_l1=da_l1, dz_l1=dz_l1,
                               da_l_shortcut=da_l_shortcut, da_l_branch=da_l_branch, da_l=da_l)
        return da_l


class PreActBlock(BasicBlock):
    """a^[l+2] = z^[l+2] + shortcut,  z^[l+2] = conv2(relu(bn2(conv1(relu(bn1(a^[l])))))).

    He et al. 2016, full pre-activation: BN and ReLU come before each conv and
    nothing follows the addition, so within a stage a^[l] reaches the next block
    unchanged. Where the shape changes, the shortcut (projection or zero-pad) is fed
    h_l = relu(bn1(a^[l])), as in the authors' reference code, not a^[l].

    Math
    ----
        h^[l]   = relu1(bn1(a^[l]))        z^[l+1] = conv1(h^[l])
        h^[l+1] = relu2(bn2(z^[l+1]))      z^[l+2] = conv2(h^[l+1])
        a^[l+2] = z^[l+2] + shortcut(a^[l])   (or shortcut(h^[l]) where the shape changes)
    Backward: da^[l+2] reaches z^[l+2] and the shortcut unchanged (no g after the sum).

    Keys: a_l, h_l, z_l1, h_l1, z_l2, shortcut, a_l2. Arguments as BasicBlock (no variant).

    >>> block = PreActBlock(4, 4, shortcut="identity", rng=0)
    >>> a_l2 = block(np.random.default_rng(0).standard_normal((2, 4, 5, 5)))
    >>> v = block.intermediates()
    >>> list(v)
    ['a_l', 'h_l', 'z_l1', 'h_l1', 'z_l2', 'shortcut', 'a_l2']
    >>> bool(np.allclose(v["a_l2"], v["z_l2"] + v["a_l"]))
    True
    """

    def __init__(self, in_channels, out_channels, stride=1, shortcut="B",
                 zero_init_residual=False, rng=None):
        super().__init__(in_channels, out_channels, stride, shortcut, variant="pre",
                         zero_init_residual=zero_init_residual, rng=rng)

    def forward(self, a_l):
        """a^[l] -> a^[l+2], line by line as in Math."""
        self._check_input(a_l)
        h_l = self.relu1(self.bn1(a_l))                         # h^[l] = g(BN(a^[l]))
        z_l1 = self.conv1(h_l)                                  # z^[l+1]
        h_l1 = self.relu2(self.bn2(z_l1))                       # h^[l+1] = g(BN(z^[l+1]))
        z_l2 = self.conv2(h_l1)                                 # z^[l+2]
        if self.shortcut is None:                               # the plain twin: no addition
            shortcut, a_l2 = None, z_l2
        else:
            shortcut = self.shortcut(h_l if self.shortcut_from_h else a_l)
            a_l2 = z_l2 + shortcut                              # no g after the addition
        self._record(a_l=a_l, h_l=h_l, z_l1=z_l1, h_l1=h_l1, z_l2=z_l2, shortcut=shortcut,
                     a_l2=a_l2)
        return a_l2

    def backward(self, da_l2):
        """da^[l+2] -> da^[l] = da_l_shortcut + da_l_branch, in reverse order."""
        self._require_forward()
        dz_l2 = da_l2                              # nothing follows the addition
        dh_l1 = self.conv2.backward(dz_l2)
        dz_l1 = self.bn2.backward(self.relu2.backward(dh_l1))
        dh_l = self.conv1.backward(dz_l1)
        if self.shortcut_from_h:
            # The shortcut read h^[l] too, so its gradient joins dh_l. relu1 and bn1 are
            # linear in their upstream gradient, so sending the shortcut's share back alone
            # splits da^[l] exactly; the last bn1 call sets bn1's grads for the whole sum.
            dshortcut = self.shortcut.backward(dz_l2)
            dh_l = dh_l + dshortcut
            da_l_shortcut = self.bn1.backward(self.relu1.backward(dshortcut))
            da_l_branch = self.bn1.backward(self.relu1.backward(dh_l)) - da_l_shortcut
        else:
            da_l_branch = self.bn1.backward(self.relu1.backward(dh_l))
            da_l_shortcut = (self.shortcut.backward(dz_l2) if self.shortcut is not None
                             else np.zeros_like(da_l_branch))  # the plain twin: nothing
        da_l = da_l_shortcut + da_l_branch
        self._record_gradients(da_l2=da_l2, dz_l2=dz_l2, dh_l1=dh_l1, dz_l1=dz_l1, dh_l=dh_l,
                               da_l_shortcut=da_l_shortcut, da_l_branch=da_l_branch, da_l=da_l)
        return da_l


class Bottleneck(_ConvBlock):
    """a^[l+3] = g(z^[l+3] + shortcut): 1x1 (reduce) -> 3x3 (stride here) -> 1x1 (expand).

    He et al. 2015's block for deep nets: the 3x3 conv works on mid_channels, the
    1x1s change the width. variant="pre" puts BN-ReLU before each conv as PreActBlock.
    Its pass is ResidualBlock's loop over k = 3 layers: layer i is conv_i -> bn_i -> relu_i
    (post; relu3 after the addition) or bn_i -> relu_i -> conv_i (pre).
    Keys (post): a_l, z_l1, a_l1, z_l2, a_l2, z_l3, shortcut, a_l3.
    Keys (pre): a_l, h_l, z_l1, h_l1, z_l2, h_l2, z_l3, shortcut, a_l3.

    Parameters
    ----------
    in_channels, mid_channels, out_channels : int (torchvision: out = 4 mid)
    stride : int, the 3x3 conv's stride (2 halves H and W)
    shortcut : "identity", "A", "B", "C" or None, as BasicBlock
    variant : "post" or "pre"
    zero_init_residual : bool, bn3's gamma starts at 0
    rng : None, int or np.random.Generator

    Shape
    -----
    a_l: (N, in_channels, H, W)   a_l3: (N, out_channels, ceil(H/stride), ceil(W/stride))

    >>> block = Bottleneck(8, 2, 8, rng=0)
    >>> block(np.ones((1, 8, 4, 4))).shape
    (1, 8, 4, 4)
    """

    def __init__(self, in_channels, mid_channels, out_channels, stride=1, shortcut="B",
                 variant="post", zero_init_residual=False, rng=None):
        where = "Bottleneck"
        c_in = check_int(in_channels, "in_channels", where)
        mid = check_int(mid_channels, "mid_channels", where)
        c_out = check_int(out_channels, "out_channels", where)
        stride = check_int(stride, "stride", where)
        super().__init__(where, [(c_in, mid, 1, 1), (mid, mid, 3, stride), (mid, c_out, 1, 1)],
                         shortcut, variant, zero_init_residual, rng)
        self.mid_channels = mid
