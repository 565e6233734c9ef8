"""Fits, crossovers and comparison tables over the result files: pure functions over DataFrames.

The latency model per backend is ``latency_us = overhead_us + flops / (1e3 * gflops)``: a fixed per-call
cost (the framework tax) plus the work divided by an effective throughput. Only ``load_results`` and
``load_models_meta`` touch the file system.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

RESULT_FILES = ("bench", "gemm", "startup", "pipeline", "breakdown")
TF_PATHS = ("keras.predict", "keras.predict_on_batch", "keras.call", "tf.function", "tf.function.xla",
            "tf.savedmodel")
SHARES = (0.5, 0.1)   # overhead shares whose crossover FLOPs are reported


# ---------------------------------------------------------------- loading -----------------------------
def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}


def load_results(results_root) -> dict:
    """Merge every machine folder under ``results_root`` (a folder holding result CSVs itself counts as one).

    Returns ``{"bench": df|None, "gemm", "startup", "pipeline", "breakdown", "meta": {machine: {stem: dict}},
    "machines": [...]}``; a missing or empty file gives ``None``. Rows get the folder name as ``machine``
    when the column is absent.
    """
    root = Path(results_root)
    folders = []
    if root.is_dir():
        own = any((root / f"{s}.csv").is_file() for s in RESULT_FILES)
        folders = [root] if own else sorted(p for p in root.iterdir() if p.is_dir())
    frames, meta = {s: [] for s in RESULT_FILES}, {}
    for folder in folders:
        name = folder.name
        for stem in RESULT_FILES:
            csv = folder / f"{stem}.csv"
            if csv.is_file() and csv.stat().st_size > 0:
                df = pd.read_csv(csv)
                if "machine" not in df.columns:
                    df.insert(0, "machine", folder.name)
                df["machine"] = df["machine"].fillna(folder.name).astype(str)
                if stem == "bench" and len(df):
                    name = df["machine"].iloc[0]
                frames[stem].append(df)
        found = {s: _read_json(folder / f"{s}.meta.json") for s in RESULT_FILES
                 if (folder / f"{s}.meta.json").is_file()}
        if found:
            meta[name] = found
    res = {s: (pd.concat(v, ignore_index=True) if v else None) for s, v in frames.items()}
    res["meta"] = meta
    res["machines"] = sorted({m for s in RESULT_FILES if res[s] is not None for m in res[s]["machine"]})
    return res


def load_models_meta(models_dir) -> pd.DataFrame:
    """One row per ``<name>.json`` in ``models_dir`` (empty frame when there is none), smallest FLOPs first."""
    folder = Path(models_dir)
    rows = [{"name": p.stem, **_read_json(p)} for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    df = pd.DataFrame(rows)
    return df.sort_values("flops", kind="stable").reset_index(drop=True) if "flops" in df else df


def select_machine(results: dict, machine=None, preferred=None) -> str | None:
    """The machine whose figures are drawn: ``machine`` if given, else ``preferred`` when it has results,
    else the one with the most benchmark rows."""
    machines = results.get("machines") or []
    if machine is not None:
        return str(machine)
    if preferred in machines:
        return preferred
    bench = results.get("bench")
    if bench is not None and len(bench):
        return str(bench["machine"].value_counts().idxmax())
    return machines[0] if machines else None


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


# ---------------------------------------------------------------- the latency model -------------------
def predict_latency(flops, overhead_us, gflops):
    """Latency in µs of a call doing ``flops`` FLOPs under the fitted model."""
    return overhead_us + np.asarray(flops, dtype=float) / (1e3 * gflops)


def overhead_share(flops, overhead_us, gflops):
    """Fraction of the modelled latency that is the fixed overhead."""
    return overhead_us / predict_latency(flops, overhead_us, gflops)


def crossover_flops(overhead_us, gflops, share):
    """FLOPs per call at which the overhead is ``share`` of the latency: ``o · 1e3 · g · (1 − s) / s``."""
    return overhead_us * 1e3 * gflops * (1.0 - share) / share


def fit_latency(flops, latency_us, f_scale: float = 0.1, x0=None) -> dict:
    """Robust fit of ``latency = overhead + flops / throughput`` on log residuals (soft-L1 loss).

    Bounds: overhead >= 0, throughput > 0. Returns ``{overhead_us, gflops, rel_rmse, n}`` (``rel_rmse``: RMS
    of the log residuals); NaNs when fewer than two distinct FLOP counts. ``x0`` = (overhead_us, gflops).
    """
    f = np.asarray(flops, dtype=float)
    y = np.asarray(latency_us, dtype=float)
    good = np.isfinite(f) & np.isfinite(y) & (y > 0) & (f > 0)
    f, y = f[good], y[good]
    nan = {"overhead_us": np.nan, "gflops": np.nan, "rel_rmse": np.nan, "n": int(len(f))}
    if len(np.unique(f)) < 2:
        return nan
    ly, fk = np.log(y), f / 1e3

    def resid(p):                       # p = (overhead µs, log GFLOP/s)
        return np.log(p[0] + fk * np.exp(-p[1])) - ly

    def jac(p):
        comp = fk * np.exp(-p[1])
        tot = p[0] + comp
        return np.column_stack([1.0 / tot, -comp / tot])

    if x0 is not None:
        starts = [(max(x0[0], 0.0), np.log(x0[1]))]
    else:
        g_big = f.max() / (1e3 * y.max())
        starts = [(0.5 * y.min(), np.log(g_big)), (0.05 * y.min(), np.log(10 * g_big))]
    best = None
    for start in starts:
        r = least_squares(resid, start, jac=jac, bounds=([0.0, -40.0], [np.inf, 40.0]), loss="soft_l1",
                          f_scale=f_scale, x_scale="jac")
        if best is None or r.cost < best.cost:
            best = r
    res = resid(best.x)
    return {"overhead_us": float(best.x[0]), "gflops": float(np.exp(best.x[1])),
            "rel_rmse": float(np.sqrt(np.mean(res ** 2))), "n": int(len(f))}


def _with_crossovers(fit: dict) -> dict:
    return {**fit, **{f"cross{int(s * 100)}_flops": crossover_flops(fit["overhead_us"], fit["gflops"], s)
                      for s in SHARES}}


def bootstrap_fit(flops, latency_us, n_boot: int = 200, seed=0, ci: float = 0.95) -> dict:
    """Point fit, crossovers and percentile bootstrap CIs (``<key>_lo/_hi``; rows resampled, seeded)."""
    f, y = np.asarray(flops, dtype=float), np.asarray(latency_us, dtype=float)
    out = _with_crossovers(fit_latency(f, y))
    keys = ["overhead_us", "gflops"] + [f"cross{int(s * 100)}_flops" for s in SHARES]
    draws = []
    rng = np.random.default_rng(seed)
    for _ in range(n_boot if np.isfinite(out["overhead_us"]) else 0):
        idx = rng.integers(0, len(f), len(f))
        if len(np.unique(f[idx])) > 1:
            b = fit_latency(f[idx], y[idx], x0=(out["overhead_us"], out["gflops"]))
            draws.append([_with_crossovers(b)[k] for k in keys])
    d = np.asarray(draws).reshape(-1, len(keys))
    for j, k in enumerate(keys):
        lo, hi = np.percentile(d[:, j], [50 * (1 - ci), 50 * (1 + ci)]) if len(d) else (np.nan, np.nan)
        out[f"{k}_lo"], out[f"{k}_hi"] = float(lo), float(hi)
    out["n_boot"] = len(d)
    return out


def fit_all(bench: pd.DataFrame, batch: int = 1, threads=None, n_boot: int = 200, seed: int = 0,
            gemm: pd.DataFrame | None = None) -> pd.DataFrame:
    """One fit per machine × backend over the ladder (ok rows of the main sweep), with bootstrap CIs.

    With ``gemm`` the table also gets the machine's GEMM peak and each backend's share of it.
    """
    sweep = main_sweep(bench, batch, threads)
    rows = []
    for (m, b), g in sweep.groupby(["machine", "backend"], sort=False):
        fl = g["flops"].to_numpy(float) * batch
        stream = zlib.crc32(f"{m}|{b}".encode())
        r = bootstrap_fit(fl, g["median_us"].to_numpy(float), n_boot=n_boot, seed=[seed, stream])
        r.update(machine=m, backend=b, batch=batch, threads=int(g["threads"].iloc[0]),
                 n_models=int(g["model"].nunique()))
        rows.append(r)
    fits = pd.DataFrame(rows)
    if not len(fits):
        return fits
    lead = ["machine", "backend", "threads", "batch", "n_models"]
    fits = fits[lead + [c for c in fits.columns if c not in lead]]
    if gemm is not None and len(gemm):
        fits["peak_gflops"] = [gemm_peak(gemm, m, t) for m, t in zip(fits["machine"], fits["threads"])]
        fits["fit_peak_share"] = fits["gflops"] / fits["peak_gflops"]
    return fits


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
def status_table(bench: pd.DataFrame) -> pd.DataFrame:
    """Per machine × backend: how many models ran ok/failed/skipped and the worst numerical parity."""
    if bench is None or not len(bench):
        return pd.DataFrame()
    b = bench.copy()
    for c in ("max_abs_err", "top1_agree", "accuracy", "ref_accuracy"):
        b[c] = pd.to_numeric(b[c], errors="coerce") if c in b.columns else np.nan
    b["acc_drop"] = b["ref_accuracy"] - b["accuracy"]
    rows = []
    for (m, be), g in b.groupby(["machine", "backend"], sort=False):
        st = g.drop_duplicates(["model", "status"])["status"].value_counts()
        okr = g[g["status"] == "ok"]
        rows.append({"machine": m, "backend": be, **{k: int(st.get(k, 0)) for k in ("ok", "failed", "skipped")},
                     "max_abs_err": okr["max_abs_err"].max(), "min_top1_agree": okr["top1_agree"].min(),
                     "max_acc_drop": okr["acc_drop"].max()})
    return pd.DataFrame(rows)


def problems(bench: pd.DataFrame) -> pd.DataFrame:
    """Rows that were not ok, one per machine × model × backend × status × reason."""
    if bench is None or not len(bench):
        return pd.DataFrame()
    bad = bench[bench["status"].astype(str) != "ok"]
    return bad[["machine", "model", "backend", "status", "reason"]].drop_duplicates().reset_index(drop=True)


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
def analyse(results: dict, machine=None, n_boot: int = 200, seed: int = 0, preferred_machine=None) -> dict:
    """All tables of the report from ``load_results`` output (figures use ``R["machine"]``)."""
    bench, gemm = results.get("bench"), results.get("gemm")
    R = {"machine": select_machine(results, machine, preferred_machine)}
    if bench is not None and machine is not None:
        bench = bench[bench["machine"] == str(machine)]
    have = bench is not None and len(ok(bench)) > 0

    def when(fn, *a, **k):
        return fn(*a, **k) if have else pd.DataFrame()

    R.update(bench=bench, threads=primary_threads(bench) if have else {},
             fits=when(fit_all, bench, n_boot=n_boot, seed=seed, gemm=gemm), sweep=when(main_sweep, bench),
             peak=when(peak_share, bench, gemm), vs_numpy=when(relative_table, bench, "numpy"),
             vs_predict=when(relative_table, bench, "keras.predict"), batch=when(batch_curves, bench),
             scaling=when(thread_scaling, bench), status=status_table(bench), problems=problems(bench),
             startup=startup_summary(results.get("startup")), pipeline=pipeline_table(results.get("pipeline")),
             breakdown=breakdown_table(results.get("breakdown")), agreement={})
    if have and R["machine"] is not None:
        sweep = R["sweep"]
        base = sweep[sweep["machine"] == R["machine"]]
        for other in sorted(set(sweep["machine"]) - {R["machine"]}):
            t = agreement(base, sweep[sweep["machine"] == other], normalize=True, keys=("model", "backend", "batch"))
            R["agreement"][other] = {"table": t, "summary": agreement_summary(t)}
    return R
