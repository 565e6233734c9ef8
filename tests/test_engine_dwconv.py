"""The engine's DepthwiseConv2D (one einsum over column phases, overhead.engine.dwconv) against the
naive loop reference and against Keras, over the geometries the phase arithmetic has to get right:
odd and even sizes, strides 1-3 (also unequal), kernels 1-7, 'same' and 'valid', batch > 1, the layer
reading the model input directly, and the chunked multi-threaded path; strided layers both through the
phases and through the direct view (few output columns, DIRECT_MAX_OW).

Tolerance: max |ours - ref| <= 1e-4 * max(1, max |ref|).
"""
import naive_reference as naive
import numpy as np
import pytest
from engine_models import assert_close, randomize

keras = pytest.importorskip("keras")
L = keras.layers

from overhead.engine import dwconv, from_keras  # noqa: E402
from overhead.engine import views as engine_views  # noqa: E402



def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def dw_model(c, kernel, strides, padding, mult=1, act=None, prefix=()):
    """A DepthwiseConv2D (after `prefix` layers) on (None, None, c) inputs."""
    layers = [keras.Input((None, None, c))] + list(prefix)
    layers.append(L.DepthwiseConv2D(kernel, strides=strides, padding=padding, depth_multiplier=mult,
                                    activation=act))
    return keras.Sequential(layers)


@pytest.fixture(params=["phases", "direct"])
def strided_path(request, monkeypatch):
    """Strided layers through the column phases, or through the direct view whatever their width."""
    monkeypatch.setattr(dwconv, "DIRECT_MAX_OW", 0 if request.param == "phases" else 1 << 30)
    return request.param


GEOMETRIES = [(3, 1, "same"), (3, 2, "same"), (3, 2, "valid"), (5, 2, "same"), (5, 1, "valid"),
              (7, 1, "same"), (2, 2, "same"), (4, 3, "same"), (1, 1, "valid"), (1, 2, "same"),
              ((3, 5), (2, 1), "same"), ((5, 3), (1, 2), "valid"), (3, 3, "valid")]
SIZES = [(1, 9, 8), (2, 10, 11), (1, 5, 5), (1, 3, 4)]


@pytest.mark.parametrize("kernel,strides,padding", GEOMETRIES)
def test_matches_the_naive_reference(kernel, strides, padding, strided_path):
    """The layer reads the model input itself (no padding copy for stride 1 'valid')."""
    rng = np.random.default_rng(7)
    c = 6
    model = dw_model(c, kernel, strides, padding)
    k = np.asarray(model.layers[0].weights[0])
    kern, bias = rand(rng, *k.shape), rand(rng, c)
    model.layers[0].set_weights([kern, bias])
    net = from_keras(model)
    s = (strides, strides) if isinstance(strides, int) else strides
    for n, h, w in SIZES:
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        if padding == "valid" and (h < kh or w < kw):
            continue
        x = rand(rng, n, h, w, c)
        ref = naive.depthwise_conv2d(x, kern, bias, s, padding)
        assert_close(net(x), ref)
        if s[0] == s[1]:  # TensorFlow's DepthwiseConv2dNative refuses unequal strides
            assert_close(np.asarray(model(x, training=False)), ref)


@pytest.mark.parametrize("kernel,strides,padding", GEOMETRIES[:6])
def test_after_another_layer_and_with_an_activation(kernel, strides, padding, strided_path):
    """The input is a buffer of the plan (a preceding op), the epilogue a ReLU6 as in MobileNet."""
    rng = np.random.default_rng(11)
    model = randomize(dw_model(8, kernel, strides, padding, act="relu6", prefix=[L.Conv2D(8, 1)]))
    net = from_keras(model)
    for n, h, w in [(1, 12, 12), (3, 7, 9)]:
        x = rand(rng, n, h, w, 8)
        assert_close(net(x), model(x, training=False))


def test_depth_multiplier_takes_the_tap_loop():
    rng = np.random.default_rng(3)
    model = randomize(dw_model(4, 3, 2, "same", mult=3))
    kern, bias = (np.asarray(v) for v in model.layers[0].weights)
    x = rand(rng, 2, 9, 7, 4)
    assert_close(from_keras(model)(x), naive.depthwise_conv2d(x, kern, bias, (2, 2), "same"))


def test_chunked_over_threads(monkeypatch):
    monkeypatch.setattr(engine_views, "PAR_MIN_ELEMS", 1 << 10)
    rng = np.random.default_rng(5)
    for kernel, strides, padding in [(3, 1, "same"), (3, 2, "same"), (5, 2, "valid")]:
        model = randomize(dw_model(16, kernel, strides, padding, act="relu6", prefix=[L.Conv2D(16, 1)]))
        net = from_keras(model, threads=2)
        for n in (1, 2):
            x = rand(rng, n, 23, 21, 16)
            assert_close(net(x), model(x, training=False))
            assert net._plans[x.shape].parallel  # the plan for this shape (net.plan() sizes None as 1)


def test_two_layers_of_one_geometry_share_the_phase_buffer():
    """Two stride-2 layers reading same-shaped inputs share one persistent phase buffer (border zero)."""
    rng = np.random.default_rng(9)
    inp = keras.Input((10, 10, 4))
    a = L.DepthwiseConv2D(3, strides=2, padding="same")(inp)
    b = L.DepthwiseConv2D(3, strides=2, padding="same")(L.Activation("tanh")(inp))
    model = randomize(keras.Model(inp, L.Concatenate()([a, b])))
    net = from_keras(model)
    for _ in range(2):
        x = rand(rng, 1, 10, 10, 4)
        assert_close(net(x), model(x, training=False))


def test_tiled_weights_put_zero_past_the_kernel():
    wt = np.arange(3 * 3 * 2, dtype=np.float32).reshape(3, 3, 2, 1)
    t = dwconv.tiled_weights(wt, 2, 2, 4)  # sw=2: taps j = 0, 2 in phase 0; j = 1 and (none) in phase 1
    assert t.shape == (3, 2, 2, 8)
    assert np.array_equal(t[1, 0, 0], np.tile(wt[1, 0, :, 0], 4))
    assert np.array_equal(t[1, 1, 0], np.tile(wt[1, 2, :, 0], 4))
    assert np.array_equal(t[1, 0, 1], np.tile(wt[1, 1, :, 0], 4))
    assert not t[:, 1, 1].any()
