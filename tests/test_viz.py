"""viz: gradient-norm curves, one block's pass and trace, training history (Agg backend)."""
import re

import matplotlib
import numpy as np
import pytest

import resnet_np as rn
from resnet_np import viz

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt
    plt.close("all")


def norms_of(model, rng):
    x, y = rng.standard_normal((4, 3)), np.array([0, 1, 0, 1])
    return rn.gradient_norms(model, x, y, rn.SoftmaxCrossEntropy())


def test_plot_gradient_norms_one_line_per_model(rng, tmp_path):
    results = {"residual": norms_of(rn.residual_mlp(3, 4, 2, 2, rng=0).astype(np.float64), rng),
               "plain": norms_of(rn.residual_mlp(3, 4, 2, 2, residual=False, rng=0).astype(np.float64), rng)}
    fig = viz.plot_gradient_norms(results, path=tmp_path / "norms.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and [t.get_text() for t in ax.get_legend().get_texts()] == list(results)
    y = ax.lines[0].get_ydata()
    assert np.allclose(y, [v["da"] for v in results["residual"].values()])
    assert [t.get_text() for t in ax.get_xticklabels()] == list(results["residual"])
    assert (tmp_path / "norms.png").stat().st_size > 0
    dW = viz.plot_gradient_norms(results, key="dW").axes[0].lines[0].get_ydata()
    assert np.isnan(dW[1])                      # stem_act has no parameters: 0 is not drawn


def test_plot_gradient_norms_errors():
    with pytest.raises(ValueError, match="plot_gradient_norms: expected key one of 'da', 'dW', got 'dx'"):
        viz.plot_gradient_norms({"m": {}}, key="dx")
    with pytest.raises(TypeError, match="expected a non-empty dict"):
        viz.plot_gradient_norms({})


def test_plot_block_pass_bars_are_rms_and_norms(rng, tmp_path):
    block = rn.DenseResidualBlock(3, rng=0)
    out = block(rng.standard_normal((5, 3)))
    assert len(viz.plot_block_pass(block).axes) == 1          # forward only
    block.backward(np.ones_like(out))
    fig = viz.plot_block_pass(block, path=tmp_path / "pass.png")
    forward, backward = fig.axes
    rms = [np.sqrt(np.mean(v ** 2)) for v in block.intermediates().values()]
    assert np.allclose([p.get_height() for p in forward.patches], rms)
    norms = [np.linalg.norm(v) for v in block.gradients().values()]
    assert np.allclose([p.get_height() for p in backward.patches], norms)
    assert (tmp_path / "pass.png").exists()


def test_plot_history(tmp_path):
    history = rn.History()
    for epoch, loss in enumerate([1.0, 0.5], start=1):
        history.append(epoch=epoch, loss=loss, accuracy=0.5 * epoch)
    fig = viz.plot_history(history, path=tmp_path / "h.png")
    assert len(fig.axes) == 2 and np.allclose(fig.axes[0].lines[0].get_ydata(), [1.0, 0.5])


def test_plot_step_losses_draws_average_and_raw_per_model(tmp_path):
    losses = [2.0, 1.0, 3.0, 2.0]
    fig = viz.plot_step_losses({"a": losses, "b": losses[::-1]}, path=tmp_path / "s.png", smooth=2)
    lines = fig.axes[0].lines
    assert len(lines) == 4 and (tmp_path / "s.png").exists()
    np.testing.assert_allclose(lines[0].get_ydata(), [1.5, 2.0, 2.5])   # moving average of 2
    np.testing.assert_allclose(lines[0].get_xdata(), [2, 3, 4])
    np.testing.assert_allclose(lines[1].get_ydata(), losses)


def test_plot_segmentation_grid_and_accuracy_titles(tmp_path):
    M = np.zeros((3, 4, 4), dtype=np.int64)
    M[:, :2] = 1
    half = M.copy()
    half[:, :, :2] = 1 - half[:, :, :2]                                    # half the pixels wrong
    fig = viz.plot_segmentation(np.ones((3, 3, 4, 4)), M, {"right": M, "half": half},
                                path=tmp_path / "seg.png")
    assert len(fig.axes) == 3 * 4 and (tmp_path / "seg.png").exists()
    assert fig.axes[2].get_title() == "right\n100.0%"
    assert fig.axes[3].get_title() == "half\n50.0%"
    assert fig.axes[7].get_title() == "50.0%"


def test_plot_curve_panels_one_axis_per_panel_shared_y(tmp_path):
    panels = {"relu": {"skip1": [2.3, 1.0, 0.5], "plain": [2.3, 2.0]}, "sigmoid": {"skip1": [2.3, 2.3]}}
    fig = viz.plot_curve_panels(panels, path=tmp_path / "curves.png", ylabel="loss")
    relu, sigmoid = fig.axes
    assert [relu.get_title(), sigmoid.get_title()] == ["relu", "sigmoid"]
    assert list(relu.lines[0].get_xdata()) == [1, 2, 3]
    assert np.allclose(relu.lines[1].get_ydata(), [2.3, 2.0])
    assert relu.get_shared_y_axes().joined(relu, sigmoid)
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_plot_grouped_bars_heights_in_series_order(tmp_path):
    values = {"init": {"skip1": 0.9, "skip2": 0.8, "skip3": 0.7},
              "trained": {"skip2": 0.6, "skip1": 0.95, "skip3": 0.5}}
    fig = viz.plot_grouped_bars(values, path=tmp_path / "bars.png", ylabel="R^2")
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert np.allclose(heights, [0.9, 0.8, 0.7, 0.95, 0.6, 0.5])   # categories in the first series' order
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["skip1", "skip2", "skip3"]
    assert (tmp_path / "bars.png").exists()


def test_plot_error_vs_depth_lines_per_family():
    fig = viz.plot_error_vs_depth([8, 20, 32], {"plain": [0.1, 0.2, 0.4], "residual": [0.1, 0.05, 0.04]})
    plain, residual = fig.axes[0].lines
    assert list(plain.get_xdata()) == [8, 20, 32] and np.allclose(residual.get_ydata(), [0.1, 0.05, 0.04])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["plain", "residual"]


def test_plot_shortcut_params_stacks_branch_and_shortcut(tmp_path):
    path = tmp_path / "params.png"
    fig = viz.plot_shortcut_params({"identity": None, "A": 100, "B": 120},
                                   {"identity": None, "A": 0, "B": 20}, path)
    bars = fig.axes[0].patches
    heights = [bar.get_height() for bar in bars]
    assert heights == [0, 100, 100, 0, 0, 20]          # branch bars, then shortcut bars on top
    assert path.exists()


# -- plot_block_trace ------------------------------------------------------------------
def _numbers(text):
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


def _block_cases():
    return {"dense skip=1": rn.DenseResidualBlock(4, skip=1, rng=0),
            "dense skip=2": rn.DenseResidualBlock(4, skip=2, rng=0),
            "dense skip=3 projection": rn.DenseResidualBlock(4, skip=3, out_features=6,
                                                             shortcut="projection", rng=0),
            "dense plain twin": rn.DenseResidualBlock(4, shortcut=None, rng=0),
            "basic A": rn.BasicBlock(2, 4, stride=2, shortcut="A", rng=0),
            "basic B": rn.BasicBlock(2, 4, stride=2, shortcut="B", rng=0),
            "basic C": rn.BasicBlock(4, 4, shortcut="C", rng=0),
            "basic identity": rn.BasicBlock(4, 4, shortcut="identity", rng=0),
            "basic None": rn.BasicBlock(2, 4, stride=2, shortcut=None, rng=0),
            "preact": rn.PreActBlock(2, 4, stride=2, rng=0),
            "bottleneck post": rn.Bottleneck(4, 2, 8, stride=2, rng=0),
            "bottleneck pre": rn.Bottleneck(4, 2, 8, stride=2, variant="pre", rng=0)}


@pytest.mark.parametrize("name", list(_block_cases()))
def test_plot_block_trace_one_axis_per_node_and_printed_numbers(name, tmp_path):
    block = _block_cases()[name]
    fig = viz.plot_block_trace(block, path=tmp_path / "trace.png")   # runs a seeded pass itself
    assert (tmp_path / "trace.png").stat().st_size > 0
    values, grads = block.intermediates(), block.gradients()
    canvas, nodes = fig.axes[0], fig.axes[1:]
    assert [ax.get_label() for ax in nodes] == list(values)
    for ax in nodes:                          # mean, std, % zeros under each histogram
        v = values[ax.get_label()].astype(np.float64)
        mean, std, zeros = _numbers(ax.get_xlabel())
        assert mean == pytest.approx(v.mean(), rel=5e-3, abs=5e-3 * v.std())
        assert std == pytest.approx(v.std(), rel=5e-3)
        assert zeros == round(100 * np.mean(v == 0))
        assert sum(p.get_height() for p in ax.patches) == v.size      # histogram of every value
    printed = {t.get_gid()[5:]: _numbers(t.get_text())[-1] for t in canvas.texts
               if (t.get_gid() or "").startswith("grad:")}
    assert {"da_l", "da_l_shortcut", "da_l_branch"} <= set(printed)
    for key, number in printed.items():
        assert number == pytest.approx(np.linalg.norm(grads[key]), rel=5e-3, abs=1e-12), key
    residual = "shortcut" in values
    assert sum(t.get_text() == "+" for t in canvas.texts) == residual          # the (+) node
    widths = {p.get_gid(): p.get_linewidth() for p in canvas.patches if p.get_gid()}
    assert ("split:shortcut" in widths) == residual                            # the arc
    if residual:             # arrow widths in proportion to the norms of the split
        ratio = (widths["split:shortcut"] - 0.5) / (widths["split:branch"] - 0.5)
        norms = np.linalg.norm(grads["da_l_shortcut"]) / np.linalg.norm(grads["da_l_branch"])
        assert ratio == pytest.approx(norms, rel=1e-6)


def test_plot_block_trace_draws_the_given_input_or_the_recorded_pass(rng):
    block = rn.DenseResidualBlock(3, rng=0)
    x = rng.standard_normal((5, 3))
    viz.plot_block_trace(block, x=x)
    np.testing.assert_array_equal(block.intermediates()["a_l"], x)
    out = block(2 * x)
    block.backward(np.ones_like(out))
    fig = viz.plot_block_trace(block)                      # a full pass is there: drawn as is
    np.testing.assert_array_equal(block.intermediates()["a_l"], 2 * x)
    assert fig.axes[1].get_label() == "a_l"
    assert viz.plot_block_trace.__module__ == "resnet_np.viz.block_trace"


# -- several seeds (issue 13) --------------------------------------------------------------
def test_plot_seed_curves_band_is_the_t_interval_of_the_mean(tmp_path):
    from resnet_np.viz import plot_seed_curves
    seeds = [[1.0, 0.5, 0.2], [2.0, 1.5, 0.4], [3.0, 1.0, 0.3]]
    fig = plot_seed_curves({"p": {"a": seeds}, "q": {"b": [[1.0, 2.0, 3.0]]}},
                           tmp_path / "c.png", x=[8, 20, 32])
    assert (tmp_path / "c.png").exists()
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.mean(seeds, axis=0))
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [8, 20, 32])
    assert len(ax.lines) == 4                          # the mean and 3 faint seeds
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    half = 4.3027 * np.std(seeds, axis=0, ddof=1) / np.sqrt(3)
    assert band.max() == pytest.approx((np.mean(seeds, axis=0) + half).max())
    assert band.min() == pytest.approx((np.mean(seeds, axis=0) - half).min())
    assert len(fig.axes[1].collections) == 0           # one seed: no band
    assert "3 seeds" in ax.get_legend().get_texts()[0].get_text()


def test_plot_seed_points_error_bars_and_every_seed(tmp_path):
    from resnet_np.viz import plot_seed_points
    values = {"A": {"x": [1.0, 2.0, 3.0], "y": [0.0, 0.0, 0.0]}, "B": {"x": [1.0, 1.0, 1.0],
                                                                     "y": [5.0, 6.0, 7.0]}}
    fig = plot_seed_points(values, tmp_path / "p.png")
    ax = fig.axes[0]
    assert (tmp_path / "p.png").exists()
    means = [list(line.get_ydata()) for line in ax.lines if line.get_marker() == "o"]
    assert means == [[2.0, 0.0], [1.0, 6.0]]
    dots = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections
                           if c.get_offsets().shape[0] == 3])
    assert sorted(dots.tolist()) == sorted(sum((v for s in values.values() for v in s.values()), []))
