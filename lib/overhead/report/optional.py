"""Sections for the optional result files (idle_gap, memory_loop, distortion, ceilings): rendered when the
file is present, "not measured in this run" when it is absent. Every number from the files."""
from __future__ import annotations

import pandas as pd

from overhead.report import peak
from overhead.report.fmt import code, fmt_x
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


def blas_text(R) -> str:
    """What OPENBLAS_CORETYPE costs NumPy's GEMM on this machine (blas_ab.csv), or that it is not set."""
    ab = _have(R, "blas_ab")
    if ab is None:
        return NOT_MEASURED.format("blas_ab.csv")
    set_rows = ab[ab["OPENBLAS_CORETYPE"].notna() & (ab["OPENBLAS_CORETYPE"].astype(str) != "")]
    unset = ab[ab["OPENBLAS_CORETYPE"].isna() | (ab["OPENBLAS_CORETYPE"].astype(str) == "")]
    if not len(set_rows):
        return ("`OPENBLAS_CORETYPE` is not set on this machine: NumPy's OpenBLAS picks its kernels for the CPU "
                f"(`{unset['kernel'].iloc[0]}`).")
    value = set_rows["OPENBLAS_CORETYPE"].iloc[0]
    parts = []
    for t, grp in set_rows.groupby("threads"):
        off = unset[unset["threads"] == t]
        if len(off):
            parts.append(f"{int(t)} thread{'s' if t > 1 else ''}: {grp['gflops'].iloc[0]:.0f} GFLOP/s with it, "
                         f"{off['gflops'].iloc[0]:.0f} without ({fmt_x(off['gflops'].iloc[0] / grp['gflops'].iloc[0])})")
    return (f"This machine sets `OPENBLAS_CORETYPE={value}`, so NumPy's OpenBLAS runs `{set_rows['kernel'].iloc[0]}` "
            f"kernels instead of `{unset['kernel'].iloc[0] if len(unset) else 'its own'}`; every NumPy path in this report ran "
            "with the machine's setting. NumPy's float32 GEMM, measured both ways in fresh processes: "
            + "; ".join(parts) + ".")
