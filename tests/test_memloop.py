"""Memory in a loop: fresh processes per backend, RSS at each checkpoint, failures are rows, bad names refused."""
import pandas as pd
import pytest

from overhead import backends
from overhead.experiments import memloop


@pytest.mark.slow  # a fresh TF/JAX process: make test runs it, make test-fast does not
def test_quick_memory_loop_writes_tidy_rows(data_env, tmp_path):
    df = memloop.run("cnn_seed", ["numpy", "keras.jax.predict", "test.raise"], quick=True, data_dir=data_env,
                     machine="testbox", artifacts=tmp_path / "art", out_dir=tmp_path, progress=False)
    saved = pd.read_csv(tmp_path / "memory_loop.csv")
    assert list(saved.columns) == memloop.COLUMNS and len(saved) == len(df) == 9
    assert (tmp_path / "memory_loop.meta.json").exists()
    ok = df[df.status == "ok"]
    assert set(ok.backend) == {"numpy", "keras.jax.predict"}, df[["backend", "status", "reason"]].to_string()
    assert set(ok.backend) == {"numpy", "keras.jax.predict"}
    for _, g in ok.groupby("backend"):
        assert list(g.calls) == list(memloop.QUICK_CALLS)
        assert (g.rss_mb > 50).all() and (g.peak_rss_mb >= g.rss_mb - 1).all()
        assert g.rss_growth_mb.iloc[0] == 0 and g.loop_s.is_monotonic_increasing
    # Keras on JAX imports a second framework: a heavier process than the NumPy engine's
    assert ok[ok.backend == "keras.jax.predict"].rss_after_load_mb.iloc[0] > 0
    bad = df[df.backend == "test.raise"]
    assert (bad.status == "failed").all() and bad.reason.str.contains("deliberate failure").all()


@pytest.fixture
def data_env(data_env, monkeypatch):
    import fake_backends

    monkeypatch.setenv(backends.EXTRA_ENV, fake_backends.HOOK)  # test.raise in the children
    if "test.raise" not in backends.names():  # this process read the hook already: register here too
        fake_backends.register()
    return data_env


def test_unknown_backend_and_bad_calls_are_refused(tmp_path):
    with pytest.raises(backends.UnknownBackendError, match="keras.predict"):
        memloop.run("cnn_seed", ["keras.magic"], out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="calls must be positive"):
        memloop.run("cnn_seed", ["numpy"], calls=(0, 10), out_dir=tmp_path, progress=False)
    assert not (tmp_path / "memory_loop.csv").exists()
