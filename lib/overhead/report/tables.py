"""Tables for display over bench.csv rows, for the benchmark notebook and the `overhead` command. Pure pandas.
The report's own tables live in their section modules (``overhead.report.sections``)."""
from __future__ import annotations

import pandas as pd

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


