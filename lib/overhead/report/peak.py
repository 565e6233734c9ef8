"""One float32 ceiling per thread count — the best GEMM measured in the run (``ceilings.csv`` across libraries
and sizes, and ``gemm.csv``) — and the theoretical peak exactly as the ceilings summary states it, with whether
its clock was measured or nominal. A measured GEMM above the stated peak is never printed as if it were fine:
the sentence says the stated peak is then no bound."""
from __future__ import annotations

import numpy as np
import pandas as pd

from overhead.report import text as T

BASIS_KEYS = ("fp32_peak_kind", "clock_basis", "clock_kind", "peak_basis", "peak_kind")  # fp32_peak_kind: ceilings.derive_peak


def summary(R) -> dict:
    """The ceilings summary of ``ceilings.meta.json`` for the report's machine ({} when absent)."""
    meta = R.meta.get("ceilings", {}) if isinstance(R.meta, dict) else {}
    s = (meta.get("ceilings") or meta.get("summary") or meta) if isinstance(meta, dict) else {}
    return s if isinstance(s, dict) else {}


def gemm_table(R) -> pd.DataFrame:
    """Every measured float32 GEMM rate of the report's machine: ``library, n, threads, gflops``."""
    parts = []
    c = R.mine("ceilings")
    if len(c) and "gflops" in c:
        c = c[c["status"].astype(str) == "ok"] if "status" in c else c
        parts.append(c[["library", "n", "threads", "gflops"]])
    g = R.mine("gemm")
    if len(g) and "gflops" in g:
        parts.append(g.assign(library="numpy (gemm.csv)")[["library", "n", "threads", "gflops"]])
    if not parts:
        return pd.DataFrame(columns=["library", "n", "threads", "gflops"])
    t = pd.concat(parts, ignore_index=True)
    t["gflops"] = pd.to_numeric(t["gflops"], errors="coerce")
    return t[t["gflops"] > 0]


def ceiling(R, threads: int) -> dict:
    """The float32 ceiling at ``threads`` (nearest measured thread count): the best measured GEMM."""
    t = gemm_table(R)
    if not len(t):
        return {"gflops": np.nan, "library": None, "n": None, "threads": threads}
    near = t[(t["threads"] - threads).abs() == (t["threads"] - threads).abs().min()]
    r = near.loc[near["gflops"].idxmax()]
    return {"gflops": float(r["gflops"]), "library": str(r["library"]), "n": int(r["n"]), "threads": int(r["threads"])}


def stated_peak(R, threads: int) -> dict:
    """The theoretical float32 peak at ``threads`` and its clock's basis (``measured`` or ``nominal``)."""
    s = summary(R)
    per_core = s.get("fp32_peak_gflops_1core")
    total = s.get("fp32_peak_gflops")
    gf = float(per_core) * threads if isinstance(per_core, (int, float)) else (
        float(total) if isinstance(total, (int, float)) else np.nan)
    basis = next((str(s[k]) for k in BASIS_KEYS if s.get(k)), None)
    if basis is None:
        basis = "nominal" if s.get("clock_is_assumption", True) else "measured"
    return {"gflops": gf, "basis": basis, "clock_mhz": s.get("clock_mhz"), "clock_source": s.get("clock_source", ""),
            "derivation": s.get("fp32_derivation", ""), "threads": threads}


def facts(R, threads: int | None = None) -> dict:
    th = threads if threads is not None else int(R.threads.get(R.machine, 1)) if R.threads else 1
    c, p = ceiling(R, th), stated_peak(R, th)
    above = bool(np.isfinite(c["gflops"]) and np.isfinite(p["gflops"]) and c["gflops"] > p["gflops"])
    return {"ceiling": c, "peak": p, "gemm_above_peak": above, "threads": th,
            "share": c["gflops"] / p["gflops"] if np.isfinite(p["gflops"]) and p["gflops"] > 0 else np.nan}


def text(R) -> str:
    f = facts(R)
    if not np.isfinite(f["ceiling"]["gflops"]) and not np.isfinite(f["peak"]["gflops"]):
        return "*Not measured in this run:* no `ceilings.csv` or `gemm.csv` in the results."
    out = T.render("peak", **f)
    if not len(R.mine("ceilings")):
        out = "*Not measured in this run:* no `ceilings.csv` in the results (no theoretical peak). " + out
    return out


def table(R) -> pd.DataFrame:
    """Per thread count: the stated peak, its clock basis, the best measured GEMM and the float32 ceiling used."""
    t = gemm_table(R)
    rows = []
    for th in sorted(set(int(x) for x in t["threads"])) if len(t) else []:
        c, p = ceiling(R, th), stated_peak(R, th)
        rows.append({"threads": th, "stated float32 peak (GFLOP/s)": f"{p['gflops']:.0f}" if np.isfinite(p["gflops"])
                     else "not stated", "clock": p["basis"],
                     "best measured GEMM (GFLOP/s)": f"{c['gflops']:.0f} ({c['library']}, n = {c['n']})",
                     "float32 ceiling used": f"{c['gflops']:.0f}",
                     "GEMM above the stated peak": "yes: the stated peak is no bound" if np.isfinite(p["gflops"])
                     and c["gflops"] > p["gflops"] else "no"})
    return pd.DataFrame(rows).set_index("threads") if rows else pd.DataFrame()
