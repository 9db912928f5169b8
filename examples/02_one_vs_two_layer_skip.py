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

Run (from the repository root):

    python examples/02_one_vs_two_layer_skip.py        # a few minutes on 2 cores
    python examples/02_one_vs_two_layer_skip.py --quick --out /tmp/x

Writes results.json (keys in REQUIRED_KEYS), training_loss.png (loss per epoch, ReLU and
sigmoid panels) and linearity_r2.png (R^2 per skip).
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

REQUIRED_KEYS = ["collapse_max_abs_diff", "collapse_by_case", "skip2_collapse_raises",
                 "linearity_r2.1", "linearity_r2.2", "linearity_r2.3",
                 "linearity_r2_init", "linearity_r2_branch",
                 "final_train_loss.relu.skip1", "final_train_loss.relu.skip2",
                 "final_train_loss.relu.skip3", "final_train_loss.relu.plain",
                 "final_train_loss.sigmoid.skip1", "final_train_loss.sigmoid.skip2",
                 "final_train_loss.sigmoid.skip3", "final_train_loss.sigmoid.plain",
                 "best_lr", "loss_by_lr", "curves", "initial_loss", "sigmoid_shallow_control",
                 "setup"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="One-layer vs two-layer residual blocks.")
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    p.add_argument("--out", default=os.path.join("runs", "02_one_vs_two_layer_skip"))
    p.add_argument("--seed", type=int, default=0)
    args, _ = p.parse_known_args(argv)     # tolerate a notebook kernel's own arguments
    return args


args = parse_args()
if args.quick:
    SETUP = dict(n_train=200, layers=6, width=16, epochs=2, batch_size=64, probe_batch=100,
                 lrs={"relu": [0.01], "sigmoid": [0.3]})
else:
    SETUP = dict(n_train=2000, layers=6, width=64, epochs=20, batch_size=64, probe_batch=1000,
                 lrs={"relu": [0.0003, 0.001, 0.003, 0.01, 0.03], "sigmoid": [0.01, 0.1, 1.0]})
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

# %%
(X, y), _ = rn.load_builtin(seed=args.seed, n_train=SETUP["n_train"], n_test=1)
mean, std = rn.channel_stats(X)
X = rn.normalize(X, mean, std).reshape(len(X), -1)           # (N, 3*16*16) = (N, 768)
MODELS = {"skip1": (1, True), "skip2": (2, True), "skip3": (3, True), "plain": (1, False)}


def build(name, activation):
    skip, residual = MODELS[name]
    return rn.residual_mlp(X.shape[1], SETUP["width"], SETUP["layers"] // skip, 10, skip=skip,
                           activation=activation, residual=residual, rng=args.seed)


def train(name, activation, lr):
    """Loss per epoch (or None if it diverged) and the trained model."""
    model = build(name, activation)
    trainer = rn.Trainer(model, rn.SoftmaxCrossEntropy(), rn.SGD(model, lr=lr, momentum=0.9),
                         rng=args.seed)
    try:
        history = trainer.fit(X, y, epochs=SETUP["epochs"], batch_size=SETUP["batch_size"], verbose=0)
    except FloatingPointError:
        return None, model
    return history["loss"], model


start = time.perf_counter()
best, loss_by_lr, best_lr, curves = {}, {}, {}, {}
for activation, lrs in SETUP["lrs"].items():
    for k in (loss_by_lr, best_lr, curves):
        k[activation] = {}
    for name in MODELS:
        finals = {}
        for lr in lrs:
            losses, model = train(name, activation, lr)
            finals[str(lr)] = losses[-1] if losses else None
            if losses and (name not in best_lr[activation] or losses[-1] < curves[activation][name][-1]):
                best_lr[activation][name], curves[activation][name] = lr, losses
                best[activation, name] = model
        loss_by_lr[activation][name] = finals
        curves[activation].setdefault(name, [])          # stays empty if every lr diverged
        print(f"{activation:>7} {name}: final loss by lr {finals}", flush=True)
train_seconds = time.perf_counter() - start
final_loss = {act: {name: c[-1] if c else None for name, c in by_model.items()}
              for act, by_model in curves.items()}

print(f"\nfinal training loss, best lr of the grid, {SETUP['epochs']} epochs ({train_seconds:.0f}s):")
print(f"{'':>8}" + "".join(f"{name:>9}" for name in MODELS))
for activation in final_loss:
    print(f"{activation:>8}" + "".join(f"{final_loss[activation][n] or float('nan'):>9.4f}"
                                       for n in MODELS))


# %% [markdown]
# Two controls. The loss of every net at its initial weights, before any step (a
# one-layer block starts at weight I + W, so activations grow block after block); and
# a shallow plain sigmoid net (stem, one layer, head), trained on the same grid, to
# tell "sigmoid cannot learn this task" from "sigmoid cannot learn it at this depth".

# %%
initial_loss = {act: {name: float(rn.SoftmaxCrossEntropy().forward(build(name, act)(X), y))
                      for name in MODELS} for act in SETUP["lrs"]}
print("\nloss at the initial weights:", json.dumps(initial_loss))
shallow = {}
for lr in SETUP["lrs"]["sigmoid"]:
    model = rn.residual_mlp(X.shape[1], SETUP["width"], 1, 10, skip=1, activation="sigmoid",
                            residual=False, rng=args.seed)
    trainer = rn.Trainer(model, rn.SoftmaxCrossEntropy(), rn.SGD(model, lr=lr, momentum=0.9),
                         rng=args.seed)
    shallow[str(lr)] = trainer.fit(X, y, epochs=SETUP["epochs"], batch_size=SETUP["batch_size"],
                                   verbose=0)["loss"][-1]
print(f"shallow plain sigmoid net (3 dense layers), final loss by lr: {shallow}")


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


x_probe = X[:SETUP["probe_batch"]]
r2_trained, r2_init, r2_branch = {}, {}, {}
for skip, name in ((1, "skip1"), (2, "skip2"), (3, "skip3")):
    model = best[("relu", name)] if ("relu", name) in best else build(name, "relu")
    r2_trained[str(skip)] = mean_r2(model, x_probe)
    r2_branch[str(skip)] = mean_r2(model, x_probe, of_branch=True)
    r2_init[str(skip)] = mean_r2(build(name, "relu"), x_probe)
print("\nR^2 of the best affine fit, mean over blocks (ReLU nets):")
for skip in r2_trained:
    print(f"  skip={skip}: block at init {r2_init[skip]:.4f}, block trained {r2_trained[skip]:.4f}, "
          f"branch F trained {r2_branch[skip]:.4f}")

# %% [markdown]
# ## 4. Save the numbers and the figures

# %%
results = {
    "collapse_max_abs_diff": cases["relu"],
    "collapse_by_case": cases,
    "skip2_collapse_raises": skip2_raises,
    "linearity_r2": r2_trained,
    "linearity_r2_init": r2_init,
    "linearity_r2_branch": r2_branch,
    "final_train_loss": final_loss,
    "best_lr": best_lr,
    "loss_by_lr": loss_by_lr,
    "curves": curves,
    "initial_loss": initial_loss,
    "sigmoid_shallow_control": {"final_loss_by_lr": shallow, "layers": 3},
    "seconds": train_seconds,
    "setup": SETUP,
}
with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
panels = {f"{act} (best lr each)": by_model for act, by_model in curves.items()}
viz.plot_curve_panels(panels, os.path.join(args.out, "training_loss.png"), ylabel="training loss",
                      title=f"{SETUP['layers']} dense layers in blocks vs plain, "
                      f"{SETUP['n_train']} built-in images")
bars = {"block at init": r2_init, "block trained": r2_trained, "branch F trained": r2_branch}
viz.plot_grouped_bars({s: {f"skip={k}": v for k, v in d.items()} for s, d in bars.items()},
                      os.path.join(args.out, "linearity_r2.png"), ylabel="R^2 of best affine fit",
                      title="how affine is one residual block? (ReLU)")
print(f"wrote {args.out}/results.json, training_loss.png and linearity_r2.png")
