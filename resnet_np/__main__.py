"""Command line: python -m resnet_np {trace,gradcheck,bench,train} ...

    python -m resnet_np trace        step through one residual block
    python -m resnet_np gradcheck    check every layer and block type
    python -m resnet_np bench        convolution and training throughput
    python -m resnet_np train        train a small ResNet on the built-in data set
"""
import argparse
import math
import sys

import numpy as np


def trace(argv):
    """Build one dense residual block, run forward and backward, print every quantity."""
    from .blocks import DenseResidualBlock
    from .inspect import gradients_table, intermediates_table

    p = argparse.ArgumentParser(prog="python -m resnet_np trace",
                                description="Step through one residual block: a^[l] to a^[l+k].")
    p.add_argument("--skip", type=int, choices=(1, 2, 3), default=2)
    p.add_argument("--activation", choices=("relu", "sigmoid", "tanh", "leaky_relu"),
                   default="relu")
    p.add_argument("--shortcut", choices=("identity", "projection", "none"), default="identity")
    p.add_argument("--features", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    shortcut = None if args.shortcut == "none" else args.shortcut
    out_features = args.features + 2 if shortcut == "projection" else None
    block = DenseResidualBlock(args.features, skip=args.skip, activation=args.activation,
                               shortcut=shortcut, out_features=out_features, rng=args.seed)
    rng = np.random.default_rng(args.seed)
    a_l = rng.standard_normal((args.batch, args.features)).astype(np.float32)
    out = block.forward(a_l)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    block.backward(dout)
    print(block)
    print(f"\nForward, a^[l] to a^[l+{args.skip}] on a batch of {args.batch}:")
    print(intermediates_table(block))
    print("\nBackward, with a random upstream gradient dL/da^[l+%d]:" % args.skip)
    print(gradients_table(block))
    g = block.gradients()
    share = np.linalg.norm(g["da_l_shortcut"]) / max(np.linalg.norm(g["da_l"]), 1e-30)
    exact = np.array_equal(g["da_l"], g["da_l_shortcut"] + g["da_l_branch"])
    print(f"\nAt a^[l]: da_l == da_l_shortcut + da_l_branch: {exact}; "
          f"||da_l_shortcut|| / ||da_l|| = {share:.3f}")
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


class _ConcatCheck:
    """Concat takes several inputs: check it as x -> concat(x[:, :1], 2 x[:, 1:])."""

    def __init__(self):
        from .layers.reshape import Concat
        self.concat, self.params, self.grads = Concat(), {}, {}

    def forward(self, x):
        return self.concat.forward(x[:, :1], 2 * x[:, 1:])

    def backward(self, dout):
        dx_first, dx_rest = self.concat.backward(dout)
        return np.concatenate([dx_first, 2 * dx_rest], axis=1)


def _gradcheck_cases():
    """(name, module, input shape, target) for every layer, loss and block type."""
    import resnet_np as rn
    r = np.random.default_rng(0)
    labels = r.integers(0, 3, size=4)
    cases = [("Dense", rn.Dense(5, 3, rng=0), (4, 5), None)]
    cases += [(a.__name__, a(), (4, 5), None)
              for a in (rn.ReLU, rn.LeakyReLU, rn.Sigmoid, rn.Tanh, rn.Identity)]
    cases += [("SoftmaxCrossEntropy", rn.SoftmaxCrossEntropy(), (4, 3), labels),
              ("MSELoss", rn.MSELoss(), (4, 3), r.standard_normal((4, 3))),
              ("Conv2d stride 2 pad 1", rn.Conv2d(2, 3, (3, 2), stride=2, padding=1, rng=0),
               (2, 2, 5, 6), None),
              ("BatchNorm1d", rn.BatchNorm1d(3), (6, 3), None),
              ("BatchNorm2d train", rn.BatchNorm2d(2), (3, 2, 3, 3), None),
              ("BatchNorm2d eval", rn.BatchNorm2d(2).eval(), (3, 2, 3, 3), None),
              ("MaxPool2d overlapping", rn.MaxPool2d(3, stride=2, padding=1), (2, 2, 5, 5), None),
              ("AvgPool2d", rn.AvgPool2d(2), (2, 2, 4, 4), None),
              ("GlobalAvgPool2d", rn.GlobalAvgPool2d(), (2, 3, 3, 3), None),
              ("Flatten", rn.Flatten(), (2, 2, 3, 3), None),
              ("Upsample2d", rn.Upsample2d(2), (2, 2, 3, 3), None),
              ("Concat", _ConcatCheck(), (2, 3, 2, 2), None)]
    cases += [(f"DenseResidualBlock skip={k}", rn.DenseResidualBlock(4, skip=k, rng=0), (5, 4), None)
              for k in (1, 2, 3)]
    cases += [(f"BasicBlock shortcut={sc}", rn.BasicBlock(2, 4, stride=2, shortcut=sc, rng=0),
               (2, 2, 5, 5), None) for sc in ("A", "B", "C", None)]
    cases += [("PreActBlock", rn.PreActBlock(2, 4, stride=2, rng=0), (2, 2, 5, 5), None),
              ("Bottleneck post", rn.Bottleneck(2, 2, 4, stride=2, rng=0), (2, 2, 5, 5), None),
              ("Bottleneck pre", rn.Bottleneck(2, 2, 4, stride=2, variant="pre", rng=0),
               (2, 2, 5, 5), None),
              ("resnet_cifar(8, width=2)", rn.resnet_cifar(8, num_classes=3, width=2, rng=0),
               (2, 3, 8, 8), None),
              ("unet_tiny(levels=1, width=2)", rn.unet_tiny(1, 2, width=2, levels=1, rng=0),
               (2, 1, 4, 4), None)]
    return cases


def gradcheck(argv):
    """Check every layer, loss and block type against central differences (float64)."""
    from .gradcheck import check_gradients

    p = argparse.ArgumentParser(prog="python -m resnet_np gradcheck",
                                description="Gradient-check every layer and block type.")
    p.add_argument("--verbose", action="store_true", help="print each full report table")
    args = p.parse_args(argv)
    rng = np.random.default_rng(1)
    failed = 0
    print(f"{'module':<30} {'tensors':>7} {'max rel error':>14}  result")
    for name, module, shape, target in _gradcheck_cases():
        report = check_gradients(module, rng.standard_normal(shape), target=target)
        failed += not report.passed
        print(f"{name:<30} {len(report.rows):>7} {report.max_error:>14.2e}  "
              f"{'ok' if report.passed else 'FAILED'}")
        if args.verbose or not report.passed:
            print(report, end="\n\n")
    print("all passed (threshold 1e-7, float64)" if not failed else f"{failed} FAILED")
    return 1 if failed else 0


COMMANDS = {"trace": trace, "train": train, "gradcheck": gradcheck}


def _lazy(module, function):
    def run(argv):
        mod = __import__(f"resnet_np.{module}", fromlist=[function])
        return getattr(mod, function)(argv)
    return run


COMMANDS.update(bench=_lazy("bench", "main"))


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
