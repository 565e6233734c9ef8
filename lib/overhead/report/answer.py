"""The first screen: the answer in at most ``MAX_WORDS`` words, every number from ``R`` (an ``analysis.Results``).

Yes or no; the seed CNN's ``predict`` against the NumPy engine and the fastest path; the measured model size at
which the overhead of ``predict``, ``model(x)`` and a ``tf.function`` falls below 50 % and 10 % of a call,
bracketed by the ladder models either side (``overhead.report.crossing``); and the one-line advice.
"""
from __future__ import annotations

import numpy as np

from overhead.report import crossing, text
from overhead.report.fmt import (
    SIGNIFICANT_X,
    SMALL_MODEL,
    code,
    fmt_flops,
    fmt_us,
    latency,
    not_measured,
    primary,
    small_model,
)
from overhead.report.style import NO_TF, TF_KERAS

MAX_WORDS = 120
CALLS = (("`predict`", "keras.predict"), ("`model(x)`", "keras.call"), ("`tf.function`", "tf.function"))
COMPUTE_REF = "tf.function"    # the same TF kernels with the least around them: its time beyond its fixed cost
                               # on a model is that model's compute (``crossing.share_curve``)


def verdict(R, m) -> str:
    """'Yes, for small models.' when `keras.predict` is ≥ SIGNIFICANT_X × the NumPy engine with separated
    intervals on the small model; 'Partly.' when only some TF path is; 'No.' otherwise."""
    vs = primary(R, "vs_numpy")
    vs = vs[vs["model"] == m] if len(vs) else vs
    if not len(vs):
        return "Not answered: no TensorFlow path and the NumPy engine ran ok on the same model."
    kp = vs[vs["backend"] == "keras.predict"]
    if len(kp) and kp["slowdown"].iloc[0] >= SIGNIFICANT_X and bool(kp["significant"].iloc[0]):
        return "Yes, for small models."
    tf = vs[vs["backend"].isin(TF_KERAS)]
    if len(tf) and (tf["slowdown"] >= SIGNIFICANT_X).any():
        return "Partly: some TensorFlow paths are markedly slower than NumPy on small models."
    return "No: on this machine TensorFlow is not markedly slower than NumPy."


def cell(c: dict) -> str:
    """One crossover in words: measured FLOPs bracketed by the two ladder models, or where it lies beyond."""
    if c.get("basis") == "not identifiable":
        return "not identifiable"
    mark = "†" if c.get("basis") == "fitted" else ""
    if c["where"] == "inside":
        return f"{fmt_flops(c['flops'])}{mark} ({c['below_model']}–{c['above_model']})"
    if c["where"] == "beyond":
        return f"beyond {c['largest_model']} ({fmt_flops(c['largest_flops'])}, its largest){mark}"
    return "not measured"


def crossover_rows(R) -> list:
    sw = primary(R, "sweep")
    rows = []
    for call, b in CALLS:
        cs = {s: crossing.crossover(sw, b, s, compute_ref=COMPUTE_REF) for s in crossing.SHARES}
        rows.append({"call": call, "backend": b, "c50": cell(cs[0.5]), "c10": cell(cs[0.1]), "raw": cs})
    return rows


def fastest(R, model, among=None):
    sw = primary(R, "sweep")
    g = sw[sw["model"] == model] if len(sw) else sw
    if among is not None and len(g):
        g = g[g["backend"].isin(among)]
    if not len(g):
        return None, np.nan
    r = g.loc[g["median_us"].idxmin()]
    return r["backend"], float(r["median_us"])


def advice_line(R, m) -> str:
    best, best_us = fastest(R, m)
    tf_best, tf_us = fastest(R, m, [b for b in TF_KERAS if b != "keras.predict"])
    out = f"for small models serve with {code(best)} ({fmt_us(best_us)}" + (
        ", no TensorFlow at serving time)" if best in NO_TF else ")")
    if tf_best is not None:
        out += f"; staying in TensorFlow, call {code(tf_best)} ({fmt_us(tf_us)}) instead of `predict`"
    return out + "."


def facts(R) -> dict | None:
    m = small_model(R)
    if m is None:
        return None
    best, best_us = fastest(R, m)
    rows = crossover_rows(R)
    return {"verdict": verdict(R, m), "machine": R.machine, "threads": R.threads.get(R.machine, "?"), "model": m,
            "kp_us": latency(R, m, "keras.predict"), "numpy_us": latency(R, m, "numpy"), "best": best,
            "best_us": best_us, "rows": rows, "advice": advice_line(R, m), "seed": m == SMALL_MODEL,
            "have_kp": bool(np.isfinite(latency(R, m, "keras.predict"))),
            "have_numpy": bool(np.isfinite(latency(R, m, "numpy"))),
            "fitted_note": any(c.get("basis") == "fitted" for r in rows for c in r["raw"].values())}


def tldr(R) -> str:
    """The TL;DR markdown (≤ MAX_WORDS words; ``words`` counts them)."""
    f = facts(R)
    if f is None:
        return not_measured("benchmark (bench.csv)")
    md = text.render("tldr", **f)
    if not f["seed"]:
        md = md.replace("the seed's small CNN", "the smallest model measured (the seed's CNN is absent)")
    return md
