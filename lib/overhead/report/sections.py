"""Captions of the report's detail sections (batch, threads, cold start, pipeline, breakdown, agreement):
every number computed from ``R``."""
from __future__ import annotations

import html

import pandas as pd

from overhead.report import wins
from overhead.report.fmt import (
    code,
    fmt_flops,
    fmt_pct,
    fmt_us,
    fmt_x,
    not_measured,
    primary,
    small_model,
)
from overhead.report.style import TF_KERAS, order_backends


def slowdown_text(R) -> str:
    """One sentence: the range of TF/Keras slow-downs against the NumPy engine on the small model and on the
    largest model the NumPy engine and those paths share (named)."""
    vs = primary(R, "vs_numpy")
    if not len(vs):
        return not_measured("NumPy engine beside a TensorFlow path")
    tf = vs[vs["backend"].isin(TF_KERAS)]
    if not len(tf):
        return not_measured("TensorFlow path beside the NumPy engine")
    m = small_model(R)
    parts = []
    for model in dict.fromkeys([m, tf.sort_values("flops")["model"].iloc[-1]]):
        g = tf[tf["model"] == model]
        if len(g):
            lo, hi = g.loc[g["slowdown"].idxmin()], g.loc[g["slowdown"].idxmax()]
            parts.append(f"on {code(model)} {fmt_x(lo['slowdown'])} ({code(lo['backend'])}) to "
                         f"{fmt_x(hi['slowdown'])} ({code(hi['backend'])})")
    return ("Against the NumPy engine, TensorFlow and Keras paths take " + "; ".join(parts)
            + " the engine's latency (the second model is the largest they share with the NumPy engine).")


def _batch_gains(R):
    b = primary(R, "batch")
    if not len(b) or b["batch"].nunique() < 2:
        return None, None
    m = small_model(R) if small_model(R) in set(b[b["batch"] > 1]["model"]) else b[b["batch"] > 1]["model"].iloc[0]
    g = b[b["model"] == m]
    rows = []
    for be in order_backends(g["backend"].unique()):
        x = g[g["backend"] == be].sort_values("batch")
        if len(x) > 1:
            rows.append({"backend": be, "batch_lo": int(x["batch"].iloc[0]), "batch_hi": int(x["batch"].iloc[-1]),
                         "gain": float(x["throughput_sps"].iloc[-1] / x["throughput_sps"].iloc[0])})
    return m, pd.DataFrame(rows)


def batch_text(R) -> str:
    """One sentence: the throughput gain from the smallest to the largest batch on the small model, for
    ``keras.predict``, the NumPy engine and the extremes (the full list is ``batch_table``)."""
    m, t = _batch_gains(R)
    if t is None or not len(t):
        return not_measured("batch-size sweep")
    hi, lo = t.loc[t["gain"].idxmax()], t.loc[t["gain"].idxmin()]
    kp = t[t["backend"] == "keras.predict"]
    return (f"On {code(m)}, batching from {int(t['batch_lo'].min())} to {int(t['batch_hi'].max())} samples per call "
            f"raises throughput {fmt_x(hi['gain'])} for {code(hi['backend'])} but only {fmt_x(lo['gain'])} for "
            f"{code(lo['backend'])} (median over {len(t)} paths {fmt_x(t['gain'].median())}"
            + (f"; `keras.predict` {fmt_x(float(kp['gain'].iloc[0]))}" if len(kp) and hi["backend"] != "keras.predict"
               else "")
            + "): batching pays where the fixed cost per call is large.")


def batch_table(R) -> pd.DataFrame:
    m, t = _batch_gains(R)
    if t is None or not len(t):
        return pd.DataFrame()
    return pd.DataFrame({"backend": t["backend"], "batches": [f"{a} → {b}" for a, b in zip(t["batch_lo"], t["batch_hi"])],
                         f"throughput gain on {m}": [fmt_x(x) for x in t["gain"]]}).set_index("backend")


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
    machines = [R.machine] + sorted(set(R.scaling["machine"]) - {R.machine})
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


def startup_text(R) -> str:
    """Cold start and memory: the range over paths on the report's machine, and the quickest start / the
    smallest memory named by the rule of ``overhead.report.wins`` over every machine (near-equal paths tie)."""
    s = primary(R, "startup")
    if not len(s):
        return not_measured("cold-start measurement (startup.csv)")
    lo, hi = s.loc[s["start_to_first_pred_s"].idxmin()], s.loc[s["start_to_first_pred_s"].idxmax()]
    out = (f"A fresh process needs {lo['start_to_first_pred_s']:.3g} s to {hi['start_to_first_pred_s']:.3g} s "
           f"({code(hi['backend'])}) to its first prediction on {code(R.machine)}, over "
           f"{int(s['reps'].min())}+ repetitions each")
    if "rss_after_first_call_mb" in s:
        out += (f"; resident memory after the first call ranges from {s['rss_after_first_call_mb'].min():.3g} to "
                f"{s['rss_after_first_call_mb'].max():.3g} MB")
    raw = (getattr(R, "raw", None) or {}).get("startup")
    if raw is not None and len(raw):
        ok = raw[raw["status"].astype(str) == "ok"] if "status" in raw else raw
        model = lo["model"]
        ok = ok[ok["model"] == model]
        quick = wins.decide(wins.from_repetitions(ok, "start_to_first_pred_s"), "cold start", R=R)
        out += f". Quickest start on {code(model)}: {wins.names(quick)}"
        if "rss_after_first_call_mb" in ok:
            small = wins.decide(wins.from_repetitions(ok, "rss_after_first_call_mb"), "memory", R=R)
            out += f"; smallest memory: {wins.names(small)}"
        out += " (the range of the repetitions as interval, over every machine)"
    return out + "."


def pipeline_text(R) -> str:
    p = primary(R, "pipeline")
    if not len(p):
        return not_measured("pipeline measurement (pipeline.csv)")
    lo, hi = p.loc[p["non_inference_share"].idxmin()], p.loc[p["non_inference_share"].idxmax()]
    return ("From PNG bytes to a label, the share of time outside inference ranges from "
            f"{fmt_pct(p['non_inference_share'].min())} ({code(lo.backend)}, {code(lo.model)}) to "
            f"{fmt_pct(p['non_inference_share'].max())} ({code(hi.backend)}, {code(hi.model)}).")


def _breakdown_rows(R):
    b = primary(R, "breakdown")
    if not len(b):
        return None
    buckets = [c for c in b.columns if c not in ("machine", "model", "backend", "measured_median_us")]
    b = b.drop_duplicates(["model", "backend"]).reset_index(drop=True)
    tot = b[buckets].sum(axis=1)
    top = b[buckets].idxmax(axis=1)
    return pd.DataFrame({"model": b["model"], "backend": b["backend"], "bucket": top,
                         "share": [b.loc[i, top[i]] / tot[i] for i in b.index], "total_us": tot,
                         "measured_us": b["measured_median_us"]})


def breakdown_text(R) -> str:
    """One sentence: the largest bucket of ``keras.predict`` on the small model (or the first decomposed row),
    and how many decompositions there are (all in ``breakdown_table``)."""
    t = _breakdown_rows(R)
    if t is None:
        return not_measured("per-call decomposition (breakdown.csv)")
    m = small_model(R)
    pick = t[(t["backend"] == "keras.predict") & (t["model"] == m)]
    r = (pick if len(pick) else t).iloc[0]
    return (f"Of a `{html.escape(str(r['backend']))}` call on {code(r['model'])} ({fmt_us(r['total_us'])} decomposed; "
            f"measured median {fmt_us(r['measured_us'])}), the largest bucket is {html.escape(str(r['bucket']))} "
            f"({fmt_pct(r['share'])}); the table gives the largest bucket of each of the {len(t)} decompositions.")


def breakdown_table(R) -> pd.DataFrame:
    t = _breakdown_rows(R)
    if t is None:
        return pd.DataFrame()
    return pd.DataFrame({"model": t["model"], "backend": t["backend"], "largest bucket": t["bucket"],
                         "its share": [fmt_pct(x) for x in t["share"]], "decomposed": [fmt_us(x) for x in t["total_us"]],
                         "measured median": [fmt_us(x) for x in t["measured_us"]]})


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


