"""08 - Winograd's convolution: 2.25 times fewer multiplications, and why it is not faster in NumPy.

Question: a 3x3 convolution can be computed with fewer multiplications than im2col's one
matrix product (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
2016). PyTorch's CPU kernels use such tricks. Why does resnet_np not?

Winograd F(2x2, 3x3) cuts the output into 2x2 tiles. Each needs the 4x4 tile d of the
padded input under it, and for one kernel g (3x3):

    y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise; y is the 2x2 output tile)

Summed over the input channels, the elementwise product becomes one matrix product per
entry k of the 4x4 tile: M[k] = U[k] @ V[k], with U[k] (C_out, C_in) from the weights and
V[k] (C_in, tiles) from the input. That is 16 * C_in * C_out multiplications per 2x2
tile, 4 C_in C_out per output pixel, against im2col's 9 C_in C_out: 2.25 times fewer.
B^T d B and A^T M A have only 0, 1/2 and +-1 in them: they are additions of whole arrays.

This script computes every stride-1 3x3 convolution of ResNet-20 both ways, in NumPy,
on one core, at batch 128:

1. checks that Winograd gives im2col's numbers (float64, relative error ~1e-16);
2. times each step: im2col (columns, product, back to NCHW) against Winograd (input
   transform, the 16 products, output transform).

The 16 products do get faster than im2col's one product. But the input transform alone
costs more than building im2col's columns: the transforms are passes over memory that
NumPy runs one whole-array operation at a time, and at 16 channels they cost more than
the products save. A compiled kernel does the transforms in registers, tile by tile:
that is where Winograd pays. (resnet_np's own fast path is faster than both plain
versions here: chunks that stay in the cache, both cores. A Winograd built the same way
measured slower than it on every ResNet-20 shape: docs/performance.md.)

Run (from the repository root):

    python examples/08_winograd.py                       # writes runs/08_winograd/
    python examples/08_winograd.py --quick --out /tmp/x  # seconds, small sizes

Writes results.json (keys in REQUIRED_KEYS) and winograd.png.
"""
# %%
import argparse
import json
import os
import sys

import numpy as np

try:
    import resnet_np as rn
except ImportError:     # run from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import resnet_np as rn
from resnet_np.bench import best_ms
from resnet_np.layers import _fast_conv

REQUIRED_KEYS = ["error_float64", "multiplications_per_pixel.im2col",
                 "multiplications_per_pixel.winograd", "shapes"]

# The three constant matrices of F(2x2, 3x3)
BT = np.array([[1, 0, -1, 0],
               [0, 1, 1, 0],
               [0, -1, 1, 0],
               [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0],
              [0.5, 0.5, 0.5],
              [0.5, -0.5, 0.5],
              [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0],
               [0, 1, -1, -1]], dtype=np.float64)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Winograd F(2x2, 3x3) against im2col, in NumPy.")
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--out", default=os.path.join("runs", "08_winograd"))
    p.add_argument("--batch", type=int, default=128)
    args, _ = p.parse_known_args(argv)     # tolerate a notebook kernel's own arguments
    return args


# %% Winograd, step by step
def weight_transform(W):
    """U (16, C_out, C_in): G g G^T for every 3x3 kernel g of W (C_out, C_in, 3, 3)."""
    U = G.astype(W.dtype) @ W @ G.T.astype(W.dtype)                 # (C_out, C_in, 4, 4)
    return np.ascontiguousarray(U.transpose(2, 3, 0, 1)).reshape(16, *W.shape[:2])


def input_transform(x):
    """V (16, C, N * Th * Tw) = B^T d B for every 4x4 tile d (step 2) of x padded by 1."""
    N, C, H, W = x.shape
    Th, Tw = H // 2, W // 2
    xp = np.zeros((C, N, H + 2, W + 2), dtype=x.dtype)            # channels first, padded
    xp[:, :, 1:-1, 1:-1] = x.transpose(1, 0, 2, 3)
    # Entry (u, v) of tile (ty, tx) is xp[2 ty + u, 2 tx + v]. Split xp by the parity of
    # rows and columns once, so that each entry is a contiguous block of one phase.
    phase = [[np.ascontiguousarray(xp[:, :, a::2, b::2]) for b in range(2)] for a in range(2)]

    def d(u, v):            # entry (u, v) of every tile: (C, N, Th, Tw)
        return phase[u % 2][v % 2][:, :, u // 2:u // 2 + Th, v // 2:v // 2 + Tw]

    t = np.empty((4, 4, C, N, Th, Tw), dtype=x.dtype)             # t = B^T d: rows of BT
    for v in range(4):
        np.subtract(d(0, v), d(2, v), out=t[0, v])                # [1, 0, -1, 0]
        np.add(d(1, v), d(2, v), out=t[1, v])                     # [0, 1, 1, 0]
        np.subtract(d(2, v), d(1, v), out=t[2, v])                # [0, -1, 1, 0]
        np.subtract(d(1, v), d(3, v), out=t[3, v])                # [0, 1, 0, -1]
    V = np.empty_like(t)                                          # V = t B: the same, on v
    np.subtract(t[:, 0], t[:, 2], out=V[:, 0])
    np.add(t[:, 1], t[:, 2], out=V[:, 1])
    np.subtract(t[:, 2], t[:, 1], out=V[:, 2])
    np.subtract(t[:, 1], t[:, 3], out=V[:, 3])
    return V.reshape(16, C, N * Th * Tw)


def output_transform(M, N, H, W):
    """y (N, C_out, H, W) = A^T m A for every tile m of M (16, C_out, N * Th * Tw)."""
    C_out, Th, Tw = M.shape[1], H // 2, W // 2
    M = M.reshape(4, 4, C_out, N, Th, Tw)
    s = (M[0] + M[1] + M[2], M[1] - M[2] - M[3])                  # A^T m: rows of AT
    y = np.empty((N, C_out, Th, 2, Tw, 2), dtype=M.dtype)         # pixel (2 ty + a, 2 tx + b)
    for a in range(2):                                            # (A^T m) A: the same, on v
        y[:, :, :, a, :, 0] = (s[a][0] + s[a][1] + s[a][2]).transpose(1, 0, 2, 3)
        y[:, :, :, a, :, 1] = (s[a][1] - s[a][2] - s[a][3]).transpose(1, 0, 2, 3)
    return y.reshape(N, C_out, H, W)


def winograd_conv(x, W):
    """A 3x3 convolution with stride 1 and padding 1 (H and W even), by F(2x2, 3x3)."""
    U = weight_transform(W)                                       # (16, C_out, C_in)
    V = input_transform(x)                                        # (16, C_in, tiles)
    M = U @ V                                                     # (16, C_out, tiles)
    return output_transform(M, x.shape[0], *x.shape[2:])


def im2col_conv(x, W):
    """The same convolution as Conv2d's reference: one product with the columns."""
    cols = rn.im2col(x, (3, 3), 1, 1)                             # (9 C_in, N * H * W)
    out2 = W.reshape(len(W), -1) @ cols                           # (C_out, N * H * W)
    return out2.reshape(len(W), x.shape[0], *x.shape[2:]).transpose(1, 0, 2, 3)


# %% Timing, one core
def time_steps(batch, C, size, repeat, rng):
    """ms of each step of both methods for one C -> C convolution, float32."""
    x = rng.standard_normal((batch, C, size, size)).astype(np.float32)
    W = (rng.standard_normal((C, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    W2, U = W.reshape(C, -1), weight_transform(W)
    cols = rn.im2col(x, (3, 3), 1, 1)
    out2 = W2 @ cols
    V = input_transform(x)
    M = U @ V
    return {
        "im2col": {"columns": best_ms(lambda: rn.im2col(x, (3, 3), 1, 1), repeat),
                   "product": best_ms(lambda: W2 @ cols, repeat),
                   "to NCHW": best_ms(lambda: np.ascontiguousarray(
                       out2.reshape(C, batch, size, size).transpose(1, 0, 2, 3)), repeat)},
        "winograd": {"input transform": best_ms(lambda: input_transform(x), repeat),
                     "16 products": best_ms(lambda: U @ V, repeat),
                     "output transform": best_ms(
                         lambda: output_transform(M, batch, size, size), repeat)},
    }


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 3.6))
    labels, colors = [], {"columns": "#c6dbef", "product": "#3182bd", "to NCHW": "#9ecae1",
                          "input transform": "#fdd0a2", "16 products": "#e6550d",
                          "output transform": "#fdae6b"}
    row, seen = 0, set()
    for shape in results["shapes"]:
        for method in ("im2col", "winograd"):
            left = 0.0
            for step, ms in shape[method].items():
                ax.barh(row, ms, left=left, color=colors[step],
                        label=None if step in seen else f"{method}: {step}")
                seen.add(step)
                left += ms
            labels.append(f"{shape['shape']} {method}")
            row += 1
        row += 0.5
    ax.set_yticks([i + (i // 2) * 0.5 for i in range(len(labels))], labels)
    ax.invert_yaxis()
    ax.set_xlabel("ms, one core, float32")
    ax.set_title("3x3 convolution forward: im2col against Winograd F(2x2, 3x3)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# %% Main
def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)
    batch, repeat = (8, 2) if args.quick else (args.batch, 5)

    # 1. the same numbers (float64)
    x = rng.standard_normal((4, 8, 8, 8))
    W = rng.standard_normal((6, 8, 3, 3))
    reference = im2col_conv(x, W)
    error = float(np.max(np.abs(winograd_conv(x, W) - reference)) / np.max(np.abs(reference)))

    # 2. the steps, timed on one core
    blas = _fast_conv._blas                      # None if OpenBLAS was not found: BLAS default
    previous = blas.get() if blas else None
    if blas:
        blas.set(1)
    try:
        shapes = [{"shape": f"{C}->{C} {size}x{size}", **time_steps(batch, C, size, repeat, rng)}
                  for C, size in ((16, 32), (32, 16), (64, 8))]
    finally:
        if blas:
            blas.set(previous)

    results = {"batch": batch, "error_float64": error,
               "multiplications_per_pixel": {"im2col": "9 C_in C_out", "winograd": "4 C_in C_out",
                                             "ratio": 9 / 4},
               "shapes": shapes}
    print(f"Winograd against im2col, float64: largest relative difference {error:.1e}")
    print("multiplications per output pixel: im2col 9 C_in C_out, Winograd 4 C_in C_out\n")
    print(f"batch {batch}, float32, one core, ms:")
    for shape in shapes:
        for method in ("im2col", "winograd"):
            steps = ", ".join(f"{step} {ms:.1f}" for step, ms in shape[method].items())
            total = sum(shape[method].values())
            print(f"  {shape['shape']:<10} {method:<9} {total:7.1f}   ({steps})")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    plot(results, os.path.join(args.out, "winograd.png"))
    print(f"\nwrote {args.out}/results.json and winograd.png")


if __name__ == "__main__":
    main()
