"""Do shortcut connections have weights? Shortcut options identity / A / B / C compared.

Answers learner question 2 (docs/questions/q2_shortcut_weights.md): a shortcut that
joins tensors of the same shape is the identity, with no parameters; where the shape
changes (a stage boundary: stride 2, twice the channels) something must change a^[l]:
zero-padding (He et al. 2015 option A, no parameters) or a projection W_s, a 1x1
conv + BN (option B there, option C everywhere). This script

1. counts parameters, whole model and per block, for each option on one ResNet,
2. shows the error you get from an identity shortcut across a shape change,
3. trains the A, B and C models identically (same seed, same initial branch weights,
   same data order and schedule) and compares their test accuracy, on several seeds
   (--seeds K: seed, seed+1, ...; each seed draws its own data subset, initial
   weights and batch order): every seed's accuracy, the mean, standard deviation and
   95 % Student t interval of each option, and the paired differences A - B, A - C,
   B - C over the same seeds (resnet_np.stats).

Run (from the repository root)::

    python examples/03_shortcut_options.py               # full: 3 seeds, 11-15 minutes
    python examples/03_shortcut_options.py --quick       # 2 seeds, seconds (the tests)
    python examples/03_shortcut_options.py --out DIR     # default runs/03_shortcut_options
    python examples/03_shortcut_options.py --epochs 30 --seed 1   # longer, another seed

Full mode trains three ResNet-20s on 4,000 of the 10,000 built-in 16x16 images for
10 epochs (cosine schedule), tested on the 2,000 test images. For speed it trades
away the paper's scale: 16x16 synthetic shapes instead of ImageNet, a 4k subset,
10 epochs instead of the paper's ~120 (ImageNet) or 164 (CIFAR), and 3 seeds per
option. One seed took 3 min 46 s on the idle 2-core machine (A 77 s, B 67 s, C 79 s).
It writes results.json, the figures 03_shortcut_params.png, 03_test_accuracy.png
(accuracy per epoch: each seed faint, the mean and its 95 % band) and
03_final_accuracy.png (every seed, the mean and its interval), and prints a table.
"""
# %%
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import resnet_np as rn  # noqa: E402 (after sys.path: runs from a source checkout)
from resnet_np import viz  # noqa: E402 (likewise)
from resnet_np.stats import format_summary, paired, summary  # noqa: E402 (likewise)

OPTIONS = ("identity", "A", "B", "C")
TRAINED = ("A", "B", "C")
REQUIRED_KEYS = ["params.identity", "params.A", "params.B", "params.C",
                 "shortcut_params.identity", "shortcut_params.A", "shortcut_params.B",
                 "shortcut_params.C", "identity_error", "test_accuracy.A",
                 "test_accuracy.B", "test_accuracy.C", "test_accuracy_curve.A",
                 "test_accuracy_curve.B", "test_accuracy_curve.C", "per_block.identity",
                 "per_block.A", "per_block.B", "per_block.C", "block_params.same_shape",
                 "block_params.boundary", "seeds", "paired_test_accuracy"]
# Each of these is a stats.summary over the seeds: values, n, mean, std, ci95.
HEADLINE_KEYS = ["test_accuracy.A", "test_accuracy.B", "test_accuracy.C"]
# Each of these is a stats.paired difference over the same seeds.
PAIRED_KEYS = ["paired_test_accuracy.A_minus_B", "paired_test_accuracy.A_minus_C",
               "paired_test_accuracy.B_minus_C"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, runs in seconds")
    p.add_argument("--out", default=os.path.join("runs", "03_shortcut_options"))
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=int, default=None,
                   help="number of seeds: seed, seed+1, ... (default: 2 quick, 3 full)")
    p.add_argument("--epochs", type=int, default=None, help="override (quick 1, full 10)")
    args = p.parse_args(argv)
    args.seed_list = [args.seed + i for i in range(args.seeds or (2 if args.quick else 3))]
    sizes = (dict(depth=8, n_train=128, n_test=64, epochs=1) if args.quick else
             dict(depth=20, n_train=4000, n_test=2000, epochs=10))
    sizes["epochs"] = args.epochs or sizes["epochs"]
    args.__dict__.update(sizes, batch_size=64 if args.quick else 128, lr=0.1)
    return args


# %% [markdown]
# ## 1. Where are the shortcut weights? Count them.
# A shortcut's parameters live under the name "...shortcut..." (Projection: conv.W,
# bn.gamma, bn.beta). Identity and ZeroPadShortcut hold none.

# %%
def shortcut_count(model):
    """Number of trainable scalars inside shortcut layers."""
    return int(sum(p.size for name, p in model.named_parameters() if ".shortcut." in name))


def blocks_of(model):
    """(name, block) for every residual block of a resnet_cifar model, in order."""
    return [(name, layer) for name, layer in model.named_layers()
            if isinstance(layer, rn.ResidualBlock)]


def count_model(depth, kind, seed):
    """params, shortcut_params and the per-block view for one option; error if impossible."""
    try:
        model = rn.resnet_cifar(depth, shortcut=kind, rng=seed)
    except ValueError as err:
        return None, None, None, str(err)
    per_block = {name: {"shortcut": type(b.shortcut).__name__,
                        "shape": f"{b.in_channels}->{b.out_channels}, stride {b.stride}",
                        "shortcut_params": b.shortcut.num_parameters()}
                 for name, b in blocks_of(model)}
    return model.num_parameters(), shortcut_count(model), per_block, None


def identity_per_block(depth, seed):
    """Per block: would an identity shortcut be possible there (same shape in and out)?"""
    view = {}
    for name, b in blocks_of(rn.resnet_cifar(depth, shortcut="A", rng=seed)):
        same = b.in_channels == b.out_channels and b.stride == 1
        view[name] = {"shortcut": "Identity" if same else "impossible (ValueError)",
                      "shape": f"{b.in_channels}->{b.out_channels}, stride {b.stride}",
                      "shortcut_params": 0 if same else None}
    return view


def block_params():
    """Parameters of one same-shape block (16->16) and one boundary block (16->32, stride 2)."""
    table = {}
    for label, (c_in, c_out, stride) in {"same_shape": (16, 16, 1),
                                         "boundary": (16, 32, 2)}.items():
        table[label] = {}
        for kind in OPTIONS:
            try:
                block = rn.BasicBlock(c_in, c_out, stride=stride, shortcut=kind, rng=0)
                table[label][kind] = {"params": block.num_parameters(),
                                      "shortcut_params": block.shortcut.num_parameters()}
            except ValueError:
                table[label][kind] = None
    return table


# %% [markdown]
# ## 2. Train A, B and C identically
# The same rng seed gives every option the same stem, branch and classifier weights
# (the block draws its shortcut's rng whatever the option), the same batches and the
# same schedule: only the shortcuts differ.

# %%
def load_data(args, seed):
    (X, y), (X_test, y_test) = rn.load_builtin(seed=seed, n_train=args.n_train,
                                                n_test=args.n_test)
    mean, std = rn.channel_stats(X)
    return (rn.normalize(X, mean, std), y), (rn.normalize(X_test, mean, std), y_test)


def train_one(kind, data, args, seed):
    """Train resnet_cifar(depth, shortcut=kind); returns its History and test accuracy."""
    (X, y), (X_test, y_test) = data
    model = rn.resnet_cifar(args.depth, shortcut=kind, rng=seed)
    optimizer = rn.SGD(model, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    schedule = rn.WarmupLR(rn.CosineLR(args.lr, args.epochs), warmup_epochs=1,
                           warmup_lr=args.lr / 10, linear=True)
    trainer = rn.Trainer(model, rn.SoftmaxCrossEntropy(), optimizer, schedule=schedule,
                         rng=seed)
    start = time.perf_counter()
    history = trainer.fit(X, y, epochs=args.epochs, batch_size=args.batch_size,
                          val=(X_test, y_test), verbose=0)
    seconds = time.perf_counter() - start
    accuracy = trainer.evaluate(X_test, y_test)["accuracy"]
    print(f"  seed {seed}, shortcut {kind}: test accuracy {accuracy:.4f}, train loss "
          f"{history['loss'][-1]:.4f}, {seconds:.0f}s")
    return history, accuracy, seconds


# %% [markdown]
# ## 3. Results table, results.json and figures

# %%
def print_tables(results):
    print(f"\nParameters of ResNet-{results['depth']} by shortcut option, test accuracy "
          f"(mean ± 95% t interval over seeds {results['seeds']})")
    print(f"{'option':<9}{'params':>10}{'shortcut':>10}{'test acc (%)':>18}")
    for kind in OPTIONS:
        p, s = results["params"][kind], results["shortcut_params"][kind]
        acc = results["test_accuracy"].get(kind)
        cells = [f"{p:>10,}", f"{s:>10,}"] if p is not None else [f"{'error':>10}", f"{'-':>10}"]
        cells.append(f"{format_summary(acc, scale=100) if acc else '-':>18}")
        print(f"{kind:<9}" + "".join(cells))
    for label, d in results["paired_test_accuracy"].items():
        noise = "  (0 inside: within the noise of these seeds)" if d["within_noise"] else ""
        print(f"paired {label}: {format_summary(d, scale=100)} points{noise}")
    print("\nShortcut parameters per block")
    print(f"{'block':<11}{'shape':<20}" + "".join(f"{k:>10}" for k in OPTIONS))
    for name, info in results["per_block"]["A"].items():
        row = [results["per_block"][k][name]["shortcut_params"] for k in OPTIONS]
        print(f"{name:<11}{info['shape']:<20}"
              + "".join(f"{'error' if v is None else v:>10}" for v in row))
    print(f"\nidentity shortcut across a shape change:\n  ValueError: {results['identity_error']}")


def count_all(args):
    results = {"depth": args.depth, "params": {}, "shortcut_params": {}, "per_block": {}}
    for kind in OPTIONS:
        params, short, per_block, error = count_model(args.depth, kind, args.seed)
        results["params"][kind], results["shortcut_params"][kind] = params, short
        if error is not None:
            results["identity_error"] = error
        else:
            results["per_block"][kind] = per_block
    results["per_block"] = {"identity": identity_per_block(args.depth, args.seed),
                            **results["per_block"]}
    results["block_params"] = block_params()
    return results


def train_all(args):
    """Train A, B and C on every seed: per-seed histories, accuracies and seconds."""
    runs = {kind: [] for kind in TRAINED}
    for seed in args.seed_list:
        data = load_data(args, seed)
        for kind in TRAINED:
            runs[kind].append(train_one(kind, data, args, seed))
    return runs


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    results = count_all(args)
    print(f"training ResNet-{args.depth} with shortcuts {', '.join(TRAINED)}: "
          f"{args.n_train} train / {args.n_test} test images, {args.epochs} epochs, "
          f"seeds {args.seed_list}")
    runs = train_all(args)
    accuracy = {kind: [acc for _, acc, _ in runs[kind]] for kind in TRAINED}
    results["seeds"] = args.seed_list
    results["test_accuracy"] = {kind: summary(accuracy[kind]) for kind in TRAINED}
    results["paired_test_accuracy"] = {f"{a}_minus_{b}": paired(accuracy[a], accuracy[b])
                                       for a, b in (("A", "B"), ("A", "C"), ("B", "C"))}
    results["test_accuracy_curve"] = {k: [h["val_accuracy"] for h, _, _ in runs[k]] for k in TRAINED}
    results["train_loss"] = {k: [h["loss"] for h, _, _ in runs[k]] for k in TRAINED}
    results["seconds"] = {k: [sec for _, _, sec in runs[k]] for k in TRAINED}
    results["settings"] = {k: getattr(args, k) for k in
                           ("depth", "n_train", "n_test", "epochs", "batch_size", "lr", "seed")}
    results["interval"] = ("95% Student t interval over the seeds: mean -/+ t(0.975, K-1) "
                           "std / sqrt(K)")
    results["total_seconds"] = time.perf_counter() - start
    print_tables(results)
    save(results, args.out)
    return results


def save(results, out):
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    viz.plot_shortcut_params(results["params"], results["shortcut_params"],
                             os.path.join(out, "03_shortcut_params.png"),
                             title=f"ResNet-{results['depth']}: parameters by shortcut option")
    K = len(results["seeds"])
    viz.plot_seed_curves(
        {f"ResNet-{results['depth']}: test accuracy per epoch":
         {f"option {k}": v for k, v in results["test_accuracy_curve"].items()}},
        os.path.join(out, "03_test_accuracy.png"), ylabel="test accuracy")
    viz.plot_seed_points({"test accuracy": {f"option {k}": v["values"]
                                            for k, v in results["test_accuracy"].items()}},
                         os.path.join(out, "03_final_accuracy.png"), ylabel="test accuracy",
                         title=f"ResNet-{results['depth']}, {K} seeds: mean and 95% t interval")
    print(f"\nwrote {out}/results.json, 03_shortcut_params.png, 03_test_accuracy.png, "
          f"03_final_accuracy.png "
          f"({results['total_seconds']:.0f}s in all)")


# %%
if __name__ == "__main__":
    main()
