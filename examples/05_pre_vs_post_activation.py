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

Run (from the repository root):

    python examples/05_pre_vs_post_activation.py               # full: about 2 minutes on 2 idle cores
    python examples/05_pre_vs_post_activation.py --quick --out /tmp/05   # seconds (tests)

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


try:
    import resnet_np as rn
except ImportError:     # run from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import resnet_np as rn
from resnet_np import viz

REQUIRED_KEYS = ["grad_norms_at_init.plain", "grad_norms_at_init.post", "grad_norms_at_init.pre",
                 "train_loss.plain", "train_loss.post", "train_loss.pre",
                 "identity_path_report.plain.linear_path", "identity_path_report.post.linear_path",
                 "identity_path_report.pre.linear_path", "identity_path_report.pre.blocks",
                 "epoch_train_loss", "test_accuracy", "settings"]
MODELS = {"plain": dict(variant="post", residual=False),
          "post": dict(variant="post", residual=True),
          "pre": dict(variant="pre", residual=True)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Plain vs post- vs pre-activation ResNets.")
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--out", default=os.path.join("runs", "05_pre_vs_post_activation"))
    p.add_argument("--seed", type=int, default=0)
    args, _ = p.parse_known_args(argv)     # tolerate a notebook kernel's own arguments
    return args


args = parse_args()
S = dict(depth=8, n_train=64, n_test=32, epochs=1, batch_size=16, probe_batch=16) if args.quick \
    else dict(depth=56, n_train=2000, n_test=1000, epochs=3, batch_size=64, probe_batch=128)
S.update(width=16, shortcut="A", lr=0.05, momentum=0.9, weight_decay=1e-4, seed=args.seed)
os.makedirs(args.out, exist_ok=True)

# %% [markdown]
# ## 1. Data and the three models (same seed: the same initial branch weights)

# %%
(X, y), (X_test, y_test) = rn.load_builtin(args.seed, n_train=S["n_train"], n_test=S["n_test"])
mean, std = rn.channel_stats(X)
X, X_test = rn.normalize(X, mean, std), rn.normalize(X_test, mean, std)


def build(name):
    return rn.resnet_cifar(S["depth"], num_classes=10, width=S["width"], shortcut=S["shortcut"],
                           rng=S["seed"], **MODELS[name])


# %% [markdown]
# ## 2. Is any input-to-output path linear? (structure only, no forward pass)

# %%
reports = {}
for name in MODELS:
    report = rn.identity_path_report(build(name))
    reports[name] = {"linear_path": report.linear_path, "reasons": report.reasons,
                     "blocks": report.blocks, "identity_spans": report.spans}
    verdicts = {}
    for block in report.blocks:
        verdicts[block["verdict"]] = verdicts.get(block["verdict"], 0) + 1
    print(f"{name:<6} linear path: {report.linear_path}   block verdicts: {verdicts}")
    for reason in report.reasons:
        print(f"         - {reason}")

# %% [markdown]
# ## 3. ||dL/da|| at every block's input, at initialisation

# %%
probe = slice(0, S["probe_batch"])
grad_norms = {name: rn.gradient_norms(build(name), X[probe], y[probe], rn.SoftmaxCrossEntropy())
              for name in MODELS}


def first_last_block(norms):
    """||dL/da|| at the first and the last residual block's input."""
    blocks = [k for k in norms if k.startswith("stage")]
    return norms[blocks[0]]["da"], norms[blocks[-1]]["da"]


# %% [markdown]
# ## 4. Train the three identically

# %%
histories, accuracy, seconds = {}, {}, {}
for name in MODELS:
    print(f"\n-- {name}: resnet_cifar({S['depth']}, {MODELS[name]})")
    model = build(name)
    trainer = rn.Trainer(model, rn.SoftmaxCrossEntropy(),
                         rn.SGD(model, lr=S["lr"], momentum=S["momentum"],
                                weight_decay=S["weight_decay"]),
                         schedule=rn.CosineLR(S["lr"], S["epochs"]), rng=S["seed"])
    start = time.perf_counter()
    histories[name] = trainer.fit(X, y, epochs=S["epochs"], batch_size=S["batch_size"],
                                  verbose=0 if args.quick else 1)
    seconds[name] = time.perf_counter() - start
    accuracy[name] = trainer.evaluate(X_test, y_test)["accuracy"]

# %% [markdown]
# ## 5. Results

# %%
print(f"\n{'model':<6} {'linear path':>11} {'|dL/da| first block':>20} {'last block':>11} "
      f"{'ratio':>7} {'loss ep1':>9} {'final loss':>10} {'test acc':>9} {'seconds':>8}")
for name in MODELS:
    first, last = first_last_block(grad_norms[name])
    loss = histories[name]["loss"]
    print(f"{name:<6} {str(reports[name]['linear_path']):>11} {first:>20.4g} {last:>11.4g} "
          f"{first / last:>7.3g} {loss[0]:>9.4f} {loss[-1]:>10.4f} {accuracy[name]:>9.4f} "
          f"{seconds[name]:>8.1f}")

results = {"grad_norms_at_init": grad_norms,
           "train_loss": {n: histories[n].step_loss for n in MODELS},
           "epoch_train_loss": {n: histories[n]["loss"] for n in MODELS},
           "identity_path_report": reports, "test_accuracy": accuracy, "seconds": seconds,
           "first_over_last_block_da": {n: first_last_block(grad_norms[n])[0] /
                                        first_last_block(grad_norms[n])[1] for n in MODELS},
           "settings": S}
with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)

# %% [markdown]
# ## 6. Figures

# %%
viz.plot_gradient_norms(grad_norms, path=os.path.join(args.out, "05_grad_norms_at_init.png"))
viz.plot_step_losses(results["train_loss"], path=os.path.join(args.out, "05_train_loss.png"),
                     title=f"ResNet-{S['depth']} on the built-in set: training loss",
                     smooth=1 if args.quick else 10)
print(f"\nwrote {args.out}/results.json, 05_grad_norms_at_init.png, 05_train_loss.png")
