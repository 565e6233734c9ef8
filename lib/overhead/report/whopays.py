"""Who pays for ``predict``? A walk through the paths that add (or remove) one layer of the stack at a time,
on the seed's CNN at batch 1; the difference between neighbours is the cost of the layer they isolate.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from overhead.report.fmt import code, fmt_pct, fmt_us, latency, small_model

WALK = ("numpy", "keras.numpy.predict", "keras.jax.predict", "keras.predict", "tf_keras.predict", "tf.function",
        "tf1.session", "jax.jit")
# what the step from the previous path to this one isolates
LAYER = {
    "keras.numpy.predict": "Keras 3's Python (predict loop, layer calls) with no framework under it",
    "keras.jax.predict": "the JAX backend under Keras (array conversion, jitted predict step)",
    "keras.predict": "the TensorFlow backend instead of JAX (tf.data adapter, TF function dispatch)",
    "tf_keras.predict": "Keras 3 → Keras 2 (tf_keras's predict loop instead of Keras 3's)",
    "tf.function": "Keras 2's predict loop and data adapter (left: a bare tf.function call)",
    "tf1.session": "TF 2's function dispatch → a TF 1 session run (graph construction and session management)",
    "jax.jit": "TensorFlow's graph runtime → an XLA-compiled JAX function",
}


def walk(R, model=None) -> pd.DataFrame:
    """The measured batch-1 latency of each path of ``WALK`` present in the results, with the change from the
    previous present path and the layer it isolates. Empty when fewer than two of them were measured."""
    m = model or small_model(R)
    if m is None:
        return pd.DataFrame()
    rows = [(b, latency(R, m, b)) for b in WALK]
    rows = [(b, x) for b, x in rows if np.isfinite(x)]
    if len(rows) < 2:
        return pd.DataFrame()
    out = []
    for i, (b, x) in enumerate(rows):
        prev = rows[i - 1] if i else (None, np.nan)
        exact = i and WALK.index(b) == WALK.index(prev[0]) + 1
        out.append({"model": m, "backend": b, "median_us": x, "prev": prev[0], "delta_us": x - prev[1],
                    "layer": (LAYER[b] if exact else f"{prev[0]} → {b} (intermediate paths not measured)")
                    if i else "the NumPy engine: the model's arithmetic and little else"})
    return pd.DataFrame(out)


def heaviest(w: pd.DataFrame) -> pd.Series | None:
    """The step that adds the most time."""
    if not len(w) or not (w["delta_us"] > 0).any():
        return None
    return w.loc[w["delta_us"].idxmax()]


def headline(w: pd.DataFrame) -> str:
    top = heaviest(w)
    if top is None:
        return ""
    kp = w[w["backend"] == "keras.predict"]
    tot = f" of the {fmt_us(float(kp['median_us'].iloc[0]))} measured through `keras.predict`" if len(kp) else ""
    return (f"The layer that pays most is {top['layer']}: {fmt_us(top['delta_us'])} per call "
            f"({code(top['prev'])} → {code(top['backend'])}){tot}.")


def text(R) -> str:
    """The section's prose: every step, largest first in the closing sentence."""
    w = walk(R)
    if not len(w):
        return ("*Not measured:* fewer than two of the paths " + ", ".join(code(b) for b in WALK)
                + " ran ok at batch 1 in this run.")
    missing = [b for b in WALK if b not in set(w["backend"])]
    steps = []
    for r in w.iloc[1:].itertuples():
        verb = "adds" if r.delta_us > 0 else "saves"
        steps.append(f"- {code(r.prev)} → {code(r.backend)}: {verb} {fmt_us(abs(r.delta_us))} "
                     f"({fmt_us(r.median_us)} measured) — {r.layer}.")
    kp = w[w["backend"] == "keras.predict"]
    out = [f"On {code(w['model'].iloc[0])} at batch 1, the NumPy engine measured "
           f"{fmt_us(float(w['median_us'].iloc[0]))}. Step by step:", "", *steps, "", headline(w)]
    if len(kp):
        top = heaviest(w)
        out[-1] += (f" That is {fmt_pct(top['delta_us'] / float(kp['median_us'].iloc[0]))} of a "
                    "`keras.predict` call." if top is not None else "")
    if missing:
        out.append(f"Not measured in this run: {', '.join(code(b) for b in missing)}.")
    return "\n".join(out)
