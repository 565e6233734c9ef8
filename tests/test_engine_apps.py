"""The layers of the Keras Applications families in the NumPy engine: each against Keras and against a
naive float64 reference (tests/naive_reference.py), then every family end to end on its logits.

Tolerance as in test_engine_kernels: max |ours - ref| <= 1e-4 * max(1, max |ref|).
"""
import naive_reference as naive
import numpy as np
import pytest
from engine_models import APPLICATIONS, application, randomize

keras = pytest.importorskip("keras")
L = keras.layers

from overhead.engine import UnsupportedLayerError, from_keras, load  # noqa: E402

RTOL = 1e-4


def assert_close(out, ref, rtol=RTOL):
    ref = np.asarray(ref, np.float64)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    err = float(np.abs(out.astype(np.float64) - ref).max())
    assert err <= rtol * max(1.0, float(np.abs(ref).max())), f"max abs error {err:.3g}"


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def both(model, x, naive_out):
    """The engine against Keras and against the naive reference; returns the engine's output."""
    net = from_keras(model)
    out = net(x)
    assert_close(out, model(x, training=False))
    # against the float64 definition, element by element at float32 resolution (a wrong constant fails)
    np.testing.assert_allclose(out, np.asarray(naive_out, np.float64), rtol=2e-5, atol=2e-6)
    return out


def seq(input_shape, *layers):
    return keras.Sequential([keras.Input(input_shape)] + list(layers))


@pytest.mark.parametrize("name,ref", [("hard_sigmoid", naive.hard_sigmoid), ("hard_silu", naive.hard_silu),
                                      ("hard_swish", naive.hard_silu), ("gelu", naive.gelu)])
def test_new_activations(name, ref):
    rng = np.random.default_rng(0)
    x = rand(rng, 3, 5, 7, scale=4.0)
    x[0, 0, :4] = [-3.0, 3.0, 0.0, -1e-8]  # the kinks and zero
    both(seq((5, 7), L.Activation(name)), x, ref(x))
    fused = randomize(seq((5, 7), L.Dense(6, activation=name)))
    w, b = (np.asarray(v) for v in fused.layers[-1].weights)
    both(fused, x, ref(naive.dense(x, w, b)))


def test_other_activations_still_refused_by_name():
    model = seq((9,), L.Activation(lambda t: keras.activations.gelu(t, approximate=True), name="my_gelu"))
    with pytest.raises(UnsupportedLayerError, match="my_gelu"):  # a lambda is not the gelu function
        from_keras(model)
    with pytest.raises(UnsupportedLayerError, match="mish"):
        from_keras(seq((9,), L.Dense(3, activation="mish", name="dm")))


def test_layer_normalization():
    rng = np.random.default_rng(2)
    for eps, scale in ((1e-6, 3.0), (0.3, 0.5)):  # epsilon negligible, then epsilon that matters
        model = randomize(seq((4, 5, 6), L.LayerNormalization(epsilon=eps)))
        ln = model.layers[-1]
        x = rand(rng, 2, 4, 5, 6, scale=scale) + 5
        both(model, x, naive.layer_norm(x, np.asarray(ln.gamma), np.asarray(ln.beta), eps))
    with pytest.raises(UnsupportedLayerError, match="only the last"):
        from_keras(seq((4, 5, 6), L.LayerNormalization(axis=1, name="ln_h")))


def test_normalization_and_rescaling_by_a_vector():
    rng = np.random.default_rng(3)
    mean, var = np.array([0.4, -1.0, 2.0]), np.array([0.25, 2.0, 1e-20])
    model = seq((5, 5, 3), L.Rescaling([1 / 255, 2 / 255, 0.5]), L.Normalization(mean=mean, variance=var))
    x = rng.uniform(0, 255, (2, 5, 5, 3)).astype(np.float32)
    scaled = x * np.array([1 / 255, 2 / 255, 0.5])
    both(model, x, naive.normalization(scaled, mean, var))
    adapted = L.Normalization()
    adapted.adapt(x)
    both(seq((5, 5, 3), adapted), x, naive.normalization(x, x.reshape(-1, 3).mean(0), x.reshape(-1, 3).var(0)))
    with pytest.raises(UnsupportedLayerError, match="invert"):
        from_keras(seq((3,), L.Normalization(mean=0.0, variance=1.0, invert=True)))


@pytest.mark.parametrize("groups,mult", [(4, 1), (4, 2), (2, 1), (2, 3)])
def test_grouped_conv(groups, mult):
    rng = np.random.default_rng(4)
    cin = 4
    model = randomize(seq((7, 8, cin), L.Conv2D(groups * mult, 3, padding="same", groups=groups)))
    conv = model.layers[-1]
    x = rand(rng, 2, 7, 8, cin)
    k, b = np.asarray(conv.kernel), np.asarray(conv.bias)
    both(model, x, naive.grouped_conv2d(x, k, groups, b, padding="same"))


@pytest.mark.parametrize("strides,padding", [(1, "same"), (2, "same"), (2, "valid")])
def test_separable_conv(strides, padding):
    rng = np.random.default_rng(5)
    model = randomize(seq((9, 8, 3), L.SeparableConv2D(5, 3, strides=strides, padding=padding, depth_multiplier=2,
                                                       activation="relu")))
    sc = model.layers[-1]
    x = rand(rng, 2, 9, 8, 3)
    ref = naive.relu(naive.separable_conv2d(x, np.asarray(sc.depthwise_kernel), np.asarray(sc.pointwise_kernel),
                                            np.asarray(sc.bias), (strides, strides), padding))
    both(model, x, ref)


def test_cropping():
    rng = np.random.default_rng(6)
    x = rand(rng, 2, 7, 6, 3)
    both(seq((7, 6, 3), L.Cropping2D(((1, 0), (2, 1)))), x, naive.crop2d(x, ((1, 0), (2, 1))))


def test_keras_operations_with_constants():
    """MobileNetV3's hard_sigmoid (ReLU(6)(x + 3) * (1/6)) and ConvNeXt's `inputs + x`: operation nodes."""
    rng = np.random.default_rng(7)
    inp = keras.Input((4, 4, 3))
    a = L.ReLU(6.0)(inp + 3.0) * (1.0 / 6.0)
    b = 2.0 - inp / 4.0
    c = inp * np.array([1.0, -2.0, 0.5], np.float32) - 1.5
    out = a + b * c
    model = keras.Model(inp, out)
    x = rand(rng, 2, 4, 4, 3, scale=4.0)
    xd = x.astype(np.float64)
    ref = naive.hard_sigmoid(xd) + (2.0 - xd / 4.0) * (xd * np.array([1.0, -2.0, 0.5]) - 1.5)
    both(model, x, ref)
    with pytest.raises(UnsupportedLayerError, match="Keras operation"):
        from_keras(keras.Model(inp, keras.ops.exp(inp)))


def test_new_ops_survive_the_engine_file(tmp_path):
    rng = np.random.default_rng(8)
    inp = keras.Input((6, 6, 4))
    x = L.Normalization(mean=0.5, variance=4.0)(inp)
    x = L.Conv2D(4, 3, padding="same", groups=4)(x)
    x = L.LayerNormalization()(x)
    x = L.Activation("gelu")(x)
    x = L.Cropping2D(1)(x)
    x = L.SeparableConv2D(8, 3, activation="hard_silu")(x)
    model = randomize(keras.Model(inp, L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)))
    x = rand(rng, 2, 6, 6, 4)
    net = from_keras(model)
    net.save(tmp_path / "m.npz")
    assert_close(load(tmp_path / "m.npz")(x), model(x, training=False))


@pytest.mark.slow  # builds every family (seconds each), converts and compares the logits
@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_keras_applications_logit_parity(name):
    model, x = application(name)
    ref = np.asarray(model(x, training=False), np.float64)
    assert np.ptp(ref, axis=-1).min() > 1e-3, "the reference logits are degenerate: the test proves nothing"
    net = from_keras(model)
    assert_close(net(x), ref)
    assert_close(net(x[:1]), ref[:1])
