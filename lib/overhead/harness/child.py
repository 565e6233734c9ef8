"""What every child process of the study shares: the thread environment, the claimed stdout, error text.

Children (sweep workers, start-up, pipeline, breakdown, memory-loop, idle-gap, engine-bench) talk JSON on
the original stdout; :func:`claim_stdout` points fd 1 at stderr so that whatever native libraries print
cannot corrupt that protocol.
"""
from __future__ import annotations

import os
import sys

# a worker-process kind (Backend.process) -> the KERAS_BACKEND Keras 3 must read at its import
KERAS_BACKEND_OF = {"tf": "tensorflow", "jax": "jax", "keras-numpy": "numpy"}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def thread_env(threads: int, *, override: bool = True) -> None:
    """Set the thread-count environment (BLAS, OpenMP, TF intra-op = threads, TF inter-op = 1).

    Takes effect for runtimes imported afterwards; ``override=False`` keeps values already set.
    """
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads}")
    for var in THREAD_VARS:
        if override or var not in os.environ:
            os.environ[var] = str(threads)
    if override or "TF_NUM_INTEROP_THREADS" not in os.environ:
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def claim_stdout():
    """A line-buffered writer on the original stdout; fd 1 and sys.stdout now go to stderr."""
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def error_text(exc: BaseException, limit: int = 300) -> str:
    """One line naming the exception type and the first line of its message, at most `limit` characters."""
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".strip().rstrip(":")
    return text if len(text) <= limit else text[: limit - 3] + "..."
