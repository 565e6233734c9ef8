"""Figures of the report: one function per figure, each returning a matplotlib Figure.

One colour per backend everywhere (families share a hue); ``save`` writes PNG + SVG into ``figures_dir``.
Figures are built without pyplot's global state, so this module works under the Agg backend.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

from overhead import analysis

BACKEND_ORDER = ["numpy", "keras.predict", "keras.predict_on_batch", "keras.call", "tf.function",
                 "tf.function.xla", "tf.savedmodel", "litert", "litert.builtin", "litert.fp16",
                 "litert.dynamic_int8", "litert.int8", "onnxruntime"]
BACKEND_COLORS = {
    "numpy": "#000000",
    "keras.predict": "#d7301f", "keras.predict_on_batch": "#fc8d59", "keras.call": "#990000",
    "tf.function": "#08519c", "tf.function.xla": "#6baed6", "tf.savedmodel": "#3f007d",
    "litert": "#006d2c", "litert.builtin": "#41ab5d", "litert.fp16": "#a1d99b",
    "litert.dynamic_int8": "#78a832", "litert.int8": "#00441b",
    "onnxruntime": "#7b4fa6",
}
FALLBACK_COLORS = ["#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d4a017"]
_FAMILY_MARKERS = {"numpy": "o", "keras": "s", "tf": "^", "litert": "D", "onnxruntime": "P"}
_MARKERS_IN_FAMILY = ["o", "s", "^", "D", "v", "P", "X"]
STAGE_COLORS = {"decode": "#8c6d31", "preprocess": "#e7ba52", "inference": "#3182bd", "postprocess": "#9e9ac8"}

sns.set_theme(style="whitegrid", context="notebook")
matplotlib.rcParams["svg.hashsalt"] = "overhead"      # reproducible SVG ids


def color_for(backend: str) -> str:
    """The backend's colour; unknown backends get a stable fallback colour."""
    if backend in BACKEND_COLORS:
        return BACKEND_COLORS[backend]
    return FALLBACK_COLORS[sum(map(ord, str(backend))) % len(FALLBACK_COLORS)]


def marker_for(backend: str) -> str:
    fam = str(backend).split(".")[0]
    known = [b for b in BACKEND_ORDER if b.split(".")[0] == fam]
    if backend in known and len(known) > 1:
        return _MARKERS_IN_FAMILY[known.index(backend) % len(_MARKERS_IN_FAMILY)]
    return _FAMILY_MARKERS.get(fam, "*")


def order_backends(names) -> list:
    """``names`` in the study's fixed order, unknown ones last (alphabetical)."""
    names = list(dict.fromkeys(names))
    return [b for b in BACKEND_ORDER if b in names] + sorted(b for b in names if b not in BACKEND_ORDER)


def save(fig: Figure, name: str, figures_dir) -> dict:
    """Write ``<figures_dir>/<name>.png`` (150 dpi) and ``.svg``; returns their paths."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"png": out / f"{name}.png", "svg": out / f"{name}.svg"}
    fig.savefig(paths["png"], dpi=150, metadata={"Software": None})
    fig.savefig(paths["svg"], metadata={"Date": None})
    return paths


def publish(fig: Figure, name: str, figures_dir, alt: str | None = None):
    """Save the figure and return it as an embeddable PNG (alt text: the first title) for the notebook."""
    from IPython.display import Image
    paths = save(fig, name, figures_dir)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    return Image(filename=str(paths["png"]), width=int(fig.get_figwidth() * 96),
                 alt=alt or (titles[0] if titles else name.replace("_", " ")))


def _fig(w, h, **kw) -> Figure:
    fig = Figure(figsize=(w, h), layout="constrained", **kw)
    FigureCanvasAgg(fig)          # a renderer without pyplot (works under any backend)
    return fig


def _si(unit):
    def fmt(x, _pos=None):
        for f, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(x) >= f:
                return f"{x / f:g} {p}{unit}"
        return f"{x:g} {unit}"
    return FuncFormatter(fmt)


def _us(x, _pos=None):
    if x >= 1e6:
        return f"{x / 1e6:g} s"
    if x >= 1e3:
        return f"{x / 1e3:g} ms"
    return f"{x:g} µs"


def _legend_right(ax, handles=None, labels=None, title="backend"):
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    ax.figure.legend(handles, labels, loc="outside right upper", title=title, fontsize="small",
                     title_fontsize="small", frameon=False)


def _empty(msg: str) -> Figure:
    fig = _fig(6, 1.5)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, msg, ha="center", va="center")
    return fig


# ------------------------------------------------------------------------------------------------------
def fig_overhead_vs_compute(sweep: pd.DataFrame, fits: pd.DataFrame, peak_gflops: float | None = None,
                            machine: str | None = None, figures_dir=None) -> Figure:
    """Log-log latency per call against FLOPs: measured medians, each backend's fit, the GEMM-peak bound."""
    if machine is not None:
        sweep, fits = sweep[sweep["machine"] == machine], fits[fits["machine"] == machine]
    if not len(sweep):
        return _empty("no benchmark results")
    fig = _fig(10, 6)
    ax = fig.add_subplot()
    lo, hi = sweep["flops"].min() / 2, sweep["flops"].max() * 2
    grid = np.geomspace(lo, hi, 200)
    for b in order_backends(sweep["backend"].unique()):
        g = sweep[sweep["backend"] == b]
        c = color_for(b)
        ax.errorbar(g["flops"], g["median_us"], yerr=[g["median_us"] - g["ci_lo_us"], g["ci_hi_us"] - g["median_us"]],
                    fmt=marker_for(b), color=c, ms=5, lw=0, elinewidth=1, label=b, alpha=0.9)
        f = fits[fits["backend"] == b]
        if len(f) and np.isfinite(f["overhead_us"].iloc[0]):
            ax.plot(grid, analysis.predict_latency(grid, f["overhead_us"].iloc[0], f["gflops"].iloc[0]),
                    color=c, lw=1.2, alpha=0.8)
    if peak_gflops and np.isfinite(peak_gflops):
        ax.plot(grid, grid / (1e3 * peak_gflops), color="0.4", ls="--", lw=1.5,
                label=f"GEMM peak ({peak_gflops:.0f} GFLOP/s)")
    ax.set(xscale="log", yscale="log", xlabel="work per call (FLOPs, batch 1)", ylabel="median latency per call",
           title="Latency against model size: points measured, lines fitted (overhead + FLOPs / throughput)")
    ax.xaxis.set_major_formatter(_si("FLOP"))
    ax.yaxis.set_major_formatter(FuncFormatter(_us))
    ax.yaxis.set_major_locator(LogLocator(base=10))
    _legend_right(ax)
    if figures_dir is not None:
        save(fig, "overhead_vs_compute", figures_dir)
    return fig


def fig_overhead_share(sweep: pd.DataFrame, fits: pd.DataFrame, machine: str | None = None,
                       figures_dir=None) -> Figure:
    """Share of each call spent in the fixed overhead against FLOPs (fit curves, measured points)."""
    if machine is not None:
        sweep, fits = sweep[sweep["machine"] == machine], fits[fits["machine"] == machine]
    if not len(fits):
        return _empty("no fits")
    fig = _fig(10, 5)
    ax = fig.add_subplot()
    grid = np.geomspace(sweep["flops"].min() / 2, sweep["flops"].max() * 2, 200)
    for b in order_backends(fits["backend"].unique()):
        f = fits[fits["backend"] == b].iloc[0]
        if not np.isfinite(f["overhead_us"]):
            continue
        c = color_for(b)
        ax.plot(grid, analysis.overhead_share(grid, f["overhead_us"], f["gflops"]), color=c, lw=1.4, label=b)
        g = sweep[sweep["backend"] == b]
        ax.scatter(g["flops"], np.clip(f["overhead_us"] / g["median_us"], 0, 1), color=c, marker=marker_for(b), s=18)
    for s, txt in ((0.5, "50 %"), (0.1, "10 %")):
        ax.axhline(s, color="0.5", ls=":", lw=1)
        ax.annotate(txt, (grid[0], s), xytext=(2, 2), textcoords="offset points", fontsize="small", color="0.3")
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="work per call (FLOPs, batch 1)",
           ylabel="fixed overhead / latency", title="Share of each call that is fixed per-call overhead")
    ax.xaxis.set_major_formatter(_si("FLOP"))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    _legend_right(ax)
    if figures_dir is not None:
        save(fig, "overhead_share", figures_dir)
    return fig


def fig_batch(batch: pd.DataFrame, models=None, machine: str | None = None, figures_dir=None) -> Figure:
    """Latency per call (top) and throughput (bottom) against batch size, one column per model."""
    if machine is not None:
        batch = batch[batch["machine"] == machine]
    if not len(batch):
        return _empty("no batch sweep")
    multi = batch.groupby("model")["batch"].nunique()
    models = [m for m in (models or multi[multi > 1].index) if m in multi.index][:3]
    if not models:
        return _empty("no model was measured at more than one batch size")
    order = batch.drop_duplicates("model").set_index("model")["flops"].reindex(models).sort_values().index
    fig = _fig(4 * len(order) + 2.2, 7)
    axes = fig.subplots(2, len(order), squeeze=False, sharex=True)
    for j, m in enumerate(order):
        g = batch[batch["model"] == m]
        for b in order_backends(g["backend"].unique()):
            gb = g[g["backend"] == b].sort_values("batch")
            kw = dict(color=color_for(b), marker=marker_for(b), ms=4, lw=1.3, label=b)
            axes[0, j].plot(gb["batch"], gb["median_us"], **kw)
            axes[1, j].plot(gb["batch"], gb["throughput_sps"], **kw)
        axes[0, j].set_title(m)
        axes[0, j].set(xscale="log", yscale="log", ylabel="latency per call" if j == 0 else None)
        axes[1, j].set(xscale="log", yscale="log", xlabel="batch size (samples per call)",
                       ylabel="throughput (samples/s)" if j == 0 else None)
        for ax, fmt in ((axes[0, j], FuncFormatter(_us)), (axes[1, j], _si(""))):
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(fmt)
            ax.yaxis.set_minor_formatter(NullFormatter())
        axes[1, j].xaxis.set_major_formatter(FuncFormatter(lambda x, _p: f"{x:g}"))
    handles, labels = {}, {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    labs = order_backends(handles)
    _legend_right(axes[0, 0], [handles[k] for k in labs], labs)
    if figures_dir is not None:
        save(fig, "batch_size", figures_dir)
    return fig


def fig_threads(scaling: pd.DataFrame, machine: str | None = None, figures_dir=None) -> Figure:
    """Speed-up from the fewest to the most threads against FLOPs, per backend."""
    if machine is not None and len(scaling):
        scaling = scaling[scaling["machine"] == machine]
    if not len(scaling):
        return _empty("only one thread setting was measured")
    fig = _fig(10, 4.8)
    ax = fig.add_subplot()
    for b in order_backends(scaling["backend"].unique()):
        g = scaling[scaling["backend"] == b].sort_values("flops")
        ax.plot(g["flops"], g["speedup"], color=color_for(b), marker=marker_for(b), ms=4, lw=1.2, label=b)
    ideal = (scaling["threads_hi"] / scaling["threads_lo"]).max()
    ax.axhline(1, color="0.5", ls=":", lw=1)
    ax.axhline(ideal, color="0.4", ls="--", lw=1, label=f"ideal ({ideal:g}×)")
    lo_t, hi_t = int(scaling["threads_lo"].min()), int(scaling["threads_hi"].max())
    ax.set(xscale="log", xlabel="work per call (FLOPs, batch 1)",
           ylabel=f"speed-up, {lo_t} → {hi_t} threads (×)", title="Thread scaling at batch 1")
    ax.xaxis.set_major_formatter(_si("FLOP"))
    _legend_right(ax)
    if figures_dir is not None:
        save(fig, "threads", figures_dir)
    return fig


def fig_cold_start(startup: pd.DataFrame, model: str | None = None, machine: str | None = None,
                   figures_dir=None) -> Figure:
    """Time from a fresh process to the first prediction (stacked phases) and resident memory."""
    if machine is not None and len(startup):
        startup = startup[startup["machine"] == machine]
    if not len(startup):
        return _empty("cold start not measured")
    model = model if model in set(startup["model"]) else startup["model"].iloc[0]
    s = startup[startup["model"] == model].set_index("backend")
    s = s.loc[order_backends(s.index)[::-1]]
    phases = [p for p in ("import_s", "convert_s", "load_s", "first_call_s") if p in s.columns]
    fig = _fig(11, 0.35 * len(s) + 1.8)
    ax, ax2 = fig.subplots(1, 2, width_ratios=[2, 1], sharey=True)
    left = np.zeros(len(s))
    pal = sns.color_palette("colorblind", len(phases))
    for p, c in zip(phases, pal):
        v = s[p].fillna(0).to_numpy()
        ax.barh(s.index, v, left=left, color=c, label=p.removesuffix("_s").replace("_", " "))
        left += v
    ax.set(xlabel="seconds from process start to first prediction", title=f"Cold start ({model})")
    ax.legend(loc="lower right", fontsize="small", title="phase", title_fontsize="small")
    mem = "rss_after_first_call_mb"
    if mem in s.columns:
        ax2.barh(s.index, s[mem], color=[color_for(b) for b in s.index])
        ax2.set(xlabel="resident memory after first call (MB)", title="Memory")
    for lab in ax.get_yticklabels():
        lab.set_color(color_for(lab.get_text()))
    if figures_dir is not None:
        save(fig, "cold_start", figures_dir)
    return fig


def _stacked_share(ax, table: pd.DataFrame, parts, colors, total_col, title):
    t = table.loc[order_backends(table.index)[::-1]]
    left = np.zeros(len(t))
    tot = t[parts].sum(axis=1).to_numpy()
    for p, c in zip(parts, colors):
        v = t[p].fillna(0).to_numpy() / tot
        ax.barh(t.index, v, left=left, color=c, label=p)
        left += v
    for y, total in enumerate(t[total_col].to_numpy()):
        ax.annotate(_us(float(f"{total:.3g}")), (1.0, y), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize="small")
    ax.set(xlim=(0, 1), xlabel="share of the time per call (total at the right)", title=title)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    for lab in ax.get_yticklabels():
        lab.set_color(color_for(lab.get_text()))
    ncol = max(1, min(len(parts), 4, 100 // (max(len(str(p)) for p in parts) + 6)))
    ax.figure.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=ncol, fontsize="small",
                     frameon=False)


def fig_pipeline(pipeline: pd.DataFrame, model: str | None = None, machine: str | None = None,
                 figures_dir=None) -> Figure:
    """PNG-to-label pipeline: stacked share of decode / preprocess / inference / postprocess per backend."""
    if machine is not None and len(pipeline):
        pipeline = pipeline[pipeline["machine"] == machine]
    if not len(pipeline):
        return _empty("pipeline not measured")
    model = model if model in set(pipeline["model"]) else pipeline["model"].iloc[0]
    t = pipeline[pipeline["model"] == model].set_index("backend")
    stages = [s for s in ("decode", "preprocess", "inference", "postprocess") if s in t.columns]
    fig = _fig(9, 0.4 * len(t) + 2.2)
    _stacked_share(fig.add_subplot(), t, stages, [STAGE_COLORS[s] for s in stages], "total_us",
                   f"From PNG bytes to a label ({model})")
    if figures_dir is not None:
        save(fig, "pipeline", figures_dir)
    return fig


def fig_breakdown(breakdown: pd.DataFrame, model: str | None = None, machine: str | None = None,
                  figures_dir=None) -> Figure:
    """Per-call decomposition: stacked share of each bucket per backend, total per call at the right."""
    if machine is not None and len(breakdown):
        breakdown = breakdown[breakdown["machine"] == machine]
    if not len(breakdown):
        return _empty("per-call decomposition not measured")
    model = model if model in set(breakdown["model"]) else breakdown["model"].iloc[0]
    t = breakdown[breakdown["model"] == model].set_index("backend")
    buckets = [c for c in t.columns if c not in ("machine", "model", "measured_median_us")]
    t = t.assign(total=t[buckets].sum(axis=1))
    fig = _fig(9, 0.4 * len(t) + 2.2)
    _stacked_share(fig.add_subplot(), t, buckets, sns.color_palette("Set2" if len(buckets) <= 8 else "tab20", len(buckets)), "total",
                   f"Where a call's time goes ({model})")
    if figures_dir is not None:
        save(fig, "breakdown", figures_dir)
    return fig


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
    if figures_dir is not None:
        save(fig, name, figures_dir)
    return fig
