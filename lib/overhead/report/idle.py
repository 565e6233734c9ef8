"""Does sparse traffic change the answer? The idle-gap verdict, computed from the idle_gap table alone."""
from __future__ import annotations


def _disjoint(a, b) -> bool:
    """a is faster than b with non-overlapping intervals."""
    return bool(a["ci_hi_us"] < b["ci_lo_us"])


def verdict(frame) -> dict:
    """Does sparse traffic change the fastest path (per model x threads) or the best thread count (per model
    x backend)? Compares every gap > 0 with gap 0; a change counts as `clear` when the intervals separate."""
    ok = frame[(frame["status"] == "ok") & frame["median_us"].notna()] if "status" in frame else frame
    ranking, thread_rows = [], []
    for (model, t), grp in ok.groupby(["model", "threads"]):
        ref = grp[grp["gap_ms"] == 0].sort_values("median_us")
        if ref.empty:
            continue
        for g, at in grp[grp["gap_ms"] > 0].groupby("gap_ms"):
            at = at.sort_values("median_us")
            common = [b for b in ref["backend"] if b in set(at["backend"])]
            order0 = [b for b in ref["backend"] if b in common]
            order1 = [b for b in at["backend"] if b in common]
            best0, best1 = order0[0], order1[0]
            r0, r1 = at.set_index("backend").loc[best0], at.set_index("backend").loc[best1]
            ranking.append({"model": model, "threads": int(t), "gap_ms": g, "fastest_gap0": best0,
                            "fastest_at_gap": best1, "fastest_changed": best0 != best1,
                            "clear": best0 != best1 and _disjoint(r1, r0),
                            "order_changed": order0 != order1,
                            "slowdown_of_fastest_gap0": float(r0["median_us"] / ref.iloc[0]["median_us"])})
    for (model, b), grp in ok.groupby(["model", "backend"]):
        ref = grp[grp["gap_ms"] == 0]
        if ref["threads"].nunique() < 2:
            continue
        t0 = int(ref.loc[ref["median_us"].idxmin(), "threads"])
        for g, at in grp[grp["gap_ms"] > 0].groupby("gap_ms"):
            if at["threads"].nunique() < 2:
                continue
            best = at.loc[at["median_us"].idxmin()]
            other = at[at["threads"] == t0]
            t1 = int(best["threads"])
            thread_rows.append({"model": model, "backend": b, "gap_ms": g, "best_threads_gap0": t0,
                                "best_threads_at_gap": t1, "changed": t0 != t1,
                                "clear": t0 != t1 and len(other) > 0 and _disjoint(best, other.iloc[0])})
    return {"ranking": ranking, "threads": thread_rows,
            "fastest_changes": any(r["fastest_changed"] for r in ranking),
            "fastest_changes_clearly": any(r["clear"] for r in ranking),
            "best_threads_changes": sorted({r["backend"] for r in thread_rows if r["changed"]}),
            "best_threads_changes_clearly": sorted({r["backend"] for r in thread_rows if r["clear"]})}
