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
subset and on a held-out test set in eval mode. Everything runs on several seeds
(--seeds K: seed, seed+1, ...; each draws its own subset, initial weights and batch
order); results.json keeps every seed's value and, per depth, the mean, standard
deviation and 95 % Student t interval, and the paired difference plain - residual.

Run (from the repository root):

    python examples/04_degradation.py                  # 3 seeds, 20-23 min on 2 cores
    python examples/04_degradation.py --quick --out /tmp/x         # 2 seeds, seconds

Writes results.json (keys in REQUIRED_KEYS), degradation_curves.png (training error
per epoch, plain and residual panels) and error_vs_depth.png; both draw each seed
faint and the mean with its 95 % band.
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
from resnet_np.stats import format_summary, paired, summary

REQUIRED_KEYS = ["depths", "train_error.plain", "train_error.residual",
                 "train_loss.plain", "train_loss.residual", "curves.train_error",
                 "train_error_eval", "test_error", "seconds", "setup", "seeds",
                 "paired_train_error.plain_minus_residual"]
# Each of these holds a stats.summary over the seeds (values, n, mean, std, ci95) per depth.
HEADLINE_KEYS = ["train_error.plain", "train_error.residual", "test_error.plain",
                 "test_error.residual"]
# Each of these holds a stats.paired difference over the same seeds, per depth.
PAIRED_KEYS = ["paired_train_error.plain_minus_residual"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Plain vs residual nets of growing depth.")
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    p.add_argument("--out", default=os.path.join("runs", "04_degradation"))
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=int, default=None,
                   help="number of seeds: seed, seed+1, ... (default: 2 quick, 3 full)")
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
SEEDS = [args.seed + i for i in range(args.seeds or (2 if args.quick else 3))]
os.makedirs(args.out, exist_ok=True)

# %% [markdown]
# ## 1. Data: a subset of the built-in shapes, normalised per channel
#
# Each seed draws its own subset (the generator's seed), initial weights and batch order.

# %%
def load(seed):
    (X, y), (X_test, y_test) = rn.load_builtin(seed=seed, n_train=SETUP["n_train"],
                                               n_test=SETUP["n_test"])
    mean, std = rn.channel_stats(X)
    return (rn.normalize(X, mean, std), y), (rn.normalize(X_test, mean, std), y_test)


# %% [markdown]
# ## 2. One recipe for every net
#
# On one seed: same data order (the trainer's rng), same initial weights for a net and
# its twin, same schedule. Only depth and the shortcut additions change.

# %%
def train_one(depth, residual, data, seed):
    """Train resnet_cifar(depth) or its plain twin; return its history and final scores."""
    (X, y), (X_test, y_test) = data
    model = rn.resnet_cifar(depth, width=SETUP["width"], residual=residual, rng=seed)
    E, lr = SETUP["epochs"], SETUP["lr"]
    optimizer = rn.SGD(model, lr=lr, momentum=0.9, weight_decay=1e-4)
    schedule = rn.WarmupLR(rn.MultiStepLR(lr, [E // 2, (3 * E) // 4]), warmup_epochs=1,
                           warmup_lr=lr / 10, linear=True)
    trainer = rn.Trainer(model, rn.SoftmaxCrossEntropy(), optimizer, schedule=schedule, rng=seed)
    start = time.perf_counter()
    history = trainer.fit(X, y, epochs=E, batch_size=SETUP["batch_size"], verbose=0)
    seconds = time.perf_counter() - start
    train_eval, test_eval = trainer.evaluate(X, y), trainer.evaluate(X_test, y_test)
    return {"error_curve": [1.0 - a for a in history["accuracy"]], "loss_curve": history["loss"],
            "train_error_eval": 1.0 - train_eval["accuracy"], "test_error": 1.0 - test_eval["accuracy"],
            "seconds": seconds, "parameters": model.num_parameters()}


depths = SETUP["depths"]
runs = {"plain": {d: [] for d in depths}, "residual": {d: [] for d in depths}}   # one per seed
total_start = time.perf_counter()
for seed in SEEDS:
    data = load(seed)
    for depth in depths:
        for family in ("plain", "residual"):
            r = train_one(depth, family == "residual", data, seed)
            runs[family][depth].append(r)
            print(f"seed {seed} {family:>8}-{depth:<3} train error {r['error_curve'][-1]:.4f}  "
                  f"loss {r['loss_curve'][-1]:.4f}  (eval mode: train {r['train_error_eval']:.4f}, "
                  f"test {r['test_error']:.4f})  {r['seconds']:.0f}s", flush=True)
total_seconds = time.perf_counter() - total_start


# %% [markdown]
# ## 3. Read it like the paper's Fig. 6, with the spread over seeds
#
# The question is not the test error but whether the optimiser can fit the training
# set: a plain net that is deeper, and could copy the shallower one and add identity
# layers, should never train worse. If it does, that is degradation. The paired
# difference plain - residual at each depth (same seeds, same data, same initial
# branch weights) says whether the gap is larger than the noise of the seeds.

# %%
def per_seed(family, depth, key):
    """The value of `key` on every seed (the last epoch's for a curve)."""
    return [r[key][-1] if isinstance(r[key], list) else r[key] for r in runs[family][depth]]


def summaries(key):
    return {f: {str(d): summary(per_seed(f, d, key)) for d in depths} for f in runs}


train_error = summaries("error_curve")
gap = {str(d): paired(per_seed("plain", d, "error_curve"), per_seed("residual", d, "error_curve"))
       for d in depths}
print(f"\ntraining error at the last epoch, mean ± 95% t interval over seeds {SEEDS}")
print(f"{'depth':>5} {'plain':>16} {'residual':>16} {'plain - residual':>18}")
for d in depths:
    noise = "  within noise" if gap[str(d)]["within_noise"] else ""
    print(f"{d:>5} {format_summary(train_error['plain'][str(d)], digits=4):>16} "
          f"{format_summary(train_error['residual'][str(d)], digits=4):>16} "
          f"{format_summary(gap[str(d)], digits=4):>18}{noise}")
print(f"all {2 * len(depths) * len(SEEDS)} trainings: {total_seconds:.0f}s")


# %% [markdown]
# ## 4. Save the numbers and the figures

# %%
def curves(key):
    return {f: {str(d): [r[key] for r in runs[f][d]] for d in depths} for f in runs}


results = {
    "seeds": SEEDS,
    "depths": depths,
    "train_error": train_error,                          # last epoch, training mode
    "train_loss": summaries("loss_curve"),
    "train_error_eval": summaries("train_error_eval"),
    "test_error": summaries("test_error"),
    "paired_train_error": {"plain_minus_residual": gap},
    "curves": {"train_error": curves("error_curve"), "train_loss": curves("loss_curve")},
    "parameters": {f: [runs[f][d][0]["parameters"] for d in depths] for f in runs},
    "seconds": {"total": total_seconds, **{f: {str(d): per_seed(f, d, "seconds") for d in depths}
                                           for f in runs}},
    "interval": "95% Student t interval over the seeds: mean -/+ t(0.975, K-1) std / sqrt(K)",
    "setup": SETUP,
}
with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
panels = {f"{family} nets": {f"{family}-{d}": [r["error_curve"] for r in runs[family][d]]
                             for d in depths} for family in ("plain", "residual")}
viz.plot_seed_curves(panels, os.path.join(args.out, "degradation_curves.png"),
                     ylabel="training error", title="training error per epoch (built-in shapes, "
                     f"{SETUP['n_train']} images, {len(SEEDS)} seeds)")
by_depth = {f: [[per_seed(f, d, "error_curve")[i] for d in depths] for i in range(len(SEEDS))]
            for f in runs}
viz.plot_seed_curves({f"training error, last epoch ({len(SEEDS)} seeds)": by_depth},
                     os.path.join(args.out, "error_vs_depth.png"), x=depths,
                     xlabel="depth (weight layers)", ylabel="training error, last epoch")
print(f"wrote {args.out}/results.json, degradation_curves.png and error_vs_depth.png")
