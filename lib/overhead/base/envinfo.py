"""What machine and software a result came from: collected per run, stored as `<stem>.meta.json`.

Versions are read from package metadata only: importing TensorFlow takes seconds and changes
the process (thread pools, oneDNN), so it must not happen just to describe the environment.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import re
import socket
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from overhead.base.atomic import atomic_write_text
from overhead.base.config import ROOT

# Distribution names to try per reported package (the first one installed wins).
PACKAGES = {
    "numpy": ("numpy",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tf-nightly", "tf-nightly-cpu"),
    "keras": ("keras", "keras-nightly"),
    "ai-edge-litert": ("ai-edge-litert", "ai-edge-litert-nightly"),
    "onnxruntime": ("onnxruntime", "onnxruntime-openmp"),
    "tf2onnx": ("tf2onnx",),
    "scipy": ("scipy",),
    "pandas": ("pandas",),
    "threadpoolctl": ("threadpoolctl",),
}

ENV_VARS = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE", "TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS", "TF_XLA_FLAGS", "TF_CPP_MIN_LOG_LEVEL", "KMP_AFFINITY",
    "KMP_BLOCKTIME", "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "PYTHONHASHSEED",
    "OVERHEAD_MACHINE", "OVERHEAD_DATA",
)

KEYS = (
    "machine", "hostname", "date", "cpu_model", "cpu_flags", "isa_flags", "arch", "physical_cores",
    "logical_cores", "affinity_cores", "cpu_freq_mhz", "load_avg_1m", "ram_gib", "os",
    "kernel", "platform", "python", "versions", "blas", "threads", "env", "onednn",
    "git_commit", "git_dirty",
)

# SIMD features that explain kernel choices (AVX-512/AMX for oneDNN, NEON/SVE on ARM).
_SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
               "amx_tile", "amx_bf16", "amx_int8", "neon", "asimd", "sve", "sve2")
_X86 = {"x86_64", "amd64", "i386", "i686", "x86"}
# Vector/matrix ISA extensions that set a CPU's float32/int8/bf16 peaks (see overhead.experiments.ceilings).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl",
             "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
             "amx_fp16", "asimd", "asimddp", "i8mm", "bf16", "sve", "sve2", "sme")


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict:
    """py-cpuinfo's description (slow, ~1 s: it runs a subprocess), cached; {} when it fails."""
    try:
        import cpuinfo
        return dict(cpuinfo.get_cpu_info())
    except Exception:  # a broken probe must not stop a benchmark run
        return {}


def cpu_model() -> str:
    brand = cpu_info().get("brand_raw") or platform.processor() or platform.machine()
    return brand.strip() or "unknown-cpu"


def logical_cores() -> int:
    import psutil
    return psutil.cpu_count(logical=True) or os.cpu_count() or 1


def slugify_cpu(brand: str, cores: int) -> str:
    """'Intel(R) Xeon(R) Processor @ 2.10GHz', 2 -> 'intel-xeon-processor-2c'."""
    text = brand.lower()
    text = re.sub(r"\((r|tm|c)\)", " ", text)
    text = re.sub(r"@.*$", " ", text)  # the nominal clock, e.g. '@ 2.10GHz'
    text = re.sub(r"\bcpu\b", " ", text)
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:60].strip("-") or "cpu"
    return f"{slug}-{cores}c"


def machine_id() -> str:
    """$OVERHEAD_MACHINE (made path-safe) if set, else a slug of the CPU model + logical cores."""
    chosen = os.environ.get("OVERHEAD_MACHINE", "").strip()
    if chosen:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", chosen).strip("-.")
        if safe:
            return safe
    brand = cpu_model()
    if brand.lower().startswith("amd") and not re.search(r"\d", brand):  # a VM's bare "AMD EPYC": add the generation
        info = cpu_info()
        gen = amd_generation(info.get("family"), info.get("model"))
        brand = f"{brand} {gen}" if gen else brand
    return slugify_cpu(brand, logical_cores())


def amd_generation(family, model) -> str | None:
    """AMD's core generation from the CPUID family and model ("zen4" for family 25, model 0x11), else None."""
    try:
        family, model = int(family), int(model)
    except (TypeError, ValueError):
        return None
    if family == 23:
        return "zen2" if model >= 0x30 else "zen"
    if family == 25:
        return "zen4" if 0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF else "zen3"
    if family == 26:
        return "zen5"
    return None


def package_version(key: str) -> str | None:
    for dist in PACKAGES.get(key, (key,)):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def blas_info() -> list[dict]:
    """BLAS/OpenMP pools loaded in this process (numpy is imported so its BLAS is visible)."""
    import numpy  # noqa: F401  (loads the BLAS library that threadpoolctl inspects)
    from threadpoolctl import threadpool_info
    fields = ("user_api", "internal_api", "version", "num_threads", "architecture",
              "threading_layer", "prefix")
    return [{k: pool.get(k) for k in fields} for pool in threadpool_info()]


OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def openblas_env(env=None) -> dict:
    """The OpenBLAS variables that change which kernel runs (None when unset): OPENBLAS_CORETYPE forces a
    micro-architecture's kernels (e.g. Haswell's AVX2 kernels on an AVX-512 CPU), OPENBLAS_L2_SIZE the
    cache size its blocking assumes."""
    env = os.environ if env is None else env
    return {name: env.get(name) for name in OPENBLAS_ENV}


def numpy_blas(pools=None) -> dict | None:
    """The BLAS NumPy itself calls (the pool loaded from NumPy's own folder, else the first BLAS pool):
    ``internal_api`` (openblas, mkl, ...), ``version``, ``architecture`` -- the kernel it actually runs --
    ``threading_layer``, ``num_threads``, ``library`` (file name); None when threadpoolctl sees no BLAS."""
    pools = blas_info_with_paths() if pools is None else pools
    blas = [p for p in pools if p.get("user_api") == "blas"]
    if not blas:
        return None
    own = [p for p in blas if "numpy" in str(p.get("filepath", "")).lower()]
    pick = (own or blas)[0]
    return {"internal_api": pick.get("internal_api"), "version": pick.get("version"),
            "architecture": pick.get("architecture"), "threading_layer": pick.get("threading_layer"),
            "num_threads": pick.get("num_threads"), "library": Path(str(pick.get("filepath", ""))).name or None}


def blas_info_with_paths() -> list[dict]:
    """threadpoolctl's pools including ``filepath`` (numpy imported first so its BLAS is loaded)."""
    import numpy  # noqa: F401
    from threadpoolctl import threadpool_info
    return [dict(p) for p in threadpool_info()]


def onednn_flag(env=None, arch: str | None = None) -> str:
    """TF_ENABLE_ONEDNN_OPTS as recorded: 'on'/'off' when set, else TF's platform default."""
    env = os.environ if env is None else env
    value = env.get("TF_ENABLE_ONEDNN_OPTS")
    if value is None or value.strip() == "":
        arch = (arch or platform.machine()).lower()
        return "default (on)" if arch in _X86 else "default (platform-dependent)"
    lowered = value.strip().lower()
    if lowered in {"1", "true", "on", "yes"}:
        return "on"
    if lowered in {"0", "false", "off", "no"}:
        return "off"
    return value


def _git(args: list[str], cwd) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):  # git missing, cwd gone, hung
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(cwd=ROOT) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository at cwd; (None, None) without git or a commit."""
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        return None, None
    # The run's own outputs (result files, figures, the report) do not make the code it ran dirty.
    status = _git(["status", "--porcelain", "--untracked-files=no", "--", ".", ":!data/results",
                   ":!figures", ":!reports", ":!README.md"], cwd)
    return commit, (None if status is None else bool(status))


def _ram_gib() -> float:
    import psutil
    return round(psutil.virtual_memory().total / 2**30, 2)


def _cpu_freq_mhz() -> float | None:
    import psutil
    try:
        freq = psutil.cpu_freq()
    except Exception:  # not exposed in some containers / VMs
        return None
    return float(freq.current) if freq and freq.current else None


def _affinity_cores() -> int | None:
    getter = getattr(os, "sched_getaffinity", None)
    return len(getter(0)) if getter else None


def _simd_flags() -> list[str]:
    flags = set(cpu_info().get("flags", []))
    return [f for f in _SIMD_FLAGS if f in flags]


def proc_cpu_flags(text: str | None = None) -> set[str]:
    """The kernel's CPU feature flags (/proc/cpuinfo 'flags' on x86, 'Features' on ARM); else py-cpuinfo's."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return {str(f) for f in cpu_info().get("flags", [])}


def isa_flags(flags=None) -> list[str]:
    """The ISA_FLAGS present on this CPU (or in `flags`), in ISA_FLAGS order."""
    have = proc_cpu_flags() if flags is None else set(flags)
    return [f for f in ISA_FLAGS if f in have]


def collect(threads=None) -> dict:
    """Describe this machine and software stack; `threads` is the thread setting of the run."""
    import psutil
    commit, dirty = git_info()
    uname = platform.uname()
    return {
        "machine": machine_id(),
        "hostname": socket.gethostname(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_flags": _simd_flags(),
        "isa_flags": isa_flags(),
        "arch": uname.machine,
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": logical_cores(),
        "affinity_cores": _affinity_cores(),
        "cpu_freq_mhz": _cpu_freq_mhz(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "ram_gib": _ram_gib(),
        "os": uname.system,
        "kernel": uname.release,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {key: package_version(key) for key in PACKAGES},
        "blas": blas_info(),
        "numpy_blas": numpy_blas(),
        "openblas_env": openblas_env(),
        "threads": threads,
        "env": {name: os.environ.get(name) for name in ENV_VARS},
        "onednn": onednn_flag(),
        "git_commit": commit,
        "git_dirty": dirty,
    }


def meta_path(result_path) -> Path:
    """`dir/X.csv` -> `dir/X.meta.json` (a path already ending in .meta.json is kept)."""
    path = Path(result_path)
    if path.name.endswith(".meta.json"):
        return path
    return path.with_name(f"{path.stem}.meta.json")


def repo_relative(value):
    """`value` with every string naming a path inside the repository made relative to it (recursively), so
    committed metadata names no folder of the machine that wrote it."""
    root = str(ROOT) + os.sep
    if isinstance(value, dict):
        return {k: repo_relative(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [repo_relative(v) for v in value]
    if isinstance(value, str) and (value + os.sep).startswith(root):
        return value[len(root):] or "."
    return value


def write_meta(result_path, extra: dict | None = None, threads=None) -> Path:
    """Write collect() (updated with `extra`) beside a result file, atomically; returns its path.
    Paths inside the repository are written relative to it (`repo_relative`)."""
    meta = collect(threads=threads)
    meta["result_file"] = Path(result_path).name
    meta.update(extra or {})
    meta = repo_relative(meta)
    target = meta_path(result_path)
    atomic_write_text(target, json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return target


def read_meta(result_path) -> dict:
    return json.loads(meta_path(result_path).read_text(encoding="utf-8"))
