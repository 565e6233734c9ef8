"""Few-row GEMMs cut into column blocks for OpenBLAS's small-matrix kernel: the rule, and exact results."""
import numpy as np
import pytest

from engine_models import assert_close
from overhead.engine import from_keras
from overhead.engine import gemm


@pytest.fixture
def skylakex(monkeypatch):
    monkeypatch.setattr(gemm, "blas_core", lambda: "skylakex")


def test_few_rows_above_a_million_multiply_adds_are_split_into_balanced_blocks(skylakex):
    nb = gemm.split_cols(4, 320, 1280)  # 1.6M multiply-adds: two blocks of 640
    assert nb == 640 and 4 * 320 * nb <= gemm.SMALL_MNK
    nb = gemm.split_cols(9, 1152, 192)
    assert nb is not None and nb % 16 == 0 and 9 * 1152 * nb <= gemm.SMALL_MNK and -(-192 // nb) == 2


@pytest.mark.parametrize("m,k,n", [(4, 320, 512),     # within the small kernel already
                                   (64, 320, 1280),   # too many rows: narrower calls lose
                                   (32, 1152, 1280)])  # blocks would be narrower than SPLIT_MIN_COLS
def test_gemms_the_split_does_not_help_run_whole(skylakex, m, k, n):
    assert gemm.split_cols(m, k, n) is None


def test_no_split_on_cores_without_the_small_kernel(monkeypatch):
    monkeypatch.setattr(gemm, "blas_core", lambda: "haswell")
    assert gemm.split_cols(4, 320, 1280) is None


def test_blas_core_names_a_kernel_of_the_loaded_blas():
    assert isinstance(gemm.blas_core(), str)


@pytest.mark.parametrize("threads", [1, 2])
def test_split_conv_and_dense_match_keras_and_the_unsplit_engine(skylakex, monkeypatch, threads):
    """A 1x1 conv on a 2x2 map (4 rows, 1.6M multiply-adds) and a Dense on its 4 rows, split and whole; with
    2 threads both are K-split GEMMs (the threshold lowered), the Dense's halves split again into blocks."""
    import keras
    from overhead.engine import views
    if threads > 1:
        monkeypatch.setattr(views, "PAR_MIN_FLOPS", 1e6)
    L = keras.layers
    inp = keras.Input((2, 2, 320))
    y = L.Conv2D(1280, 1, activation="relu")(inp)
    y = L.Reshape((4, 1280))(y)
    y = L.Dense(800)(y)
    model = keras.Model(inp, y)
    x = np.random.default_rng(1).normal(size=(1, 2, 2, 320)).astype(np.float32)
    ref = np.asarray(model(x, training=False))
    calls = []
    real = gemm.matmul_into

    def spy(w2, g2):
        calls.append(gemm.split_cols(g2.shape[0], w2.shape[0], g2.shape[1]))
        return real(w2, g2)
    monkeypatch.setattr(gemm, "matmul_into", spy)
    split = from_keras(model, threads=threads)(x)
    assert any(c is not None for c in calls), "no GEMM took the split"
    assert_close(split, ref)
    monkeypatch.setattr(gemm, "blas_core", lambda: "haswell")
    whole = from_keras(model, threads=threads)(x)
    np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-5)
