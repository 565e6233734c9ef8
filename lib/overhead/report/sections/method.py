"""Sections "Limitations" and "Appendix: Method": the report's method, metadata and limitations (numbers computed from ``R`` and the metadata)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from overhead.report import analysis, latency
from overhead.report.fmt import code, fmt_pct, not_measured, primary


# ---------------------------------------------------------------- method -------------------------------
def _flat(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


META_KEYS = ("machine", "cpu_model", "isa_flags", "cpu_flags", "arch", "physical_cores", "logical_cores",
             "affinity_cores", "ram_gib", "os", "kernel", "python", "versions", "blas", "onednn", "threads", "threads_readback", "git_commit",
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
    for k in ("isa_flags", "cpu_flags"):
        if isinstance(d.get(k), (list, tuple)):
            d[k] = " ".join(map(str, d[k]))
    flat = _flat(d)
    return pd.DataFrame({"value": [str(v) for v in flat.values()]}, index=pd.Index(list(flat), name="key"))


def _span(v) -> str:
    lo, hi = int(np.nanmin(v)), int(np.nanmax(v))
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def interval_method(R) -> str:
    """How the medians' 95 % intervals were computed: the ``ci_method`` column, else the metadata, else the
    harness's documented default."""
    b = R.bench
    if b is not None and "ci_method" in b and b["ci_method"].notna().any():
        return ", ".join(sorted(set(b["ci_method"].dropna().astype(str))))
    for d in R.meta.values():
        if isinstance(d, dict) and d.get("ci_method"):
            return str(d["ci_method"])
    return "percentile bootstrap of the median (the harness's default; no method recorded in the results)"


def method(R, results: dict, n_boot: int) -> str:
    b = R.bench
    if b is None or not len(b):
        return not_measured("benchmark (bench.csv)")
    good = analysis.ok(b)
    mach = results.get("machines", [])
    lines = [f"- **Machines:** {len(mach)} ({', '.join(code(m) for m in mach)}); figures show {code(R.machine)}. "
             "Hardware and library versions are listed in the table below (from the run's metadata).",
             f"- **Sweep:** {b['model'].nunique()} models × {b['backend'].nunique()} backends, batch sizes "
             f"{', '.join(str(int(x)) for x in sorted(b['batch'].unique()))}, thread counts "
             f"{', '.join(str(int(x)) for x in sorted(b['threads'].unique()))}; fits and ratios use batch 1 at "
             f"{', '.join(f'{t} threads on {code(m)}' for m, t in R.threads.items())}.",
             f"- **Timing:** per-call wall time with warm-up discarded, backends interleaved in rounds; each latency "
             f"is the median of {_span(good['n'])} calls"
             + (f" over {_span(good['runs'])} fresh worker processes (runs)" if "runs" in good and
                good["runs"].notna().any() else "")
             + f"; 95 % interval: {interval_method(R)}.",
             f"- **Unstable:** {unstable_sentence(R)}"]
    if "timer_overhead_ns" in good:
        lines.append(f"- **Timer:** overhead {good['timer_overhead_ns'].median():.0f} ns per reading (not subtracted).")
    lines.append(f"- **Latency model:** per backend, two-term (overhead + FLOPs / throughput) or per-layer "
                 f"(+ layers × cost per layer), plain least squares on log latency (no robust loss), parameters ≥ 0; "
                 f"the per-layer model is kept when the two-term leave-one-model-out error exceeds "
                 f"{fmt_pct(latency.MATERIAL)} and the per-layer model cuts it by {fmt_pct(latency.RICHER_GAIN)} or more. "
                 f"Intervals from {n_boot} bootstrap resamples of the models (seeded). A fit on fewer than "
                 "5 models or with a 95 % interval spanning more than 10× is not identifiable and not used. "
                 "The TL;DR's crossovers come from measured points (interpolated between neighbouring models); "
                 "fitted crossovers, labelled fitted, are placed on the models the path ran on.")
    g = results.get("gemm")
    if g is not None and len(g):
        lines.append("- **GEMM rate:** float32 `np.matmul` measured in the same run beside the benchmark (the float32 "
                     "ceiling is the best GEMM over this and `ceilings.csv`; see Ceilings); `np.matmul` here (a measured rate, not a "
                     "theoretical bound): " + ", ".join(
            f"{r.gflops:.0f} GFLOP/s with {int(r.threads)} thread(s) ({r.machine})" for r in g.itertuples()) + ".")
    return "\n".join(lines)


# ---------------------------------------------------------------- limitations --------------------------
def unstable_sentence(R) -> str:
    """pyperf's flag as recorded (its reasons counted by kind, not listed); the between-runs rule and the jitter
    are in the stability section."""
    sw = primary(R, "sweep")
    if not len(sw) or "unstable" not in sw:
        return "no stability flag in the results."
    col = "unstable_pyperf" if "unstable_pyperf" in sw else "unstable"
    flagged = sw[col].astype(str).str.strip().str.lower().isin(("true", "1", "1.0", "yes"))
    n = int(flagged.sum())
    out = (f"{n} of {len(sw)} ok batch-1 measurements ({fmt_pct(n / len(sw))}) were flagged by pyperf's checks "
           "(std >= 10 % of mean, or min/max >= 50 % from it, on values of at least 1 ms)")
    if "unstable_reason" in sw and n and col == "unstable":
        why = sw.loc[flagged, "unstable_reason"].fillna("").astype(str)
        kinds = {"std ≥ 10 % of the mean": why.str.contains("std"), "min or max ≥ 50 % from the mean":
                 why.str.contains("above the mean|below the mean")}
        out += " — " + ", ".join(f"{k}: {int(v.sum())}" for k, v in kinds.items())
    return out + "; the stability section gives the between-runs rule and the per-call jitter."


def limitations(R, results: dict, models: pd.DataFrame, missing: list) -> str:
    out = []
    mach = results.get("machines", [])
    if len(mach) < 2:
        out.append("- One machine only: whether another CPU, core count or BLAS changes the picture is untested here.")
    bad = primary(R, "problems")
    if len(bad):
        combos = bad.drop_duplicates(["model", "backend"])
        counts = bad.groupby("status")["rows"].sum().to_dict()
        what = ", ".join(f"{n} {s}" for s, n in counts.items())
        out.append(f"- {len(combos)} model × backend combinations have rows that are not ok ({what} rows); those "
                   "rows are not in the fits and ratios, and the appendix gives each reason.")
    if models is not None and len(models) and "weights" in models:
        seeded = models[models["weights"] != "trained"]["name"].tolist()
        if seeded:
            out.append(f"- {', '.join(code(x) for x in seeded)} use seeded (untrained) weights: their timings are "
                       "valid, their accuracy is not meaningful.")
    res = primary(R, "resid")
    if len(res):
        bad = latency.misses(res)
        out.append("- The latency models are idealisations (effective throughput changes with layer type and cache "
                   "size): " + (f"{bad['backend'].nunique()} backend(s) miss a measured point by more than "
                                f"{fmt_pct(latency.MISS)} (worst: {code(bad.iloc[0]['backend'])} "
                                f"{100 * bad.iloc[0]['rel_err']:+.0f} % on {code(bad.iloc[0]['model'])}; every miss "
                                "is in the latency-model section's table)"
                                if len(bad) else f"no fitted point is off by more than {fmt_pct(latency.MISS)}") + ".")
    out.append("- FLOPs are twice the multiply-adds of dense, convolution and depthwise-convolution layers; pooling, "
               "activations and normalisation are not counted, so the effective throughput leaves their work out.")
    out.append("- Results are for batch 1 unless stated; the batch and thread sweeps cover only the values listed "
               "in Method.")
    out.append("- The article gives no numbers, so the verdicts test the direction of its claims, in our paraphrase.")
    out.append("- Every latency is back-to-back calls unless the idle-gap section says otherwise; sparse traffic "
               "can wake sleeping thread pools and cold caches.")
    if missing:
        out.append(f"- Not measured in this run: {', '.join(missing)}.")
    return "\n".join(out)


