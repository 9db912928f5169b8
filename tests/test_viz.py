"""viz: gradient-norm curves, one block's pass, training history (Agg backend, no window)."""
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
