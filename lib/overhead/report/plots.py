"""The report's main figures: latency against model size (small multiples by backend family), the share of a
call that is fixed overhead, the slow-down heat map, batch size and threads. One function per figure, each
returning a matplotlib Figure (no pyplot state); ``save`` writes PNG + SVG into ``figures_dir``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

from overhead.report import captions, identify, latency
from overhead.report.plotkit import (  # noqa: F401
    _empty,
    _fig,
    _legend_right,
    _si,
    _us,
    describe,
    family_grid,
    flops_axis,
    panel_legend,
    publish,
    save,
)
from overhead.report.style import (  # noqa: F401
    BACKEND_COLORS,
    BACKEND_ORDER,
    FALLBACK_COLORS,
    STAGE_COLORS,
    by_family,
    color_for,
    marker_for,
    order_backends,
)


def _fit_curve(ax, grid, fit_row, g, color):
    """The fitted latency of one backend: a line for the two-term model; for the per-layer model the fitted
    value at each measured model joined in FLOPs order (it depends on the layer count, not FLOPs alone)."""
    if fit_row is None or not np.isfinite(fit_row["overhead_us"]) or not identify.identifiable(fit_row):
        return                                 # a fit the data cannot pin down is not drawn
    if fit_row["model"] == "per-layer" and "layers" in g:
        gg = g.sort_values("flops")
        y = latency.predict_latency(gg["flops"], fit_row["overhead_us"], fit_row["gflops"], gg["layers"].fillna(0),
                                    fit_row["per_layer_us"])
        ax.plot(gg["flops"], y, color=color, lw=1.2, alpha=0.8, ls="-.")
    else:
        ax.plot(grid, latency.predict_latency(grid, fit_row["overhead_us"], fit_row["gflops"]), color=color, lw=1.2,
                alpha=0.8)


def _one(fits, b):
    f = fits[fits["backend"] == b] if len(fits) else fits
    return f.iloc[0] if len(f) else None


def fig_overhead_vs_compute(sweep: pd.DataFrame, fits: pd.DataFrame, peak_gflops: float | None = None,
                            machine: str | None = None, figures_dir=None, reference: str = "numpy") -> Figure:
    """Log-log latency per call against FLOPs, one panel per backend family: measured medians with their
    intervals (points), each backend's fitted model (lines; dash-dot: per-layer model), the NumPy engine in
    grey on every panel and the measured float32 GEMM rate (dashed)."""
    if machine is not None:
        sweep, fits = sweep[sweep["machine"] == machine], fits[fits["machine"] == machine]
    if not len(sweep):
        return _empty("no benchmark results")
    lo, hi = sweep["flops"].min() / 2, sweep["flops"].max() * 2
    grid = np.geomspace(lo, hi, 200)
    fig, panels = family_grid(sweep["backend"].unique(), width=13, panel_h=3.4)
    ref = sweep[sweep["backend"] == reference].sort_values("flops")
    for fam, names, ax in panels:
        if len(ref) and reference not in names:
            ax.plot(ref["flops"], ref["median_us"], color="0.65", lw=2.5, alpha=0.6, label=f"{reference} (measured)")
        for b in names:
            g = sweep[sweep["backend"] == b]
            c = color_for(b)
            ax.errorbar(g["flops"], g["median_us"], yerr=[(g["median_us"] - g["ci_lo_us"]).clip(lower=0), (g["ci_hi_us"] - g["median_us"]).clip(lower=0)],
                        fmt=marker_for(b), color=c, ms=4, lw=0, elinewidth=1, label=b, alpha=0.9)
            _fit_curve(ax, grid, _one(fits, b), g, c)
        if peak_gflops and np.isfinite(peak_gflops):
            ax.plot(grid, grid / (1e3 * peak_gflops), color="0.4", ls="--", lw=1,
                    label=f"GEMM rate ({peak_gflops:.0f} GFLOP/s)")
        ax.set(xscale="log", yscale="log", title=fam)
        flops_axis(ax)
        ax.yaxis.set_major_formatter(FuncFormatter(_us))
        ax.yaxis.set_major_locator(LogLocator(base=10))
        panel_legend(ax)
    fig.supxlabel("work per call (FLOPs, batch 1)")
    fig.supylabel("median latency per call")
    fig.suptitle("Latency against model size by family: points measured (95 % interval), lines fitted "
                 "(identifiable fits only)")
    describe(fig, *captions.latency_panels(sweep, machine))
    if figures_dir is not None:
        save(fig, "overhead_vs_compute", figures_dir)
    return fig


def fig_overhead_share(sweep: pd.DataFrame, fits: pd.DataFrame, machine: str | None = None,
                       figures_dir=None) -> Figure:
    """Share of each measured call that the fitted fixed cost (overhead, + layers × per-layer cost) accounts
    for, per family; points above 100 % are kept (they are the fit's misses), not clipped."""
    if machine is not None:
        sweep, fits = sweep[sweep["machine"] == machine], fits[fits["machine"] == machine]
    if not len(fits):
        return _empty("no fits")
    fig, panels = family_grid(fits["backend"].unique(), width=13, panel_h=3.0)
    top = 1.0
    for fam, names, ax in panels:
        for b in names:
            f = _one(fits, b)
            if f is None or not np.isfinite(f["overhead_us"]):
                continue
            g = sweep[sweep["backend"] == b].sort_values("flops")
            per = f["per_layer_us"] if np.isfinite(f["per_layer_us"]) else 0.0
            fixed = f["overhead_us"] + per * g["layers"].fillna(0) if "layers" in g else f["overhead_us"]
            share = fixed / g["median_us"]
            top = max(top, float(share.max()))
            ax.plot(g["flops"], share, color=color_for(b), marker=marker_for(b), ms=4, lw=1.2, label=b)
        for s, txt in ((0.5, "50 %"), (0.1, "10 %")):
            ax.axhline(s, color="0.5", ls=":", lw=1)
        ax.set(xscale="log", title=fam)
        flops_axis(ax)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        panel_legend(ax)
    for _, _, ax in panels:
        ax.set_ylim(0, top * 1.05)
    fig.supxlabel("work per call (FLOPs, batch 1)")
    fig.supylabel("fitted fixed cost / measured latency")
    fig.suptitle("Share of each call that is fixed per-call overhead (dotted: 50 % and 10 %)")
    if figures_dir is not None:
        save(fig, "overhead_share", figures_dir)
    return fig


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


def fig_threads(scaling: pd.DataFrame, machine: str | None = None, figures_dir=None) -> Figure:
    """Speed-up from the fewest to the most threads against FLOPs, one panel per backend family."""
    if machine is not None and len(scaling):
        scaling = scaling[scaling["machine"] == machine]
    if not len(scaling):
        return _empty("only one thread setting was measured")
    ideal = (scaling["threads_hi"] / scaling["threads_lo"]).max()
    lo_t, hi_t = int(scaling["threads_lo"].min()), int(scaling["threads_hi"].max())
    fig, panels = family_grid(scaling["backend"].unique(), width=13, panel_h=2.9)
    for fam, names, ax in panels:
        for b in names:
            g = scaling[scaling["backend"] == b].sort_values("flops")
            ax.plot(g["flops"], g["speedup"], color=color_for(b), marker=marker_for(b), ms=4, lw=1.2, label=b)
        ax.axhline(1, color="0.5", ls=":", lw=1)
        ax.axhline(ideal, color="0.4", ls="--", lw=1)
        ax.set(xscale="log", title=fam)
        flops_axis(ax)
        panel_legend(ax)
    fig.supxlabel("work per call (FLOPs, batch 1)")
    fig.supylabel(f"speed-up, {lo_t} → {hi_t} threads (×)")
    fig.suptitle(f"Thread scaling at batch 1 (dashed: ideal {ideal:g}×; dotted: no gain)")
    describe(fig, *captions.threads(scaling))
    if figures_dir is not None:
        save(fig, "threads", figures_dir)
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
    describe(fig, *captions.slowdown(pivot, reference))
    if figures_dir is not None:
        save(fig, name, figures_dir)
    return fig


# figures of the detail sections live in plots_more; re-exported for the stage notebooks
from overhead.report.plots_more import fig_breakdown, fig_cold_start, fig_pipeline  # noqa: E402,F401
