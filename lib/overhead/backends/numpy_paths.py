"""The NumPy paths: the engine (`numpy`) and the plain NumPy a reader would write (`numpy.plain`);
BLAS threads limited with threadpoolctl."""
from __future__ import annotations

from overhead import engine
from overhead.backends import converters, core
from overhead.backends.core import _cached, catalogued, register
from overhead.engine import plain


def _prep_numpy(path, batch, threads, artifacts):
    from threadpoolctl import threadpool_info, threadpool_limits


    core._BLAS_LIMIT = threadpool_limits(limits=threads, user_api="blas")
    core._tf()  # from_keras reads the .keras file through Keras: start TF with our thread settings first
    model, load_s = _cached(("numpy", path, converters.model_sha(path)), lambda: engine.from_keras(path))
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    kernels = "; ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, "
                        f"{p.get('threading_layer')}) x{p.get('num_threads')}" for p in blas)
    return model, {"load_s": load_s, "kernels": kernels or "numpy (no BLAS found)",
                   "threads_seen": [p.get("num_threads") for p in blas]}


register(catalogued("numpy", _prep_numpy))


def _prep_numpy_plain(path, batch, threads, artifacts):
    """numpy.plain (overhead.engine.plain): one obvious NumPy expression per layer, no engine tricks."""
    from threadpoolctl import threadpool_limits


    core._BLAS_LIMIT = threadpool_limits(limits=threads, user_api="blas")
    core._tf()  # the layer list is read from the .keras file through Keras
    model, load_s = _cached(("numpy.plain", path, converters.model_sha(path)), lambda: plain.from_keras(path))
    return model, {"load_s": load_s, "kernels": "numpy (sliding_window_view im2col + matmul)",
                   "threads_seen": [threads]}


register(catalogued("numpy.plain", _prep_numpy_plain))

