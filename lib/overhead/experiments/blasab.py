"""A/B of NumPy's float32 GEMM with and without OPENBLAS_CORETYPE, each setting in its own fresh process.

OPENBLAS_CORETYPE makes OpenBLAS use one micro-architecture's kernels whatever the CPU (a machine that
sets ``Haswell`` runs AVX2 kernels on an AVX-512 CPU), so NumPy's GEMM rate -- the ceiling and the engine
behind every NumPy path -- depends on it. The variable is read once, when OpenBLAS loads, so each setting
runs in a child process whose environment alone differs: this process's environment is never changed.

``python -m overhead.experiments.blasab [--n N] [--reps R]`` prints the table; :func:`measure` returns it
(``setting, OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE, kernel, threads, n, gflops, reps``).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from overhead.base import atomic, envinfo
from overhead.base.settings import thread_settings
from overhead.harness import child, jobs, timing

COLUMNS = ["setting", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "kernel", "threads", "n", "gflops", "reps"]
VAR = "OPENBLAS_CORETYPE"


def settings(env=None) -> list[tuple[str, str | None]]:
    """(label, OPENBLAS_CORETYPE value or None = unset): the value as set here, and unset."""
    env = os.environ if env is None else env
    current = env.get(VAR)
    return [(f"{VAR}={current}", current), (f"{VAR} unset", None)] if current else [(f"{VAR} unset", None)]


def child_env(value: str | None, base=None) -> dict:
    """A copy of `base` (os.environ) with OPENBLAS_CORETYPE set to `value` or removed; `base` is untouched."""
    env = dict(os.environ if base is None else base)
    env.pop(VAR, None)
    if value is not None:
        env[VAR] = value
    return env  # the package path, TF quietness etc. are added by harness.child.child_env


@dataclass(frozen=True)
class GemmJob:
    """One child's job: NumPy's n x n float32 GEMM rate at each thread count."""
    n: int
    threads: tuple
    repeats: int = 5


def measure_job(job: GemmJob, proto) -> int:
    """In the child: NumPy's kernel and its GEMM rate at each thread count (threadpoolctl limits), one JSON line."""

    blas = envinfo.numpy_blas() or {}
    rates = {str(int(t)): timing.gemm_gflops(n=int(job.n), threads=int(t), repeats=int(job.repeats))
             for t in job.threads}
    proto.write(json.dumps({"kernel": blas.get("architecture"), "library": blas.get("library"),
                            "env": envinfo.openblas_env(), "gflops": rates}) + "\n")
    return 0


def gemm_in_child(job: GemmJob, env: dict, timeout_s: float = 300) -> dict:
    """One measuring child with `env` (the A or the B environment), through :func:`overhead.harness.child.run_child`."""
    done = child.run_child("overhead.experiments.blasab", ["child"], job=job, env=env, timeout_s=timeout_s)
    report = done.last()
    if not done.ok or not isinstance(report, dict):
        raise RuntimeError(f"blasab child {done.failure() or 'wrote no result'}")
    return report


def measure(n: int = 2048, threads=(1, 2), reps: int = 3, repeats: int = 5, env=None, launch=None):
    """The A/B table: for each setting (:func:`settings`), `reps` fresh processes interleaved in time
    (A, B, A, B ...); ``gflops`` is the median over them, ``reps`` how many. `launch(job, env)` replaces
    the child process (tests)."""
    import numpy as np
    import pandas as pd

    launch = launch or gemm_in_child
    base = os.environ if env is None else env
    plan = settings(base)
    got = {label: [] for label, _ in plan}
    for _ in range(max(1, reps)):
        for label, value in plan:
            got[label].append(launch(GemmJob(int(n), tuple(int(t) for t in threads), repeats), child_env(value, base)))
    rows = []
    for label, value in plan:
        outs = got[label]
        for t in threads:
            rows.append({"setting": label, "OPENBLAS_CORETYPE": outs[0]["env"].get(VAR),
                         "OPENBLAS_L2_SIZE": outs[0]["env"].get("OPENBLAS_L2_SIZE"),
                         "kernel": "/".join(sorted({str(o["kernel"]) for o in outs})), "threads": int(t), "n": int(n),
                         "gflops": float(np.median([o["gflops"][str(t)] for o in outs])), "reps": len(outs)})
    return pd.DataFrame(rows, columns=COLUMNS)


def run(out_dir, *, quick: bool = False, machine=None, threads=None):
    """Measure the A/B (fewer, smaller products when quick) and write ``blas_ab.csv`` + its .meta.json."""
    threads = thread_settings(threads)
    frame = measure(n=1024 if quick else 2048, threads=threads, reps=1 if quick else 3)
    frame.insert(0, "machine", machine or envinfo.machine_id())
    path = Path(out_dir) / "blas_ab.csv"
    atomic.atomic_write_csv(frame, path)
    envinfo.write_meta(path, {"stage": "blas_ab", "what": "NumPy float32 np.matmul n x n GFLOP/s, each "
                              "OPENBLAS_CORETYPE setting in fresh processes interleaved in time (A, B, A, B ...); "
                              "median over the processes", "quick": quick}, threads=threads)
    return frame


def main(argv=None) -> int:
    import argparse

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["child"]:
        return jobs.child_entry(GemmJob, measure_job, argv)  # a GemmJob on stdin
    ap = argparse.ArgumentParser(prog="python -m overhead.experiments.blasab", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048, help="matrix size (n x n float32)")
    ap.add_argument("--reps", type=int, default=3, help="fresh processes per setting")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    args = ap.parse_args(argv)
    try:
        threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        print(f"error: --threads {args.threads!r} is not a list of integers; use e.g. --threads 1,2", file=sys.stderr)
        return 2
    if args.n < 1 or args.reps < 1 or not threads or min(threads) < 1:
        print("error: --n, --reps and every thread count must be >= 1", file=sys.stderr)
        return 2
    print(measure(n=args.n, threads=threads, reps=args.reps).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
