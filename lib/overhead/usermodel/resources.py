"""Will a configuration fit this machine? Memory estimate of input + activations, and the thread warning.

The estimate is a lower bound on what any inference path must hold at once for one call: the input
batch, the output batch and the largest single layer output (from the Keras graph run symbolically at
the concrete shapes; without a Keras object, inputs and outputs only). A configuration whose estimate
exceeds the available memory (psutil) is skipped with the estimate as the reason, instead of a
worker killed by the out-of-memory killer.
"""
from __future__ import annotations

import os

import numpy as np


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_warning(threads: int, n_cores: int | None = None) -> str | None:
    """One line when a thread setting asks for more threads than there are cores, else None."""
    n_cores = n_cores or cores()
    if int(threads) <= n_cores:
        return None
    return (f"warning: --threads {threads} is more than the {n_cores} CPU core(s) here; the threads will share "
            f"cores, so these timings measure oversubscription (recorded as threads={threads})")


def available_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def human(nbytes: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{int(nbytes)} B"


def _elements(shape) -> int:
    return int(np.prod([int(d) for d in shape], dtype=np.int64)) if len(shape) else 1


def per_sample_bytes(sig, shapes, model=None) -> dict:
    """Bytes per sample: inputs, outputs and the largest layer output (0 when unknown)."""
    input_b = sum(_elements(s) * np.dtype(spec.dtype).itemsize for spec, s in zip(sig.inputs, shapes))
    layer_b, output_b = 0, 0
    specs = _layer_specs(model, sig, shapes) if model is not None else None
    if specs is not None:
        layer_b = max((_elements(shape[1:]) * item for shape, item in specs["layers"]), default=0)
        output_b = sum(_elements(shape[1:]) * item for shape, item in specs["outputs"])
    if not output_b:
        output_b = sum(_elements(s.shape) * np.dtype(s.dtype).itemsize for s in sig.outputs if not s.dynamic)
    return {"input": int(input_b), "output": int(output_b), "largest_layer": int(layer_b)}


def _layer_specs(model, sig, shapes):
    """Shapes of every layer output at batch 1, by a symbolic pass (Keras 3 functional graphs only)."""
    try:
        import keras

        if not isinstance(model, keras.Model) or not hasattr(model, "inputs"):
            return None
        outs = [layer.output for layer in model.layers if type(layer).__name__ != "InputLayer"]
        probe = keras.Model(model.inputs, outs + list(model.outputs))
        feed = [keras.KerasTensor((1, *s), dtype=spec.dtype) for spec, s in zip(sig.inputs, shapes)]
        got = probe.compute_output_spec(feed if len(feed) > 1 else feed[0])
    except Exception:  # subclassed or nested models, tf_keras objects: fall back to inputs and outputs
        return None
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    pairs = [(tuple(t.shape), np.dtype(t.dtype).itemsize) for t in got]
    n_out = len(model.outputs)
    return {"layers": pairs[:-n_out] if n_out else pairs, "outputs": pairs[-n_out:] if n_out else []}


def estimate(sig, shapes, batch: int, model=None, per_sample: dict | None = None) -> dict:
    """Bytes one call at this batch size needs at least: {input, output, activations, total}."""
    ps = per_sample or per_sample_bytes(sig, shapes, model)
    b = int(batch)
    est = {"input": ps["input"] * b, "output": ps["output"] * b, "activations": ps["largest_layer"] * b}
    est["total"] = est["input"] + est["output"] + est["activations"]
    return est


def memory_skip_reason(est: dict, batch: int, available: int | None = None) -> str | None:
    """The skip reason when the estimate exceeds the available memory, else None."""
    available = available_bytes() if available is None else int(available)
    if est["total"] <= available:
        return None
    parts = f"input {human(est['input'])}"
    if est["activations"]:
        parts += f" + largest activation {human(est['activations'])}"
    parts += f" + output {human(est['output'])}"
    return (f"does not fit in memory: batch {batch} needs at least {human(est['total'])} ({parts}), "
            f"{human(available)} available; use a smaller batch size")
