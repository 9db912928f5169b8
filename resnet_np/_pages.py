"""NumPy and transparent huge pages: off for training and benchmarks (docs/performance.md).

On Linux, NumPy asks the kernel to back every array of 4 MB or more with 2 MB "huge"
pages (madvise MADV_HUGEPAGE). A training step allocates and frees about 0.6 GB of
activations and gradients, and the C allocator hands part of it back to the kernel
between steps, so every step touches fresh memory again. With the kernel's usual setting
(/sys/kernel/mm/transparent_hugepage/defrag = madvise) a fault in such memory first
compacts physical memory to find a free 2 MB page: a ResNet-20 step at batch 128 stalled
for 20-50 ms at one layer on the development machine. PyTorch's allocator does not ask
for huge pages by default; `python -m resnet_np train` and `bench` stop NumPy asking too.
In your own script, set NumPy's own switch before Python starts:
NUMPY_MADVISE_HUGEPAGE=0 python my_script.py.
"""
import os


def prefer_small_pages():
    """Stop NumPy requesting huge pages for new arrays in this process.

    Does nothing if the user chose with the NUMPY_MADVISE_HUGEPAGE environment variable,
    or if this NumPy has no such switch. Returns NumPy's previous setting (True or
    False), or None when nothing was changed. Only speed changes, never a result.
    """
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return None
    try:
        from numpy._core.multiarray import _set_madvise_hugepage      # NumPy 2
    except ImportError:
        try:
            from numpy.core.multiarray import _set_madvise_hugepage   # NumPy 1
        except ImportError:
            return None
    return bool(_set_madvise_hugepage(False))
