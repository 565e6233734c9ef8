"""Why do TensorFlow paths' fresh processes disagree? Fresh processes of the TF paths under controlled variants.

The sweep times every path in several fresh processes (runs); on the published AMD run the TF paths' run
medians spread far more than LiteRT's or NumPy's in the same processes. This experiment looks for the cause:
fresh processes of ``tf.function``, ``keras.predict_on_batch`` and ``tf1.session`` on one model at batch 1 and
one thread, each process under one *variant* of its start-up, variants interleaved in time (the order rotates
every round, so a neighbour's load falls on all variants alike):

- ``as is``; ``oneDNN off`` (``TF_ENABLE_ONEDNN_OPTS=0``); ``pinned`` (the child pins itself to one core,
  ``os.sched_setaffinity``, before TensorFlow starts its threads);
- ``jemalloc`` / ``tcmalloc`` (``LD_PRELOAD`` of Debian's libjemalloc2 / libtcmalloc-minimal4; :func:`run`
  installs them with apt-get when absent and root, otherwise the variant is recorded as not available);
- ``huge pages`` (glibc's ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``: malloc asks for transparent huge
  pages with madvise -- a per-process setting; the system's THP mode is recorded, never changed);
- ``no ASLR`` (the ``setarch -R`` personality, ADDR_NO_RANDOMIZE, and a fixed ``PYTHONHASHSEED``): every
  process gets the same memory layout, so a layout-dependent (aliasing, alignment) cost shows as runs that
  agree with each other.

Only the child's environment / personality / affinity differs; this process's are restored. Each child
checks its paths against the Keras reference, times them interleaved with the sweep's own plan
(:func:`overhead.experiments.worker._timing_plan`) and reports per path the run's median, the median of its
first and last tenth of values (warm-up or drift), and what it saw of its variant (allocator mapped, huge
pages in use, ASLR, CPU). ``spread.csv`` holds one row per process x path; the report
(:mod:`overhead.report.spread`) turns it into the spread per variant (max/min of run medians, MAD).

``python -m overhead.experiments.spread [--runs N] [--budget S] [--out DIR]`` measures and writes the table.
What a published sweep's own per-run samples say is :mod:`overhead.report.spread_runs`.
"""
from __future__ import annotations

import ctypes
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from overhead.base import atomic, config, envinfo
from overhead.harness import child, jobs

MODEL = "cnn_seed"
BACKENDS = ("tf.function", "keras.predict_on_batch", "tf1.session")
VARIANTS = ("as is", "oneDNN off", "pinned", "jemalloc", "tcmalloc", "huge pages", "no ASLR")
COLUMNS = ["machine", "model", "batch", "threads", "variant", "backend", "run", "order", "status", "reason",
           "n", "median_us", "first_us", "last_us", "min_us", "p90_us", "cpu", "allocator", "thp_kb", "aslr",
           "onednn", "input_offset", "load1", "process_s"]
ALLOCATORS = {"jemalloc": ("libjemalloc.so.2", "libjemalloc2"),
              "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc-minimal4")}
ADDR_NO_RANDOMIZE = 0x0040000
HASH_SEED = "0"
DEFAULT_TIMEOUT_S = 300.0


# --------------------------------------------------------------------------- variants

@dataclass
class Variant:
    name: str
    env: dict = field(default_factory=dict)  # variables set in the child's environment
    pin: bool = False  # the child pins itself to one core
    no_aslr: bool = False  # the child starts with ADDR_NO_RANDOMIZE
    available: bool = True
    reason: str = ""  # why not available
    setting: str = ""  # one line: what differs


def find_library(soname: str) -> str | None:
    """The path of a shared library in the usual Debian folders, or None."""
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
                   "/usr/local/lib"):
        hits = sorted(glob.glob(os.path.join(folder, soname)))
        if hits:
            return hits[0]
    return None


def install_allocators(say=print) -> dict:
    """apt-get install the allocators that are absent, when root and apt-get exists. {package: outcome}."""
    missing = [pkg for so, pkg in ALLOCATORS.values() if find_library(so) is None]
    if not missing:
        return {}
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return {pkg: "not installed (needs root and apt-get)" for pkg in missing}
    say(f"installing {' '.join(missing)} with apt-get")
    done = subprocess.run(["apt-get", "install", "-y", "-q", *missing], capture_output=True, text=True,
                          env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
    return {pkg: "installed" if done.returncode == 0 else f"apt-get failed: {tail[0][:200]}" for pkg in missing}


def thp_mode() -> str:
    """The system's transparent-huge-page mode ([madvise] etc.), or 'unknown'."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "unknown"
    picked = [w.strip("[]") for w in text.split() if w.startswith("[")]
    return picked[0] if picked else "unknown"


def glibc_version() -> tuple[int, int] | None:
    try:
        got = os.confstr("CS_GNU_LIBC_VERSION") or ""
        major, minor = got.split()[-1].split(".")[:2]
        return int(major), int(minor)
    except (ValueError, OSError, IndexError):
        return None


def variants(names=VARIANTS) -> list[Variant]:
    """The variants to run, each with its setting or the reason it cannot run here."""
    out = []
    for name in names:
        if name == "as is":
            out.append(Variant(name, setting="the environment as the sweep's workers get it"))
        elif name == "oneDNN off":
            out.append(Variant(name, env={"TF_ENABLE_ONEDNN_OPTS": "0"}, setting="TF_ENABLE_ONEDNN_OPTS=0"))
        elif name == "pinned":
            out.append(Variant(name, pin=True, setting="os.sched_setaffinity to one core before TF starts"))
        elif name in ALLOCATORS:
            so, pkg = ALLOCATORS[name]
            lib = find_library(so)
            out.append(Variant(name, env={"LD_PRELOAD": lib} if lib else {}, available=lib is not None,
                               reason="" if lib else f"not available: {so} absent (Debian package {pkg})",
                               setting=f"LD_PRELOAD={lib or so}"))
        elif name == "huge pages":
            mode, libc = thp_mode(), glibc_version()
            ok = mode in ("madvise", "always") and libc is not None and libc >= (2, 35)
            why = ("" if ok else f"not available: THP mode {mode!r}, glibc {libc} "
                   "(needs THP madvise/always and glibc >= 2.35)")
            out.append(Variant(name, env={"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, available=ok, reason=why,
                               setting=f"GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (system THP mode {mode})"))
        elif name == "no ASLR":
            ok = sys.platform.startswith("linux")
            out.append(Variant(name, env={"PYTHONHASHSEED": HASH_SEED}, no_aslr=True, available=ok,
                               reason="" if ok else "not available: personality() is Linux only",
                               setting=f"personality ADDR_NO_RANDOMIZE (setarch -R), PYTHONHASHSEED={HASH_SEED}"))
        else:
            raise ValueError(f"unknown variant {name!r}; valid variants: {', '.join(VARIANTS)}")
    return out


def schedule(names, runs: int) -> list[tuple[int, str]]:
    """(run, variant) in launch order: round r runs every variant once, the order rotated by r."""
    names = list(names)
    out = []
    for r in range(runs):
        shift = r % len(names) if names else 0
        out += [(r + 1, v) for v in names[shift:] + names[:shift]]
    return out


# --------------------------------------------------------------------------- the child

def _personality(value: int | None = None) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.personality(ctypes.c_ulong(0xFFFFFFFF if value is None else value)))


def _process_facts(x_addr: int) -> dict:
    """What the child saw of its variant: allocator mapped, huge pages in use (kB), ASLR, the CPU it ran on
    last, and where its input array sits in its page (a layout that ASLR moves)."""
    maps = Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else ""
    alloc = next((n for n, (so, _) in ALLOCATORS.items() if so.split(".so")[0] in maps), "glibc")
    thp = None
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("AnonHugePages:"):
                thp = int(line.split()[1])
    except OSError:
        pass
    try:
        aslr = "off" if int(Path("/proc/self/personality").read_text(), 16) & ADDR_NO_RANDOMIZE else "on"
    except (OSError, ValueError):
        aslr = None
    try:
        cpu = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        cpu = None
    return {"allocator": alloc, "thp_kb": thp, "aslr": aslr, "cpu": cpu,
            "input_offset": x_addr % 4096}


@dataclass(frozen=True)
class SpreadJob:
    """One child's job: `backends` timed interleaved on the model at batch 1; `pin`: the one CPU to run on."""
    model_path: str
    backends: tuple
    threads: int
    budget_s: float
    data_dir: str | None = None
    artifacts: str | None = None
    parity_n: int = 32
    pin: int | None = None


def measure_job(job: SpreadJob, proto) -> int:
    import numpy as np  # lazy: the parent's import stays light (numpy only where it measures)

    def emit(**event):
        proto.write(json.dumps(event) + "\n")
        proto.flush()

    if job.pin is not None:
        os.sched_setaffinity(0, {int(job.pin)})  # before TF creates its threads: they inherit it
    # lazy: the child pins itself before anything starts a thread; TF comes with these imports
    from overhead import backends as bk
    from overhead.backends import converters  # lazy: as above
    from overhead.backends.reference import keras_reference  # lazy: as above
    from overhead.base import data  # lazy: as above
    from overhead.experiments import worker  # lazy: as above
    from overhead.harness import timing  # lazy: as above

    bk.enter_process("tf")
    threads = int(job.threads)
    bk.set_threads(threads)
    bk.configure_tf()
    model_path = Path(job.model_path)
    shape = list(converters.input_shape(converters.load_keras(model_path)))
    x_all, y_all = data.inputs_for(shape, int(job.parity_n), data_dir=job.data_dir)
    ref = keras_reference(model_path, x_all, artifacts=job.artifacts)
    x = np.ascontiguousarray(x_all[:1])
    fns, costs = {}, {}
    for name in job.backends:
        try:
            runner = bk.prepare(name, model_path, 1, threads, artifacts=job.artifacts)
            par = bk.parity(runner, ref, x_all, y_all, max_s=0.5)
        except Exception as exc:  # an unavailable path is a row with its reason, not a dead child
            emit(event="row", backend=name, status="skipped", reason=child.error_text(exc))
            continue
        if par["parity"] != "pass":
            emit(event="row", backend=name, status="failed", reason=f"parity: {par['reason']}")
            continue
        fns[name] = (lambda r=runner: r(x))
        costs[name] = par.get("call_s") or 0.0
    if fns:
        plan = worker._timing_plan(costs, float(job.budget_s))
        samples = timing.interleaved(fns, **plan)
        facts = _process_facts(x.ctypes.data)
        for name, s in samples.items():
            us = np.asarray(s, dtype=np.float64) / 1e3
            tenth = max(5, us.size // 10)
            emit(event="row", backend=name, status="ok", reason="", n=int(us.size), median_us=float(np.median(us)),
                 first_us=float(np.median(us[:tenth])), last_us=float(np.median(us[-tenth:])),
                 min_us=float(us.min()), p90_us=float(np.percentile(us, 90)), **facts)
    emit(event="done")
    return 0


def _measure_or_say_why(job: SpreadJob, proto) -> int:
    try:
        return measure_job(job, proto)
    except Exception as exc:  # the parent records this line as the row's reason
        proto.write(json.dumps({"event": "error", "error": child.error_text(exc)}) + "\n")
        raise


# --------------------------------------------------------------------------- the parent

def launch(job: SpreadJob, variant: Variant, *, timeout_s: float = DEFAULT_TIMEOUT_S):
    """One child under `variant` (through :func:`overhead.harness.child.run_child`); its personality is
    set here for the fork and restored at once (it is inherited across exec, like setarch -R does)."""
    env = dict(os.environ)
    env.update(variant.env)
    if variant.pin:
        job = replace(job, pin=max(os.sched_getaffinity(0)))
    before = None
    if variant.no_aslr:
        before = _personality()
        _personality(before | ADDR_NO_RANDOMIZE)
    try:
        return child.run_child("overhead.experiments.spread", ["child"], job=job, threads=job.threads,
                               kind="tf", env=env, data_dir=job.data_dir, timeout_s=timeout_s)
    finally:
        if before is not None:
            _personality(before)


def model_path(model: str = MODEL, data_dir=None) -> tuple[Path, str]:
    """(the model's .keras, its weights): the trained ladder model, else seeded weights built once
    under the artifacts folder (timing does not depend on the weights' values; the meta says which)."""
    trained = config.models_dir(data_dir) / f"{model}.keras"
    if trained.exists():
        return trained, "trained"
    seeded = config.artifacts_dir(data_dir) / "spread" / f"{model}_seeded.keras"
    if not seeded.exists():
        from overhead.ladder import models  # lazy: builds a Keras model only when no trained one exists

        seeded.parent.mkdir(parents=True, exist_ok=True)
        tmp = seeded.with_name(f".{seeded.stem}.{os.getpid()}.keras")
        models.build(model, seed=0).save(tmp)
        os.replace(tmp, seeded)
    return seeded, "seeded-init"


def measure(*, model: str = MODEL, backends=BACKENDS, names=VARIANTS, runs: int = 10, threads: int = 1,
            budget_s: float = 0.5, data_dir=None, machine=None, say=print, launch_fn=None):
    """The table (:data:`COLUMNS`): `runs` fresh processes per variant, interleaved; one row per process x
    path (a variant that cannot run here: one row saying why). `launch_fn(job, variant)` replaces
    :func:`launch` (tests)."""
    import pandas as pd  # lazy: as the other experiments, pandas only where a table is built

    launch_fn = launch_fn or launch
    machine = machine or envinfo.machine_id()
    path, weights = model_path(model, data_dir)
    base = {"machine": machine, "model": model, "batch": 1, "threads": int(threads)}
    vs = variants(names)
    rows = [dict(base, variant=v.name, backend=None, run=None, order=None, status="not available", reason=v.reason)
            for v in vs if not v.available]
    todo = {v.name: v for v in vs if v.available}
    job = SpreadJob(str(path), tuple(backends), int(threads), float(budget_s),
                    data_dir=None if data_dir is None else str(data_dir), artifacts=str(config.artifacts_dir(data_dir)))
    plan = schedule(todo, runs)
    for order, (run, name) in enumerate(plan, start=1):
        v = todo[name]
        load1 = round(os.getloadavg()[0], 2)  # what else ran on the machine as this process started
        t0 = time.perf_counter()
        done = launch_fn(job, v)
        wall = time.perf_counter() - t0
        got = [e for e in done.events if isinstance(e, dict) and e.get("event") == "row"]
        common = dict(base, variant=name, run=run, order=order, onednn=v.env.get("TF_ENABLE_ONEDNN_OPTS", "default"),
                      process_s=round(wall, 2), load1=load1)
        if not got:
            rows.append(dict(common, backend=None, status="failed", reason=done.failure() or "the child wrote no row"))
        for e in got:
            rows.append(dict(common, **{k: e.get(k) for k in COLUMNS if k in e and k not in common}))
        say(f"[{order}/{len(plan)}] {name} run {run}: " + ", ".join(
            f"{e['backend']} {e['median_us']:.1f} us" if e.get("status") == "ok" else f"{e.get('backend')} {e.get('status')}"
            for e in got) + (f" ({done.failure()})" if not done.ok else ""))
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    frame.attrs.update(weights=weights, variants={v.name: (v.setting if v.available else v.reason) for v in vs})
    return frame


def run(out_dir=None, *, quick: bool = False, runs: int = 10, budget_s: float = 0.5, model: str = MODEL,
        backends=BACKENDS, names=VARIANTS, data_dir=None, machine=None, install: bool = True, say=print):
    """Measure and write ``spread.csv`` + .meta.json. Quick: a smoke run -- one process per variant, the first
    path only, short timing, nothing installed (too few processes for a spread)."""
    installed = install_allocators(say) if install and not quick else {}
    if quick:
        runs, budget_s, backends = min(runs, 1), min(budget_s, 0.1), tuple(backends)[:1]
    machine = machine or envinfo.machine_id()
    out = Path(out_dir) if out_dir is not None else config.results_dir(machine, data_dir)
    t0 = time.perf_counter()
    frame = measure(model=model, backends=backends, names=names, runs=runs, budget_s=budget_s, data_dir=data_dir,
                    machine=machine, say=say)
    path = out / "spread.csv"
    atomic.atomic_write_csv(frame, path)
    envinfo.write_meta(path, {
        "stage": "spread", "quick": quick, "runs_per_variant": runs, "budget_s": budget_s, "model": model,
        "weights": frame.attrs.get("weights"), "backends": list(backends), "variants": frame.attrs.get("variants"),
        "installed": installed, "thp_mode": thp_mode(), "wall_s": round(time.perf_counter() - t0, 1),
        "what": ("fresh processes of the TF paths at batch 1, one variant of the process start-up each, variants "
                 "interleaved in rounds (order rotated every round); per process and path: the median of its "
                 "values, of its first and last tenth, and what the process saw of its variant"),
        "neighbours": "whatever else ran on the machine (the meta's load average) fell on all variants alike",
        "loadavg": os.getloadavg()}, threads=[1])
    return frame


def main(argv=None) -> int:
    import argparse  # lazy: only the command line needs it

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["child"]:
        return jobs.child_entry(SpreadJob, _measure_or_say_why, argv)  # a SpreadJob on stdin
    ap = argparse.ArgumentParser(prog="python -m overhead.experiments.spread", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="fresh processes per variant")
    ap.add_argument("--budget", type=float, default=0.5, help="seconds of timed calls per path and process")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    ap.add_argument("--out", default=None, help="results folder (default data/results/<machine>)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in names if v not in VARIANTS]
    if bad or args.runs < 1 or args.budget <= 0:
        print(f"error: {'unknown variant ' + repr(bad[0]) + '; valid: ' + ', '.join(VARIANTS) if bad else '--runs must be >= 1 and --budget > 0'}",
              file=sys.stderr)
        return 2
    frame = run(args.out, quick=args.quick, runs=args.runs, budget_s=args.budget, names=names)
    ok = frame[frame["status"] == "ok"]
    if len(ok):  # the verdicts are the report's (overhead.report.spread); here the run medians per variant
        g = ok.groupby(["variant", "backend"], sort=False)["median_us"]
        print(g.agg(processes="size", median_us="median", min_us="min", max_us="max").assign(
            max_over_min=lambda t: t["max_us"] / t["min_us"]).round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
