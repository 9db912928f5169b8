"""resnet_np.parallel.DataParallel: a training step on replicas = the model's own step."""
import random
import re
import threading
import time

import numpy as np
import pytest

import resnet_np as rn
from resnet_np import parallel
from resnet_np.layers import _fast_conv

needs_threads = pytest.mark.skipif(_fast_conv._blas is None,
                                   reason="the conv pool needs NumPy's OpenBLAS to hold it to one thread")


@pytest.fixture
def two_cores(monkeypatch):
    """Two replicas, even on one core (the threads then take turns), and for batches of any
    size (the tests' batches are far below MIN_PART_VALUES)."""
    monkeypatch.setattr(_fast_conv, "_CORES", 2)
    monkeypatch.setattr(parallel, "MIN_PART_VALUES", 0)


def conv_net(variant="post", shortcut="A"):
    return rn.resnet_cifar(8, width=4, variant=variant, shortcut=shortcut, rng=0).astype(np.float64)


def dense_net():
    return rn.Sequential(rn.Dense(5, 8, rng=0), rn.BatchNorm1d(8), rn.ReLU(),
                         rn.Dense(8, 3, rng=1)).astype(np.float64)


def one_step(runner, model, x, y, loss):
    """(loss, logits, dx, grads, buffers) of a training forward and backward."""
    logits = runner.forward(x)
    value = loss.forward(logits, y)
    dx = runner.backward(loss.backward())
    return [value, logits, dx, [g.copy() for _, g in model.named_grads()],
            [b.copy() for _, b in model.named_buffers()]]


def assert_same(got, expected, tol):
    """Equal to `tol`, relative; values that are 0 in exact arithmetic (the gradient of a
    bias followed by BatchNorm, ~1e-17 here) are left to an absolute tolerance."""
    for a, b in zip(got, expected):
        if isinstance(a, list):
            assert_same(a, b, tol)
        else:
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 1e-2)


@needs_threads
@pytest.mark.parametrize("make, shape, labels, classes", [
    (conv_net, (7, 3, 32, 32), (7,), 10),                  # 7 = 3 + 4: parts of unequal size
    (lambda: conv_net("pre", "B"), (6, 3, 32, 32), (6,), 10),   # pre-activation, projections
    (dense_net, (9, 5), (9,), 3),                          # BatchNorm1d
    (lambda: rn.unet_tiny(3, 2, rng=0).astype(np.float64), (5, 3, 8, 8), (5, 8, 8), 2),
])
def test_a_step_on_replicas_equals_the_models_own(two_cores, rng, make, shape, labels, classes):
    x, y = rng.standard_normal(shape), rng.integers(0, classes, labels)   # U-Net: per pixel
    model, twin = make(), make()
    runner = rn.DataParallel(twin)
    loss = rn.SoftmaxCrossEntropy()
    for _ in range(2):                                    # two steps: the SGD moves reach the replicas
        expected = one_step(model, model, x, y, loss)
        got = one_step(runner, twin, x, y, loss)
        assert runner._parts is not None                  # the replicas did run
        assert_same(got, expected, 1e-10)
        for net in (model, twin):
            for (_, p), (_, g) in zip(net.named_parameters(), net.named_grads()):
                p -= 0.1 * g


@needs_threads
def test_the_model_is_replica_0_and_keeps_the_first_parts_caches(two_cores, rng):
    model = conv_net()
    runner = rn.DataParallel(model)
    x = rng.standard_normal((7, 3, 32, 32))
    runner.forward(x)
    assert runner._replicas[0] is model and len(runner._replicas) == 2
    assert model.stem.conv.cache["x"].base is x                # a view of x, not a copy
    assert np.array_equal(model.stem.conv.cache["x"], x[:3])    # batch_slices(7)[0]
    assert len(model.stage1[0].intermediates()["a_l2"]) == 3
    runner.backward(np.ones((7, 10)))
    assert len(model.stage1[0].gradients()["da_l"]) == 3


@needs_threads
def test_float32_logits_and_weight_gradients_agree(two_cores, rng):
    x, y = rng.standard_normal((8, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 8)
    model, twin = rn.resnet_cifar(8, rng=0), rn.resnet_cifar(8, rng=0)
    loss = rn.SoftmaxCrossEntropy()
    expected = one_step(model, model, x, y, loss)
    got = one_step(rn.DataParallel(twin), twin, x, y, loss)
    assert got[1].dtype == np.float32
    # float32: a pre-activation within rounding of 0 may fall on either side of ReLU's kink,
    # so the gradients agree to float32 precision only where no kink was crossed
    assert rn.rel_error(got[1], expected[1]) <= 1e-5
    assert_same(got[4], expected[4], 1e-5)                 # running statistics


@needs_threads
def test_float32_replicas_keep_batchnorm_in_float32(two_cores, rng, monkeypatch):
    """The replicas' BatchNorm statistics stay float32: a batch size of np.int64 once made
    them float64, and every pass of backward then ran in float64 (slower, same numbers)."""
    from resnet_np.layers import _fast_batchnorm
    dtypes, normalise = [], _fast_batchnorm.normalise

    def watched(*args):
        out = normalise(*args)
        dtypes.extend(a.dtype for a in out)            # out, x_centered, mean, var, inv_std
        return out

    monkeypatch.setattr(_fast_batchnorm, "normalise", watched)
    model = rn.resnet_cifar(8, rng=0)
    x, y = rng.standard_normal((8, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 8)
    one_step(rn.DataParallel(model), model, x, y, rn.SoftmaxCrossEntropy())
    assert dtypes and set(dtypes) == {np.dtype(np.float32)}


@needs_threads
def test_trainer_parallel_and_not_give_the_same_run(two_cores, rng):
    X, y = rng.standard_normal((40, 3, 32, 32)), rng.integers(0, 10, 40)
    histories = []
    for parallel_ in (True, False):
        model = conv_net()
        trainer = rn.Trainer(model, rn.SoftmaxCrossEntropy(), rn.SGD(model, lr=0.05, momentum=0.9),
                             rng=0, parallel=parallel_)
        assert isinstance(trainer.runner, rn.DataParallel) == parallel_
        histories.append(trainer.fit(X, y, epochs=2, batch_size=16, verbose=0)["step_loss"])
    assert len(histories[0]) == 6                          # 16, 16, 8 per epoch
    assert rn.rel_error(np.array(histories[0]), np.array(histories[1])) <= 1e-10


def test_the_trainer_follows_a_new_model():
    first, second = dense_net(), dense_net()
    trainer = rn.Trainer(first, rn.SoftmaxCrossEntropy(), rn.SGD(first, lr=0.1))
    assert trainer.runner.model is first
    trainer.model = second
    assert trainer.runner.model is second
    assert rn.Trainer(first, rn.SoftmaxCrossEntropy(), rn.SGD(first, lr=0.1),
                      parallel=False).runner is first


class Doubler(rn.Layer):
    """A layer from outside the library: DataParallel cannot know it leaves examples apart."""

    def forward(self, x):
        return 2 * x

    def backward(self, dout):
        return 2 * dout


@pytest.mark.parametrize("case", ["reference", "one core", "mixed dtypes",
                                  "foreign layer", "small batch"])
def test_runs_on_the_model_itself_where_splitting_is_not_safe(two_cores, monkeypatch, rng, case):
    model = conv_net() if case == "small batch" else dense_net()
    x = rng.standard_normal((1, 3, 32, 32) if case == "small batch" else (9, 5))
    if case == "one core":
        monkeypatch.setattr(_fast_conv, "_CORES", 1)
    if case == "mixed dtypes":
        x = x.astype(np.float32)
    if case == "foreign layer":
        model = rn.Sequential(dense_net(), Doubler())
    runner = rn.DataParallel(model)
    if case == "reference":
        with rn.reference_kernels():
            out = runner.forward(x)
    else:
        out = runner.forward(x)
    assert runner._parts is None and runner._replicas == []
    first = next(layer for _, layer in model.named_layers() if not layer.children())
    assert first.cache["x"] is x                                       # the model itself ran
    runner.backward(np.ones_like(out))


@needs_threads
def test_eval_mode_predicts_on_replicas_and_keeps_nothing_in_the_copies(two_cores, rng):
    model, twin = conv_net(), conv_net()
    x = rng.standard_normal((5, 3, 32, 32))
    runner = rn.DataParallel(twin)
    for net in (model, runner):                            # statistics that are not 0 and 1
        net.train()
        net.forward(x)
    model.eval(), runner.eval()
    expected = model.forward(x)
    got = runner.forward(x)
    assert runner._parts is not None                       # split, though nothing meets
    assert rn.rel_error(got, expected) <= 1e-12
    copy_ = runner._replicas[1]
    assert all(layer.cache == {} for _, layer in copy_.named_layers())
    with pytest.raises(RuntimeError, match=r"DataParallel.backward: expected a forward in "
                                           r"training mode before backward"):
        runner.backward(np.ones_like(got))


@needs_threads
def test_trainer_evaluates_and_predicts_on_replicas(two_cores, rng, monkeypatch):
    X, y = rng.standard_normal((12, 3, 32, 32)), rng.integers(0, 10, 12)
    model = conv_net()
    model.forward(X)                                        # running statistics that moved
    results = []
    for parallel_ in (True, False):
        trainer = rn.Trainer(model, rn.SoftmaxCrossEntropy(), rn.SGD(model, lr=0.1),
                             parallel=parallel_)
        results.append((trainer.evaluate(X, y, batch_size=8),
                        trainer.predict(X, batch_size=8, return_logits=True)))
        assert model.training                               # the mode comes back
        assert trainer.runner._parts is not None if parallel_ else trainer.runner is model
    (scores, logits), (scores_, logits_) = results
    assert rn.rel_error(logits, logits_) <= 1e-12
    assert scores["accuracy"] == scores_["accuracy"]
    assert abs(scores["loss"] - scores_["loss"]) <= 1e-12


@needs_threads
def test_a_bad_input_is_reported_as_the_model_reports_it(two_cores, rng):
    model = conv_net()
    bad = rng.standard_normal((6, 4, 32, 32))             # 4 channels, not 3
    with pytest.raises(ValueError) as own:
        model.forward(bad)
    with pytest.raises(ValueError, match=re.escape(str(own.value))):
        rn.DataParallel(conv_net()).forward(bad)
    assert "(6, 4, 32, 32)" in str(own.value)              # the whole batch's shape, not a part's


@needs_threads
def test_backward_checks_dout(two_cores, rng):
    runner = rn.DataParallel(conv_net())
    runner.forward(rng.standard_normal((4, 3, 32, 32)))
    with pytest.raises(ValueError, match=r"DataParallel.backward: expected dout of the "
                                         r"output's shape \(4, 10\), got \(4, 9\)"):
        runner.backward(np.ones((4, 9)))


@needs_threads
def test_a_failing_replica_releases_the_others(two_cores, rng):
    runner = rn.DataParallel(conv_net())
    x = rng.standard_normal((4, 3, 32, 32))
    runner.forward(x)
    broken = runner._replicas[1].stage2[0].conv1

    def fail(dout):
        raise RuntimeError("replica 1 failed")

    broken.backward = fail                         # replica 0 waits at stage 2's BatchNorm
    outcome = []

    def step():
        try:
            runner.backward(np.ones((4, 10)))
        except RuntimeError as error:
            outcome.append(str(error))

    thread = threading.Thread(target=step, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "a replica was left waiting at the exchange"
    assert outcome == ["replica 1 failed"]
    del broken.backward
    runner.forward(x)                              # a new exchange: the next step runs
    runner.backward(np.ones((4, 10)))


@needs_threads
def test_replicas_follow_a_changed_model(two_cores, rng):
    model = conv_net()
    runner = rn.DataParallel(model)
    x = rng.standard_normal((4, 3, 32, 32))
    runner.forward(x)
    model.fc = rn.Dense(16, 5, rng=3).astype(np.float64)          # a new head
    out = runner.forward(x)
    assert out.shape == (4, 5)
    runner.backward(np.ones((4, 5)))
    assert np.abs(model.fc.grads["W"]).sum() > 0


@needs_threads
def test_small_batches_run_on_the_model_itself(monkeypatch, rng):
    """Below min_part_values input values per core the step runs on the model (its caches
    then hold the whole batch); at the threshold it runs on replicas (the first part)."""
    monkeypatch.setattr(_fast_conv, "_CORES", 2)
    x = rng.standard_normal((4, 3, 8, 8))                          # 768 values, 384 per core
    for min_part_values, held in ((385, 4), (384, 2), (0, 2)):
        model = conv_net()
        runner = rn.DataParallel(model, min_part_values=min_part_values)
        runner.forward(x)
        assert len(model.stem.conv.cache["x"]) == held
    monkeypatch.setattr(parallel, "MIN_PART_VALUES", 385)           # the default, read at
    model = conv_net()                                             # construction
    rn.DataParallel(model).forward(x)
    assert len(model.stem.conv.cache["x"]) == 4
    assert rn.DataParallel(model).min_part_values == 385
    for bad, error in ((-1, ValueError), (0.5, TypeError)):
        with pytest.raises(error, match="min_part_values"):
            rn.DataParallel(model, min_part_values=bad)


@needs_threads
def test_networks_without_a_convolution_run_on_the_model_unless_told(monkeypatch, rng):
    monkeypatch.setattr(_fast_conv, "_CORES", 2)
    x = rng.standard_normal((40, 5))
    for min_part_values, held in ((1, 40), (0, 20)):
        model = dense_net()
        rn.DataParallel(model, min_part_values=min_part_values).forward(x)
        assert len(model[0].cache["x"]) == held


def test_the_exchange_returns_every_value_of_each_meeting_in_rank_order():
    parties, meetings = 3, 200
    exchange = parallel._Exchange(parties)
    seen = [[] for _ in range(parties)]

    def replica(rank):
        r = random.Random(rank)
        for m in range(meetings):
            if r.random() < 0.1:
                time.sleep(0.0005)                 # replicas arrive out of step
            seen[rank].append(exchange.gather(rank, (m, rank)))

    threads = [threading.Thread(target=replica, args=(rank,)) for rank in range(parties)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    expected = [[(m, rank) for rank in range(parties)] for m in range(meetings)]
    assert seen == [expected] * parties


def test_shares_run_under_the_callers_errstate(monkeypatch):
    monkeypatch.setattr(_fast_conv, "_CORES", 2)
    big = np.array([1e300])
    with np.errstate(over="raise"):
        with pytest.raises(FloatingPointError):
            _fast_conv._share(lambda item: big * big, [0, 1], 2)
    with np.errstate(over="ignore"):
        assert _fast_conv._share(lambda item: float((big * big)[0]), [0, 1], 2) == [np.inf] * 2


def test_repr_and_modes():
    model = dense_net()
    runner = rn.DataParallel(model)
    assert repr(runner).startswith("DataParallel(Sequential, ")
    assert runner.eval() is runner and not model.training and not runner.training
    runner.train()
    assert model.training
    with pytest.raises(TypeError, match="DataParallel: expected a resnet_np model"):
        rn.DataParallel(object())
