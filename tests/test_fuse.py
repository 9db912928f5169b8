"""resnet_np.fuse: BatchNorm folded into the convolutions, for inference only."""
import numpy as np
import pytest

import resnet_np as rn
from resnet_np.fuse import (FusedBasicBlock, FusedConv, FusedPreActBlock, FusedScaleShift,
                            bn_scale_shift, fuse)


def randomised(model, rng):
    """Every BatchNorm with non-trivial gamma, beta and running statistics, in eval mode."""
    for _, layer in model.named_layers():
        if isinstance(layer, rn.BatchNorm2d):
            C = layer.num_features
            layer.params["gamma"][:] = rng.uniform(0.5, 2.0, C)
            layer.params["beta"][:] = rng.normal(0.0, 1.0, C)
            layer.buffers["running_mean"][:] = rng.normal(0.0, 1.0, C)
            layer.buffers["running_var"][:] = rng.uniform(0.5, 2.0, C)
    return model.eval()


def rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("variant", ["post", "pre"])
@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_fused_logits_equal_the_eval_model(rng, variant, shortcut):
    model = randomised(rn.resnet_cifar(8, width=4, variant=variant, shortcut=shortcut,
                                       rng=0).astype(np.float64), rng)
    x = rng.standard_normal((3, 3, 16, 16))
    fused = model.fuse()
    assert rel(fused(x), model(x)) <= 1e-10                    # measured ~5e-16
    with rn.reference_kernels():
        assert rel(fused(x), model(x)) <= 1e-10
    Block = FusedPreActBlock if variant == "pre" else FusedBasicBlock
    assert [type(b) for b in fused.stage2] == [Block]
    assert not any(isinstance(layer, rn.BatchNorm2d) for _, layer in fused.named_layers())


def test_resnet20_float32(rng):
    model = randomised(rn.resnet_cifar(20, rng=0), rng)
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    out = model.fuse()(x)
    assert out.dtype == np.float32 and rel(out, model(x)) <= 1e-5


@pytest.mark.parametrize("variant", ["post", "pre"])
def test_plain_twin(rng, variant):
    model = randomised(rn.resnet_cifar(8, width=4, variant=variant, residual=False,
                                       rng=0).astype(np.float64), rng)
    x = rng.standard_normal((2, 3, 8, 8))
    assert rel(fuse(model)(x), model(x)) <= 1e-10


def test_other_layers_are_copied_unfused(rng):
    # a Bottleneck is not fused: it runs as a copy in eval mode, with the same output
    model = randomised(rn.Sequential(rn.Bottleneck(4, 2, 4, rng=0), rn.ReLU()).astype(np.float64),
                       rng)
    x = rng.standard_normal((2, 4, 5, 5))
    expected = model(x)                                        # fills the caches and records
    fused = model.fuse()
    assert fused[0] is not model[0] and fused[0].cache == {}
    assert fused[0]._forward_values == {}                      # the records are not copied
    assert rel(fused(x), expected) <= 1e-12


def test_the_model_is_left_unchanged(rng):
    model = randomised(rn.resnet_cifar(8, width=4, rng=0), rng).train()
    before = model.state_dict()
    fused = model.fuse()
    fused.stage1[0].conv1.params["W"][...] = 0
    assert model.training and all(np.array_equal(v, before[k])
                                  for k, v in model.state_dict().items())


def test_fold_of_one_conv_and_batchnorm(rng):
    conv = rn.Conv2d(2, 3, 3, stride=2, padding=1, rng=0).astype(np.float64)
    conv.params["b"][:] = rng.normal(size=3)
    bn = randomised(rn.BatchNorm2d(3).astype(np.float64), rng)
    x = rng.standard_normal((2, 2, 7, 7))
    fused = FusedConv(conv, bn, relu=True)
    assert rel(fused(x), np.maximum(bn(conv(x)), 0)) <= 1e-12
    scale, shift = bn_scale_shift(bn)
    np.testing.assert_allclose(fused.params["b"], conv.params["b"] * scale + shift, rtol=1e-12)
    assert repr(fused) == "FusedConv(2, 3, kernel_size=3, stride=2, padding=1, relu=True)"


def test_scale_shift_and_relu(rng):
    bn = randomised(rn.BatchNorm2d(3).astype(np.float64), rng)
    x = rng.standard_normal((2, 3, 4, 4))
    assert rel(FusedScaleShift(bn, relu=True)(x), np.maximum(bn(x), 0)) <= 1e-12
    assert repr(FusedScaleShift(bn)) == "FusedScaleShift(3)"


def test_fused_layers_keep_no_cache(rng):
    fused = randomised(rn.resnet_cifar(8, width=4, rng=0), rng).fuse()
    fused(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    kinds = (FusedConv, FusedScaleShift, FusedBasicBlock)
    layers = [layer for _, layer in fused.named_layers() if isinstance(layer, kinds)]
    assert len(layers) == 1 + 3 * 3 and all(layer.cache == {} for layer in layers)


def test_backward_says_it_is_inference_only(rng):
    fused = rn.resnet_cifar(8, width=4, rng=0).fuse()
    fused(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    with pytest.raises(RuntimeError, match=r"FusedBasicBlock.backward: expected a layer of a "
                                           r"model that trains, got a fused, inference-only copy"):
        fused.stage1[0].backward(np.ones((2, 4, 8, 8), dtype=np.float32))


def test_wrong_input_channels():
    fused = rn.resnet_cifar(8, width=4, rng=0).fuse()
    with pytest.raises(ValueError, match=r"FusedConv\(3, 4, kernel_size=3, padding=1, relu=True\)"
                                         r"\.forward: expected x of shape \(N, 3, H, W\)"):
        fused(np.ones((2, 1, 8, 8), dtype=np.float32))


# -- the fused model splits a batch over the cores -----------------------------------------
@pytest.mark.parametrize("batch", [1, 2, 5, 7])
def test_split_batch_gives_the_plain_forward(rng, batch):
    """FusedSequential cuts the batch in one part per core; the logits are those of the
    same layers run on the whole batch (float64), whatever the batch size."""
    from resnet_np.fuse import FusedSequential
    fused = randomised(rn.resnet_cifar(8, width=4, rng=0).astype(np.float64), rng).fuse()
    assert isinstance(fused, FusedSequential) and isinstance(fused.stage1, FusedSequential)
    x = rng.standard_normal((batch, 3, 8, 8))
    whole = rn.Sequential.forward(fused, x)
    out = fused(x)
    assert out.shape == whole.shape and rel(out, whole) <= 1e-12


def test_split_batch_runs_each_part_in_its_own_share(monkeypatch):
    """Inside a part the convolution's chunks run in the calling thread (no nested use of
    the busy pool), and every example comes back once, in order."""
    from resnet_np.layers import _fast_conv
    if _fast_conv._pool_size() == 1 or _fast_conv._blas is None:
        pytest.skip("one core, or BLAS threads not settable: nothing is split")
    seen = []

    def forward(part):
        seen.append((len(part), _fast_conv._inside_share()))
        return part * 2

    x = np.arange(10.0)
    np.testing.assert_array_equal(_fast_conv.split_batch(forward, x), 2 * x)
    assert sorted(n for n, _ in seen) == [5, 5] and all(inside for _, inside in seen)
    assert not _fast_conv._inside_share()                      # reset after the split
    seen.clear()                                               # a batch of one is not split
    np.testing.assert_array_equal(_fast_conv.split_batch(forward, x[:1]), 2 * x[:1])
    assert seen == [(1, False)]


def test_a_wrong_input_is_reported_for_the_whole_batch(rng):
    fused = rn.resnet_cifar(8, width=4, rng=0).fuse()
    with pytest.raises(ValueError, match=r"\(6, 4, 8, 8\)"):
        fused(rng.standard_normal((6, 4, 8, 8)).astype(np.float32))
