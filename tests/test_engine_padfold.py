"""ZeroPadding2D folded into the 'valid' convolution that reads it (overhead.engine.passes.fold_pad), as
MobileNetV2 and NASNet pad before their stride-2 convolutions: the same outputs as Keras, the op gone from the
program, the explicit padding surviving an engine file and a rebuild as a Keras model (versions stage)."""
import naive_reference as naive
import numpy as np
import pytest
from engine_models import assert_close, randomize

keras = pytest.importorskip("keras")
L = keras.layers

from overhead import engine  # noqa: E402



def padded(conv, pads, c=5):
    return randomize(keras.Sequential([keras.Input((9, 8, c)), L.Conv2D(c, 1), L.ZeroPadding2D(pads), conv]))


CASES = [(lambda: L.DepthwiseConv2D(3, strides=2, padding="valid", activation="relu6"), ((0, 1), (0, 1))),
         (lambda: L.DepthwiseConv2D(5, strides=1, padding="valid"), ((2, 1), (3, 0))),
         (lambda: L.DepthwiseConv2D(3, strides=2, padding="valid", depth_multiplier=2), ((1, 1), (1, 1))),
         (lambda: L.Conv2D(4, 3, strides=2, padding="valid", activation="relu"), ((1, 0), (1, 2))),
         (lambda: L.Conv2D(4, 1, padding="valid"), ((1, 1), (0, 0)))]


@pytest.mark.parametrize("make,pads", CASES)
def test_folded_padding_matches_keras(make, pads, tmp_path):
    rng = np.random.default_rng(4)
    model = padded(make(), pads)
    net = engine.from_keras(model)
    assert "zeropad" not in net.summary()
    for n in (1, 2):
        x = rng.standard_normal((n, 9, 8, 5)).astype(np.float32)
        assert_close(net(x), model(x, training=False))
    net.save(tmp_path / "m.npz")
    assert_close(engine.load(tmp_path / "m.npz")(x), model(x, training=False))


def test_explicit_padding_is_the_naive_padded_convolution():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 7, 6, 3)).astype(np.float32)
    pads = ((2, 0), (1, 3))
    model = keras.Sequential([keras.Input((7, 6, 3)), L.ZeroPadding2D(pads), L.DepthwiseConv2D(3, strides=2)])
    kern, bias = rng.standard_normal((3, 3, 3, 1)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    model.layers[-1].set_weights([kern, bias])
    ref = naive.depthwise_conv2d(np.pad(x, ((0, 0),) + pads + ((0, 0),)), kern, bias, (2, 2), "valid")
    assert_close(engine.from_keras(model)(x), ref)


def test_padding_read_twice_or_before_same_stays():
    rng = np.random.default_rng(6)
    inp = keras.Input((8, 8, 4))
    p = L.ZeroPadding2D(1)(inp)
    two = L.Concatenate()([L.DepthwiseConv2D(3, strides=2)(p), L.MaxPooling2D(3, strides=2)(p)])
    same = L.DepthwiseConv2D(3, padding="same")(L.ZeroPadding2D(1)(inp))
    model = randomize(keras.Model(inp, [two, same]))
    net = engine.from_keras(model)
    assert net.summary().count("zeropad") == 2
    x = rng.standard_normal((1, 8, 8, 4)).astype(np.float32)
    for got, ref in zip(net(x), model(x, training=False)):
        assert_close(got, ref)


def test_versions_stage_rebuilds_a_folded_padding(tmp_path):
    tf = pytest.importorskip("tensorflow")
    from overhead.experiments import versions_child
    make, pads = CASES[0]
    model = padded(make(), pads)
    net = engine.from_keras(model)
    net.save(tmp_path / "m.npz")
    rebuilt = versions_child.build_model(tf.keras, versions_child.read_plan(tmp_path / "m.npz"))
    x = np.random.default_rng(1).standard_normal((2, 9, 8, 5)).astype(np.float32)
    got = rebuilt(x, training=False)
    assert_close(got.numpy() if hasattr(got, "numpy") else got, net(x))
