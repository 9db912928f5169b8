"""Command line: python -m resnet_np {trace,gradcheck,bench,train,exercise,notebooks} ...

    python -m resnet_np trace        step through one residual block (--plot FILE draws it)
    python -m resnet_np gradcheck    check every layer and block type
    python -m resnet_np bench        convolution and training throughput
    python -m resnet_np train        train a small ResNet on the built-in data set
    python -m resnet_np exercise     exercises with a checker that names the bug
    python -m resnet_np notebooks    notebooks/ from the docs pages (--check, --execute)
"""
import argparse
import sys

import numpy as np


def trace(argv):
    """Build one residual block, run forward and backward, print (and draw) every quantity."""
    from .inspect import gradients_table, intermediates_table
    from .inspect.trace import BLOCK_KINDS, example_block, run_block

    p = argparse.ArgumentParser(prog="python -m resnet_np trace",
                                description="Step through one residual block: a^[l] to a^[l+k].")
    p.add_argument("--block", choices=BLOCK_KINDS, default="dense",
                   help="dense (--skip, --activation apply), basic, preact or bottleneck")
    p.add_argument("--skip", type=int, choices=(1, 2, 3), default=2)
    p.add_argument("--activation", choices=("relu", "sigmoid", "tanh", "leaky_relu"),
                   default="relu")
    p.add_argument("--shortcut", choices=("identity", "projection", "none"), default="identity")
    p.add_argument("--features", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", metavar="FILE", help="also draw the block-trace figure to FILE")
    args = p.parse_args(argv)
    block = example_block(args.block, args.features, skip=args.skip, activation=args.activation,
                          shortcut=args.shortcut, rng=args.seed)
    run_block(block, rng=args.seed, batch=args.batch)
    out = block.LABELS[list(block.intermediates())[-1]].split(" =")[0]
    print(block)
    print(f"\nForward, a^[l] to {out} on a batch of {args.batch}:")
    print(intermediates_table(block))
    print(f"\nBackward, with a random upstream gradient dL/d{out}:")
    print(gradients_table(block))
    g = block.gradients()
    share = np.linalg.norm(g["da_l_shortcut"]) / max(np.linalg.norm(g["da_l"]), 1e-30)
    exact = np.array_equal(g["da_l"], g["da_l_shortcut"] + g["da_l_branch"])
    print(f"\nAt a^[l]: da_l == da_l_shortcut + da_l_branch: {exact}; "
          f"||da_l_shortcut|| / ||da_l|| = {share:.3f}")
    if args.plot:
        from .viz import plot_block_trace
        plot_block_trace(block, args.plot)
        print(f"wrote {args.plot}")
    return 0


MODELS = ("resnet20", "resnet8", "plain20", "mlp")
DATASETS = ("builtin", "digits", "mnist", "cifar10")


def _load_data(name, directory, parser):
    from . import data
    if name == "builtin":
        return data.load_builtin()
    if name == "digits":
        return data.load_digits()
    if directory is None:
        parser.error(f"--data {name} needs --data-dir DIR (the folder holding the {name} files)")
    return (data.load_mnist if name == "mnist" else data.load_cifar10)(directory)


def _build_model(name, in_channels, num_classes, image_shape, rng):
    from .layers.reshape import Flatten
    from .layers.base import Sequential
    from .models import residual_mlp, resnet_cifar
    if name == "mlp":
        C, H, W = image_shape
        return Sequential({"flatten": Flatten(),
                           "mlp": residual_mlp(C * H * W, 128, 2, num_classes, rng=rng)})
    depth = 8 if name == "resnet8" else 20
    return resnet_cifar(depth, num_classes=num_classes, in_channels=in_channels,
                        residual=not name.startswith("plain"), rng=rng)


def train(argv):
    """Train a model, show progress, write history.json, curves.png and model.npz."""
    import os
    import time

    from . import data
    from .losses import SoftmaxCrossEntropy
    from .optim import SGD, CosineLR, WarmupLR
    from .train import Trainer
    from .viz import plot_history

    p = argparse.ArgumentParser(prog="python -m resnet_np train",
                                description="Train a ResNet (default: ResNet-20 on the built-in "
                                            "shapes data set, a few minutes on a laptop CPU).")
    p.add_argument("--model", choices=MODELS, default="resnet20")
    p.add_argument("--data", choices=DATASETS, default="builtin")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST or CIFAR-10 files")
    p.add_argument("--epochs", type=int, default=6, help="total epochs (a resumed run "
                   "continues up to this number)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate (cosine schedule "
                   "after a one-epoch linear warm-up)")
    p.add_argument("--out", default=None, help="output folder (default runs/<timestamp>/)")
    p.add_argument("--resume", default=None, metavar="CKPT", help="model.npz of an earlier run")
    p.add_argument("--limit", type=int, default=None, help="use only the first LIMIT "
                   "training and test images (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    start = time.perf_counter()
    (X_train, y_train), (X_test, y_test) = _load_data(args.data, args.data_dir, p)
    if args.limit:
        X_train, y_train = X_train[:args.limit], y_train[:args.limit]
        X_test, y_test = X_test[:args.limit], y_test[:args.limit]
    mean, std = data.channel_stats(X_train)
    X_train, X_test = data.normalize(X_train, mean, std), data.normalize(X_test, mean, std)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    model = _build_model(args.model, X_train.shape[1], num_classes, X_train.shape[1:], args.seed)
    optimizer = SGD(model, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    schedule = WarmupLR(CosineLR(args.lr, args.epochs), warmup_epochs=min(1, args.epochs),
                        warmup_lr=args.lr / 10, linear=True)
    trainer = Trainer(model, SoftmaxCrossEntropy(), optimizer, schedule=schedule, rng=args.seed)
    if args.resume:
        trainer.resume(args.resume)
        print(f"resumed from {args.resume} after epoch {trainer.epoch}")
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    augment = data.augment_cifar if args.data == "cifar10" else None
    print(f"training {args.model} ({model.num_parameters():,} parameters) on {args.data}: "
          f"{len(X_train):,} train / {len(X_test):,} test images of shape {X_train.shape[1:]}, "
          f"{args.epochs} epochs, batch {args.batch_size}")
    trainer.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                val=(X_test, y_test), augment=augment,
                checkpoint=os.path.join(out, "model.npz"))
    trainer.history.save(os.path.join(out, "history.json"))
    plot_history(trainer.history, os.path.join(out, "curves.png"))
    scores = trainer.evaluate(X_test, y_test)
    print(f"test accuracy {scores['accuracy']:.4f}  (test loss {scores['loss']:.4f}) "
          f"after {trainer.epoch} epochs, {time.perf_counter() - start:.0f}s in all")
    print(f"wrote {out}/history.json, {out}/curves.png and {out}/model.npz "
          f"(resume with --resume {out}/model.npz)")
    return 0


def gradcheck(argv):
    """Check every layer, loss and block type against central differences (float64)."""
    from .gradcheck import check_every_layer

    p = argparse.ArgumentParser(prog="python -m resnet_np gradcheck",
                                description="Gradient-check every layer and block type.")
    p.add_argument("--verbose", action="store_true", help="print each full report table")
    args = p.parse_args(argv)
    return 1 if check_every_layer(verbose=args.verbose) else 0


def notebooks(argv):
    """Write one notebook per docs page (tutorials, exercises, questions); check or run them."""
    from .notebooks import command

    p = argparse.ArgumentParser(prog="python -m resnet_np notebooks",
                                description="Generate notebooks/ from the docs pages "
                                            '(needs pip install "resnet_np[notebooks]").')
    p.add_argument("--out", default="notebooks", help="output folder (default notebooks/)")
    p.add_argument("--docs", default="docs", help="the docs folder (default docs/)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if a notebook in --out differs from its page")
    p.add_argument("--execute", action="store_true",
                   help="run every notebook in a fresh kernel (each under 90 s, all under 5 min)")
    args = p.parse_args(argv)
    return command(args.out, args.docs, check=args.check, execute=args.execute)


COMMANDS = {"trace": trace, "train": train, "gradcheck": gradcheck, "notebooks": notebooks}


def _lazy(module, function):
    def run(argv):
        mod = __import__(f"resnet_np.{module}", fromlist=[function])
        return getattr(mod, function)(argv)
    return run


COMMANDS.update(bench=_lazy("bench", "main"))
COMMANDS.update(exercise=_lazy("exercises.cli", "main"))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nresnet_np: expected a command from {', '.join(COMMANDS)}, got {argv[0]!r}.",
                  file=sys.stderr)
            return 2
        return 0 if argv else 2
    return COMMANDS[argv[0]](argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
