"""Command line: python -m resnet_np {trace,gradcheck,bench,train} ...

    python -m resnet_np trace        step through one residual block
    python -m resnet_np gradcheck    check every layer and block type
    python -m resnet_np bench        convolution and training throughput
    python -m resnet_np train        train a small ResNet on the built-in data set
"""
import argparse
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


COMMANDS = {"trace": trace}


def _lazy(module, function):
    def run(argv):
        mod = __import__(f"resnet_np.{module}", fromlist=[function])
        return getattr(mod, function)(argv)
    return run


COMMANDS.update(bench=_lazy("bench", "main"), train=_lazy("train", "main"),
                gradcheck=_lazy("gradcheck", "main"))


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
