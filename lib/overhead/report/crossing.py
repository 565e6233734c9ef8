"""Where overhead stops mattering, read from the measured points of one path (no fit).

The measured fixed cost of a path is its lowest batch-1 latency over the models it ran on (in practice the
smallest model: its arithmetic is tiny, so this is an upper bound of the per-call overhead). On each model the
overhead share is that fixed cost over the model's measured latency; the crossover at a share is interpolated
in log FLOPs / log share between the two neighbouring models that bracket it. When the share never falls that
low, the answer is "beyond" the largest model *this path* ran on — never the ladder's largest.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SHARES = (0.5, 0.1)
# THE definition of overhead, stated once in the TL;DR and used by every section that measures a share of a call
DEFINITION = ("the part of a call beyond the model's compute, where compute = a bare `tf.function`'s latency on "
              "that model minus its latency on the smallest one")


def per_layer_fit(fit) -> bool:
    """A fit whose fixed part grows with the layer count (then the smallest model's latency is no fixed cost)."""
    return fit is not None and str(fit.get("model", "")) == "per-layer" and np.isfinite(
        float(fit.get("per_layer_us", np.nan))) and float(fit["per_layer_us"]) > 0


def _curve(sweep, backend):
    if sweep is None or not len(sweep) or "backend" not in sweep:
        return pd.DataFrame(columns=["model", "flops", "median_us"])
    g = sweep[sweep["backend"] == backend].drop_duplicates("model").sort_values("flops")
    return g[np.isfinite(g["median_us"].astype(float)) & (g["median_us"].astype(float) > 0)]


def share_curve(sweep: pd.DataFrame, backend: str, fit=None, compute_ref: str | None = None) -> pd.DataFrame:
    """``model, flops, median_us, share`` of one path in FLOPs order (``attrs["basis"]`` says how):

    * ``compute_ref`` (a path running the same kernels, e.g. ``tf.function`` for Keras on TF): the compute on
      each model is that path's latency beyond its own fixed cost (its lowest latency), and the overhead share
      is (latency − compute) / latency — measured, and it keeps a cost that grows with depth (eager ``model(x)``
      pays per layer); models the reference did not run are dropped;
    * a per-layer ``fit`` (``latency.fit_all`` row): its fitted overhead + layers × per-layer cost over the
      measured latency (basis ``fitted``);
    * otherwise: the path's own fixed cost (its lowest latency) over the latency."""
    g = _curve(sweep, backend)
    if not len(g):
        return pd.DataFrame(columns=["model", "flops", "median_us", "share"])
    out = g[["model", "flops", "median_us"]].copy()
    fixed = float(g["median_us"].min())
    ref = _curve(sweep, compute_ref) if compute_ref else None
    if ref is not None and len(ref) >= 2:
        compute = ref.set_index("model")["median_us"].astype(float) - float(ref["median_us"].min())
        out = out[out["model"].isin(compute.index)].copy()
        t = out["median_us"].astype(float)
        out["share"] = ((t - out["model"].map(compute)) / t).clip(0.0, 1.0)
        out.attrs["basis"] = "measured"
        out.attrs["compute_ref"] = compute_ref
    elif per_layer_fit(fit) and "layers" in g and g["layers"].notna().all():
        part = float(fit["overhead_us"]) + g["layers"].astype(float) * float(fit["per_layer_us"])
        out["share"] = part / out["median_us"].astype(float)
        out.attrs["basis"] = "fitted"
    else:
        out["share"] = fixed / out["median_us"].astype(float)
        out.attrs["basis"] = "measured"
    out.attrs["fixed_us"] = fixed
    return out.reset_index(drop=True) if "share" in out else out


def crossover(sweep: pd.DataFrame, backend: str, share: float, fit=None, compute_ref: str | None = None) -> dict:
    """The measured crossover of ``backend`` at ``share``.

    ``{backend, share, where, flops, below_model, above_model, largest_model, largest_flops, fixed_us, n_models,
    share_at_largest}``: ``where`` is ``inside`` (``flops`` interpolated between ``below_model``, the last model
    above the share, and ``above_model``, the first at or under it), ``beyond`` (still above at
    ``largest_model``, the largest model this path ran on) or ``n/a`` (fewer than two models). ``basis``:
    ``measured``, or ``fitted`` when a per-layer ``fit`` gave the fixed part (see ``share_curve``)."""
    c = share_curve(sweep, backend, fit, compute_ref)
    out = {"backend": backend, "share": share, "where": "n/a", "flops": np.nan, "below_model": None,
           "above_model": None, "largest_model": None, "largest_flops": np.nan,
           "fixed_us": c.attrs.get("fixed_us", np.nan), "n_models": int(len(c)), "share_at_largest": np.nan,
           "basis": c.attrs.get("basis", "measured")}
    if len(c) < 2:
        return out
    out.update(largest_model=c["model"].iloc[-1], largest_flops=float(c["flops"].iloc[-1]),
               share_at_largest=float(c["share"].iloc[-1]))
    under = np.nonzero(c["share"].to_numpy() <= share)[0]
    # the first model from which the share stays at or under the level (a later bump back up counts)
    above = np.nonzero(c["share"].to_numpy() > share)[0]
    if not len(under) or (len(above) and above[-1] == len(c) - 1):
        out["where"] = "beyond"
        return out
    i = above[-1] if len(above) else 0
    j = i + 1
    s_i, s_j = (max(float(c["share"].iloc[k]), 1e-9) for k in (i, j))   # a share of 0 (clipped noise)
    f_i, f_j = float(c["flops"].iloc[i]), float(c["flops"].iloc[j])
    t = (np.log(s_i) - np.log(share)) / (np.log(s_i) - np.log(s_j)) if s_i != s_j else 1.0
    out.update(where="inside", flops=float(np.exp(np.log(f_i) + t * (np.log(f_j) - np.log(f_i)))),
               below_model=c["model"].iloc[i], above_model=c["model"].iloc[j])
    return out


