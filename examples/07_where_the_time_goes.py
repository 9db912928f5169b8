"""07 - Where the time of a ResNet-20 training step goes, and why: a profile and a roofline.

Question: resnet_np's convolutions are matrix products (im2col), and NumPy hands those
to an optimised BLAS. Why, then, is a 16-channel 3x3 convolution far from the machine's
peak, and where does the rest of a training step go?

This script measures, on the machine it runs on:

1. the GEMM rate: a large float32 matrix product, on one core and on all of them;
2. the memory bandwidth: an array copy (read + write) and a = b + c, one core, on
   arrays larger than the caches and on 8 MB arrays (one stage-1 activation at batch 128);
3. every ResNet-20 convolution's forward pass: its FLOPs, the bytes it must move at
   least (input, weights, output) and the bytes its column matrix moves (written once,
   read once by the product), and the GFLOP/s it reaches;
4. one ResNet-20 training step, timed layer by layer (forward and backward per kind of
   layer): the profile table of docs/performance.md;
5. the same step as Trainer.fit runs it, on one replica of the model per core
   (resnet_np.DataParallel): per replica, each kind of layer's wall time and its thread's
   CPU time (time.thread_time, which leaves out waiting: for BatchNorm, the difference is
   mostly the wait for the other replica's sums);
6. what the second core buys: a training step on half the batch on one core alone, two
   such steps at once in two processes (one core each), and DataParallel on the whole
   batch (one thread per core, in one process). Two processes do twice the work of one if
   the cores do not slow each other; DataParallel falls short of that by the GIL its
   threads share and by the replicas waiting for each other at BatchNorm's meetings (which
   two processes that met would wait at too: docs/performance.md). Each runs
   in a fresh process (this script again, with --time-steps), held on its cores before
   NumPy starts; Linux only (elsewhere the three are None).

The roofline: a kernel that does F flops while moving B bytes cannot run faster than
min(peak GFLOP/s, F / B * bandwidth). F / B is its arithmetic intensity; below the ridge
point (peak / bandwidth flop per byte) memory is the limit, above it arithmetic is.

Run (from the repository root):

    python examples/07_where_the_time_goes.py                   # writes runs/07_where_the_time_goes/
    python examples/07_where_the_time_goes.py --out docs/figures/performance
    python examples/07_where_the_time_goes.py --quick --out /tmp/x   # seconds, small sizes

Timings are best-of-repeats on whatever else the machine is doing; run it on an idle
machine for the figures of docs/performance.md. Writes results.json (keys in
REQUIRED_KEYS), roofline.png and profile.png.
"""
# %%
import argparse
import collections
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

try:
    import resnet_np as rn
except ImportError:     # run from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import resnet_np as rn
from resnet_np.bench import CONV_SHAPES, best_ms, best_step, held_python, layer_profile
from resnet_np._pages import prefer_small_pages
from resnet_np.layers import _fast_conv

REQUIRED_KEYS = ["machine.cores", "machine.l2_bytes", "gemm_gflops.one_core",
                 "gemm_gflops.all_cores", "bandwidth_gb_s.copy", "bandwidth_gb_s.add",
                 "bandwidth_gb_s.copy_activation",
                 "ridge_flop_per_byte", "convs", "elementwise.gflops", "profile.step_ms", "profile.rows",
                 "replicas.step_ms", "replicas.count", "replicas.rows",
                 "cores.images", "cores.alone_ms", "cores.side_by_side_ms",
                 "cores.dataparallel_ms"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Profile and roofline of ResNet-20 on this CPU.")
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--out", default=os.path.join("runs", "07_where_the_time_goes"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=128, help="batch of the conv and profile runs")
    p.add_argument("--time-steps", type=int, metavar="IMAGES",
                   help="only time training steps on IMAGES images and print their best and "
                        "median ms as JSON (section 6 runs this in its own processes)")
    p.add_argument("--repeat", type=int, default=10, help="timed steps, with --time-steps")
    p.add_argument("--wait", action="store_true",
                   help="with --time-steps: print 'ready' after the warm-up step, then wait "
                        "for a line on standard input before timing")
    args, _ = p.parse_known_args(argv)     # tolerate a notebook kernel's own arguments
    return args


# %% 1-2. The two ceilings: GEMM rate and memory bandwidth
def gemm_gflops(n, repeat, threads):
    """GFLOP/s of a float32 (n x n) @ (n x n) product with BLAS on `threads` threads."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    out = np.empty((n, n), dtype=np.float32)
    blas = _fast_conv._blas                      # None if OpenBLAS was not found: BLAS default
    previous = blas.get() if blas else None
    if blas:
        blas.set(threads)
    try:
        ms = best_ms(lambda: np.matmul(a, b, out=out), repeat)
    finally:
        if blas:
            blas.set(previous)
    return 2 * n**3 / ms / 1e6


def bandwidth_gb_s(megabytes, repeat):
    """GB/s of a copy (8 bytes moved per float32: read + write) and of a = b + c (12)."""
    n = megabytes * (1 << 20) // 4
    b, c = np.ones(n, dtype=np.float32), np.ones(n, dtype=np.float32)
    a = np.empty_like(b)
    copy_ms = best_ms(lambda: np.copyto(a, b), repeat)
    add_ms = best_ms(lambda: np.add(b, c, out=a), repeat)
    return {"copy": 8 * n / copy_ms / 1e6, "add": 12 * n / add_ms / 1e6}


# %% 3. Every ResNet-20 convolution on the roofline
def conv_points(batch, repeat):
    """FLOPs, bytes (least and with columns), intensity and measured GFLOP/s per conv."""
    rng = np.random.default_rng(0)
    points = []
    for label, C_in, C_out, size, stride in CONV_SHAPES:
        conv = rn.Conv2d(C_in, C_out, 3, stride=stride, padding=1, bias=False, rng=0)
        x = rng.standard_normal((batch, C_in, size, size)).astype(np.float32)
        H_out = (size - 1) // stride + 1
        flops = 2 * batch * C_out * H_out * H_out * C_in * 9
        least = 4 * (x.size + conv.params["W"].size + batch * C_out * H_out * H_out)
        columns = least + 2 * 4 * (C_in * 9) * batch * H_out * H_out   # written, then read
        ms = best_ms(lambda: conv.forward(x), repeat)
        points.append({"shape": label, "flops": flops, "bytes_least": least,
                       "bytes_columns": columns, "intensity_least": flops / least,
                       "intensity_columns": flops / columns, "forward_ms": ms,
                       "gflops": flops / ms / 1e6})
    return points


def elementwise_point(batch, repeat):
    """BatchNorm in eval mode, y = x * scale + shift: 2 flops per value, 2 passes (16 bytes)."""
    bn = rn.BatchNorm2d(16).eval()
    x = np.random.default_rng(0).standard_normal((batch, 16, 32, 32)).astype(np.float32)
    ms = best_ms(lambda: bn.forward(x), repeat)
    return {"intensity": 2 / 16, "gflops": 2 * x.size / ms / 1e6, "ms": ms}


# %% 4. One training step, layer by layer
def profile_step(batch, repeat):
    """(step ms, rows): the best of `repeat` steps, ms per (layer kind, pass), as
    resnet_np.bench.layer_profile times them (a timer around every layer's forward and
    backward), then the rest of the step: the loss, SGD and the Python between layers."""
    step_ms, spent = layer_profile(batch, repeat)
    rows = [{"layer": kind, "pass": name, "ms": ms, "share": ms / step_ms}
            for (kind, name), ms in sorted(spent.items(), key=lambda kv: -kv[1])]
    rest = step_ms - sum(spent.values())
    rows.append({"layer": "loss, SGD, Python", "pass": "", "ms": rest, "share": rest / step_ms})
    return step_ms, rows


# %% 5. The same step on one replica per core, as Trainer.fit runs it
def trainer_step(batch):
    """(model, step): ResNet-20 and step(), one training step on `batch` random CIFAR-sized
    images as Trainer.fit runs it (DataParallel, SGD with momentum 0.9)."""
    rng = np.random.default_rng(0)
    model = rn.resnet_cifar(20, rng=0)
    runner = rn.DataParallel(model)
    loss, sgd = rn.SoftmaxCrossEntropy(), rn.SGD(model, lr=0.1, momentum=0.9)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)

    def step():
        loss.forward(runner.forward(x), y)
        runner.backward(loss.backward())
        sgd.step()
    return model, step


def profile_replicas(batch, repeat):
    """(step ms, replicas, rows) of DataParallel training steps, the best of `repeat`:
    per (layer kind, pass), each replica's wall ms and CPU ms (its thread's own time).

    The replicas are copies of the model made inside DataParallel, so the timer wraps the
    layer classes' forward and backward (every instance, copies included) for the length
    of the run, and tells the replicas apart by the thread that calls: the calling thread
    runs replica 0 (the model itself)."""
    model, step = trainer_step(batch)
    spent = collections.Counter()                # (kind, pass, replica, "wall"/"cpu") -> s
    replica_of = {threading.get_ident(): 0}      # thread -> replica, in order of first call

    def timed(cls, name):                        # wrap one method of one layer class
        method = getattr(cls, name)

        def run(self, arg):
            wall, cpu = time.perf_counter(), time.thread_time()
            result = method(self, arg)
            who = replica_of.setdefault(threading.get_ident(), len(replica_of))
            spent[cls.__name__, name, who, "wall"] += time.perf_counter() - wall
            spent[cls.__name__, name, who, "cpu"] += time.thread_time() - cpu
            return result
        return run

    classes = {type(layer) for _, layer in model.named_layers() if not layer.children()}
    saved = {(cls, name): cls.__dict__.get(name) for cls in classes
             for name in ("forward", "backward")}
    for cls, name in saved:
        setattr(cls, name, timed(cls, name))
    try:
        total, spent_best = best_step(step, spent, repeat)      # the warm-up makes the replicas
    finally:                                     # the classes as they were
        for (cls, name), method in saved.items():
            if method is None:
                delattr(cls, name)               # it was inherited
            else:
                setattr(cls, name, method)
    replicas = 1 + max(who for _, _, who, _ in spent_best)
    kinds = sorted({(kind, name) for kind, name, _, _ in spent_best},
                   key=lambda k: -spent_best.get((*k, 0, "wall"), 0.0))
    rows = [{"layer": kind, "pass": name,
             "wall_ms": [1e3 * spent_best.get((kind, name, r, "wall"), 0.0) for r in range(replicas)],
             "cpu_ms": [1e3 * spent_best.get((kind, name, r, "cpu"), 0.0) for r in range(replicas)]}
            for kind, name in kinds]
    return 1e3 * total, replicas, rows


# %% 6. What the second core buys
def time_steps(images, repeat, wait=False):
    """{"best", "median"} ms of `repeat` training steps of ResNet-20 on `images` CIFAR-sized
    images, as Trainer.fit runs them (DataParallel: on one core, the model itself), after
    one warm-up step and, with wait, a "ready" line out and a line in (the go)."""
    _, step = trainer_step(images)
    step()
    if wait:
        print("ready", flush=True)
        sys.stdin.readline()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(1e3 * (time.perf_counter() - start))
    return {"best": min(times), "median": float(np.median(times))}


def steps_in_processes(images, repeat, core_sets):
    """time_steps(images, repeat) in one fresh process per set of cores in core_sets, timed
    at the same time (each waits, warmed up, for the go). Each process holds itself on its
    cores before it runs this script, so resnet_np there sees only those."""
    argv = [os.path.abspath(__file__), "--time-steps", str(images), "--repeat", str(repeat),
            "--wait"]
    code = f"import runpy, sys; sys.argv = {argv!r}; runpy.run_path(sys.argv[0], run_name='__main__')"
    children = [subprocess.Popen(held_python(cores, code), stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True) for cores in core_sets]
    for child in children:
        child.stdout.readline()                  # "ready" (or "" if it failed)
    outputs = [child.communicate("go\n")[0] for child in children]
    for child in children:
        if child.returncode:
            raise RuntimeError(f"a timing process failed (exit code {child.returncode})")
    return [json.loads(out.strip().splitlines()[-1]) for out in outputs]


def second_core(batch, repeat):
    """Section 6: {"images", "alone_ms", "side_by_side_ms", "dataparallel_ms"}, the steps
    on batch // 2 images per core; None where cores cannot be chosen (not Linux) or there
    is only one."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    half = max(1, batch // 2)
    if len(cores) < 2:
        return {"images": half, "alone_ms": None, "side_by_side_ms": None,
                "dataparallel_ms": None}
    first, second = {cores[0]}, {cores[1]}
    alone, = steps_in_processes(half, repeat, [first])
    side_by_side = steps_in_processes(half, repeat, [first, second])
    dataparallel, = steps_in_processes(2 * half, repeat, [first | second])
    return {"images": half, "alone_ms": alone, "side_by_side_ms": side_by_side,
            "dataparallel_ms": dataparallel}


# %% Figures
def plot_roofline(results, path):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    peak, peak_all = results["gemm_gflops"]["one_core"], results["gemm_gflops"]["all_cores"]
    intensity = np.logspace(-1.5, 2.5, 200)
    for bw, text, style in ((results["bandwidth_gb_s"]["copy"], "large arrays", "-"),
                            (results["bandwidth_gb_s"]["copy_activation"], "8 MB arrays", "--")):
        ax.plot(intensity, np.minimum(peak, intensity * bw), style, color="0.3",
                label=f"roof: 1-core GEMM {peak:.0f} GFLOP/s, {text} {bw:.0f} GB/s")
    ax.axhline(peak_all, color="0.6", linestyle=":", label=f"all-core GEMM {peak_all:.0f} GFLOP/s")
    for i, p in enumerate(results["convs"]):
        ax.annotate("", xy=(p["intensity_least"], p["gflops"]),
                    xytext=(p["intensity_columns"], p["gflops"]),
                    arrowprops={"arrowstyle": "->", "color": f"C{i}", "alpha": 0.5})
        ax.plot(p["intensity_columns"], p["gflops"], "o", color=f"C{i}",
                label=f"conv {p['shape']}")
    e = results["elementwise"]
    ax.plot(e["intensity"], e["gflops"], "s", color="k", label="BatchNorm eval (x * s + b)")
    ridge = results["ridge_flop_per_byte"]
    ax.axvline(ridge, color="0.8", linestyle=":")
    ax.text(ridge * 1.08, 0.6, f"ridge point\n{ridge:.0f} flop/byte", fontsize=8, color="0.4")
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (flop per byte moved)",
           ylabel="GFLOP/s", ylim=(0.3, None),
           title="Forward passes on this CPU's roofline (dots: with the im2col columns;\n"
                 "arrow tips: if only x, W and out had to move)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_profile(results, path):
    import matplotlib.pyplot as plt
    rows = [r for r in results["profile"]["rows"] if r["share"] >= 0.005]
    labels = [f"{r['layer']} {r['pass']}".strip() for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    ax.barh(labels[::-1], [r["ms"] for r in rows][::-1], color="C0")
    for i, r in enumerate(rows[::-1]):
        ax.text(r["ms"], i, f" {100 * r['share']:.0f} %", va="center", fontsize=8)
    ax.set(xlabel="ms in one training step",
           title=f"ResNet-20 training step, batch {results['batch']}: "
                 f"{results['profile']['step_ms']:.0f} ms")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# %% Run
if __name__ == "__main__":
    args = parse_args()
    prefer_small_pages()        # as `python -m resnet_np train` and `bench` do (docs/performance.md)
    if args.time_steps:         # one of section 6's processes
        print(json.dumps(time_steps(args.time_steps, args.repeat, args.wait)))
        sys.exit()
    os.makedirs(args.out, exist_ok=True)
    batch = 4 if args.quick else args.batch
    repeat = 2 if args.quick else 10
    cores = _fast_conv._pool_size()
    results = {"batch": batch,
               "machine": {"cores": cores, "l2_bytes": _fast_conv._l2_cache_bytes(),
                           "numpy": np.__version__}}
    n = 256 if args.quick else 2048
    results["gemm_gflops"] = {"one_core": gemm_gflops(n, repeat, 1),
                              "all_cores": gemm_gflops(n, repeat, cores)}
    results["bandwidth_gb_s"] = bandwidth_gb_s(16 if args.quick else 256, repeat)
    activation = bandwidth_gb_s(8, repeat)          # a stage-1 activation at batch 128
    results["bandwidth_gb_s"].update(copy_activation=activation["copy"],
                                     add_activation=activation["add"])
    results["ridge_flop_per_byte"] = (results["gemm_gflops"]["one_core"] /
                                      results["bandwidth_gb_s"]["copy"])
    results["convs"] = conv_points(batch, repeat)
    results["elementwise"] = elementwise_point(batch, repeat)
    step_ms, rows = profile_step(batch, 2 if args.quick else 5)
    results["profile"] = {"step_ms": step_ms, "rows": rows}
    replica_ms, replicas, replica_rows = profile_replicas(batch, 2 if args.quick else 5)
    results["replicas"] = {"step_ms": replica_ms, "count": replicas, "rows": replica_rows}
    results["cores"] = second_core(batch, 2 if args.quick else 10)

    print(f"GEMM float32: {results['gemm_gflops']['one_core']:.0f} GFLOP/s on 1 core, "
          f"{results['gemm_gflops']['all_cores']:.0f} on {cores}")
    bw = results["bandwidth_gb_s"]
    print(f"bandwidth, 1 core, large arrays: copy {bw['copy']:.1f} GB/s, a = b + c "
          f"{bw['add']:.1f} GB/s; 8 MB arrays: copy {bw['copy_activation']:.1f} GB/s, "
          f"a = b + c {bw['add_activation']:.1f} GB/s")
    print(f"ridge point (1-core GEMM / large-array copy): {results['ridge_flop_per_byte']:.1f} "
          "flop/byte")
    print(f"\n{'conv forward':<17} {'flop/byte (least)':>17} {'(im2col)':>9} {'GFLOP/s':>8}")
    for p in results["convs"]:
        print(f"{p['shape']:<17} {p['intensity_least']:>17.1f} {p['intensity_columns']:>9.1f} "
              f"{p['gflops']:>8.1f}")
    print(f"\nResNet-20 training step, batch {batch}: {step_ms:.1f} ms")
    print(f"{'layer':<20} {'pass':<9} {'ms':>7} {'share':>6}")
    for r in rows:
        print(f"{r['layer']:<20} {r['pass']:<9} {r['ms']:>7.1f} {100 * r['share']:>5.1f}%")

    print(f"\nThe same step as Trainer.fit runs it, on {replicas} replica(s) "
          f"(DataParallel): {replica_ms:.1f} ms; per replica, wall ms (CPU ms)")
    print(f"{'layer':<20} {'pass':<9}" + "".join(f"{'replica ' + str(r):>17}"
                                                 for r in range(replicas)))
    for r in replica_rows:
        print(f"{r['layer']:<20} {r['pass']:<9}" + "".join(
            f"{w:>9.1f} ({c:>5.1f})" for w, c in zip(r["wall_ms"], r["cpu_ms"])))

    c = results["cores"]
    if c["alone_ms"] is None:
        print("\nWhat the second core buys: not measured (it needs two cores, and Linux)")
    else:
        def ms(t):
            return f"{t['best']:.1f} ({t['median']:.1f})"

        alone = c["alone_ms"]["best"]
        print(f"\nWhat the second core buys: training steps on {c['images']} images per core, "
              "best (median) ms")
        slowest = max(t["best"] for t in c["side_by_side_ms"])
        print(f"  {'one core alone':<40} {ms(c['alone_ms'])}")
        print(f"  {'two processes at once, a core each':<40} "
              f"{', '.join(ms(t) for t in c['side_by_side_ms'])}: "
              f"{2 * alone / slowest:.2f}x the work of one core")
        label = f"DataParallel, {2 * c['images']} images, both cores"
        print(f"  {label:<40} {ms(c['dataparallel_ms'])}: "
              f"{2 * alone / c['dataparallel_ms']['best']:.2f}x")
        print("  DataParallel falls short of the two processes by the GIL its threads share and "
              "by the waits at BatchNorm's meetings.")

    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    plot_roofline(results, os.path.join(args.out, "roofline.png"))
    plot_profile(results, os.path.join(args.out, "profile.png"))
    print(f"\nwrote {args.out}/results.json, roofline.png and profile.png")
