"""Layer and Sequential: the tree walk, state dicts, dtypes, modes, repr."""
import numpy as np
import pytest

from resnet_np import Dense, Layer, ReLU, Sequential, Sigmoid
from resnet_np.layers.base import Layer as BaseLayer


class Running(Layer):
    """A tiny layer with a parameter and a buffer, to test buffers and modes."""

    def __init__(self, n=3):
        super().__init__()
        self.add_param("gamma", np.ones(n, dtype=np.float32))
        self.buffers["running_mean"] = np.zeros(n, dtype=np.float32)

    def forward(self, x):
        self.cache = {"x": x}
        return x * self.params["gamma"]

    def backward(self, dout):
        x = self._cached("x")
        self.grads["gamma"] = (dout * x).sum(axis=0)
        return dout * self.params["gamma"]


def small_net():
    inner = Sequential(Dense(4, 3, rng=1), Running(3))
    return Sequential({"stem": Dense(5, 4, rng=0), "act": ReLU(), "body": inner,
                       "head": Dense(3, 2, bias=False, rng=2)})


def test_top_level_and_module_exports_are_the_same_class():
    assert Layer is BaseLayer


def test_named_parameters_order_is_depth_first_registration_order():
    net = small_net()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["stem.W", "stem.b", "body.0.W", "body.0.b", "body.1.gamma", "head.W"]
    assert [name for name, _ in net.named_grads()] == names
    assert [name for name, _ in net.named_buffers()] == ["body.1.running_mean"]


def test_named_parameters_yields_the_live_arrays():
    net = small_net()
    params = dict(net.named_parameters())
    assert params["body.0.W"] is net.body[0].params["W"]
    assert params["stem.b"] is net["stem"].params["b"]


def test_sequential_positional_names_indexing_and_len():
    net = Sequential(Dense(3, 4, rng=0), ReLU(), Dense(4, 2, rng=1))
    assert [name for name, _ in net.children()] == ["0", "1", "2"]
    assert len(net) == 3
    assert isinstance(net[1], ReLU) and net[-1] is net["2"]
    assert list(net) == [net[0], net[1], net[2]]


def test_sequential_forward_and_backward_compose_in_order(rng):
    first, second = Dense(3, 4, rng=0).astype(np.float64), Dense(4, 2, rng=1).astype(np.float64)
    net = Sequential(first, second)
    x = rng.standard_normal((5, 3))
    W1, b1, W2, b2 = first.params["W"], first.params["b"], second.params["W"], second.params["b"]
    np.testing.assert_allclose(net(x), (x @ W1.T + b1) @ W2.T + b2, rtol=1e-12)
    dout = rng.standard_normal((5, 2))
    np.testing.assert_allclose(net.backward(dout), dout @ W2 @ W1, rtol=1e-12)
    np.testing.assert_allclose(second.grads["W"], dout.T @ (x @ W1.T + b1), rtol=1e-12)


def test_sequential_rejects_non_layers():
    with pytest.raises(TypeError, match=r"Sequential: expected Layer objects, got int for '1'"):
        Sequential(Dense(2, 2), 3)


def test_reassigning_a_child_to_a_non_layer_unregisters_it():
    layer = Layer()
    layer.child = Dense(2, 2)
    assert [n for n, _ in layer.children()] == ["child"]
    layer.child = None
    assert layer.children() == [] and layer.num_parameters() == 0


def test_num_parameters_counts_every_scalar():
    assert small_net().num_parameters() == (5 * 4 + 4) + (4 * 3 + 3) + 3 + 3 * 2
    assert Sequential(ReLU(), Sigmoid()).num_parameters() == 0


# -- state_dict / load_state_dict ------------------------------------------------------

def test_state_dict_holds_copies_of_params_and_buffers_in_order():
    net = small_net()
    state = net.state_dict()
    assert list(state) == ["stem.W", "stem.b", "body.0.W", "body.0.b", "body.1.gamma", "head.W",
                           "body.1.running_mean"]
    state["stem.W"][...] = 123.0
    assert not np.any(net.stem.params["W"] == 123.0)


def test_load_state_dict_round_trip_copies_values_in_place():
    source, target = small_net(), small_net()
    for _, p in source.named_parameters():
        p[...] = np.arange(p.size, dtype=p.dtype).reshape(p.shape) + 0.5
    source.body[1].buffers["running_mean"][...] = 7.0
    W_before = target.stem.params["W"]
    assert target.load_state_dict(source.state_dict()) is target
    assert target.stem.params["W"] is W_before                 # loaded in place
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_load_state_dict_strict_reports_missing_unexpected_and_misshaped_together():
    net = small_net()
    state = net.state_dict()
    del state["stem.b"]
    del state["body.1.running_mean"]
    state["extra.W"] = np.zeros(2)
    state["head.W"] = np.zeros((3, 2))
    with pytest.raises(ValueError) as info:
        net.load_state_dict(state)
    text = str(info.value)
    assert text.startswith("Sequential.load_state_dict: expected the keys and shapes")
    assert "missing keys ['stem.b', 'body.1.running_mean']" in text
    assert "unexpected keys ['extra.W']" in text
    assert "head.W: expected (2, 3), got (3, 2)" in text
    assert text.endswith("Build the same architecture before loading.")


@pytest.mark.parametrize("edit, pattern", [
    (lambda s: s.pop("stem.W"), r"missing keys \['stem\.W'\]"),
    (lambda s: s.update(bogus=np.zeros(1)), r"unexpected keys \['bogus'\]"),
    (lambda s: s.update({"body.0.b": np.zeros(4)}), r"body\.0\.b: expected \(3,\), got \(4,\)"),
])
def test_load_state_dict_strict_reports_each_problem(edit, pattern):
    net = small_net()
    state = net.state_dict()
    edit(state)
    before = net.state_dict()
    with pytest.raises(ValueError, match=pattern):
        net.load_state_dict(state)
    for (name, a), b in zip(before.items(), net.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} changed by a failed load")


def test_load_state_dict_non_strict_loads_the_matching_keys_only():
    net = small_net()
    state = {"stem.b": np.full(4, 2.0), "not.there": np.zeros(3)}
    net.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(net.stem.params["b"], np.full(4, 2.0))


def test_load_state_dict_non_strict_still_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"wrong shapes \[stem\.b: expected \(4,\), got \(5,\)\]"):
        small_net().load_state_dict({"stem.b": np.zeros(5)}, strict=False)


# -- astype, train/eval ----------------------------------------------------------------

def test_astype_converts_params_grads_buffers_and_returns_the_model(rng):
    net = small_net()
    net(rng.standard_normal((2, 5)).astype(np.float32))
    assert all(p.dtype == np.float32 for _, p in net.named_parameters())
    assert net.astype(np.float64) is net
    for getter in (net.named_parameters, net.named_grads, net.named_buffers):
        for name, value in getter():
            assert value.dtype == np.float64, name
    assert all(layer.cache == {} for _, layer in net.named_layers())
    assert net(rng.standard_normal((2, 5))).dtype == np.float64


def test_astype_keeps_values():
    net = small_net()
    before = net.state_dict()
    net.astype(np.float64)
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[name].astype(np.float64), err_msg=name)


def test_train_and_eval_are_recursive_and_return_self():
    net = small_net()
    layers = [layer for _, layer in net.named_layers()]
    assert len(layers) == 7 and all(layer.training for layer in layers)
    assert net.eval() is net
    assert not any(layer.training for layer in layers)
    assert net.train() is net
    assert all(layer.training for layer in layers)
    net.train(False)
    assert not any(layer.training for layer in layers)


# -- errors and repr -------------------------------------------------------------------

@pytest.mark.parametrize("layer", [Dense(3, 2, rng=0), ReLU(), Running(3)], ids=repr)
def test_backward_before_forward_raises_a_clear_error(layer):
    name = type(layer).__name__
    with pytest.raises(RuntimeError, match=rf"^{name}\.backward: expected forward to have run "
                                           r"first, got an empty cache\. Call forward\(x\)"):
        layer.backward(np.ones((2, 3)))


def test_sequential_backward_before_forward_raises():
    # backward runs in reverse, so the last layer is the first to notice
    with pytest.raises(RuntimeError, match=r"ReLU\.backward: expected forward to have run first"):
        Sequential(Dense(3, 2), ReLU()).backward(np.ones((2, 2)))


def test_backward_after_astype_needs_a_new_forward(rng):
    layer = Dense(3, 2, rng=0)
    layer(rng.standard_normal((2, 3)).astype(np.float32))
    layer.astype(np.float64)
    with pytest.raises(RuntimeError, match="forward to have run first"):
        layer.backward(np.ones((2, 2)))


def test_base_layer_forward_and_backward_are_abstract():
    with pytest.raises(NotImplementedError, match="Layer does not implement forward"):
        Layer()(np.ones(2))
    with pytest.raises(NotImplementedError, match="Layer does not implement backward"):
        Layer().backward(np.ones(2))


def test_repr_mirrors_the_constructors_and_nests():
    net = Sequential(Dense(3, 4), ReLU(), Sequential({"out": Dense(4, 2, bias=False)}))
    assert repr(net) == ("Sequential(\n"
                         "  (0): Dense(3, 4)\n"
                         "  (1): ReLU()\n"
                         "  (2): Sequential(\n"
                         "    (out): Dense(4, 2, bias=False)\n"
                         "  )\n"
                         ")")
