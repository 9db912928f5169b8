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


# -- a block's two convolutions in one pass ---------------------------------------------------
def _resnet20_blocks(rng, dtype):
    """The fused blocks of ResNet-20 with one of each shape: 16->16, 16->32 stride 2,
    32->32, 32->64 stride 2, 64->64."""
    fused = randomised(rn.resnet_cifar(20, rng=0).astype(dtype), rng).fuse()
    return [fused.stage1[0], fused.stage2[0], fused.stage2[1], fused.stage3[0], fused.stage3[1]]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chunk_bytes", [1, None])           # one example per chunk, or default
def test_conv_pair_equals_the_two_convolutions_in_turn(rng, monkeypatch, dtype, chunk_bytes):
    """conv1 -> conv2 of a fused block in one pass gives what the two FusedConv give run
    one after the other (the same operations in the same order), on every block shape."""
    from resnet_np.fuse import _conv_pair
    from resnet_np.layers import _fast_conv
    if chunk_bytes:
        monkeypatch.setattr(_fast_conv, "CHUNK_BYTES", chunk_bytes)
    tolerance = 1e-12 if dtype == np.float64 else 1e-6
    for block, size in zip(_resnet20_blocks(rng, dtype), (32, 32, 16, 16, 8)):
        x = rng.standard_normal((3, block.conv1.in_channels, size, size)).astype(dtype)
        pair = _conv_pair(block.conv1, block.conv2, x)
        assert pair is not None and pair.dtype == dtype           # the pair path was taken
        assert rel(pair, block.conv2(block.conv1(x))) <= tolerance
        with rn.reference_kernels():
            assert _conv_pair(block.conv1, block.conv2, x) is None  # the readable path


def test_conv_pair_declines_what_it_does_not_fit(rng):
    from resnet_np.fuse import _conv_pair
    from resnet_np.layers._fast_conv import conv_pair_forward
    block = _resnet20_blocks(rng, np.float64)[2]                   # 32 -> 32
    x = rng.standard_normal((2, 32, 8, 8))
    W2, b = rng.standard_normal((32, 32 * 9)), np.zeros(32)
    same, down = ((3, 3), (1, 1), (1, 1)), ((3, 3), (2, 2), (1, 1))
    assert conv_pair_forward(x, (W2, b, same, True), (W2, b, down, False)) is None   # stride 2
    few = rng.standard_normal((4, 32 * 9))
    assert conv_pair_forward(x, (few, b[:4], same, True),
                             (rng.standard_normal((32, 4 * 9)), b, same, False)) is None
    assert _conv_pair(block.conv1, block.conv2, x[:, :16]) is None   # wrong channels: the
    with pytest.raises(ValueError, match=r"expected x of shape \(N, 32, H, W\)"):
        block(x[:, :16])                                            # block's conv1 says so


def test_phases_from_wide_equal_the_phase_buffer_of_the_same_array(rng):
    """conv_1's wide output copied into conv_2's phase buffer (wide columns filled with NaN
    to show they are zeroed) equals the phase buffer built from the same values in NCHW."""
    from resnet_np.layers import _fast_conv as fast
    n, C, H, W = 3, 4, 5, 6
    g1 = fast._Geometry((n, 2, H, W), (3, 3), (1, 1), (1, 1))          # conv_1's output width
    g2 = fast._Geometry((n, C, H, W), (3, 3), (1, 1), (1, 1))
    wide = rng.standard_normal((C, H, n, g1.B))
    wide[..., W:] = np.nan                                              # the wide columns
    from_wide = fast._phases_from_wide(wide.reshape(C, -1), g2, n).copy()
    nchw = wide[..., :W].transpose(2, 0, 1, 3)                          # (n, C, H, W)
    np.testing.assert_array_equal(from_wide, fast._phase_buffer(nchw, g2, wide.dtype))
