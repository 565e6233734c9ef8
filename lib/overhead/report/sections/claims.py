"""The seed article's testable claims, in our own words, with verdicts computed from the results.

Each verdict is "supported", "partly", "not supported" or "not measured", decided by the thresholds below;
the numbers behind it are returned next to it. ``R`` is an ``analysis.Results``. The article is named by its
title only (``ARTICLE``).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from overhead.report import crossing, wins
from overhead.report.fmt import (
    SIGNIFICANT_X,  # "noticeably slower" = at least this many times the latency
    code,
    fmt_pct,
    fmt_us,
    fmt_x,
    largest_common,
    latency,
    primary,
    ratio,
    small_model,
    tf_paths,
)

ARTICLE = ("“Is TensorFlow 2.0 (CPU) inference significantly slower than vanilla TensorFlow/NumPy for simple "
           "models?”")

MATTERS, NEGLIGIBLE = 0.5, 0.1          # overhead shares: dominates / stops mattering
PREPOST_SHARE = 0.25                    # pre+post-processing "matters" above this share of a PNG→label call
COLD_X = 2.0                            # TF cold start "adds a cost" if this many times NumPy's
VERDICTS = ("supported", "partly", "not supported", "not measured")


def _claim(claim, verdict, numbers, evidence):
    return {"claim (our paraphrase)": claim, "verdict": verdict, "numbers": numbers, "evidence": evidence}


def _beats(sw, model, a, b) -> bool:
    """``a`` beats ``b`` on ``model`` by the rule of ``overhead.report.wins`` (interval and between-run spread)."""
    rows = wins.from_bench(sw[(sw["model"] == model) & sw["backend"].isin([a, b])]).set_index("name")
    if a not in rows.index or b not in rows.index:
        return False
    return wins.beats_on(rows.loc[a].to_dict(), rows.loc[b].to_dict())


def _session_claim(R, m):
    c = ("For very simple models the overhead is TensorFlow's graph construction and session management "
         "(tested against `tf1.session`: a frozen graph run in a TF 1 session).")
    kp, ses, npy = (latency(R, m, b) for b in ("keras.predict", "tf1.session", "numpy")) if m else (np.nan,) * 3
    if not np.all(np.isfinite([kp, ses, npy])) or kp <= npy:
        return _claim(c, "not measured", "", "Who pays for predict?")
    share = max(ses - npy, 0.0) / (kp - npy)
    v = ("supported" if share >= MATTERS else "partly" if ses >= SIGNIFICANT_X * npy else "not supported")
    return _claim(c, v, f"{m}, measured: `tf1.session` {fmt_us(ses)}, `keras.predict` {fmt_us(kp)}, NumPy "
                        f"{fmt_us(npy)}; a session run pays {fmt_pct(share)} of `keras.predict`'s excess over NumPy",
                  "Who pays for predict?")


def claims(R) -> pd.DataFrame:
    """The seed article's testable claims with a verdict from the data and thresholds above."""
    out = []
    m = small_model(R)
    tf = tf_paths(R)
    # 1. NumPy avoids the overhead
    c = "A hand-written NumPy model avoids TensorFlow's per-call overhead."
    fixed = {b: crossing.share_curve(primary(R, "sweep"), b).attrs.get("fixed_us", np.nan) for b in tf + ["numpy"]}
    if not np.isfinite(fixed.get("numpy", np.nan)) or not tf:
        out.append(_claim(c, "not measured", "", "Overhead versus compute"))
    else:
        lean = min(tf, key=lambda b: fixed[b])
        v = ("supported" if fixed["numpy"] < MATTERS * fixed[lean]
             else "partly" if fixed["numpy"] < fixed[lean] else "not supported")
        out.append(_claim(c, v, f"measured fixed cost (lowest latency over the ladder): NumPy "
                                f"{fmt_us(fixed['numpy'])} vs leanest TF path {code(lean)} {fmt_us(fixed[lean])} "
                                "per call", "Who pays for predict?"))
    # 2. TF noticeably slower for a small model
    c = f"For a small model, TensorFlow inference is noticeably slower than NumPy (≥ {SIGNIFICANT_X:g}×)."
    ratios = {b: ratio(R, m, b, "numpy") for b in tf} if m else {}
    ratios = {b: r for b, r in ratios.items() if np.isfinite(r)}
    if not ratios:
        out.append(_claim(c, "not measured", "", "Speed-up tables"))
    else:
        n = sum(r >= SIGNIFICANT_X for r in ratios.values())
        v = "supported" if n == len(ratios) else "partly" if n else "not supported"
        lo, hi = min(ratios, key=ratios.get), max(ratios, key=ratios.get)
        out.append(_claim(c, v, f"{m}: {n} of {len(ratios)} TF paths ≥ {SIGNIFICANT_X:g}×, from {lo} "
                                f"{fmt_x(ratios[lo])} to {hi} {fmt_x(ratios[hi])}", "How much slower than NumPy?"))
    # 3. gap shrinks, compute dominates on larger models
    c = (f"As models grow, the overhead stops mattering (below {fmt_pct(NEGLIGIBLE)} of a call on the "
         "largest model) and the gap to NumPy shrinks.")
    sw = primary(R, "sweep")
    if not tf or not len(sw) or m is None:
        out.append(_claim(c, "not measured", "", "Overhead share"))
    else:
        shares, shrink = {}, []
        for b in tf:
            x = crossing.crossover(sw, b, NEGLIGIBLE, compute_ref="tf.function")
            big = largest_common(sw, [b, "numpy"])
            if x["largest_model"] is None or big is None:
                continue
            shares[b] = (x["largest_model"], x["share_at_largest"])
            if ratio(R, big, b, "numpy") < ratio(R, m, b, "numpy"):
                shrink.append(b)
        n = sum(v[1] < NEGLIGIBLE for v in shares.values())
        v = ("supported" if shares and n == len(shares) and len(shrink) == len(shares)
             else "partly" if n or shrink else "not supported")
        out.append(_claim(c, v, "measured overhead / latency on the largest model each path ran: " + ", ".join(
            f"{b} {fmt_pct(x[1])} ({x[0]})" for b, x in shares.items())
            + f"; ratio to NumPy shrinks for {len(shrink)} of {len(shares)} TF paths",
            "Where overhead stops mattering; Speed-up tables"))
    # 4. TFLite faster on larger models
    c = "For larger models on a CPU, TensorFlow Lite (LiteRT) is faster than TensorFlow."
    if not len(sw) or "litert" not in set(sw["backend"]) or not tf:
        out.append(_claim(c, "not measured", "", "Overhead versus compute"))
    else:
        bigs = largest_common(sw, ["litert", "keras.predict"], n=2)
        lite = [b for b in sw["backend"].unique() if str(b).startswith("litert")]
        nums, wins_kp, wins_all, any_variant = [], True, True, False
        for x in bigs:
            have = lambda b, x=x: np.isfinite(latency(R, x, b))  # noqa: E731
            best_tf = min((b for b in tf if have(b)), key=lambda b, x=x: latency(R, x, b))
            best_lite = min((b for b in lite if have(b)), key=lambda b, x=x: latency(R, x, b))
            wins_kp &= _beats(sw, x, "litert", "keras.predict")
            wins_all &= _beats(sw, x, "litert", best_tf)
            any_variant |= _beats(sw, x, best_lite, best_tf)
            nums.append(f"{x}: litert {fmt_us(latency(R, x, 'litert'))}, keras.predict "
                        f"{fmt_us(latency(R, x, 'keras.predict'))}, fastest TF path ({best_tf}) "
                        f"{fmt_us(latency(R, x, best_tf))}, fastest LiteRT variant ({best_lite}) "
                        f"{fmt_us(latency(R, x, best_lite))}")
        v = ("not measured" if not bigs else "supported" if wins_all
             else "partly" if wins_kp or any_variant else "not supported")
        out.append(_claim(c, v, "; ".join(nums), "Overhead versus compute; Speed-up tables"))
    # 5. pre- and post-processing matter
    c = f"Pre- and post-processing are a material part of the time (> {fmt_pct(PREPOST_SHARE)} of PNG → label)."
    p = primary(R, "pipeline")
    if not len(p):
        out.append(_claim(c, "not measured", "", "Pipeline"))
    else:
        pm = p[p["model"] == (m if m in set(p["model"]) else p["model"].iloc[0])]
        big = pm["non_inference_share"] > PREPOST_SHARE
        v = "supported" if big.mean() >= 0.5 else "partly" if big.any() else "not supported"
        lo, hi = pm.loc[pm["non_inference_share"].idxmin()], pm.loc[pm["non_inference_share"].idxmax()]
        named = pm[pm["backend"].isin(["keras.predict", "numpy"])]
        out.append(_claim(c, v, f"{pm['model'].iloc[0]}: outside inference {fmt_pct(lo['non_inference_share'])} "
                                f"({lo['backend']}) to {fmt_pct(hi['non_inference_share'])} ({hi['backend']}) over "
                                f"{len(pm)} paths, above {fmt_pct(PREPOST_SHARE)} for {int(big.sum())}" + "".join(
                                    f"; {r.backend} {fmt_pct(r.non_inference_share)}" for r in named.itertuples()),
                          "Pipeline"))
    # 6. lower-level TF APIs help
    c = "Lower-level TensorFlow APIs cut the overhead of `keras.predict` (to ≤ half)."
    low = [b for b in tf if b != "keras.predict"]
    kp_fixed = fixed.get("keras.predict", np.nan) if tf else np.nan
    if not np.isfinite(kp_fixed) or not low:
        out.append(_claim(c, "not measured", "", "Who pays for predict?"))
    else:
        best = min(low, key=lambda b: fixed[b])
        r = fixed[best] / kp_fixed
        v = "supported" if r <= 0.5 else "partly" if r < 1 else "not supported"
        out.append(_claim(c, v, f"measured fixed cost: {code(best)} {fmt_us(fixed[best])} vs "
                                f"`keras.predict` {fmt_us(kp_fixed)} ({fmt_pct(r)} of it)",
                          "Who pays for predict?; Where the time goes"))
    out.append(_session_claim(R, m))
    # 7. loading / runtime start-up is part of the cost
    c = f"Loading the model and starting TensorFlow add a one-off cost (≥ {COLD_X:g}× NumPy's cold start)."
    st = primary(R, "startup")
    if not len(st) or "numpy" not in set(st["backend"]):
        out.append(_claim(c, "not measured", "", "Cold start and memory"))
    else:
        sm = st[st["model"] == (m if m in set(st["model"]) else st["model"].iloc[0])].set_index("backend")
        base = sm.loc["numpy", "start_to_first_pred_s"]
        xs = {b: sm.loc[b, "start_to_first_pred_s"] / base for b in tf if b in sm.index}
        n = sum(x >= COLD_X for x in xs.values())
        v = "supported" if xs and n == len(xs) else "partly" if n else "not supported"
        out.append(_claim(c, v, f"NumPy {base:.2g} s; " + ", ".join(f"{b} {fmt_x(x)}" for b, x in xs.items()),
                          "Cold start and memory"))
    return pd.DataFrame(out)


def by_machine(R) -> pd.DataFrame:
    """The claims × machines table: one row per claim, its verdict on each machine (each machine's own
    results, ``claims`` on a view of ``R``), and where it holds; ``attrs["numbers"]``: {machine: claims table}."""
    ms = [m for m in (R.machines or [R.machine]) if m is not None]
    sw = R.sweep
    if len(sw):
        ms = sorted(set(sw["machine"].astype(str)), key=lambda m: (m != R.machine, m))
    per = {}
    for m in ms:
        view = replace(R, machine=m, meta=R.meta_all.get(m, R.meta if m == R.machine else {}))
        per[m] = claims(view)
    if not per:
        return pd.DataFrame()
    first = next(iter(per.values()))
    out = pd.DataFrame({"claim (our paraphrase)": first["claim (our paraphrase)"]})
    for m, t in per.items():
        out[m] = t["verdict"].to_numpy()
    measured = out[ms].apply(lambda r: [m for m in ms if r[m] != "not measured"], axis=1)
    out["holds on"] = [
        "no machine measured it" if not have else
        "every machine" if all(out.loc[i, m] == "supported" for m in have) else
        "no machine" if not any(out.loc[i, m] == "supported" for m in have) else
        ", ".join(f"`{m}`" for m in have if out.loc[i, m] == "supported") + " only"
        for i, have in measured.items()]
    out.attrs["numbers"] = per
    return out


def by_machine_markdown(table: pd.DataFrame) -> str:
    """The claims × machines table as markdown (verdicts in bold)."""
    if table is None or not len(table):
        return "*Not measured:* no results to check the claims against."
    ms = [c for c in table.columns if c not in ("claim (our paraphrase)", "holds on")]
    lines = ["| claim (our paraphrase) | " + " | ".join(f"`{m}`" for m in ms) + " | holds on |",
             "|" + "---|" * (len(ms) + 2)]
    for r in table.to_dict("records"):
        lines.append("| " + str(r["claim (our paraphrase)"]).replace("|", "\\|") + " | "
                     + " | ".join(f"**{r[m]}**" for m in ms) + f" | {r['holds on']} |")
    return "\n".join(lines)


def by_machine_lead(table: pd.DataFrame) -> str:
    """The section's finding in one sentence: how many claims hold everywhere, nowhere, or on some machines."""
    if table is None or not len(table):
        return ""
    h = table["holds on"]
    some = int(h.str.endswith(" only").sum())
    return (f"Of {len(table)} claims, {int((h == 'every machine').sum())} hold on every machine measured, "
            f"{int((h == 'no machine').sum())} on none, and {some} on some machines only (named in the last "
            "column) — a verdict that flips between machines is shown as such.")


def claims_markdown(table: pd.DataFrame) -> str:
    """The claims table as markdown (verdicts in bold), so inline code renders in the report."""
    if table is None or not len(table):
        return "*Not measured:* no results to check the claims against."
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table.itertuples(index=False):
        cells = [str(v).replace("|", "\\|").replace("\n", " ") for v in row]
        cells[cols.index("verdict")] = f"**{cells[cols.index('verdict')]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
