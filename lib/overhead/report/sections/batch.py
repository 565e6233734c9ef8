"""Section "Batch size": the throughput gain from the smallest to the largest batch per path (sentence, table) and
its figure (throughput and latency against batch size, one panel per family)."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from overhead.report import captions
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
    _si,
    describe,
    panel_legend,
    save,
)
from overhead.report.style import by_family, color_for, marker_for, order_backends


def _batch_gains(R):
    b = primary(R, "batch")
    if not len(b) or b["batch"].nunique() < 2:
        return None, None
    m = small_model(R) if small_model(R) in set(b[b["batch"] > 1]["model"]) else b[b["batch"] > 1]["model"].iloc[0]
    g = b[b["model"] == m]
    rows = []
    for be in order_backends(g["backend"].unique()):
        x = g[g["backend"] == be].sort_values("batch")
        if len(x) > 1:
            rows.append({"backend": be, "batch_lo": int(x["batch"].iloc[0]), "batch_hi": int(x["batch"].iloc[-1]),
                         "gain": float(x["throughput_sps"].iloc[-1] / x["throughput_sps"].iloc[0])})
    return m, pd.DataFrame(rows)


def batch_text(R) -> str:
    """One sentence: the throughput gain from the smallest to the largest batch on the small model, for
    ``keras.predict``, the NumPy engine and the extremes (the full list is ``batch_table``)."""
    m, t = _batch_gains(R)
    if t is None or not len(t):
        return not_measured("batch-size sweep")
    hi, lo = t.loc[t["gain"].idxmax()], t.loc[t["gain"].idxmin()]
    kp = t[t["backend"] == "keras.predict"]
    return (f"On {code(m)}, batching from {int(t['batch_lo'].min())} to {int(t['batch_hi'].max())} samples per call "
            f"raises throughput {fmt_x(hi['gain'])} for {code(hi['backend'])} but only {fmt_x(lo['gain'])} for "
            f"{code(lo['backend'])} (median over {len(t)} paths {fmt_x(t['gain'].median())}"
            + (f"; `keras.predict` {fmt_x(float(kp['gain'].iloc[0]))}" if len(kp) and hi["backend"] != "keras.predict"
               else "")
            + "): batching pays where the fixed cost per call is large.")


def batch_table(R) -> pd.DataFrame:
    m, t = _batch_gains(R)
    if t is None or not len(t):
        return pd.DataFrame()
    return pd.DataFrame({"backend": t["backend"], "batches": [f"{a} → {b}" for a, b in zip(t["batch_lo"], t["batch_hi"])],
                         f"throughput gain on {m}": [fmt_x(x) for x in t["gain"]]}).set_index("backend")


def batch_models(R, n: int = 3) -> list:
    """Models for the batch figure: the small CNN, then the largest and a middle one among multi-batch models."""
    b = primary(R, "batch")
    if not len(b):
        return []
    multi = b.groupby("model")["batch"].nunique()
    lad = b[b["model"].isin(multi[multi > 1].index)].drop_duplicates("model").sort_values("flops")["model"].tolist()
    if not lad:
        return []
    first = small_model(R) if small_model(R) in lad else lad[0]
    picks = [first, lad[-1], lad[(lad.index(first) + len(lad) - 1) // 2]]
    return sorted(dict.fromkeys(picks), key=lad.index)[:n]


def fig_batch(batch: pd.DataFrame, models=None, machine: str | None = None, figures_dir=None) -> Figure:
    """Throughput (samples/s) against batch size: one row per backend family, one column per model (up to
    three), so ~25 paths stay readable; y shared along each model's column."""
    if machine is not None:
        batch = batch[batch["machine"] == machine]
    if not len(batch):
        return _empty("no batch sweep")
    multi = batch.groupby("model")["batch"].nunique()
    models = [m for m in (models or multi[multi > 1].index) if m in multi.index][:3]
    if not models:
        return _empty("no model was measured at more than one batch size")
    order = list(batch.drop_duplicates("model").set_index("model")["flops"].reindex(models).sort_values().index)
    fams = list(by_family(batch[batch["model"].isin(order)]["backend"].unique()).items())
    fig = _fig(3.6 * len(order) + 1.2, 2.1 * len(fams) + 1.0)
    axes = fig.subplots(len(fams), len(order), squeeze=False, sharex=True, sharey="col")
    for i, (fam, names) in enumerate(fams):
        for j, m in enumerate(order):
            ax = axes[i, j]
            g = batch[batch["model"] == m]
            for b in names:
                gb = g[g["backend"] == b].sort_values("batch")
                if len(gb):
                    ax.plot(gb["batch"], gb["throughput_sps"], color=color_for(b), marker=marker_for(b), ms=4,
                            lw=1.3, label=b)
            ax.set(xscale="log", yscale="log")
            ax.yaxis.set_major_formatter(_si(""))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _p: f"{x:g}"))
            if i == 0:
                ax.set_title(m)
            if j == len(order) - 1:
                panel_legend(ax)
            if j == 0:
                ax.set_ylabel(fam, fontsize="small")
    fig.supxlabel("batch size (samples per call)")
    fig.supylabel("throughput (samples/s, log scale)")
    fig.suptitle("Throughput against batch size, by backend family")
    describe(fig, *captions.batch(batch, order))
    if figures_dir is not None:
        save(fig, "batch_size", figures_dir)
    return fig
