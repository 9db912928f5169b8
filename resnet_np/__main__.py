"""Command line: python -m resnet_np {trace,gradcheck,bench,train,exercise,notebooks} ...

    python -m resnet_np trace        step through one residual block (--plot FILE draws it)
    python -m resnet_np gradcheck    check every layer and block type
    python -m resnet_np bench        convolution and training throughput
    python -m resnet_np train        train a small ResNet on the built-in data set
    python -m resnet_np exercise     exercises with a checker that names the bug
    python -m resnet_np notebooks    notebooks/ from the docs pages (--check, --execute)
"""
import argparse
import math
import sys

import numpy as np

from ._pages import prefer_small_pages


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


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake prints one line: `<prog>: error: <what and how to fix>`."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(kind, example):
    """An argparse type: a finite int or float > 0; the message shows `example`."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value <= 0:
            noun = "a whole number" if kind is int else "a finite number"
            raise argparse.ArgumentTypeError(f"expected {noun} > 0, got {text!r}. "
                                             f"Try e.g. {example}.")
        return value
    parse.__name__ = kind.__name__
    return parse


def train(argv):
    """Train a model, show progress, write run.json, history.json, curves.png, model.npz."""
    from .runs import DATASETS, MODELS, UsageError, train_run

    p = _OneLineParser(prog="python -m resnet_np train",
                       description="Train a ResNet (default: ResNet-20 on the built-in shapes "
                                   "data set, a few minutes on a laptop CPU). Writes run.json "
                                   "(every argument, data and versions), model.npz after "
                                   "every epoch, history.json and curves.png.")
    p.add_argument("--model", choices=MODELS, default="resnet20")
    p.add_argument("--data", choices=DATASETS, default="builtin")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST or CIFAR-10 files")
    p.add_argument("--epochs", type=_positive(int, "--epochs 6"), default=6,
                   help="total epochs (a resumed run continues up to this number)")
    p.add_argument("--batch-size", type=_positive(int, "--batch-size 128"), default=128)
    p.add_argument("--lr", type=_positive(float, "--lr 0.1"), default=0.1,
                   help="peak learning rate (cosine schedule after a one-epoch linear "
                   "warm-up from lr/10)")
    p.add_argument("--out", default=None, help="output folder (default runs/<timestamp>/)")
    p.add_argument("--resume", default=None, metavar="CKPT",
                   help="model.npz of an earlier run, continued with the same arguments")
    p.add_argument("--extend", action="store_true",
                   help="with --resume: train a finished run up to a larger --epochs; the "
                   "schedule restarts: back to --lr, cosine down to 0 over the added epochs")
    p.add_argument("--limit", type=_positive(int, "--limit 500"), default=None,
                   help="use only the first LIMIT training and test images (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(argv)
    prefer_small_pages()                    # see resnet_np/_pages.py: about 7 % faster
    try:
        return train_run(args)              # Ctrl-C during training: handled there (130)
    except UsageError as err:
        if args.debug:
            raise
        p.error(str(err))
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("\ninterrupted before training started: no checkpoint was written.",
              file=sys.stderr)
        return 130


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
