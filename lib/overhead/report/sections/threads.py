"""Section "Threads": which paths get faster or slower with more threads beyond their intervals (sentence) and the
thread-scaling figure."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from overhead.report import captions
from overhead.report.fmt import (
    code,
    fmt_flops,
    fmt_pct,
    fmt_x,
    not_measured,
    primary,
)
from overhead.report.plotkit import (
    _empty,
    describe,
    family_grid,
    flops_axis,
    panel_legend,
    save,
)
from overhead.report.style import color_for, marker_for


def thread_split(R, machine) -> tuple[dict, pd.DataFrame]:
    """On the largest model swept over threads on ``machine``: each path's speed-up from the fewest to the most
    threads (batch 1) and its verdict, ``faster`` / ``slower`` only when the two run-level intervals separate,
    else ``same``. Returns (facts of that model, the per-path table)."""
    sc = R.scaling[R.scaling["machine"] == machine] if len(R.scaling) else R.scaling
    if not len(sc):
        return {}, pd.DataFrame()
    big = sc[sc["flops"] == sc["flops"].max()].copy()
    b = R.bench if R.bench is not None else pd.DataFrame()
    b = b[(b["machine"] == machine) & (b["batch"] == 1) & (b["status"] == "ok")] if len(b) else b
    verdict = []
    for r in big.itertuples():
        g = b[(b["model"] == r.model) & (b["backend"] == r.backend)] if len(b) else b
        lo, hi = g[g["threads"] == r.threads_lo], g[g["threads"] == r.threads_hi]
        if not len(lo) or not len(hi):
            verdict.append("same")
        elif float(hi["ci_lo_us"].min()) > float(lo["ci_hi_us"].max()):
            verdict.append("slower")
        elif float(hi["ci_hi_us"].max()) < float(lo["ci_lo_us"].min()):
            verdict.append("faster")
        else:
            verdict.append("same")
    big["verdict"] = verdict
    facts = {"model": big["model"].iloc[0], "flops": float(big["flops"].iloc[0]),
             "lo": int(big["threads_lo"].min()), "hi": int(big["threads_hi"].max())}
    return facts, big


def _thread_list(t: pd.DataFrame, slower: bool) -> str:
    t = t.sort_values("speedup", ascending=slower)
    if slower:
        return ", ".join(f"{code(r.backend)} {fmt_pct(1 / r.speedup - 1)} slower" for r in t.itertuples())
    return ", ".join(f"{code(r.backend)} {fmt_x(r.speedup)} faster" for r in t.itertuples())


def threads_text(R) -> str:
    """Per machine, on the largest model swept over threads: which paths got faster and which got slower with
    more threads (beyond both intervals), named with their change; the rest are ties."""
    t = primary(R, "scaling")
    if not len(t):
        return not_measured("second thread setting")
    machines = [R.machine] + R.others("scaling")
    out = []
    for i, m in enumerate(machines):
        facts, big = thread_split(R, m)
        if not facts:
            continue
        up, down = big[big["verdict"] == "faster"], big[big["verdict"] == "slower"]
        same = len(big) - len(up) - len(down)
        head = (f"From {facts['lo']} to {facts['hi']} threads at batch 1, on the largest model swept over threads "
                f"({code(facts['model'])}, {fmt_flops(facts['flops'])})" if i == 0 else f"On {code(m)}")
        out.append(f"- {head}{f' on {code(m)}' if i == 0 else ''}: "
                   + (f"{len(up)} paths get faster ({_thread_list(up, False)})" if len(up) else "no path gets faster")
                   + "; " + (f"{len(down)} get slower ({_thread_list(down, True)})" if len(down)
                             else "none gets slower")
                   + f"; {same} change less than their intervals' width (ties).")
    return ("What more threads do to each path, counted only where the run-level intervals of the two thread "
            "settings separate:\n\n" + "\n".join(out))


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
