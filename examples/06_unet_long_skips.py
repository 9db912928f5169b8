"""06 - U-Net long skips: paths of different nonlinearity depth, not a linear path (Q3).

Question (Q3): "why is there no global path from input to output that contains no
nonlinearity at all?" The U-Net (Ronneberger et al. 2015) is the architecture the
course points to: long skips carry encoder features across the network and
concatenate them into the decoder. We train resnet_np.unet_tiny twice on a
segmentation task, with and without its long skips, identically (same data, seed,
initial encoder/bottleneck/head weights, optimiser, schedule), and compare per-pixel
accuracy and IoU of the object, on several seeds (--seeds K: seed, seed+1, ...; each
draws its own data, initial weights and batch order; results.json keeps every seed's
value, the mean, standard deviation and 95 % Student t interval, and the paired
difference long - no skips). identity_path_report shows that neither has a linear
path: the long skip shortens the path (fewer nonlinearities between a pixel and its
logit), it does not make it linear.

Task: the built-in shapes set (resnet_np.load_builtin(with_masks=True)): 16x16 RGB
images of one shape in a random colour on a random background; label each pixel
1 (shape) or 0 (background). Loss: SoftmaxCrossEntropy over (N, 2, H, W) logits,
the mean over all pixels.

Run (from the repository root):

    python examples/06_unet_long_skips.py                  # full: 3 seeds, 3-4 minutes
    python examples/06_unet_long_skips.py --quick --out /tmp/06    # 2 seeds, seconds (tests)

Full mode: 4,000 training and 1,000 test images, 8 epochs, width 8, 2 levels
(traded for speed: the generator's full 10,000-image split and longer training).
Writes DIR/results.json (keys in REQUIRED_KEYS), DIR/06_segmentation.png (test images,
true masks, both models' masks) and DIR/06_training_curves.png. The figures in
docs/figures/ come from the full run: `python examples/06_unet_long_skips.py --out
runs/06 && cp runs/06/06_*.png docs/figures/`.
"""
# %%
import argparse
import json
import os
import sys
import time

import numpy as np

try:
    import resnet_np as rn
except ImportError:     # run from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import resnet_np as rn
from resnet_np import viz
from resnet_np.stats import format_summary, paired, summary

REQUIRED_KEYS = ["pixel_accuracy.long_skips", "pixel_accuracy.no_skips", "iou.long_skips",
                 "iou.no_skips", "background_only_pixel_accuracy", "linear_path.long_skips",
                 "linear_path.no_skips", "train_loss", "test_loss", "seconds", "settings",
                 "seeds", "paired"]
# Each of these is a stats.summary over the seeds: values, n, mean, std, ci95.
HEADLINE_KEYS = ["pixel_accuracy.long_skips", "pixel_accuracy.no_skips", "iou.long_skips",
                 "iou.no_skips"]
# Each of these is a stats.paired difference over the same seeds.
PAIRED_KEYS = ["paired.long_minus_no_skips.pixel_accuracy", "paired.long_minus_no_skips.iou"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="U-Net with and without long skips.")
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--out", default=os.path.join("runs", "06_unet_long_skips"))
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=int, default=None,
                   help="number of seeds: seed, seed+1, ... (default: 2 quick, 3 full)")
    args, _ = p.parse_known_args(argv)     # tolerate a notebook kernel's own arguments
    return args


args = parse_args()
S = dict(n_train=64, n_test=32, epochs=1, width=4, batch_size=16) if args.quick else \
    dict(n_train=4000, n_test=1000, epochs=8, width=8, batch_size=32)
SEEDS = [args.seed + i for i in range(args.seeds or (2 if args.quick else 3))]
S.update(levels=2, lr=0.05, momentum=0.9, weight_decay=5e-4, seeds=SEEDS)
os.makedirs(args.out, exist_ok=True)

# %% [markdown]
# ## 1. Data: images and their shape masks (each seed draws its own)

# %%
def load(seed):
    (X, _, M), (X_test, _, M_test) = rn.load_builtin(seed, with_masks=True,
                                                      n_train=S["n_train"], n_test=S["n_test"])
    return (X, M), (X_test, M_test)


# %% [markdown]
# ## 2. Two U-Nets, trained identically (on every seed)

# %%
def pixel_metrics(pred, masks):
    """Pixel accuracy and IoU of the object class (pooled over all test pixels)."""
    inter = np.sum((pred == 1) & (masks == 1))
    union = np.sum((pred == 1) | (masks == 1))
    return float(np.mean(pred == masks)), float(inter / union) if union else 1.0


class EpochLine(rn.Callback):
    """One line per epoch (ProgressBar formats a per-example accuracy, which is None here)."""

    def on_epoch_end(self, trainer, logs):
        print(f"epoch {logs['epoch']}: loss {logs['loss']:.4f}  test loss {logs['val_loss']:.4f}"
              f"  {logs['seconds']:.1f}s  {logs['images_per_s']:.0f} img/s", flush=True)


def train(long_skips, data, seed):
    (X, M), (X_test, M_test) = data
    model = rn.unet_tiny(3, 2, width=S["width"], levels=S["levels"], long_skips=long_skips,
                         rng=seed)
    trainer = rn.Trainer(model, rn.SoftmaxCrossEntropy(),
                         rn.SGD(model, lr=S["lr"], momentum=S["momentum"],
                                weight_decay=S["weight_decay"]),
                         schedule=rn.CosineLR(S["lr"], S["epochs"]), rng=seed)
    start = time.perf_counter()
    history = trainer.fit(X, M, epochs=S["epochs"], batch_size=S["batch_size"],
                          val=(X_test, M_test), verbose=0,
                          callbacks=[] if args.quick else [EpochLine()])
    seconds = time.perf_counter() - start
    pred = trainer.predict(X_test)                          # arg-max over classes: (N, H, W)
    acc, iou = pixel_metrics(pred, M_test)
    return {"model": model, "history": history, "pred": pred, "seconds": seconds,
            "pixel_accuracy": acc, "iou": iou, "background": 1.0 - float(M_test.mean())}


NETS = (("long_skips", True), ("no_skips", False))
runs = {name: [] for name, _ in NETS}
for seed in SEEDS:
    data = load(seed)
    print(f"seed {seed}: {data[1][1].mean():.1%} of test pixels are object")
    for name, long_skips in NETS:
        print(f"\n-- seed {seed}, unet_tiny(long_skips={long_skips})")
        runs[name].append(train(long_skips, data, seed))

# %% [markdown]
# ## 3. Results: pixel accuracy and IoU over the seeds, and is any path linear?

# %%
def values(name, key):
    return [r[key] for r in runs[name]]


results = {"seeds": SEEDS, "settings": S,
           "interval": "95% Student t interval over the seeds: mean -/+ t(0.975, K-1) std / sqrt(K)"}
for key in ("pixel_accuracy", "iou"):
    results[key] = {name: summary(values(name, key)) for name in runs}
results["paired"] = {"long_minus_no_skips": {key: paired(values("long_skips", key),
                                                         values("no_skips", key))
                                             for key in ("pixel_accuracy", "iou")}}
results["background_only_pixel_accuracy"] = summary(values("long_skips", "background"))
results["linear_path"] = {n: rn.identity_path_report(runs[n][0]["model"]).linear_path for n in runs}
results["train_loss"] = {n: [r["history"]["loss"] for r in runs[n]] for n in runs}
results["test_loss"] = {n: [r["history"]["val_loss"] for r in runs[n]] for n in runs}
results["seconds"] = {n: values(n, "seconds") for n in runs}
results["params"] = {n: runs[n][0]["model"].num_parameters() for n in runs}

print(f"\nmean ± 95% t interval over seeds {SEEDS}")
print(f"{'model':<12} {'params':>7} {'pixel acc':>16} {'IoU':>16} {'linear path':>12}")
for name in runs:
    print(f"{name:<12} {results['params'][name]:>7} "
          f"{format_summary(results['pixel_accuracy'][name], digits=4):>16} "
          f"{format_summary(results['iou'][name], digits=4):>16} "
          f"{str(results['linear_path'][name]):>12}")
for key, d in results["paired"]["long_minus_no_skips"].items():
    noise = "  (within noise)" if d["within_noise"] else ""
    print(f"paired long - no skips, {key}: {format_summary(d, digits=4)}{noise}")
print(f"(predicting background everywhere: pixel accuracy "
      f"{format_summary(results['background_only_pixel_accuracy'], digits=4)}, IoU 0)")
print("\nidentity_path_report(unet_tiny(long_skips=True)):")
print(rn.identity_path_report(runs["long_skips"][0]["model"]))

# %% [markdown]
# ## 4. Figures: masks of the first seed; curves of every seed with the mean and its band

# %%
show = slice(0, 6)
(_, _), (X_test, M_test) = load(SEEDS[0])
viz.plot_segmentation(X_test[show], M_test[show],
                      {name: runs[name][0]["pred"][show] for name in runs},
                      path=os.path.join(args.out, "06_segmentation.png"),
                      title=f"unet_tiny on test images (seed {SEEDS[0]}): with and without long skips")
curves = {}
for name in runs:
    curves[f"{name} train"] = results["train_loss"][name]
    curves[f"{name} test"] = results["test_loss"][name]
viz.plot_seed_curves({f"per-pixel cross-entropy ({len(SEEDS)} seeds)": curves},
                     path=os.path.join(args.out, "06_training_curves.png"), ylabel="loss")
with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
print(f"\nwrote {args.out}/results.json, 06_segmentation.png, 06_training_curves.png")
