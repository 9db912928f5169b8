"""inspect: step_through, gradient_norms, identity_path_report, linearity_probe, units."""
import numpy as np
import pytest

import resnet_np as rn
from resnet_np.inspect import StepThrough, units
from resnet_np.inspect.trace import BLOCK_KINDS, example_block, run_block


def small_resnet(**kwargs):
    return rn.resnet_cifar(8, width=4, rng=0, **kwargs).astype(np.float64)


def images(rng, n=4):
    return rng.standard_normal((n, 3, 8, 8))


def no_hooks_left(model):
    return not any("forward" in layer.__dict__ or "backward" in layer.__dict__
                   for _, layer in model.named_layers())


# -- units ------------------------------------------------------------------------------------
def test_units_open_containers_of_blocks_only():
    assert [n for n, _ in units(small_resnet())] == ["stem", "stage1.0", "stage2.0", "stage3.0",
                                                     "pool", "fc"]
    assert [n for n, _ in units(small_resnet(variant="pre"))][-3:] == ["final", "pool", "fc"]
    block = rn.BasicBlock(2, 2, rng=0)
    assert units(block) == [("BasicBlock", block)]


# -- step_through -----------------------------------------------------------------------------
def test_step_through_model_rows_in_order_with_block_intermediates(rng):
    model, x = small_resnet(), images(rng)
    step = rn.step_through(model, x)
    names = [r["name"] for r in step.rows]
    assert names[:4] == ["stem", "stem.conv", "stem.bn", "stem.relu"]
    i = names.index("stage2.0")
    assert names[i + 1:i + 8] == [f"stage2.0.{k}" for k in
                                  ("a_l", "z_l1", "a_l1", "z_l2", "shortcut", "a_l2")] + ["stage3"]
    assert "stage2.0.conv1" not in names and names[-2:] == ["pool", "fc"]
    assert np.array_equal(step.output, model.forward(x))
    block = model.stage2[0]
    z = block.intermediates()["z_l1"]
    row = step.row("stage2.0.z_l1")
    assert row["label"] == "z^[l+1]" and row["kind"] == "intermediate" and row["depth"] == 2
    assert row["shape"] == z.shape == (4, 8, 4, 4)
    assert row["mean"] == pytest.approx(z.mean()) and row["std"] == pytest.approx(z.std())
    relu = step.row("stem.relu")
    assert relu["zeros"] == pytest.approx(np.mean(model.stem.relu.forward(model.stem.bn.forward(
        model.stem.conv.forward(x))) == 0))
    assert step.row("stage1.0")["kind"] == "block" and step.row("stage1")["kind"] == "container"
    assert no_hooks_left(model)


def test_step_through_keeps_the_forward_for_backward(rng):
    model, x = small_resnet(), images(rng)
    rn.step_through(model, x)
    dx = model.backward(np.ones((4, 10)))
    assert dx.shape == x.shape


def test_step_through_lone_block_gives_its_intermediates(rng):
    block = rn.DenseResidualBlock(3, skip=3, activation="tanh", rng=0)
    x = rng.standard_normal((5, 3))
    step = rn.step_through(block, x)
    assert [r["name"] for r in step.rows] == list(block.intermediates())
    assert step.row("a_l3")["label"] == block.LABELS["a_l3"]
    text = str(step)
    assert "a^[l+3] = g(z^[l+3] + shortcut)" in text and text.splitlines()[0].startswith("name")
    assert repr(step) == text and isinstance(step, StepThrough)


def test_step_through_errors(rng):
    with pytest.raises(TypeError, match="step_through: expected a Layer"):
        rn.step_through(lambda x: x, rng.standard_normal((2, 3)))
    with pytest.raises(TypeError, match="^step_through: expected a floating-point array, got dtype int64"):
        rn.step_through(rn.Dense(3, 2, rng=0), np.ones((2, 3), dtype=np.int64))
    step = rn.step_through(rn.Dense(3, 2, rng=0), rng.standard_normal((2, 3)))
    assert [r["name"] for r in step.rows] == ["Dense"]
    with pytest.raises(KeyError, match="expected one of the row names, got 'nope'"):
        step.row("nope")


# -- gradient_norms ---------------------------------------------------------------------------
def test_gradient_norms_match_a_manual_backward(rng):
    model, x, y = small_resnet(), images(rng), np.array([0, 1, 2, 3])
    loss = rn.SoftmaxCrossEntropy()
    norms = rn.gradient_norms(model, x, y, loss)
    assert list(norms) == ["stem", "stage1.0", "stage2.0", "stage3.0", "pool", "fc"]
    block = model.stage2[0]
    assert norms["stage2.0"]["da"] == pytest.approx(np.linalg.norm(block.gradients()["da_l"]))
    dW = np.sqrt(sum(np.sum(g ** 2) for _, g in block.named_grads()))
    assert norms["stage2.0"]["dW"] == pytest.approx(dW)
    assert norms["pool"]["dW"] == 0.0
    loss.forward(model.forward(x), y)
    dlogits = loss.backward()
    assert norms["fc"]["da"] == pytest.approx(np.linalg.norm(dlogits @ model.fc.params["W"]))
    assert norms["stem"]["da"] == pytest.approx(np.linalg.norm(model.backward(dlogits)))
    assert no_hooks_left(model)


def test_gradient_norms_residual_mlp_and_errors(rng):
    net = rn.residual_mlp(3, 5, num_blocks=2, num_classes=2, rng=0)
    x, y = rng.standard_normal((6, 3)).astype(np.float32), np.array([0, 1] * 3)
    norms = rn.gradient_norms(net, x, y, rn.SoftmaxCrossEntropy())
    assert list(norms) == ["stem", "stem_act", "blocks.0", "blocks.1", "head"]
    assert all(v["da"] > 0 for v in norms.values()) and norms["stem_act"]["dW"] == 0.0
    with pytest.raises(TypeError, match="expected a loss with forward"):
        rn.gradient_norms(net, x, y, lambda z, t: 0.0)


# -- identity_path_report ---------------------------------------------------------------------
def verdicts(report):
    return {b["name"]: b["verdict"] for b in report.blocks}


def test_identity_path_post_activation():
    report = rn.identity_path_report(rn.resnet_cifar(20, rng=0))
    v = verdicts(report)
    assert len(v) == 9 and v["stage1.0"] == "through g" and v["stage3.2"] == "through g"
    assert v["stage2.0"] == v["stage3.0"] == "changed by zero-pad"
    assert report.linear_path is False
    assert any(r.startswith("stem (Conv2d -> BatchNorm2d -> ReLU) applies ReLU") for r in report.reasons)
    assert any(r.startswith("post-activation blocks apply g after each addition") for r in report.reasons)
    assert report.reasons[-1] == "the classifier fc is affine (linear), but what feeds it is not"
    assert "No input-to-output path is purely linear" in str(report)


def test_identity_path_pre_activation():
    report = rn.identity_path_report(rn.resnet_cifar(20, variant="pre", shortcut="B", rng=0))
    v = verdicts(report)
    assert [v[f"stage{s}.{b}"] for s in (1, 2, 3) for b in (1, 2)] == ["identity"] * 6
    assert v["stage2.0"] == v["stage3.0"] == "changed by projection"
    note = report.blocks[3]["note"]
    assert "g(BN(a^[l]))" in note and "Projection" in note
    assert report.linear_path is False
    assert not any(r.startswith("stem") for r in report.reasons)        # the stem is a conv alone
    assert any(r.startswith("final (BatchNorm2d -> ReLU) applies ReLU before pool") for r in report.reasons)
    assert any("stage2.0, stage3.0" in r and "g(BN(a^[l]))" in r for r in report.reasons)
    assert report.spans[0] == ("stage1.0", "stage1.2")


def test_identity_path_plain_twin_and_option_c():
    plain = rn.identity_path_report(rn.resnet_cifar(8, residual=False, rng=0))
    assert set(verdicts(plain).values()) == {"no shortcut"} and not plain.linear_path
    assert any(r.startswith("no shortcut") for r in plain.reasons)
    option_c = rn.identity_path_report(rn.resnet_cifar(8, shortcut="C", rng=0))
    assert set(verdicts(option_c).values()) == {"changed by projection"}


def test_identity_path_residual_mlp():
    relu = rn.identity_path_report(rn.residual_mlp(4, 8, 3, 2, rng=0))
    assert set(verdicts(relu).values()) == {"through g"} and relu.linear_path is False
    assert relu.reasons[0] == "stem_act (ReLU) applies ReLU before blocks.0"
    linear = rn.identity_path_report(rn.residual_mlp(4, 8, 3, 2, activation="identity", rng=0))
    assert set(verdicts(linear).values()) == {"identity"} and linear.linear_path is True
    assert "A purely linear input-to-output path exists" in str(linear)


def test_identity_path_lone_blocks_and_errors():
    proj = rn.identity_path_report(rn.DenseResidualBlock(3, shortcut="projection", out_features=4))
    assert verdicts(proj) == {"DenseResidualBlock": "changed by projection"}
    pre = rn.identity_path_report(rn.PreActBlock(4, 4, shortcut="identity", rng=0))
    assert pre.linear_path is True and pre.blocks[0]["verdict"] == "identity"
    with pytest.raises(TypeError, match="identity_path_report: expected a Layer"):
        rn.identity_path_report("resnet20")


# -- linearity_probe --------------------------------------------------------------------------
def test_linearity_probe_affine_blocks_score_one(rng):
    x = rng.standard_normal((40, 4))
    probe = rn.linearity_probe(rn.DenseResidualBlock(4, skip=2, activation="identity", rng=0), x)
    assert probe["r2"] == pytest.approx(1.0) and probe["frozen_fraction"] is None
    assert probe["units"] == 0 and probe["batch"] == 40 and probe["in_dim"] == 4
    block = rn.DenseResidualBlock(4, skip=2, rng=0)
    for fc in (block.fc1, block.fc2):
        fc.params["b"][...] = 100.0                  # every ReLU always on: one affine map
    probe = rn.linearity_probe(block, x)
    assert probe["r2"] == pytest.approx(1.0) and probe["frozen_fraction"] == 1.0
    assert probe["always_on"] + probe["always_off"] == 1.0 and probe["units"] == 8


def test_linearity_probe_relu_r2_and_frozen_against_reference(rng):
    x = rng.standard_normal((200, 1))
    probe = rn.linearity_probe(rn.ReLU(), x)
    assert probe["r2"] == pytest.approx(np.corrcoef(x[:, 0], np.maximum(x[:, 0], 0))[0, 1] ** 2)
    block = rn.DenseResidualBlock(3, skip=2, rng=1).astype(np.float64)
    x = rng.standard_normal((12, 3))
    probe = rn.linearity_probe(block, x)
    v = block.intermediates()
    pre = np.hstack([v["z_l1"], v["z_l2"] + v["a_l"]])       # inputs of act1 and act2
    on = pre > 0
    assert probe["frozen_fraction"] == pytest.approx(np.mean(on.all(0) | (~on).all(0)))
    assert 0 < probe["r2"] < 1 and probe["r2_adjusted"] < probe["r2"]


def test_linearity_probe_conv_block_and_sigmoid(rng):
    block = rn.BasicBlock(2, 2, shortcut="identity", rng=0).astype(np.float64)
    probe = rn.linearity_probe(block, rng.standard_normal((30, 2, 3, 3)))
    assert probe["in_dim"] == 18 and probe["units"] == 36 and 0 < probe["r2"] < 1
    sig = rn.linearity_probe(rn.DenseResidualBlock(3, activation="sigmoid", rng=0),
                             rng.standard_normal((20, 3)))
    assert sig["frozen_fraction"] is None and sig["always_on"] is None


def test_linearity_probe_errors(rng):
    block = rn.DenseResidualBlock(4, rng=0)
    with pytest.raises(ValueError, match=r"expected a batch of at least 6 examples \(input "
                                         r"dimension 4 \+ 2\), got 5 examples"):
        rn.linearity_probe(block, rng.standard_normal((5, 4)))
    with pytest.raises(TypeError, match="^linearity_probe: expected x to be a NumPy array, got list"):
        rn.linearity_probe(block, [[0.0] * 4] * 8)
    with pytest.raises(TypeError, match="linearity_probe: expected a Layer"):
        rn.linearity_probe(np.tanh, rng.standard_normal((8, 4)))


# -- trace: the block `python -m resnet_np trace` builds and runs -----------------------
@pytest.mark.parametrize("kind", BLOCK_KINDS)
@pytest.mark.parametrize("shortcut", ["identity", "projection", "none"])
def test_example_block_runs_a_seeded_pass(kind, shortcut):
    block = example_block(kind, features=4, shortcut=shortcut, rng=0)
    out = run_block(block, rng=3, batch=2)
    v, g = block.intermediates(), block.gradients()
    assert v["a_l"].shape[0] == 2 and ("shortcut" in v) == (shortcut != "none")
    assert out.shape[1] == (4 if shortcut != "projection" else 6 if kind == "dense" else 8)
    np.testing.assert_array_equal(g["da_l"], g["da_l_shortcut"] + g["da_l_branch"])
    again = example_block(kind, features=4, shortcut=shortcut, rng=0)
    run_block(again, rng=3, batch=2)
    np.testing.assert_array_equal(again.gradients()["da_l"], g["da_l"])   # seeded: the same


def test_example_block_errors():
    with pytest.raises(ValueError, match="^example_block: expected kind one of 'dense', 'basic'"):
        example_block("wide")
    choices = "expected shortcut one of 'identity', 'projection', 'none', got 'A'"
    with pytest.raises(ValueError, match=choices):
        example_block("basic", shortcut="A")
