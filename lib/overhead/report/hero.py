"""The hero figure under the TL;DR: measured latency against work per call for the three calls users make,
the NumPy engine and the fastest path (left), and the share of each call that is overhead with the measured
50 % / 10 % crossovers marked (right)."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from overhead.report import captions, crossing
from overhead.report.plotkit import _empty, _fig, _us, describe, flops_axis, save
from overhead.report.style import color_for, marker_for

CALLS = {"keras.predict": "model.predict", "keras.call": "model(x)", "tf.function": "tf.function"}


def fig_hero(sweep: pd.DataFrame, fits: pd.DataFrame | None = None, fastest: str | None = None,
             machine: str | None = None, figures_dir=None) -> Figure:
    if machine is not None and len(sweep):
        sweep = sweep[sweep["machine"] == machine]
        fits = fits[fits["machine"] == machine] if fits is not None and len(fits) else fits
    if not len(sweep):
        return _empty("no benchmark results")
    fig = _fig(12, 4.2)
    left, right = fig.subplots(1, 2)
    shown = [b for b in (*CALLS, "numpy", fastest) if b and b in set(sweep["backend"])]
    for b in dict.fromkeys(shown):
        g = sweep[sweep["backend"] == b].drop_duplicates("model").sort_values("flops")
        left.plot(g["flops"], g["median_us"], color=color_for(b), marker=marker_for(b), ms=4, lw=1.5,
                  label=CALLS.get(b, b) + ("" if b in CALLS else " (measured)"))
    left.set(xscale="log", yscale="log", title="Measured latency per call (batch 1)")
    left.yaxis.set_major_formatter(FuncFormatter(_us))
    flops_axis(left)
    left.set_xlabel("work per call (FLOPs)")
    left.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3, frameon=False)  # below: no curve hidden
    top, last_share = 1.05, {}
    for b, name in CALLS.items():
        c = crossing.share_curve(sweep, b, compute_ref="tf.function")
        if not len(c):
            continue
        top = max(top, 1.05 * float(c["share"].max()))
        end = c.sort_values("flops").iloc[-1]
        last_share[name] = (end["model"] if "model" in c else f"{end['flops']:.3g} FLOP", float(end["share"]))
        right.plot(c["flops"], c["share"], color=color_for(b), marker=marker_for(b), ms=4, lw=1.5,
                   label=name)
        for s in crossing.SHARES:
            x = crossing.crossover(sweep, b, s, compute_ref="tf.function")
            if x["where"] == "inside":
                right.plot([x["flops"]], [s], marker="o", ms=9, mfc="none", mec=color_for(b), mew=1.6)
    for s in crossing.SHARES:
        right.axhline(s, color="0.5", ls=":", lw=1)
    right.set(xscale="log", ylim=(0, top), title="Overhead share of a call (circles: crossings)")
    right.set_ylabel("(latency − tf.function's compute) / latency", fontsize="small")
    right.yaxis.set_major_formatter(PercentFormatter(1.0))
    flops_axis(right)
    right.set_xlabel("work per call (FLOPs)")
    right.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3, frameon=False)
    describe(fig, *captions.hero(sweep, list(dict.fromkeys(shown)), last_share, machine, CALLS))
    if figures_dir is not None:
        save(fig, "hero", figures_dir)
    return fig
