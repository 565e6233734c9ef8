"""The engine's batch-1 fast paths (one-row GEMVs, 1-D bias, ReLU as a clip, the one-row softmax) against
Keras, and the contract around the buffers a plan reuses: every call's result is its own array, calls
with different inputs do not leak into each other, and concurrent calls on one object stay correct."""
import threading

import numpy as np
import pytest
from engine_models import assert_close, randomize

keras = pytest.importorskip("keras")
L = keras.layers

from overhead.engine import epilogue, from_keras  # noqa: E402
from overhead.engine.plan import Buffers  # noqa: E402


def seq(shape, *layers):
    inp = keras.Input(shape)
    x = inp
    for la in layers:
        x = la(x)
    return keras.Model(inp, x)


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


ACTS = ["relu", "relu6", "elu", "leaky_relu", "sigmoid", "tanh", "silu", "hard_silu", "hard_sigmoid",
        "gelu", "softmax", None]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("units", [7, 40])  # gemv on the transposed weights (<= 16 outputs) and the other
def test_one_row_dense_and_activation(act, units):
    """Batch 1: a Dense reading the model input (1-D view), then one reading a buffer, each with the
    activation fused; the same net at batch 3 after it (a second plan) stays right too."""
    rng = np.random.default_rng(40)
    model = randomize(seq((23,), L.Dense(units, activation=act), L.Dense(units, activation=act)))
    net = from_keras(model)
    for batch in (1, 3, 1):
        x = rand(rng, batch, 23, scale=3.0)
        assert_close(net(x), model(x, training=False))


def test_one_row_conv_gemm_and_softmax():
    """A convolution whose output is a single pixel (one im2col row), then a softmax over one row."""
    rng = np.random.default_rng(41)
    model = randomize(seq((3, 3, 2), L.Conv2D(24, 3, activation="relu"), L.Flatten(),
                          L.Dense(5, activation="softmax")))
    net = from_keras(model)
    x = rand(rng, 1, 3, 3, 2)
    out = net(x)
    assert_close(out, model(x, training=False))
    assert abs(float(out.sum()) - 1.0) < 1e-6


def test_relu_clips_exactly_at_zero():
    """ReLU runs as a clip against 0-d bounds: negatives (and -inf) become exactly 0, the rest is kept."""
    net = from_keras(seq((6,), L.ReLU()))
    x = np.array([[-np.inf, -3.0, -0.0, 0.0, 2.5, np.inf]], np.float32)
    np.testing.assert_array_equal(net(x), np.array([[0, 0, 0, 0, 2.5, np.inf]], np.float32))


def test_shared_constants_are_read_only():
    for c in (epilogue._ZERO, epilogue._ONE, epilogue._HALF, epilogue._INF, epilogue._NINF, epilogue.const(3)):
        assert c.shape == () and c.dtype == np.float32
        with pytest.raises(ValueError):
            np.add(c, 1, out=c)


def _cnn():
    return randomize(seq((10, 10, 1), L.Conv2D(8, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                         L.Dense(32, activation="relu"), L.Dense(10, activation="softmax")))


def test_batch1_calls_are_independent_and_never_alias_buffers():
    """Results of successive batch-1 calls are fresh arrays that later calls do not change, match the
    reference every time, and share no memory with the plan's reused buffers or the input."""
    rng = np.random.default_rng(42)
    model = _cnn()
    net = from_keras(model)
    xs = [rand(rng, 1, 10, 10, 1) for _ in range(4)]
    refs = [np.asarray(model(x, training=False)) for x in xs]
    outs = [net(x) for x in xs]
    kept = [o.copy() for o in outs]
    again = net(xs[0])
    for o, k, r in zip(outs, kept, refs):
        np.testing.assert_array_equal(o, k)  # untouched by the calls after it
        assert_close(o, r)
    np.testing.assert_array_equal(again, outs[0])
    plan = net.plan(1)
    buffers = [b for b in plan.template if isinstance(b, np.ndarray)]
    for o in outs + [again]:
        assert o.flags.owndata
        assert not any(np.shares_memory(o, b) for b in buffers)
        assert not any(np.shares_memory(o, x) for x in xs)
    assert len({id(o) for o in outs}) == len(outs)


def test_concurrent_batch1_calls_on_one_object_are_correct():
    """Several threads calling one object (as LoadGen's `threads` strategy does): each gets exactly the
    result of a lone call on its own input."""
    rng = np.random.default_rng(43)
    net = from_keras(_cnn())
    xs = [rand(rng, 1, 10, 10, 1) for _ in range(6)]
    want = [net(x) for x in xs]
    bad, start = [], threading.Barrier(len(xs))

    def work(i):
        start.wait()
        for _ in range(200):
            if not np.array_equal(net(xs[i]), want[i]):
                bad.append(i)
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_one_row_scale_shift_and_global_average_pool():
    """An SE-style block at batch 1 (global average as a gemv, the (1, 1, 1, C) gate's Rescaling /
    constant arithmetic on 1-D views) and the same model at batch 2 (the reduction path)."""
    rng = np.random.default_rng(44)
    inp = keras.Input((7, 5, 6))
    g = L.GlobalAveragePooling2D(keepdims=True)(inp)
    g = L.Conv2D(6, 1)(g)
    g = L.Rescaling(1 / 6, offset=0.5)(g)
    g = L.ReLU(max_value=1.0)(g)
    x = L.Multiply()([inp, g])
    x = L.GlobalAveragePooling2D()(x)
    model = randomize(keras.Model(inp, L.Rescaling(2.0, offset=-1.0)(x)))
    net = from_keras(model)
    for batch in (1, 2, 1):
        x = rand(rng, batch, 7, 5, 6, scale=2.0)
        assert_close(net(x), model(x, training=False))


def test_one_row_softmax_on_large_logits_stays_finite():
    """The one-row softmax subtracts the row's maximum (read at argmax): logits near +-1e3 overflow
    exp() otherwise."""
    model = randomize(seq((4,), L.Dense(6), L.Softmax()))
    w, b = model.layers[1].get_weights()
    model.layers[1].set_weights([w * 500, b])
    net = from_keras(model)
    x = np.array([[1.0, -2.0, 3.0, 0.5]], np.float32)
    out, ref = net(x), np.asarray(model(x, training=False))
    assert np.isfinite(out).all() and np.abs(out.sum() - 1) < 1e-6
    assert_close(out, ref)


@pytest.mark.parametrize("shift,case", [(-1000.0, "all underflow"),   # exp(x) sums to 0: the max-subtracted form
                                        (-47.0, "some underflow"),     # kept: one exp underflows, the sum > 1e-30
                                        (0.0, "nan")])                 # NaN in: NaN out, like TensorFlow
def test_one_row_softmax_tries_exp_over_its_sum_first(shift, case):
    """The one-row softmax keeps exp(x) / sum exp(x) only on a finite sum of at least 1e-30, else computes
    exp(x - max) / sum; either way the result is Keras's (to 2e-8 absolute)."""
    model = randomize(seq((4,), L.Dense(6), L.Softmax()))
    w, b = model.layers[1].get_weights()
    model.layers[1].set_weights([w * 20, b + shift])
    net = from_keras(model)
    x = np.array([[1.0, -2.0, 3.0, np.nan if case == "nan" else 0.5]], np.float32)
    out, ref = net(x), np.asarray(model(x, training=False))
    if case == "nan":
        assert np.isnan(out).all() and np.isnan(ref).all()
        return
    z = (x @ (w * 20) + b + shift).astype(np.float32)
    total = float(np.exp(z).sum())
    assert (total >= 1e-30 and z.min() < -87) if case == "some underflow" else total == 0.0  # the case it claims
    assert np.isfinite(out).all() and np.abs(out.sum() - 1) < 1e-6
    assert_close(out, ref)
    np.testing.assert_allclose(out, ref, atol=2e-8)


@pytest.mark.parametrize("kernel,strides", [((3, 3), 2), ((5, 5), 2), ((1, 1), 2), ((3, 7), (1, 4)), ((2, 2), 2)])
def test_strided_depthwise_without_zero_taps(kernel, strides):
    """Stride-s depthwise kernels whose width s does not divide (the phases split into two einsums, or
    one for a 1-wide kernel) and one it divides (a single einsum), at batch 1 and 2, with a bias."""
    rng = np.random.default_rng(45)
    model = randomize(seq((11, 13, 6), L.DepthwiseConv2D(kernel, strides=strides, padding="same",
                                                         activation="relu6")))
    net = from_keras(model)
    for batch in (1, 2):
        x = rand(rng, batch, 11, 13, 6, scale=3.0)
        assert_close(net(x), model(x, training=False))


@pytest.mark.parametrize("spec", [("gelu", False), ("gelu", True)])
def test_gelu_never_calls_np_sign_into_its_own_input(monkeypatch, spec):
    # NumPy 2.4's in-place np.sign is a branchy scalar loop, ~12x the SIMD one on mixed signs (epilogue.SIGN_NOTE)
    calls, sign = [], np.sign

    def checked_sign(x, *out, **kw):
        target = out[0] if out else kw.get("out")
        calls.append(target is not None and np.shares_memory(x, target))
        return sign(x, *out, **kw)
    monkeypatch.setattr(np, "sign", checked_sign)
    v = rand(np.random.default_rng(0), 4, 256)
    want = v.copy()
    f, _ = epilogue.activation(spec, Buffers(), v.shape)
    f(v)
    assert not any(calls)
    ref = np.asarray(keras.activations.gelu(want, approximate=spec[1]))
    np.testing.assert_allclose(v, ref, rtol=1e-5, atol=1e-6)
