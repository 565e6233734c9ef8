"""The Keras reference outputs every path is checked against: Keras 3 on TensorFlow, whatever the process.

A "tf" worker computes them in-process (``model.predict``). Workers of other kinds (Keras 3 on JAX or
NumPy) must not judge themselves with their own Keras, so they get the TensorFlow reference from a
fresh ``python -m overhead.backends.reference child`` process (a :class:`ReferenceJob` on stdin) (KERAS_BACKEND=tensorflow), cached on disk beside the
model's artifacts, keyed on the model's content and the inputs' bytes.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overhead import backends
from overhead.backends import converters, core
from overhead.harness import child, jobs

TIMEOUT_S = 600


@dataclass(frozen=True)
class ReferenceJob:
    """Keras-on-TF outputs of the model for the inputs in `inputs` (.npy), saved to `out` (.npy)."""
    model_path: str
    inputs: str
    out: str
    batch_size: int = 64


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
        job = ReferenceJob(str(model_path), str(inp), str(out), int(batch_size))
        done = child.run_child("overhead.backends.reference", ["child"], job=job, kind="tf", timeout_s=TIMEOUT_S)
        if not done.ok or not out.exists():
            raise RuntimeError(f"the TensorFlow reference process failed ({done.failure() or 'no output'})")
        ref = np.load(out)
    part = cache.with_name(f".{cache.name}.{os.getpid()}.tmp.npy")
    np.save(part, ref)
    os.replace(part, cache)
    return ref


def compute(job: ReferenceJob, proto) -> int:
    backends.enter_process("tf")
    backends.configure_tf()
    np.save(job.out, keras_reference(job.model_path, np.load(job.inputs), batch_size=int(job.batch_size)))
    return 0


def main(argv=None) -> int:
    return jobs.child_entry(ReferenceJob, compute, argv)  # a ReferenceJob on stdin


if __name__ == "__main__":
    sys.exit(main())
