"""Generated prose of the report: every number in it is computed from the analysis tables.

Functions take the dict from ``analysis.analyse`` (``R``) and return markdown strings or small tables.
The verdicts of the seed article's claims live in ``overhead.claims``.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from overhead import analysis
from overhead.plots import order_backends

SMALL_MODEL = "cnn_seed"                # "the small CNN" of the seed article
FAST_REF = ("numpy", "litert")          # the references of the TL;DR table
SIGNIFICANT_X = 2.0                     # "markedly slower" = at least this many times the latency


# ---------------------------------------------------------------- formatting ---------------------------
def fmt_us(us) -> str:
    if us is None or not np.isfinite(us):
        return "n/a"
    if us >= 1e6:
        return f"{us / 1e6:.3g} s"
    if us >= 1e3:
        return f"{us / 1e3:.3g} ms"
    return f"{us:.3g} µs"


def fmt_flops(f) -> str:
    if f is None or not np.isfinite(f):
        return "n/a"
    for s, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if f >= s:
            return f"{f / s:.3g} {p}FLOP"
    return f"{f:.3g} FLOP"


def fmt_x(r) -> str:
    if r is None or not np.isfinite(r):
        return "n/a"
    return f"{r:.0f}×" if r >= 100 else f"{r:.2g}×"


def fmt_pct(s) -> str:
    if s is None or not np.isfinite(s):
        return "n/a"
    return f"{100 * s:.1g} %" if abs(s) < 0.01 else f"{100 * s:.0f} %"


def code(name) -> str:
    return f"`{name}`"


def not_measured(what: str) -> str:
    return f"*Not measured:* no {what} in this run's results (the stage did not run or failed)."


# ---------------------------------------------------------------- lookups ------------------------------
def primary(R, key):
    t = R.get(key)
    if t is None or not len(t) or "machine" not in t.columns:
        return pd.DataFrame() if t is None else t
    return t[t["machine"] == R["machine"]]


def fit_of(R, backend):
    f = primary(R, "fits")
    f = f[f["backend"] == backend] if len(f) else f
    return f.iloc[0] if len(f) else None


def latency(R, model, backend):
    s = primary(R, "sweep")
    s = s[(s["model"] == model) & (s["backend"] == backend)] if len(s) else s
    return float(s["median_us"].iloc[0]) if len(s) else np.nan


def ratio(R, model, backend, ref):
    return latency(R, model, backend) / latency(R, model, ref)


def small_model(R) -> str | None:
    s = primary(R, "sweep")
    if not len(s):
        return None
    return SMALL_MODEL if SMALL_MODEL in set(s["model"]) else s.sort_values("flops")["model"].iloc[0]


def ladder(R) -> pd.DataFrame:
    s = primary(R, "sweep")
    return s.drop_duplicates("model").sort_values("flops")[["model", "flops"]] if len(s) else s


def where_in_ladder(R, flops) -> str:
    """Place a FLOP count among the measured models, in words."""
    lad = ladder(R)
    if not len(lad) or not np.isfinite(flops):
        return "n/a"
    below = lad[lad["flops"] <= flops]
    above = lad[lad["flops"] > flops]
    if not len(below):
        return f"below the smallest model ({code(above['model'].iloc[0])})"
    if not len(above):
        last = below.iloc[-1]
        return f"beyond the largest model measured ({code(last['model'])}, {fmt_flops(last['flops'])})"
    return f"between {code(below['model'].iloc[-1])} and {code(above['model'].iloc[0])}"


def largest_common(sweep, backends, n=1):
    """The largest model(s) on which every one of ``backends`` ran ok (None / [] if there is none)."""
    ok_all = sweep[sweep["backend"].isin(backends)].groupby("model")["backend"].nunique()
    models = ok_all[ok_all == len(set(backends))].index
    big = sweep[sweep["model"].isin(models)].drop_duplicates("model").nlargest(n, "flops")["model"].tolist()
    return (big[0] if big else None) if n == 1 else big


def tf_paths(R) -> list:
    f = primary(R, "fits")
    return [b for b in analysis.TF_PATHS if len(f) and b in set(f["backend"])]


# ---------------------------------------------------------------- TL;DR --------------------------------
def tldr_table(R) -> pd.DataFrame:
    """Per backend: fitted overhead (CI), latency and ratio to NumPy / LiteRT on the small CNN, 10 % crossover."""
    f = primary(R, "fits")
    m = small_model(R)
    rows = []
    for b in order_backends(f["backend"]) if len(f) else []:
        r = f[f["backend"] == b].iloc[0]
        row = {"backend": b,
               "overhead per call (95 % CI)": f"{fmt_us(r['overhead_us'])} [{fmt_us(r['overhead_us_lo'])}, "
                                              f"{fmt_us(r['overhead_us_hi'])}]",
               f"latency, {m}": fmt_us(latency(R, m, b))}
        for ref in FAST_REF:
            row[f"× {ref}, {m}"] = fmt_x(ratio(R, m, b, ref))
        row["overhead < 10 % above"] = fmt_flops(r["cross10_flops"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("backend") if rows else pd.DataFrame()


def tldr(R) -> str:
    """The short answer: a verdict line, then sentences whose numbers all come from ``R``."""
    m = small_model(R)
    if m is None:
        return not_measured("benchmark (bench.csv)")
    slow = {b: ratio(R, m, b, "numpy") for b in tf_paths(R)}
    kp = slow.get("keras.predict", np.nan)
    sig = primary(R, "vs_numpy")
    sig = sig[(sig["model"] == m) & (sig["backend"] == "keras.predict")]["significant"]
    if np.isfinite(kp) and kp >= SIGNIFICANT_X and sig.any():
        head = "**Yes — for small models TensorFlow's per-call overhead makes it many times slower than NumPy.**"
    elif any(v >= SIGNIFICANT_X for v in slow.values()):
        head = "**Partly — some TensorFlow paths are markedly slower than NumPy on small models, others not.**"
    else:
        head = "**No — on this machine TensorFlow is not markedly slower than NumPy, even on small models.**"
    out = []
    if np.isfinite(kp):
        lite = ratio(R, m, "keras.predict", "litert")
        n_thr = R['threads'].get(R['machine'], '?')
        out.append(f"On {code(R['machine'])} ({n_thr} thread{'' if n_thr == 1 else 's'}, batch 1) the seed's small "
                   f"CNN ({code(m)}, {fmt_flops(ladder(R).set_index('model')['flops'][m])} per image) takes "
                   f"{fmt_us(latency(R, m, 'keras.predict'))} through `keras.predict`: {fmt_x(kp)} the NumPy engine "
                   f"({fmt_us(latency(R, m, 'numpy'))})"
                   + (f" and {fmt_x(lite)} LiteRT ({fmt_us(latency(R, m, 'litert'))})." if np.isfinite(lite) else "."))
    fk, fn = fit_of(R, "keras.predict"), fit_of(R, "numpy")
    cheap = [b for b in tf_paths(R) if b != "keras.predict"]
    if cheap:
        best = min(cheap, key=lambda b: fit_of(R, b)["overhead_us"])
        fb = fit_of(R, best)
        out.append(f"The leanest TensorFlow path, {code(best)}, still pays {fmt_us(fb['overhead_us'])} per call"
                   + (f" (`keras.predict`: {fmt_us(fk['overhead_us'])})" if fk is not None else "")
                   + (f", against {fmt_us(fn['overhead_us'])} for the NumPy engine." if fn is not None else "."))
        out.append(f"That fixed cost drops below 10 % of a call above {fmt_flops(fb['cross10_flops'])} per call for "
                   f"{code(best)} ({where_in_ladder(R, fb['cross10_flops'])})"
                   + (f", and above {fmt_flops(fk['cross10_flops'])} for `keras.predict` "
                      f"({where_in_ladder(R, fk['cross10_flops'])})." if fk is not None else "."))
    pk = primary(R, "peak")
    if len(pk):
        big = pk[pk["flops"] == pk["flops"].max()]
        top = big.loc[big["median_us"].idxmin()]
        out.append(f"On the largest model ({code(top['model'])}, {fmt_flops(top['flops'])}) the fastest path is "
                   f"{code(top['backend'])} at {fmt_us(top['median_us'])}, {fmt_pct(top['peak_share'])} of the "
                   f"machine's float32 GEMM peak ({top['peak_gflops']:.0f} GFLOP/s)"
                   + (" (it computes in 8-bit integers, so the float32 peak is no bound for it)"
                      if "int8" in str(top["backend"]) else "")
                   + "; there `keras.predict` takes "
                   f"{fmt_x(ratio(R, top['model'], 'keras.predict', 'numpy'))} the NumPy engine's time.")
    return head + "\n\n" + " ".join(out)


# ---------------------------------------------------------------- method -------------------------------
def _flat(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


META_KEYS = ("machine", "cpu_model", "arch", "physical_cores", "logical_cores", "affinity_cores", "ram_gib", "os",
             "kernel", "python", "versions", "blas", "onednn", "threads", "threads_readback", "git_commit",
             "git_dirty", "date")


def meta_table(results: dict, machine: str) -> pd.DataFrame:
    """The benchmark's metadata (``bench.meta.json``, else any stage's) as key / value rows: the keys of
    ``envinfo.collect`` that describe hardware and software, or everything when none of them is present."""
    meta = results.get("meta", {}).get(machine, {})
    d = meta.get("bench") or next(iter(meta.values()), {})
    d = {k: d[k] for k in META_KEYS if k in d} or d
    if isinstance(d.get("blas"), list):
        d["blas"] = "; ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
                              for p in d["blas"] if isinstance(p, dict))
    flat = _flat(d)
    return pd.DataFrame({"value": [str(v) for v in flat.values()]}, index=pd.Index(list(flat), name="key"))


def _truthy(col: pd.Series) -> pd.Series:
    return col.astype(str).str.strip().str.lower().isin(("true", "1", "1.0", "yes"))


def _span(v) -> str:
    lo, hi = int(np.nanmin(v)), int(np.nanmax(v))
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def method(R, results: dict, n_boot: int) -> str:
    b = R.get("bench")
    if b is None or not len(b):
        return not_measured("benchmark (bench.csv)")
    good = analysis.ok(b)
    mach = results.get("machines", [])
    lines = [f"- **Machines:** {len(mach)} ({', '.join(code(m) for m in mach)}); figures show {code(R['machine'])}. "
             "Hardware and library versions are listed in the table below (from the run's metadata).",
             f"- **Sweep:** {b['model'].nunique()} models × {b['backend'].nunique()} backends, batch sizes "
             f"{', '.join(str(int(x)) for x in sorted(b['batch'].unique()))}, thread counts "
             f"{', '.join(str(int(x)) for x in sorted(b['threads'].unique()))}; fits and ratios use batch 1 at "
             f"{', '.join(f'{t} threads on {code(m)}' for m, t in R['threads'].items())}.",
             f"- **Timing:** per-call wall time with warm-up discarded, GC off and backends interleaved in rounds; "
             f"each latency is the median of {_span(good['n'])} calls with a bootstrap "
             f"95 % CI; {int(_truthy(good['unstable']).sum())} of {len(good)} measurements were flagged "
             "unstable (std ≥ 10 % of mean)."]
    if "timer_overhead_ns" in good:
        lines.append(f"- **Timer:** overhead {good['timer_overhead_ns'].median():.0f} ns per reading (not subtracted).")
    lines.append(f"- **Fit:** latency = overhead + FLOPs / throughput per backend, soft-L1 robust least squares on "
                 f"log residuals, overhead ≥ 0; CIs from {n_boot} bootstrap resamples of the models (seeded). "
                 "Crossover FLOPs at overhead share s: overhead × throughput × (1 − s) / s.")
    g = results.get("gemm")
    if g is not None and len(g):
        lines.append("- **Physical limit:** float32 `np.matmul` (GEMM) measured in the same run: " + ", ".join(
            f"{r.gflops:.0f} GFLOP/s with {int(r.threads)} thread(s) ({r.machine})" for r in g.itertuples()) + ".")
    return "\n".join(lines)


# ---------------------------------------------------------------- limitations --------------------------
def limitations(R, results: dict, models: pd.DataFrame, missing: list) -> str:
    out = []
    mach = results.get("machines", [])
    if len(mach) < 2:
        out.append("- One machine only: whether another CPU, core count or BLAS changes the picture is untested here.")
    bad = R.get("problems")
    if bad is not None and len(bad):
        counts = bad["status"].value_counts().to_dict() if "status" in bad else {}
        what = ", ".join(f"{n} {s}" for s, n in counts.items()) or f"{len(bad)}"
        out.append(f"- {len(bad)} model × backend combinations have rows that are not ok ({what}): `skipped` rows "
                   f"exceed the sweep's per-call FLOPs cap (large batches of the largest models). Those rows are "
                   f"not in the fits and ratios; the Parity section gives each reason.")
    if models is not None and len(models) and "weights" in models:
        seeded = models[models["weights"] != "trained"]["name"].tolist()
        if seeded:
            out.append(f"- {', '.join(code(x) for x in seeded)} use seeded (untrained) weights: their timings are "
                       "valid, their accuracy is not meaningful.")
    f = primary(R, "fits")
    if len(f):
        w = f.loc[f["rel_rmse"].idxmax()]
        out.append(f"- The two-parameter model is an idealisation: the worst backend ({code(w['backend'])}) deviates "
                   f"from its fit by {100 * (np.exp(w['rel_rmse']) - 1):.0f} % RMS; effective throughput changes "
                   "with layer type and cache size.")
    out.append("- FLOPs are twice the multiply-adds of dense, convolution and depthwise-convolution layers; pooling, "
               "activations and normalisation are not counted, so the effective throughput leaves their work out.")
    out.append("- Results are for batch 1 unless stated; the batch and thread sweeps cover only the values listed "
               "in Method.")
    out.append("- The article gives no numbers, so the verdicts test the direction of its claims, in our paraphrase.")
    if missing:
        out.append(f"- Not measured in this run: {', '.join(missing)}.")
    return "\n".join(out)


# ---------------------------------------------------------------- section captions ---------------------
def parity_text(R) -> str:
    st = primary(R, "status")
    if not len(st):
        return not_measured("benchmark (bench.csv)")
    n_ok, n_all = int(st["ok"].sum()), int(st[["ok", "failed", "skipped"]].sum().sum())
    quant = st["backend"].str.contains("int8|fp16", regex=True)
    fl = st[~quant]
    out = (f"{n_ok} of {n_all} model × backend combinations ran and matched the Keras reference "
           f"(top-1 agreement and output error checked before timing). Float32 paths: largest max abs error "
           f"{fl['max_abs_err'].max():.2g}, lowest top-1 agreement {fmt_pct(fl['min_top1_agree'].min())}.")
    if quant.any():
        q = st[quant]
        out += (f" Reduced-precision paths: largest max abs error {q['max_abs_err'].max():.2g}, "
                f"largest accuracy drop {100 * q['max_acc_drop'].max():.2g} percentage points.")
    return out


def overhead_text(R) -> str:
    f = primary(R, "fits")
    if not len(f):
        return not_measured("benchmark (bench.csv)")
    f = f[np.isfinite(f["gflops"])]
    lo, hi = f.loc[f["gflops"].idxmin()], f.loc[f["gflops"].idxmax()]
    out = (f"Each line is the fit of one backend. The fixed overhead spans {fmt_us(f['overhead_us'].min())} to "
           f"{fmt_us(f['overhead_us'].max())} per call ({fmt_x(f['overhead_us'].max() / f['overhead_us'].min())}); "
           f"the effective throughput from {lo['gflops']:.3g} ({code(lo['backend'])}) to {hi['gflops']:.3g} GFLOP/s "
           f"({code(hi['backend'])}).")
    if "peak_gflops" in f and np.isfinite(f["peak_gflops"]).any():
        out += (f" Against the GEMM peak measured in the same run ({f['peak_gflops'].iloc[0]:.3g} GFLOP/s) that is "
                f"{fmt_pct(f['fit_peak_share'].min())} to {fmt_pct(f['fit_peak_share'].max())}.")
    return out


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
    trend = ("more cores help more as the work per call grows" if s_big > 1.1 * s_small else
             "the gain does not grow with the work per call" if s_big <= s_small else "the gain grows only a little")
    return (f"From {int(t['threads_lo'].min())} to {int(t['threads_hi'].max())} threads the median speed-up over "
            f"backends is {fmt_x(s_small)} on the smallest model and {fmt_x(s_big)} on the largest: {trend}.")


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
            f"{fmt_pct(p['non_inference_share'].min())} ({code(lo.backend)}, {lo.model}) to "
            f"{fmt_pct(p['non_inference_share'].max())} ({code(hi.backend)}, {hi.model}).")


def breakdown_text(R) -> str:
    b = primary(R, "breakdown")
    if not len(b):
        return not_measured("per-call decomposition (breakdown.csv)")
    buckets = [c for c in b.columns if c not in ("machine", "model", "backend", "measured_median_us")]
    tot = b[buckets].sum(axis=1)
    top = b[buckets].idxmax(axis=1)
    parts = [f"{code(r.backend)}: {html.escape(top[i])} ({fmt_pct(b.loc[i, top[i]] / tot[i])} of {fmt_us(tot[i])}; "
             f"measured median {fmt_us(r.measured_median_us)})" for i, r in b.iterrows()]
    return "Largest bucket per backend — " + "; ".join(parts) + "."


def agreement_text(R) -> str:
    ag = R.get("agreement") or {}
    if not ag:
        return ("*Not measured:* results from only one machine (and one run) are present; put another machine's "
                "result folder under `data/results/` to compare.")
    out = []
    for other, d in ag.items():
        s = d["summary"]
        out.append(f"- {code(R['machine'])} vs {code(other)}: {s['n_agree']} of {s['n']} paired measurements "
                   f"agree after removing the overall speed factor ({s['median_ratio']:.2g}×); rank correlation of "
                   f"latencies {s['spearman']:.2f}.")
    return "\n".join(out)


# ---------------------------------------------------------------- tables for display -------------------
def fit_table(R) -> pd.DataFrame:
    """The fits of the report's machine, formatted: overhead and throughput with CIs, peak share, crossovers."""
    f = primary(R, "fits")
    if not len(f):
        return pd.DataFrame()
    f = f.set_index("backend").loc[order_backends(f["backend"])]
    ci = lambda k, fmt: [f"{fmt(a)} [{fmt(b)}, {fmt(c)}]" for a, b, c in  # noqa: E731
                         zip(f[k], f[f"{k}_lo"], f[f"{k}_hi"])]
    t = pd.DataFrame({"models": f["n_models"], "overhead per call [95 % CI]": ci("overhead_us", fmt_us),
                      "throughput GFLOP/s [95 % CI]": ci("gflops", lambda g: f"{g:.3g}")}, index=f.index)
    if "fit_peak_share" in f:
        t["share of GEMM peak"] = [fmt_pct(x) for x in f["fit_peak_share"]]
    t["overhead = 50 % at"] = [fmt_flops(x) for x in f["cross50_flops"]]
    t["overhead = 10 % at"] = [fmt_flops(x) for x in f["cross10_flops"]]
    return t


def ratio_table(R, which: str = "vs_numpy", value: str = "slowdown") -> pd.DataFrame:
    """Model × backend ratios (``vs_numpy`` slowdown or ``vs_predict`` speed-up), formatted as ``12×``."""
    t = primary(R, which)
    if not len(t):
        return pd.DataFrame()
    p = analysis.pivot(t, value, backends=order_backends(t["backend"]))
    return p.map(fmt_x)


def status_view(R) -> pd.DataFrame:
    st = primary(R, "status")
    if not len(st):
        return st
    st = st.set_index("backend").loc[order_backends(st["backend"])].drop(columns="machine")
    return st.rename(columns={"max_acc_drop": "max accuracy drop", "min_top1_agree": "min top-1 agreement",
                              "max_abs_err": "max abs error"})


def extra_models_text(R, names) -> str:
    s = primary(R, "sweep")
    out = []
    for n in names:
        if not len(s) or n not in set(s["model"]):
            out.append(f"- Your model {code(n)}: no ok result at batch 1 in this run.")
            continue
        row = s[s["model"] == n]
        best = row.loc[row["median_us"].idxmin()]
        kp = fit_of(R, "keras.predict")
        share = kp["overhead_us"] / latency(R, n, "keras.predict") if kp is not None else np.nan
        out.append(f"- Your model {code(n)} ({fmt_flops(best['flops'])}): fastest path {code(best['backend'])} at "
                   f"{fmt_us(best['median_us'])}; `keras.predict` is {fmt_x(ratio(R, n, 'keras.predict', 'numpy'))} "
                   f"the NumPy engine, and its fixed overhead is {fmt_pct(share)} of the call.")
    return "\n".join(out)


def batch_models(R, n: int = 3) -> list:
    """Models for the batch figure: the small CNN, then the largest and a middle one among multi-batch models."""
    b = primary(R, "batch")
    if not len(b):
        return []
    multi = b.groupby("model")["batch"].nunique()
    lad = b[b["model"].isin(multi[multi > 1].index)].drop_duplicates("model").sort_values("flops")["model"].tolist()
    if not lad:
        return []
    first = small_model(R) if small_model(R) in lad else lad[0]
    picks = [first, lad[-1], lad[(lad.index(first) + len(lad) - 1) // 2]]
    return sorted(dict.fromkeys(picks), key=lad.index)[:n]
