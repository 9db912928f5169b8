"""Model builders: residual networks and their plain twins.

A plain twin (residual=False) has the same layers, parameter names and, for the
same rng, the same initial weights as the residual model: only the addition of
the shortcut is missing. Comparing the two isolates what the shortcut does.
"""
import numpy as np

from ._checks import as_generator, check_array, check_choice, check_int, message
from .blocks import SKIPS, VARIANTS, BasicBlock, DenseResidualBlock, PreActBlock
from .layers.activations import ReLU, get_activation
from .layers.base import Layer, Sequential
from .layers.batchnorm import BatchNorm2d
from .layers.conv import Conv2d
from .layers.dense import Dense
from .layers.pooling import GlobalAvgPool2d, MaxPool2d
from .layers.reshape import Concat, Upsample2d
from .shortcuts import RESIDUAL_SHORTCUTS


def residual_mlp(in_features, width, num_blocks, num_classes, skip=2, activation="relu",
                 residual=True, rng=None):
    """A fully connected residual network: stem, num_blocks residual blocks, head.

    Layout: stem = Dense(in_features, width) then g; blocks.0 .. blocks.{n-1} =
    DenseResidualBlock(width, skip, activation); head = Dense(width, num_classes)
    giving logits. Depth in dense layers: 2 + num_blocks * skip.

    residual=False gives the plain twin (shortcut=None in every block) with the same
    initial weights as the residual model built from the same rng.

    Shape
    -----
    x: (N, in_features)   out: (N, num_classes)

    Example
    -------
    >>> net = residual_mlp(8, width=16, num_blocks=2, num_classes=3, rng=0)
    >>> twin = residual_mlp(8, width=16, num_blocks=2, num_classes=3, residual=False, rng=0)
    >>> net.num_parameters() == twin.num_parameters()
    True
    >>> bool(np.array_equal(net.blocks[1].fc2.params["W"], twin.blocks[1].fc2.params["W"]))
    True
    """
    where = "residual_mlp"
    in_features = check_int(in_features, "in_features", where)
    width = check_int(width, "width", where)
    num_blocks = check_int(num_blocks, "num_blocks", where, minimum=0)
    num_classes = check_int(num_classes, "num_classes", where)
    check_choice(check_int(skip, "skip", where, minimum=None), "skip", where, SKIPS)
    rng = as_generator(rng)
    shortcut = "identity" if residual else None
    stem = Dense(in_features, width, rng=rng)
    stem_act = get_activation(activation, where)
    blocks = [DenseResidualBlock(width, skip=skip, activation=activation, shortcut=shortcut,
                                 rng=rng) for _ in range(num_blocks)]
    head = Dense(width, num_classes, rng=rng)
    return Sequential({"stem": stem, "stem_act": stem_act,
                       "blocks": Sequential(*blocks), "head": head})


CIFAR_WIDTHS = (1, 2, 4)   # stage widths as multiples of `width`: 16, 32, 64


def resnet_cifar(depth=20, num_classes=10, in_channels=3, width=16, variant="post",
                 shortcut="A", residual=True, zero_init_residual=False, rng=None):
    """The CIFAR-10 ResNet of He et al. 2015, section 4.2: depth = 6n + 2.

    Layout (post): stem = 3x3 conv (width) -> BN -> ReLU; stage1, stage2, stage3 of
    n BasicBlocks each, widths width, 2 width, 4 width, the first block of stages 2
    and 3 with stride 2; pool = global average; fc = Dense(4 width, num_classes).
    Depth counts the weight layers: 1 + 6n + 1.

    variant="pre" (He et al. 2016): the stem is the conv alone, PreActBlocks, and a
    final BN -> ReLU ("final") before the pooling.

    residual=False gives the plain twin: the same layers, names and initial weights
    for the same rng, with no shortcut additions.

    Shape
    -----
    x: (N, in_channels, H, W)   out: (N, num_classes)

    Example
    -------
    >>> model = resnet_cifar(20, rng=0)
    >>> model.num_parameters()          # the paper's 0.27M
    269722
    >>> model(np.zeros((2, 3, 32, 32), dtype=np.float32)).shape
    (2, 10)
    """
    where = "resnet_cifar"
    depth = check_int(depth, "depth", where)
    if (depth - 2) % 6:
        valid = ", ".join(str(6 * n + 2) for n in range(1, 10))
        raise ValueError(message(where, f"depth = 6n + 2 ({valid}, ...)", f"depth={depth}",
                                 "He et al. use 20, 32, 44, 56 and 110."))
    check_choice(variant, "variant", where, VARIANTS)
    check_choice(shortcut, "shortcut", where, RESIDUAL_SHORTCUTS)
    rng = as_generator(rng)
    n, block_shortcut = (depth - 2) // 6, shortcut if residual else None
    Block = PreActBlock if variant == "pre" else BasicBlock
    stem_conv = Conv2d(check_int(in_channels, "in_channels", where),
                       check_int(width, "width", where), 3, padding=1, bias=False, rng=rng)
    layers = {"stem": Sequential({"conv": stem_conv}) if variant == "pre" else
              Sequential({"conv": stem_conv, "bn": BatchNorm2d(width), "relu": ReLU()})}
    c_in = width
    for s, multiple in enumerate(CIFAR_WIDTHS, start=1):
        c_out = width * multiple
        blocks = [Block(c_in if b == 0 else c_out, c_out, stride=2 if (b == 0 and s > 1) else 1,
                        shortcut=block_shortcut, zero_init_residual=zero_init_residual, rng=rng)
                  for b in range(n)]
        layers[f"stage{s}"] = Sequential(*blocks)
        c_in = c_out
    if variant == "pre":
        layers["final"] = Sequential({"bn": BatchNorm2d(c_in), "relu": ReLU()})
    layers["pool"] = GlobalAvgPool2d()
    layers["fc"] = Dense(c_in, check_int(num_classes, "num_classes", where), rng=rng)
    return Sequential(layers)


IMAGENET_WIDTHS = (64, 128, 256, 512)   # widths of layer1..layer4 in resnet18/34


def _imagenet_resnet(where, blocks_per_layer, num_classes, in_channels, rng):
    """torchvision's BasicBlock ResNet for ImageNet, with its top-level names.

    conv1 (7x7, stride 2, no bias) -> bn1 -> relu -> maxpool (3x3, stride 2, padding 1)
    -> layer1..layer4 (BasicBlocks, shortcut "B", stride 2 in the first block of
    layer2..layer4) -> avgpool (global) -> fc.
    """
    num_classes = check_int(num_classes, "num_classes", where)
    in_channels = check_int(in_channels, "in_channels", where)
    rng = as_generator(rng)
    layers = {"conv1": Conv2d(in_channels, IMAGENET_WIDTHS[0], 7, stride=2, padding=3,
                              bias=False, rng=rng),
              "bn1": BatchNorm2d(IMAGENET_WIDTHS[0]), "relu": ReLU(),
              "maxpool": MaxPool2d(3, stride=2, padding=1)}
    c_in = IMAGENET_WIDTHS[0]
    for s, (c_out, n) in enumerate(zip(IMAGENET_WIDTHS, blocks_per_layer), start=1):
        layers[f"layer{s}"] = Sequential(*[
            BasicBlock(c_in if b == 0 else c_out, c_out, stride=2 if (b == 0 and s > 1) else 1,
                       shortcut="B", rng=rng) for b in range(n)])
        c_in = c_out
    layers["avgpool"] = GlobalAvgPool2d()
    layers["fc"] = Dense(c_in, num_classes, rng=rng)
    return Sequential(layers)


def resnet18(num_classes=1000, in_channels=3, rng=None):
    """ResNet-18 for ImageNet-sized images (He et al. 2015, Table 1), torchvision's layout.

    Layout: conv1 (7x7/2, 64, no bias) -> bn1 -> relu -> maxpool (3x3/2, padding 1);
    layer1..layer4 of [2, 2, 2, 2] BasicBlocks, widths 64, 128, 256, 512, stride 2 in
    the first block of layer2..layer4, shortcut "B" (1x1 conv + BN where the shape
    changes); avgpool (global); fc = Dense(512, num_classes). The top-level names are
    torchvision's; blocks use ours (relu1, relu2, shortcut.conv, shortcut.bn), and
    resnet_np.io.to_torch_state_dict / load_torch_state_dict translate the rest.

    Shape
    -----
    x: (N, in_channels, H, W), H and W at least 32   out: (N, num_classes)

    Example
    -------
    >>> model = resnet18(rng=0)
    >>> model.num_parameters()               # torchvision.models.resnet18(): 11,689,512
    11689512
    >>> [name for name, _ in model.children()]
    ['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4', 'avgpool', 'fc']
    >>> small = resnet18(num_classes=10, rng=0).eval()   # one image: running statistics
    >>> small(np.zeros((1, 3, 32, 32), dtype=np.float32)).shape
    (1, 10)
    """
    return _imagenet_resnet("resnet18", (2, 2, 2, 2), num_classes, in_channels, rng)


def resnet34(num_classes=1000, in_channels=3, rng=None):
    """ResNet-34: resnet18's layout with [3, 4, 6, 3] BasicBlocks in layer1..layer4.

    Shape
    -----
    x: (N, in_channels, H, W), H and W at least 32   out: (N, num_classes)

    Example
    -------
    >>> model = resnet34(rng=0)
    >>> model.num_parameters()               # torchvision.models.resnet34(): 21,797,672
    21797672
    >>> [len(model[f"layer{i}"]) for i in range(1, 5)]
    [3, 4, 6, 3]
    """
    return _imagenet_resnet("resnet34", (3, 4, 6, 3), num_classes, in_channels, rng)


def _double_conv(c_in, c_out, seed):
    """The U-Net's unit: (3x3 conv -> BN -> ReLU) twice, each conv from its own seed."""
    seed1, seed2 = np.random.default_rng(seed).integers(2**63, size=2)
    return Sequential({"conv1": Conv2d(c_in, c_out, 3, padding=1, bias=False, rng=seed1),
                       "bn1": BatchNorm2d(c_out), "relu1": ReLU(),
                       "conv2": Conv2d(c_out, c_out, 3, padding=1, bias=False, rng=seed2),
                       "bn2": BatchNorm2d(c_out), "relu2": ReLU()})


class UNetTiny(Layer):
    """A small U-Net (Ronneberger et al. 2015): per-pixel logits = head(decoder(encoder(x))).

    Encoder level i (i = 0 .. levels-1): enc{i} = double conv to width * 2^i channels,
    then pool{i} = 2x2 max-pool. bottleneck = double conv to width * 2^levels. Decoder
    level i (i = levels-1 .. 0): up{i} = nearest 2x upsampling, then, with long skips,
    cat{i} = Concat(encoder features of level i, upsampled), then dec{i} = double conv
    to width * 2^i. head = 1x1 conv (with bias) to num_classes.
    A double conv is (3x3 conv -> BN -> ReLU) twice.

    Math
    ----
    With long skips, the decoder at level i sees s_i = enc{i}(...) itself: the path
    x -> enc0 -> cat0 -> dec0 -> head crosses 2 + 2 + 1 weight layers, the path through
    the bottleneck 2 (2 levels + 1) + 2 levels + 1. These are skip paths of different
    nonlinearity depth; none is linear (every one crosses dec0's two ReLUs).
    Backward: dcat{i} splits into the part for up{i} and the part for the skip, which
    is added to the gradient coming back up through pool{i}:
    ds_i = pool{i}.backward(...) + dskip_i.

    Parameters
    ----------
    in_channels, num_classes : int
    width : int, channels of level 0 (doubling per level)
    levels : int, number of 2x2 poolings; H and W must be divisible by 2^levels
    long_skips : bool; False gives the same encoder, bottleneck and head (the same
        initial weights for the same rng) and a decoder without concatenation, whose
        first conv of each level then has fewer input channels
    rng : None, int or np.random.Generator

    Shape
    -----
    x: (N, in_channels, H, W)   out: (N, num_classes, H, W)

    Example
    -------
    >>> net = UNetTiny(3, 2, width=4, levels=2, rng=0)
    >>> net(np.zeros((2, 3, 8, 8), dtype=np.float32)).shape
    (2, 2, 8, 8)
    >>> [name for name, _ in net.children()][:6]
    ['enc0', 'pool0', 'enc1', 'pool1', 'bottleneck', 'up1']
    >>> net.dec0.conv1.params["W"].shape         # 4 skip + 8 upsampled input channels
    (4, 12, 3, 3)
    >>> UNetTiny(3, 2, width=4, long_skips=False).dec0.conv1.params["W"].shape
    (4, 8, 3, 3)
    """

    def __init__(self, in_channels, num_classes, width=8, levels=2, long_skips=True, rng=None):
        super().__init__()
        where = "UNetTiny"
        self.in_channels = check_int(in_channels, "in_channels", where)
        self.num_classes = check_int(num_classes, "num_classes", where)
        self.width = check_int(width, "width", where)
        self.levels = check_int(levels, "levels", where)
        self.long_skips = bool(long_skips)
        rng = as_generator(rng)
        seeds = rng.integers(2**63, size=2 * self.levels + 2)     # one per unit, skips or not
        c_in = self.in_channels
        for i in range(self.levels):
            setattr(self, f"enc{i}", _double_conv(c_in, width * 2**i, seeds[i]))
            setattr(self, f"pool{i}", MaxPool2d(2))
            c_in = width * 2**i
        self.bottleneck = _double_conv(c_in, width * 2**self.levels, seeds[self.levels])
        c_in = width * 2**self.levels
        for i in reversed(range(self.levels)):
            setattr(self, f"up{i}", Upsample2d(2))
            if self.long_skips:
                setattr(self, f"cat{i}", Concat())
            c_skip = width * 2**i if self.long_skips else 0
            setattr(self, f"dec{i}", _double_conv(c_in + c_skip, width * 2**i,
                                                  seeds[self.levels + 1 + i]))
            c_in = width * 2**i
        self.head = Conv2d(c_in, self.num_classes, 1, rng=np.random.default_rng(seeds[-1]))

    def _check_input(self, x):
        where, step = self._where, 2**self.levels
        check_array(x, where, 4, f"(N, {self.in_channels}, H, W)", {1: self.in_channels},
                    "Images are NCHW.")
        if x.shape[2] % step or x.shape[3] % step:
            raise ValueError(message(where, f"H and W divisible by 2^levels = {step}",
                                     f"{x.shape[2]} x {x.shape[3]}",
                                     "Crop or pad the images, or use fewer levels."))

    def forward(self, x):
        self._check_input(x)
        skips = []
        for i in range(self.levels):
            x = getattr(self, f"enc{i}").forward(x)                  # (N, width 2^i, H/2^i, W/2^i)
            skips.append(x)
            x = getattr(self, f"pool{i}").forward(x)                 # half the size
        x = self.bottleneck.forward(x)
        for i in reversed(range(self.levels)):
            x = getattr(self, f"up{i}").forward(x)                   # back to level i's size
            if self.long_skips:
                x = getattr(self, f"cat{i}").forward(skips[i], x)    # (N, C_skip + C_up, ...)
            x = getattr(self, f"dec{i}").forward(x)
        self.cache = {"ran": True}
        return self.head.forward(x)                                  # (N, num_classes, H, W)

    def backward(self, dout):
        self._cached("ran")
        d, dskips = self.head.backward(dout), [None] * self.levels
        for i in range(self.levels):                                  # decoder, top level first
            d = getattr(self, f"dec{i}").backward(d)
            if self.long_skips:
                dskips[i], d = getattr(self, f"cat{i}").backward(d)   # split: skip, upsampled
            d = getattr(self, f"up{i}").backward(d)
        d = self.bottleneck.backward(d)
        for i in reversed(range(self.levels)):
            d = getattr(self, f"pool{i}").backward(d)
            if self.long_skips:
                d = d + dskips[i]                                     # the two uses of enc{i}
            d = getattr(self, f"enc{i}").backward(d)
        return d

    def extra_repr(self):
        args = f"{self.in_channels}, {self.num_classes}, width={self.width}, levels={self.levels}"
        return args + ("" if self.long_skips else ", long_skips=False")


def unet_tiny(in_channels, num_classes, width=8, levels=2, long_skips=True, rng=None):
    """A small U-Net for per-pixel classification: UNetTiny(...) (see its docstring).

    long_skips=False is its twin without the long skips: the same encoder,
    bottleneck and head, with the same initial weights for the same rng.

    Shape
    -----
    x: (N, in_channels, H, W), H and W divisible by 2^levels   out: (N, num_classes, H, W)

    Example
    -------
    >>> net = unet_tiny(3, 2, rng=0)
    >>> twin = unet_tiny(3, 2, long_skips=False, rng=0)
    >>> net.num_parameters(), twin.num_parameters()
    (29930, 27050)
    >>> bool(np.array_equal(net.bottleneck.conv1.params["W"], twin.bottleneck.conv1.params["W"]))
    True
    """
    return UNetTiny(in_channels, num_classes, width, levels, long_skips, rng)
