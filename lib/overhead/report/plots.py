"""The figures the stage notebooks and the report share: cold start (03_startup, "Cold start and memory"), the
PNG-to-label pipeline and the per-call decomposition (04_pipeline, their report sections). A figure only the report
shows lives in its section module (``overhead.report.sections``). Each returns a matplotlib Figure (no pyplot state);
``figures_dir`` writes PNG + SVG.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from overhead.report import captions
from overhead.report.plotkit import _empty, _fig, _us, describe, save
from overhead.report.style import STAGE_COLORS, color_for, order_backends


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
    describe(fig, *captions.cold_start(s, model, phases))
    if figures_dir is not None:
        save(fig, "cold_start", figures_dir)
    return fig


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
    describe(fig, *captions.stacked(t, stages, "total_us", model, "the time from PNG bytes to a label"))
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
    describe(fig, *captions.stacked(t, buckets, "total", model, "a call's time"))
    if figures_dir is not None:
        save(fig, "breakdown", figures_dir)
    return fig
