"""A measured float32 FMA-throughput peak of one core: a tiny C loop of independent fused multiply-adds.

NumPy cannot issue raw FMAs, so the loop is C, compiled here with the system's C compiler (``cc``/``gcc``/
``clang``, ``-O2 -march=native``) into a temporary folder and run as a child process. It keeps
:data:`ACCUMULATORS` independent vector accumulators in flight (more than FMA latency x FMA units on
current x86 and Arm cores), so its rate is the core's FMA throughput at the clock it actually runs
under vector load -- the measured ceiling no float32 kernel can beat. With the FLOPs per cycle of the
ISA (:func:`overhead.experiments.ceilings.fp32_flops_per_cycle`) it also gives the clock.

No compiler, a failed compile, or a binary built without the CPU's widest vectors is reported as
``{"status": "failed", "reason": ...}``: callers fall back to a nominal peak (see
:func:`overhead.experiments.ceilings.derive_peak`). Nothing is left behind (the temporary folder is removed).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ACCUMULATORS = 12
SOURCE = r"""
#include <stdio.h>
#include <time.h>
#if defined(__AVX512F__)
#define W 16
#define ISA "avx512"
#elif defined(__AVX__)
#define W 8
#define ISA "avx"
#else
#define W 4
#define ISA "128-bit"
#endif
#ifdef __FMA__
#define HAS_FMA 1
#elif defined(__ARM_FEATURE_FMA)
#define HAS_FMA 1
#else
#define HAS_FMA 0
#endif
typedef float vec __attribute__((vector_size(W * 4)));
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv) {
    double min_s = argc > 1 ? atof(argv[1]) : 0.2;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    volatile float seed = 0.999999f, add = 1e-6f;
    vec m, c;
    for (int j = 0; j < W; j++) { m[j] = seed; c[j] = add; }
    %(declare)s
    double best = 0.0;
    long iters = 1 << 16;
    for (int r = 0; r < reps; r++) {
        double t0, t;
        for (;;) {
            t0 = now();
            for (long i = 0; i < iters; i++) {
                %(step)s
            }
            t = now() - t0;
            if (t >= min_s) break;
            iters *= 2;
        }
        double gflops = 2.0 * W * %(acc)d * (double)iters / t / 1e9;
        if (gflops > best) best = gflops;
    }
    vec total = %(total)s;
    float sum = 0.0f;
    for (int j = 0; j < W; j++) sum += total[j];
    printf("{\"gflops\": %%.6f, \"lanes\": %%d, \"accumulators\": %%d, \"isa\": \"%%s\", \"fma\": %%d, \"checksum\": %%g}\n",
           best, W, %(acc)d, ISA, HAS_FMA, (double)sum);
    return 0;
}
"""


def compiler() -> str | None:
    """The first C compiler on PATH (``$CC``, cc, gcc, clang), or None."""
    for name in filter(None, [os.environ.get("CC"), "cc", "gcc", "clang"]):
        path = shutil.which(name)
        if path:
            return path
    return None


def source(accumulators: int = ACCUMULATORS) -> str:
    """The C program: `accumulators` separate vector variables (kept in registers), one FMA each per step."""
    k = range(int(accumulators))
    return "#include <stdlib.h>\n" + SOURCE % {
        "acc": int(accumulators),
        "declare": " ".join(f"vec a{i} = c * (float)({i} + 1);" for i in k),
        "step": " ".join(f"a{i} = a{i} * m + c;" for i in k),
        "total": " + ".join(f"a{i}" for i in k)}


def measure(min_s: float = 0.2, reps: int = 5, cc: str | None = None, expected_lanes: int | None = None,
            timeout_s: float = 120.0, accumulators: int = ACCUMULATORS) -> dict:
    """One core's float32 FMA throughput in GFLOP/s (best of `reps` timed loops of >= `min_s` each).

    ``{"status": "ok", "gflops", "lanes", "isa", "fma", "compiler"}`` or ``{"status": "failed", "reason"}``.
    `expected_lanes` (float32 lanes of the CPU's widest vectors) rejects a binary built narrower, whose
    rate would understate the peak.
    """
    cc = cc or compiler()
    if cc is None:
        return {"status": "failed", "reason": "no C compiler on PATH (cc, gcc, clang): FMA loop not measured"}
    tmp = Path(tempfile.mkdtemp(prefix="overhead-fma-"))
    try:
        (tmp / "fma.c").write_text(source(accumulators))
        exe = tmp / "fma"
        try:
            built = subprocess.run([cc, "-O2", "-march=native", "-ffp-contract=fast", "-o", str(exe), str(tmp / "fma.c")],
                                   capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.SubprocessError) as exc:
            return {"status": "failed", "reason": f"compiler {cc} could not run: {exc}"[:300]}
        if built.returncode != 0:
            tail = (built.stderr.strip().splitlines() or ["no message"])[-1]
            return {"status": "failed", "reason": f"compile failed ({Path(cc).name}): {tail}"[:300]}
        try:
            ran = subprocess.run([str(exe), str(min_s), str(reps)], capture_output=True, text=True, timeout=timeout_s)
            out = json.loads(ran.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
            return {"status": "failed", "reason": f"FMA loop did not run: {type(exc).__name__}: {exc}"[:300]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out.update(status="ok", reason="", compiler=Path(cc).name)
    if not out.get("fma"):
        out.update(status="failed", reason="compiled without FMA instructions: the rate is not an FMA peak")
    elif expected_lanes and int(out["lanes"]) < int(expected_lanes):
        out.update(status="failed", reason=(f"compiled for {out['lanes']} float32 lanes, the CPU has "
                                            f"{expected_lanes}: the rate would understate the peak"))
    return out
