"""Models for the engine tests (tests only): random weights everywhere, one model per layer set."""
import numpy as np


def assert_close(out, ref, rtol=1e-4):
    """max |out - ref| <= rtol * max(1, max |ref|), shapes equal (the engine's kernel tests' tolerance)."""
    ref = np.asarray(ref, np.float64)
    assert np.shape(out) == ref.shape, (np.shape(out), ref.shape)
    err = float(np.abs(np.asarray(out, np.float64) - ref).max())
    assert err <= rtol * max(1.0, float(np.abs(ref).max())), err


def randomize(model, seed=0):
    """Random weights everywhere: biases and BN statistics included (defaults hide mistakes)."""
    import keras
    L = keras.layers
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            randomize(layer, seed + 1)
            continue
        if isinstance(layer, L.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, c).astype(np.float32))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32) * rng.choice([-1, 1], c))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.5, c).astype(np.float32))
            continue
        for w in layer.weights:
            if w.trainable:
                w.assign(rng.normal(0, 0.3, tuple(w.shape)).astype(np.float32))
    return model


def every_engine_layer(seed=0):
    """A functional model using every layer the NumPy engine supports (SUPPORTED), 12x12x3 input."""
    import keras
    L = keras.layers
    inp = keras.Input((12, 12, 3))
    x = L.Rescaling(0.5, offset=-0.1)(inp)
    x = L.ZeroPadding2D(((1, 1), (2, 0)))(x)
    a = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    a = L.BatchNormalization()(a)  # stand-alone (after a non-linear conv)
    b = L.Conv2D(8, 3, padding="same", use_bias=False)(x)
    b = L.BatchNormalization()(b)  # folded
    b = L.ReLU(max_value=6.0)(b)
    d = L.DepthwiseConv2D(3, padding="same", depth_multiplier=1, activation="tanh")(x)
    d = L.Conv2D(8, 1, activation="sigmoid")(d)
    m = L.Add()([a, b])
    m = L.Subtract()([m, d])
    m = L.Multiply()([m, L.Activation("sigmoid")(d)])
    m = L.Average()([m, a])
    m = L.Maximum()([m, L.LeakyReLU(negative_slope=0.1)(b)])
    m = L.Minimum()([m, L.ELU()(a)])
    m = L.Concatenate()([m, L.Activation("silu")(b)])
    m = L.Dropout(0.3)(m)
    p1 = L.MaxPooling2D(2)(m)
    p2 = L.AveragePooling2D(3, strides=2, padding="same")(m)
    p = L.Concatenate()([p1, p2])
    g1 = L.GlobalAveragePooling2D()(p)
    g2 = L.GlobalMaxPooling2D()(p)
    f = L.Flatten()(L.Conv2D(4, 3, strides=2, activation="elu")(p))
    h = L.Concatenate()([g1, g2, f])
    h = L.Reshape((-1, 4))(h)
    h = L.Flatten()(h)
    h = L.Dense(16, activation="relu")(h)
    h = L.Dense(10)(h)
    out = L.Softmax()(h)
    return randomize(keras.Model(inp, out, name="every_layer"), seed)


def every_plain_layer(seed=0):
    """A model using every layer numpy.plain supports, 11x10x3 input (odd sizes: 'same' padding)."""
    import keras
    L = keras.layers
    inp = keras.Input((11, 10, 3))
    x = L.Conv2D(6, 3, padding="same", activation="relu")(inp)
    y = L.Conv2D(6, 3, strides=2, padding="same", use_bias=False)(x)
    y = L.BatchNormalization()(y)
    y = L.ReLU(max_value=6.0)(y)
    z = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=1)(x)
    z = L.LeakyReLU(negative_slope=0.2)(z)
    s = L.Add()([y, z])
    s = L.Dropout(0.5)(s)
    a = L.MaxPooling2D(3, strides=2, padding="same")(s)
    b = L.AveragePooling2D(3, strides=2, padding="same")(s)
    c = L.Add()([a, b])
    g = L.Add()([L.GlobalAveragePooling2D()(c), L.GlobalMaxPooling2D()(c)])
    v = L.Conv2D(4, 2, padding="valid")(s)
    v = L.MaxPooling2D(2)(v)
    v = L.AveragePooling2D(2)(v)
    f = L.Dense(6)(L.Flatten()(v))
    h = L.Add()([g, f])
    h = L.Dense(10, activation="softmax")(L.ReLU()(h))
    return randomize(keras.Model(inp, h, name="every_plain_layer"), seed)


# ---- Keras Applications families, built offline (weights=None) at small inputs

APPLICATIONS = {  # name -> (builder name in keras.applications, input size, extra arguments)
    "MobileNetV2": ("MobileNetV2", 96, {"alpha": 0.35}),
    "MobileNetV3Small": ("MobileNetV3Small", 96, {}),
    "EfficientNetB0": ("EfficientNetB0", 64, {}),
    "DenseNet121": ("DenseNet121", 64, {}),
    "ResNet50": ("ResNet50", 64, {}),
    "ConvNeXtTiny": ("ConvNeXtTiny", 64, {}),
    "Xception": ("Xception", 72, {}),
    "NASNetMobile": ("NASNetMobile", 64, {}),
    "ResNet50V2": ("ResNet50V2", 64, {}),
    "MobileNet": ("MobileNet", 64, {"alpha": 0.25}),
    "EfficientNetV2B0": ("EfficientNetV2B0", 64, {}),
}


def calibrate_bn(model, x):
    """BatchNorm statistics set from the batch `x` in one training-mode pass (momentum 0), so that
    activations stay normalised through the depth and the outputs are not degenerate."""
    import keras
    bns = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(x, training=True)
    for bn, m in zip(bns, saved):
        bn.momentum = m
    return model


def application(name, classes=10, seed=0, batch=8):
    """(model, x): a Keras Applications family built offline with random weights at a small input,
    BatchNorm statistics from a batch of random images, and that batch (0-255 pixels)."""
    import keras
    builder, size, extra = APPLICATIONS[name]
    keras.utils.set_random_seed(seed)
    model = getattr(keras.applications, builder)(weights=None, input_shape=(size, size, 3), classes=classes,
                                                 classifier_activation=None, **extra)
    x = np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
    if name not in ("MobileNetV3Small", "EfficientNetB0", "ConvNeXtTiny", "EfficientNetV2B0"):
        x = x / 127.5 - 1  # families without their preprocessing inside take [-1, 1]
    return calibrate_bn(model, x), x
