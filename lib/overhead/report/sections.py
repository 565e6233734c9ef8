"""Captions of the report's detail sections (batch, threads, cold start, pipeline, breakdown, agreement):
every number computed from ``R``."""
from __future__ import annotations

import html

from overhead.report.fmt import code, fmt_flops, fmt_pct, fmt_us, fmt_x, not_measured, primary, small_model
from overhead.report.style import order_backends


def batch_text(R) -> str:
    b = primary(R, "batch")
    if not len(b) or b["batch"].nunique() < 2:
        return not_measured("batch-size sweep")
    m = small_model(R) if small_model(R) in set(b[b["batch"] > 1]["model"]) else b[b["batch"] > 1]["model"].iloc[0]
    g = b[b["model"] == m]
    parts = []
    for be in order_backends(g["backend"].unique()):
        x = g[g["backend"] == be].sort_values("batch")
        if len(x) > 1:
            parts.append(f"{code(be)} {fmt_x(x['throughput_sps'].iloc[-1] / x['throughput_sps'].iloc[0])}")
    return (f"Throughput gain on {code(m)} from batch "
            f"{int(g['batch'].min())} to {int(g['batch'].max())}: " + ", ".join(parts) + ".")


def threads_text(R) -> str:
    t = primary(R, "scaling")
    if not len(t):
        return not_measured("second thread setting")
    small, big = t["flops"].min(), t["flops"].max()
    s_small = t[t["flops"] == small]["speedup"].median()
    s_big = t[t["flops"] == big]["speedup"].median()
    big_m, small_m = t.loc[t["flops"] == big, "model"].iloc[0], t.loc[t["flops"] == small, "model"].iloc[0]
    trend = ("more cores help more as the work per call grows" if s_big > 1.1 * s_small else
             "the gain does not grow with the work per call" if s_big <= s_small else "the gain grows only a little")
    return (f"From {int(t['threads_lo'].min())} to {int(t['threads_hi'].max())} threads the median speed-up over "
            f"backends is {fmt_x(s_small)} on the smallest model swept over threads ({code(small_m)}) and "
            f"{fmt_x(s_big)} on the largest model swept over threads ({code(big_m)}, {fmt_flops(big)}): {trend}.")


def startup_text(R) -> str:
    s = primary(R, "startup")
    if not len(s):
        return not_measured("cold-start measurement (startup.csv)")
    lo, hi = s.loc[s["start_to_first_pred_s"].idxmin()], s.loc[s["start_to_first_pred_s"].idxmax()]
    out = (f"A fresh process needs {lo['start_to_first_pred_s']:.2g} s ({code(lo['backend'])}) to "
           f"{hi['start_to_first_pred_s']:.2g} s ({code(hi['backend'])}) to its first prediction, over "
           f"{int(s['reps'].min())}+ repetitions each")
    if "rss_after_first_call_mb" in s:
        out += (f"; resident memory after the first call ranges from {s['rss_after_first_call_mb'].min():.0f} to "
                f"{s['rss_after_first_call_mb'].max():.0f} MB")
    return out + "."


def pipeline_text(R) -> str:
    p = primary(R, "pipeline")
    if not len(p):
        return not_measured("pipeline measurement (pipeline.csv)")
    lo, hi = p.loc[p["non_inference_share"].idxmin()], p.loc[p["non_inference_share"].idxmax()]
    return ("From PNG bytes to a label, the share of time outside inference ranges from "
            f"{fmt_pct(p['non_inference_share'].min())} ({code(lo.backend)}, {code(lo.model)}) to "
            f"{fmt_pct(p['non_inference_share'].max())} ({code(hi.backend)}, {code(hi.model)}).")


def breakdown_text(R) -> str:
    b = primary(R, "breakdown")
    if not len(b):
        return not_measured("per-call decomposition (breakdown.csv)")
    buckets = [c for c in b.columns if c not in ("machine", "model", "backend", "measured_median_us")]
    tot = b[buckets].sum(axis=1)
    top = b[buckets].idxmax(axis=1)
    parts = [f"{code(r.backend)} on {code(r.model)}: {html.escape(top[i])} ({fmt_pct(b.loc[i, top[i]] / tot[i])} "
             f"of {fmt_us(tot[i])} decomposed; measured median {fmt_us(r.measured_median_us)})"
             for i, r in b.drop_duplicates(["model", "backend"]).iterrows()]
    return "Largest bucket per model × backend — " + "; ".join(parts) + "."


def agreement_text(R) -> str:
    ag = R.agreement or {}
    if not ag:
        return ("*Not measured:* results from only one machine (and one run) are present; put another machine's "
                "result folder under `data/results/` to compare.")
    out = []
    for other, d in ag.items():
        s = d["summary"]
        out.append(f"- {code(R.machine)} vs {code(other)}: {s['n_agree']} of {s['n']} paired measurements "
                   f"agree after removing the overall speed factor ({s['median_ratio']:.2g}×); rank correlation of "
                   f"latencies {s['spearman']:.2f}.")
    return "\n".join(out)


