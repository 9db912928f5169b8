"""SGD: trajectories against the documented update rule, written out step by step."""
import numpy as np
import pytest

from resnet_np import SGD, Dense, Sequential
from resnet_np.optim import CosineLR, MultiStepLR, WarmupLR


def scalar_model(p0=1.0):
    """A model with one scalar parameter p = W[0, 0], in float64."""
    layer = Dense(1, 1, bias=False).astype(np.float64)
    layer.params["W"][...] = p0
    return layer


def run_scalar(optimizer_kwargs, grads, p0=1.0):
    model = scalar_model(p0)
    opt = SGD(model, **optimizer_kwargs)
    trajectory = []
    for g in grads:
        model.grads["W"][...] = g                     # set in place, as a student might
        opt.step()
        trajectory.append(float(model.params["W"][0, 0]))
    return trajectory


# Worked by hand for p0 = 1 and a constant gradient dp = 1, lr = 0.1.
@pytest.mark.parametrize("kwargs, expected", [
    # p <- p - lr dp:                   0.9, 0.8, 0.7
    ({}, [0.9, 0.8, 0.7]),
    # v1 = 1, v2 = .5*1 + 1 = 1.5, v3 = .5*1.5 + 1 = 1.75; p -= .1 v
    ({"momentum": 0.5}, [0.9, 0.75, 0.575]),
    # d = g + .5 v:  1 + .5,  1 + .75,  1 + .875
    ({"momentum": 0.5, "nesterov": True}, [0.85, 0.675, 0.4875]),
    # g = 1 + .1 p:  1.1, 1.089, 1.07811
    ({"weight_decay": 0.1}, [0.89, 0.7811, 0.673289]),
    # g1 = 1.1, v1 = 1.1, p1 = .89; g2 = 1.089, v2 = .55 + 1.089 = 1.639, p2 = .7261;
    # g3 = 1.07261, v3 = .8195 + 1.07261 = 1.89211, p3 = .536889
    ({"momentum": 0.5, "weight_decay": 0.1}, [0.89, 0.7261, 0.536889]),
], ids=["plain", "momentum", "nesterov", "weight-decay", "momentum+weight-decay"])
def test_scalar_trajectory_worked_by_hand(kwargs, expected):
    assert run_scalar({"lr": 0.1, **kwargs}, [1.0, 1.0, 1.0]) == pytest.approx(expected,
                                                                               abs=1e-14)


# The same rule on a (W, b) model with different gradients at every step, with the
# formula of the module docstring written out for three steps.
P0 = {"W": np.array([[1.0, -2.0]]), "b": np.array([0.5])}
GRADS = [{"W": np.array([[0.1, 0.2]]), "b": np.array([1.0])},
         {"W": np.array([[-0.3, 0.4]]), "b": np.array([0.5])},
         {"W": np.array([[0.2, -0.1]]), "b": np.array([-1.0])}]


def hand_trajectory(p0, g, lr, mu, wd, nesterov):
    """Three steps of the documented rule, unrolled for one parameter."""
    G1 = g[0] + wd * p0
    v1 = G1
    p1 = p0 - lr * ((G1 + mu * v1) if nesterov else v1)
    G2 = g[1] + wd * p1
    v2 = mu * v1 + G2
    p2 = p1 - lr * ((G2 + mu * v2) if nesterov else v2)
    G3 = g[2] + wd * p2
    v3 = mu * v2 + G3
    p3 = p2 - lr * ((G3 + mu * v3) if nesterov else v3)
    return [p1, p2, p3]


@pytest.mark.parametrize("mu, wd, nesterov", [(0.0, 0.0, False), (0.9, 0.0, False),
                                              (0.0, 0.05, False), (0.9, 0.05, False),
                                              (0.9, 0.0, True), (0.8, 0.05, True)])
def test_two_parameter_trajectory_follows_the_documented_rule(mu, wd, nesterov):
    lr = 0.2
    model = Dense(2, 1).astype(np.float64)
    for key in P0:
        model.params[key][...] = P0[key]
    opt = SGD(model, lr=lr, momentum=mu, weight_decay=wd, nesterov=nesterov)
    got = {"W": [], "b": []}
    for step_grads in GRADS:
        for key in P0:
            model.grads[key][...] = step_grads[key]
        opt.step()
        for key in P0:
            got[key].append(model.params[key].copy())
    for key in P0:
        expected = hand_trajectory(P0[key], [s[key] for s in GRADS], lr, mu, wd, nesterov)
        np.testing.assert_allclose(got[key], expected, rtol=0, atol=1e-15, err_msg=key)


def test_lr_is_settable_between_steps_and_momentum_buffer_excludes_lr():
    model = scalar_model(1.0)
    opt = SGD(model, lr=0.1, momentum=0.5)
    model.grads["W"][...] = 1.0
    opt.step()                                        # v1 = 1, p = 1 - .1 * 1 = .9
    opt.lr = 0.01
    opt.step()                                        # v2 = 1.5, p = .9 - .01 * 1.5 = .885
    assert float(model.params["W"][0, 0]) == pytest.approx(0.885, abs=1e-15)
    np.testing.assert_allclose(opt.velocity["W"], [[1.5]], rtol=1e-15)


def test_every_parameter_of_a_nested_model_is_updated_in_place_with_its_own_buffer(rng):
    model = Sequential(Dense(3, 4, rng=0), Sequential(Dense(4, 2, rng=1)))
    arrays = {name: p for name, p in model.named_parameters()}
    before = {name: p.copy() for name, p in arrays.items()}
    grads = {name: rng.standard_normal(p.shape).astype(np.float32) for name, p in arrays.items()}
    for (name, g) in model.named_grads():
        g[...] = grads[name]
    opt = SGD(model, lr=0.5, momentum=0.9)
    opt.step()
    assert sorted(opt.velocity) == sorted(arrays)
    for name, p in model.named_parameters():
        assert p is arrays[name] and p.dtype == np.float32
        np.testing.assert_allclose(p, before[name] - 0.5 * grads[name], rtol=1e-6, atol=1e-7)


def test_zero_gradient_without_weight_decay_changes_nothing():
    model = Dense(3, 2, rng=0)
    before = model.params["W"].copy()
    SGD(model, lr=1.0, momentum=0.9).step()
    np.testing.assert_array_equal(model.params["W"], before)


def test_state_dict_round_trip_continues_the_same_trajectory():
    grads = [1.0, -2.0, 0.5, 3.0]
    model_a, model_b = scalar_model(), scalar_model()
    opt_a = SGD(model_a, lr=0.1, momentum=0.9, nesterov=True)
    for g in grads[:2]:
        model_a.grads["W"][...] = g
        opt_a.step()
    model_b.load_state_dict(model_a.state_dict())
    opt_b = SGD(model_b, lr=0.5, momentum=0.9, nesterov=True).load_state_dict(opt_a.state_dict())
    assert opt_b.lr == 0.1
    for g in grads[2:]:
        for model, opt in ((model_a, opt_a), (model_b, opt_b)):
            model.grads["W"][...] = g
            opt.step()
    np.testing.assert_array_equal(model_a.params["W"], model_b.params["W"])


def test_repr():
    assert repr(SGD(Dense(1, 1), lr=0.1, momentum=0.9, nesterov=True)) == \
        "SGD(lr=0.1, momentum=0.9, weight_decay=0.0, nesterov=True)"


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"lr": 0.1, "nesterov": True}, ValueError,
     r"^SGD: expected momentum > 0 with nesterov=True, got momentum=0\. "
     r"Set momentum, e\.g\. 0\.9, or nesterov=False\.$"),
    ({"lr": -0.1}, ValueError, r"^SGD: expected a finite lr >= 0\.0, got lr=-0\.1\.$"),
    ({"lr": float("inf")}, ValueError, r"^SGD: expected a finite lr >= 0\.0, got lr=inf\.$"),
    ({"lr": "0.1"}, TypeError, r"^SGD: expected lr to be a number, got '0\.1'\.$"),
    ({"lr": 0.1, "momentum": -0.9}, ValueError,
     r"^SGD: expected a finite momentum >= 0\.0, got momentum=-0\.9\.$"),
    ({"lr": 0.1, "weight_decay": -1e-4}, ValueError,
     r"^SGD: expected a finite weight_decay >= 0\.0, got weight_decay=-0\.0001\.$"),
], ids=["nesterov-no-momentum", "negative-lr", "inf-lr", "str-lr", "negative-momentum",
        "negative-weight-decay"])
def test_errors(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        SGD(Dense(2, 2), **kwargs)


@pytest.mark.torch
@pytest.mark.parametrize("momentum, weight_decay, nesterov", [
    (0.0, 0.0, False), (0.9, 0.0, False), (0.0, 5e-4, False), (0.9, 5e-4, False),
    (0.9, 5e-4, True)])
def test_matches_torch_sgd_over_20_steps(momentum, weight_decay, nesterov):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    model = Sequential(Dense(3, 4, rng=1), Dense(4, 2, rng=2)).astype(np.float64)
    names = [name for name, _ in model.named_parameters()]
    tensors = [torch.tensor(p.copy(), dtype=torch.float64, requires_grad=True)
               for _, p in model.named_parameters()]
    opt = SGD(model, lr=0.1, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    ref = torch.optim.SGD(tensors, lr=0.1, momentum=momentum, weight_decay=weight_decay,
                          nesterov=nesterov)
    for step in range(20):
        if step == 10:                                 # a schedule changes lr midway
            opt.lr = 0.03
            for group in ref.param_groups:
                group["lr"] = 0.03
        grads = dict(model.named_grads())
        for name, tensor in zip(names, tensors):
            g = rng.standard_normal(tensor.shape)
            grads[name][...] = g
            tensor.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        ref.step()
    for (name, p), tensor in zip(model.named_parameters(), tensors):
        np.testing.assert_allclose(p, tensor.detach().numpy(), rtol=0, atol=1e-10, err_msg=name)


# -- learning-rate schedules --------------------------------------------------------------


def test_multistep_follows_the_formula():
    schedule = MultiStepLR(0.1, milestones=[82, 123], gamma=0.1)   # He et al. 2015, in epochs
    for t in np.linspace(0, 160, 321):
        expected = 0.1 * 0.1 ** (int(t >= 82) + int(t >= 123))
        assert schedule(t) == pytest.approx(expected, rel=1e-12), t
    assert MultiStepLR(1.0, milestones=[3, 1], gamma=0.5)(2) == 0.5   # milestones sorted


def test_cosine_follows_the_formula_and_clamps():
    schedule = CosineLR(0.2, total_epochs=8, min_lr=0.02)
    for t in np.linspace(0, 8, 33):
        expected = 0.02 + (0.2 - 0.02) * (1 + np.cos(np.pi * t / 8)) / 2
        assert schedule(t) == pytest.approx(expected, rel=1e-12)
    assert schedule(-1) == pytest.approx(0.2) and schedule(100) == pytest.approx(0.02)
    values = [schedule(t) for t in np.linspace(0, 8, 50)]
    assert all(a >= b for a, b in zip(values, values[1:]))           # never rises


def test_warmup_constant_then_hands_over():
    after = MultiStepLR(0.1, milestones=[5])
    schedule = WarmupLR(after, warmup_epochs=0.5, warmup_lr=0.01)
    assert [schedule(t) for t in (0, 0.25, 0.49)] == [0.01, 0.01, 0.01]
    for t in (0.5, 1, 4.9, 5, 9):
        assert schedule(t) == after(t)


def test_warmup_linear_composes_with_cosine():
    cosine = CosineLR(0.1, total_epochs=10)
    schedule = WarmupLR(cosine, warmup_epochs=2, warmup_lr=0.0, linear=True)
    assert schedule(0) == 0.0
    assert schedule(1) == pytest.approx(cosine(2) / 2)
    assert schedule(2) == cosine(2) and schedule(7) == cosine(7)
    nested = WarmupLR(schedule, warmup_epochs=1, warmup_lr=0.5)       # schedules compose
    assert nested(0.5) == 0.5 and nested(1.5) == schedule(1.5)


def test_schedule_reprs():
    assert repr(MultiStepLR(0.1, [2, 4])) == "MultiStepLR(0.1, milestones=[2, 4], gamma=0.1)"
    assert repr(CosineLR(0.1, 10)).startswith("CosineLR(0.1, total_epochs=10.0")
    assert repr(WarmupLR(CosineLR(0.1, 10), 1, 0.01)).startswith("WarmupLR(CosineLR(")
