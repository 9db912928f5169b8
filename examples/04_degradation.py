"""04 - Degradation: do deeper plain nets train worse, and do residual nets escape it?

Question: He et al. (2015, Fig. 6) trained plain and residual CIFAR nets of depth 20
to 110 and found that the deeper *plain* nets reach a higher *training* error (so it
is not overfitting), while the residual nets of the same depth do not degrade. Does
the same happen at laptop scale?

We train resnet_cifar(depth) and its plain twin (residual=False: the same layers and
initial weights, no shortcut additions) at depths 8, 20, 32, 56 on a subset of the
built-in 16x16 shapes set, all with one recipe: SGD with momentum 0.9, weight decay
1e-4, batch 64, a one-epoch linear warm-up to lr 0.05, then lr / 10 at 50% and 75% of
the epochs (the paper's step schedule, compressed). We record the training error and
loss of every epoch (running means over the epoch's mini-batches, in training mode,
like the paper's curves), and, after training, the error on the whole training
subset and on a held-out test set in eval mode.

Run (from the repository root):

    python examples/04_degradation.py                  # ~7 min on 2 idle cores
    python examples/04_degradation.py --quick --out /tmp/x

Writes results.json (keys in REQUIRED_KEYS), degradation_curves.png (training error
per epoch, plain and residual panels) and error_vs_depth.png.
"""
# %%
import argparse
import json
import os
import sys
import time


try:
    import resnet_np as rn
except ImportError:     # run from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import resnet_np as rn
from resnet_np import viz

REQUIRED_KEYS = ["depths", "train_error.plain", "train_error.residual",
                 "train_loss.plain", "train_loss.residual", "curves.train_error",
                 "train_error_eval", "test_error", "seconds", "setup"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Plain vs residual nets of growing depth.")
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    p.add_argument("--out", default=os.path.join("runs", "04_degradation"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--n-train", type=int, default=None)
    args, _ = p.parse_known_args(argv)     # tolerate a notebook kernel's own arguments
    return args


args = parse_args()
if args.quick:
    SETUP = dict(depths=[8, 14], n_train=96, n_test=64, epochs=2, batch_size=32, width=4, lr=0.05)
else:
    SETUP = dict(depths=[8, 20, 32, 56], n_train=1500, n_test=1000, epochs=16, batch_size=64,
                 width=16, lr=0.05)
SETUP["epochs"] = args.epochs or SETUP["epochs"]
SETUP["n_train"] = args.n_train or SETUP["n_train"]
os.makedirs(args.out, exist_ok=True)

# %% [markdown]
# ## 1. Data: a subset of the built-in shapes, normalised per channel

# %%
(X, y), (X_test, y_test) = rn.load_builtin(seed=args.seed, n_train=SETUP["n_train"],
                                           n_test=SETUP["n_test"])
mean, std = rn.channel_stats(X)
X, X_test = rn.normalize(X, mean, std), rn.normalize(X_test, mean, std)
print(f"{len(X)} training images {X.shape[1:]}, {len(X_test)} test images")


# %% [markdown]
# ## 2. One recipe for every net
#
# Same data order (the trainer's rng), same initial weights for a net and its twin,
# same schedule. Only depth and the shortcut additions change.

# %%
def train_one(depth, residual):
    """Train resnet_cifar(depth) or its plain twin; return its history and final scores."""
    model = rn.resnet_cifar(depth, width=SETUP["width"], residual=residual, rng=args.seed)
    E, lr = SETUP["epochs"], SETUP["lr"]
    optimizer = rn.SGD(model, lr=lr, momentum=0.9, weight_decay=1e-4)
    schedule = rn.WarmupLR(rn.MultiStepLR(lr, [E // 2, (3 * E) // 4]), warmup_epochs=1,
                           warmup_lr=lr / 10, linear=True)
    trainer = rn.Trainer(model, rn.SoftmaxCrossEntropy(), optimizer, schedule=schedule,
                         rng=args.seed)
    start = time.perf_counter()
    history = trainer.fit(X, y, epochs=E, batch_size=SETUP["batch_size"], verbose=0)
    seconds = time.perf_counter() - start
    train_eval, test_eval = trainer.evaluate(X, y), trainer.evaluate(X_test, y_test)
    return {"error_curve": [1.0 - a for a in history["accuracy"]], "loss_curve": history["loss"],
            "train_error_eval": 1.0 - train_eval["accuracy"], "test_error": 1.0 - test_eval["accuracy"],
            "seconds": seconds, "parameters": model.num_parameters()}


runs = {"plain": {}, "residual": {}}
total_start = time.perf_counter()
for depth in SETUP["depths"]:
    for family in ("plain", "residual"):
        r = runs[family][depth] = train_one(depth, residual=family == "residual")
        print(f"{family:>8}-{depth:<3} train error {r['error_curve'][-1]:.4f}  "
              f"loss {r['loss_curve'][-1]:.4f}  (eval mode: train {r['train_error_eval']:.4f}, "
              f"test {r['test_error']:.4f})  {r['seconds']:.0f}s", flush=True)
total_seconds = time.perf_counter() - total_start

# %% [markdown]
# ## 3. Read it like the paper's Fig. 6
#
# The question is not the test error but whether the optimiser can fit the training
# set: a plain net that is deeper, and could copy the shallower one and add identity
# layers, should never train worse. If it does, that is degradation.

# %%
depths = SETUP["depths"]
print(f"\n{'depth':>5} {'plain err':>10} {'resid err':>10} {'plain loss':>11} {'resid loss':>11}")
for d in depths:
    p, r = runs["plain"][d], runs["residual"][d]
    print(f"{d:>5} {p['error_curve'][-1]:>10.4f} {r['error_curve'][-1]:>10.4f} "
          f"{p['loss_curve'][-1]:>11.4f} {r['loss_curve'][-1]:>11.4f}")
print(f"all {2 * len(depths)} trainings: {total_seconds:.0f}s")


# %% [markdown]
# ## 4. Save the numbers and the figures

# %%
def per_family(key, last=True):
    return {f: [runs[f][d][key][-1] if last else runs[f][d][key] for d in depths] for f in runs}


results = {
    "depths": depths,
    "train_error": per_family("error_curve"),          # last epoch, training mode
    "train_loss": per_family("loss_curve"),
    "train_error_eval": per_family("train_error_eval", last=False),
    "test_error": per_family("test_error", last=False),
    "curves": {"train_error": {f: {str(d): runs[f][d]["error_curve"] for d in depths} for f in runs},
               "train_loss": {f: {str(d): runs[f][d]["loss_curve"] for d in depths} for f in runs}},
    "parameters": per_family("parameters", last=False),
    "seconds": {"total": total_seconds, **{f: per_family("seconds", last=False)[f] for f in runs}},
    "setup": SETUP,
}
with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
panels = {f"{family} nets": {f"{family}-{d}": runs[family][d]["error_curve"] for d in depths}
          for family in ("plain", "residual")}
viz.plot_curve_panels(panels, os.path.join(args.out, "degradation_curves.png"),
                      ylabel="training error", title="training error per epoch (built-in shapes, "
                      f"{SETUP['n_train']} images)")
viz.plot_error_vs_depth(depths, results["train_error"], os.path.join(args.out, "error_vs_depth.png"),
                        ylabel="training error, last epoch")
print(f"wrote {args.out}/results.json, degradation_curves.png and error_vs_depth.png")
