"""Ceilings of this CPU: the theoretical float32 (and int8) peak and the best GEMM measured across libraries.

Theoretical peak = physical cores x clock x FLOPs per cycle per core, where FLOPs per cycle come from
the widest vector ISA in /proc/cpuinfo's flags times the FMA units assumed for the micro-architecture
(the kernel does not report FMA ports: :func:`fma_units` says which rule was applied). The clock is the
maximum frequency (lscpu / cpufreq) when exposed, else the nominal clock in the model name, else the
current 'cpu MHz' (a VM often reports only that): the summary names the source and flags assumptions.

The stated float32 peak is :func:`derive_peak`: the theoretical one where the OS exposes the maximum
clock, else a measured FMA-throughput loop (:mod:`overhead.experiments.fmaloop`, which also gives the clock), else
"nominal" (assumed clock); never below a measured FMA loop or GEMM (``peak_gflops`` / ``peak_source``
columns). The one float32 ceiling is :func:`float32_ceiling`, the best GEMM measured anywhere.

Measured GEMM: float32 square matmul (2 n^3 FLOPs) with NumPy (its BLAS), TensorFlow (`tf.linalg.matmul`,
oneDNN/Eigen) and ONNX Runtime (an ONNX `MatMul` node, MLAS), each library in a fresh process
(``python -m overhead.experiments.ceilings child``) whose threads are fixed before the library is imported.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overhead.base import atomic, envinfo
from overhead.base.settings import thread_settings
from overhead.experiments import fmaloop
from overhead.harness import child, jobs

LIBRARIES = ("numpy", "tensorflow", "onnxruntime")
SIZES = (128, 256, 512, 1024, 2048)
QUICK_SIZES = (128, 256)
COLUMNS = ["library", "n", "threads", "gflops", "gflops_best", "reps", "median_s", "status", "reason", "peak_gflops",
           "peak_source"]


# --------------------------------------------------------------------------- theoretical peaks

def _cpuinfo_field(text: str, field: str) -> str | None:
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == field:
            return value.strip()
    return None


def clock_mhz(cpuinfo_text: str | None = None, lscpu_text: str | None = None,
              cpufreq_max_khz: str | None = None) -> tuple[float | None, str, bool]:
    """(MHz, source, is_assumption): max frequency if exposed, else nominal in the name, else current MHz."""
    if cpufreq_max_khz is None:
        try:
            cpufreq_max_khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()
        except OSError:
            cpufreq_max_khz = ""
    if cpufreq_max_khz.strip():
        return float(cpufreq_max_khz) / 1e3, "cpufreq cpuinfo_max_freq", False
    if lscpu_text is None:
        try:
            lscpu_text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            lscpu_text = ""
    mx = _cpuinfo_field(lscpu_text, "cpu max mhz")
    if mx:
        return float(mx), "lscpu 'CPU max MHz'", False
    if cpuinfo_text is None:
        try:
            cpuinfo_text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo_text = ""
    name = _cpuinfo_field(cpuinfo_text, "model name") or ""
    m = re.search(r"@\s*([\d.]+)\s*GHz", name)
    if m:
        return float(m.group(1)) * 1e3, "nominal clock in the model name (turbo may be higher)", True
    cur = _cpuinfo_field(cpuinfo_text, "cpu mhz")
    if cur:
        return float(cur), ("/proc/cpuinfo 'cpu MHz' (current clock; no maximum is exposed, "
                            "e.g. in a VM: an assumption)"), True
    return None, "no clock exposed", True


def fma_units(flags, vendor: str = "") -> tuple[int, str]:
    """FMA pipes per core and the rule used (the kernel does not report them: always an assumption)."""
    flags, amd = set(flags), "amd" in vendor.lower()
    if "avx512f" in flags:
        if amd:
            if "avx_vnni" in flags:
                return 2, "AMD with AVX-512 and AVX-VNNI: Zen 5, 2 full-width 512-bit FMA pipes assumed"
            return 1, ("AMD with AVX-512, no AVX-VNNI: Zen 4, 512-bit ops double-pumped on 2x256-bit pipes, "
                       "counted as 1 512-bit FMA unit")
        if "amx_tile" in flags:
            return 2, "Intel with AMX (Sapphire Rapids or later Xeon): 2 512-bit FMA units"
        return 2, "Intel with AVX-512 (assumed a Xeon with 2 512-bit FMA units; some parts have 1)"
    if "fma" in flags or "avx2" in flags:
        return 2, "AVX2+FMA core (Haswell and later, Zen): 2 256-bit FMA units"
    if {"asimd"} & flags or "neon" in flags:
        return 2, "Arm ASIMD: 2 128-bit FMA pipes assumed (Neoverse N1-class)"
    return 1, "no FMA: one multiply and one add pipe assumed"


def fp32_flops_per_cycle(flags, vendor: str = "") -> tuple[int, str]:
    """FP32 FLOPs per cycle per core = FMA units x lanes x 2 (or mul + add without FMA)."""
    flags = set(flags)
    units, why = fma_units(flags, vendor)
    if "avx512f" in flags:
        lanes, isa = 16, "AVX-512 (16 float32 lanes)"
    elif "avx2" in flags or "avx" in flags:
        lanes, isa = 8, "AVX/AVX2 (8 float32 lanes)"
    else:
        lanes, isa = 4, "128-bit SIMD (4 float32 lanes)"
    return units * lanes * 2, f"{isa} x {units} FMA unit(s) x 2 FLOPs per FMA; {why}"


def int8_ops_per_cycle(flags, vendor: str = "") -> tuple[int | None, str]:
    """int8 multiply-add ops (2 per MAC) per cycle per core from AMX / VNNI, or None when neither exists."""
    flags = set(flags)
    if "amx_int8" in flags:
        return 2048, "AMX-INT8: 1024 int8 MACs per cycle per core (Intel's figure for TMUL)"
    units, _ = fma_units(flags, vendor)
    if "avx512_vnni" in flags:
        return units * 64 * 2, f"AVX512-VNNI: VPDPBUSD does 64 int8 MACs per 512-bit op x {units} unit(s)"
    if "avx_vnni" in flags:
        return 2 * 32 * 2, "AVX-VNNI: 32 int8 MACs per 256-bit op x 2 units"
    return None, "no VNNI or AMX: no int8 ceiling is drawn"


def theoretical(cpuinfo_text: str | None = None, cores: int | None = None, clock=None) -> dict:
    """The float32 and int8 peaks of this CPU and how they were derived."""

    if cpuinfo_text is None:
        try:
            cpuinfo_text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo_text = ""
    flags = envinfo.proc_cpu_flags(cpuinfo_text)
    vendor = _cpuinfo_field(cpuinfo_text, "vendor_id") or ""
    if cores is None:
        import psutil
        cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    mhz, clock_source, clock_assumed = clock if clock is not None else clock_mhz(cpuinfo_text)
    fpc, fp_how = fp32_flops_per_cycle(flags, vendor)
    ipc, int_how = int8_ops_per_cycle(flags, vendor)
    ghz = (mhz or 0) / 1e3
    peak = cores * ghz * fpc if mhz else None
    return {
        "cpu_model": _cpuinfo_field(cpuinfo_text, "model name"), "vendor": vendor,
        "isa_flags": envinfo.isa_flags(flags), "physical_cores": int(cores),
        "clock_mhz": mhz, "clock_source": clock_source, "clock_is_assumption": clock_assumed,
        "fp32_flops_per_cycle_per_core": fpc, "fp32_derivation": fp_how, "fma_units_are_assumption": True,
        "fp32_peak_gflops": peak, "fp32_peak_gflops_1core": peak / cores if peak else None,
        "int8_ops_per_cycle_per_core": ipc, "int8_derivation": int_how,
        "int8_peak_gops": cores * ghz * ipc if (ipc and mhz) else None,
        "formula": "physical cores x clock (GHz) x FLOPs per cycle per core",
    }


# --------------------------------------------------------------------------- measured GEMM (child side)

def _matmul_fn(library: str, n: int, threads: int):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    if library == "numpy":
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=threads, user_api="blas")
        out = np.empty((n, n), np.float32)
        return lambda: np.matmul(a, b, out=out)
    if library == "tensorflow":
        import tensorflow as tf
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
        ta, tb = tf.constant(a), tf.constant(b)
        return lambda: tf.linalg.matmul(ta, tb).numpy()
    if library == "onnxruntime":
        import onnxruntime as ort
        from onnx import TensorProto, helper
        graph = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["C"])], "gemm",
                                  [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "AB"],
                                  [helper.make_tensor_value_info("C", TensorProto.FLOAT, [n, n])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = min(model.ir_version, 9)
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        feed = {"A": a, "B": b}
        return lambda: sess.run(None, feed)
    raise ValueError(f"unknown library {library!r}; choose one of {', '.join(LIBRARIES)}")


def time_gemm(fn, n: int, *, min_reps: int = 5, min_s: float = 0.3, max_reps: int = 200) -> dict:
    """Warm up, then time calls until min_reps and min_s are reached: median and best GFLOP/s."""
    fn(), fn()
    times, t_start = [], time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - t_start < min_s):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    med = float(np.median(times))
    return {"gflops": 2.0 * n**3 / med, "gflops_best": 2.0 * n**3 / float(min(times)), "reps": len(times),
            "median_s": med / 1e9}


@dataclass(frozen=True)
class LibraryGemmJob:
    """One child's job: `library`'s float32 GEMM at each of `sizes` with `threads` threads."""
    library: str
    threads: int
    sizes: tuple
    min_reps: int = 5
    min_s: float = 0.3


def measure_job(job: LibraryGemmJob, proto) -> int:
    """In a fresh process: fix threads, import one library, time every size; the rows as one JSON line."""
    threads, library = int(job.threads), job.library  # the thread variables: in the environment (run_child(threads=))
    rows = []
    for n in job.sizes:
        base = {"library": library, "n": int(n), "threads": threads}
        try:
            res = time_gemm(_matmul_fn(library, int(n), threads), int(n), min_reps=int(job.min_reps),
                            min_s=float(job.min_s))
            rows.append({**base, **res, "status": "ok", "reason": ""})
        except Exception as exc:  # a library missing or failing here is reported, not fatal
            rows.append({**base, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:300]})
    proto.write(json.dumps(rows, default=float) + "\n")
    return 0


# --------------------------------------------------------------------------- parent side

def time_in_child(job: LibraryGemmJob, timeout_s: float = 600) -> list[dict]:
    """One `python -m overhead.experiments.ceilings child` process; its last stdout line is the JSON rows."""
    done = child.run_child("overhead.experiments.ceilings", ["child"], job=job, threads=int(job.threads),
                           timeout_s=timeout_s)
    rows = [e for e in done.events if isinstance(e, list)]
    if not done.ok or not rows:
        return [{"library": job.library, "n": int(n), "threads": int(job.threads), "status": "failed",
                 "reason": f"child {done.failure() or 'wrote no rows'}"} for n in job.sizes]
    return rows[-1]


def measure(libraries=LIBRARIES, sizes=None, threads=None, *, quick: bool = False):
    """Tidy DataFrame (COLUMNS) of GEMM GFLOP/s per library x size x threads, one fresh process per
    (library, threads); thread settings interleaved (1, all, 1, all ... across libraries)."""
    import pandas as pd

    sizes = tuple(sizes or (QUICK_SIZES if quick else SIZES))
    rows = []
    for lib in libraries:
        for t in thread_settings(threads):
            rows += time_in_child(LibraryGemmJob(lib, int(t), sizes, 3 if quick else 5, 0.05 if quick else 0.3))
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def float32_ceiling(*frames) -> dict:
    """THE float32 ceiling per thread setting: the best GEMM measured in any of the frames (ceilings.csv's
    libraries x sizes, bench's gemm.csv ...), never a smaller per-library figure.

    {threads: {"gflops", "library", "n", "source"}}; rows with a status other than ok are ignored.
    """
    best: dict = {}
    for i, frame in enumerate(frames):
        if frame is None or not len(frame):
            continue
        ok = frame[frame["status"].astype(str) == "ok"] if "status" in frame else frame
        for t, grp in ok.groupby("threads"):
            row = grp.loc[grp["gflops"].astype(float).idxmax()]
            if int(t) not in best or float(row["gflops"]) > best[int(t)]["gflops"]:
                best[int(t)] = {"gflops": float(row["gflops"]), "n": int(row["n"]) if "n" in row else None,
                                "library": str(row["library"]) if "library" in row else "numpy",
                                "source": f"frame {i}"}
    return best


def derive_peak(peaks: dict, fma: dict | None = None, best_gemm: dict | None = None) -> dict:
    """The float32 peak per core and how it was derived: never below a measured FMA loop or GEMM.

    Order: (1) the OS exposes the maximum clock (cpufreq / lscpu): theoretical peak = clock x FLOPs per
    cycle, ``fp32_peak_kind = "theoretical"``; (2) else a measured FMA-throughput loop
    (:mod:`overhead.experiments.fmaloop`) at least as fast as the assumed clock allows: the peak is its rate, the
    clock = rate / FLOPs per cycle, kind ``"measured"``; (3) else the assumed clock (nominal in the
    model name, or the current clock): kind ``"nominal"`` (a slower FMA loop ran on a shared core). In every case a measured FMA rate or GEMM per core (`best_gemm`: {threads:
    {"gflops", ...}}) above it raises the peak to it (``fp32_peak_source`` says so), so no float32 path
    or GEMM can exceed the stated peak.
    """
    out = dict(peaks)
    fpc = peaks.get("fp32_flops_per_cycle_per_core")
    per_core = peaks.get("fp32_peak_gflops_1core")
    fma_rate = float(fma["gflops"]) if fma and fma.get("status") == "ok" and fma.get("gflops") else None
    if per_core and not peaks.get("clock_is_assumption"):
        kind, source = "theoretical", f"{peaks.get('clock_source')} x {fpc} FLOPs/cycle"
    elif fma_rate and per_core and fma_rate < per_core:  # a loop slowed by other work on the machine
        kind = "nominal"
        source = (f"nominal: {peaks.get('clock_source')} x {fpc} FLOPs/cycle; the FMA loop measured less "
                  f"({fma_rate:.0f} GFLOP/s per core: the core was shared or throttled), so the clock is not known")
    elif fma_rate:
        per_core, kind = fma_rate, "measured"
        source = (f"measured FMA-throughput loop, 1 core ({fma.get('isa')}, {fma.get('lanes')} lanes, "
                  f"{fma.get('accumulators')} accumulators)")
        if fpc:
            out.update(clock_mhz=fma_rate / fpc * 1e3, clock_is_assumption=False,
                       clock_source=f"derived: measured FMA rate / {fpc} FLOPs per cycle (FMA units assumed)")
    else:
        kind = "nominal"
        source = f"nominal: {peaks.get('clock_source')} x {fpc} FLOPs/cycle (the clock is not known)"
    floors = [(fma_rate, "the measured FMA loop")] + [
        (float(v["gflops"]) / int(t), f"the best measured GEMM ({v.get('library')}, {int(t)} thread(s))")
        for t, v in (best_gemm or {}).items() if v and v.get("gflops")]
    for rate, what in floors:
        if rate and (not per_core or rate > per_core):
            per_core, source = rate, f"{source}; raised to {what}, which ran faster per core"
    cores = int(peaks.get("physical_cores") or 1)
    out.update(fp32_peak_gflops_1core=per_core, fp32_peak_gflops=per_core * cores if per_core else None,
               fp32_peak_kind=kind, fp32_peak_source=source, fma_loop=fma)
    return out


def summary(gemm, peaks: dict | None = None, fma: dict | None = None, bench_gemm=None) -> dict:
    """The ceilings: the float32 peak (:func:`derive_peak`) plus the best measured GEMM per thread setting
    (:func:`float32_ceiling` over `gemm` and `bench_gemm`: the one float32 ceiling)."""
    best_all = float32_ceiling(gemm, bench_gemm)
    peaks = derive_peak(dict(peaks if peaks is not None else theoretical()), fma, best_all)
    best = {}
    for t, row in best_all.items():
        pk = peaks.get("fp32_peak_gflops_1core")
        pk = pk * int(t) if pk else None
        share = float(row["gflops"] / pk) if pk else None
        best[int(t)] = {"library": row["library"], "n": row["n"], "gflops": row["gflops"],
                        "share_of_peak": share, "peak_gflops_at_threads": pk, "note": ""}
    return {**peaks, "measured_best": best,
            "measured_method": "median time of float32 n x n matmul (2 n^3 FLOPs), best library and size"}


def rederive(results_dir) -> dict:
    """The summary of an already-published run, from its committed ceilings.csv, ceilings.meta.json and
    gemm.csv alone (no measuring): the peak is re-derived with :func:`derive_peak` (a run without an FMA
    loop on record and without an exposed clock gets a nominal peak raised to its best GEMM)."""
    import pandas as pd


    d = Path(results_dir)
    frame = pd.read_csv(d / "ceilings.csv")
    meta = envinfo.read_meta(d / "ceilings.csv").get("ceilings", {})
    peaks = {k: v for k, v in meta.items() if k not in ("measured_best", "measured_method")}
    if not peaks:
        peaks = theoretical()
    gemm = pd.read_csv(d / "gemm.csv").assign(library="numpy (bench gemm.csv)") if (d / "gemm.csv").exists() else None
    return summary(frame, peaks, meta.get("fma_loop"), gemm)


def with_peak_columns(frame, summ: dict):
    """ceilings.csv rows with ``peak_gflops`` (the float32 peak at the row's threads) and ``peak_source``."""
    per_core = summ.get("fp32_peak_gflops_1core")
    out = frame.copy()
    out["peak_gflops"] = [per_core * int(t) if per_core else None for t in out["threads"]]
    out["peak_source"] = f"{summ.get('fp32_peak_kind')}: {summ.get('fp32_peak_source')}"
    return out


def run(out_dir, *, quick: bool = False, libraries=LIBRARIES, sizes=None, threads=None, fma: bool = True):
    """Measure, write `ceilings.csv` (+ `.meta.json` with the summary) in out_dir; (frame, summary).

    `fma` also times the FMA-throughput loop (:mod:`overhead.experiments.fmaloop`; skipped cleanly without a C
    compiler); the bench's gemm.csv in out_dir, when present, joins the measured GEMMs."""
    import pandas as pd


    frame = measure(libraries, sizes, threads, quick=quick)
    peaks = theoretical()
    loop = None
    if fma:
        lanes = 16 if "avx512f" in peaks.get("isa_flags", []) else 8 if {"avx", "avx2"} & set(peaks.get("isa_flags", [])) else None
        loop = fmaloop.measure(min_s=0.05 if quick else 0.2, reps=3 if quick else 5, expected_lanes=lanes)
    gemm_csv = Path(out_dir) / "gemm.csv"
    bench_gemm = pd.read_csv(gemm_csv).assign(library="numpy (bench gemm.csv)") if gemm_csv.exists() else None
    summ = summary(frame, peaks, loop, bench_gemm)
    frame = with_peak_columns(frame, summ)
    path = Path(out_dir) / "ceilings.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.insert(0, "machine", envinfo.machine_id())
    atomic.atomic_write_csv(frame.reindex(columns=["machine", *COLUMNS]), path)
    envinfo.write_meta(path, extra={"stage": "ceilings", "quick": quick, "ceilings": summ})
    return frame, summ


def main(argv=None) -> int:
    return jobs.child_entry(LibraryGemmJob, measure_job, argv)  # a LibraryGemmJob on stdin


if __name__ == "__main__":
    sys.exit(main())
