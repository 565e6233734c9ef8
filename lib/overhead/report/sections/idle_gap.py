"""Section "Sparse traffic: calls after an idle gap": what idleness costs a batch-1 call and whether it changes the
fastest path or the best thread count (``overhead.report.idle.verdict``), and its figure."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from overhead.report import captions
from overhead.report.fmt import (
    NOT_MEASURED,
    code,
    fmt_x,
    have,
)
from overhead.report.idle import verdict
from overhead.report.plotkit import (
    _empty,
    _fig,
    _legend_right,
    describe,
    save,
)
from overhead.report.style import color_for, marker_for, order_backends


def idle_gap_text(R) -> str:
    """Does sparse traffic change the ranking or the best thread count? (:func:`overhead.report.idle.verdict`)."""
    idle = have(R, "idle_gap")
    if idle is None:
        return NOT_MEASURED.format("idle_gap.csv")
    ok = idle[idle["status"].astype(str) == "ok"] if "status" in idle else idle
    base = ok[ok["gap_ms"] == ok["gap_ms"].min()].set_index(["model", "backend", "threads"])["median_us"]
    top = ok[ok["gap_ms"] == ok["gap_ms"].max()].set_index(["model", "backend", "threads"])["median_us"]
    slow = (top / base).dropna()
    out = []
    if len(slow):
        worst = slow.idxmax()
        out.append(f"After {ok['gap_ms'].max():g} ms of idleness a batch-1 call costs {fmt_x(slow.min())} to "
                   f"{fmt_x(slow.max())} a back-to-back call (measured; worst: {code(worst[1])} on {code(worst[0])} "
                   f"with {worst[2]} thread{'s' if worst[2] != 1 else ''}).")
    try:
        v = verdict(idle)
        out.append(("The fastest path changes under sparse traffic" + (" (intervals separate)." if
                    v["fastest_changes_clearly"] else ", but not beyond the intervals.")) if v["fastest_changes"]
                   else "The fastest path is the same for sparse traffic as for back-to-back calls.")
        ch = v["best_threads_changes_clearly"] or v["best_threads_changes"]
        out.append(f"The best thread count changes for {', '.join(code(b) for b in ch)}." if ch else
                   "The best thread count does not change.")
    except (KeyError, ValueError) as exc:
        out.append(f"(No ranking verdict: {type(exc).__name__}.)")
    return " ".join(out)


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
