"""Benchmark: `python -m resnet_np bench [--batch 128] [--json PATH] [--repeat 5]`.

Prints, for every convolution shape of ResNet-20 on CIFAR (all 3x3, padding 1, no
bias), the forward and backward time in ms and GFLOP/s; then ResNet-20 training
steps and inference in images/s, and the peak resident memory of a training step.
If PyTorch is installed, the same figures for torch in the same run: same thread
count (torch.set_num_threads), runs interleaved (numpy, torch, numpy, torch, ...),
and the ratios. Each figure is the best (fastest) of `--repeat` timed runs after a
warm-up: on a shared machine the best run is the one least disturbed by other processes.

FLOPs: a forward convolution is 2 * N * C_out * H_out * W_out * C_in * kH * kW
(multiply and add); backward computes dx and dW, twice that.

Peak memory: each framework runs a few training steps in a fresh subprocess that
reports resource.getrusage(RUSAGE_SELF).ru_maxrss, so the number includes the Python
interpreter and the imported libraries (about 30 MB for NumPy, more for torch).
"""
import argparse
import importlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from .layers.conv import Conv2d

# (label, C_in, C_out, H = W of the input, stride): every conv shape in ResNet-20
CONV_SHAPES = [
    ("3->16 32x32", 3, 16, 32, 1),
    ("16->16 32x32", 16, 16, 32, 1),
    ("16->32 s2 32x32", 16, 32, 32, 2),
    ("32->32 16x16", 32, 32, 16, 1),
    ("32->64 s2 16x16", 32, 64, 16, 2),
    ("64->64 8x8", 64, 64, 8, 1),
]


def _interleaved(runners, repeat):
    """Best ms of each named zero-argument function, running them in turn."""
    for fn in runners.values():
        fn()                                              # warm-up
    times = {name: [] for name in runners}
    for _ in range(repeat):
        for name, fn in runners.items():
            times[name].append(_timed(fn))
    return {name: 1e3 * min(t) for name, t in times.items()}


# -- one convolution ---------------------------------------------------------------
SETTLE_S = 0.02   # idle time before each timed run


def _timed(fn):
    """Seconds for one call of fn, started on idle cores.

    The pause lets the other framework's threads stop spinning first: torch's OpenMP
    workers busy-wait for a few ms after each parallel region, which would otherwise be
    charged to whichever run comes next.
    """
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _numpy_conv(batch, C_in, C_out, size, stride, rng):
    """forward() and backward() -> seconds; backward reuses the cache of one forward."""
    conv = Conv2d(C_in, C_out, 3, stride=stride, padding=1, bias=False, rng=rng)
    x = rng.standard_normal((batch, C_in, size, size)).astype(np.float32)
    dout = rng.standard_normal(conv(x).shape).astype(np.float32)
    return {"forward": lambda: _timed(lambda: conv.forward(x)),
            "backward": lambda: _timed(lambda: conv.backward(dout))}


def _torch_conv(torch, batch, C_in, C_out, size, stride, rng):
    """forward() and backward() -> seconds; backward builds its graph outside the timer."""
    conv2d = torch.nn.functional.conv2d
    w = torch.from_numpy(rng.standard_normal((C_out, C_in, 3, 3)).astype(np.float32))
    x = torch.from_numpy(rng.standard_normal((batch, C_in, size, size)).astype(np.float32))
    w.requires_grad_(True)
    x.requires_grad_(True)
    dout = torch.ones_like(conv2d(x, w, stride=stride, padding=1))

    def backward():
        out = conv2d(x, w, stride=stride, padding=1)
        return _timed(lambda: torch.autograd.grad(out, (x, w), dout))

    return {"forward": lambda: _timed(lambda: conv2d(x, w, stride=stride, padding=1)),
            "backward": backward}


def bench_convs(batch, repeat, torch=None):
    """Rows of {shape, framework, forward_ms, backward_ms, GFLOP/s} for CONV_SHAPES."""
    rng = np.random.default_rng(0)
    rows = []
    for label, C_in, C_out, size, stride in CONV_SHAPES:
        H_out = (size + 2 - 3) // stride + 1
        flops = 2 * batch * C_out * H_out * H_out * C_in * 9
        runners = {"numpy": _numpy_conv(batch, C_in, C_out, size, stride, rng)}
        if torch is not None:
            runners["torch"] = _torch_conv(torch, batch, C_in, C_out, size, stride, rng)
        times = {(name, part): [] for name in runners for part in ("forward", "backward")}
        for run in range(repeat + 1):                     # run 0 is the warm-up
            for part in ("forward", "backward"):
                for name, r in runners.items():           # interleaved: numpy, torch, ...
                    seconds = r[part]()
                    if run:
                        times[name, part].append(seconds)
        for name in runners:
            f_ms = 1e3 * min(times[name, "forward"])
            b_ms = 1e3 * min(times[name, "backward"])
            rows.append({"shape": label, "framework": name, "forward_ms": f_ms,
                         "backward_ms": b_ms, "forward_gflops": flops / f_ms / 1e6,
                         "backward_gflops": 2 * flops / b_ms / 1e6})
    return rows


# -- ResNet-20 -----------------------------------------------------------------------
def _numpy_resnet20(batch, rng):
    """{"train": step, "infer": step} closures for resnet_np's ResNet-20, SGD momentum 0.9."""
    from .losses import SoftmaxCrossEntropy
    from .models import resnet_cifar
    from .optim import SGD
    model = resnet_cifar(depth=20, rng=0)
    loss, sgd = SoftmaxCrossEntropy(), SGD(model, lr=0.1, momentum=0.9)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)

    def train_step():
        model.train()
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        sgd.step()

    def infer():
        model.eval()
        model.forward(x)

    return {"train": train_step, "infer": infer}


def _torch_resnet20_model(torch):
    """ResNet-20 in torch, as resnet_cifar(20, shortcut="A"): 3 stages x 3 BasicBlocks."""
    nn = torch.nn

    class Block(nn.Module):
        """Post-activation BasicBlock with option-A shortcut (subsample, zero channels)."""

        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.stride, self.extra = stride, c_out - c_in

        def forward(self, a):
            z = torch.relu(self.bn1(self.conv1(a)))
            z = self.bn2(self.conv2(z))
            s = a[:, :, ::self.stride, ::self.stride]
            if self.extra:
                s = nn.functional.pad(s, (0, 0, 0, 0, 0, self.extra))
            return torch.relu(z + s)

    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    c_in = 16
    for c_out, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(Block(c_in, c_out, stride if i == 0 else 1))
            c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def _torch_resnet20(torch, batch, rng):
    """{"train": step, "infer": step} closures for torch's ResNet-20, SGD momentum 0.9."""
    nn = torch.nn
    model = _torch_resnet20_model(torch)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.from_numpy(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, batch))

    def train_step():
        model.train()
        sgd.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        sgd.step()

    def infer():
        model.eval()
        with torch.no_grad():
            model(x)

    return {"train": train_step, "infer": infer}


def peak_memory_mb(framework, batch):
    """(peak, increase) in MB for a fresh process running three ResNet-20 training steps.

    peak is the child's ru_maxrss (interpreter and imports included); increase is how
    much the training steps raised it above the peak after imports, model and data.
    Run this before the parent grows: on Linux a child starts with its parent's
    ru_maxrss as a floor (the fork is counted before exec replaces it).
    """
    code = f"from resnet_np import bench; bench._memory_child({framework!r}, {batch})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        return None, None
    before, after = (int(v) / 1024 for v in done.stdout.split()[-2:])  # ru_maxrss is in KB
    return after, after - before


def _memory_child(framework, batch):
    rng = np.random.default_rng(0)
    if framework == "torch":
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        steps = _torch_resnet20(torch, batch, rng)
    else:
        steps = _numpy_resnet20(batch, rng)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    for _ in range(3):
        steps["train"]()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def bench_resnet20(batch, repeat, torch=None, memory=None):
    """{framework: {train_images_per_s, infer_images_per_s, peak_mb, train_increase_mb}}.

    `memory` maps framework -> (peak MB, increase MB), measured earlier by peak_memory_mb.
    """
    rng = np.random.default_rng(0)
    runners = {"numpy": _numpy_resnet20(batch, rng)}
    if torch is not None:
        runners["torch"] = _torch_resnet20(torch, batch, rng)
    result = {name: {} for name in runners}
    for mode in ("train", "infer"):
        ms = _interleaved({name: r[mode] for name, r in runners.items()}, repeat)
        for name in runners:
            result[name][f"{mode}_images_per_s"] = batch / ms[name] * 1e3
    for name in runners:
        result[name]["peak_mb"], result[name]["train_increase_mb"] = \
            (memory or {}).get(name, (None, None))
    return result


# -- printing ------------------------------------------------------------------------
def _print_convs(rows, torch_present):
    print(f"{'conv (3x3, pad 1)':<18} {'fw':>4} {'forward ms':>10} {'GFLOP/s':>8} "
          f"{'backward ms':>11} {'GFLOP/s':>8} {'fw+bw ms':>9}" +
          (f" {'x torch':>8}" if torch_present else ""))
    by_shape = {}
    for row in rows:
        by_shape.setdefault(row["shape"], {})[row["framework"]] = row
    for shape, pair in by_shape.items():
        for name, row in pair.items():
            total = row["forward_ms"] + row["backward_ms"]
            ratio = ""
            if name == "numpy" and "torch" in pair:
                t = pair["torch"]
                ratio = f" {total / (t['forward_ms'] + t['backward_ms']):>7.2f}x"
            print(f"{shape:<18} {name:>5} {row['forward_ms']:>9.2f} "
                  f"{row['forward_gflops']:>8.1f} {row['backward_ms']:>11.2f} "
                  f"{row['backward_gflops']:>8.1f} {total:>9.2f}{ratio}")


def _print_resnet20(result):
    print(f"\n{'ResNet-20':<11} {'train img/s':>11} {'infer img/s':>11} {'peak MB':>8} "
          f"{'training +MB':>12}")
    for name, r in result.items():
        peak, grew = (("n/a", "n/a") if r["peak_mb"] is None else
                      (f"{r['peak_mb']:.0f}", f"{r['train_increase_mb']:.0f}"))
        print(f"{name:<11} {r['train_images_per_s']:>11.1f} {r['infer_images_per_s']:>11.1f} "
              f"{peak:>8} {grew:>12}")
    if "torch" in result:
        n, t = result["numpy"], result["torch"]
        print(f"{'numpy/torch':<11} {n['train_images_per_s'] / t['train_images_per_s']:>10.2f}x "
              f"{n['infer_images_per_s'] / t['infer_images_per_s']:>10.2f}x")
    print("peak MB: ru_maxrss of a fresh process after 3 training steps (interpreter and "
          "imports included);\ntraining +MB: how much the steps raised it above the peak "
          "after imports, model and data.")


def _print_targets(rows, result, batch):
    """The issue's targets: conv fw+bw <= 2x torch, training >= 0.5x torch, peak <= 1 GB."""
    by = {(r["shape"], r["framework"]): r["forward_ms"] + r["backward_ms"] for r in rows}
    lines = []
    if any(f == "torch" for _, f in by):
        worst = max(by[s, "numpy"] / by[s, "torch"] for s, _, _, _, _ in CONV_SHAPES)
        lines.append(f"every conv fw+bw <= 2x torch: worst {worst:.2f}x "
                     f"{'met' if worst <= 2 else 'NOT met'}")
    if result and "torch" in result:
        ratio = result["numpy"]["train_images_per_s"] / result["torch"]["train_images_per_s"]
        lines.append(f"training images/s >= 0.5x torch (stretch 0.7x): {ratio:.2f}x "
                     f"{'met' if ratio >= 0.5 else 'NOT met'}")
    if result and result["numpy"]["peak_mb"] is not None:
        peak = result["numpy"]["peak_mb"]
        lines.append(f"training peak RSS <= 1000 MB: {peak:.0f} MB "
                     f"{'met' if peak <= 1000 else 'NOT met'}")
    if lines:
        note = "" if batch == 128 else "; the issue sets them at batch 128"
        print(f"\nTargets (batch {batch}, float32{note}):\n  " + "\n  ".join(lines))


def _conv_threading():
    """How resnet_np's convolution uses the cores (see resnet_np.layers._fast_conv)."""
    fast = importlib.import_module("resnet_np.layers._fast_conv")
    if fast._blas is None or fast._pool_size() == 1:
        return "chunks in sequence, BLAS on its own threads"
    return (f"chunks of ~{fast.CHUNK_BYTES >> 20} MB of columns on {fast._pool_size()} "
            f"threads, OpenBLAS single-threaded inside each")


def _import_torch(threads):
    import torch
    torch.set_num_threads(threads)
    return torch


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m resnet_np bench",
                                description="Convolution and ResNet-20 throughput, float32.")
    p.add_argument("--batch", type=int, default=128, help="examples per batch (default 128)")
    p.add_argument("--repeat", type=int, default=20,
                   help="timed runs per figure; the best is kept")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--convs-only", action="store_true", help="skip the ResNet-20 section")
    args = p.parse_args(argv)
    threads = os.cpu_count() or 1
    has_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    frameworks = ["numpy"] + (["torch"] if has_torch else [])
    memory = {}
    if not args.convs_only:                                 # first, while this process is small
        memory = {name: peak_memory_mb(name, args.batch) for name in frameworks}
    torch = _import_torch(threads) if has_torch else None
    print(f"resnet_np bench: batch {args.batch}, float32, {threads} CPU threads, best of "
          f"{args.repeat}, NumPy {np.__version__}" +
          (f", torch {torch.__version__} (runs interleaved)" if torch else
           ", PyTorch not installed"))
    print(f"resnet_np conv: {_conv_threading()}")
    rows = bench_convs(args.batch, args.repeat, torch)
    _print_convs(rows, torch is not None)
    report = {"batch": args.batch, "threads": threads, "convs": rows, "resnet20": None}
    if not args.convs_only:
        report["resnet20"] = bench_resnet20(args.batch, args.repeat, torch, memory)
        _print_resnet20(report["resnet20"])
    _print_targets(rows, report["resnet20"], args.batch)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
