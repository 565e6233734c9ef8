"""Keras 3 on other backends, the same .keras file: JAX (predict, call, jax.jit of stateless_call) and NumPy.

These run in their own worker processes (``Backend.process`` "jax" / "keras-numpy"): Keras 3 reads
``KERAS_BACKEND`` once, at import, so they cannot share a process with Keras on TensorFlow
(:func:`overhead.backends.enter_process` sets it). Threads: the "jax" process is pinned to ``threads``
CPUs by :func:`overhead.backends.set_threads` (JAX has no thread setting); Keras's NumPy backend runs on
NumPy, whose BLAS threadpoolctl limits.
"""
from __future__ import annotations

import os
import time

from overhead.backends import converters, core
from overhead.backends.core import _cached, catalogued, register


def _model(path, kind: str):
    import keras

    have = keras.backend.backend()
    want = core.KERAS_BACKEND_OF[kind]
    if have != want:
        raise RuntimeError(f"this process runs Keras on {have!r}; this path needs KERAS_BACKEND={want} "
                           f"set before keras is imported (a {kind!r} worker process)")
    return _cached(("keras3", want, path, converters.model_sha(path)), lambda: converters.load_keras(path))


def _info(kind: str, load_s, **extra) -> dict:
    import keras

    if core._PROCESS == "jax" or kind.startswith("jax"):
        import jax

        seen = [len(os.sched_getaffinity(0))]
        kernels = f"{kind}; jax {jax.__version__} on {jax.devices()[0].platform}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    else:
        from threadpoolctl import threadpool_info

        seen = [p.get("num_threads") for p in threadpool_info() if p.get("user_api") == "blas"]
        kernels = f"{kind}; Keras {keras.__version__} numpy backend"
    return {"load_s": load_s, "kernels": kernels, "threads_seen": seen, **extra}


def _prep_keras_jax(path, batch, threads, artifacts, how):
    import numpy as np

    model, load_s = _model(path, "jax")
    if how == "predict":
        return (lambda x: model.predict(x, batch_size=batch, verbose=0)), _info(
            "Keras 3 predict on JAX (jitted predict step)", load_s)
    return (lambda x: np.asarray(model(x, training=False))), _info("Keras 3 eager call on JAX", load_s)


def _prep_jax_jit(path, batch, threads, artifacts):
    import jax
    import numpy as np

    model, load_s = _model(path, "jax")
    # Copies, as a JAX user holds them: Keras's own predict donates its variables' buffers to XLA, so
    # arrays borrowed from the variables die as soon as keras.jax.predict runs in the same process.
    trainable = [jax.numpy.array(v.value, copy=True) for v in model.trainable_variables]
    non_trainable = [jax.numpy.array(v.value, copy=True) for v in model.non_trainable_variables]

    @jax.jit
    def forward(tv, ntv, x):
        y, _ = model.stateless_call(tv, ntv, x, training=False)
        return y

    t0 = time.perf_counter()
    x0 = np.zeros((batch, *converters.input_shape(model)), np.float32)
    forward(trainable, non_trainable, x0).block_until_ready()  # trace + compile now
    compile_s = round(time.perf_counter() - t0, 4)
    return (lambda x: np.asarray(forward(trainable, non_trainable, x))), _info(
        "jax.jit(model.stateless_call), weights as arrays", load_s, trace_s=compile_s, _jitted=forward)


def _prep_keras_numpy(path, batch, threads, artifacts):
    from threadpoolctl import threadpool_limits

    core._BLAS_LIMIT = threadpool_limits(limits=threads, user_api="blas")
    model, load_s = _model(path, "keras-numpy")
    return (lambda x: model.predict(x, batch_size=batch, verbose=0)), _info(
        "Keras 3 predict on its NumPy backend", load_s)


register(catalogued("keras.jax.predict", lambda *a: _prep_keras_jax(*a, how="predict")))
register(catalogued("keras.jax.call", lambda *a: _prep_keras_jax(*a, how="call")))
register(catalogued("jax.jit", _prep_jax_jit))
register(catalogued("keras.numpy.predict", _prep_keras_numpy))
