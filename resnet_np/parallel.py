"""Data-parallel training steps: the batch cut in one part per core, a replica of the model
running each part on its own thread.

Inside a training step the examples of a batch meet in one place only: BatchNorm, whose
mean and variance are taken over the whole batch. Everything else (a convolution, ReLU, a
residual addition, the gradient of a weight as a sum over examples) works example by
example. So the step can run as

    x = [x_0; x_1]                          one part per core (batch_slices)
    logits_i = replica_i.forward(x_i)       on thread i, every layer's cache in replica_i
    dlogits = loss.backward()               once, on the whole batch
    replica_i.backward(dlogits_i)           on thread i
    grad(W) = sum_i grad_i(W)               each replica's gradient is its examples' share

where replica 0 is the model itself and the others share its parameter arrays (an SGD
step moves all of them), and each replica's BatchNorm adds its partial sums to the
others' before it normalises (resnet_np.layers._fast_batchnorm): the statistics, the
running averages and every gradient are those of the whole batch. This is what
torch.nn.parallel.DistributedDataParallel with SyncBatchNorm does across processes; here
the replicas are threads (NumPy and BLAS release the GIL).

Why: per-layer threading (each convolution's chunks, BatchNorm's slices on the pool) leaves
one core idle during everything that is not split (ReLU, additions, small BatchNorms,
Python), and pays a hand-off per layer. With one replica per core the whole step is split,
and the cores meet only in BatchNorm: twice in its forward pass, once in its backward.

In eval mode the parts never meet at all (BatchNorm uses its running statistics), and
the same replicas make predictions faster.

The Trainer uses DataParallel for its steps, its evaluate and its predict
(Trainer(parallel=True), the default); the layers' forward and backward are unchanged,
and remain the code to read.
"""
import copy
import threading

import numpy as np

from ._checks import check_int, message
from .layers import _fast_batchnorm, _fast_conv, _kernels
from .layers.base import PASS_STATE, emptied_pass_state
from .layers.conv import Conv2d


class _Exchange:
    """Where the replicas' partial sums meet: gather(rank, value) waits until every replica
    has given its value, then returns all of them in rank order.

    One barrier per meeting. The values of successive meetings alternate between two lists,
    so a replica that goes on to the next meeting cannot overwrite values another replica
    has not read yet (to reach the meeting after that, everyone must have left this one).
    """

    def __init__(self, parties):
        self.barrier = threading.Barrier(parties)
        self.values = [[None] * parties, [None] * parties]
        self.meetings = [0] * parties               # meetings each replica has been to

    def gather(self, rank, value):
        values = self.values[self.meetings[rank] % 2]
        self.meetings[rank] += 1
        values[rank] = value
        self.barrier.wait()
        return list(values)


class _Part:
    """One replica's part of the batch, as its BatchNorm layers see it (the interface of
    _fast_batchnorm.Cores): the size of the whole batch, and each(task) -> every part's
    task result in batch order (task runs on this part, the others come from the exchange)."""

    def __init__(self, rank, exchange, batch_size):
        self.rank, self.exchange, self.batch_size = rank, exchange, batch_size

    def each(self, task):
        return self.exchange.gather(self.rank, task(slice(None)))

    def run(self, task):
        task(slice(None))                       # nothing to add up: no meeting

    def here(self, results):
        return [results[self.rank]]


# A part of the batch (one per core) needs at least this many input values for a step to
# run on replicas. Below it, two threads' Python and BatchNorm's meetings cost more than
# they save, and the model's own step (its convolutions still split over the cores) is
# faster. Measured, training steps, best (median) ms, model's own / replicas: ResNet-20 on
# 3x32x32 at batch 16 (24,576 values per part) 88.9 (104.1) / 92.7 (115.9), batch 32
# (49,152) 154.7 (174.3) / 140.0 (161.9); on 3x16x16 at batch 64 (24,576) 79.3 (97.0) /
# 88.2 (103.3), batch 96 (36,864) 129.9 (152.1) / 124.0 (151.1), batch 128 (49,152) 149.9
# (177.7) / 139.9 (166.5); on 3x8x8 at batch 256 (24,576) 97.5 (121.5) / 104.5 (123.5),
# batch 512 (49,152) 191.8 (225.5) / 165.4 (205.9); ResNet-8 on 1x8x8 digits at batch 64
# (2,048) 13.8 (19.0) / 19.1 (24.0).
MIN_PART_VALUES = 1 << 15
# A network without a convolution (residual_mlp, Dense and BatchNorm1d layers) runs on the
# model itself too: its matrix products run on BLAS's own threads, which use every core
# already, and replicas only add Python. Steps, best (median) ms, model / replicas:
# residual_mlp 768 -> 128 at batch 128 1.74 (2.26) / 2.43 (3.82), batch 256 2.90 (3.49) /
# 4.78 (5.96); 768 -> 512 at 512 23.3 (31.7) / 22.2 (40.9); 3072 -> 1024 at 512 112.5
# (137.0) / 136.5 (148.9), at 2048 327.5 (385.0) / 341.7 (435.8).


def _replica(model):
    """A copy of model that shares its parameter dicts, with empty caches and records and
    its own gradients and buffers (the running statistics: copied in before each step, and
    left behind: replica 0, the model, keeps them)."""
    memo = emptied_pass_state(model)
    for _, layer in model.named_layers():
        memo[id(layer.params)] = layer.params                       # shared, not copied
        memo[id(layer.grads)] = {}
        memo[id(layer.buffers)] = {key: value.copy() for key, value in layer.buffers.items()}
    return copy.deepcopy(model, memo)


def _forget(replica):
    """Drop a copy's caches and records once nothing will read them (after its backward,
    or after a forward in eval mode): the memory goes back before the next forward."""
    for _, layer in replica.named_layers():
        for key in PASS_STATE:
            if hasattr(layer, key):
                setattr(layer, key, type(getattr(layer, key))())


def _layers(model):
    """Every layer of model, depth first: the same order in the model and its replicas."""
    return [layer for _, layer in model.named_layers()]


def _has_convolution(model):
    """True when some layer of model is a Conv2d (where replicas pay; see MIN_PART_VALUES)."""
    return any(isinstance(layer, Conv2d) for _, layer in model.named_layers())


def _library_layers_only(model):
    """True when every layer is a resnet_np class: those are known to let examples meet only
    in BatchNorm. A layer of another module might couple them some other way."""
    return all(type(layer).__module__.split(".")[0] == "resnet_np"
               for _, layer in model.named_layers())


class DataParallel:
    """Forward and backward of `model` with the batch cut in one part per core.

    forward(x) returns the logits of the whole batch and backward(dout) the gradient with
    respect to x, and leaves in model.grads what model.backward would: the gradients of the
    whole batch, the same numbers up to the order of floating-point sums (tests: float64
    to 1e-10). BatchNorm running statistics move as for the whole batch.

    Replica 0 is the model itself, run on the first part of the batch (batch_slices(N)[0]);
    the others are copies made on first use, and again when the model's layers change, that
    share its parameter arrays. After a step the model's layers thus hold the caches of the
    first part only, and its blocks' intermediates() and gradients() are those of that part
    (the gradients of the weights, in grads, are the whole batch's). To read a whole step,
    use model.forward and model.backward (or Trainer(parallel=False)).

    In eval mode (Trainer.evaluate and predict) the parts never meet: BatchNorm uses its
    running statistics. The copies then drop their caches as soon as forward returns, so
    backward needs a forward in training mode (for gradients in eval mode, call
    model.forward and model.backward).

    The step runs on the model itself, in the calling thread (its layers' own fast paths
    still split each convolution over the cores), when splitting cannot help or is not
    known to be safe: on one core; under reference_kernels(); where the threads would cost
    more than they save: batches with fewer examples than cores or fewer than
    min_part_values input values per core, and networks without a convolution (their
    matrix products use every core through BLAS already); for arrays of mixed dtypes;
    when a layer is not a resnet_np class (it might couple examples); inside another
    threaded region.

    Parameters
    ----------
    model : Layer, a model of resnet_np layers (resnet_cifar, residual_mlp, Sequential, ...)
    min_part_values : int, default MIN_PART_VALUES (32,768)
        the fewest input values (examples x values per example) a part of the batch may
        hold for the step to run on replicas; 0 splits every batch of at least one example
        per core, of any network. At the default, on two cores, batches of CIFAR images
        (3 x 32 x 32) split from 22 images on, batches of 8 x 8 digits from 1,024.

    Example
    -------
    >>> import resnet_np as rn
    >>> model = rn.resnet_cifar(8, rng=0)
    >>> runner = DataParallel(model)
    >>> x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    >>> loss = rn.SoftmaxCrossEntropy()
    >>> value = loss.forward(runner.forward(x), np.arange(8) % 10)
    >>> runner.backward(loss.backward()).shape
    (8, 3, 32, 32)
    >>> model.stem.conv.grads["W"].shape          # the whole batch's gradient, in the model
    (16, 3, 3, 3)
    """

    def __init__(self, model, min_part_values=None):
        if not all(callable(getattr(model, name, None)) for name in ("forward", "backward",
                                                                     "named_layers")):
            raise TypeError(message("DataParallel", "a resnet_np model (a Layer)",
                                    type(model).__name__))
        self.model = model
        self.min_part_values = (MIN_PART_VALUES if min_part_values is None else
                                check_int(min_part_values, "min_part_values", "DataParallel",
                                          minimum=0))
        self._replicas, self._layers = [], []
        self._parts = None                      # the batch slices of the last forward, or None
        self._predicted = False                 # the last forward on replicas was in eval mode

    # -- when to split -----------------------------------------------------------------
    def _splits(self, x):
        """Whether this step runs on replicas (see the class docstring for when it does not)."""
        workers = _fast_conv._pool_size()
        if (workers < 2 or _kernels.REFERENCE or not isinstance(x, np.ndarray)
                or x.ndim == 0 or len(x) < workers or _fast_conv._in_sequence(workers)):
            return False
        if self.min_part_values and (x.size < self.min_part_values * workers
                                     or not _has_convolution(self.model)):
            return False                # too little work to pay for the threads
        if any(p.dtype != x.dtype for _, p in self.model.named_parameters()):
            return False
        return _library_layers_only(self.model)

    def _ready_replicas(self, workers):
        """The model (replica 0) and copies of it (1, 2, ...) with its parameters, training
        flags and running statistics, made again when the model's layers have changed."""
        layers = _layers(self.model)
        if len(self._replicas) != workers or [id(layer) for layer in layers] != self._layers:
            self._replicas = [self.model] + [_replica(self.model) for _ in range(workers - 1)]
            self._layers = [id(layer) for layer in layers]
        for replica in self._replicas[1:]:
            for layer, copy_ in zip(layers, _layers(replica)):
                copy_.params, copy_.training = layer.params, layer.training
                for key, value in layer.buffers.items():
                    copy_.buffers[key] = value.copy()

    def _on_replicas(self, run):
        """run(rank, replica) on one thread per replica, each with its BatchNorm part set.
        If a replica fails, the others are released from the exchange, and the first error
        that is not that release is raised."""
        exchange = _Exchange(len(self._replicas))
        batch_size = self._parts[-1].stop

        def task(rank):
            _fast_batchnorm._local.part = _Part(rank, exchange, batch_size)
            try:
                return run(rank, self._replicas[rank]), None
            except BaseException as error:       # release the others, then report it
                exchange.barrier.abort()
                return None, error
            finally:
                _fast_batchnorm._local.part = None

        results = _fast_conv._parallel(task, list(range(len(self._replicas))))
        errors = [error for _, error in results if error is not None]
        first = next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)),
                     errors[0] if errors else None)
        if first is not None:
            raise first
        return [value for value, _ in results]

    # -- the step ----------------------------------------------------------------------
    def forward(self, x):
        """Logits of the whole batch (N, ...), as model.forward(x) returns them."""
        if not self._splits(x):
            self._parts = None
            return self.model.forward(x)
        workers = _fast_conv._pool_size()
        self._parts = _fast_conv.batch_slices(len(x))
        self._ready_replicas(workers)
        try:
            outs = self._on_replicas(lambda rank, replica: replica.forward(x[self._parts[rank]]))
        except (ValueError, TypeError) as error:
            bad_input = error
        else:
            bad_input = None
        if bad_input is not None:
            # let the model itself report it, with the whole batch's shapes in the message
            self._parts = None
            self.model.forward(x)
            raise bad_input
        self._out_shape = (len(x),) + outs[0].shape[1:]
        self._predicted = not self.model.training        # eval: no backward to come
        if self._predicted:
            for replica in self._replicas[1:]:
                _forget(replica)
        return np.concatenate(outs)

    def backward(self, dout):
        """dL/dx of the whole batch; model.grads hold the sums of the replicas' gradients."""
        if self._parts is None:
            return self.model.backward(dout)
        if self._predicted:
            raise RuntimeError(message(
                "DataParallel.backward", "a forward in training mode before backward",
                "a forward in eval mode, whose copies kept no caches",
                "Call model.train() before forward, or for gradients in eval mode "
                "model.forward(x) and model.backward(dout)."))
        if np.shape(dout) != self._out_shape:
            raise ValueError(message("DataParallel.backward", f"dout of the output's shape "
                                     f"{self._out_shape}", str(np.shape(dout)),
                                     "Pass dL/dout for the last forward."))
        dxs = self._on_replicas(lambda rank, replica: replica.backward(dout[self._parts[rank]]))
        replicas = [_layers(replica) for replica in self._replicas]    # [0]: the model's
        for i, layer in enumerate(replicas[0]):
            for key in layer.grads:              # each replica's gradient: its examples' share
                layer.grads[key] = sum(layers[i].grads[key] for layers in replicas)
        for replica in self._replicas[1:]:
            _forget(replica)
        return np.concatenate(dxs)

    # -- the model's modes, for a drop-in runner --------------------------------------
    @property
    def training(self):
        return self.model.training

    def train(self, mode=True):
        self.model.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def __repr__(self):
        return f"DataParallel({type(self.model).__name__}, {_fast_conv._pool_size()} cores)"
