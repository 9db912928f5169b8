"""Residual blocks: every skip x activation x shortcut, intermediates, gradients, collapse;
the written-out passes against the loop over k, and how they read."""
import itertools

import numpy as np
import pytest

import inspect

from resnet_np.blocks import BasicBlock, Bottleneck, PreActBlock, ResidualBlock
from resnet_np import DenseResidualBlock, check_gradients

SKIPS = [1, 2, 3]
ACTIVATIONS = ["relu", "sigmoid", "tanh", "leaky_relu", "identity"]
SHORTCUTS = ["identity", "projection", None]
FEATURES = 3
OUT = {"identity": 3, "projection": 4, None: 3}      # projection changes the width

# g written independently of the library, for the a == g(z + shortcut) checks
G = {"relu": lambda z: np.maximum(z, 0.0),
     "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
     "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
     "tanh": np.tanh,
     "identity": lambda z: z}
DG = {"relu": lambda z: (z > 0).astype(float),
      "leaky_relu": lambda z: np.where(z > 0, 1.0, 0.01),
      "sigmoid": lambda z: G["sigmoid"](z) * (1 - G["sigmoid"](z)),
      "tanh": lambda z: 1 - np.tanh(z) ** 2,
      "identity": np.ones_like}

COMBOS = list(itertools.product(SKIPS, ACTIVATIONS, SHORTCUTS))
IDS = [f"skip{k}-{g}-{s}" for k, g, s in COMBOS]


def make_block(skip, activation, shortcut, rng=0, **kwargs):
    return DenseResidualBlock(FEATURES, skip=skip, activation=activation, shortcut=shortcut,
                              out_features=OUT[shortcut], rng=rng, **kwargs).astype(np.float64)


def expected_keys(skip, shortcut):
    keys = ["a_l"]
    for i in range(1, skip + 1):
        keys.append(f"z_l{i}")
        if i < skip:
            keys.append(f"a_l{i}")
    return keys + (["shortcut"] if shortcut is not None else []) + [f"a_l{skip}"]


def shortcut_of(block, a_l):
    kind = block.shortcut_kind
    if kind == "identity":
        return a_l
    if kind == "projection":
        return a_l @ block.shortcut.params["W"].T
    return 0.0


@pytest.mark.parametrize("skip, activation, shortcut", COMBOS, ids=IDS)
def test_gradient_check_passes(skip, activation, shortcut, rng):
    block = make_block(skip, activation, shortcut)
    for i in range(1, skip + 1):
        # b = 0 puts a dead ReLU row exactly on the kink z = 0: move biases away from it
        fc = getattr(block, f"fc{i}")
        fc.params["b"][...] = rng.uniform(0.1, 0.3, fc.params["b"].shape)
    report = check_gradients(block, rng.standard_normal((4, FEATURES)))
    assert report.max_error < 1e-7, str(report)
    expected = ["dx"] + [f"fc{i}.{p}" for i in range(1, skip + 1) for p in "Wb"]
    expected += ["shortcut.W"] if shortcut == "projection" else []
    assert [row["name"] for row in report.rows] == expected


@pytest.mark.parametrize("skip, activation, shortcut", COMBOS, ids=IDS)
def test_intermediates_in_order_with_shapes_labels_and_values(skip, activation, shortcut, rng):
    block = make_block(skip, activation, shortcut)
    N, out = 5, OUT[shortcut]
    a_l = rng.standard_normal((N, FEATURES))
    a_out = block(a_l)
    v = block.intermediates()
    assert list(v) == expected_keys(skip, shortcut)
    for key, value in v.items():
        assert value.shape == ((N, FEATURES) if key == "a_l" else (N, out)), key
    assert block.LABELS["a_l"] == "a^[l]"
    assert block.LABELS["z_l1"] == "z^[l+1]"
    assert block.LABELS[f"z_l{skip}"] == f"z^[l+{skip}]"
    assert block.LABELS[f"a_l{skip}"] == f"a^[l+{skip}] = g(z^[l+{skip}] + shortcut)"
    for i in range(1, skip):
        assert block.LABELS[f"a_l{i}"] == f"a^[l+{i}] = g(z^[l+{i}])"
    labels = [key for key in block.LABELS if key in v]
    assert labels == list(v)                                    # LABELS in forward order
    # the values are the real ones: recompute the block from its weights
    g, a = G[activation], a_l
    np.testing.assert_array_equal(v["a_l"], a_l)
    for i in range(1, skip + 1):
        fc = getattr(block, f"fc{i}")
        np.testing.assert_allclose(v[f"z_l{i}"], a @ fc.params["W"].T + fc.params["b"],
                                   rtol=1e-12, atol=1e-14)
        if i < skip:
            a = v[f"a_l{i}"]
            np.testing.assert_allclose(a, g(v[f"z_l{i}"]), rtol=1e-12, atol=1e-14)
    s = shortcut_of(block, a_l)
    if shortcut is not None:
        np.testing.assert_allclose(v["shortcut"], s, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(v[f"a_l{skip}"], g(v[f"z_l{skip}"] + s), rtol=1e-12, atol=1e-14)
    assert v[f"a_l{skip}"] is a_out


@pytest.mark.parametrize("skip, activation, shortcut", COMBOS, ids=IDS)
def test_gradients_split_at_a_l(skip, activation, shortcut, rng):
    block = make_block(skip, activation, shortcut)
    a_l = rng.standard_normal((5, FEATURES))
    block(a_l)
    v = block.intermediates()
    dout = rng.standard_normal((5, OUT[shortcut]))
    da_l = block.backward(dout)
    d = block.gradients()
    keys = []
    for i in range(skip, 0, -1):
        keys += [f"da_l{i}", f"dz_l{i}"]
    assert list(d) == keys + ["da_l_shortcut", "da_l_branch", "da_l"]
    assert all(key in block.LABELS for key in d)
    assert d[f"da_l{skip}"] is dout and d["da_l"] is da_l
    dg = DG[activation]
    np.testing.assert_allclose(d[f"dz_l{skip}"],
                               dout * dg(v[f"z_l{skip}"] + shortcut_of(block, a_l)),
                               rtol=1e-12, atol=1e-14)
    for i in range(skip - 1, 0, -1):
        W_next = getattr(block, f"fc{i + 1}").params["W"]
        np.testing.assert_allclose(d[f"da_l{i}"], d[f"dz_l{i + 1}"] @ W_next, rtol=1e-12,
                                   atol=1e-14)
        np.testing.assert_allclose(d[f"dz_l{i}"], d[f"da_l{i}"] * dg(v[f"z_l{i}"]),
                                   rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d["da_l_branch"], d["dz_l1"] @ block.fc1.params["W"],
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(d["da_l"], d["da_l_shortcut"] + d["da_l_branch"])
    if shortcut == "identity":
        np.testing.assert_array_equal(d["da_l_shortcut"], d[f"dz_l{skip}"])
    elif shortcut == "projection":
        np.testing.assert_allclose(d["da_l_shortcut"],
                                   d[f"dz_l{skip}"] @ block.shortcut.params["W"], rtol=1e-12)
    else:
        np.testing.assert_array_equal(d["da_l_shortcut"], np.zeros((5, FEATURES)))


def test_a_new_forward_clears_the_old_gradients(rng):
    block = make_block(2, "relu", "identity")
    block(rng.standard_normal((2, FEATURES)))
    block.backward(np.ones((2, FEATURES)))
    block(rng.standard_normal((2, FEATURES)))
    with pytest.raises(RuntimeError, match=r"^DenseResidualBlock\.gradients: expected backward "
                                           r"to have run first"):
        block.gradients()


# -- collapse: a one-layer block is one layer -------------------------------------------

@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shortcut", SHORTCUTS, ids=str)
def test_collapse_matches_the_skip_1_block(activation, shortcut, rng):
    block = make_block(1, activation, shortcut)
    single = block.collapse()
    assert [name for name, _ in single.children()] == ["fc", "act"]
    x = rng.standard_normal((6, FEATURES))
    np.testing.assert_allclose(single(x), block(x), rtol=1e-12, atol=1e-12)
    W, W1 = single.fc.params["W"], block.fc1.params["W"]
    if shortcut == "identity":
        np.testing.assert_allclose(W, W1 + np.eye(FEATURES), rtol=0, atol=1e-15)
    elif shortcut == "projection":
        np.testing.assert_allclose(W, W1 + block.shortcut.params["W"], rtol=0, atol=1e-15)
    else:
        np.testing.assert_array_equal(W, W1)


def test_collapse_is_an_independent_copy(rng):
    block = make_block(1, "tanh", "identity")
    single = block.collapse()
    single.fc.params["b"][...] = 5.0
    assert not np.any(block.fc1.params["b"] == 5.0)


@pytest.mark.parametrize("skip", [2, 3])
def test_collapse_needs_skip_1(skip):
    with pytest.raises(ValueError, match=rf"^DenseResidualBlock\.collapse: expected skip=1, "
                                         rf"got skip={skip}\. With two or more layers the "
                                         r"branch has a nonlinearity inside"):
        make_block(skip, "relu", "identity").collapse()


# -- initialisation, twins, counting -----------------------------------------------------

@pytest.mark.parametrize("skip", SKIPS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shortcut", ["identity", "projection"])
def test_zero_init_makes_the_block_g_of_its_shortcut(skip, activation, shortcut, rng):
    block = make_block(skip, activation, shortcut, zero_init_residual=True)
    last = getattr(block, f"fc{skip}")
    assert not np.any(last.params["W"]) and not np.any(last.params["b"])
    a_l = rng.standard_normal((4, FEATURES))
    np.testing.assert_allclose(block(a_l), G[activation](shortcut_of(block, a_l)),
                               rtol=1e-12, atol=1e-15)


def test_without_zero_init_the_last_layer_is_not_zero():
    assert np.any(make_block(2, "relu", "identity").fc2.params["W"])


@pytest.mark.parametrize("skip", SKIPS)
@pytest.mark.parametrize("shortcut, out", [("identity", 3), ("projection", 3),
                                           ("projection", 5)])
def test_plain_twin_has_the_same_branch(skip, shortcut, out):
    kwargs = dict(skip=skip, out_features=out, rng=7)
    residual = DenseResidualBlock(FEATURES, shortcut=shortcut, **kwargs)
    plain = DenseResidualBlock(FEATURES, shortcut=None, **kwargs)
    branch = [(n, p) for n, p in residual.named_parameters() if not n.startswith("shortcut")]
    assert [n for n, _ in branch] == [n for n, _ in plain.named_parameters()]
    for (name, p), (_, q) in zip(branch, plain.named_parameters()):
        np.testing.assert_array_equal(p, q, err_msg=name)


@pytest.mark.parametrize("skip", SKIPS)
@pytest.mark.parametrize("shortcut, extra", [("identity", 0), (None, 0),
                                             ("projection", FEATURES * 4)])
def test_num_parameters(skip, shortcut, extra):
    out = OUT[shortcut]
    branch = (FEATURES * out + out) + (skip - 1) * (out * out + out)
    assert make_block(skip, "relu", shortcut).num_parameters() == branch + extra


def test_children_and_repr():
    block = DenseResidualBlock(3, skip=2, shortcut="projection", out_features=4, rng=0)
    assert [n for n, _ in block.children()] == ["fc1", "act1", "fc2", "act2", "shortcut"]
    assert repr(block).splitlines()[0] == ("DenseResidualBlock(3, skip=2, activation='relu', "
                                           "shortcut='projection', out_features=4")
    assert "(shortcut): Dense(3, 4, bias=False)" in repr(block)


def test_float32_by_default(rng):
    block = DenseResidualBlock(FEATURES, rng=0)
    assert all(p.dtype == np.float32 for _, p in block.named_parameters())
    assert block(rng.standard_normal((2, FEATURES)).astype(np.float32)).dtype == np.float32


# -- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"skip": 0}, ValueError, r"^DenseResidualBlock: expected skip one of 1, 2, 3, got 0\.$"),
    ({"skip": 4}, ValueError, r"^DenseResidualBlock: expected skip one of 1, 2, 3, got 4\.$"),
    ({"activation": "softmax"}, ValueError,
     r"^DenseResidualBlock: expected activation one of 'relu', 'leaky_relu', 'sigmoid', "
     r"'tanh', 'identity', got 'softmax'\.$"),
    ({"shortcut": "A"}, ValueError,
     r"^DenseResidualBlock: expected shortcut one of 'identity', 'projection', None, "
     r"got 'A'\.$"),
    ({"out_features": 4}, ValueError,
     r"^DenseResidualBlock: expected out_features == features for an identity shortcut, "
     r"got features=3, out_features=4\. Use shortcut=\"projection\""),
    ({"out_features": 0, "shortcut": "projection"}, ValueError,
     r"^DenseResidualBlock: expected out_features >= 1, got out_features=0\.$"),
    ({"rng": "seed"}, TypeError, r"^rng: expected None, an int seed or np\.random\.Generator"),
], ids=["skip0", "skip4", "activation", "shortcut", "identity-width-change", "out0", "rng"])
def test_constructor_errors(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        DenseResidualBlock(3, **kwargs)


@pytest.mark.parametrize("features, error, pattern", [
    (0, ValueError, r"^DenseResidualBlock: expected features >= 1, got features=0\.$"),
    (3.0, TypeError, r"^DenseResidualBlock: expected features to be an int, got 3\.0\.$"),
])
def test_bad_feature_count(features, error, pattern):
    with pytest.raises(error, match=pattern):
        DenseResidualBlock(features)


@pytest.mark.parametrize("skip", [True, 2.0])
def test_non_int_skip_is_a_type_error(skip):
    with pytest.raises(TypeError, match=r"^DenseResidualBlock: expected skip"):
        DenseResidualBlock(3, skip=skip, rng=0)


def test_zero_init_is_the_old_name_of_zero_init_residual():
    with pytest.warns(DeprecationWarning, match=r"renamed zero_init_residual"):
        old = DenseResidualBlock(3, zero_init=True, rng=0)
    new = DenseResidualBlock(3, zero_init_residual=True, rng=0)
    for name, value in new.named_parameters():
        np.testing.assert_array_equal(dict(old.named_parameters())[name], value)
    assert not np.any(new.fc2.params["W"])


@pytest.mark.parametrize("x, error, pattern", [
    (np.zeros((2, 4)), ValueError, r"^DenseResidualBlock\(3, skip=2, activation='relu', "
                                   r"shortcut='identity'\)\.forward: expected x of shape "
                                   r"\(N, 3\), got \(2, 4\)\.$"),
    (np.zeros((2, 3, 1)), ValueError, r"\.forward: expected x of shape \(N, 3\), "
                                      r"got \(2, 3, 1\)\.$"),
    (np.zeros((2, 3), dtype=np.int32), TypeError,
     r"\.forward: expected a floating-point array, got dtype int32\."),
], ids=["features", "3d", "int"])
def test_forward_errors(x, error, pattern):
    with pytest.raises(error, match=pattern):
        DenseResidualBlock(3, rng=0)(x)


def test_intermediates_and_gradients_before_forward():
    block = DenseResidualBlock(3, rng=0)
    with pytest.raises(RuntimeError, match=r"^DenseResidualBlock\.intermediates: expected "
                                           r"forward to have run first, got nothing recorded\. "
                                           r"Call block\.forward\(x\) first\.$"):
        block.intermediates()
    with pytest.raises(RuntimeError, match=r"^DenseResidualBlock\.gradients: expected "
                                           r"backward to have run first"):
        block.gradients()
    with pytest.raises(RuntimeError, match=r"backward: expected forward to have run first"):
        block.backward(np.ones((2, 3)))


# -- convolutional blocks -----------------------------------------------------------

CONV_SHORTCUTS = ["A", "B", "C", None]


def conv_block(kind, c_in, c_out, stride, shortcut, variant="post", rng=0):
    if kind == "basic":
        return BasicBlock(c_in, c_out, stride=stride, shortcut=shortcut, variant=variant, rng=rng)
    if kind == "preact":
        return PreActBlock(c_in, c_out, stride=stride, shortcut=shortcut, rng=rng)
    return Bottleneck(c_in, 2, c_out, stride=stride, shortcut=shortcut, variant=variant, rng=rng)


@pytest.mark.parametrize("kind", ["basic", "preact", "bottleneck"])
@pytest.mark.parametrize("shortcut", CONV_SHORTCUTS)
@pytest.mark.parametrize("c_out,stride", [(3, 1), (5, 2)])
def test_conv_block_gradient_check(kind, shortcut, c_out, stride, rng):
    block = conv_block(kind, 3, c_out, stride, shortcut)
    x = rng.standard_normal((2, 3, 5, 5))
    check_gradients(block, x).assert_ok()


@pytest.mark.parametrize("kind", ["basic", "bottleneck"])
@pytest.mark.parametrize("shortcut", CONV_SHORTCUTS)
def test_post_block_output_is_g_of_sum(kind, shortcut, rng):
    block = conv_block(kind, 4, 6, 2, shortcut).astype(np.float64)
    out = block(rng.standard_normal((2, 4, 7, 7)))
    v = block.intermediates()
    k = block.skip
    assert out.shape == (2, 6, 4, 4)
    expected = v[f"z_l{k}"] + (v["shortcut"] if shortcut is not None else 0)
    np.testing.assert_array_equal(v[f"a_l{k}"], np.maximum(expected, 0))
    assert ("shortcut" in v) == (shortcut is not None)
    for key, value in v.items():
        assert key in block.LABELS
        assert value.shape[0] == 2


def test_basic_block_intermediates_in_order_with_shapes(rng):
    block = BasicBlock(4, 8, stride=2, shortcut="B", rng=0)
    block(rng.standard_normal((2, 4, 6, 6)).astype(np.float32))
    shapes = {key: value.shape for key, value in block.intermediates().items()}
    assert list(shapes) == ["a_l", "z_l1", "a_l1", "z_l2", "shortcut", "a_l2"]
    assert shapes["a_l"] == (2, 4, 6, 6)
    assert all(shapes[k] == (2, 8, 3, 3) for k in ["z_l1", "a_l1", "z_l2", "shortcut", "a_l2"])
    np.testing.assert_array_equal(block.intermediates()["a_l1"],
                                  np.maximum(block.intermediates()["z_l1"], 0))


def test_preact_block_has_nothing_after_the_addition(rng):
    block = PreActBlock(4, 4, shortcut="identity", rng=0).astype(np.float64)
    x = rng.standard_normal((2, 4, 5, 5))
    out = block(x)
    v = block.intermediates()
    assert list(v) == ["a_l", "h_l", "z_l1", "h_l1", "z_l2", "shortcut", "a_l2"]
    np.testing.assert_array_equal(out, v["z_l2"] + x)
    assert (out < 0).any()                     # no ReLU after the add
    dout = rng.standard_normal(out.shape)
    block.backward(dout)
    g = block.gradients()
    np.testing.assert_array_equal(g["da_l_shortcut"], dout)   # the identity path is clean
    np.testing.assert_allclose(g["da_l"], g["da_l_shortcut"] + g["da_l_branch"])


def test_preact_projection_is_fed_the_preactivated_input(rng):
    block = PreActBlock(4, 8, stride=2, shortcut="B", rng=0).astype(np.float64)
    block(rng.standard_normal((2, 4, 6, 6)))
    v = block.intermediates()
    projection = block.shortcut
    expected = projection.bn.forward(projection.conv.forward(v["h_l"]))
    np.testing.assert_allclose(v["shortcut"], expected, rtol=1e-12)
    assert block.shortcut_from_h


@pytest.mark.parametrize("kind", ["basic", "preact", "bottleneck"])
@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_conv_gradient_split_adds_up(kind, shortcut, rng):
    block = conv_block(kind, 3, 6, 2, shortcut).astype(np.float64)
    out = block(rng.standard_normal((2, 3, 6, 6)))
    dx = block.backward(rng.standard_normal(out.shape))
    g = block.gradients()
    np.testing.assert_allclose(g["da_l"], g["da_l_shortcut"] + g["da_l_branch"], atol=1e-12)
    np.testing.assert_array_equal(dx, g["da_l"])
    assert np.abs(g["da_l_shortcut"]).max() > 0


def test_shortcut_parameter_counts():
    counts = {sc: BasicBlock(16, 32, stride=2, shortcut=sc, rng=0).num_parameters()
              for sc in CONV_SHORTCUTS}
    branch = 16 * 32 * 9 + 32 * 32 * 9 + 2 * 2 * 32
    assert counts["A"] == branch and counts[None] == branch
    assert counts["B"] == counts["C"] == branch + 16 * 32 + 2 * 32
    same = {sc: BasicBlock(16, 16, shortcut=sc, rng=0).num_parameters() for sc in CONV_SHORTCUTS}
    assert same["A"] == same["B"] == same[None] == 16 * 16 * 9 * 2 + 4 * 16
    assert same["C"] == same["B"] + 16 * 16 + 2 * 16


def test_plain_twin_has_same_branch_weights():
    residual = BasicBlock(4, 8, stride=2, shortcut="B", rng=3)
    plain = BasicBlock(4, 8, stride=2, shortcut=None, rng=3)
    for name in ["conv1", "conv2"]:
        np.testing.assert_array_equal(getattr(residual, name).params["W"],
                                      getattr(plain, name).params["W"])


def test_zero_init_residual_starts_as_relu_of_shortcut(rng):
    block = BasicBlock(4, 4, shortcut="identity", zero_init_residual=True, rng=0)
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(block(x), np.maximum(x, 0), atol=1e-6)


def test_identity_shortcut_across_shape_change_names_the_fix():
    with pytest.raises(ValueError, match=r"BasicBlock: expected the same shape .* "
                                         r"got in_channels=16, out_channels=32, stride=2\. "
                                         r'Use shortcut="A"'):
        BasicBlock(16, 32, stride=2, shortcut="identity")


def test_conv_block_errors(rng):
    block = BasicBlock(4, 4, rng=0)
    with pytest.raises(ValueError, match=r"BasicBlock\(4, 4, shortcut='B'\)\.forward: "
                                         r"expected x of shape \(N, 4, H, W\), got \(2, 3, 5, 5\)"):
        block(np.zeros((2, 3, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"got \(2, 4, 5\)"):
        block(np.zeros((2, 4, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="shortcut one of"):
        BasicBlock(4, 4, shortcut="D")
    with pytest.raises(ValueError, match="stride >= 1"):
        BasicBlock(4, 4, stride=0)
    with pytest.raises(ValueError, match="variant one of"):
        Bottleneck(4, 2, 4, variant="middle")
    with pytest.raises(RuntimeError, match="forward to have run first"):
        BasicBlock(4, 4).intermediates()


# -- the written-out passes: equal to the loop over k, and readable ---------------------------

def run_pass(block, x, dout, forward, backward):
    """Intermediates, gradients and parameter gradients of one pass, as copies."""
    out = forward(block, x)
    dx = backward(block, dout)
    return (out, dx, block.intermediates(), block.gradients(),
            {name: g.copy() for name, g in block.named_grads()})


def assert_same_pass(block, x, rng):
    """block's own forward/backward against ResidualBlock's loop: identical numbers."""
    dout = rng.standard_normal(block(x).shape)
    own = run_pass(block, x, dout, type(block).forward, type(block).backward)
    loop = run_pass(block, x, dout, ResidualBlock.forward, ResidualBlock.backward)
    np.testing.assert_array_equal(own[0], loop[0])
    np.testing.assert_array_equal(own[1], loop[1])
    for mine, theirs in zip(own[2:], loop[2:]):
        assert list(mine) == list(theirs)                      # same keys, same order
        for key in mine:
            np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)


@pytest.mark.parametrize("skip, activation, shortcut",
                         list(itertools.product(SKIPS, ["relu", "tanh"], SHORTCUTS)))
def test_dense_block_pass_equals_the_loop(skip, activation, shortcut, rng):
    block = make_block(skip, activation, shortcut)
    assert_same_pass(block, rng.standard_normal((5, FEATURES)), rng)


GEOMETRIES = [(shortcut, c_out, stride) for shortcut in ["identity", "A", "B", "C", None]
              for c_out, stride in [(3, 1), (5, 2)]
              if shortcut != "identity" or (c_out, stride) == (3, 1)]   # identity: same shape


@pytest.mark.parametrize("kind", ["basic", "basic-pre", "preact", "bottleneck", "bottleneck-pre"])
@pytest.mark.parametrize("shortcut, c_out, stride", GEOMETRIES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_conv_block_pass_equals_the_loop(kind, shortcut, c_out, stride, mode, rng):
    name, _, variant = kind.partition("-")
    block = conv_block(name, 3, c_out, stride, shortcut, variant=variant or "post")
    block.astype(np.float64).train(mode == "train")
    assert_same_pass(block, rng.standard_normal((2, 3, 6, 5)), rng)


def code_lines(function):
    """The lines of a function's body without its docstring, blank lines or comments."""
    source = inspect.getsource(function)
    doc = function.__doc__ or ""
    body = source.split('"""', 2)[-1] if doc else source.split("\n", 1)[1]
    return [line.strip() for line in body.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def order_of(names, lines):
    """For each name, the index of the first line that uses self.<name> (-1 if none).

    Names on one line count as in order: z_l1 = self.bn1(self.conv1(a_l)) applies conv1
    first."""
    return [next((i for i, line in enumerate(lines) if f"self.{name}" in line), -1)
            for name in names]


@pytest.mark.parametrize("block_class, names", [
    (BasicBlock, ["conv1", "bn1", "relu1", "conv2", "bn2", "shortcut", "relu2"]),
    (PreActBlock, ["bn1", "relu1", "conv1", "bn2", "relu2", "conv2", "shortcut"]),
    (DenseResidualBlock, ["fc1", "act1", "fc2", "shortcut", "act2"]),
])
def test_forward_reads_as_the_equations(block_class, names):
    lines = code_lines(block_class.forward)
    positions = order_of(names, lines)
    assert all(p >= 0 for p in positions), dict(zip(names, positions))
    assert positions == sorted(positions), dict(zip(names, positions))
    assert len(lines) <= 30
    text = "\n".join(lines)
    for quantity in ["z_l1 = self.", "z_l2 = self.", "shortcut = self.shortcut(", "a_l2 ="]:
        assert quantity in text, quantity
    assert "self._record(a_l=a_l" in text


@pytest.mark.parametrize("block_class, names", [
    (BasicBlock, ["relu2", "bn2", "conv2", "relu1", "bn1", "conv1", "shortcut"]),
    (PreActBlock, ["conv2", "relu2", "bn2", "conv1", "shortcut"]),
    (DenseResidualBlock, ["act2", "fc2", "act1", "fc1", "shortcut"]),
])
def test_backward_reads_in_reverse_order(block_class, names):
    lines = code_lines(block_class.backward)
    positions = order_of(names, lines)
    assert all(p >= 0 for p in positions), dict(zip(names, positions))
    assert positions == sorted(positions), dict(zip(names, positions))
    assert len(lines) <= 30
    assert "da_l = da_l_shortcut + da_l_branch" in lines


@pytest.mark.parametrize("block_class", [BasicBlock, PreActBlock])
def test_a_block_pass_runs_few_library_functions(block_class, library_functions):
    """Stepping through one pass under reference_kernels() stays inside a few functions."""
    from resnet_np import reference_kernels
    block = block_class(8, 8, shortcut="B", rng=0)
    x = np.random.default_rng(0).standard_normal((2, 8, 6, 6)).astype(np.float32)
    with reference_kernels():
        forward = library_functions(block.forward, x)
        backward = library_functions(block.backward, np.ones((2, 8, 6, 6), dtype=np.float32))
    assert len(forward) <= 18, sorted(forward)
    assert len(backward) <= 18, sorted(backward)
    assert f"{block_class.__name__}.forward" in forward and "im2col" in forward
    assert "col2im" in backward
