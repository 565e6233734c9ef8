"""Who pays for ``predict``? One chain from the NumPy engine to ``keras.predict`` on the seed's CNN at batch 1,
each step adding one layer of the stack, so the steps add up to ``keras.predict``'s measured time; and side
branches (Keras 2, a TF1 session, JAX) that swap one layer for another beside the chain.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from overhead.report import captions
from overhead.report import sentences as T
from overhead.report.fmt import code, fmt_pct, fmt_us, latency, small_model
from overhead.report.plotkit import _empty, _fig, _us, describe, save
from overhead.report.style import color_for

CHAIN = ("numpy", "tf.function", "keras.predict_on_batch", "keras.predict")
LAYER = {  # what the step from the previous path of the chain to this one adds
    "numpy": "the model's arithmetic (the NumPy engine)",
    "tf.function": "TensorFlow's runtime: a graph call with TF's kernels instead of the NumPy engine",
    "keras.predict_on_batch": "Keras 3's batch step around the same graph (input conversion, compiled step)",
    "keras.predict": "Keras 3's predict loop (tf.data adapter, epoch iterator, callbacks)",
}
# side branch: (path, the chain path it swaps a layer of, what it swaps)
BRANCHES = (("tf_keras.predict", "keras.predict", "Keras 2's predict loop instead of Keras 3's"),
            ("tf1.session", "tf.function", "a TF1 session run instead of TF2's function call"),
            ("jax.jit", "tf.function", "an XLA-compiled JAX function instead of a TF graph"),
            ("keras.jax.predict", "keras.predict", "Keras 3's predict on the JAX backend instead of TensorFlow"),
            ("keras.call", "keras.predict_on_batch", "an eager `model(x)` instead of the compiled batch step"))


def walk(R, model=None) -> pd.DataFrame:
    """The chain's measured paths in order with ``delta_us`` (added by the step from the previous measured path)
    and ``layer``; a step over an unmeasured path says so. Empty when fewer than two were measured. The deltas
    plus the first path's time add up to the last path's time (``keras.predict`` when measured)."""
    m = model or small_model(R)
    if m is None:
        return pd.DataFrame()
    rows = [(b, latency(R, m, b)) for b in CHAIN]
    rows = [(b, x) for b, x in rows if np.isfinite(x)]
    if len(rows) < 2:
        return pd.DataFrame()
    out = []
    for i, (b, x) in enumerate(rows):
        prev = rows[i - 1] if i else (None, np.nan)
        exact = i == 0 or CHAIN.index(b) == CHAIN.index(prev[0]) + 1
        out.append({"model": m, "backend": b, "median_us": x, "prev": prev[0], "delta_us": x - prev[1],
                    "share": (x - prev[1]) / rows[-1][1] if i else x / rows[-1][1],
                    "layer": LAYER[b] if exact else f"{prev[0]} → {b} (intermediate paths not measured)"})
    return pd.DataFrame(out)


def branches(R, model=None) -> pd.DataFrame:
    """Side branches measured on the same model: ``backend, anchor, median_us, anchor_us, ratio, swaps``."""
    m = model or small_model(R)
    rows = []
    for b, anchor, swaps in BRANCHES:
        x, a = latency(R, m, b), latency(R, m, anchor)
        if np.isfinite(x) and np.isfinite(a):
            rows.append({"model": m, "backend": b, "anchor": anchor, "median_us": x, "anchor_us": a,
                         "ratio": x / a, "swaps": swaps})
    return pd.DataFrame(rows)


def heaviest(w: pd.DataFrame) -> pd.Series | None:
    """The step that adds the most time."""
    if not len(w) or not (w["delta_us"] > 0).any():
        return None
    return w.loc[w["delta_us"].idxmax()]


def headline(w: pd.DataFrame, machine: str | None = None, others=()) -> str:
    """One sentence: the layer that pays most, as a share of the chain's last path (on `machine`), then the
    heaviest step on each of the `others` machines."""
    top = heaviest(w)
    if top is None:
        return ""
    return T.render("whopays_headline", layer=top["layer"], delta_us=top["delta_us"], share=top["share"],
                    last=w["backend"].iloc[-1], last_us=float(w["median_us"].iloc[-1]), model=w["model"].iloc[0],
                    machine=machine, others=others)


def table(w: pd.DataFrame) -> pd.DataFrame:
    """The chain as a short table: path, measured latency, what the step adds and its share of the last path."""
    if not len(w):
        return pd.DataFrame()
    return pd.DataFrame({"path": w["backend"], "measured": [fmt_us(x) for x in w["median_us"]],
                         "this step adds": ["—" if not np.isfinite(d) else ("+" if d >= 0 else "−") + fmt_us(abs(d))
                                            for d in w["delta_us"]],
                         "share of the last path": [fmt_pct(s) for s in w["share"]],
                         "layer": w["layer"]}).set_index("path")


def branches_text(R) -> str:
    """The side branches as a short markdown table ('' when none was measured)."""
    br = branches(R)
    return T.render("whopays_branches", branches=br.to_dict("records")) if len(br) else ""


def text(R) -> str:
    """The section's lead sentence (the chain is the table and the figure; side branches: ``branches_text``)."""
    w = walk(R)
    if not len(w):
        return ("*Not measured:* fewer than two of the paths " + ", ".join(code(b) for b in CHAIN)
                + " ran ok at batch 1 in this run.")
    missing = [b for b in CHAIN if b not in set(w["backend"])]
    others = []
    for m in R.others():  # the same walk on each other machine with a sweep
        top = heaviest(walk(R.on(m), w["model"].iloc[0]))
        if top is not None:
            others.append({"machine": m, "layer": top["layer"], "share": top["share"], "delta_us": top["delta_us"]})
    return T.render("whopays", headline=headline(w, R.machine, others), missing=missing)


def fig_who_pays(walk: pd.DataFrame, figures_dir=None, branches: pd.DataFrame | None = None) -> Figure:
    """The chain from the NumPy engine to ``keras.predict`` (solid bars, log scale, with what each step adds)
    and the side branches (hatched bars, each under the chain path it is compared with, with its ratio)."""
    if walk is None or len(walk) < 2:
        return _empty("fewer than two paths of the walk were measured")
    labels, values, colors, notes, hatch = [], [], [], [], []
    br = branches if branches is not None and len(branches) else pd.DataFrame(columns=["anchor"])
    for r in walk.itertuples():
        labels.append(r.backend)
        values.append(r.median_us)
        colors.append(color_for(r.backend))
        notes.append("" if not np.isfinite(r.delta_us) else
                     f"{'+' if r.delta_us > 0 else '−'}{_us(float(f'{abs(r.delta_us):.3g}'))}")
        hatch.append("")
        for b in br[br["anchor"] == r.backend].itertuples():
            labels.append(f"  ↳ {b.backend}")
            values.append(b.median_us)
            colors.append(color_for(b.backend))
            notes.append(f"{b.ratio:.2g}× {r.backend}")
            hatch.append("//")
    fig = _fig(11, 0.42 * len(labels) + 1.6)
    ax = fig.add_subplot()
    y = np.arange(len(labels))[::-1]
    bars = ax.barh(y, values, color=colors, alpha=0.9)
    for bar, h in zip(bars, hatch):
        if h:
            bar.set_hatch(h)
            bar.set_alpha(0.55)
    ax.set_yticks(y, labels)
    ax.set_xscale("log")
    for yy, v, t in zip(y, values, notes):
        if t:
            ax.annotate(t, (v, yy), xytext=(4, 0), textcoords="offset points", va="center", fontsize="small")
    ax.xaxis.set_major_formatter(FuncFormatter(_us))
    ax.set(xlabel=f"measured latency per call ({walk['model'].iloc[0]}, batch 1; log scale)",
           title="Who pays for predict? Solid: the chain, each step adds one layer; hatched: side branches")
    describe(fig, *captions.who_pays(walk))
    if figures_dir is not None:
        save(fig, "who_pays", figures_dir)
    return fig
