"""One float32 ceiling per thread count — the best GEMM measured in the run (``ceilings.csv`` across libraries
and sizes, and ``gemm.csv``) — and the theoretical peak exactly as the ceilings summary states it, with whether
its clock was measured or nominal. A measured GEMM above the stated peak is never printed as if it were fine:
the sentence says the stated peak is then no bound.

Also the BLAS setting each machine's NumPy numbers ran with (bench.meta.json, blas_ab.csv) and the float32
roofline: achieved GFLOP/s of every path (model FLOPs x batch / median latency) against the measured and
theoretical ceilings; reduced-precision paths (int8, fp16) are drawn hollow, as the float32 ceiling does not
bound them."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator

from overhead.base import paths
from overhead.report import captions
from overhead.report import sentences as T
from overhead.report.fmt import NOT_MEASURED, code, fmt_x
from overhead.report.plotkit import _fig, _si, describe, save
from overhead.report.style import color_for, marker_for, order_backends

BASIS_KEYS = ("fp32_peak_kind", "clock_basis", "clock_kind", "peak_basis", "peak_kind")  # fp32_peak_kind: ceilings.derive_peak


def summary(R) -> dict:
    """The ceilings summary of ``ceilings.meta.json`` for the report's machine ({} when absent)."""
    meta = R.meta.get("ceilings", {})
    s = (meta.get("ceilings") or meta.get("summary") or meta) if isinstance(meta, dict) else {}
    return s if isinstance(s, dict) else {}


def gemm_table(R) -> pd.DataFrame:
    """Every measured float32 GEMM rate of the report's machine: ``library, n, threads, gflops``."""
    parts = []
    c = R.mine("ceilings")
    if len(c) and "gflops" in c:
        c = c[c["status"].astype(str) == "ok"] if "status" in c else c
        parts.append(c[["library", "n", "threads", "gflops"]])
    g = R.mine("gemm")
    if len(g) and "gflops" in g:
        parts.append(g.assign(library="numpy (gemm.csv)")[["library", "n", "threads", "gflops"]])
    if not parts:
        return pd.DataFrame(columns=["library", "n", "threads", "gflops"])
    t = pd.concat(parts, ignore_index=True)
    t["gflops"] = pd.to_numeric(t["gflops"], errors="coerce")
    return t[t["gflops"] > 0]


def ceiling(R, threads: int) -> dict:
    """The float32 ceiling at ``threads`` (nearest measured thread count): the best measured GEMM."""
    t = gemm_table(R)
    if not len(t):
        return {"gflops": np.nan, "library": None, "n": None, "threads": threads}
    near = t[(t["threads"] - threads).abs() == (t["threads"] - threads).abs().min()]
    r = near.loc[near["gflops"].idxmax()]
    return {"gflops": float(r["gflops"]), "library": str(r["library"]), "n": int(r["n"]), "threads": int(r["threads"])}


def stated_peak(R, threads: int) -> dict:
    """The theoretical float32 peak at ``threads`` and its clock's basis (``measured`` or ``nominal``)."""
    s = summary(R)
    per_core = s.get("fp32_peak_gflops_1core")
    total = s.get("fp32_peak_gflops")
    gf = float(per_core) * threads if isinstance(per_core, (int, float)) else (
        float(total) if isinstance(total, (int, float)) else np.nan)
    basis = next((str(s[k]) for k in BASIS_KEYS if s.get(k)), None)
    if basis is None:
        basis = "nominal" if s.get("clock_is_assumption", True) else "measured"
    return {"gflops": gf, "basis": basis, "clock_mhz": s.get("clock_mhz"), "clock_source": s.get("clock_source", ""),
            "derivation": s.get("fp32_derivation", ""), "threads": threads}


def facts(R, threads: int | None = None) -> dict:
    th = threads if threads is not None else int(R.threads.get(R.machine, 1)) if R.threads else 1
    c, p = ceiling(R, th), stated_peak(R, th)
    above = bool(np.isfinite(c["gflops"]) and np.isfinite(p["gflops"]) and c["gflops"] > p["gflops"])
    return {"ceiling": c, "peak": p, "gemm_above_peak": above, "threads": th,
            "share": c["gflops"] / p["gflops"] if np.isfinite(p["gflops"]) and p["gflops"] > 0 else np.nan}


def text(R) -> str:
    f = facts(R)
    if not np.isfinite(f["ceiling"]["gflops"]) and not np.isfinite(f["peak"]["gflops"]):
        return "*Not measured in this run:* no `ceilings.csv` or `gemm.csv` in the results."
    out = T.render("peak", machine=R.machine, **f).strip()
    for m in R.others():  # each other machine's ceiling, one clause each
        o = ceiling(R.on(m), f["threads"])
        if np.isfinite(o["gflops"]):
            out += (f" On {m} the float32 ceiling is {o['gflops']:.0f} GFLOP/s ({code(o['library'])}, n = {o['n']}, "
                    f"{o['threads']} thread{'s' if o['threads'] != 1 else ''}).")
    if not len(R.mine("ceilings")):
        out = "*Not measured in this run:* no `ceilings.csv` in the results (no theoretical peak). " + out
    return out


def table(R) -> pd.DataFrame:
    """Per thread count: the stated peak, its clock basis, the best measured GEMM and the float32 ceiling used."""
    t = gemm_table(R)
    rows = []
    for th in sorted(set(int(x) for x in t["threads"])) if len(t) else []:
        c, p = ceiling(R, th), stated_peak(R, th)
        rows.append({"threads": th, "stated float32 peak (GFLOP/s)": f"{p['gflops']:.0f}" if np.isfinite(p["gflops"])
                     else "not stated", "clock": p["basis"],
                     "best measured GEMM (GFLOP/s)": f"{c['gflops']:.0f} ({c['library']}, n = {c['n']})",
                     "float32 ceiling used": f"{c['gflops']:.0f}",
                     "GEMM above the stated peak": "yes: the stated peak is no bound" if np.isfinite(p["gflops"])
                     and c["gflops"] > p["gflops"] else "no"})
    return pd.DataFrame(rows).set_index("threads") if rows else pd.DataFrame()


def _blank(v) -> bool:
    return v is None or (isinstance(v, float) and v != v) or str(v).strip() in ("", "nan", "None")


def blas_setting(R, machine) -> dict:
    """The BLAS setting ``machine``'s NumPy numbers ran with: ``coretype`` (OPENBLAS_CORETYPE as set, or None),
    ``kernel`` (the kernel OpenBLAS ran), ``source`` (which file says so) and, where blas_ab.csv measured it,
    ``rates``: [(threads, GFLOP/s as set, GFLOP/s unset)]."""
    meta = R.meta_all.get(machine, {}) or {}
    bm = meta.get("bench", {}) or {}
    env = bm.get("openblas_env") or {k: v for k, v in (bm.get("env") or {}).items() if k.startswith("OPENBLAS_")}
    kernel = (bm.get("numpy_blas") or {}).get("architecture")
    if kernel is None and isinstance(bm.get("blas"), list) and bm["blas"]:
        kernel = bm["blas"][-1].get("architecture")
    out = {"machine": machine, "coretype": None if _blank(env.get("OPENBLAS_CORETYPE")) else
           str(env.get("OPENBLAS_CORETYPE")), "kernel": kernel, "unset_kernel": None,
           "source": "bench.meta.json" if bm else "not recorded", "rates": []}
    ab = R.extra.get("blas_ab")
    ab = ab[ab["machine"] == machine] if ab is not None and len(ab) else None
    if ab is not None and len(ab):
        is_set = ~ab["OPENBLAS_CORETYPE"].map(_blank)
        on, off = ab[is_set], ab[~is_set]
        if len(on):
            out["coretype"] = out["coretype"] or str(on["OPENBLAS_CORETYPE"].iloc[0])
            out["kernel"] = str(on["kernel"].iloc[0])
            out["source"] = "bench.meta.json and blas_ab.csv"
        if len(off):
            out["unset_kernel"] = str(off["kernel"].iloc[0])
        for t, grp in on.groupby("threads"):
            o = off[off["threads"] == t]
            if len(o):
                out["rates"].append((int(t), float(grp["gflops"].median()), float(o["gflops"].median())))
        out["n"] = int(ab["n"].iloc[0]) if "n" in ab else None
    return out


def _blas_line(s) -> str:
    if s["coretype"] is None:
        return (f"{code(s['machine'])}: `OPENBLAS_CORETYPE` not set; NumPy's OpenBLAS chose its own kernel "
                f"({code(s['kernel']) if s['kernel'] else 'not recorded'}; {s['source']}).")
    out = (f"{code(s['machine'])}: the machine sets `OPENBLAS_CORETYPE={s['coretype']}`, so NumPy's OpenBLAS ran "
           f"{code(s['kernel'])} kernels" + (f" instead of {code(s['unset_kernel'])}" if s["unset_kernel"] else "")
           + "; every NumPy number of this machine (the headline included) ran with that setting")
    if s["rates"]:
        size = f"{s['n']}², " if s.get("n") else ""
        out += (f". NumPy's float32 GEMM ({size}fresh processes) with it and unset: " + "; ".join(
            f"{t} thread{'s' if t > 1 else ''} {on:.3g} vs {off:.3g} GFLOP/s ({fmt_x(off / on)})"
            for t, on, off in s["rates"]) + " — the NumPy paths there would be faster unset, so their ratios "
            "to TensorFlow at large models are conservative")
    else:
        out += " (no blas_ab.csv: the rate without it was not measured)"
    return out + "."


def blas_text(R) -> str:
    """The BLAS setting of every machine's NumPy numbers (bench.meta.json, blas_ab.csv); where
    OPENBLAS_CORETYPE was set, both GEMM rates and which one the headline uses."""
    machines = list(R.machines) or [R.machine]
    lines = [_blas_line(blas_setting(R, m)) for m in machines if m is not None]
    if not lines:
        return NOT_MEASURED.format("bench.meta.json")
    return "**NumPy's BLAS setting, per machine.**\n\n" + "\n".join(f"- {x}" for x in lines)


def is_reduced_precision(backend: str) -> bool:
    """int8 / fp16 / bf16 paths (the catalogue's precision): not bounded by the float32 ceiling."""
    return paths.reduced_precision(backend)


def achieved(bench: pd.DataFrame, machine: str | None = None, batch="best") -> pd.DataFrame:
    """Achieved GFLOP/s per (model, backend, threads) from ok rows: flops x batch / median.

    ``batch="best"`` keeps each triple's fastest rate over batch sizes (its batch is in the row);
    an int keeps that batch only."""
    b = bench[bench["status"].astype(str) == "ok"].copy() if "status" in bench else bench.copy()
    if machine is not None and "machine" in b:
        b = b[b["machine"] == machine]
    b = b[(b["median_us"] > 0) & b["flops"].notna()]
    if batch != "best":
        b = b[b["batch"] == int(batch)]
    b["flops_per_call"] = b["flops"].astype(float) * b["batch"].astype(float)
    b["gflops"] = b["flops_per_call"] / (b["median_us"].astype(float) * 1e3)
    b["reduced_precision"] = [is_reduced_precision(x) for x in b["backend"]]
    if batch == "best" and len(b):
        b = b.loc[b.groupby(["model", "backend", "threads"])["gflops"].idxmax()]
    cols = ["model", "backend", "threads", "batch", "flops", "flops_per_call", "median_us", "gflops",
            "reduced_precision"]
    return b[cols].sort_values(["threads", "flops", "backend"]).reset_index(drop=True)


def ceiling_lines(ceilings: pd.DataFrame | None, summary: dict | None, threads: int) -> dict:
    """{'measured': (GFLOP/s, label) or None, 'theoretical': (GFLOP/s, label) or None} at a thread setting."""
    out = {"measured": None, "theoretical": None}
    if ceilings is not None and len(ceilings):
        c = ceilings[(ceilings["threads"] == threads)]
        c = c[c["status"].astype(str) == "ok"] if "status" in c else c
        if len(c):
            r = c.loc[c["gflops"].idxmax()]
            out["measured"] = (float(r["gflops"]), f"best measured GEMM: {r['library']}, n={int(r['n'])} "
                                                   f"({float(r['gflops']):.0f} GFLOP/s)")
    per_core = (summary or {}).get("fp32_peak_gflops_1core")
    if per_core:
        peak = float(per_core) * threads
        how = "nominal clock" if (summary or {}).get("clock_is_assumption", True) else "measured clock"
        below = out["measured"] is not None and out["measured"][0] > peak
        out["theoretical"] = (peak, f"stated fp32 peak, {threads} core{'s' if threads > 1 else ''} "
                                    f"({peak:.0f} GFLOP/s; {how})"
                                    + ("; below the measured GEMM: no bound" if below else ""))
    return out


def reduced_note(summary: dict | None) -> str:
    s = summary or {}
    if s.get("int8_peak_gops"):
        return (f"hollow markers: int8/fp16 paths, not bounded by the fp32 ceiling; int8 ceiling "
                f"{s['int8_peak_gops']:.0f} GOP/s ({str(s.get('int8_derivation', '')).split(':')[0]}), not drawn")
    return "hollow markers: int8/fp16 paths, not bounded by the fp32 ceiling; no int8 ceiling is drawn"


def fig_roofline(bench: pd.DataFrame, ceilings: pd.DataFrame | None = None, summary: dict | None = None,
                 machine: str | None = None, batch="best", figures_dir=None, name: str = "roofline") -> Figure:
    """One panel per thread setting: achieved GFLOP/s vs FLOPs per call, ceilings as horizontal lines."""
    if machine is None and "machine" in bench and len(bench):
        machine = str(bench["machine"].iloc[0])
    if ceilings is not None and machine is not None and "machine" in ceilings:
        ceilings = ceilings[ceilings["machine"] == machine]
    a = achieved(bench, machine, batch)
    settings = sorted(int(t) for t in a["threads"].unique()) or [1]
    fig = _fig(5.2 * len(settings) + 2.6, 4.4)
    axes = fig.subplots(1, len(settings), sharey=True, squeeze=False)[0]
    for ax, t in zip(axes, settings):
        at = a[a["threads"] == t]
        for b in order_backends(at["backend"]):
            g = at[at["backend"] == b].sort_values("flops_per_call")
            hollow = bool(g["reduced_precision"].iloc[0])
            ax.plot(g["flops_per_call"], g["gflops"], ls=":" if hollow else "-", lw=1, color=color_for(b),
                    marker=marker_for(b), mfc="none" if hollow else color_for(b), ms=5,
                    label=b + (" (reduced precision)" if hollow else ""))
        lines = ceiling_lines(ceilings, summary, t)
        for key, style in (("theoretical", dict(ls="--", color="#444444")), ("measured", dict(ls="-", color="#111111"))):
            if lines[key] is not None:
                y, text = lines[key]
                ax.axhline(y, lw=1.6, label=f"_{text}", **style)
                ax.annotate(text, (0.01, y), xycoords=("axes fraction", "data"), fontsize=6.5,
                            xytext=(0, 2 if key == "theoretical" else -8), textcoords="offset points",
                            color=style["color"])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=100.0))
        ax.xaxis.set_major_formatter(_si("FLOP"))
        ax.set_xlabel("FLOPs per call (model FLOPs x batch)")
        ax.set_title(f"{t} thread{'s' if t > 1 else ''}" + (f", batch {batch}" if batch != "best" else
                                                             ", best batch per path"))
    axes[0].set_ylabel("achieved GFLOP/s")
    handles = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="outside right center", fontsize=7, frameon=False)
    fig.suptitle(f"float32 roofline{f' ({machine})' if machine else ''}: achieved rate vs the machine's ceilings\n"
                 f"{reduced_note(summary)}", fontsize=9)
    fl = a[~a["reduced_precision"].astype(bool)]
    t_best = int(fl.loc[fl["gflops"].idxmax(), "threads"]) if len(fl) else 1
    meas = ceiling_lines(ceilings, summary, t_best)["measured"]
    describe(fig, *captions.roofline(a, meas[0] if meas else None, machine))
    if figures_dir is not None:
        save(fig, name, figures_dir)
    return fig
