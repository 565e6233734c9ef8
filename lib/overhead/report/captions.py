"""Alt text and caption of each report figure: what it shows and its finding, computed from the data the
figure draws (never typed). Each function returns ``(alt, caption)``; the figure functions attach them with
``plotkit.describe`` and ``plotkit.publish`` puts them under the image."""
from __future__ import annotations

import numpy as np
import pandas as pd

from overhead.report.fmt import fmt_flops, fmt_pct, fmt_us, fmt_x


def _s(x: float) -> str:
    """A duration in seconds, three significant figures."""
    return f"{x:.3g} s"


def _n3(v: float) -> str:
    """Three significant figures without exponents (272,000 rather than 2.72e+05)."""
    return f"{float(f'{v:.3g}'):,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def hero(sweep: pd.DataFrame, shown: list[str], share: dict, machine: str | None,
         labels: dict | None = None) -> tuple[str, str]:
    """``share``: {call label: (largest model, its share)} of the right panel; ``labels``: the legend's name of a
    path (``model.predict`` for ``keras.predict``)."""
    labels = labels or {}
    small = sweep.loc[sweep["flops"].idxmin(), "model"]
    at = sweep[sweep["model"] == small].drop_duplicates("backend").set_index("backend")["median_us"]
    parts = [f"{labels.get(b, b)} {fmt_us(at[b])}" for b in shown if b in at.index]
    alt = (f"Two panels{f' for {machine}' if machine else ''}. Left: measured batch-1 latency per call against work "
           f"per call (FLOPs, log-log) for {', '.join(labels.get(b, b) for b in shown)}. Right: the share of each call that is overhead "
           f"(latency beyond tf.function's compute).")
    cap = f"On the smallest model ({small}) a call takes " + ", ".join(parts) + "."
    if share:
        cap += " At the largest model overhead is still " + ", ".join(
            f"{fmt_pct(s)} of {lab} ({m})" for lab, (m, s) in share.items()) + "."
    return alt, cap


def latency_panels(sweep: pd.DataFrame, machine: str | None) -> tuple[str, str]:
    small, big = sweep.loc[sweep["flops"].idxmin(), "model"], sweep.loc[sweep["flops"].idxmax(), "model"]
    spread = []
    for m in (small, big):
        g = sweep[sweep["model"] == m]
        spread.append(f"{fmt_x(g['median_us'].max() / g['median_us'].min())} on {m}")
    alt = (f"Small multiples, one panel per backend family{f' on {machine}' if machine else ''}: measured batch-1 "
           f"latency (points with 95 % intervals) and fitted latency (lines) against FLOPs per call, log-log, for "
           f"{sweep['backend'].nunique()} paths and {sweep['model'].nunique()} models.")
    cap = ("The slowest path takes " + " and ".join(spread)
           + " the time of the fastest: the gap between paths narrows as the work per call grows.")
    return alt, cap


def slowdown(pivot: pd.DataFrame, reference: str) -> tuple[str, str]:
    v = pivot.astype(float)
    stacked = v.stack().dropna()
    hi_m, hi_b = stacked.idxmax()
    lo_m, lo_b = stacked.idxmin()
    faster = int((stacked < 1).sum())
    alt = (f"Heat map of latency relative to {reference} at batch 1: {v.shape[0]} models (rows, smallest first) by "
           f"{v.shape[1]} paths (columns); red is slower, blue faster, annotated with the ratio.")
    cap = (f"From {fmt_x(stacked.min())} ({lo_b} on {lo_m}) to {fmt_x(stacked.max())} ({hi_b} on {hi_m}) the "
           f"latency of {reference}; {faster} of {len(stacked)} measured cells are faster than {reference}.")
    return alt, cap


def batch(batch: pd.DataFrame, models: list[str]) -> tuple[str, str]:
    best = []
    for m in models:
        g = batch[batch["model"] == m]
        if len(g):
            r = g.loc[g["throughput_sps"].idxmax()]
            best.append(f"{m}: {r['backend']} at batch {int(r['batch'])}, {_n3(r['throughput_sps'])} samples/s")
    alt = (f"Grid of throughput (samples/s, log) against batch size, one row per backend family and one column per "
           f"model ({', '.join(models)}).")
    return alt, "Highest measured throughput per model: " + "; ".join(best) + "."


def threads(scaling: pd.DataFrame) -> tuple[str, str]:
    lo_t, hi_t = int(scaling["threads_lo"].min()), int(scaling["threads_hi"].max())
    big = scaling[scaling["flops"] == scaling["flops"].max()]
    alt = (f"Small multiples by backend family: speed-up from {lo_t} to {hi_t} threads at batch 1 against FLOPs per "
           f"call; a dotted line at 1× (no gain) and a dashed line at the ideal.")
    best, worst = big.loc[big["speedup"].idxmax()], big.loc[big["speedup"].idxmin()]
    cap = (f"On the largest model swept over threads ({big['model'].iloc[0]}, {fmt_flops(big['flops'].iloc[0])}) the "
           f"median speed-up with {hi_t} threads ranges from {fmt_x(worst['speedup'])} ({worst['backend']}, "
           f"{fmt_pct(1 / worst['speedup'] - 1)} slower) to {fmt_x(best['speedup'])} ({best['backend']}); the text "
           f"names every path that changes beyond its intervals.")
    return alt, cap


def idle_gap(idle: pd.DataFrame) -> tuple[str, str]:
    rows = []
    for (m, t, b), g in idle.groupby(["model", "threads", "backend"]):
        base = g.loc[g["gap_ms"] == g["gap_ms"].min(), "median_us"].iloc[0]
        worst = g.loc[(g["median_us"] / base).idxmax()]
        rows.append((float(worst["median_us"] / base), b, m, int(t), float(worst["gap_ms"])))
    r, b, m, t, gap = max(rows)
    alt = ("Panels per model and thread count: batch-1 latency after an idle gap divided by the back-to-back "
           "latency, against the gap in ms (0 = back to back), one line per path.")
    cap = (f"The largest slow-down after a gap: {b} on {m} ({t} thread{'s' if t > 1 else ''}) takes {fmt_x(r)} its "
           f"back-to-back latency after {gap:g} ms idle.")
    return alt, cap


def cold_start(s: pd.DataFrame, model: str, phases: list[str]) -> tuple[str, str]:
    t = s["start_to_first_pred_s"] if "start_to_first_pred_s" in s else s[phases].sum(axis=1)
    alt = (f"Horizontal bars per path for {model}: seconds from process start to the first prediction, stacked by "
           f"phase ({', '.join(p.removesuffix('_s').replace('_', ' ') for p in phases)}), and resident memory "
           f"after the first call.")
    cap = (f"From process start to the first prediction on {model}: {_s(t.min())} to {_s(t.max())} "
           f"(longest: {t.idxmax()})")
    if "rss_after_first_call_mb" in s:
        mem = s["rss_after_first_call_mb"]
        cap += f"; resident memory {mem.min():.3g} to {mem.max():.3g} MB (largest: {mem.idxmax()})"
    return alt, cap + "."


def stacked(t: pd.DataFrame, parts: list[str], total_col: str, model: str, what: str) -> tuple[str, str]:
    share = t[parts].div(t[parts].sum(axis=1), axis=0)
    main = share.mean().idxmax()
    alt = (f"Horizontal stacked bars, one per path, for {model}: the share of {what} in each part "
           f"({', '.join(parts)}), with the total per call at the right.")
    cap = (f"The largest part is {main} for {int((share.idxmax(axis=1) == main).sum())} of {len(t)} paths; "
           f"its share ranges from {fmt_pct(share[main].min())} ({share[main].idxmin()}) to "
           f"{fmt_pct(share[main].max())} ({share[main].idxmax()}); totals from {fmt_us(t[total_col].min())} to "
           f"{fmt_us(t[total_col].max())}.")
    return alt, cap


def who_pays(walk: pd.DataFrame) -> tuple[str, str]:
    w = walk[np.isfinite(walk["delta_us"])]
    top = w.loc[w["delta_us"].idxmax()] if len(w) else walk.iloc[-1]
    first, last = walk.iloc[0], walk.iloc[-1]
    alt = (f"Horizontal bars on a log time axis for {walk['model'].iloc[0]} at batch 1: the chain of paths from "
           f"{first['backend']} to {last['backend']}, each adding one layer, with what it adds; hatched bars are "
           f"side branches with their ratio to the chain path they replace.")
    cap = (f"From {first['backend']} ({fmt_us(first['median_us'])}) to {last['backend']} "
           f"({fmt_us(last['median_us'])}); the largest step is {top['backend']}, adding {fmt_us(top['delta_us'])} "
           f"({fmt_pct(top['delta_us'] / last['median_us'])} of the last path's time).")
    return alt, cap


def roofline(a: pd.DataFrame, ceiling: float | None, machine: str | None) -> tuple[str, str]:
    fl = a[~a["reduced_precision"].astype(bool)] if "reduced_precision" in a else a
    best = fl.loc[fl["gflops"].idxmax()] if len(fl) else None
    alt = (f"One panel per thread setting{f' on {machine}' if machine else ''}: achieved GFLOP/s (log) against "
           f"FLOPs per call (log), one line per path, with the machine's float32 ceilings as horizontal lines.")
    if best is None:
        return alt, "No float32 path was measured."
    cap = (f"The highest float32 rate: {best['backend']} on {best['model']} at {best['gflops']:.3g} GFLOP/s "
           f"({int(best['threads'])} thread{'s' if int(best['threads']) > 1 else ''}, batch {int(best['batch'])})")
    if ceiling and np.isfinite(ceiling):
        cap += f", {fmt_pct(best['gflops'] / ceiling)} of the {ceiling:.3g} GFLOP/s ceiling"
    return alt, cap + "."
