"""Benchmark: `python -m resnet_np bench [--batch 128] [--scaling-batch 32] [--layers] [--json PATH]`.

Prints, for every convolution shape of ResNet-20 on CIFAR (all 3x3, padding 1, no
bias), the forward and backward time in ms and GFLOP/s; then ResNet-20 training
steps and inference in images/s, the peak resident memory of training steps and of
inference passes, the time per image of a training step at a second batch size
(the batch-scaling line), and the targets of issue 12, each met or not met.
If PyTorch is installed, the same figures for torch in the same run: same thread
count (torch.set_num_threads), runs interleaved (numpy, torch, numpy, torch, ...),
and the ratios. Each figure is the best (fastest) of `--repeat` timed runs after a
warm-up: on a shared machine the best run is the one least disturbed by other processes.

FLOPs: a forward convolution is 2 * N * C_out * H_out * W_out * C_in * kH * kW
(multiply and add); backward computes dx and dW, twice that.

Peak memory: each framework runs three training steps, or three inference passes, in a
fresh subprocess that reports resource.getrusage(RUSAGE_SELF).ru_maxrss, so the number
includes the Python interpreter and the imported libraries (about 30 MB for NumPy, more
for torch).

Layer by layer (--layers, Linux): a training step on one core, on the images one core
takes in the trainer's step (batch / cores), each framework in fresh processes held on
that core, timed per kind of layer and pass: resnet_np by a timer around every layer's
forward and backward (layer_profile), torch by torch.profiler's time per operator
(TORCH_OPERATORS). Where is PyTorch faster, and by how much?
"""
import argparse
import collections
import importlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from ._pages import prefer_small_pages
from .bench_report import (print_convs, print_layers, print_resnet20, print_scaling,
                           print_targets, targets)
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


def best_ms(fn, repeat):
    """Best wall time of fn() in ms over `repeat` calls, after one warm-up call
    (back to back: what the examples' step-by-step timings use)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def best_step(step, spent, repeat):
    """(seconds, what the timers put in `spent`) of the fastest of `repeat` calls of step(),
    after one warm-up call; `spent` is the Counter the layers' timers add to."""
    step()
    best = None
    for _ in range(repeat):
        spent.clear()
        start = time.perf_counter()
        step()
        total = time.perf_counter() - start
        if best is None or total < best[0]:
            best = (total, dict(spent))
    return best


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
    """{"train", "infer", "eval"} closures for resnet_np's ResNet-20, SGD momentum 0.9.

    "train" runs a step as Trainer.fit does: DataParallel, one replica per core.
    "infer" runs the inference path, model.fuse() (BatchNorm folded into the convs; the
    copy is made once, before timing, as after training); "eval" the unfused eval model
    as Trainer.evaluate runs it (DataParallel in eval mode).
    """
    from .losses import SoftmaxCrossEntropy
    from .models import resnet_cifar
    from .optim import SGD
    from .parallel import DataParallel
    model = resnet_cifar(depth=20, rng=0)
    runner = DataParallel(model)      # as Trainer.fit and evaluate run it (parallel=True)
    loss, sgd = SoftmaxCrossEntropy(), SGD(model, lr=0.1, momentum=0.9)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    fused = model.fuse()

    def train_step():
        model.train()
        loss.forward(runner.forward(x), y)
        runner.backward(loss.backward())
        sgd.step()

    def infer():
        fused.forward(x)

    def unfused_eval():
        model.eval()
        runner.forward(x)

    return {"train": train_step, "infer": infer, "eval": unfused_eval}


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

    return {"train": train_step, "infer": infer, "eval": infer}


def peak_memory_mb(framework, batch, mode="train"):
    """(peak, increase) in MB for a fresh process running three ResNet-20 steps of `mode`
    ("train": training steps, "infer": inference passes).

    peak is the child's ru_maxrss (interpreter and imports included); increase is how
    much the steps raised it above the peak after imports, model and data.
    Run this before the parent grows: on Linux a child starts with its parent's
    ru_maxrss as a floor (the fork is counted before exec replaces it).
    """
    code = (f"from resnet_np import bench; "
            f"bench._memory_child({framework!r}, {batch}, {mode!r})")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        return None, None
    before, after = (int(v) / 1024 for v in done.stdout.split()[-2:])  # ru_maxrss is in KB
    return after, after - before


def _memory_child(framework, batch, mode):
    prefer_small_pages()
    rng = np.random.default_rng(0)
    if framework == "torch":
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        steps = _torch_resnet20(torch, batch, rng)
    else:
        steps = _numpy_resnet20(batch, rng)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    for _ in range(3):
        steps[mode]()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def bench_resnet20(batch, repeat, torch=None, memory=None):
    """{framework: {train_images_per_s, infer_images_per_s, eval_images_per_s, peak_mb,
    train_increase_mb, infer_peak_mb, infer_increase_mb}}.

    infer: numpy's fused copy (model.fuse()), torch's eval model under no_grad();
    eval: numpy's unfused eval model as Trainer.evaluate runs it (for torch, the same as
    infer).

    `memory` maps (framework, mode) -> (peak MB, increase MB), measured earlier by
    peak_memory_mb.
    """
    rng = np.random.default_rng(0)
    runners = {"numpy": _numpy_resnet20(batch, rng)}
    if torch is not None:
        runners["torch"] = _torch_resnet20(torch, batch, rng)
    result = {name: {} for name in runners}
    for mode in ("train", "infer", "eval"):
        ms = _interleaved({name: r[mode] for name, r in runners.items()
                           if mode != "eval" or name == "numpy"}, repeat)
        for name in ms:
            result[name][f"{mode}_images_per_s"] = batch / ms[name] * 1e3
    if "torch" in result:                               # torch's inference is its eval model
        result["torch"]["eval_images_per_s"] = result["torch"]["infer_images_per_s"]
    for name in runners:
        for mode, prefix in (("train", ""), ("infer", "infer_")):
            peak, grew = (memory or {}).get((name, mode), (None, None))
            result[name][f"{prefix}peak_mb"] = peak
            result[name][f"{mode}_increase_mb"] = grew
    return result


def bench_scaling(batch, repeat, torch=None):
    """{framework: ms per image of a ResNet-20 training step at `batch`} (interleaved)."""
    rng = np.random.default_rng(1)
    runners = {"numpy": _numpy_resnet20(batch, rng)["train"]}
    if torch is not None:
        runners["torch"] = _torch_resnet20(torch, batch, rng)["train"]
    return {name: ms / batch for name, ms in _interleaved(runners, repeat).items()}


# -- one core, layer by layer ---------------------------------------------------------
# torch.profiler's operators, each counted with the operators it calls, and the kind of
# resnet_np layer and pass each is. What no operator here covers (the shortcuts' slicing and
# padding, the additions, the loss, SGD, autograd's own work) is "the rest".
TORCH_OPERATORS = {
    "aten::convolution": ("Conv2d", "forward"),
    "aten::convolution_backward": ("Conv2d", "backward"),
    "aten::batch_norm": ("BatchNorm2d", "forward"),
    "aten::native_batch_norm_backward": ("BatchNorm2d", "backward"),
    "aten::relu": ("ReLU", "forward"),
    "aten::threshold_backward": ("ReLU", "backward"),
}


def layer_profile(images, repeat):
    """(step ms, {(layer kind, pass): ms}) of the fastest of `repeat` ResNet-20 training
    steps on `images` random CIFAR-sized images (model.forward and model.backward, SGD with
    momentum 0.9), every layer's forward and backward timed; the rest of the step is the
    loss, SGD and the Python between the layers."""
    from .losses import SoftmaxCrossEntropy
    from .models import resnet_cifar
    from .optim import SGD
    rng = np.random.default_rng(0)
    model = resnet_cifar(depth=20, rng=0)
    loss, sgd = SoftmaxCrossEntropy(), SGD(model, lr=0.1, momentum=0.9)
    x = rng.standard_normal((images, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, images)
    spent = collections.Counter()

    def timed(layer, name):                      # wrap one bound method of one layer
        method, kind = getattr(layer, name), type(layer).__name__

        def run(arg):
            start = time.perf_counter()
            result = method(arg)
            spent[kind, name] += time.perf_counter() - start
            return result
        setattr(layer, name, run)

    for _, layer in model.named_layers():
        if not layer.children():                 # leaves: Conv2d, BatchNorm2d, ReLU, ...
            timed(layer, "forward")
            timed(layer, "backward")

    def step():
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        sgd.step()

    total, spent_best = best_step(step, spent, repeat)
    return 1e3 * total, {key: 1e3 * s for key, s in spent_best.items()}


def torch_layer_profile(torch, images, repeat):
    """The same for torch's ResNet-20 (in the threads torch was given): its fastest of
    `repeat` steps run under torch.profiler, the time of each TORCH_OPERATORS entry."""
    from torch.profiler import ProfilerActivity, profile
    steps = _torch_resnet20(torch, images, np.random.default_rng(0))
    steps["train"]()                             # warm-up
    best = None
    for _ in range(repeat):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            steps["train"]()
            total = time.perf_counter() - start
        if best is None or total < best[0]:
            best = (total, prof)
    spent = collections.Counter()
    for event in best[1].key_averages():               # of the fastest step only
        if event.key in TORCH_OPERATORS:
            spent[TORCH_OPERATORS[event.key]] += event.cpu_time_total / 1e3   # us -> ms
    return 1e3 * best[0], dict(spent)


def held_python(cores, code):
    """The command that runs the Python `code` in a fresh process held on `cores` (Linux)
    from its first line, before NumPy loads, so that resnet_np and OpenBLAS there see only
    those cores."""
    return [sys.executable, "-c", f"import os; os.sched_setaffinity(0, {sorted(cores)}); {code}"]


def _layers_child(framework, images, repeat):
    """One process of bench_layers: print {"step_ms", "rows"} as JSON."""
    prefer_small_pages()
    if framework == "torch":
        step_ms, spent = torch_layer_profile(_import_torch(1), images, repeat)
    else:
        step_ms, spent = layer_profile(images, repeat)
    rows = [{"layer": kind, "pass": name, "ms": ms} for (kind, name), ms in spent.items()]
    print(json.dumps({"step_ms": step_ms, "rows": rows}))


def bench_layers(images, repeat, frameworks, rounds=2):
    """{"images", "core", framework: {"step_ms", "rows"}}: each framework's fastest step on
    one core, from `rounds` fresh processes each, alternating; None where a process cannot
    be held on one core (not Linux)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    result = {"images": images, "core": core}
    for _ in range(rounds):
        for name in frameworks:
            code = f"from resnet_np import bench; bench._layers_child({name!r}, {images}, {repeat})"
            done = subprocess.run(held_python({core}, code), capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"bench --layers: the {name} process failed (exit code "
                                   f"{done.returncode}):\n{done.stderr[-2000:]}")
            found = json.loads(done.stdout.strip().splitlines()[-1])
            if name not in result or found["step_ms"] < result[name]["step_ms"]:
                result[name] = found
    return result


def _conv_threading():
    """How resnet_np's convolution uses the cores (see resnet_np.layers._fast_conv)."""
    fast = importlib.import_module("resnet_np.layers._fast_conv")
    if fast._blas is None or fast._pool_size() == 1:
        return "chunks in sequence, BLAS on its own threads"
    products = ("one BLAS gemm per kernel offset" if np.dtype(np.float32) in fast._blas.gemm
                else "NumPy products")
    return (f"chunks of ~{fast.CHUNK_BYTES >> 20} MB on {fast._pool_size()} threads, "
            f"OpenBLAS single-threaded inside each; {products}")


def _import_torch(threads):
    import torch
    torch.set_num_threads(threads)
    return torch


def _scaling_batches(batch, other):
    """The batch sizes of the batch-scaling line: `batch` and `other` (0: none)."""
    if other is None:
        other = 32 if batch != 32 else 128
    return sorted({batch, other}) if other else []


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m resnet_np bench",
                                description="Convolution and ResNet-20 throughput, float32.")
    p.add_argument("--batch", type=int, default=128, help="examples per batch (default 128)")
    p.add_argument("--scaling-batch", type=int, default=None, metavar="N",
                   help="second batch size for the batch-scaling line (default 32, or 128 "
                        "when --batch is 32; 0 skips the line)")
    p.add_argument("--repeat", type=int, default=20,
                   help="timed runs per figure; the best is kept")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--convs-only", action="store_true", help="skip the ResNet-20 section")
    p.add_argument("--layers", action="store_true",
                   help="also time a training step on one core layer by layer, against torch "
                        "(each framework in fresh processes held on one core; Linux)")
    args = p.parse_args(argv)
    pages = prefer_small_pages()   # as `python -m resnet_np train` does; see resnet_np/_pages.py
    threads = os.cpu_count() or 1
    has_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    frameworks = ["numpy"] + (["torch"] if has_torch else [])
    memory = {}
    if not args.convs_only:                                 # first, while this process is small
        memory = {(name, mode): peak_memory_mb(name, args.batch, mode)
                  for name in frameworks for mode in ("train", "infer")}
    torch = _import_torch(threads) if has_torch else None
    print(f"resnet_np bench: batch {args.batch}, float32, {threads} CPU threads, best of "
          f"{args.repeat}, NumPy {np.__version__}" +
          (f", torch {torch.__version__} (runs interleaved)" if torch else
           ", PyTorch not installed"))
    print(f"resnet_np conv: {_conv_threading()}")
    print("NumPy huge pages: " + ("not requested (as in python -m resnet_np train)" if pages is not None
                                  else "as NUMPY_MADVISE_HUGEPAGE or NumPy decides"))
    rows = bench_convs(args.batch, args.repeat, torch)
    print_convs(rows, torch is not None)
    report = {"batch": args.batch, "threads": threads, "convs": rows, "resnet20": None,
              "scaling": None}
    if not args.convs_only:
        report["resnet20"] = bench_resnet20(args.batch, args.repeat, torch, memory)
        print_resnet20(report["resnet20"])
        scaling = {}
        for b in _scaling_batches(args.batch, args.scaling_batch):
            scaling[b] = ({name: 1e3 / r["train_images_per_s"]
                           for name, r in report["resnet20"].items()}
                          if b == args.batch else bench_scaling(b, args.repeat, torch))
        if scaling:
            print_scaling(scaling)
            report["scaling"] = scaling
    report["layers"] = None
    if args.layers:
        images = max(1, args.batch // threads)          # one core's share of the batch
        report["layers"] = bench_layers(images, args.repeat, frameworks)
        print_layers(report["layers"], list(TORCH_OPERATORS.values()))
    found = targets(rows, report["resnet20"], report["scaling"])
    report["targets"] = [{"target": text, "met": met} for text, met in found]
    print_targets(found, args.batch)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
