"""Shared by the LoadGen tests: the fake paths registered here and in the children, a quick settings set."""
import pytest

import fake_loadgen_backends
from overhead import backends

# short LoadGen runs; Server runs need ~460 queries at least for LoadGen's early-stopping p99 estimate
FAST = {"ss_min_duration_ms": 200, "ss_min_queries": 64, "server_min_duration_ms": 200,
        "server_min_queries": 600, "server_max_duration_ms": 4000,
        # the confirming runs of a bisection: 1 s here (the stage: 10 s)
        "confirm_min_duration_ms": 1000, "confirm_min_queries": 600, "confirm_max_duration_ms": 4000}


@pytest.fixture
def lg_fakes(monkeypatch):
    """test.fixed / test.single_thread / test.wrong ... in this process and in every child it starts."""
    monkeypatch.setenv(backends.EXTRA_ENV, fake_loadgen_backends.HOOK)
    saved = dict(backends.REGISTRY)
    fake_loadgen_backends.register()  # here too: the hook is read once, maybe before the variable was set
    yield
    backends.REGISTRY.clear()
    backends.REGISTRY.update(saved)
