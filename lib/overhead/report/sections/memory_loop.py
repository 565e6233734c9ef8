"""Section "Memory in a loop": resident-memory growth per path over a long loop of calls (sentence and table)."""
from __future__ import annotations

import pandas as pd

from overhead.report.fmt import (
    NOT_MEASURED,
    code,
    have,
)


def memory_loop_text(R) -> str:
    """Which path's resident memory grows most over the loop, on the report machine first, then every other
    machine with a memory-loop run (each named)."""
    every = R.every("memory_loop")
    if len(every) and "status" in every:
        every = every[every["status"].astype(str) == "ok"]
    if not len(every):
        return NOT_MEASURED.format("memory_loop.csv")
    order = [R.machine, *R.others("memory_loop")]
    parts = [_growth(every[every["machine"] == m], m) for m in order if m in set(every["machine"])]
    first, rest = parts[0], parts[1:]
    text = (f"Over {first['calls']:,} calls, resident memory grows most for {code(first['path'])} "
            f"({first['grow']:+.1f} MB, measured on {first['machine']}); {first['flat']} of {first['n']} paths stay "
            "within 1 MB (table below)")
    for p in rest:
        text += (f"; on {p['machine']} most for {code(p['path'])} ({p['grow']:+.1f} MB over {p['calls']:,} calls), "
                 f"{p['flat']} of {p['n']} within 1 MB")
    return text + "."


def _growth(mem: pd.DataFrame, machine: str) -> dict:
    parts = []
    for b, g in mem.groupby("backend", sort=False):
        g = g.sort_values("calls")
        parts.append((b, float(g["rss_mb"].iloc[-1] - g["rss_mb"].iloc[0]), int(g["calls"].iloc[-1])))
    parts.sort(key=lambda p: -p[1])
    b, grow, n = parts[0]
    return {"machine": machine, "path": b, "grow": grow, "calls": n, "n": len(parts),
            "flat": sum(abs(d) < 1.0 for _, d, _ in parts)}


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
