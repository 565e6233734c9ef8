"""Tables for display: over bench.csv rows (the benchmark notebook and the `overhead` command) and over the
report's analysis (``R``, formatted with units and intervals). Pure pandas."""
from __future__ import annotations

import numpy as np
import pandas as pd

from overhead.report import analysis, answer, crossing, identify
from overhead.report.fmt import (
    FAST_REF,
    crossover_of,
    fmt_flops,
    fmt_pct,
    fmt_us,
    fmt_x,
    latency,
    primary,
    ratio,
    small_model,
)
from overhead.report.style import order_backends


def _order(backends) -> list[str]:
    return order_backends(backends)


def status_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Backend x status: how many configurations ran ok, failed or were skipped."""
    t = rows.pivot_table(index="backend", columns="status", values="model", aggfunc="count", fill_value=0)
    return t.reindex(_order(t.index)).reindex(columns=[c for c in ("ok", "failed", "skipped") if c in t.columns])


def not_ok(rows: pd.DataFrame) -> pd.DataFrame:
    """Every failed or skipped configuration with its reason, batch sizes and threads folded together."""
    bad = rows[rows["status"] != "ok"]
    if not len(bad):
        return pd.DataFrame(columns=["model", "backend", "status", "reason", "batches", "threads"])
    return (bad.groupby(["model", "backend", "status", "reason"], sort=False, dropna=False)
               .agg(batches=("batch", lambda s: ",".join(map(str, sorted(set(s))))),
                    threads=("threads", lambda s: ",".join(map(str, sorted(set(s))))))
               .reset_index())


def parity_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per backend: worst max abs error, lowest top-1 agreement, largest accuracy drop, kernels seen."""
    ran = rows[rows["parity"].isin(["pass", "fail"])].copy()
    ran["acc_drop"] = pd.to_numeric(ran["ref_accuracy"]) - pd.to_numeric(ran["accuracy"])
    t = ran.groupby("backend").agg(
        configs=("parity", "size"), parity_fail=("parity", lambda s: int((s == "fail").sum())),
        worst_max_abs_err=("max_abs_err", "max"), min_top1_agree=("top1_agree", "min"),
        max_acc_drop=("acc_drop", "max"), tolerance=("tolerance", "first"),
        kernels=("kernels", lambda s: s.dropna().astype(str).value_counts().index[0] if s.notna().any() else ""))
    return t.reindex(_order(t.index))


def latency_pivot(rows: pd.DataFrame, batch: int = 1, threads: int = 1, value: str = "median_us") -> pd.DataFrame:
    """Model (ladder order, smallest FLOPs first) x backend table of one statistic for ok rows."""
    ok = rows[(rows["status"] == "ok") & (rows["batch"] == batch) & (rows["threads"] == threads)]
    t = ok.pivot_table(index="model", columns="backend", values=value, aggfunc="first")
    flops = rows.groupby("model")["flops"].first()
    t = t.reindex(sorted(t.index, key=lambda m: flops.get(m, 0)))
    return t.reindex(columns=_order(t.columns))


def ratio_to(rows: pd.DataFrame, reference: str = "numpy", batch: int = 1, threads: int = 1) -> pd.DataFrame:
    """latency_pivot divided by the reference backend's column (>1: slower than the reference)."""
    t = latency_pivot(rows, batch, threads)
    if reference not in t.columns:
        return t.iloc[0:0]
    return t.div(t[reference], axis=0)


def format_bench(rows: pd.DataFrame) -> str:
    """The `overhead bench` table: one line per model x backend x batch x threads."""
    cols = ["model", "backend", "batch", "threads", "status", "median_us", "p90_us", "ci_lo_us", "ci_hi_us",
            "n", "parity", "max_abs_err", "reason"]
    t = rows.reindex(columns=cols).copy()
    t.insert(6, "per_s", (pd.to_numeric(t["batch"]) / pd.to_numeric(t["median_us"]) * 1e6).round(0).astype("Int64"))
    t["reason"] = t["reason"].fillna("").astype(str).str.slice(0, 70)
    return t.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")


# ---------------------------------------------------------------- the report's tables ------------------
def fit_table(R) -> pd.DataFrame:
    """The fits of the report's machine, formatted. A fit on < 5 models or with a 95 % interval spanning > 10×
    shows "not identifiable from these data" (and why) instead of its numbers; fitted crossovers are labelled
    fitted and placed on the models the path ran on."""
    f = primary(R, "fits")
    if not len(f):
        return pd.DataFrame()
    f = f.set_index("backend").loc[order_backends(f["backend"])]
    ok = {b: identify.identifiable(r) for b, r in f.iterrows()}
    na = identify.NOT_IDENTIFIABLE

    def ci(k, fmt):
        return [identify.interval_text(a, b, c, fmt) if ok[i] else "—"
                for i, a, b, c in zip(f.index, f[k], f[f"{k}_lo"], f[f"{k}_hi"])]

    def cross(b, share):
        r = f.loc[b]
        if not ok[b]:
            return "—"
        k = f"cross{share}_flops"
        if r[f"cross{share}_where"] != "inside":
            return crossover_of(R, b, share).replace("`", "").replace(" the largest model it ran on", "")
        lo, hi = r.get(f"{k}_lo", np.nan), r.get(f"{k}_hi", np.nan)
        band = (f" [{fmt_flops(lo)}–{fmt_flops(hi)}]" if np.isfinite(lo) and np.isfinite(hi) and lo > 0
                and hi / lo <= identify.MAX_SPAN else "")
        return fmt_flops(r[k]) + band
    t = pd.DataFrame({"models": f["n_models"], "model": f["model"],
                      "identifiable": ["yes" if ok[b] else f"{na}: {identify.why_not(r)}" for b, r in f.iterrows()],
                      "fitted overhead per call [95 % CI]": ci("overhead_us", fmt_us),
                      "fitted cost per layer": [(fmt_us(x) if ok[b] else "—") if k == "per-layer" else "—"
                                                for b, x, k in zip(f.index, f["per_layer_us"], f["model"])],
                      "fitted GFLOP/s [95 % CI]": ci("gflops", lambda g: f"{g:.3g}"),
                      "leave-one-out error": [
                          f"{fmt_pct(np.expm1(a))} → {fmt_pct(np.expm1(b))}" if np.isfinite(b) else fmt_pct(np.expm1(a))
                          for a, b in zip(f["loo_two_term"], f["loo_per_layer"])]}, index=f.index)
    for s in (50, 10):
        t[f"fitted: overhead {s} % at"] = [cross(b, s) for b in f.index]
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
    return st.rename(columns={"max_acc_drop": "max accuracy drop (trained models)",
                              "min_top1_agree": "min top-1 agreement", "max_abs_err": "max abs error",
                              "max_logit_rel_err": "max logit rel. error"})


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


def key_numbers(R) -> pd.DataFrame:
    """Per backend on the small model: measured latency, ratios to NumPy / LiteRT, fitted overhead, crossover."""
    f = primary(R, "fits")
    m = small_model(R)
    rows = []
    for b in order_backends(f["backend"]) if len(f) else []:
        r = f[f["backend"] == b].iloc[0]
        row = {"backend": b, f"measured latency, {m}": fmt_us(latency(R, m, b))}
        for ref in FAST_REF:
            row[f"× {ref} (measured)"] = fmt_x(ratio(R, m, b, ref))
        row["fitted overhead per call [95 % CI]"] = (
            identify.interval_text(r["overhead_us"], r["overhead_us_lo"], r["overhead_us_hi"], fmt_us)
            if identify.identifiable(r) else identify.NOT_IDENTIFIABLE)
        c = crossing.crossover(primary(R, "sweep"), b, 0.1,
                               compute_ref=answer.COMPUTE_REF if b in analysis.TF_PATHS else None)
        row["overhead < 10 % of a call (measured)"] = answer.cell(c)
        rows.append(row)
    return pd.DataFrame(rows).set_index("backend") if rows else pd.DataFrame()


def key_numbers_finding(R) -> str:
    """One sentence over the key-numbers table: the measured range on the small model and how many paths' overhead
    falls below 10 % of a call inside the ladder."""
    f, s, m = primary(R, "fits"), primary(R, "sweep"), small_model(R)
    if not len(f) or not len(s):
        return ""
    g = s[s["model"] == m]
    if not len(g):
        return ""
    lo, hi = g.loc[g["median_us"].idxmin()], g.loc[g["median_us"].idxmax()]
    inside = sum(crossing.crossover(s, b, 0.1, compute_ref=answer.COMPUTE_REF if b in analysis.TF_PATHS else None)
                 ["where"] == "inside" for b in f["backend"].unique())
    return (f"On `{m}` the {len(g)} paths measure from {fmt_us(lo['median_us'])} (`{lo['backend']}`) to "
            f"{fmt_us(hi['median_us'])} (`{hi['backend']}`); for {inside} of {f['backend'].nunique()} paths the "
            f"overhead falls below 10 % of a call inside the ladder; for the other {f['backend'].nunique() - inside} "
            f"it is still 10 % or more at the largest model they ran.")


def user_model_outcomes(bench: pd.DataFrame, names, machine=None) -> pd.DataFrame:
    """For the user's own models: every path at the smallest batch and thread setting, ok with its measured
    median, or skipped / failed with the reason the run recorded."""
    cols = ["model", "backend", "status", "median_us", "logit_rel_err", "reason"]
    rows = bench if bench is not None else pd.DataFrame(columns=cols)
    rows = rows[rows["model"].isin(list(names))]
    if machine is not None and "machine" in rows:
        rows = rows[rows["machine"] == machine]
    if not len(rows):
        return pd.DataFrame(columns=cols)
    first = rows[(rows["batch"] == rows["batch"].min()) & (rows["threads"] == rows["threads"].min())]
    out = first.reindex(columns=cols).copy()
    out["reason"] = out["reason"].fillna("")
    order = {b: i for i, b in enumerate(_order(out["backend"].unique()))}
    return out.sort_values(["model", "backend"], key=lambda s: s.map(order) if s.name == "backend" else s,
                           kind="stable").reset_index(drop=True)
