"""What `python -m resnet_np bench` prints: the tables and the targets of issue 12.

bench.py measures; this module only formats the figures it returns and judges them
against the targets (ratios to torch measured in the same run).
"""

def print_convs(rows, torch_present):
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


def _mb(value):
    return "n/a" if value is None else f"{value:.0f}"


def print_resnet20(result):
    print(f"\n{'ResNet-20':<11} {'train img/s':>11} {'infer img/s':>11} {'eval img/s':>10} "
          f"{'train peak MB':>13} {'(+MB)':>6} {'infer peak MB':>13} {'(+MB)':>6}")
    for name, r in result.items():
        print(f"{name:<11} {r['train_images_per_s']:>11.1f} {r['infer_images_per_s']:>11.1f} "
              f"{r['eval_images_per_s']:>10.1f} "
              f"{_mb(r['peak_mb']):>13} {_mb(r['train_increase_mb']):>6} "
              f"{_mb(r['infer_peak_mb']):>13} {_mb(r['infer_increase_mb']):>6}")
    if "torch" in result:
        n, t = result["numpy"], result["torch"]
        print(f"{'numpy/torch':<11} {n['train_images_per_s'] / t['train_images_per_s']:>10.2f}x "
              f"{n['infer_images_per_s'] / t['infer_images_per_s']:>10.2f}x "
              f"{n['eval_images_per_s'] / t['eval_images_per_s']:>9.2f}x")
    print("train: numpy runs a step as Trainer.fit does (DataParallel: one replica of the\n"
          "model per core); torch its own intra-op threads, as many.\n"
          "infer: numpy runs model.fuse(), the inference-only copy with BatchNorm folded into\n"
          "the convs (made once, before timing); torch runs eval() under no_grad().\n"
          "eval: numpy's unfused eval model as Trainer.evaluate runs it (DataParallel);\n"
          "torch: the same as infer.\n"
          "peak MB: ru_maxrss of a fresh process after 3 training steps or 3 inference passes\n"
          "(infer: the fused copy; interpreter and imports included); +MB: how much the steps\n"
          "raised it above the peak after imports, model and data.")


def print_scaling(scaling):
    """Time per image of a training step at each batch size, per framework."""
    print(f"\n{'batch scaling':<13} " + " ".join(f"{f'batch {b} ms/img':>17}" for b in scaling))
    for name in next(iter(scaling.values())):
        print(f"{name:<13} " + " ".join(f"{per[name]:>17.2f}" for per in scaling.values()))


def print_layers(layers, kinds):
    """One core, layer kind by layer kind: ms per step per framework and the ratio, for the
    (layer kind, pass) pairs `kinds` (those torch's operators are mapped to); every other
    layer of resnet_np counts in "the rest"."""
    if layers is None:
        print("\nlayer by layer: not measured (it needs a process held on one core: Linux)")
        return
    names = [name for name in ("numpy", "torch") if name in layers]
    print(f"\nOne core, {layers['images']} images: a ResNet-20 training step layer by layer, "
          "ms (each framework's fastest step)")
    print(f"{'layer':<13} {'pass':<9}" + "".join(f"{name:>9}" for name in names) +
          (f" {'x torch':>8}" if "torch" in names else ""))
    spent = {name: {(r["layer"], r["pass"]): r["ms"] for r in layers[name]["rows"]}
             for name in names}

    def line(label, values, ratio=True):
        print(f"{label:<23}" + "".join(f"{v:>9.1f}" for v in values) +
              (f" {values[0] / values[1]:>7.2f}x" if ratio and len(values) == 2 and values[1] > 0
               else ""))

    for kind, name in sorted(kinds, key=lambda k: -spent["numpy"].get(k, 0.0)):
        line(f"{kind:<13} {name}", [spent[n].get((kind, name), 0.0) for n in names])
    steps = [layers[name]["step_ms"] for name in names]
    line("the rest", [step - sum(spent[n].get(k, 0.0) for k in kinds)
                      for step, n in zip(steps, names)], ratio=False)
    line("the whole step", steps)
    print("numpy: a timer around every layer's forward and backward; the rest is the shortcuts,\n"
          "pooling, the dense layer, the blocks' additions, the loss, SGD and the Python between\n"
          "layers." + (
              "\ntorch: torch.profiler's time of each operator (aten::convolution, "
              "aten::batch_norm,\naten::relu and their backward), one thread, in the fastest "
              "profiled step; the rest\nis the shortcuts, pooling, the linear layer, the "
              "additions, the loss, SGD and autograd." if "torch" in names else ""))


def targets(rows, result, scaling):
    """The issue's targets as (text, met) pairs; met is None when a figure is missing."""
    found = []
    by = {(r["shape"], r["framework"]): r["forward_ms"] + r["backward_ms"] for r in rows}
    if result and "torch" in result:
        n, t = result["numpy"], result["torch"]
        ratio = n["infer_images_per_s"] / t["infer_images_per_s"]
        found.append((f"ResNet-20 inference >= 0.6x torch images/s: {ratio:.2f}x "
                      f"(numpy: model.fuse(); unfused eval "
                      f"{n['eval_images_per_s'] / t['infer_images_per_s']:.2f}x)", ratio >= 0.6))
        ratio = n["train_images_per_s"] / t["train_images_per_s"]
        stretch = "stretch 0.7x met" if ratio >= 0.7 else "stretch 0.7x not met"
        found.append((f"ResNet-20 training >= 0.6x torch images/s: {ratio:.2f}x ({stretch})",
                      ratio >= 0.6))
    if any(f == "torch" for _, f in by):
        shapes = dict.fromkeys(r["shape"] for r in rows)             # in CONV_SHAPES order
        worst, shape = max((by[s, "numpy"] / by[s, "torch"], s) for s in shapes)
        found.append((f"every ResNet-20 conv fw+bw <= 2x torch: worst {worst:.2f}x ({shape})",
                      worst <= 2))
    if result and "torch" in result:
        n, t = result["numpy"]["peak_mb"], result["torch"]["peak_mb"]
        met = None if None in (n, t) else n <= 1.1 * t
        found.append((f"training peak RSS <= torch's + 10%: {_mb(n)} MB, torch {_mb(t)} MB "
                      f"(limit {_mb(t and 1.1 * t)} MB)", met))
    if result:
        n = result["numpy"]
        met = None if None in (n["infer_peak_mb"], n["peak_mb"]) else \
            n["infer_peak_mb"] <= n["peak_mb"] / 2
        found.append((f"inference peak RSS <= half the training step's: "
                      f"{_mb(n['infer_peak_mb'])} MB, training {_mb(n['peak_mb'])} MB", met))
    if scaling and 32 in scaling and 128 in scaling:
        ms32, ms128 = scaling[32]["numpy"], scaling[128]["numpy"]
        found.append((f"time per image at batch 32 within 1.3x of batch 128: {ms32:.2f} ms vs "
                      f"{ms128:.2f} ms ({ms32 / ms128:.2f}x)", ms32 <= 1.3 * ms128))
    return found


def print_targets(found, batch):
    if not found:
        return
    note = "" if batch == 128 else "; the issue sets them at batch 128"
    verdict = {True: "met", False: "NOT met", None: "n/a"}
    print(f"\nTargets of issue 12 (batch {batch}, float32{note}):")
    for text, met in found:
        print(f"  [{verdict[met]:>7}] {text}")
