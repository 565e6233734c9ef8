"""Engine calls raise no warning on any kernel path: NumPy deprecates a positional output argument on
np.maximum / np.minimum (the engine passes other ufuncs' outputs positionally, ~40 ns less per call),
and a warning per call would also cost far more than it saves. Every warning is an error here."""
import warnings

import numpy as np
import pytest
from engine_models import assert_close, randomize

keras = pytest.importorskip("keras")
L = keras.layers

from overhead.engine import from_keras  # noqa: E402
from overhead.engine import views as engine_views  # noqa: E402


def model_with_every_max():
    """Conv + fused max-pool, a stand-alone max-pool, Maximum / Minimum / Average merges, a leaky ReLU,
    hard_silu, ReLU6 and a softmax: the kernels that call np.maximum / np.minimum or their wrappers."""
    inp = keras.Input((12, 12, 3))
    a = L.Conv2D(8, 3, activation="relu")(inp)
    a = L.MaxPooling2D(2)(a)
    b = L.Conv2D(8, 3, activation="hard_silu")(inp)
    b = L.MaxPooling2D(3, strides=2, padding="same")(b)
    m = L.Maximum()([a, b])
    n = L.Minimum()([a, b])
    y = L.Average()([m, n])
    y = L.LeakyReLU(negative_slope=0.1)(L.Conv2D(8, 1)(y))
    y = L.DepthwiseConv2D(3, padding="same", activation="relu6")(y)
    y = L.GlobalMaxPooling2D()(y)
    return randomize(keras.Model(inp, L.Dense(5, activation="softmax")(y)))


@pytest.mark.parametrize("threads", [1, 2])
def test_calls_raise_no_warning(monkeypatch, threads):
    if threads > 1:  # the chunked paths too (their epilogues and fused pools)
        monkeypatch.setattr(engine_views, "PAR_MIN_FLOPS", 1e3)
        monkeypatch.setattr(engine_views, "PAR_MIN_ELEMS", 1 << 6)
    model = model_with_every_max()
    net = from_keras(model, threads=threads)
    rng = np.random.default_rng(1)
    for batch in (1, 3):
        x = rng.standard_normal((batch, 12, 12, 3)).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = net(x)
            out2 = net(x)
        assert np.array_equal(out, out2)
        assert_close(out, model(x, training=False))
