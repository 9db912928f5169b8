"""`python -m resnet_np train` as a run that records itself.

A run writes, into its --out folder:

    run.json       the run record: every argument, the seed, the data set and its size,
                   the resnet_np, NumPy and Python versions, the machine's CPU count
    model.npz      the checkpoint after every epoch (written whole, or not at all),
                   holding the same record under meta["run"]
    history.json   per-epoch losses and accuracies, and curves.png, at the end

`--resume CKPT` compares the checkpoint's record with the new arguments: a different
model, data set, --limit, batch size, learning rate or epoch count is a UsageError
that names each one, because continuing under other arguments silently changes the
run (a new --epochs stretches the learning-rate schedule mid-way).

`--extend` lets a finished run train more epochs: the schedule restarts at the
epoch where the run had finished, as a warm restart (SGDR): straight back to --lr,
then a cosine decay to 0 over the added epochs. The record keeps that epoch as
"schedule_start", so resuming an interrupted extension rebuilds the same schedule.

A mistake the user can fix (a bad path, a data folder without the files, a
checkpoint of another model, differing arguments) raises UsageError; __main__ turns
it into one `error:` line and exit status 2.
"""
import os
import platform
import sys
import time

from . import io

COMPARED = ("model", "data", "limit", "batch_size", "lr", "epochs")
MODELS = ("resnet20", "resnet8", "plain20", "mlp")
DATASETS = ("builtin", "digits", "mnist", "cifar10")


class UsageError(Exception):
    """A command-line mistake the user can fix; the message says how."""


def _flag(name):
    return "--" + name.replace("_", "-")


def run_record(args, train_size, test_size, image_shape, num_classes, schedule_start=0):
    """The JSON-serialisable record of a training run (written as run.json)."""
    import numpy as np

    from . import __version__
    return {"command": "python -m resnet_np train",
            "arguments": {k: v for k, v in sorted(vars(args).items()) if k != "debug"},
            "seed": args.seed,
            "data": {"name": args.data, "train_size": int(train_size),
                     "test_size": int(test_size), "image_shape": list(image_shape),
                     "num_classes": int(num_classes)},
            "schedule_start": int(schedule_start),
            "versions": {"resnet_np": __version__, "numpy": np.__version__,
                         "python": platform.python_version()},
            "cpu_count": os.cpu_count(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def command_line(arguments, resume=None):
    """The `python -m resnet_np train ...` line that repeats `arguments` (a dict of
    argument values, e.g. vars(args)), plus --resume."""
    words = ["python -m resnet_np train"]
    for name in COMPARED + ("data_dir", "seed", "out"):
        value = arguments.get(name)
        if value is not None:
            words.append(f"{_flag(name)} {value}")
    if resume is not None:
        words.append(f"--resume {resume}")
    return " ".join(words)


def differing_arguments(saved, args):
    """[(name, saved value, new value)] for each argument of COMPARED that differs."""
    old = saved["arguments"]
    return [(name, old.get(name), getattr(args, name)) for name in COMPARED
            if old.get(name) != getattr(args, name)]


def check_resume(meta, args):
    """Check that `args` may continue the checkpoint whose meta is `meta`.

    Returns the epoch at which the learning-rate schedule starts (0, or where an
    --extend restarted it). Raises UsageError naming every differing argument.
    """
    saved = meta.get("run")
    where = f"--resume {args.resume}"
    if saved is None:
        if args.extend:
            raise UsageError(f"{where}: expected a checkpoint with a run record, got one "
                             "without (an older or hand-saved file). --extend needs the "
                             "record; drop --extend.")
        return 0
    differ = differing_arguments(saved, args)
    extending = args.extend and [name for name, _, _ in differ] == ["epochs"]
    if differ and not extending:
        listed = ", ".join(f"{_flag(n)} {old} (now {new})" for n, old, new in differ)
        hint = (" To train a finished run for more epochs, add --extend."
                if [n for n, _, _ in differ] == ["epochs"] else "")
        raise UsageError(f"{where}: expected the arguments the run was started with, got "
                         f"different ones: {listed}. Repeat them to continue the run "
                         f"({command_line(saved['arguments'], args.resume)}).{hint} To start "
                         "a fresh run instead, drop --resume.")
    if not args.extend:
        return saved.get("schedule_start", 0)
    finished = saved["arguments"]["epochs"]
    if args.epochs <= finished:
        raise UsageError(f"--extend: expected --epochs above the {finished} the run "
                         f"trained, got --epochs {args.epochs}. Give the new total, e.g. "
                         f"--epochs {finished + 1}.")
    if meta["epoch"] != finished:
        raise UsageError(f"--extend: expected a finished run, got one stopped after epoch "
                         f"{meta['epoch']} of {finished}. Resume it without --extend first.")
    return finished


def make_schedule(lr, epochs, start=0):
    """The learning rate at t epochs from the run's start.

    A fresh run (start=0): a one-epoch linear warm-up from lr/10 to the cosine curve,
    which falls from lr at t = 0 to 0 at t = epochs. An --extend restarts at epoch
    `start` without warm-up, as in SGDR's warm restarts (Loshchilov and Hutter 2017):
    cosine from lr at t = start to 0 at t = epochs.
    """
    from .optim import CosineLR, WarmupLR
    if start == 0:
        return WarmupLR(CosineLR(lr, epochs), warmup_epochs=min(1, epochs), warmup_lr=lr / 10,
                        linear=True)
    cosine = CosineLR(lr, epochs - start)

    def restarted(t):
        return cosine(t - start)
    return restarted


def load_data(args):
    """((X_train, y_train), (X_test, y_test)) for --data, cut to --limit; UsageError
    for a missing --data-dir, a folder without the files or an unreadable file."""
    from . import data
    if args.data == "builtin":
        splits = data.load_builtin()
    elif args.data == "digits":
        splits = _library_call(data.load_digits)
    elif args.data_dir is None:
        raise UsageError(f"--data {args.data} needs --data-dir DIR (the folder holding the "
                         f"{args.data} files). Add it, or use --data builtin.")
    else:
        load = data.load_mnist if args.data == "mnist" else data.load_cifar10
        splits = _library_call(load, args.data_dir)
    if args.limit is not None:
        splits = tuple((X[:args.limit], y[:args.limit]) for X, y in splits)
    return splits


def _library_call(function, *arguments):
    """function(*arguments), with the library's file and value errors as UsageError."""
    try:
        return function(*arguments)
    except (OSError, ValueError, ImportError) as err:
        raise UsageError(str(err)) from err


def build_model(name, in_channels, num_classes, image_shape, rng):
    """The --model network for images of `image_shape` (C, H, W)."""
    from .layers.base import Sequential
    from .layers.reshape import Flatten
    from .models import residual_mlp, resnet_cifar
    if name == "mlp":
        C, H, W = image_shape
        return Sequential({"flatten": Flatten(),
                           "mlp": residual_mlp(C * H * W, 128, 2, num_classes, rng=rng)})
    depth = 8 if name == "resnet8" else 20
    return resnet_cifar(depth, num_classes=num_classes, in_channels=in_channels,
                        residual=not name.startswith("plain"), rng=rng)


def _trainer(args, shapes, schedule_start):
    """A Trainer with the model, SGD and schedule the arguments describe."""
    from .losses import SoftmaxCrossEntropy
    from .optim import SGD
    from .train import Trainer
    C, num_classes = shapes[0][0], shapes[1]
    model = build_model(args.model, C, num_classes, shapes[0], args.seed)
    optimizer = SGD(model, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    schedule = make_schedule(args.lr, args.epochs, schedule_start)
    return Trainer(model, SoftmaxCrossEntropy(), optimizer, schedule=schedule, rng=args.seed)


def _resume_meta(args):
    """The checkpoint's meta and the schedule start, checked against `args`."""
    if args.resume is None:
        if args.extend:
            raise UsageError("--extend: expected --resume CKPT (the finished run to extend), "
                             "got none. Add --resume runs/<run>/model.npz.")
        return None, 0
    if not os.path.isfile(args.resume):
        raise UsageError(f"--resume {args.resume}: expected an existing checkpoint file, got "
                         "no such file. Give the model.npz of an earlier run, or drop "
                         "--resume to start a fresh run.")
    meta = _library_call(io.read_meta, args.resume)
    return meta, check_resume(meta, args)


def train_run(args):
    """Train as the parsed `args` say; write run.json, model.npz, history.json, curves.png.

    Returns the exit status: 0, or 130 after Ctrl-C (the last checkpoint stays whole).
    """
    from . import data
    from .viz import plot_history
    start = time.perf_counter()
    meta, schedule_start = _resume_meta(args)
    (X_train, y_train), (X_test, y_test) = load_data(args)
    mean, std = data.channel_stats(X_train)        # the training set's, for both sets
    X_train, X_test = data.normalize(X_train, mean, std), data.normalize(X_test, mean, std)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    trainer = _trainer(args, (X_train.shape[1:], num_classes), schedule_start)
    if meta is not None:
        _library_call(trainer.resume, args.resume)
        print(f"resumed from {args.resume} after epoch {trainer.epoch}"
              + (f"; --extend restarts the schedule at epoch {schedule_start}"
                 if args.extend else ""))
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    args.out = out
    trainer.run_record = run_record(args, len(X_train), len(X_test), X_train.shape[1:],
                                    num_classes, schedule_start)
    io.write_json(os.path.join(out, "run.json"), trainer.run_record)
    print(f"training {args.model} ({trainer.model.num_parameters():,} parameters) on "
          f"{args.data}: {len(X_train):,} train / {len(X_test):,} test images of shape "
          f"{X_train.shape[1:]}, {args.epochs} epochs, batch {args.batch_size}")
    checkpoint = os.path.join(out, "model.npz")
    try:
        trainer.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                    val=(X_test, y_test), checkpoint=checkpoint,
                    augment=data.augment_cifar if args.data == "cifar10" else None)
        trainer.history.save(os.path.join(out, "history.json"))
        plot_history(trainer.history, os.path.join(out, "curves.png"))
        scores = trainer.evaluate(X_test, y_test)
    except KeyboardInterrupt:
        print(_interrupted(args, checkpoint), file=sys.stderr)
        return 130
    print(f"test accuracy {scores['accuracy']:.4f}  (test loss {scores['loss']:.4f}) "
          f"after {trainer.epoch} epochs, {time.perf_counter() - start:.0f}s in all")
    print(f"wrote {out}/run.json, history.json, curves.png and model.npz (train more "
          f"epochs with --resume {checkpoint} --extend --epochs N)")
    return 0


def _interrupted(args, checkpoint):
    """What Ctrl-C left behind and the command that resumes it."""
    if not os.path.isfile(checkpoint):
        again = f"resume from {args.resume} again" if args.resume else "run the same command again"
        return (f"\ninterrupted before the first epoch finished: no checkpoint was written. "
                f"To go on, {again}.")
    saved = io.read_meta(checkpoint)["epoch"]
    return (f"\ninterrupted: {checkpoint} holds epoch {saved} of {args.epochs}, written "
            f"whole (history.json and curves.png are written at the end). Resume with:\n"
            f"  {command_line(vars(args), resume=checkpoint)}")
