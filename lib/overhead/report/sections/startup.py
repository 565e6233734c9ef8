"""Section "Cold start and memory": the start-up range and the quickest start / smallest memory by the winner rule
(sentence), the per-path table and its finding. Its figure, shared with the start-up stage notebook, is
``overhead.report.plots.fig_cold_start``."""
from __future__ import annotations

import pandas as pd

from overhead.report import wins
from overhead.report.fmt import (
    by_path,
    code,
    fmt_pct,
    fmt_us,
    fmt_x,
    g3,
    model_in,
    not_measured,
    primary,
)


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
    for m in R.others("startup"):
        o = R.on(m).mine("startup")
        top = o.loc[o["start_to_first_pred_s"].idxmax()]
        out += (f" ({o['start_to_first_pred_s'].min():.3g} s to {top['start_to_first_pred_s']:.3g} s, "
                f"{code(top['backend'])}, on {code(m)})")
    if "rss_after_first_call_mb" in s:
        out += (f"; resident memory after the first call ranges from {g3(s['rss_after_first_call_mb'].min())} to "
                f"{g3(s['rss_after_first_call_mb'].max())} MB")
    raw = R.raw.get("startup")
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


def startup_table(R, model: str | None = None) -> pd.DataFrame:
    """Cold start of every path on one model (default: the small model)."""
    s = R.mine("startup")
    if not len(s):
        return pd.DataFrame()
    model = model_in(s, model, R)
    s = by_path(s[s["model"] == model])
    out = pd.DataFrame({"path": s["backend"],
                        "to first prediction (s)": s["start_to_first_pred_s"].map(g3),
                        "import (s)": s["import_s"].map(g3),
                        "convert (s)": s["convert_s"].map(g3),
                        "load (s)": s["load_s"].map(g3),
                        "first call (ms)": (s["first_call_s"] * 1e3).map(g3),
                        "steady call": s["steady_median_us"].map(fmt_us),
                        "first prediction / steady call (×)": s["cold_over_steady"].map(g3)})
    if "rss_after_first_call_mb" in s:
        out["memory after first call (MB)"] = s["rss_after_first_call_mb"].map(g3)
    if "reps" in s:
        out["processes"] = s["reps"].astype(int)
    out.attrs["model"] = model
    return out


def startup_finding(R, t: pd.DataFrame) -> str:
    s = R.mine("startup")
    if not len(t):
        return not_measured("cold-start measurement (startup.csv)")
    s = s[s["model"] == t.attrs["model"]]
    phases = {"import": "import_s", "conversion": "convert_s", "loading": "load_s", "first call": "first_call_s"}
    share = {k: float((s[c] / s["start_to_first_pred_s"]).median()) for k, c in phases.items() if c in s}
    top = max(share, key=share.get)
    return (f"On {code(t.attrs['model'])} ({len(t)} paths, one row each; every model is in `startup.csv`): the "
            f"largest start-up phase is the {top}, a median {fmt_pct(share[top])} of a path's time to its first "
            f"prediction, and that first prediction costs {fmt_x(s['cold_over_steady'].min())} to "
            f"{fmt_x(s['cold_over_steady'].max())} a steady call.")
