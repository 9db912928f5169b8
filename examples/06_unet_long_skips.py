"""06 - U-Net long skips: paths of different nonlinearity depth, not a linear path (Q3).

Question (Q3): "why is there no global path from input to output that contains no
nonlinearity at all?" The U-Net (Ronneberger et al. 2015) is the architecture the
course points to: long skips carry encoder features across the network and
concatenate them into the decoder. We train resnet_np.unet_tiny twice on a
segmentation task, with and without its long skips, identically (same data, seed,
initial encoder/bottleneck/head weights, optimiser, schedule), and compare per-pixel
accuracy and IoU of the object. identity_path_report shows that neither has a linear
path: the long skip shortens the path (fewer nonlinearities between a pixel and its
logit), it does not make it linear.

Task: the built-in shapes set (resnet_np.load_builtin(with_masks=True)): 16x16 RGB
images of one shape in a random colour on a random background; label each pixel
1 (shape) or 0 (background). Loss: SoftmaxCrossEntropy over (N, 2, H, W) logits,
the mean over all pixels.

Run (from the repository root):

    python examples/06_unet_long_skips.py                  # full: under a minute on 2 idle cores
    python examples/06_unet_long_skips.py --quick --out /tmp/06    # seconds (tests)

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

REQUIRED_KEYS = ["pixel_accuracy.long_skips", "pixel_accuracy.no_skips", "iou.long_skips",
                 "iou.no_skips", "background_only_pixel_accuracy", "linear_path.long_skips",
                 "linear_path.no_skips", "train_loss", "test_loss", "seconds", "settings"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="U-Net with and without long skips.")
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--out", default=os.path.join("runs", "06_unet_long_skips"))
    p.add_argument("--seed", type=int, default=0)
    args, _ = p.parse_known_args(argv)     # tolerate a notebook kernel's own arguments
    return args


args = parse_args()
S = dict(n_train=64, n_test=32, epochs=1, width=4, batch_size=16) if args.quick else \
    dict(n_train=4000, n_test=1000, epochs=8, width=8, batch_size=32)
S.update(levels=2, lr=0.05, momentum=0.9, weight_decay=5e-4, seed=args.seed)
os.makedirs(args.out, exist_ok=True)

# %% [markdown]
# ## 1. Data: images and their shape masks

# %%
(X, _, M), (X_test, _, M_test) = rn.load_builtin(args.seed, with_masks=True,
                                                  n_train=S["n_train"], n_test=S["n_test"])
object_fraction = float(M_test.mean())
print(f"train {X.shape}, masks {M.shape}; {object_fraction:.1%} of test pixels are object")


# %% [markdown]
# ## 2. Two U-Nets, trained identically

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


def train(long_skips):
    model = rn.unet_tiny(3, 2, width=S["width"], levels=S["levels"], long_skips=long_skips,
                         rng=S["seed"])
    trainer = rn.Trainer(model, rn.SoftmaxCrossEntropy(),
                         rn.SGD(model, lr=S["lr"], momentum=S["momentum"],
                                weight_decay=S["weight_decay"]),
                         schedule=rn.CosineLR(S["lr"], S["epochs"]), rng=S["seed"])
    start = time.perf_counter()
    history = trainer.fit(X, M, epochs=S["epochs"], batch_size=S["batch_size"],
                          val=(X_test, M_test), verbose=0,
                          callbacks=[] if args.quick else [EpochLine()])
    seconds = time.perf_counter() - start
    pred = trainer.predict(X_test)                          # arg-max over classes: (N, H, W)
    return model, history, pred, seconds


runs = {}
for name, long_skips in (("long_skips", True), ("no_skips", False)):
    print(f"\n-- unet_tiny(long_skips={long_skips})")
    runs[name] = train(long_skips)

# %% [markdown]
# ## 3. Results: pixel accuracy and IoU, and is any path linear?

# %%
results = {"pixel_accuracy": {}, "iou": {}, "linear_path": {}, "train_loss": {},
           "test_loss": {}, "seconds": {}, "params": {},
           "background_only_pixel_accuracy": 1.0 - object_fraction, "settings": S}
for name, (model, history, pred, seconds) in runs.items():
    acc, iou = pixel_metrics(pred, M_test)
    report = rn.identity_path_report(model)
    results["pixel_accuracy"][name], results["iou"][name] = acc, iou
    results["linear_path"][name] = report.linear_path
    results["train_loss"][name] = history["loss"]
    results["test_loss"][name] = history["val_loss"]
    results["seconds"][name] = seconds
    results["params"][name] = model.num_parameters()

print(f"\n{'model':<12} {'params':>7} {'pixel acc':>10} {'IoU':>7} {'test loss':>10} "
      f"{'linear path':>12} {'seconds':>8}")
for name in runs:
    print(f"{name:<12} {results['params'][name]:>7} {results['pixel_accuracy'][name]:>10.4f} "
          f"{results['iou'][name]:>7.4f} {results['test_loss'][name][-1]:>10.4f} "
          f"{str(results['linear_path'][name]):>12} {results['seconds'][name]:>8.1f}")
print(f"(predicting background everywhere: pixel accuracy "
      f"{results['background_only_pixel_accuracy']:.4f}, IoU 0)")
print("\nidentity_path_report(unet_tiny(long_skips=True)):")
print(rn.identity_path_report(runs["long_skips"][0]))

# %% [markdown]
# ## 4. Figures

# %%
show = slice(0, 6)
viz.plot_segmentation(X_test[show], M_test[show],
                      {name: pred[show] for name, (_, _, pred, _) in runs.items()},
                      path=os.path.join(args.out, "06_segmentation.png"),
                      title="unet_tiny on test images: with and without long skips")
curves = {}
for name in runs:
    curves[f"{name} train"] = results["train_loss"][name]
    curves[f"{name} test"] = results["test_loss"][name]
viz.plot_curve_panels({"per-pixel cross-entropy": curves},
                      path=os.path.join(args.out, "06_training_curves.png"), ylabel="loss")
with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
print(f"\nwrote {args.out}/results.json, 06_segmentation.png, 06_training_curves.png")
