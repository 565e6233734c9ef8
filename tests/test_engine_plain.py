"""numpy.plain against Keras: per layer, on a model with every layer it supports, on the small ladder."""
import ast
import inspect

import numpy as np
import pytest
from engine_models import every_plain_layer, randomize

keras = pytest.importorskip("keras")
L = keras.layers

from overhead.engine import UnsupportedLayerError, plain  # noqa: E402

RTOL = 1e-4


def assert_close(out, ref):
    ref = np.asarray(ref)
    assert out.shape == ref.shape
    err = float(np.abs(out.astype(np.float64) - ref).max())
    assert err <= RTOL * max(1.0, float(np.abs(ref).max())), err


def seq(shape, *layers):
    return randomize(keras.Sequential([keras.Input(shape)] + list(layers)))


@pytest.mark.parametrize("layer", [
    lambda: L.Conv2D(5, 3, padding="same", activation="relu"),
    lambda: L.Conv2D(4, (3, 2), strides=(2, 1), padding="same"),
    lambda: L.Conv2D(4, 4, strides=3, padding="valid", use_bias=False),
    lambda: L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2),
    lambda: L.DepthwiseConv2D(2, padding="valid"),
    lambda: L.BatchNormalization(),
    lambda: L.ReLU(),
    lambda: L.ReLU(max_value=6.0),
    lambda: L.ReLU(negative_slope=0.1, threshold=0.2),
    lambda: L.LeakyReLU(negative_slope=0.3),
    lambda: L.MaxPooling2D(2),
    lambda: L.MaxPooling2D(3, strides=2, padding="same"),
    lambda: L.AveragePooling2D(2),
    lambda: L.AveragePooling2D(3, strides=2, padding="same"),
    lambda: L.GlobalAveragePooling2D(),
    lambda: L.GlobalMaxPooling2D(keepdims=True),
    lambda: L.Flatten(),
    lambda: L.Dropout(0.5),
])
def test_each_layer(layer):
    model = seq((9, 8, 3), layer())
    x = np.random.default_rng(0).standard_normal((2, 9, 8, 3)).astype(np.float32)
    assert_close(plain.from_keras(model)(x), model(x, training=False))


def test_dense_and_softmax():
    model = seq((20,), L.Dense(7, activation="relu"), L.Dense(5, activation="softmax"))
    x = np.random.default_rng(1).standard_normal((3, 20)).astype(np.float32)
    assert_close(plain.from_keras(model)(x), model(x, training=False))


def test_every_supported_layer_in_one_model():
    model = every_plain_layer()
    x = np.random.default_rng(2).standard_normal((3, 11, 10, 3)).astype(np.float32)
    model.get_layer(index=-1).activation = keras.activations.linear  # logits: no softmax to hide errors
    assert_close(plain.from_keras(model)(x), model(x, training=False))


def test_squeeze_excitation_padding_and_rescaling():
    """The layers MobileNetV2 and EfficientNet add: ZeroPadding2D, Rescaling, Normalization, swish/sigmoid
    (as layers and fused into Conv2D), and the squeeze-and-excitation Multiply."""
    inp = keras.Input((7, 6, 3))
    x = L.Normalization(mean=[0.1, 0.2, 0.3], variance=[0.5, 2.0, 0.04])(L.Rescaling(1 / 255)(inp))
    x = L.ZeroPadding2D(((0, 1), (2, 1)))(x)
    x = L.Conv2D(4, 3, strides=2, activation="swish")(x)
    x = L.Activation("swish")(L.Activation("sigmoid")(x))
    se = L.Reshape((1, 1, 4))(L.GlobalAveragePooling2D()(x))
    se = L.Conv2D(4, 1, activation="sigmoid")(L.Conv2D(2, 1, activation="silu")(se))
    model = randomize(keras.Model(inp, L.Multiply()([x, se])))
    x = np.random.default_rng(4).uniform(0, 255, (2, 7, 6, 3)).astype(np.float32)
    assert_close(plain.from_keras(model)(x), model(x, training=False))


@pytest.mark.parametrize("name", ["logreg", "mlp_tiny", "cnn_seed", "mlp_wide", "cnn_small", "resnet_mnist",
                                  "mobilenetv2_035_32px", "efficientnetb0_32px"])
def test_small_ladder_models(name):
    from overhead.ladder import models
    model = randomize(models.build(name, seed=0))
    model.get_layer(index=-1).activation = keras.activations.linear
    x = np.random.default_rng(3).random((2,) + tuple(model.input_shape[1:]), dtype=np.float32)
    assert_close(plain.from_keras(model)(x), model(x, training=False))


@pytest.mark.parametrize("layer, cls", [
    (lambda: L.Activation("tanh", name="act_x"), "Activation"),
    (lambda: L.Conv2D(2, 3, activation="tanh", name="act_x"), "Conv2D"),
    (lambda: L.Cropping2D(1, name="act_x"), "Cropping2D"),
])
def test_refuses_others_naming_the_layer(layer, cls):
    with pytest.raises(UnsupportedLayerError) as info:
        plain.from_keras(seq((6, 6, 2), layer()))
    msg = str(info.value)
    assert cls in msg and "'act_x'" in msg and "numpy.plain supports" in msg


def test_refuses_subtract_merge():
    inp = keras.Input((4,))
    model = keras.Model(inp, L.Subtract(name="minus")([L.Dense(3)(inp), L.Dense(3)(inp)]))
    with pytest.raises(UnsupportedLayerError, match="Subtract 'minus'"):
        plain.from_keras(model)


def test_plain_is_plain():
    """No threads, no buffers, no engine internals: it imports only NumPy and the converter's types."""
    tree = ast.parse(inspect.getsource(plain))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names} | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"threading", "threadpool", "overhead.engine.threadpool", "overhead.engine.kernels",
                           "overhead.engine.passes", "overhead.engine.plan"}
    assert "sliding_window_view" in imported
