"""Section "How much slower than NumPy?": the range of TF/Keras slow-downs (sentence), the ratio tables and the
slow-down heat map."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter

from overhead.report import analysis, captions
from overhead.report.fmt import (
    code,
    fmt_x,
    not_measured,
    primary,
    small_model,
)
from overhead.report.plotkit import (
    _empty,
    _fig,
    describe,
    save,
)
from overhead.report.style import TF_KERAS, order_backends


def slowdown_text(R) -> str:
    """One sentence: the range of TF/Keras slow-downs against the NumPy engine on the small model and on the
    largest model the NumPy engine and those paths share (named), on the report machine, then on each other
    machine with a sweep."""
    parts = _ranges(R)
    if isinstance(parts, str):
        return parts
    text = (f"Against the NumPy engine on {R.machine}, TensorFlow and Keras paths take " + "; ".join(parts)
            + " the engine's latency (the second model is the largest they share with the NumPy engine)")
    for m in R.others():
        other = _ranges(R.on(m))
        if not isinstance(other, str):
            text += f"; on {m} " + "; ".join(other)
    return text + "."


def _ranges(R) -> list[str] | str:
    vs = primary(R, "vs_numpy")
    if not len(vs):
        return not_measured("NumPy engine beside a TensorFlow path")
    tf = vs[vs["backend"].isin(TF_KERAS)]
    if not len(tf):
        return not_measured("TensorFlow path beside the NumPy engine")
    m = small_model(R)
    parts = []
    for model in dict.fromkeys([m, tf.sort_values("flops")["model"].iloc[-1]]):
        g = tf[tf["model"] == model]
        if len(g):
            lo, hi = g.loc[g["slowdown"].idxmin()], g.loc[g["slowdown"].idxmax()]
            parts.append(f"on {code(model)} {fmt_x(lo['slowdown'])} ({code(lo['backend'])}) to "
                         f"{fmt_x(hi['slowdown'])} ({code(hi['backend'])})")
    return parts


def ratio_table(R, which: str = "vs_numpy", value: str = "slowdown") -> pd.DataFrame:
    """Model × backend ratios (``vs_numpy`` slowdown or ``vs_predict`` speed-up), formatted as ``12×``."""
    t = primary(R, which)
    if not len(t):
        return pd.DataFrame()
    p = analysis.pivot(t, value, backends=order_backends(t["backend"]))
    return p.map(fmt_x)


def fig_slowdown(pivot: pd.DataFrame, reference: str = "numpy", figures_dir=None, name="slowdown_vs_numpy"):
    """Heat map of latency relative to ``reference`` (model × backend, log colour scale centred on 1)."""
    if pivot is None or not len(pivot):
        return _empty("no comparison")
    fig = _fig(0.75 * pivot.shape[1] + 3, 0.45 * pivot.shape[0] + 2)
    ax = fig.add_subplot()
    lg = np.log10(pivot.astype(float))
    lim = max(float(np.nanmax(np.abs(lg.to_numpy()))), 0.1)
    annot = pivot.map(lambda v: "" if not np.isfinite(v) else (f"{v:.0f}" if v >= 100 else f"{v:.2g}"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)     # seaborn's cmap.set_bad
        sns.heatmap(lg, ax=ax, cmap="RdBu_r", center=0, vmin=-lim, vmax=lim, annot=annot, fmt="",
                    annot_kws={"fontsize": 7}, cbar_kws={"label": f"latency / {reference} latency (log scale)"})
    ax.grid(False)
    cbar = ax.collections[0].colorbar
    cbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{10 ** v:.3g}×"))
    ax.set(xlabel="backend", ylabel="model (smallest first)",
           title=f"Latency relative to {reference} at batch 1 (× ; >1 is slower)")
    ax.tick_params(axis="x", labelrotation=45)
    for lab in ax.get_xticklabels():
        lab.set_horizontalalignment("right")
    describe(fig, *captions.slowdown(pivot, reference))
    if figures_dir is not None:
        save(fig, name, figures_dir)
    return fig
