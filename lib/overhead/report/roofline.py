"""The float32 roofline of a machine: achieved GFLOP/s of every path against the measured and theoretical ceilings.

Achieved rate of a bench row = model FLOPs x batch / median latency. The float32 ceilings come from
``ceilings.csv`` (best GEMM across libraries per thread setting) and its ``.meta.json`` summary
(theoretical peak = cores x clock x FLOPs per cycle). Reduced-precision paths (int8, fp16) are drawn
hollow: they are not bounded by the float32 ceiling; their own ceiling (int8 with VNNI/AMX) is named in
the caption when the summary has one, and "none drawn" otherwise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator

from overhead.report import captions
from overhead.report.plotkit import _fig, _si, describe, save
from overhead.report.style import color_for, marker_for, order_backends

REDUCED_TAGS = ("int8", "fp16", "bf16")


def is_reduced_precision(backend: str) -> bool:
    """int8 / fp16 / bf16 paths: not bounded by the float32 ceiling."""
    return any(tag in str(backend) for tag in REDUCED_TAGS)


def achieved(bench: pd.DataFrame, machine: str | None = None, batch="best") -> pd.DataFrame:
    """Achieved GFLOP/s per (model, backend, threads) from ok rows: flops x batch / median.

    ``batch="best"`` keeps each triple's fastest rate over batch sizes (its batch is in the row);
    an int keeps that batch only."""
    b = bench[bench["status"].astype(str) == "ok"].copy() if "status" in bench else bench.copy()
    if machine is not None and "machine" in b:
        b = b[b["machine"] == machine]
    b = b[(b["median_us"] > 0) & b["flops"].notna()]
    if batch != "best":
        b = b[b["batch"] == int(batch)]
    b["flops_per_call"] = b["flops"].astype(float) * b["batch"].astype(float)
    b["gflops"] = b["flops_per_call"] / (b["median_us"].astype(float) * 1e3)
    b["reduced_precision"] = [is_reduced_precision(x) for x in b["backend"]]
    if batch == "best" and len(b):
        b = b.loc[b.groupby(["model", "backend", "threads"])["gflops"].idxmax()]
    cols = ["model", "backend", "threads", "batch", "flops", "flops_per_call", "median_us", "gflops",
            "reduced_precision"]
    return b[cols].sort_values(["threads", "flops", "backend"]).reset_index(drop=True)


def ceiling_lines(ceilings: pd.DataFrame | None, summary: dict | None, threads: int) -> dict:
    """{'measured': (GFLOP/s, label) or None, 'theoretical': (GFLOP/s, label) or None} at a thread setting."""
    out = {"measured": None, "theoretical": None}
    if ceilings is not None and len(ceilings):
        c = ceilings[(ceilings["threads"] == threads)]
        c = c[c["status"].astype(str) == "ok"] if "status" in c else c
        if len(c):
            r = c.loc[c["gflops"].idxmax()]
            out["measured"] = (float(r["gflops"]), f"best measured GEMM: {r['library']}, n={int(r['n'])} "
                                                   f"({float(r['gflops']):.0f} GFLOP/s)")
    per_core = (summary or {}).get("fp32_peak_gflops_1core")
    if per_core:
        peak = float(per_core) * threads
        how = "nominal clock" if (summary or {}).get("clock_is_assumption", True) else "measured clock"
        below = out["measured"] is not None and out["measured"][0] > peak
        out["theoretical"] = (peak, f"stated fp32 peak, {threads} core{'s' if threads > 1 else ''} "
                                    f"({peak:.0f} GFLOP/s; {how})"
                                    + ("; below the measured GEMM: no bound" if below else ""))
    return out


def reduced_note(summary: dict | None) -> str:
    s = summary or {}
    if s.get("int8_peak_gops"):
        return (f"hollow markers: int8/fp16 paths, not bounded by the fp32 ceiling; int8 ceiling "
                f"{s['int8_peak_gops']:.0f} GOP/s ({str(s.get('int8_derivation', '')).split(':')[0]}), not drawn")
    return "hollow markers: int8/fp16 paths, not bounded by the fp32 ceiling; no int8 ceiling is drawn"


def fig_roofline(bench: pd.DataFrame, ceilings: pd.DataFrame | None = None, summary: dict | None = None,
                 machine: str | None = None, batch="best", figures_dir=None, name: str = "roofline") -> Figure:
    """One panel per thread setting: achieved GFLOP/s vs FLOPs per call, ceilings as horizontal lines."""
    if machine is None and "machine" in bench and len(bench):
        machine = str(bench["machine"].iloc[0])
    if ceilings is not None and machine is not None and "machine" in ceilings:
        ceilings = ceilings[ceilings["machine"] == machine]
    a = achieved(bench, machine, batch)
    settings = sorted(int(t) for t in a["threads"].unique()) or [1]
    fig = _fig(5.2 * len(settings) + 2.6, 4.4)
    axes = fig.subplots(1, len(settings), sharey=True, squeeze=False)[0]
    for ax, t in zip(axes, settings):
        at = a[a["threads"] == t]
        for b in order_backends(at["backend"]):
            g = at[at["backend"] == b].sort_values("flops_per_call")
            hollow = bool(g["reduced_precision"].iloc[0])
            ax.plot(g["flops_per_call"], g["gflops"], ls=":" if hollow else "-", lw=1, color=color_for(b),
                    marker=marker_for(b), mfc="none" if hollow else color_for(b), ms=5,
                    label=b + (" (reduced precision)" if hollow else ""))
        lines = ceiling_lines(ceilings, summary, t)
        for key, style in (("theoretical", dict(ls="--", color="#444444")), ("measured", dict(ls="-", color="#111111"))):
            if lines[key] is not None:
                y, text = lines[key]
                ax.axhline(y, lw=1.6, label=f"_{text}", **style)
                ax.annotate(text, (0.01, y), xycoords=("axes fraction", "data"), fontsize=6.5,
                            xytext=(0, 2 if key == "theoretical" else -8), textcoords="offset points",
                            color=style["color"])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=100.0))
        ax.xaxis.set_major_formatter(_si("FLOP"))
        ax.set_xlabel("FLOPs per call (model FLOPs x batch)")
        ax.set_title(f"{t} thread{'s' if t > 1 else ''}" + (f", batch {batch}" if batch != "best" else
                                                             ", best batch per path"))
    axes[0].set_ylabel("achieved GFLOP/s")
    handles = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="outside right center", fontsize=7, frameon=False)
    fig.suptitle(f"float32 roofline{f' ({machine})' if machine else ''}: achieved rate vs the machine's ceilings\n"
                 f"{reduced_note(summary)}", fontsize=9)
    fl = a[~a["reduced_precision"].astype(bool)]
    t_best = int(fl.loc[fl["gflops"].idxmax(), "threads"]) if len(fl) else 1
    meas = ceiling_lines(ceilings, summary, t_best)["measured"]
    describe(fig, *captions.roofline(a, meas[0] if meas else None, machine))
    if figures_dir is not None:
        save(fig, name, figures_dir)
    return fig


def share_of_ceiling(bench: pd.DataFrame, ceilings: pd.DataFrame | None, summary: dict | None = None,
                     machine: str | None = None) -> pd.DataFrame:
    """achieved() plus the share of the measured and theoretical float32 ceilings (NaN for reduced precision)."""
    a = achieved(bench, machine)
    meas, theo = [], []
    for t, red in zip(a["threads"], a["reduced_precision"]):
        lines = ceiling_lines(ceilings, summary, int(t))
        meas.append(np.nan if red or lines["measured"] is None else lines["measured"][0])
        theo.append(np.nan if red or lines["theoretical"] is None else lines["theoretical"][0])
    a["share_of_measured"] = a["gflops"] / np.asarray(meas, float)
    a["share_of_theoretical"] = a["gflops"] / np.asarray(theo, float)
    return a
