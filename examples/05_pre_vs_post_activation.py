"""05 - Pre- vs post-activation (He et al. 2016): where is the clean identity path? (Q3)

Question (Q3): "each skip connection is fed into the following nonlinearity, so every
skip path through the network is distorted by many nonlinearities: why is there no
global path from input to output without any?" A post-activation block (He et al.
2015) computes a^[l+2] = g(z^[l+2] + a^[l]): g after every addition. A pre-activation
block (He et al. 2016) computes x_{l+1} = x_l + F(x_l) with nothing after the addition,
so within a stage x_L = x_l + sum_{i=l}^{L-1} F(x_i) and
dL/dx_l = dL/dx_L (1 + d/dx_l sum F): the gradient reaches x_l directly.

We build three ResNet-56s for the built-in 16x16 shapes set (resnet_cifar, option A
shortcuts, width 16) with the same seed: plain (the post-activation layout without
shortcuts), post-activation, pre-activation. For each we print the
identity_path_report (which blocks pass a^[l] unchanged, and whether any
input-to-output path is linear), measure ||dL/da|| at every block's input at
initialisation (inspect.gradient_norms, one batch, training-mode BatchNorm), and train
the three identically (same data order, SGD, schedule) to compare training-loss curves.
All of it runs on several seeds (--seeds K: seed, seed+1, ...; each draws its own data,
initial weights and batch order); results.json keeps every seed's value, the mean,
standard deviation and 95 % Student t interval of each headline number, and the
paired differences post - pre and plain - pre over the same seeds.

Run (from the repository root):

    python examples/05_pre_vs_post_activation.py               # full: 3 seeds, 6-8 minutes
    python examples/05_pre_vs_post_activation.py --quick --out /tmp/05   # 2 seeds, seconds

Full mode: depth 56, 2,000 training and 1,000 test images, 3 epochs, batch 64,
cosine schedule from lr 0.05. Traded for speed: the paper trains for 64k iterations on
CIFAR-10; here the curves cover the first 96 steps, where the differences at
initialisation matter most. --quick uses depth 8 and a few dozen images.
Writes DIR/results.json (keys in REQUIRED_KEYS), DIR/05_grad_norms_at_init.png and
DIR/05_train_loss.png. The figures in docs/figures/ come from the full run:
`python examples/05_pre_vs_post_activation.py --out runs/05 && cp runs/05/05_*.png
docs/figures/`.
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

REQUIRED_KEYS = ["grad_norms_at_init.plain", "grad_norms_at_init.post", "grad_norms_at_init.pre",
                 "train_loss.plain", "train_loss.post", "train_loss.pre",
                 "identity_path_report.plain.linear_path", "identity_path_report.post.linear_path",
                 "identity_path_report.pre.linear_path", "identity_path_report.pre.blocks",
                 "epoch_train_loss", "test_accuracy", "settings", "seeds", "paired"]
# Each of these is a stats.summary over the seeds: values, n, mean, std, ci95.
HEADLINE_KEYS = ["test_accuracy.plain", "test_accuracy.post", "test_accuracy.pre",
                 "final_train_loss.plain", "final_train_loss.post", "final_train_loss.pre",
                 "first_over_last_block_da.post", "first_over_last_block_da.pre"]
# Each of these is a stats.paired difference over the same seeds.
PAIRED_KEYS = ["paired.post_minus_pre.test_accuracy", "paired.post_minus_pre.final_train_loss",
               "paired.plain_minus_pre.final_train_loss"]
MODELS = {"plain": dict(variant="post", residual=False),
          "post": dict(variant="post", residual=True),
          "pre": dict(variant="pre", residual=True)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Plain vs post- vs pre-activation ResNets.")
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--out", default=os.path.join("runs", "05_pre_vs_post_activation"))
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=int, default=None,
                   help="number of seeds: seed, seed+1, ... (default: 2 quick, 3 full)")
    args, _ = p.parse_known_args(argv)     # tolerate a notebook kernel's own arguments
    return args


args = parse_args()
S = dict(depth=8, n_train=64, n_test=32, epochs=1, batch_size=16, probe_batch=16) if args.quick \
    else dict(depth=56, n_train=2000, n_test=1000, epochs=3, batch_size=64, probe_batch=128)
SEEDS = [args.seed + i for i in range(args.seeds or (2 if args.quick else 3))]
S.update(width=16, shortcut="A", lr=0.05, momentum=0.9, weight_decay=1e-4, seeds=SEEDS)
os.makedirs(args.out, exist_ok=True)

# %% [markdown]
# ## 1. Data and the three models (on one seed, the same initial branch weights)
#
# Each seed draws its own data, initial weights and batch order.

# %%
def load(seed):
    (X, y), (X_test, y_test) = rn.load_builtin(seed, n_train=S["n_train"], n_test=S["n_test"])
    mean, std = rn.channel_stats(X)
    return (rn.normalize(X, mean, std), y), (rn.normalize(X_test, mean, std), y_test)


def build(name, seed):
    return rn.resnet_cifar(S["depth"], num_classes=10, width=S["width"], shortcut=S["shortcut"],
                           rng=seed, **MODELS[name])


# %% [markdown]
# ## 2. Is any input-to-output path linear? (structure only, no forward pass, any seed)

# %%
reports = {}
for name in MODELS:
    report = rn.identity_path_report(build(name, SEEDS[0]))
    reports[name] = {"linear_path": report.linear_path, "reasons": report.reasons,
                     "blocks": report.blocks, "identity_spans": report.spans}
    verdicts = {}
    for block in report.blocks:
        verdicts[block["verdict"]] = verdicts.get(block["verdict"], 0) + 1
    print(f"{name:<6} linear path: {report.linear_path}   block verdicts: {verdicts}")
    for reason in report.reasons:
        print(f"         - {reason}")


# %% [markdown]
# ## 3. ||dL/da|| at every block's input at initialisation, and 4. train the three
# identically (on every seed)

# %%
def first_last_block(norms):
    """||dL/da|| at the first and the last residual block's input."""
    blocks = [k for k in norms if k.startswith("stage")]
    return norms[blocks[0]]["da"], norms[blocks[-1]]["da"]


def run_seed(name, data, seed):
    """Gradient norms at init, the training history and the test accuracy of one model."""
    (X, y), (X_test, y_test) = data
    probe = slice(0, S["probe_batch"])
    norms = rn.gradient_norms(build(name, seed), X[probe], y[probe], rn.SoftmaxCrossEntropy())
    print(f"\n-- seed {seed}, {name}: resnet_cifar({S['depth']}, {MODELS[name]})")
    model = build(name, seed)
    trainer = rn.Trainer(model, rn.SoftmaxCrossEntropy(),
                         rn.SGD(model, lr=S["lr"], momentum=S["momentum"],
                                weight_decay=S["weight_decay"]),
                         schedule=rn.CosineLR(S["lr"], S["epochs"]), rng=seed)
    start = time.perf_counter()
    history = trainer.fit(X, y, epochs=S["epochs"], batch_size=S["batch_size"],
                          verbose=0 if args.quick else 1)
    return {"grad_norms": norms, "history": history, "seconds": time.perf_counter() - start,
            "accuracy": trainer.evaluate(X_test, y_test)["accuracy"]}


runs = {name: [] for name in MODELS}
for seed in SEEDS:
    data = load(seed)
    for name in MODELS:
        runs[name].append(run_seed(name, data, seed))

# %% [markdown]
# ## 5. Results: every seed, then mean ± 95 % t interval, and paired differences

# %%
def values(name, get):
    return [get(r) for r in runs[name]]


def ratio(r):
    first, last = first_last_block(r["grad_norms"])
    return first / last


headline = {"test_accuracy": lambda r: r["accuracy"],
            "final_train_loss": lambda r: r["history"]["loss"][-1],
            "first_over_last_block_da": ratio}
summaries = {key: {n: summary(values(n, get)) for n in MODELS} for key, get in headline.items()}
comparisons = {f"{a}_minus_{b}": {key: paired(values(a, get), values(b, get))
                                  for key, get in headline.items()}
               for a, b in (("post", "pre"), ("plain", "pre"))}

print(f"\nmean ± 95% t interval over seeds {SEEDS}")
print(f"{'model':<6} {'linear path':>11} {'|dL/da| first/last':>20} {'final loss':>16} "
      f"{'test acc':>16}")
for name in MODELS:
    print(f"{name:<6} {str(reports[name]['linear_path']):>11} "
          f"{format_summary(summaries['first_over_last_block_da'][name], digits=3):>20} "
          f"{format_summary(summaries['final_train_loss'][name], digits=4):>16} "
          f"{format_summary(summaries['test_accuracy'][name], digits=4):>16}")
for label, by_key in comparisons.items():
    for key, d in by_key.items():
        noise = "  (within noise)" if d["within_noise"] else ""
        print(f"paired {label} {key}: {format_summary(d, digits=4)}{noise}")

results = {"seeds": SEEDS,
           "grad_norms_at_init": {n: values(n, lambda r: r["grad_norms"]) for n in MODELS},
           "train_loss": {n: values(n, lambda r: r["history"].step_loss) for n in MODELS},
           "epoch_train_loss": {n: values(n, lambda r: r["history"]["loss"]) for n in MODELS},
           "identity_path_report": reports, **summaries, "paired": comparisons,
           "seconds": {n: values(n, lambda r: r["seconds"]) for n in MODELS},
           "interval": "95% Student t interval over the seeds: mean -/+ t(0.975, K-1) std / sqrt(K)",
           "settings": S}
with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)

# %% [markdown]
# ## 6. Figures: every seed faint, the mean and its 95 % band

# %%
def moving_average(losses, window):
    window = max(1, min(window, len(losses)))
    return np.convolve(losses, np.ones(window) / window, mode="valid").tolist()


norms = {n: [[v["da"] for v in r["grad_norms"].values()] for r in runs[n]] for n in MODELS}
viz.plot_seed_curves({f"||dL/da|| at init ({len(SEEDS)} seeds)": norms},
                     os.path.join(args.out, "05_grad_norms_at_init.png"), logy=True,
                     xlabel="unit (1 = stem, then each block, then the head)",
                     ylabel="||dL/da||")
smooth = 1 if args.quick else 10
steps = {n: [moving_average(losses, smooth) for losses in results["train_loss"][n]]
         for n in MODELS}
viz.plot_seed_curves({f"ResNet-{S['depth']} on the built-in set ({len(SEEDS)} seeds)": steps},
                     os.path.join(args.out, "05_train_loss.png"), xlabel="step",
                     ylabel="training loss" + (f" (moving average of {smooth})" if smooth > 1 else ""))
print(f"\nwrote {args.out}/results.json, 05_grad_norms_at_init.png, 05_train_loss.png")
