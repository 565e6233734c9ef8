"""DepthwiseConv2D on tiny maps as one dense per-channel product (overhead.engine.dwdense): the
coefficients against the naive loop reference, the choice of path, agreement with the padded einsum
it replaces, and results that stay the caller's (no plan buffer leaks into them).

Tolerance: max |ours - ref| <= 1e-4 * max(1, max |ref|).
"""
import naive_reference as naive
import numpy as np
import pytest
from engine_models import assert_close, randomize

keras = pytest.importorskip("keras")
L = keras.layers

from overhead.engine import dwconv, dwdense, from_keras  # noqa: E402

# (map h, w, kernel, strides, padding): every one has no more input pixels than kernel taps
TINY = [(3, 3, 5, 1, "same"), (3, 3, 3, 1, "same"), (2, 2, 3, 1, "same"), (3, 3, 3, 1, "valid"),
        (4, 4, 5, 2, "same"), (1, 1, 3, 1, "same"), (2, 3, (3, 5), (1, 2), "same"), (5, 5, 5, 1, "same")]


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def dw_model(c, kernel, strides, padding, act=None, prefix=()):
    layers = [keras.Input((None, None, c))] + list(prefix)
    layers.append(L.DepthwiseConv2D(kernel, strides=strides, padding=padding, activation=act))
    return randomize(keras.Sequential(layers))


@pytest.mark.parametrize("h,w,kernel,strides,padding", TINY)
def test_dense_path_matches_the_naive_reference(h, w, kernel, strides, padding):
    rng = np.random.default_rng(2)
    model = dw_model(5, kernel, strides, padding)
    kern, bias = (np.asarray(v) for v in model.layers[0].weights)
    net = from_keras(model)
    s = (strides, strides) if isinstance(strides, int) else strides
    for n in (1, 3):
        x = rand(rng, n, h, w, 5)
        assert_close(net(x), naive.depthwise_conv2d(x, kern, bias, s, padding))


@pytest.mark.parametrize("h,w,kernel,strides,padding", TINY)
def test_dense_path_is_taken_and_equals_the_padded_einsum(monkeypatch, h, w, kernel, strides, padding):
    """Built through the dense product (counted), and equal to the padded einsum it replaces."""
    rng = np.random.default_rng(4)
    model = dw_model(7, kernel, strides, padding, act="relu6", prefix=[L.Conv2D(7, 1)])
    calls = []
    real = dwconv.build_dwconv_dense
    monkeypatch.setattr(dwconv, "build_dwconv_dense", lambda *a: calls.append(1) or real(*a))
    x = rand(rng, 2, h, w, 7)
    dense = from_keras(model)(x)
    assert calls
    monkeypatch.setattr(dwconv, "use_dense", lambda *a: False)
    padded = from_keras(model)(x)
    assert len(calls) == 1
    np.testing.assert_allclose(dense, padded, rtol=1e-5, atol=1e-5)
    assert_close(dense, model(x, training=False))


def test_larger_maps_keep_the_padded_einsum():
    p = {"kh": 5, "kw": 5, "sh": 1, "sw": 1, "padding": "same"}
    assert dwdense.use_dense((1, 5, 5, 8), p, 1)
    assert not dwdense.use_dense((1, 6, 6, 8), p, 1)  # 36 pixels > 25 taps: more work dense
    assert not dwdense.use_dense((1, 3, 3, 8), p, 2)  # a depth multiplier takes the tap loop
    p3 = dict(p, kh=3, kw=3)
    assert dwdense.use_dense((1, 3, 3, 8), p3, 1) and not dwdense.use_dense((1, 3, 4, 8), p3, 1)
    p7 = dict(p, kh=7, kw=7)  # 49 x 49 x 1024 coefficients: 9.8 MB, over the cap
    assert dwdense.use_dense((1, 7, 7, 512), p7, 1) and not dwdense.use_dense((1, 7, 7, 1024), p7, 1)


def test_dense_matrix_holds_each_tap_once():
    """3x3 input, 3x3 'same' kernel: the centre output sees every pixel through its own tap; a corner
    output only its 2x2 neighbourhood (zeros elsewhere)."""
    wt = np.arange(1, 10, dtype=np.float32).reshape(3, 3, 1, 1)
    m = dwdense.dense_matrix(wt, (1, 3, 3, 1), {"kh": 3, "kw": 3, "sh": 1, "sw": 1, "padding": "same"})
    assert m.shape == (9, 9, 1)
    assert np.array_equal(m[4, :, 0], np.arange(1, 10))
    assert np.array_equal(m[0, :, 0], [5, 6, 0, 8, 9, 0, 0, 0, 0])


def test_repeated_calls_are_independent_and_own_their_results():
    """A SE-free MobileNetV3-like tail (1x1 expand, 5x5 depthwise on 3x3, 1x1 project): the first
    result is untouched by the second call and shares no memory with the plan or the input."""
    rng = np.random.default_rng(8)
    inp = keras.Input((3, 3, 6))
    y = L.Conv2D(24, 1, activation="hard_silu")(inp)
    y = L.DepthwiseConv2D(5, padding="same", activation="hard_silu")(y)
    model = randomize(keras.Model(inp, L.Conv2D(6, 1)(y)))
    net = from_keras(model)
    x1, x2 = rand(rng, 1, 3, 3, 6), rand(rng, 1, 3, 3, 6)
    r1 = net(x1)
    keep = r1.copy()
    r2 = net(x2)
    assert np.array_equal(r1, keep)
    assert not np.shares_memory(r1, r2) and not np.shares_memory(r1, x1)
    plan = net.plan(1)
    assert not any(np.shares_memory(r2, b) for b in plan.template if isinstance(b, np.ndarray))
    assert_close(r1, model(x1, training=False))
    assert_close(r2, model(x2, training=False))
    assert np.array_equal(net(x1), r1)
