"""resnet_np: residual networks in NumPy with every intermediate and gradient in view."""
from .blocks import BasicBlock, Bottleneck, DenseResidualBlock, PreActBlock, ResidualBlock
from .gradcheck import GradReport, check_gradients, numerical_gradient, rel_error
from .data import (BUILTIN_CLASSES, augment_cifar, channel_stats, load_builtin, load_cifar10,
                   load_digits, load_mnist, normalize, random_crop, random_flip, sample_grid)
from .fuse import fuse
from .io import load, load_torch_state_dict, save, to_torch_state_dict, torch_names
from .inspect import gradient_norms, identity_path_report, linearity_probe, step_through
from .layers import Conv2d, col2im, im2col, reference_kernels
from .layers import BatchNorm1d, BatchNorm2d
from .layers import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from .layers import Concat, Flatten, Upsample2d
from .layers import (Dense, Identity, Layer, LeakyReLU, ReLU, Sequential, Sigmoid, Tanh,
                     get_activation)
from .losses import MSELoss, SoftmaxCrossEntropy
from .models import UNetTiny, residual_mlp, resnet18, resnet34, resnet_cifar, unet_tiny
from .optim import SGD, CosineLR, MultiStepLR, WarmupLR
from .parallel import DataParallel
from .train import Callback, History, ProgressBar, Trainer
from .shortcuts import Projection, ZeroPadShortcut, make_shortcut

__version__ = "0.1.0"

__all__ = [
    "Layer", "Sequential", "Dense", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Identity",
    "get_activation",
    "ResidualBlock", "DenseResidualBlock", "BasicBlock", "PreActBlock", "Bottleneck",
    "residual_mlp", "resnet_cifar", "resnet18", "resnet34", "unet_tiny", "UNetTiny",
    "SoftmaxCrossEntropy", "MSELoss",
    "SGD", "MultiStepLR", "CosineLR", "WarmupLR",
    "Trainer", "History", "Callback", "ProgressBar", "DataParallel",
    "ZeroPadShortcut", "Projection", "make_shortcut",
    "Conv2d", "im2col", "col2im", "reference_kernels",
    "BatchNorm1d", "BatchNorm2d",
    "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d",
    "Flatten", "Upsample2d", "Concat",
    "numerical_gradient", "rel_error", "check_gradients", "GradReport",
    "load_builtin", "BUILTIN_CLASSES", "sample_grid", "load_mnist", "load_cifar10",
    "load_digits", "random_crop", "random_flip", "augment_cifar", "normalize", "channel_stats",
    "save", "load", "to_torch_state_dict", "load_torch_state_dict", "torch_names",
    "step_through", "gradient_norms", "identity_path_report", "linearity_probe",
    "fuse",
]
