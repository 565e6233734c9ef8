"""Comparison tables over the result files and ``analyse``, which gathers everything the report shows into
one ``Results`` object. Pure functions over DataFrames (reading files: ``overhead.report.loading``; the latency
model and crossovers: ``overhead.report.latency``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from overhead.base import paths, tables
from overhead.report import latency
from overhead.report.loading import select_machine

TF_PATHS = paths.in_family(paths.KERAS3_TF)  # Keras 3 on TensorFlow and TF itself
ACCURACY_MIN_REF = 0.5   # below this reference accuracy a model is untrained: its accuracy drop means nothing


# ---------------------------------------------------------------- selection helpers -------------------
def ok(bench: pd.DataFrame) -> pd.DataFrame:
    """Rows that ran and matched the reference (status == "ok") with a positive latency."""
    if bench is None or not len(bench):
        return pd.DataFrame(columns=[] if bench is None else bench.columns)
    m = (bench["status"].astype(str) == "ok") & (pd.to_numeric(bench["median_us"], errors="coerce") > 0)
    return bench[m].copy()


def primary_threads(bench: pd.DataFrame, batch: int = 1) -> dict:
    """Per machine, the thread count of the main sweep: most ok rows at ``batch``; ties go to more threads."""
    out = {}
    for m, g in ok(bench).groupby("machine"):
        g1 = g[g["batch"] == batch] if (g["batch"] == batch).any() else g
        counts = g1["threads"].value_counts()
        out[m] = int(counts[counts == counts.max()].index.max())
    return out


def _at_threads(good: pd.DataFrame, threads=None, batch: int = 1) -> pd.Series:
    if threads is not None:
        return good["threads"] == threads
    return good["threads"] == good["machine"].map(primary_threads(good, batch))


def main_sweep(bench: pd.DataFrame, batch: int = 1, threads=None) -> pd.DataFrame:
    """Ok rows at ``batch`` and, per machine, ``threads`` (default: ``primary_threads``)."""
    good = ok(bench)
    return good[(good["batch"] == batch) & _at_threads(good, threads, batch)].copy() if len(good) else good


# ---------------------------------------------------------------- the machine's peak ------------------
def gemm_peak(gemm: pd.DataFrame | None, machine: str, threads: int) -> float:
    """Best float32 GEMM GFLOP/s of ``machine`` at ``threads`` (nearest measured thread count)."""
    if gemm is None or not len(gemm):
        return np.nan
    g = gemm[(gemm["machine"] == machine) & (gemm["gflops"] > 0)]
    if not len(g):
        return np.nan
    nearest = g.loc[(g["threads"] - threads).abs() == (g["threads"] - threads).abs().min()]
    return float(nearest["gflops"].max())


def float32_ceilings(gemm: pd.DataFrame | None, ceilings: pd.DataFrame | None) -> pd.DataFrame | None:
    """Every measured float32 GEMM rate (``machine, threads, gflops``) of gemm.csv and ceilings.csv (ok rows,
    any library and size): ``gemm_peak`` over it is the one float32 ceiling, the best measured GEMM."""
    parts = [t[["machine", "threads", "gflops"]] for t in (gemm,) if t is not None and len(t)]
    if ceilings is not None and len(ceilings) and {"machine", "threads", "gflops"} <= set(ceilings.columns):
        c = ceilings[ceilings["status"].astype(str) == "ok"] if "status" in ceilings else ceilings
        parts.append(c[["machine", "threads", "gflops"]])
    return pd.concat(parts, ignore_index=True) if parts else None


def peak_share(bench: pd.DataFrame, gemm: pd.DataFrame | None, n_largest: int = 2, batch: int = 1,
               threads=None) -> pd.DataFrame:
    """Achieved GFLOP/s of each backend on the ``n_largest`` models and its share of the GEMM peak."""
    sweep = main_sweep(bench, batch, threads)
    parts = []
    for m, g in sweep.groupby("machine"):
        big = g.drop_duplicates("model").nlargest(n_largest, "flops")["model"]
        parts.append(g[g["model"].isin(big)])
    if not parts:
        return pd.DataFrame()
    t = pd.concat(parts)[["machine", "model", "flops", "backend", "threads", "median_us"]].copy()
    t["achieved_gflops"] = t["flops"] * batch / (t["median_us"] * 1e3)
    t["peak_gflops"] = [gemm_peak(gemm, m, int(th)) for m, th in zip(t["machine"], t["threads"])]
    t["peak_share"] = t["achieved_gflops"] / t["peak_gflops"]
    return t.reset_index(drop=True)


# ---------------------------------------------------------------- comparison tables -------------------
def relative_table(bench: pd.DataFrame, reference: str = "numpy", batch: int = 1, threads=None) -> pd.DataFrame:
    """Each backend against ``reference`` per machine × model: ``slowdown`` = latency / reference latency,
    ``speedup`` = its inverse, with conservative bounds from the medians' CIs and a ``significant`` flag
    (the two CIs do not overlap)."""
    sweep = main_sweep(bench, batch, threads)
    keys = ["machine", "model", "threads"]
    ref = sweep[sweep["backend"] == reference][keys + ["median_us", "ci_lo_us", "ci_hi_us"]]
    ref = ref.drop_duplicates(keys).rename(columns={"median_us": "ref_median_us", "ci_lo_us": "ref_lo",
                                                    "ci_hi_us": "ref_hi"})
    t = sweep.merge(ref, on=keys, how="inner")
    t["reference"] = reference
    t["slowdown"] = t["median_us"] / t["ref_median_us"]
    t["slowdown_lo"] = t["ci_lo_us"] / t["ref_hi"]
    t["slowdown_hi"] = t["ci_hi_us"] / t["ref_lo"]
    t["speedup"] = 1.0 / t["slowdown"]
    t["significant"] = (t["ci_lo_us"] > t["ref_hi"]) | (t["ci_hi_us"] < t["ref_lo"])
    cols = ["machine", "model", "flops", "backend", "threads", "batch", "reference", "median_us",
            "ref_median_us", "slowdown", "slowdown_lo", "slowdown_hi", "speedup", "significant"]
    return t[cols].sort_values(["machine", "flops", "backend"]).reset_index(drop=True)


def pivot(table: pd.DataFrame, value: str, backends=None, machine=None) -> pd.DataFrame:
    """Model × backend view of one column of a long table, models by FLOPs, backends in ``backends`` order."""
    if machine is not None:
        table = table[table["machine"] == machine]
    if not len(table):
        return pd.DataFrame()
    order = table.drop_duplicates("model").sort_values("flops")["model"]
    p = table.pivot_table(index="model", columns="backend", values=value, aggfunc="median")
    p = p.reindex(order)
    if backends is not None:
        p = p[[b for b in backends if b in p.columns] + [c for c in p.columns if c not in backends]]
    p.columns.name = None
    return p


def batch_curves(bench: pd.DataFrame, threads=None) -> pd.DataFrame:
    """Latency per call, per sample and throughput (samples/s) against batch size, ok rows of the main threads."""
    good = ok(bench)
    if not len(good):
        return pd.DataFrame()
    sel = good[_at_threads(good, threads)].copy()
    sel["per_sample_us"] = sel["median_us"] / sel["batch"]
    sel["throughput_sps"] = sel["batch"] / sel["median_us"] * 1e6
    cols = ["machine", "model", "flops", "backend", "threads", "batch", "median_us", "per_sample_us",
            "throughput_sps"]
    return sel[cols].sort_values(["machine", "flops", "backend", "batch"]).reset_index(drop=True)


def thread_scaling(bench: pd.DataFrame, batch: int = 1) -> pd.DataFrame:
    """Latency at the fewest vs the most threads per machine × model × backend; ``speedup`` = few / many."""
    good = ok(bench)
    good = good[good["batch"] == batch] if len(good) else good
    rows = []
    for (m, mod, b), g in good.groupby(["machine", "model", "backend"]):
        lo, hi = g["threads"].min(), g["threads"].max()
        if lo == hi:
            continue
        t_lo, t_hi = (g.loc[g["threads"] == t, "median_us"].median() for t in (lo, hi))
        rows.append({"machine": m, "model": mod, "flops": g["flops"].iloc[0], "backend": b, "threads_lo": int(lo),
                     "threads_hi": int(hi), "median_us_lo": t_lo, "median_us_hi": t_hi, "speedup": t_lo / t_hi})
    return pd.DataFrame(rows)


def agreement(a: pd.DataFrame, b: pd.DataFrame, rel_tol: float = 0.10, normalize: bool = False,
              keys=("model", "backend", "batch", "threads")) -> pd.DataFrame:
    """Do two runs (or machines) agree? Pairs ok rows on ``keys``; ``ratio`` = b / a. A pair disagrees
    when the ratio (divided by the overall median ratio if ``normalize``, for machines of different speed)
    is off by more than ``rel_tol`` and the medians' CIs (on that scale) do not overlap."""
    cols = list(keys) + ["median_us", "ci_lo_us", "ci_hi_us"]
    m = ok(a)[cols + ["flops"]].merge(ok(b)[cols], on=list(keys), suffixes=("_a", "_b"))
    m["ratio"] = m["median_us_b"] / m["median_us_a"]
    scale = float(np.median(m["ratio"])) if normalize and len(m) else 1.0
    m["rel_ratio"] = m["ratio"] / scale
    m["ci_overlap"] = (m["ci_lo_us_b"] / scale <= m["ci_hi_us_a"]) & (m["ci_hi_us_b"] / scale >= m["ci_lo_us_a"])
    m["agree"] = (np.abs(np.log(m["rel_ratio"])) <= np.log1p(rel_tol)) | m["ci_overlap"]
    return m.sort_values(["flops", "backend"]).reset_index(drop=True)


def agreement_summary(table: pd.DataFrame) -> dict:
    """Counts, median ratio, Spearman rank correlation of the latencies and the worst pair of an ``agreement``."""
    if table is None or not len(table):
        return {"n": 0, "n_agree": 0, "frac_agree": np.nan, "median_ratio": np.nan, "spearman": np.nan,
                "worst": None}
    rho = np.corrcoef(table["median_us_a"].rank(), table["median_us_b"].rank())[0, 1] if len(table) > 1 else np.nan
    return {"n": int(len(table)), "n_agree": int(table["agree"].sum()), "frac_agree": float(table["agree"].mean()),
            "median_ratio": float(np.median(table["ratio"])), "spearman": float(rho),
            "worst": table.iloc[int(np.argmax(np.abs(np.log(table["rel_ratio"]))))].to_dict()}


# ---------------------------------------------------------------- status, start-up, pipeline ----------
def _num(b: pd.DataFrame, cols) -> pd.DataFrame:
    b = b.copy()
    for c in cols:
        b[c] = pd.to_numeric(b[c], errors="coerce") if c in b.columns else np.nan
    return b


def combinations(bench: pd.DataFrame) -> pd.DataFrame:
    """One row per machine × model × backend: its status over all its rows (``failed`` if any row failed,
    else ``ok`` if any ran ok, else ``skipped``) and how many rows it has of each status."""
    if bench is None or not len(bench):
        return pd.DataFrame(columns=["machine", "model", "backend", "status", "rows", "rows_ok"])
    st = bench["status"].astype(str)
    g = bench.assign(_ok=st == "ok", _failed=st == "failed").groupby(["machine", "model", "backend"], sort=False)
    t = g.agg(rows=("status", "size"), rows_ok=("_ok", "sum"), any_failed=("_failed", "any"))
    t["status"] = np.where(t["any_failed"], "failed", np.where(t["rows_ok"] > 0, "ok", "skipped"))
    return t.drop(columns="any_failed").reset_index()


def status_table(bench: pd.DataFrame) -> pd.DataFrame:
    """Per machine × backend: how many models ran ok / failed / were skipped (each model counted once) and
    the worst parity of its ok rows; the accuracy drop only over models whose reference is trained."""
    if bench is None or not len(bench):
        return pd.DataFrame()
    b = _num(bench, ("max_abs_err", "top1_agree", "accuracy", "ref_accuracy", "logit_rel_err"))
    b["acc_drop"] = (b["ref_accuracy"] - b["accuracy"]).where(b["ref_accuracy"] >= ACCURACY_MIN_REF)
    combos = combinations(bench)
    rows = []
    for (m, be), g in b.groupby(["machine", "backend"], sort=False):
        st = combos[(combos["machine"] == m) & (combos["backend"] == be)]["status"].value_counts()
        okr = g[g["status"].astype(str) == "ok"]
        row = {"machine": m, "backend": be, **{k: int(st.get(k, 0)) for k in ("ok", "failed", "skipped")},
               "max_abs_err": okr["max_abs_err"].max(), "min_top1_agree": okr["top1_agree"].min(),
               "max_acc_drop": okr["acc_drop"].max()}
        if okr["logit_rel_err"].notna().any():
            row["max_logit_rel_err"] = okr["logit_rel_err"].max()
        rows.append(row)
    return pd.DataFrame(rows)


def problems(bench: pd.DataFrame) -> pd.DataFrame:
    """Model × backend combinations with rows that are not ok: status, reason and how many rows."""
    if bench is None or not len(bench):
        return pd.DataFrame()
    bad = bench[bench["status"].astype(str) != "ok"].copy()
    bad["reason"] = bad["reason"].fillna("").astype(str)
    keys = ["machine", "model", "backend", "status", "reason"]
    return bad.groupby(keys, sort=False).size().rename("rows").reset_index()


STARTUP_COLS = ("import_s", "convert_s", "load_s", "first_call_s", "start_to_first_pred_s", "steady_median_us",
                "rss_after_import_mb", "rss_after_load_mb", "rss_after_first_call_mb")


def startup_summary(startup: pd.DataFrame | None) -> pd.DataFrame:
    """Median over ok repetitions per machine × model × backend, and cold-start / steady-call ratio."""
    if startup is None or not len(startup):
        return pd.DataFrame()
    s = startup[startup["status"].astype(str) == "ok"] if "status" in startup else startup
    keys = ["machine", "model", "backend"]
    g = s.groupby(keys)[[c for c in STARTUP_COLS if c in s.columns]].median()
    g["reps"] = s.groupby(keys).size()
    if {"start_to_first_pred_s", "steady_median_us"} <= set(g.columns):
        g["cold_over_steady"] = g["start_to_first_pred_s"] * 1e6 / g["steady_median_us"]
    return g.reset_index()


def pipeline_table(pipeline: pd.DataFrame | None) -> pd.DataFrame:
    """Stage times (µs) per machine × model × backend, with the share spent outside inference."""
    if pipeline is None or not len(pipeline):
        return pd.DataFrame()
    p = pipeline.pivot_table(index=["machine", "model", "backend"], columns="stage", values="median_us",
                             aggfunc="median")
    stages = [s for s in ("decode", "preprocess", "inference", "postprocess") if s in p.columns]
    p = p[stages + [c for c in p.columns if c not in stages]]
    p["total_us"] = p.sum(axis=1)
    p["non_inference_share"] = 1.0 - p.get("inference", 0.0) / p["total_us"]
    p.columns.name = None
    return p.reset_index()


def breakdown_table(breakdown: pd.DataFrame | None) -> pd.DataFrame:
    """Per-call decomposition (µs per bucket) per machine × model × backend, buckets as columns."""
    if breakdown is None or not len(breakdown):
        return pd.DataFrame()
    keys = ["machine", "model", "backend"]
    p = breakdown.pivot_table(index=keys, columns="bucket", values="us_per_call", aggfunc="median", sort=False)
    p.columns.name = None
    p["measured_median_us"] = breakdown.groupby(keys)["measured_median_us"].median()
    return p.reset_index()


# ---------------------------------------------------------------- everything the report needs ---------
@dataclass
class Results:
    """Every table the report's prose, figures and claims read (the report's single input)."""
    machine: str | None = None
    bench: pd.DataFrame | None = None
    threads: dict = field(default_factory=dict)
    sweep: pd.DataFrame = field(default_factory=pd.DataFrame)
    fits: pd.DataFrame = field(default_factory=pd.DataFrame)
    resid: pd.DataFrame = field(default_factory=pd.DataFrame)
    peak: pd.DataFrame = field(default_factory=pd.DataFrame)
    vs_numpy: pd.DataFrame = field(default_factory=pd.DataFrame)
    vs_predict: pd.DataFrame = field(default_factory=pd.DataFrame)
    batch: pd.DataFrame = field(default_factory=pd.DataFrame)
    scaling: pd.DataFrame = field(default_factory=pd.DataFrame)
    status: pd.DataFrame = field(default_factory=pd.DataFrame)
    problems: pd.DataFrame = field(default_factory=pd.DataFrame)
    startup: pd.DataFrame = field(default_factory=pd.DataFrame)
    pipeline: pd.DataFrame = field(default_factory=pd.DataFrame)
    breakdown: pd.DataFrame = field(default_factory=pd.DataFrame)
    models: pd.DataFrame = field(default_factory=pd.DataFrame)
    agreement: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)      # optional result files (idle_gap, memory_loop, …) or None
    meta: dict = field(default_factory=dict)       # {stem: metadata dict} of the report's machine
    meta_all: dict = field(default_factory=dict)   # {machine: {stem: metadata dict}} of every machine
    raw: dict = field(default_factory=dict)        # every result table as loaded (all machines), e.g. startup reps
    decisions: dict = field(default_factory=dict)  # winner questions asked by the report (overhead.report.wins)
    machines: list = field(default_factory=list)
    n_boot: int = 0

    def every(self, name: str) -> pd.DataFrame:
        """Table ``name`` over every machine (empty frame when absent)."""
        t = getattr(self, name, None)
        if t is None:
            t = self.extra.get(name)
        return pd.DataFrame() if t is None or not len(t) else t

    def mine(self, name: str) -> pd.DataFrame:
        """Table ``name`` restricted to the report's machine (empty frame when absent)."""
        t = self.every(name)
        return t[t["machine"] == self.machine] if "machine" in t.columns else t

    def others(self, name: str | None = None) -> list:
        """The machines other than the report's: those with a sweep (``machines``, in order), or with table
        ``name`` (by name)."""
        if name is None:
            return [m for m in self.machines if m != self.machine]
        t = self.every(name)
        return sorted(set(t["machine"]) - {self.machine}) if "machine" in t.columns else []

    def on(self, machine: str) -> "Results":
        """The same results seen from `machine`: ``mine`` and every section then give that machine's rows."""
        return replace(self, machine=machine)


def with_layers(sweep: pd.DataFrame, models: pd.DataFrame | None) -> pd.DataFrame:
    """``sweep`` with each model's layer count (NaN when unknown) for the per-layer latency model."""
    if models is None or not len(models) or "layers" not in models:
        return sweep.assign(layers=np.nan)
    lay = models.set_index("name")["layers"]
    return sweep.assign(layers=pd.to_numeric(sweep["model"].map(lay), errors="coerce"))


def analyse(results: dict, models: pd.DataFrame | None = None, machine=None, n_boot: int = 200, seed: int = 0,
            preferred_machine=None) -> Results:
    """All tables of the report from ``load_results`` output and ``load_models_meta`` (figures use ``.machine``)."""
    bench = results.get("bench")
    gemm = float32_ceilings(results.get("gemm"), results.get("ceilings"))
    R = Results(machine=select_machine(results, machine, preferred_machine), machines=results.get("machines", []),
                models=models if models is not None else pd.DataFrame(), n_boot=n_boot,
                extra={k: results.get(k) for k in tables.MERGED if k not in Results.__dataclass_fields__})
    R.meta_all = results.get("meta", {}) or {}
    R.raw = {k: results.get(k) for k in tables.MERGED if results.get(k) is not None}
    R.meta = R.meta_all.get(R.machine, {})
    if bench is not None and machine is not None:
        bench = bench[bench["machine"] == str(machine)]
    R.bench = bench
    R.status, R.problems = status_table(bench), problems(bench)
    R.startup = startup_summary(results.get("startup"))
    R.pipeline = pipeline_table(results.get("pipeline"))
    R.breakdown = breakdown_table(results.get("breakdown"))
    if bench is None or not len(ok(bench)):
        return R
    R.threads = primary_threads(bench)
    R.sweep = with_layers(main_sweep(bench), models)
    R.fits = latency.fit_all(R.sweep, n_boot=n_boot, seed=seed)
    if gemm is not None and len(gemm) and len(R.fits):
        R.fits["peak_gflops"] = [gemm_peak(gemm, m, t) for m, t in zip(R.fits["machine"], R.fits["threads"])]
        R.fits["fit_peak_share"] = R.fits["gflops"] / R.fits["peak_gflops"]
    R.resid = latency.residuals(R.sweep, R.fits)
    R.peak = peak_share(bench, gemm)
    R.vs_numpy, R.vs_predict = relative_table(bench, "numpy"), relative_table(bench, "keras.predict")
    R.batch, R.scaling = batch_curves(bench), thread_scaling(bench)
    if R.machine is not None:
        base = R.sweep[R.sweep["machine"] == R.machine]
        for other in R.others("sweep"):
            t = agreement(base, R.sweep[R.sweep["machine"] == other], normalize=True,
                          keys=("model", "backend", "batch"))
            R.agreement[other] = {"table": t, "summary": agreement_summary(t)}
    return R
