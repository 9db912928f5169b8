"""02 - Why does a residual block skip two layers and not one? (And with sigmoid?)

Question: Andrew Ng's block adds a^[l] back after two layers, a^[l+2] = g(z^[l+2] + a^[l]).
Why not after one, a^[l+1] = g(z^[l+1] + a^[l])?

    g(W a + b + a) = g((I + W) a + b)

so a one-layer block *is* an ordinary layer, with weight I + W (W + W_s with a
projection): it can represent nothing a plain layer cannot. With two layers the branch
F(a) = W2 g(W1 a + b1) + b2 is a nonlinear function that can also be 0, so the block
can fall back to the identity. This script checks both halves with numbers:

1. collapse: a skip=1 DenseResidualBlock equals its `collapse()` (one Dense + g) to
   rounding, in float64, for ReLU, sigmoid and a projection shortcut; skip=2 refuses.
2. training: residual MLPs made of 6 dense layers in blocks (skip=1 x 6, skip=2 x 3,
   skip=3 x 2) and the plain twin with the same 6 layers, on the flattened built-in
   shapes (768 inputs, 10 classes), with ReLU and with sigmoid (the thread's
   follow-up). One recipe for all: SGD momentum 0.9, batch 64, the same epochs; each
   net gets the best learning rate of one small grid (every grid value is reported).
3. linearity: inspect.linearity_probe (R^2 of the best affine fit) on each block of
   the trained ReLU nets, fed the activations that actually reach it, and at init;
   also the R^2 of the branch F alone (the part added to the shortcut).

Steps 2 and 3 run once per seed (--seeds K: seed, seed+1, ...; each seed draws its
own data, initial weights and batch order); results.json keeps every seed's value and,
for each headline number, the mean, standard deviation and 95 % Student t interval
(resnet_np.stats), plus the paired difference skip1 - skip2 on the same seeds.

Run (from the repository root):

    python examples/02_one_vs_two_layer_skip.py        # 3 seeds, about 2 min on 2 cores
    python examples/02_one_vs_two_layer_skip.py --quick --out /tmp/x      # 2 seeds
    python examples/02_one_vs_two_layer_skip.py --seeds 5

Writes results.json (keys in REQUIRED_KEYS), training_loss.png (loss per epoch, ReLU and
sigmoid panels; each seed faint, the mean and its 95 % band bold) and linearity_r2.png
(R^2 per skip: every seed, the mean and its interval).
"""
# %%
import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # 64-wide matmuls: threads only add overhead
import numpy as np  # noqa: E402 (after OPENBLAS_NUM_THREADS: BLAS reads it when NumPy loads)

try:
    import resnet_np as rn
except ImportError:     # run from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import resnet_np as rn
from resnet_np import viz  # noqa: E402 (after the environment line above)
from resnet_np.inspect import linearity_probe  # noqa: E402 (likewise)
from resnet_np.stats import format_summary, paired, summary  # noqa: E402 (likewise)

REQUIRED_KEYS = ["collapse_max_abs_diff", "collapse_by_case", "skip2_collapse_raises",
                 "linearity_r2.1", "linearity_r2.2", "linearity_r2.3",
                 "linearity_r2_init", "linearity_r2_branch",
                 "final_train_loss.relu.skip1", "final_train_loss.relu.skip2",
                 "final_train_loss.relu.skip3", "final_train_loss.relu.plain",
                 "final_train_loss.sigmoid.skip1", "final_train_loss.sigmoid.skip2",
                 "final_train_loss.sigmoid.skip3", "final_train_loss.sigmoid.plain",
                 "best_lr", "loss_by_lr", "curves", "initial_loss", "sigmoid_shallow_control",
                 "setup", "seeds", "paired_final_train_loss"]
# Each of these is a stats.summary over the seeds: values, n, mean, std, ci95.
HEADLINE_KEYS = ["final_train_loss.relu.skip1", "final_train_loss.relu.skip2",
                 "final_train_loss.relu.skip3", "final_train_loss.relu.plain",
                 "final_train_loss.sigmoid.skip1", "final_train_loss.sigmoid.skip2",
                 "final_train_loss.sigmoid.skip3", "final_train_loss.sigmoid.plain",
                 "linearity_r2.1", "linearity_r2.2", "linearity_r2.3"]
# Each of these is a stats.paired difference over the same seeds.
PAIRED_KEYS = ["paired_final_train_loss.relu.skip1_minus_skip2",
               "paired_final_train_loss.sigmoid.skip1_minus_skip2"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="One-layer vs two-layer residual blocks.")
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    p.add_argument("--out", default=os.path.join("runs", "02_one_vs_two_layer_skip"))
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=int, default=None,
                   help="number of seeds: seed, seed+1, ... (default: 2 quick, 3 full)")
    args, _ = p.parse_known_args(argv)     # tolerate a notebook kernel's own arguments
    return args


args = parse_args()
if args.quick:
    SETUP = dict(n_train=200, layers=6, width=16, epochs=2, batch_size=64, probe_batch=100,
                 lrs={"relu": [0.01], "sigmoid": [0.3]})
else:
    SETUP = dict(n_train=2000, layers=6, width=64, epochs=20, batch_size=64, probe_batch=1000,
                 lrs={"relu": [0.0003, 0.001, 0.003, 0.01, 0.03], "sigmoid": [0.01, 0.1, 1.0]})
SEEDS = [args.seed + i for i in range(args.seeds or (2 if args.quick else 3))]
os.makedirs(args.out, exist_ok=True)
rng = np.random.default_rng(args.seed)


# %% [markdown]
# ## 1. A one-layer block is one layer: g(W a + b + a) = g((I + W) a + b)

# %%
def collapse_diff(activation="relu", shortcut="identity", out_features=None, width=64):
    """max |block(x) - block.collapse()(x)| for a skip=1 block, in float64."""
    block = rn.DenseResidualBlock(width, skip=1, activation=activation, shortcut=shortcut,
                                  out_features=out_features, rng=args.seed).astype(np.float64)
    single = block.collapse().astype(np.float64)
    x = rng.standard_normal((256, width))
    return float(np.max(np.abs(block(x) - single(x))))


cases = {"relu": collapse_diff("relu"), "sigmoid": collapse_diff("sigmoid"),
         "relu, projection 64->32": collapse_diff("relu", "projection", out_features=32)}
for case, diff in cases.items():
    print(f"skip=1 block vs its collapse() [{case}]: max |difference| = {diff:.2e}")

try:
    rn.DenseResidualBlock(8, skip=2, rng=0).collapse()
    skip2_raises = False
except ValueError as error:
    skip2_raises = True
    print(f"skip=2: {error}")

# %% [markdown]
# ## 2. Train 6 dense layers grouped as skip=1, 2, 3 blocks, and the plain twin
#
# Every seed draws its own data set, initial weights and batch order; on one seed all
# nets share the data and the order, so their results can be compared *paired*.

# %%
MODELS = {"skip1": (1, True), "skip2": (2, True), "skip3": (3, True), "plain": (1, False)}


def load(seed):
    """The flattened, normalised built-in images of this seed: X (N, 768), y (N,)."""
    (X, y), _ = rn.load_builtin(seed=seed, n_train=SETUP["n_train"], n_test=1)
    mean, std = rn.channel_stats(X)
    return rn.normalize(X, mean, std).reshape(len(X), -1), y      # (N, 3*16*16) = (N, 768)


def build(name, activation, seed, layers=None):
    skip, residual = MODELS[name]
    return rn.residual_mlp(768, SETUP["width"], (layers or SETUP["layers"]) // skip, 10,
                           skip=skip, activation=activation, residual=residual, rng=seed)


def train(model, X, y, lr, seed):
    """Loss per epoch, or None if it diverged."""
    trainer = rn.Trainer(model, rn.SoftmaxCrossEntropy(), rn.SGD(model, lr=lr, momentum=0.9),
                         rng=seed)
    try:
        return trainer.fit(X, y, epochs=SETUP["epochs"], batch_size=SETUP["batch_size"],
                           verbose=0)["loss"]
    except FloatingPointError:
        return None


def grid(X, y, seed):
    """For each activation and net: the final loss at every lr, the best lr, its curve
    and its trained model (the best of the grid; None where every lr diverged)."""
    out = {"loss_by_lr": {}, "best_lr": {}, "curves": {}, "models": {}}
    for activation, lrs in SETUP["lrs"].items():
        for key in out:
            out[key][activation] = {}
        for name in MODELS:
            finals, best = {}, None
            for lr in lrs:
                model = build(name, activation, seed)
                losses = train(model, X, y, lr, seed)
                finals[str(lr)] = losses[-1] if losses else None
                if losses and (best is None or losses[-1] < best[1][-1]):
                    best = (lr, losses, model)
            out["loss_by_lr"][activation][name] = finals
            out["best_lr"][activation][name], out["curves"][activation][name], \
                out["models"][activation][name] = best or (None, [], None)
            print(f"seed {seed} {activation:>7} {name}: final loss by lr {finals}", flush=True)
    return out


# %% [markdown]
# Two controls. The loss of every net at its initial weights, before any step (a
# one-layer block starts at weight I + W, so activations grow block after block); and
# a shallow plain sigmoid net (stem, one layer, head), trained on the same grid, to
# tell "sigmoid cannot learn this task" from "sigmoid cannot learn it at this depth".

# %%
def controls(X, y, seed):
    initial = {act: {name: float(rn.SoftmaxCrossEntropy().forward(build(name, act, seed)(X), y))
                     for name in MODELS} for act in SETUP["lrs"]}
    shallow = {}
    for lr in SETUP["lrs"]["sigmoid"]:
        losses = train(build("plain", "sigmoid", seed, layers=1), X, y, lr, seed)
        shallow[str(lr)] = losses[-1] if losses else None
    return initial, shallow


# %% [markdown]
# ## 3. How affine is one block? R^2 of the best affine fit, block by block
#
# Each block is probed with the activations that reach it in the network. The branch
# probe fits F(a) = z^[l+k] alone: for skip=1 that is W a + b, affine by construction.

# %%
def branch(block):
    """The residual branch F of a dense block: fc1, act1, ..., fck (no shortcut, no last g)."""
    layers = {}
    for i in range(1, block.skip + 1):
        layers[f"fc{i}"] = getattr(block, f"fc{i}")
        if i < block.skip:
            layers[f"act{i}"] = getattr(block, f"act{i}")
    return rn.Sequential(layers)


def mean_r2(model, x, of_branch=False):
    """Mean over the model's blocks of linearity_probe R^2, each fed its real input."""
    h = model.stem_act(model.stem(x))
    r2 = []
    for block in model.blocks:
        r2.append(linearity_probe(branch(block) if of_branch else block, h)["r2"])
        h = block(h)
    return float(np.mean(r2))


def linearity(trained, x_probe, seed):
    """R^2 per skip (ReLU nets): block at init, block trained, branch F trained."""
    r2 = {"init": {}, "trained": {}, "branch": {}}
    for skip, name in ((1, "skip1"), (2, "skip2"), (3, "skip3")):
        model = trained[name] or build(name, "relu", seed)
        r2["trained"][str(skip)] = mean_r2(model, x_probe)
        r2["branch"][str(skip)] = mean_r2(model, x_probe, of_branch=True)
        r2["init"][str(skip)] = mean_r2(build(name, "relu", seed), x_probe)
    return r2


# %% [markdown]
# ## 4. Every seed, then mean, standard deviation and 95 % t interval of each number

# %%
start = time.perf_counter()
per_seed = []
for seed in SEEDS:
    X, y = load(seed)
    found = grid(X, y, seed)
    initial, shallow = controls(X, y, seed)
    r2 = linearity(found.pop("models")["relu"], X[:SETUP["probe_batch"]], seed)
    per_seed.append(dict(found, seed=seed, initial_loss=initial, shallow=shallow, r2=r2))
train_seconds = time.perf_counter() - start


def over_seeds(get):
    """stats.summary of get(seed's results) over the seeds where it is not None."""
    values = [get(r) for r in per_seed]
    values = [v for v in values if v is not None]
    return summary(values) if values else None


final_loss = {act: {name: over_seeds(lambda r: r["curves"][act][name][-1]
                                     if r["curves"][act][name] else None)
                    for name in MODELS} for act in SETUP["lrs"]}
r2_summary = {kind: {k: over_seeds(lambda r: r["r2"][kind][k]) for k in ("1", "2", "3")}
              for kind in ("trained", "init", "branch")}


def paired_final_loss(act, a, b):
    """Paired difference of the final losses of nets a and b (None if either diverged)."""
    pairs = [(r["curves"][act][a], r["curves"][act][b]) for r in per_seed]
    if not all(ca and cb for ca, cb in pairs):
        return None
    return paired([ca[-1] for ca, _ in pairs], [cb[-1] for _, cb in pairs])


comparisons = {act: {"skip1_minus_skip2": paired_final_loss(act, "skip1", "skip2"),
                     "plain_minus_skip2": paired_final_loss(act, "plain", "skip2")}
               for act in SETUP["lrs"]}

print(f"\nfinal training loss, best lr of the grid, {SETUP['epochs']} epochs, "
      f"mean ± 95% t interval over seeds {SEEDS} ({train_seconds:.0f}s):")
print(f"{'':>8}" + "".join(f"{name:>18}" for name in MODELS))
for act, by_model in final_loss.items():
    cells = [format_summary(by_model[n], digits=3) if by_model[n] else "diverged" for n in MODELS]
    print(f"{act:>8}" + "".join(f"{cell:>18}" for cell in cells))
for act, pairs in comparisons.items():
    for label, d in pairs.items():
        if d is not None:
            noise = " (within noise)" if d["within_noise"] else ""
            print(f"{act} {label}: {format_summary(d, digits=3)}{noise}")
print("\nR^2 of the best affine fit, mean over blocks (ReLU nets), mean ± 95% t interval:")
for skip in ("1", "2", "3"):
    print(f"  skip={skip}: block at init {format_summary(r2_summary['init'][skip], digits=4)}, "
          f"block trained {format_summary(r2_summary['trained'][skip], digits=4)}, "
          f"branch F trained {format_summary(r2_summary['branch'][skip], digits=4)}")

# %% [markdown]
# ## 5. Save the numbers and the figures

# %%
results = {
    "seeds": SEEDS,
    "collapse_max_abs_diff": cases["relu"],
    "collapse_by_case": cases,
    "skip2_collapse_raises": skip2_raises,
    "linearity_r2": r2_summary["trained"],
    "linearity_r2_init": r2_summary["init"],
    "linearity_r2_branch": r2_summary["branch"],
    "final_train_loss": final_loss,
    "paired_final_train_loss": comparisons,
    "best_lr": [r["best_lr"] for r in per_seed],
    "loss_by_lr": [r["loss_by_lr"] for r in per_seed],
    "curves": [r["curves"] for r in per_seed],
    "initial_loss": [r["initial_loss"] for r in per_seed],
    "sigmoid_shallow_control": {"final_loss_by_lr": [r["shallow"] for r in per_seed],
                                "layers": 3},
    "interval": "95% Student t interval over the seeds: mean -/+ t(0.975, K-1) std / sqrt(K)",
    "seconds": train_seconds,
    "setup": SETUP,
}
with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
panels = {f"{act} (best lr each)": {name: [r["curves"][act][name] for r in per_seed
                                           if r["curves"][act][name]]
                                    for name in MODELS}
          for act in SETUP["lrs"]}
panels = {title: {name: c for name, c in curves.items() if c} for title, curves in panels.items()}
viz.plot_seed_curves(panels, os.path.join(args.out, "training_loss.png"), ylabel="training loss",
                     title=f"{SETUP['layers']} dense layers in blocks vs plain, "
                     f"{SETUP['n_train']} built-in images, {len(SEEDS)} seeds")
points = {label: {f"skip={k}": v["values"] for k, v in r2_summary[kind].items()}
          for label, kind in (("block at init", "init"), ("block trained", "trained"),
                              ("branch F trained", "branch"))}
viz.plot_seed_points(points, os.path.join(args.out, "linearity_r2.png"),
                     ylabel="R^2 of best affine fit",
                     title=f"how affine is one residual block? (ReLU, {len(SEEDS)} seeds)")
print(f"wrote {args.out}/results.json, training_loss.png and linearity_r2.png")
