"""Benchmark: `python -m resnet_np bench [--batch 128] [--json PATH] [--repeat 5]`.

Prints, for every convolution shape of ResNet-20 on CIFAR (all 3x3, padding 1, no
bias), the forward and backward time in ms and GFLOP/s; then ResNet-20 training
steps and inference in images/s, and the peak resident memory of a training step.
If PyTorch is installed, the same figures for torch in the same run: same thread
count (torch.set_num_threads), runs interleaved (numpy, torch, numpy, torch, ...),
and the ratios. Each figure is the median of `--repeat` timed runs after a warm-up.

FLOPs: a forward convolution is 2 * N * C_out * H_out * W_out * C_in * kH * kW
(multiply and add); backward computes dx and dW, twice that.

Peak memory: each framework runs a few training steps in a fresh subprocess that
reports resource.getrusage(RUSAGE_SELF).ru_maxrss, so the number includes the Python
interpreter and the imported libraries (about 30 MB for NumPy, more for torch).
"""
import argparse
import json
import os
import resource
import statistics
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
    """Median ms of each named zero-argument function, running them in turn."""
    for fn in runners.values():
        fn()                                              # warm-up
    times = {name: [] for name in runners}
    for _ in range(repeat):
        for name, fn in runners.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


# -- one convolution ---------------------------------------------------------------
def _timed(fn):
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
            f_ms = 1e3 * statistics.median(times[name, "forward"])
            b_ms = 1e3 * statistics.median(times[name, "backward"])
            rows.append({"shape": label, "framework": name, "forward_ms": f_ms,
                         "backward_ms": b_ms, "forward_gflops": flops / f_ms / 1e6,
                         "backward_gflops": 2 * flops / b_ms / 1e6})
    return rows


# -- ResNet-20 -----------------------------------------------------------------------
def _numpy_resnet20(batch, rng):
    """(train_step, infer) closures for resnet_np's ResNet-20, or None if not built yet."""
    try:
        from .models import resnet_cifar
        from .losses import SoftmaxCrossEntropy
        from .optim import SGD
        model = resnet_cifar(depth=20, rng=0)
    except (ImportError, AttributeError, NotImplementedError) as error:
        return None, f"{type(error).__name__}: {error}"
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

    return {"train": train_step, "infer": infer}, None


def _torch_resnet20(torch, batch, rng):
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
    model = nn.Sequential(*layers)
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


def _peak_memory_mb(framework, batch):
    """Peak RSS (MB) of a fresh process that runs three ResNet-20 training steps."""
    code = ("import resource, sys; from resnet_np import bench; "
            f"bench._memory_child({framework!r}, {batch}); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=os.environ.copy())
    if done.returncode != 0:
        return None
    return int(done.stdout.split()[-1]) / 1024          # ru_maxrss is in KB on Linux


def _memory_child(framework, batch):
    rng = np.random.default_rng(0)
    if framework == "torch":
        import torch
        steps = _torch_resnet20(torch, batch, rng)
    else:
        steps, _ = _numpy_resnet20(batch, rng)
    for _ in range(3):
        steps["train"]()


def bench_resnet20(batch, repeat, torch=None):
    """{framework: {train_images_per_s, infer_images_per_s, peak_mb}} or a skip reason."""
    rng = np.random.default_rng(0)
    numpy_steps, reason = _numpy_resnet20(batch, rng)
    if numpy_steps is None:
        return None, reason
    runners = {"numpy": numpy_steps}
    if torch is not None:
        runners["torch"] = _torch_resnet20(torch, batch, rng)
    result = {name: {} for name in runners}
    for mode in ("train", "infer"):
        ms = _interleaved({name: r[mode] for name, r in runners.items()}, repeat)
        for name in runners:
            result[name][f"{mode}_images_per_s"] = batch / ms[name] * 1e3
    for name in runners:
        result[name]["peak_mb"] = _peak_memory_mb(name, batch)
    return result, None


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
            print(f"{shape:<18} {name:>5} {row['forward_ms']:>9.2f} {row['forward_gflops']:>8.1f} "
                  f"{row['backward_ms']:>11.2f} {row['backward_gflops']:>8.1f} {total:>9.2f}{ratio}")


def _print_resnet20(result):
    print(f"\n{'ResNet-20':<10} {'train img/s':>12} {'infer img/s':>12} {'peak MB (train)':>16}")
    for name, r in result.items():
        peak = "n/a" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        print(f"{name:<10} {r['train_images_per_s']:>12.1f} {r['infer_images_per_s']:>12.1f} "
              f"{peak:>16}")
    if "torch" in result:
        n, t = result["numpy"], result["torch"]
        print(f"{'numpy/torch':<10} {n['train_images_per_s'] / t['train_images_per_s']:>11.2f}x "
              f"{n['infer_images_per_s'] / t['infer_images_per_s']:>11.2f}x")


def _import_torch(threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m resnet_np bench",
                                description="Convolution and ResNet-20 throughput, float32.")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeat", type=int, default=5, help="timed runs per figure (median)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--convs-only", action="store_true", help="skip the ResNet-20 section")
    args = p.parse_args(argv)
    threads = os.cpu_count() or 1
    torch = None if args.no_torch else _import_torch(threads)
    print(f"resnet_np bench: batch {args.batch}, float32, {threads} CPU threads, "
          f"NumPy {np.__version__}" + (f", torch {torch.__version__}" if torch else
                                       ", PyTorch not installed"))
    rows = bench_convs(args.batch, args.repeat, torch)
    _print_convs(rows, torch is not None)
    report = {"batch": args.batch, "threads": threads, "convs": rows}
    if not args.convs_only:
        result, reason = bench_resnet20(args.batch, args.repeat, torch)
        if result is None:
            print(f"\nResNet-20: skipped, resnet_np.models.resnet_cifar is not available yet "
                  f"({reason})")
        else:
            _print_resnet20(result)
            print("peak MB: ru_maxrss of a fresh process running 3 training steps "
                  "(includes the interpreter and imports)")
        report["resnet20"] = result
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
