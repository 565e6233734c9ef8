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
    """What idleness costs a batch-1 call and whether it changes the fastest path or the best thread count
    (:func:`overhead.report.idle.verdict`), per machine with idle-gap runs: a change counts only where the
    intervals separate; the rest are named as ties."""
    every = R.every("idle_gap")
    if not len(every):
        return NOT_MEASURED.format("idle_gap.csv")
    machines = [m for m in [R.machine, *R.others("idle_gap")] if m in set(every["machine"])]
    return " ".join(_machine_text(every[every["machine"] == m], m) for m in machines)


def _machine_text(idle: pd.DataFrame, machine: str) -> str:
    ok = idle[idle["status"].astype(str) == "ok"] if "status" in idle else idle
    base = ok[ok["gap_ms"] == ok["gap_ms"].min()].set_index(["model", "backend", "threads"])["median_us"]
    top = ok[ok["gap_ms"] == ok["gap_ms"].max()].set_index(["model", "backend", "threads"])["median_us"]
    slow = (top / base).dropna()
    out = []
    if len(slow):
        worst = slow.idxmax()
        out.append(f"On {machine}, after {ok['gap_ms'].max():g} ms of idleness a batch-1 call costs {fmt_x(slow.min())} "
                   f"to {fmt_x(slow.max())} a back-to-back call (measured; worst: {code(worst[1])} on {code(worst[0])} "
                   f"with {worst[2]} thread{'s' if worst[2] != 1 else ''}).")
    else:
        out.append(f"On {machine}:")
    try:
        v = verdict(idle)
    except (KeyError, ValueError) as exc:
        return " ".join([*out, f"(No ranking verdict: {type(exc).__name__}.)"])
    clear = [r for r in v["ranking"] if r["clear"]]
    ties = sum(r["fastest_changed"] and not r["clear"] for r in v["ranking"])
    tie_text = f" ({ties} other change{'s' if ties != 1 else ''} within the intervals: ties)" if ties else ""
    if clear:
        named = "; ".join(f"{code(r['fastest_at_gap'])} instead of {code(r['fastest_gap0'])} on {code(r['model'])}, "
                          f"{r['threads']} thread{'s' if r['threads'] != 1 else ''}, after {r['gap_ms']:g} ms"
                          for r in clear)
        out.append(f"The fastest path changes beyond the intervals in {len(clear)} of {len(v['ranking'])} "
                   f"settings: {named}{tie_text}.")
    else:
        out.append(f"The fastest path does not change beyond the intervals{tie_text}.")
    ch = v["best_threads_changes_clearly"]
    out.append(f"The best thread count changes beyond the intervals for {', '.join(code(b) for b in ch)}." if ch else
               "The best thread count does not change beyond the intervals.")
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
