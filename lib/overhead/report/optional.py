"""Sections for the optional result files (idle_gap, memory_loop, distortion, ceilings): rendered when the
file is present, "not measured in this run" when it is absent. Every number from the files."""
from __future__ import annotations

import pandas as pd

from overhead.report import peak, underload_http
from overhead.report.fmt import code, fmt_flops, fmt_x
from overhead.report.idle import verdict

NOT_MEASURED = "*Not measured in this run:* no `{}` in the results."


def _have(R, name) -> pd.DataFrame | None:
    t = R.mine(name)
    return t if len(t) else None


def idle_gap_text(R) -> str:
    """Does sparse traffic change the ranking or the best thread count? (:func:`overhead.report.idle.verdict`)."""
    idle = _have(R, "idle_gap")
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
    except (ImportError, KeyError, ValueError) as exc:
        out.append(f"(No ranking verdict: {type(exc).__name__}.)")
    return " ".join(out)


def memory_loop_text(R) -> str:
    mem = _have(R, "memory_loop")
    if mem is not None and "status" in mem:
        mem = mem[mem["status"].astype(str) == "ok"]
    if mem is None or not len(mem):
        return NOT_MEASURED.format("memory_loop.csv")
    parts = []
    for b, g in mem.groupby("backend", sort=False):
        g = g.sort_values("calls")
        parts.append((b, float(g["rss_mb"].iloc[-1] - g["rss_mb"].iloc[0]), int(g["calls"].iloc[-1])))
    parts.sort(key=lambda p: -p[1])
    b, grow, n = parts[0]
    flat = sum(abs(d) < 1.0 for _, d, _ in parts)
    return (f"Over {n:,} calls, resident memory grows most for {code(b)} ({grow:+.1f} MB, measured); "
            f"{flat} of {len(parts)} paths stay within 1 MB (table below).")


def memory_loop_table(R) -> pd.DataFrame:
    mem = _have(R, "memory_loop")
    if mem is not None and "status" in mem:
        mem = mem[mem["status"].astype(str) == "ok"]
    if mem is None or not len(mem):
        return pd.DataFrame()
    rows = []
    for b, g in mem.groupby("backend", sort=False):
        g = g.sort_values("calls")
        rows.append({"backend": b, "calls": int(g["calls"].iloc[-1]), "RSS after the first call (MB)":
                     f"{g['rss_mb'].iloc[0]:.0f}", "growth (MB)": f"{g['rss_mb'].iloc[-1] - g['rss_mb'].iloc[0]:+.1f}"})
    return pd.DataFrame(rows).set_index("backend")


def distortion_text(R) -> str:
    d = _have(R, "distortion")
    if d is None:
        return NOT_MEASURED.format("distortion.csv")
    return f"{len(d)} measurements of how one path's timing is disturbed by another (table below)."


def ceilings(R) -> dict:
    """The theoretical and measured ceilings from ``ceilings.meta.json`` (its ``summary``) and ceilings.csv."""
    meta = R.meta.get("ceilings", {}) if isinstance(R.meta, dict) else {}
    summ = (meta.get("ceilings") or meta.get("summary") or meta) if isinstance(meta, dict) else {}
    c = _have(R, "ceilings")
    best = None
    if c is not None and "gflops" in c:
        okc = c[c["status"].astype(str) == "ok"] if "status" in c else c
        col = "gflops_best" if "gflops_best" in okc and okc["gflops_best"].notna().any() else "gflops"
        if len(okc):
            best = okc.loc[okc[col].idxmax()]
            best = {"library": best.get("library", "?"), "n": best.get("n"), "threads": best.get("threads"),
                    "gflops": float(best[col])}
    return {"summary": summ, "best": best}


def ceilings_text(R) -> str:
    """The ceilings sentence (``overhead.report.peak.text``: one float32 ceiling, the best measured GEMM; a stated
    peak below it is called no bound)."""
    return peak.text(R)


def _blank(v) -> bool:
    return v is None or (isinstance(v, float) and v != v) or str(v).strip() in ("", "nan", "None")


def blas_setting(R, machine) -> dict:
    """The BLAS setting ``machine``'s NumPy numbers ran with: ``coretype`` (OPENBLAS_CORETYPE as set, or None),
    ``kernel`` (the kernel OpenBLAS ran), ``source`` (which file says so) and, where blas_ab.csv measured it,
    ``rates``: [(threads, GFLOP/s as set, GFLOP/s unset)]."""
    meta = (getattr(R, "meta_all", {}) or {}).get(machine, {}) or {}
    bm = meta.get("bench", {}) or {}
    env = bm.get("openblas_env") or {k: v for k, v in (bm.get("env") or {}).items() if k.startswith("OPENBLAS_")}
    kernel = (bm.get("numpy_blas") or {}).get("architecture")
    if kernel is None and isinstance(bm.get("blas"), list) and bm["blas"]:
        kernel = bm["blas"][-1].get("architecture")
    out = {"machine": machine, "coretype": None if _blank(env.get("OPENBLAS_CORETYPE")) else
           str(env.get("OPENBLAS_CORETYPE")), "kernel": kernel, "unset_kernel": None,
           "source": "bench.meta.json" if bm else "not recorded", "rates": []}
    ab = R.extra.get("blas_ab") if isinstance(getattr(R, "extra", None), dict) else None
    ab = ab[ab["machine"] == machine] if ab is not None and len(ab) else None
    if ab is not None and len(ab):
        is_set = ~ab["OPENBLAS_CORETYPE"].map(_blank)
        on, off = ab[is_set], ab[~is_set]
        if len(on):
            out["coretype"] = out["coretype"] or str(on["OPENBLAS_CORETYPE"].iloc[0])
            out["kernel"] = str(on["kernel"].iloc[0])
            out["source"] = "bench.meta.json and blas_ab.csv"
        if len(off):
            out["unset_kernel"] = str(off["kernel"].iloc[0])
        for t, grp in on.groupby("threads"):
            o = off[off["threads"] == t]
            if len(o):
                out["rates"].append((int(t), float(grp["gflops"].median()), float(o["gflops"].median())))
        out["n"] = int(ab["n"].iloc[0]) if "n" in ab else None
    return out


def _blas_line(s) -> str:
    if s["coretype"] is None:
        return (f"{code(s['machine'])}: `OPENBLAS_CORETYPE` not set; NumPy's OpenBLAS chose its own kernel "
                f"({code(s['kernel']) if s['kernel'] else 'not recorded'}; {s['source']}).")
    out = (f"{code(s['machine'])}: the machine sets `OPENBLAS_CORETYPE={s['coretype']}`, so NumPy's OpenBLAS ran "
           f"{code(s['kernel'])} kernels" + (f" instead of {code(s['unset_kernel'])}" if s["unset_kernel"] else "")
           + "; every NumPy number of this machine (the headline included) ran with that setting")
    if s["rates"]:
        size = f"{s['n']}², " if s.get("n") else ""
        out += (f". NumPy's float32 GEMM ({size}fresh processes) with it and unset: " + "; ".join(
            f"{t} thread{'s' if t > 1 else ''} {on:.3g} vs {off:.3g} GFLOP/s ({fmt_x(off / on)})"
            for t, on, off in s["rates"]) + " — the NumPy paths there would be faster unset, so their ratios "
            "to TensorFlow at large models are conservative")
    else:
        out += " (no blas_ab.csv: the rate without it was not measured)"
    return out + "."


def blas_text(R) -> str:
    """The BLAS setting of every machine's NumPy numbers (bench.meta.json, blas_ab.csv); where
    OPENBLAS_CORETYPE was set, both GEMM rates and which one the headline uses."""
    machines = list(getattr(R, "machines", []) or []) or [R.machine]
    lines = [_blas_line(blas_setting(R, m)) for m in machines if m is not None]
    if not lines:
        return NOT_MEASURED.format("bench.meta.json")
    return "**NumPy's BLAS setting, per machine.**\n\n" + "\n".join(f"- {x}" for x in lines)


def loadgen_text(R) -> str:
    """The under-load section's finding (``overhead.report.underload_http.lead_sentence``: the web payload
    against the inference, or without HTTP runs whether the fastest path changes under load), or that
    loadgen.csv is absent."""
    lg = _have(R, "loadgen")
    return NOT_MEASURED.format("loadgen.csv") if lg is None else underload_http.lead_sentence(lg)


def models_text(R) -> str:
    """How many ladder models the results describe (models.csv), smallest to largest."""
    m = R.models if isinstance(R.models, pd.DataFrame) else pd.DataFrame()
    if not len(m) or "flops" not in m:
        return NOT_MEASURED.format("models.csv")
    m = m.sort_values("flops")
    return (f"{len(m)} models, from {code(m['name'].iloc[0])} ({fmt_flops(m['flops'].iloc[0])}) to "
            f"{code(m['name'].iloc[-1])} ({fmt_flops(m['flops'].iloc[-1])}) per call.")
