"""The NumPy engine against Keras (model(x, training=False)) and against a naive loop reference.

Tolerance everywhere: max |ours - keras| <= 1e-4 * max(1, max |keras|). Inputs, weights, biases and
batch-norm statistics are random (never the defaults, which hide mistakes).
"""
import naive_reference as naive
import numpy as np
import pytest
from engine_models import randomize

keras = pytest.importorskip("keras")
L = keras.layers

from overhead.engine import UnsupportedLayerError, from_keras  # noqa: E402
from overhead.engine import views as engine_views  # noqa: E402

RTOL = 1e-4


def err_ratio(out, ref):
    ref = np.asarray(ref)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    return float(np.abs(out.astype(np.float64) - ref).max()) / (RTOL * max(1.0, float(np.abs(ref).max())))


def assert_close(out, ref):
    r = err_ratio(out, ref)
    assert r <= 1.0, f"max abs error is {r:.3g} x the tolerance"


@pytest.fixture
def small_chunks(monkeypatch):
    """Lower the split thresholds so the chunked (multi-threaded) paths run on test-sized layers."""
    monkeypatch.setattr(engine_views, "PAR_MIN_FLOPS", 4e6)
    monkeypatch.setattr(engine_views, "PAR_MIN_ELEMS", 1 << 14)


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def check(model, x, **kw):
    """Convert `model`, compare with Keras on `x`; returns the NumpyModel."""
    net = from_keras(model, **kw)
    ref = np.asarray(model(x, training=False))
    assert_close(net(x), ref)
    return net


def seq(input_shape, *layers):
    return keras.Sequential([keras.Input(input_shape)] + list(layers))


# --------------------------------------------------------------------------- convolution grid

CONV_SIZES = [(1, 7, 8), (3, 9, 9), (2, 8, 6)]  # (batch, H, W): odd and even sizes, batch 1 and > 1


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("strides", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 2, 3, 5, 7])
def test_conv2d_grid(kernel, strides, padding):
    rng = np.random.default_rng(kernel * 100 + strides * 10 + (padding == "same"))
    cin, cout = int(rng.integers(1, 5)), int(rng.integers(1, 9))
    model = randomize(seq((None, None, cin), L.Conv2D(cout, kernel, strides=strides, padding=padding)),
                      seed=kernel + strides)
    net = from_keras(model)
    for n, h, w in CONV_SIZES:
        if padding == "valid" and (kernel > h or kernel > w):
            continue
        x = rand(rng, n, h, w, cin)
        assert_close(net(x), model(x, training=False))


@pytest.mark.parametrize("case", [
    dict(filters=16, kernel_size=3, strides=1, padding="same", activation="relu", use_bias=True),
    dict(filters=5, kernel_size=(3, 2), strides=(2, 1), padding="same", activation="relu6", use_bias=False),
    dict(filters=7, kernel_size=(1, 4), strides=(1, 3), padding="valid", activation="sigmoid"),
    dict(filters=3, kernel_size=4, strides=2, padding="same", activation="tanh"),
    dict(filters=4, kernel_size=3, padding="same", activation="softmax"),
])
def test_conv2d_variants(case):
    rng = np.random.default_rng(1)
    model = randomize(seq((11, 10, 6), L.Conv2D(**case)))
    check(model, rand(rng, 3, 11, 10, 6))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape,filters,kernel,strides", [
    ((34, 33, 24), 40, 3, 1),    # row chunks inside one image
    ((9, 9, 96), 160, 3, 1),     # few rows: output-channel chunks
    ((32, 32, 64), 64, 1, 1),    # pointwise: GEMM on the input itself, row chunks
    ((31, 29, 16), 32, 5, 2),    # strided, odd sizes
    ((97, 96, 64), 16, 3, 1),    # big enough for the padded copy to be split too
])
def test_conv2d_chunked_paths(shape, filters, kernel, strides, threads, small_chunks):
    """Convolutions on the chunked, multi-threaded path, at batch 1 and 3."""
    rng = np.random.default_rng(2)
    model = randomize(seq(shape, L.Conv2D(filters, kernel, strides=strides, padding="same", activation="relu")))
    net = from_keras(model, threads=threads)
    assert net.plan(1).parallel
    for n in (1, 3):
        x = rand(rng, n, *shape)
        assert_close(net(x), model(x, training=False))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch,units,act", [(8, 1024, "relu"), (300, 256, "relu"), (7, 512, "softmax"),
                                             (260, 160, "tanh")])
def test_dense_chunked_paths(batch, units, act, threads, small_chunks):
    """Dense layers big enough to be split: K-split for few rows, row chunks otherwise."""
    rng = np.random.default_rng(23)
    model = randomize(seq((1024,), L.Dense(units, activation=act), L.Dense(units, activation=act)))
    net = check(model, rand(rng, batch, 1024), threads=threads)
    assert net.plan(batch).parallel


@pytest.mark.parametrize("threads", [1, 2])
def test_large_pool_and_merge_chunked(threads, small_chunks):
    """Pools and residual adds split over threads (thresholds lowered to these sizes)."""
    rng = np.random.default_rng(24)
    inp = keras.Input((63, 66, 40))
    a, b, c = (L.Conv2D(40, 1)(inp) for _ in range(3))
    x = L.ReLU()(L.Add()([a, b, c]))
    m = L.MaxPooling2D(3, strides=2, padding="same")(x)
    v = L.AveragePooling2D(3, strides=2, padding="same")(x)
    model = randomize(keras.Model(inp, L.Concatenate()([m, v])))
    for n in (1, 2):
        net = check(model, rand(rng, n, 63, 66, 40), threads=threads)
        assert net.plan(n).parallel


# --------------------------------------------------------------------------- depthwise

@pytest.mark.parametrize("mult", [1, 2])
@pytest.mark.parametrize("kernel,strides,padding", [(3, 1, "same"), (3, 2, "same"), (5, 2, "valid"),
                                                    (2, 1, "same"), (4, 3, "same")])
def test_depthwise(mult, kernel, strides, padding):
    rng = np.random.default_rng(kernel + 10 * mult)
    model = randomize(seq((None, None, 5), L.DepthwiseConv2D(kernel, strides=strides, padding=padding,
                                                             depth_multiplier=mult, activation="relu")))
    net = from_keras(model)
    for n, h, w in [(1, 9, 8), (3, 10, 11)]:
        x = rand(rng, n, h, w, 5)
        assert_close(net(x), model(x, training=False))


# --------------------------------------------------------------------------- pooling

@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("pool,strides", [(2, None), (3, 2), (2, 1), (3, 3), ((3, 2), (1, 2)), (1, 2)])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling(kind, pool, strides, padding):
    rng = np.random.default_rng(3)
    cls = L.MaxPooling2D if kind == "max" else L.AveragePooling2D
    model = seq((None, None, 3), cls(pool, strides=strides, padding=padding))
    net = from_keras(model)
    for n, h, w in [(1, 7, 8), (2, 9, 9), (1, 6, 5), (1, 1, 2), (2, 2, 1)]:
        if padding == "valid" and (h < np.max(pool) or w < np.max(pool)):
            continue
        x = rand(rng, n, h, w, 3)
        assert_close(net(x), model(x, training=False))


def test_avgpool_same_excludes_padding():
    """At the corner of a 'same' 3x3 average pool only the 4 in-bounds cells count (TF)."""
    x = np.ones((1, 4, 4, 1), np.float32)
    x[0, 0, 0, 0] = 5.0
    net = from_keras(seq((4, 4, 1), L.AveragePooling2D(3, strides=1, padding="same")))
    out = net(x)
    assert out[0, 0, 0, 0] == pytest.approx((5 + 3) / 4)
    assert out[0, 1, 1, 0] == pytest.approx((5 + 8) / 9)


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(keepdims):
    rng = np.random.default_rng(4)
    inp = keras.Input((7, 6, 5))
    a = L.GlobalAveragePooling2D(keepdims=keepdims)(inp)
    b = L.GlobalMaxPooling2D(keepdims=keepdims)(inp)
    model = keras.Model(inp, L.Concatenate()([a, b]))
    check(model, rand(rng, 3, 7, 6, 5))


@pytest.mark.parametrize("pool", ["fused", "separate"])
@pytest.mark.parametrize("act,moved", [("relu", True), ("tanh", True), ("silu", False), ("elu", False),
                                       (None, True)])
def test_bias_and_activation_move_after_maxpool_only_when_exact(act, moved, pool):
    """conv(+bias, act) -> max-pool becomes conv -> max-pool(+bias, act) for monotone acts only; a
    'valid' pool with pool == strides is then fused into the conv (only the kept rows computed)."""
    rng = np.random.default_rng(21)
    layer = L.MaxPooling2D(2) if pool == "fused" else L.MaxPooling2D(3, strides=2, padding="same")
    model = randomize(seq((9, 8, 3), L.Conv2D(5, 3, padding="same", activation=act), layer))
    net = check(model, rand(rng, 2, 9, 8, 3, scale=2.0))
    if moved and pool == "fused":
        assert _kinds(net) == ["conv"] and net._ops[0].p["pool"] == (2, 2) and net._ops[0].bias is not None
    else:
        assert _kinds(net) == ["conv", "pool"] and (net._ops[1].bias is not None) == moved


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape,pool,batch", [((28, 28, 1), 2, 2), ((27, 25, 3), 3, 1), ((30, 30, 24), 2, 3),
                                              ((12, 12, 64), 2, 1)])
def test_conv_pool_fusion(shape, pool, batch, threads, small_chunks):
    """Fused conv + max-pool on the small, chunked and channel-split paths, odd sizes included."""
    rng = np.random.default_rng(22)
    model = randomize(seq(shape, L.Conv2D(160 if shape[2] == 64 else 32, 3, activation="relu"),
                          L.MaxPooling2D(pool)))
    net = check(model, rand(rng, batch, *shape), threads=threads)
    assert _kinds(net) == ["conv"]
    assert net.plan(batch).parallel == (shape[2] >= 24)


# --------------------------------------------------------------------------- batch norm

def _conv_bn(relu_in_conv=False, use_bias=True):
    return seq((8, 9, 3), L.Conv2D(6, 3, padding="same", use_bias=use_bias,
                                   activation="relu" if relu_in_conv else None),
               L.BatchNormalization(epsilon=1e-3), L.ReLU())


def _kinds(net):
    return [op.kind for op in net._ops]


@pytest.mark.parametrize("use_bias", [True, False])
def test_bn_folded_into_conv(use_bias):
    rng = np.random.default_rng(5)
    model = randomize(_conv_bn(use_bias=use_bias))
    net = check(model, rand(rng, 2, 8, 9, 3))
    assert _kinds(net) == ["conv"]  # BN folded, ReLU fused
    assert net._ops[0].act[0] == "relu"


def test_bn_after_nonlinear_conv_is_not_folded():
    rng = np.random.default_rng(6)
    model = randomize(_conv_bn(relu_in_conv=True))
    net = check(model, rand(rng, 2, 8, 9, 3))
    assert _kinds(net) == ["conv", "scale_shift"]


def test_bn_folded_into_dense_and_depthwise():
    rng = np.random.default_rng(7)
    model = randomize(seq((6, 6, 4), L.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False),
                          L.BatchNormalization(), L.Activation("relu"), L.Flatten(), L.Dense(9),
                          L.BatchNormalization(epsilon=0.01), L.Dense(3)))
    net = check(model, rand(rng, 3, 6, 6, 4))
    assert "scale_shift" not in _kinds(net)


def test_bn_standalone_and_shared_producer():
    """BN on the input, BN on a non-channel axis, and a conv whose output is also used elsewhere."""
    rng = np.random.default_rng(8)
    inp = keras.Input((6, 7, 3))
    x = L.BatchNormalization()(inp)
    c = L.Conv2D(4, 3, padding="same")(x)
    y = L.BatchNormalization()(c)  # c also feeds the Add: no folding
    z = L.Add()([y, c])
    w = L.BatchNormalization(axis=1)(z)  # along H
    model = randomize(keras.Model(inp, w))
    net = check(model, rand(rng, 2, 6, 7, 3))
    assert _kinds(net).count("scale_shift") == 3


def test_bn_fold_is_checked_against_the_statistics():
    """Sensitivity: dropping the BN (as if folding were a no-op) is caught by the tolerance."""
    rng = np.random.default_rng(9)
    model = randomize(_conv_bn())
    net = from_keras(model)
    x = rand(rng, 2, 8, 9, 3)
    plain = seq((8, 9, 3), L.Conv2D(6, 3, padding="same"), L.ReLU())
    plain.layers[0].set_weights(model.layers[0].get_weights())
    assert err_ratio(from_keras(plain)(x), model(x, training=False)) > 1
    assert_close(net(x), model(x, training=False))


# --------------------------------------------------------------------------- graphs

def test_functional_graph():
    """Branches, a tensor used twice, concatenation, residual adds and a nested Sequential."""
    rng = np.random.default_rng(10)
    inp = keras.Input((12, 12, 3))
    stem = L.Conv2D(8, 3, padding="same", activation="relu")(L.Concatenate()([inp, L.Activation("tanh")(inp)]))
    a = L.Conv2D(8, 1)(stem)
    b = L.Conv2D(8, 3, padding="same")(stem)
    b = L.BatchNormalization()(b)
    res = L.ReLU()(L.Add()([a, b, stem]))  # stem used by three layers
    block = keras.Sequential([L.Conv2D(4, 3, padding="same"), L.BatchNormalization(), L.ReLU()], name="block")
    cat = L.Concatenate()([res, block(res), res])  # res used twice in one call
    sub = L.Subtract()([L.MaxPooling2D(2)(cat), L.AveragePooling2D(2)(cat)])
    mul = L.Multiply()([sub, L.Activation("sigmoid")(sub)])
    x = L.GlobalAveragePooling2D()(L.Maximum()([mul, L.Minimum()([sub, mul])]))
    out = L.Dense(5, activation="softmax")(L.Dropout(0.5)(L.Average()([x, x])))
    model = randomize(keras.Model(inp, [out, x]))
    net = from_keras(model)
    xin = rand(rng, 3, 12, 12, 3)
    refs = model(xin, training=False)
    outs = net(xin)
    assert isinstance(outs, list) and len(outs) == 2
    for o, r in zip(outs, refs):
        assert_close(o, r)


def test_shared_layer_called_twice():
    """One Dense (shared weights) applied to two branches, a siamese-style graph."""
    rng = np.random.default_rng(25)
    inp = keras.Input((6,))
    shared = L.Dense(4, activation="tanh")
    a = shared(inp)
    b = shared(L.Dense(6)(inp))
    model = randomize(keras.Model(inp, L.Subtract()([a, b])))
    check(model, rand(rng, 3, 6))


_FORKED = {}


def _call_forked(x):
    return _FORKED["net"](x)


def test_fork_child_runs_single_threaded(small_chunks):
    """After fork the worker threads are gone: the child must still finish (on its own thread)."""
    import multiprocessing as mp
    rng = np.random.default_rng(26)
    model = randomize(seq((34, 33, 24), L.Conv2D(40, 3, padding="same")))
    net = _FORKED["net"] = from_keras(model, threads=2)
    x = rand(rng, 1, 34, 33, 24)
    ref = net(x)  # workers started in the parent
    with mp.get_context("fork").Pool(1) as pool:
        out = pool.apply_async(_call_forked, (x,)).get(timeout=60)
    np.testing.assert_array_equal(out, ref)


def test_dense_on_higher_rank_inputs():
    rng = np.random.default_rng(11)
    inp = keras.Input((5, 4, 6))
    a = L.Dense(3, activation="relu")(inp)
    b = L.Dense(2)(L.Reshape((20, 6))(inp))
    model = randomize(keras.Model(inp, L.Concatenate()([L.Flatten()(a), L.Flatten()(b)])))
    check(model, rand(rng, 2, 5, 4, 6))


ACTIVATION_LAYERS = {
    "relu": lambda: L.ReLU(), "relu_max6": lambda: L.ReLU(max_value=6.0),
    "relu_max1.5": lambda: L.ReLU(max_value=1.5), "relu_slope": lambda: L.ReLU(negative_slope=0.1),
    "relu_threshold": lambda: L.ReLU(threshold=0.4),
    "relu_slope_threshold": lambda: L.ReLU(negative_slope=0.2, threshold=0.3),
    "relu_all": lambda: L.ReLU(max_value=2.0, negative_slope=0.3, threshold=0.5),
    "leaky": lambda: L.LeakyReLU(negative_slope=0.25), "leaky_steep": lambda: L.LeakyReLU(negative_slope=1.5),
    "elu_layer": lambda: L.ELU(alpha=0.7), "softmax_layer": lambda: L.Softmax(),
    "softmax_axis1": lambda: L.Softmax(axis=1),
    **{f"act_{a}": (lambda a=a: L.Activation(a)) for a in
       ("relu", "relu6", "sigmoid", "tanh", "softmax", "linear", "silu", "swish", "elu", "leaky_relu")},
}


@pytest.mark.parametrize("name", list(ACTIVATION_LAYERS))
def test_activations(name):
    rng = np.random.default_rng(12)
    make = ACTIVATION_LAYERS[name]
    # once on the input (stand-alone) and once fused into a Dense
    check(seq((4, 6), make()), rand(rng, 3, 4, 6, scale=3.0))
    fused = randomize(seq((4, 6), L.Dense(7), make()))
    net = check(fused, rand(rng, 3, 4, 6, scale=3.0))
    assert _kinds(net) == ["dense"]


def test_rescaling_padding_reshape_identity():
    rng = np.random.default_rng(13)
    model = randomize(seq((7, 6, 3), L.Rescaling(1 / 127.5, offset=-1.0), L.ZeroPadding2D(((1, 2), (0, 3))),
                          L.Conv2D(4, 3, strides=2), L.GaussianNoise(0.5), L.SpatialDropout2D(0.3),
                          L.Reshape((-1, 4)), L.Rescaling([0.5, 1.0, 2.0, -1.0]), L.Flatten(),
                          L.Dense(3)))
    net = check(model, rand(rng, 2, 7, 6, 3, scale=100.0))
    assert "identity" in _kinds(net) and "zeropad" not in _kinds(net)  # folded into the 'valid' Conv2D


# --------------------------------------------------------------------------- the ladder

def _ladder():
    try:
        from overhead.ladder import models
    except ImportError:
        return []
    return list(models.LADDER)


@pytest.mark.parametrize("name", _ladder())
def test_ladder_model(name):
    """Every ladder model (random BN statistics), compared on the logits (softmax switched off, so
    small probabilities cannot hide errors) at batch 1 and 3; ResNet-18 224 px at batch 1 only."""
    from overhead.ladder import models
    model = randomize(models.build(name, seed=0))
    rng = np.random.default_rng(14)
    big = name == "resnet18_224px"
    x = rng.random((1 if big else 3,) + tuple(model.input_shape[1:]), dtype=np.float32)
    net_softmax = from_keras(model)
    assert_close(net_softmax(x), model(x, training=False))
    model.get_layer(index=-1).activation = keras.activations.linear  # "predictions" in the Applications
    net = from_keras(model)
    assert_close(net(x), model(x, training=False))
    if not big:
        assert_close(net(x[:1]), model(x[:1], training=False))


# --------------------------------------------------------------------------- refusals and errors

def _refused(model, cls_name, layer_name):
    with pytest.raises(UnsupportedLayerError) as info:
        from_keras(model)
    msg = str(info.value)
    assert cls_name in msg and layer_name in msg and "supports" in msg
    assert isinstance(info.value, ValueError)


def test_refuses_lstm():
    _refused(seq((5, 3), L.LSTM(4, name="my_lstm")), "LSTM", "my_lstm")


def test_refuses_lambda():
    _refused(seq((4,), L.Lambda(lambda t: t * 2, name="doubler")), "Lambda", "doubler")


def test_refuses_dilated_conv():  # grouped convolutions are supported (tests/test_engine_apps.py)
    _refused(seq((9, 9, 2), L.Conv2D(3, 3, dilation_rate=2, name="dil")), "Conv2D", "dil")


def test_refuses_unknown_activation_and_subclass():
    _refused(seq((4,), L.Dense(3, activation="mish", name="dg")), "Dense", "dg")

    class MyDense(L.Dense):
        def call(self, x):
            return super().call(x) * 2

    _refused(seq((4,), MyDense(3, name="mine")), "MyDense", "mine")


def test_refuses_training_true_call():
    inp = keras.Input((4,))
    model = keras.Model(inp, L.Dropout(0.5, name="always")(inp, training=True))
    _refused(model, "Dropout", "always")


def test_call_time_errors():
    net = from_keras(seq((6, 5, 2), L.Conv2D(3, 3)))
    good = np.zeros((2, 6, 5, 2), np.float32)
    net(good)
    for bad in (np.zeros((2, 6, 5, 2), np.float64), np.zeros((2, 5, 6, 2), np.float32),
                np.zeros((6, 5, 2), np.float32), np.zeros((1, 6, 5, 2), np.int32)):
        with pytest.raises(ValueError, match="input"):
            net(bad)
    assert net(np.zeros((0, 6, 5, 2), np.float32)).shape == (0, 4, 3, 3)


def test_results_are_fresh_arrays():
    rng = np.random.default_rng(15)
    model = randomize(seq((8, 8, 2), L.Conv2D(3, 3), L.Flatten(), L.Dense(4)))
    net = from_keras(model)
    x1, x2 = rand(rng, 2, 8, 8, 2), rand(rng, 2, 8, 8, 2)
    y1 = net(x1)
    keep = y1.copy()
    y2 = net(x2)
    assert not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, keep)
    x1c = x1.copy()
    net(x1)
    np.testing.assert_array_equal(x1, x1c)  # the input is never written


def test_identity_model_returns_a_copy():
    net = from_keras(seq((3,), L.Dropout(0.2)))
    x = np.ones((2, 3), np.float32)
    y = net(x)
    assert not np.shares_memory(x, y)
    np.testing.assert_array_equal(x, y)


def test_noncontiguous_input_and_batch_sizes():
    rng = np.random.default_rng(16)
    model = randomize(seq((9, 9, 3), L.Conv2D(4, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                          L.Flatten(), L.Dense(5)))
    net = from_keras(model)
    big = rand(rng, 5, 9, 9, 6)
    x = big[..., ::2]  # not contiguous
    assert_close(net(x), model(np.ascontiguousarray(x), training=False))
    for n in (1, 2, 7, 1):
        xi = rand(rng, n, 9, 9, 3)
        assert_close(net(xi), model(xi, training=False))


def test_threads_restore_blas_setting(small_chunks):
    from threadpoolctl import threadpool_info, threadpool_limits
    rng = np.random.default_rng(17)
    model = randomize(seq((34, 33, 24), L.Conv2D(40, 3, padding="same")))
    x = rand(rng, 1, 34, 33, 24)
    with threadpool_limits(limits=2, user_api="blas"):
        before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        a = from_keras(model, threads=1)(x)
        b = from_keras(model)(x)
        after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert before == after
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_from_path(tmp_path):
    rng = np.random.default_rng(18)
    model = randomize(seq((5, 5, 1), L.Conv2D(2, 3), L.Flatten(), L.Dense(3, activation="softmax")))
    path = tmp_path / "m.keras"
    model.save(path)
    check(model, rand(rng, 2, 5, 5, 1))
    net = from_keras(str(path))
    x = rand(rng, 2, 5, 5, 1)
    assert_close(net(x), model(x, training=False))


# --------------------------------------------------------------------------- naive reference

def test_naive_reference_matches_fast_paths():
    rng = np.random.default_rng(19)
    x = rand(rng, 2, 7, 6, 3)
    for k, s, pad in [(3, 1, "same"), (2, 2, "same"), (3, 2, "valid"), (4, 3, "same")]:
        kern, bias = rand(rng, k, k, 3, 4), rand(rng, 4)
        model = seq((7, 6, 3), L.Conv2D(4, k, strides=s, padding=pad))
        model.layers[0].set_weights([kern, bias])
        ref = naive.conv2d(x, kern, bias, (s, s), pad)
        assert_close(from_keras(model)(x), ref)
        assert_close(np.asarray(model(x)), ref)
        dk, db = rand(rng, k, k, 3, 2), rand(rng, 6)
        dmodel = seq((7, 6, 3), L.DepthwiseConv2D(k, strides=s, padding=pad, depth_multiplier=2))
        dmodel.layers[0].set_weights([dk, db])
        assert_close(from_keras(dmodel)(x), naive.depthwise_conv2d(x, dk, db, (s, s), pad))
        for mode, cls in (("max", L.MaxPooling2D), ("avg", L.AveragePooling2D)):
            pmodel = seq((7, 6, 3), cls(k, strides=s, padding=pad))
            assert_close(from_keras(pmodel)(x), naive.pool2d(x, (k, k), (s, s), pad, mode))
    g, b, m, v = rand(rng, 3), rand(rng, 3), rand(rng, 3), np.abs(rand(rng, 3)) + 0.5
    bn = seq((7, 6, 3), L.BatchNormalization(epsilon=1e-3))
    bn.layers[0].set_weights([g, b, m, v])
    assert_close(from_keras(bn)(x), naive.batchnorm(x, g, b, m, v, 1e-3))


def test_grid_detects_a_wrong_padding_rule(monkeypatch):
    """Sensitivity: putting the odd 'same' padding cell on top/left (not TF's bottom/right) fails."""
    real = engine_views.out_size

    def top_left(size, k, s, padding, axis=0):
        out, before, after = real(size, k, s, padding, axis)
        return out, after, before

    rng = np.random.default_rng(20)
    x = rand(rng, 1, 8, 8, 2)
    model = randomize(seq((8, 8, 2), L.Conv2D(3, 2, padding="same")))
    ref = model(x, training=False)
    monkeypatch.setattr(engine_views, "out_size", top_left)
    assert err_ratio(from_keras(model)(x), ref) > 1
    monkeypatch.setattr(engine_views, "out_size", real)
    assert_close(from_keras(model)(x), ref)


def test_summary_and_repr():
    net = from_keras(randomize(_conv_bn()))
    assert "conv" in net.summary() and "NumpyModel" in repr(net)
    assert net.input_shape == (None, 8, 9, 3)
    prof = net.profile(np.zeros((1, 8, 9, 3), np.float32), repeats=2)
    assert [p["kind"] for p in prof] == ["conv"]
