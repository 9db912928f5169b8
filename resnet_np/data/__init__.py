"""Data: a built-in synthetic image set, MNIST/CIFAR-10/digits loaders, augmentation.

Every loader returns ``(X_train, y_train), (X_test, y_test)`` with X float32 NCHW in
[0, 1] and y int64, so any model in the library takes any data set unchanged.

    builtin.py    load_builtin, make_builtin, sample_grid: 10 classes of 16x16 shapes
    loaders.py    load_mnist (IDX), load_cifar10 (binary, or pickle through a
                  restricted unpickler), load_digits (scikit-learn)
    augment.py    random_crop, random_flip, augment_cifar, channel_stats, normalize
"""
from .augment import augment_cifar, channel_stats, normalize, random_crop, random_flip
from .builtin import (BUILTIN_CLASSES, IMAGE_SIZE, load_builtin,
                      make_builtin, sample_grid)
from .loaders import RestrictedUnpickler, load_cifar10, load_digits, load_mnist

__all__ = ["load_builtin", "make_builtin", "sample_grid", "BUILTIN_CLASSES", "IMAGE_SIZE",
           "load_mnist", "load_cifar10", "load_digits", "RestrictedUnpickler",
           "random_crop", "random_flip", "augment_cifar", "channel_stats", "normalize"]
