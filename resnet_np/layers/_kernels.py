"""The switch between the fast kernels and the readable reference ones.

Conv2d, MaxPool2d and BatchNorm (in training mode) read `REFERENCE` at every call:
False (the default) runs the fast path, True runs the reference, the plain code that
computes exactly the Math of their docstrings. Switch it with `reference_kernels()`,
never by assignment.
"""
from contextlib import contextmanager

REFERENCE = False


@contextmanager
def reference_kernels():
    """Run every Conv2d and pooling layer on its readable reference code.

    Under it, Conv2d computes exactly the Math of its docstring with im2col and col2im
    (out = W2 @ im2col(x) + b, dW2 = dout @ cols^T, dx = col2im(W2^T @ dout)), and
    MaxPool2d takes the max and argmax of each column of im2col, and BatchNorm in training
    mode runs its passes on one thread instead of splitting large batches over the cores
    (resnet_np.layers._fast_batchnorm): the code a debugger steps into is the code to
    read. Outside it the fast path runs; tests assert that both give the same numbers
    (float64 to 1e-12, float32 to 1e-5).

    Use it as a context manager or as a decorator; it nests, and the previous setting
    comes back on exit, even when an exception leaves the block.

    Example
    -------
    >>> import resnet_np as rn
    >>> conv = rn.Conv2d(3, 4, kernel_size=3, padding=1, rng=0)
    >>> x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    >>> with rn.reference_kernels():
    ...     reference = conv(x)
    >>> float(np.max(np.abs(conv(x) - reference))) < 1e-12
    True
    """
    global REFERENCE
    previous, REFERENCE = REFERENCE, True
    try:
        yield
    finally:
        REFERENCE = previous
