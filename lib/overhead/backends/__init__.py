"""Every inference path a user would try, behind one contract.

``prepare(name, model_path, batch, threads)`` returns a :class:`Runner`: call it with a NumPy batch of
exactly ``batch`` rows and it returns a NumPy array, so each path pays its own conversions as a user
does. Heavy objects (the Keras model, a loaded SavedModel, an ORT session) are shared between the
runners of one process; conversions are cached on disk by :mod:`overhead.backends.converters`.

The paths are the catalogue of :mod:`overhead.base.paths` (``NAMES`` is its order); one module per family
registers each path's ``prepare`` (``core.catalogued``), and importing this package checks that every catalogue
entry has exactly one registered prepare and nothing else is registered. ``Backend.process`` names the
worker-process kind a path needs ("tf", or "jax" / "keras-numpy" for Keras 3 on those backends). Extra backends (the tests' fakes)
come only through one hook: ``OVERHEAD_EXTRA_BACKENDS="module:function"`` (or ``/path/file.py:function``),
read once, on the first ``names()`` / ``get()``.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import time
import warnings

from overhead.backends import core
from overhead.backends.core import (KERAS_BACKEND_OF, REGISTRY, Backend, Runner, UnknownBackendError,  # noqa: F401
                                    configure_tf, enter_process, public_info, register, set_threads,
                                    threads_readback)
from overhead.backends import (numpy_paths, keras_tf, tf_graph, tf1, tf_keras, keras3_other,  # noqa: F401,E402
                               litert, runtimes)
from overhead.base import paths
from overhead.harness import parity as _parity

NAMES = list(paths.NAMES)
EXTRA_ENV = "OVERHEAD_EXTRA_BACKENDS"  # "module:function" registering extra backends (the tests' fakes)
PROCESS_KINDS = tuple(KERAS_BACKEND_OF)  # Backend.process values: one worker kind each


class CatalogueMismatch(RuntimeError):
    """The family modules registered a different set of paths than the catalogue lists."""


def check_catalogue(registered, names=paths.NAMES) -> None:
    """Raise :class:`CatalogueMismatch` naming every catalogue path without a registered prepare and every
    registered path without a catalogue entry."""
    missing = [n for n in names if n not in registered]
    unlisted = [n for n in registered if n not in names]
    if missing or unlisted:
        raise CatalogueMismatch("; ".join(
            ([f"no prepare registered in overhead.backends for catalogue path(s) {', '.join(missing)}"]
             if missing else []) +
            ([f"registered path(s) {', '.join(unlisted)} have no entry in overhead.base.paths.CATALOGUE"]
             if unlisted else [])))


check_catalogue(REGISTRY)  # before the hook: extra backends never need an entry
_registered = dict(REGISTRY)
REGISTRY.clear()
REGISTRY.update({n: _registered[n] for n in NAMES})
_EXTRA_LOADED = False


def _load_extra() -> None:
    """Call the OVERHEAD_EXTRA_BACKENDS hook once per process (the only way extra backends get in)."""
    global _EXTRA_LOADED
    if _EXTRA_LOADED:
        return
    _EXTRA_LOADED = True
    spec = os.environ.get(EXTRA_ENV, "").strip()
    if not spec:
        return
    mod_name, sep, func = spec.rpartition(":")
    if not sep or not mod_name or not func:
        raise ValueError(f"{EXTRA_ENV}={spec!r}: expected 'module:function' or '/path/file.py:function'")
    if mod_name.endswith(".py"):
        file_spec = importlib.util.spec_from_file_location(os.path.basename(mod_name)[:-3], mod_name)
        if file_spec is None or not os.path.exists(mod_name):
            raise ValueError(f"{EXTRA_ENV}={spec!r}: no such file {mod_name}")
        module = importlib.util.module_from_spec(file_spec)
        file_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(mod_name)
    getattr(module, func)()


def names() -> list[str]:
    """The registered backend names: NAMES, plus whatever the OVERHEAD_EXTRA_BACKENDS hook added."""
    _load_extra()
    return list(REGISTRY)


def get(name: str) -> Backend:
    _load_extra()
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownBackendError(
            f"unknown backend {name!r}; valid backends: {', '.join(names())}") from None


def prepare(name: str, model_path, batch: int, threads: int, artifacts=None, io=None) -> Runner:
    """A runner of backend `name` for `model_path` at a fixed batch size and thread count.

    `io`: a user model's :class:`~overhead.usermodel.feed.ModelIO` (its concrete input shapes and names),
    handed to the paths that need it (``Backend.takes_io``); None for the ladder's models."""
    backend = get(name)
    batch, threads = int(batch), int(threads)
    if batch < 1 or threads < 1:
        raise ValueError(f"batch and threads must be positive integers, got {batch}, {threads}")
    if core._THREADS is not None and threads != core._THREADS:
        warnings.warn(f"{name}: threads={threads} but this process was set up for {core._THREADS}; "
                      "TF/BLAS keep the process setting (use a fresh process per setting)",
                      RuntimeWarning, stacklevel=2)
    ok, why = backend.available()
    if not ok:
        raise RuntimeError(why)
    t0 = time.perf_counter()
    extra = {"io": io} if backend.takes_io else {}
    fn, info = backend.prepare(str(model_path), batch, threads, artifacts, **extra)
    info = {"convert_s": None, "load_s": None, "artifact": None, "kernels": "", **info}
    # keys starting with "_" hold live objects (tf.function, interpreter); public_info() drops them
    info.setdefault("prepare_s", round(time.perf_counter() - t0, 4))
    return Runner(name, fn, batch, threads, info)


def parity(runner: Runner, ref, x, y=None, **kwargs) -> dict:
    """:func:`overhead.harness.parity.parity` with the registered backend of ``runner.name``."""
    return _parity.parity(runner, ref, x, y, backend=get(runner.name), **kwargs)
