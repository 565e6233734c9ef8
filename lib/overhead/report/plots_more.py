"""The report's figures of the detail sections: residuals of the latency model, who pays for predict, cold
start, pipeline, per-call breakdown, idle gaps and memory in a loop. Same conventions as ``plots``."""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from overhead.report import captions, latency
from overhead.report.plotkit import (
    _empty,
    _fig,
    _legend_right,
    _us,
    describe,
    family_grid,
    flops_axis,
    panel_legend,
    save,
)
from overhead.report.style import STAGE_COLORS, color_for, marker_for, order_backends


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




def fig_residuals(resid: pd.DataFrame, machine: str | None = None, figures_dir=None) -> Figure:
    """Fitted / measured − 1 per backend and model, one panel per family: filled markers for the chosen model,
    hollow ones for the two-term model where a per-layer model was chosen; the ±25 % band marks a miss."""
    if machine is not None and len(resid):
        resid = resid[resid["machine"] == machine]
    if not len(resid):
        return _empty("no fits to show residuals of")
    fig, panels = family_grid(resid["backend"].unique(), width=13, panel_h=2.8)
    lim = max(0.3, float(np.nanmax(np.abs(resid[["rel_err", "two_term_rel_err"]].to_numpy()))) * 1.1)
    for fam, names, ax in panels:
        ax.axhspan(-latency.MISS, latency.MISS, color="0.92", zorder=0)
        ax.axhline(0, color="0.5", lw=1)
        for b in names:
            g = resid[resid["backend"] == b].sort_values("flops")
            c = color_for(b)
            ax.plot(g["flops"], g["rel_err"], color=c, marker=marker_for(b), ms=4, lw=1, label=f"{b} ({g['chosen'].iloc[0]})")
            if (g["chosen"] == "per-layer").any():
                ax.scatter(g["flops"], g["two_term_rel_err"], facecolors="none", edgecolors=c, marker=marker_for(b),
                           s=22, label=f"{b}, two-term")
        ax.set(xscale="log", ylim=(-lim, lim), title=fam)
        flops_axis(ax)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        panel_legend(ax)
    fig.supxlabel("work per call (FLOPs, batch 1)")
    fig.supylabel("fitted / measured − 1")
    fig.suptitle(f"Residuals of the latency model (grey band: within ±{latency.MISS:.0%})")
    if figures_dir is not None:
        save(fig, "residuals", figures_dir)
    return fig


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


def fig_idle_gap(idle: pd.DataFrame, machine: str | None = None, figures_dir=None) -> Figure:
    """Batch-1 latency after an idle gap, relative to back-to-back calls: one panel per model × thread count."""
    if machine is not None and idle is not None and len(idle):
        idle = idle[idle["machine"] == machine]
    if idle is None or not len(idle):
        return _empty("idle gap not measured")
    keys = sorted({(m, int(t)) for m, t in zip(idle["model"], idle["threads"])})
    fig = _fig(4.2 * len(keys) + 2, 3.8)
    axes = fig.subplots(1, len(keys), squeeze=False, sharey=True)[0]
    for ax, (m, t) in zip(axes, keys):
        g = idle[(idle["model"] == m) & (idle["threads"] == t)]
        for b in order_backends(g["backend"].unique()):
            gb = g[g["backend"] == b].sort_values("gap_ms")
            base = gb.loc[gb["gap_ms"] == gb["gap_ms"].min(), "median_us"].iloc[0]
            ax.plot(gb["gap_ms"], gb["median_us"] / base, color=color_for(b), marker=marker_for(b),
                    ms=4, lw=1.2, label=b)
        ax.axhline(1, color="0.5", ls=":", lw=1)
        ax.set_xscale("symlog", linthresh=1)          # gap 0 (back-to-back) stays on the axis
        gaps = sorted(float(x) for x in g["gap_ms"].unique())
        ax.set_xticks(gaps)                           # the measured gaps only (no "-1 ms" tick)
        ax.set_xlim(left=0, right=max(gaps) * 1.3 if gaps[-1] > 0 else 1)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _p: f"{x:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _p: ""))
        ax.set(title=f"{m}, {t} thread{'s' if t > 1 else ''}", xlabel="idle gap before the call (ms)")
    axes[0].set_ylabel("latency / back-to-back latency")
    _legend_right(axes[0], *_uniq(axes))
    describe(fig, *captions.idle_gap(idle))
    if figures_dir is not None:
        save(fig, "idle_gap", figures_dir)
    return fig


def _uniq(axes):
    seen = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    labs = order_backends(seen)
    return [seen[k] for k in labs], labs


def fig_memory_loop(mem: pd.DataFrame, machine: str | None = None, figures_dir=None) -> Figure:
    """Resident memory against the number of calls made in a loop, per backend."""
    if machine is not None and mem is not None and len(mem):
        mem = mem[mem["machine"] == machine]
    if mem is not None and "status" in mem:
        mem = mem[mem["status"].astype(str) == "ok"]
    if mem is None or not len(mem):
        return _empty("memory in a loop not measured")
    fig = _fig(9, 4.2)
    ax = fig.add_subplot()
    for b in order_backends(mem["backend"].unique()):
        g = mem[mem["backend"] == b].sort_values("calls")
        ax.plot(g["calls"], g["rss_mb"], color=color_for(b), marker=marker_for(b), ms=4, lw=1.2, label=b)
    ax.set(xscale="log", xlabel="calls made in the loop", ylabel="resident memory (MB)",
           title=f"Memory in a loop ({', '.join(sorted(set(mem['model'])))}, batch 1)")
    _legend_right(ax)
    if figures_dir is not None:
        save(fig, "memory_loop", figures_dir)
    return fig
