"""Section "Memory in a loop": resident-memory growth per path over a long loop of calls (sentence and table)."""
from __future__ import annotations

import pandas as pd

from overhead.report.fmt import (
    NOT_MEASURED,
    code,
    have,
)


def memory_loop_text(R) -> str:
    mem = have(R, "memory_loop")
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
    mem = have(R, "memory_loop")
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
