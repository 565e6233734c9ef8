"""The latency model of each backend, chosen by its residuals.

Two candidate models per backend, fitted on the batch-1 medians of every model of the ladder:

* ``two-term``:  latency = overhead + FLOPs / throughput
* ``per-layer``: latency = overhead + layers × per-layer cost + FLOPs / throughput

(eager and interpreted paths pay a cost per op that FLOPs alone cannot capture). Both are fitted by plain
least squares on log latency (no robust loss: a point that disagrees stays visible in the residuals). The
richer model is kept only when it predicts *left-out models* better: when the two-term model's
leave-one-model-out RMS log error exceeds ``MATERIAL`` and the per-layer model's is at least ``RICHER_GAIN``
lower. Every measured point the chosen model misses
by more than ``MISS`` is reported. Crossovers (where the fixed part falls below a share of a call) are
reported inside the measured range only; beyond it they are labelled, never extrapolated.
"""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

SHARES = (0.5, 0.1)          # overhead shares whose crossovers are reported
MATERIAL = 0.10              # two-term leave-one-out RMS log error above which a richer model is considered
RICHER_GAIN = 1 / 3          # … and kept if it cuts that error by at least this fraction
MISS = 0.25                  # a fitted latency off a measured one by more than this is a named miss
MODELS = ("two-term", "per-layer")


# ---------------------------------------------------------------- the two models ---------------------
def predict_latency(flops, overhead_us, gflops, layers=0.0, per_layer_us=0.0):
    """Latency in µs of a call doing ``flops`` FLOPs through ``layers`` layers under a fitted model."""
    return (overhead_us + np.asarray(layers, dtype=float) * per_layer_us
            + np.asarray(flops, dtype=float) / (1e3 * gflops))


def fixed_share(flops, overhead_us, gflops, layers=0.0, per_layer_us=0.0):
    """Fraction of the modelled latency that does not scale with FLOPs (overhead + per-layer cost)."""
    fixed = overhead_us + np.asarray(layers, dtype=float) * per_layer_us
    return fixed / predict_latency(flops, overhead_us, gflops, layers, per_layer_us)


def crossover_flops(overhead_us, gflops, share):
    """Two-term model: FLOPs per call at which the overhead is ``share`` of the latency."""
    return overhead_us * 1e3 * gflops * (1.0 - share) / share


def _nan_fit(kind, n):
    return {"kind": kind, "overhead_us": np.nan, "per_layer_us": 0.0 if kind == "two-term" else np.nan,
            "gflops": np.nan, "rms_log": np.nan, "n": int(n)}


def fit(flops, latency_us, layers=None, kind: str = "two-term", x0: dict | None = None) -> dict:
    """Least squares on log latency. ``kind`` is ``two-term`` or ``per-layer`` (needs ``layers``).

    Returns ``{kind, overhead_us, per_layer_us, gflops, rms_log, n}``; NaNs when the data cannot pin the
    parameters (fewer distinct models than parameters + 1 for the per-layer model, < 2 for two-term).
    ``x0``: a previous fit of the same kind to start from (one start instead of several)."""
    f = np.asarray(flops, dtype=float)
    y = np.asarray(latency_us, dtype=float)
    L = np.zeros_like(f) if layers is None else np.asarray(layers, dtype=float)
    good = np.isfinite(f) & np.isfinite(y) & (y > 0) & (f > 0) & np.isfinite(L)
    f, y, L = f[good], y[good], L[good]
    rich = kind == "per-layer"
    if len(np.unique(f)) < (4 if rich else 2):
        return _nan_fit(kind, len(f))
    ly, fk = np.log(y), f / 1e3

    def parts(p):
        o, c, lg = (p[0], p[1], p[2]) if rich else (p[0], 0.0, p[1])
        return o, c, fk * np.exp(-lg)

    def resid(p):
        o, c, comp = parts(p)
        return np.log(o + c * L + comp) - ly

    def jac(p):
        o, c, comp = parts(p)
        tot = o + c * L + comp
        cols = [1.0 / tot, L / tot, -comp / tot] if rich else [1.0 / tot, -comp / tot]
        return np.column_stack(cols)

    g_big = f.max() / (1e3 * y.max())
    starts = [(0.5 * y.min(), np.log(g_big)), (0.05 * y.min(), np.log(10 * g_big)), (0.9 * y.min(), np.log(g_big))]
    if rich:
        starts = [(o, c, lg) for o, lg in starts for c in (0.0, 0.1 * y.min() / max(L.max(), 1.0))]
    if x0 is not None and np.isfinite(x0["overhead_us"]):
        p0 = [x0["overhead_us"], x0["per_layer_us"], np.log(x0["gflops"])]
        starts = [tuple(p0 if rich else (p0[0], p0[2]))]
    lo = [0.0, 0.0, -40.0] if rich else [0.0, -40.0]
    hi = [np.inf, np.inf, 40.0] if rich else [np.inf, 40.0]
    best = None
    for s in starts:
        r = least_squares(resid, s, jac=jac, bounds=(lo, hi), x_scale="jac")
        if best is None or r.cost < best.cost:
            best = r
    o, c, _ = parts(best.x)
    lg = best.x[-1]
    return {"kind": kind, "overhead_us": float(o), "per_layer_us": float(c), "gflops": float(np.exp(lg)),
            "rms_log": float(np.sqrt(np.mean(resid(best.x) ** 2))), "n": int(len(f))}


def predict(p: dict, flops, layers=None):
    return predict_latency(flops, p["overhead_us"], p["gflops"], 0.0 if layers is None else layers,
                           p["per_layer_us"] if np.isfinite(p["per_layer_us"]) else 0.0)


def loo_error(flops, latency_us, layers=None, kind="two-term") -> float:
    """RMS of the log error on each model when that model is left out of the fit (NaN if too few)."""
    f, y = np.asarray(flops, float), np.asarray(latency_us, float)
    L = np.zeros_like(f) if layers is None else np.asarray(layers, float)
    errs, full = [], fit(f, y, L, kind)
    for i in range(len(f)):
        keep = np.arange(len(f)) != i
        p = fit(f[keep], y[keep], L[keep], kind, x0=full)
        if not np.isfinite(p["overhead_us"]):
            return np.nan
        errs.append(np.log(predict(p, f[i], L[i]) / y[i]))
    return float(np.sqrt(np.mean(np.square(errs)))) if errs else np.nan


def choose(flops, latency_us, layers=None) -> dict:
    """Fit both models, compare leave-one-model-out errors, keep the one the data support (the per-layer model
    is not tried when the two-term error is within ``MATERIAL``: ``loo_per_layer`` is then NaN)."""
    two = fit(flops, latency_us, None, "two-term")
    loo2 = loo_error(flops, latency_us, None, "two-term")
    have_layers = layers is not None and np.isfinite(np.asarray(layers, float)).all()
    needed = have_layers and not (np.isfinite(loo2) and loo2 <= MATERIAL)   # the two-term model is good enough
    rich = fit(flops, latency_us, layers, "per-layer") if needed else _nan_fit("per-layer", len(flops))
    loo3 = loo_error(flops, latency_us, layers, "per-layer") if needed else np.nan
    use_rich = bool(np.isfinite(loo3) and np.isfinite(loo2) and loo2 > MATERIAL and loo3 < (1 - RICHER_GAIN) * loo2)
    best = rich if use_rich else two
    return {**best, "model": best["kind"], "loo_two_term": loo2, "loo_per_layer": loo3,
            "two_term": two, "per_layer": rich}


# ---------------------------------------------------------------- crossovers ---------------------------
def crossover(p: dict, flops, layers, share: float) -> tuple[float, str]:
    """FLOPs where the fixed part of a call falls to ``share``: ``(flops, where)`` with ``where`` one of
    ``inside`` (within the measured models), ``beyond`` (after the largest) or ``below`` (before the smallest).

    Two-term: closed form. Per-layer: the fixed share at each measured model (FLOPs order), interpolated in
    log FLOPs between the last model above ``share`` and the first from which it stays below."""
    f = np.asarray(flops, float)
    order = np.argsort(f)
    f = f[order]
    if not np.isfinite(p["overhead_us"]) or not len(f):
        return np.nan, "n/a"
    if p.get("kind") == "two-term" or not np.isfinite(p.get("per_layer_us", np.nan)) or p["per_layer_us"] == 0:
        x = crossover_flops(p["overhead_us"], p["gflops"], share)
    else:
        L = np.asarray(layers, float)[order]
        s = fixed_share(f, p["overhead_us"], p["gflops"], L, p["per_layer_us"])
        above = np.nonzero(s > share)[0]
        if not len(above):
            x = f[0] * 0.5
        elif above[-1] == len(f) - 1:
            x = np.inf
        else:
            i = above[-1]
            t = (np.log(s[i]) - np.log(share)) / (np.log(s[i]) - np.log(s[i + 1]))
            x = float(np.exp(np.log(f[i]) + t * (np.log(f[i + 1]) - np.log(f[i]))))
    where = "beyond" if x > f[-1] else "below" if x < f[0] else "inside"
    return float(x), where


# ---------------------------------------------------------------- per backend, with intervals ----------
def fit_backend(flops, latency_us, layers=None, n_boot: int = 200, seed=0, ci: float = 0.95) -> dict:
    """Chosen model, crossovers and percentile bootstrap intervals (models resampled, seeded)."""
    f, y = np.asarray(flops, float), np.asarray(latency_us, float)
    L = None if layers is None else np.asarray(layers, float)
    out = choose(f, y, L)
    kind = out["model"]
    keys = ["overhead_us", "per_layer_us", "gflops"] + [f"cross{int(s * 100)}_flops" for s in SHARES]
    for s in SHARES:
        out[f"cross{int(s * 100)}_flops"], out[f"cross{int(s * 100)}_where"] = crossover(out, f, L, s)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot if np.isfinite(out["overhead_us"]) else 0):
        idx = rng.integers(0, len(f), len(f))
        if len(np.unique(f[idx])) < (4 if kind == "per-layer" else 2):
            continue
        b = fit(f[idx], y[idx], None if L is None else L[idx], kind, x0=out)
        row = [b["overhead_us"], b["per_layer_us"], b["gflops"]]
        row += [crossover(b, f, L, s)[0] for s in SHARES]      # crossovers placed on the measured ladder
        draws.append(row)
    d = np.asarray(draws, dtype=float).reshape(-1, len(keys))
    for j, k in enumerate(keys):
        col = np.minimum(d[:, j][~np.isnan(d[:, j])], 1e300)          # inf = beyond the data, kept as such
        lo, hi = np.percentile(col, [50 * (1 - ci), 50 * (1 + ci)]) if len(col) else (np.nan, np.nan)
        lo, hi = (np.inf if v >= 1e299 else v for v in (lo, hi))
        out[f"{k}_lo"], out[f"{k}_hi"] = float(lo), float(hi)
    out["n_boot"] = len(d)
    return out


def fit_all(sweep: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """One chosen model per machine × backend over the batch-1 rows of ``sweep`` (needs ``flops``,
    ``median_us`` and, for the per-layer model, ``layers``)."""
    rows = []
    for (m, b), g in sweep.groupby(["machine", "backend"], sort=False):
        g = g.drop_duplicates("model")
        L = g["layers"].to_numpy(float) if "layers" in g and g["layers"].notna().all() else None
        r = fit_backend(g["flops"].to_numpy(float) * g["batch"].to_numpy(float), g["median_us"].to_numpy(float),
                        L, n_boot=n_boot, seed=[seed, zlib.crc32(f"{m}|{b}".encode())])
        two = r.pop("two_term")
        r.pop("per_layer")
        r.update(two_term_overhead_us=two["overhead_us"], two_term_gflops=two["gflops"])
        r.update(machine=m, backend=b, threads=int(g["threads"].iloc[0]), batch=int(g["batch"].iloc[0]),
                 n_models=int(g["model"].nunique()))
        rows.append(r)
    fits = pd.DataFrame(rows)
    if not len(fits):
        return fits
    lead = ["machine", "backend", "model", "threads", "batch", "n_models"]
    return fits[lead + [c for c in fits.columns if c not in lead]]


def residuals(sweep: pd.DataFrame, fits: pd.DataFrame) -> pd.DataFrame:
    """Measured against fitted latency per machine × backend × model, for the chosen model and the
    two-term model (``rel_err`` = fitted / measured − 1)."""
    if not len(fits) or not len(sweep):
        return pd.DataFrame()
    rows = []
    for r in fits.itertuples():
        g = sweep[(sweep["machine"] == r.machine) & (sweep["backend"] == r.backend)].drop_duplicates("model")
        L = g["layers"].to_numpy(float) if "layers" in g else np.zeros(len(g))
        f = g["flops"].to_numpy(float) * g["batch"].to_numpy(float)
        two = {"overhead_us": r.two_term_overhead_us, "gflops": r.two_term_gflops, "per_layer_us": 0.0}
        fitted = predict_latency(f, r.overhead_us, r.gflops, np.nan_to_num(L), np.nan_to_num(r.per_layer_us))
        for i, (mod, meas) in enumerate(zip(g["model"], g["median_us"])):
            rows.append({"machine": r.machine, "backend": r.backend, "model": mod, "flops": f[i], "layers": L[i],
                         "chosen": r.model, "measured_us": float(meas), "fitted_us": float(fitted[i]),
                         "rel_err": float(fitted[i] / meas - 1),
                         "two_term_rel_err": float(predict(two, f[i]) / meas - 1)})
    return pd.DataFrame(rows)


def misses(resid: pd.DataFrame, limit: float = MISS, column: str = "rel_err") -> pd.DataFrame:
    """Points a fitted model misses by more than ``limit`` (relative), worst first."""
    if resid is None or not len(resid):
        return pd.DataFrame(columns=["machine", "backend", "model", "measured_us", "fitted_us", column])
    bad = resid[resid[column].abs() > limit].copy()
    return bad.reindex(bad[column].abs().sort_values(ascending=False).index).reset_index(drop=True)
