"""Does the NumPy engine disturb the backend timed next to it? Each backend alone versus interleaved.

    from overhead.experiments import distortion
    table = distortion.measure()               # or measure(quick=True) for a smoke run

For each model x thread setting, two sweep workers (fresh processes, see :mod:`overhead.experiments.worker`) time
the same backends in interleaved rounds: one *without* the engine, one *with* the engine (``numpy``)
added to the rounds. A backend whose median grows with the engine beside it is being disturbed
(e.g. by engine threads still spinning after the engine's call returned, which the engine no longer
does: its idle workers block). The ratio is interleaved / alone median; 1.0 means no distortion.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from overhead.base import settings
from overhead.experiments import sweep

COLUMNS = ["model", "backend", "threads", "batch", "alone_us", "interleaved_us", "ratio", "alone_n",
           "interleaved_n", "engine_us"]
BACKENDS = ("tf.function", "litert", "onnxruntime")
MODELS = ("cnn_seed", "resnet18_32px")  # a small model (no split steps) and a large one (threads busy)


def tidy(model: str, threads: int, batch: int, alone_rows, with_rows):
    """One row per backend from the two workers' bench rows (status ok only; others get NaN)."""
    import pandas as pd

    alone = {r["backend"]: r for r in alone_rows}
    inter = {r["backend"]: r for r in with_rows}
    engine = inter.get("numpy", {})
    out = []
    for name in [b for b in alone if b != "numpy"]:
        a, b = alone[name], inter.get(name, {})
        a_us = a.get("median_us") if a.get("status") == "ok" else None
        b_us = b.get("median_us") if b.get("status") == "ok" else None
        out.append({"model": model, "backend": name, "threads": int(threads), "batch": int(batch),
                    "alone_us": a_us, "interleaved_us": b_us,
                    "ratio": (b_us / a_us) if a_us and b_us else None,
                    "alone_n": a.get("n"), "interleaved_n": b.get("n"),
                    "engine_us": engine.get("median_us") if engine.get("status") == "ok" else None})
    return pd.DataFrame(out, columns=COLUMNS).astype({"alone_us": float, "interleaved_us": float,
                                                     "ratio": float, "engine_us": float})


def measure(models=MODELS, backends=BACKENDS, threads=None, *, batch: int = 1, budget_s: float = 0.5,
            quick: bool = False, data_dir=None):
    """The distortion table: model, backend, threads, alone_us, interleaved_us, ratio (+ n, engine_us).

    `models`: ladder names or .keras paths (a small and a large one by default); `threads`: the
    settings (default 1 and all cores), each in fresh workers. quick=True: the first model and path, one
    thread, a 0.05 s budget (a smoke run, not a measurement)."""
    import pandas as pd


    if quick:
        models, backends, threads, budget_s = tuple(models)[:1], tuple(backends)[:1], (1,), min(budget_s, 0.05)
    threads = tuple(settings.thread_settings(threads))
    frames = []
    with tempfile.TemporaryDirectory(prefix="overhead-distortion-") as tmp:
        for name, path in sweep.resolve_models(list(models), data_dir=data_dir):
            if not Path(path).exists():
                raise FileNotFoundError(f"model {name}: {path} does not exist; train it first (make train)")
            for t in threads:
                got = {}
                for label, names in (("alone", list(backends)), ("with", [*backends, "numpy"])):
                    job = sweep._job_for(name, path, t, [(b, batch) for b in names],
                                         {"budget_s": budget_s, "parity_n": 32, "max_flops_per_call": 1e13,
                                          "samples_dir": tmp, "artifacts": None, "mode": "bench",
                                          "data_dir": str(data_dir) if data_dir else None})
                    got[label], _ = sweep.collect_rows(job)
                frames.append(tidy(name, t, batch, got["alone"], got["with"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
