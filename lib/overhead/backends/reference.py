"""The Keras reference outputs every path is checked against: Keras 3 on TensorFlow, whatever the process.

A "tf" worker computes them in-process (``model.predict``). Workers of other kinds (Keras 3 on JAX or
NumPy) must not judge themselves with their own Keras, so they get the TensorFlow reference from a
fresh ``python -m overhead.backends.reference`` process (KERAS_BACKEND=tensorflow), cached on disk beside the
model's artifacts, keyed on the model's content and the inputs' bytes.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from overhead import backends
from overhead.backends import converters, core
from overhead.harness import child

TIMEOUT_S = 600


def _in_tf_process() -> bool:
    return core._PROCESS == "tf"


def keras_reference(model_path, x: np.ndarray, *, batch_size: int = 64, artifacts=None) -> np.ndarray:
    """float64 outputs of Keras 3 on TensorFlow for inputs `x` (computed here or in a TF child process)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if _in_tf_process():
        model = converters.load_keras(model_path)
        return model.predict(x, batch_size=min(batch_size, max(len(x), 1)), verbose=0).astype(np.float64)

    key = hashlib.sha256(x.tobytes() + str(x.shape).encode()).hexdigest()[:12]
    cache = converters.artifact_dir(model_path, artifacts) / "reference" / f"{key}.npy"
    if cache.exists():
        return np.load(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "x.npy", Path(tmp) / "ref.npy"
        np.save(inp, x)
        done = child.run_child("overhead.backends.reference", [model_path, inp, out, batch_size], kind="tf",
                               timeout_s=TIMEOUT_S)
        if not done.ok or not out.exists():
            raise RuntimeError(f"the TensorFlow reference process failed ({done.failure() or 'no output'})")
        ref = np.load(out)
    part = cache.with_name(f".{cache.name}.{os.getpid()}.tmp.npy")
    np.save(part, ref)
    os.replace(part, cache)
    return ref


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 4:
        print("usage: python -m overhead.backends.reference MODEL.keras X.npy OUT.npy BATCH_SIZE", file=sys.stderr)
        return 2

    backends.enter_process("tf")
    backends.configure_tf()
    ref = keras_reference(argv[0], np.load(argv[1]), batch_size=int(argv[3]))
    np.save(argv[2], ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
