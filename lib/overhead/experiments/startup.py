"""Cold start and memory of every backend, each repetition in a fresh process.

The parent (a notebook; it never imports TensorFlow) starts ``python -m overhead.experiments.startup child`` (a :class:`ColdStartJob` on stdin)
once per model x backend x repetition. The child measures, in order:

- ``import_s``: importing the backend's runtime (its catalogue entry's ``runtime``, :mod:`overhead.base.paths`:
  numpy + the NumPy engine, tensorflow + keras, ai_edge_litert, onnxruntime, ...; an extra backend must
  declare ``Backend.runtime``, else it is refused rather than timed as TensorFlow). Nothing else heavy is imported before it, so numpy's own
  import is part of every runtime's cost, as it would be in a user's script.
- ``load_s``: ``backends.prepare`` from the *cached* artifact (the parent makes sure it exists first,
  so no conversion happens here): reading the .keras file, tracing a tf.function, loading a
  SavedModel, building a LiteRT interpreter or an ORT session, loading the NumPy engine's .npz
  file (``overhead.engine.load``, in a process that never imports TensorFlow, Keras or tf_keras:
  checked, and recorded as ``tf_imported``); finding a cached artifact hashes the .keras file
  (~0.1 s for 45 MB), included.
- ``first_call_s``: the first inference on one real digit (Keras builds its predict function here,
  XLA compiles here).
- ``start_to_first_pred_s``: wall time from just before the parent spawned the process (so the
  interpreter's own start-up is included) to the end of the first call.
- ``steady_median_us``: median of later calls (warm-up discarded, GC off), for contrast.
- peak resident memory (VmHWM) after import, after load and after the first call, in MB.

``convert_s`` is the time to produce the backend's artifact from the ``.keras`` file, as recorded by
:mod:`overhead.backends.converters` when the artifact was built (SavedModel export + TFLite conversion for
the LiteRT paths; TF already imported); it is 0 for paths that run the ``.keras`` file itself.
The child prints one JSON line on the original stdout (fd 1 is pointed at stderr so native
libraries cannot corrupt it); the parent records ``status=failed`` with the reason on a crash,
a non-zero exit or a timeout.
"""
import time

from overhead import backends as registry
from overhead.backends import converters
from overhead.base import atomic, config, data, envinfo, settings
from overhead.experiments import sweep
from overhead.experiments.pipeline import input_shape, save_rows
from overhead.harness import jobs, timing
from overhead.harness.child import error_text, run_child

_T_TOP = time.perf_counter()  # before any other import of the child
_WALL_TOP = time.time()

import json  # noqa: E402  (stdlib, cheap: the runtime imports are what is measured)
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

COLUMNS = ["machine", "model", "backend", "rep", "import_s", "convert_s", "load_s", "first_call_s",
           "start_to_first_pred_s", "steady_median_us", "rss_after_import_mb", "rss_after_load_mb",
           "rss_after_first_call_mb", "status", "reason"]

DEFAULT_TIMEOUT_S = 600.0


def runtime_modules(backend: str) -> tuple:
    """The modules a user of `backend` imports before loading a model: its catalogue entry's ``runtime``
    (:mod:`overhead.base.paths`), or what an extra Backend declares. A path that declares none is refused
    with the reason, never timed as if it imported TensorFlow."""
    declared = registry.get(backend).runtime
    if declared is None:
        raise ValueError(f"backend {backend!r} has no catalogue entry and declares no runtime modules: give its "
                         "Backend runtime=(...) (the modules a user imports before loading a model) to time "
                         "its cold start")
    return tuple(declared)


def artifact_names(backend: str) -> tuple:
    """The converters' file names `backend` loads (its catalogue entry's ``artifacts``); () = the .keras file."""
    return tuple(registry.get(backend).artifacts)


# --------------------------------------------------------------------------- memory probes

def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB.

    Linux: VmHWM of /proc/self/status, the high-water mark of this program's own memory map
    (``ru_maxrss`` would not do: after fork + exec it starts at the parent's size). Elsewhere
    ``ru_maxrss`` (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def rss_mb() -> float:
    """Current resident set size, MB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def memory() -> dict:
    return {"peak_mb": round(peak_rss_mb(), 2), "rss_mb": round(rss_mb(), 2)}


# --------------------------------------------------------------------------- artifacts

def artifact_paths(backend: str, model_path, artifacts=None) -> list:
    """Where the cached artifacts of `backend` live (without converting, without TensorFlow)."""
    names = artifact_names(backend)
    if not names:
        return []
    folder = converters.artifact_dir(model_path, artifacts)
    return [folder / n for n in names]


def recorded_convert_s(backend: str, model_path, artifacts=None):
    """Conversion time from .keras to the backend's artifact, from the converters' records (sum of the
    chain: SavedModel export + TFLite conversion); 0 for paths without an artifact; None if unrecorded."""
    paths = artifact_paths(backend, model_path, artifacts)
    total = 0.0
    for p in paths:
        try:
            total += float(json.loads(p.with_name(p.name + ".json").read_text())["convert_s"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return round(total, 4)


def numpy_artifact(model_path, artifacts=None):
    """The NumPy engine's file (``overhead export``'s .npz), built once and cached like the other
    conversions: converting needs Keras (and so TensorFlow), loading it needs NumPy alone, which is
    the NumPy user's cold start."""
    target = converters.artifact_dir(model_path, artifacts) / artifact_names("numpy")[0]
    if not artifacts_ready("numpy", model_path, artifacts):
        import keras  # noqa: F401  (imported before the clock starts, as the other converters do)

    def build(tmp: Path) -> Path:
        # lazy: inside the cold start's clock, like every runtime's import
        from overhead import engine
        out = tmp / target.name
        engine.from_keras(model_path).save(out)
        return out

    return converters._cached_or_build(target, build, "numpy")


def load_numpy_artifact(path):
    # lazy: inside the cold start's clock, like every runtime's import
    from overhead import engine
    return engine.load(path)


def artifacts_ready(backend: str, model_path, artifacts=None) -> bool:
    return all(p.exists() and p.with_name(p.name + ".json").exists()
               for p in artifact_paths(backend, model_path, artifacts))


# --------------------------------------------------------------------------- child

@dataclass(frozen=True)
class ColdStartJob:
    """One cold start: `backend` on `model`, one batch from `input` (.npy), in a child of kind `process`."""
    backend: str
    model: str
    input: str
    batch: int = 1
    threads: int = 1
    artifacts: str | None = None
    steady: int = 200
    steady_budget: float = 1.0
    spawn_wall: float | None = None
    process: str = "tf"


@dataclass(frozen=True)
class ExportJob:
    """Build the NumPy engine's .npz of `model` into the artifacts cache (this needs Keras, so TF)."""
    model: str
    artifacts: str | None = None


def child(args: ColdStartJob) -> dict:
    """One cold start (see the module docstring); returns the measurements as a dict."""
    import importlib

    # the thread variables (BLAS, OpenMP, TF) are in this process's environment from its start: run_child(threads=)
    out = {"backend": args.backend, "threads": args.threads, "spawn_wall": args.spawn_wall}
    t0 = time.perf_counter()
    for mod in runtime_modules(args.backend):
        importlib.import_module(mod)
    out["import_s"] = time.perf_counter() - t0
    out["mem_import"] = memory()

    import numpy as np

    out["artifacts_cached"] = artifacts_ready(args.backend, args.model, args.artifacts)
    t0 = time.perf_counter()
    if args.backend == "numpy":  # the engine's .npz file: NumPy only, no Keras, no TensorFlow
        art = artifact_paths("numpy", args.model, args.artifacts)[0]
        runner, info = load_numpy_artifact(art), {"artifact": str(art)}
        loaded = sorted(m for m in ("tensorflow", "keras", "tf_keras") if m in sys.modules)
        if loaded:
            raise RuntimeError(f"the numpy cold start imported {', '.join(loaded)}")
    else:
        # lazy: inside the cold start's clock, like every runtime's import
        from overhead import backends
        backends.enter_process(args.process)
        backends.set_threads(args.threads)
        runner = backends.prepare(args.backend, args.model, args.batch, args.threads, args.artifacts)
        info = runner.info
    out["load_s"] = time.perf_counter() - t0
    out["mem_load"] = memory()
    out["info"] = {k: v for k, v in info.items() if isinstance(v, (int, float, str, type(None)))}
    out["tf_imported"] = "tensorflow" in sys.modules  # False for numpy (asserted above)

    x = np.load(args.input)
    t0 = time.perf_counter()
    y = runner(x)
    t1 = time.perf_counter()
    wall_first = time.time()
    out["first_call_s"] = t1 - t0
    out["mem_first_call"] = memory()
    out["label"] = int(np.asarray(y).reshape(len(x), -1)[0].argmax())
    out["top_to_first_pred_s"] = t1 - _T_TOP
    import psutil
    out["create_time"] = psutil.Process().create_time()
    start = args.spawn_wall or out["create_time"] or _WALL_TOP
    out["start_to_first_pred_s"] = wall_first - start
    out["interpreter_start_s"] = _WALL_TOP - start
    if args.steady > 0:
        samples = timing.measure(lambda: runner(x), budget_s=args.steady_budget, min_samples=min(5, args.steady),
                                 max_samples=args.steady, warmup_calls=3, warmup_s=0.0)
        out["steady_median_us"] = float(np.median(samples)) / 1e3
        out["steady_n"] = int(len(samples))
    return out


def measure_job(args: ColdStartJob, proto) -> int:
    try:
        result = child(args)
        result["status"] = "ok"
    except BaseException as exc:  # report, then fail: the parent records the reason
        result = {"status": "failed", "reason": error_text(exc)}
    proto.write(json.dumps(result, default=str) + "\n")
    proto.flush()
    return 0 if result["status"] == "ok" else 1


# --------------------------------------------------------------------------- parent

def spawn(backend: str, model_path, input_path, *, threads: int = 1, batch: int = 1, artifacts=None,
          steady: int = 200, steady_budget_s: float = 1.0, timeout_s: float = DEFAULT_TIMEOUT_S,
          data_dir=None, process: str = "tf") -> dict:
    """Run one child (of worker kind `process`, see Backend.process); returns its JSON dict, or
    {status: failed, reason} on crash / timeout."""
    job = ColdStartJob(backend, str(model_path), str(input_path), batch=int(batch), threads=int(threads),
                       artifacts=None if artifacts is None else str(artifacts), steady=int(steady),
                       steady_budget=float(steady_budget_s), spawn_wall=time.time(), process=process)
    done = run_child("overhead.experiments.startup", ["child"], job=job, kind=process, data_dir=data_dir,
                     threads=int(threads), timeout_s=timeout_s)
    result = done.last()
    if not isinstance(result, dict) or done.timed_out:
        return {"status": "failed", "reason": f"child {done.failure(200)}"}
    return result


def row_from(result: dict, *, machine: str, model: str, backend: str, rep: int, convert_s) -> dict:
    """One startup.csv row from a child's JSON."""
    row = dict.fromkeys(COLUMNS)
    row.update(machine=machine, model=model, backend=backend, rep=rep, status=result.get("status", "failed"),
               reason=result.get("reason", "") or "")
    if row["status"] != "ok":
        return row
    mem = {k: result.get(f"mem_{k}", {}).get("peak_mb") for k in ("import", "load", "first_call")}
    row.update(import_s=result["import_s"], load_s=result["load_s"], first_call_s=result["first_call_s"],
               start_to_first_pred_s=result["start_to_first_pred_s"],
               steady_median_us=result.get("steady_median_us"), convert_s=convert_s,
               rss_after_import_mb=mem["import"], rss_after_load_mb=mem["load"],
               rss_after_first_call_mb=mem["first_call"])
    notes = []
    if not result.get("artifacts_cached", True):
        notes.append("artifact was not cached: load_s includes the conversion")
    if convert_s is None and artifact_names(backend):
        notes.append("conversion time not recorded")
    row["reason"] = "; ".join(notes)
    return row


def _touch(paths) -> None:
    """Read files once so every repetition finds them in the page cache (process-cold, not disk-cold)."""
    for p in map(Path, paths):
        for f in ([f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p] if p.exists() else []):
            with open(f, "rb") as fh:
                while fh.read(1 << 22):
                    pass


def ensure_artifacts(backend: str, model_path, input_path, *, threads: int, artifacts=None,
                     timeout_s: float = DEFAULT_TIMEOUT_S, data_dir=None) -> dict:
    """Build a backend's cached artifact in a throw-away child when it is missing."""
    if artifacts_ready(backend, model_path, artifacts):
        return {"status": "ok"}
    if backend == "numpy":  # the cold-start child loads the .npz with NumPy alone: export it beforehand
        return _export_engine_file(model_path, artifacts, timeout_s)
    return spawn(backend, model_path, input_path, threads=threads, artifacts=artifacts, steady=0,
                 timeout_s=timeout_s, data_dir=data_dir)


def _export_engine_file(model_path, artifacts, timeout_s) -> dict:
    """Build the NumPy engine's .npz (this needs Keras, so TF) in a throw-away child process."""
    job = ExportJob(str(model_path), None if artifacts is None else str(artifacts))
    done = run_child("overhead.experiments.startup", ["export"], job=job,
                     env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout_s=timeout_s)
    return {"status": "ok"} if done.ok else {"status": "failed", "reason": done.failure()}


def run(models, backends=None, repeats: int = 5, steady_calls: int = 200, *, threads=None, batch: int = 1,
        extra_models=(), data_dir=None, machine=None, artifacts=None, steady_budget_s: float = 0.5,
        timeout_s: float = DEFAULT_TIMEOUT_S, out_dir=None, progress: bool = True):
    """Cold starts of models x backends x repetitions into ``<results>/startup.csv``; returns the rows.

    Repetitions are interleaved (every backend once per round, in a rotated order) so a slow drift of
    a shared machine spreads over all backends. Rows of other (model, backend) pairs already in the
    file are kept. Raw child reports go to ``startup.children.jsonl`` beside it.
    """
    import tempfile

    import numpy as np
    import pandas as pd
    from tqdm.auto import tqdm


    names = list(backends or registry.NAMES)
    for n in names:
        runtime_modules(n)  # unknown names, or a path without runtime modules, fail early with the reason
    threads = int(threads or settings.cores())
    machine = machine or envinfo.machine_id()
    out_dir = Path(out_dir) if out_dir else config.results_dir(machine, data_dir)
    path = out_dir / "startup.csv"
    todo = sweep.resolve_models(list(models), extra_models, data_dir)
    rows, raw = [], []
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        inputs, convert = {}, {}
        for model, mpath in todo:
            x, _ = data.inputs_for(input_shape(mpath), batch, data_dir=data_dir)
            inputs[model] = Path(tmp) / f"{model}.npy"
            np.save(inputs[model], x)
        prep = [(m, p, b) for m, p in todo for b in names if artifact_names(b)]
        for model, mpath, b in tqdm(prep, desc="artifacts", disable=not progress or not prep):
            res = ensure_artifacts(b, mpath, inputs[model], threads=threads, artifacts=artifacts,
                                   timeout_s=timeout_s, data_dir=data_dir)
            if res.get("status") != "ok":
                convert[(model, b)] = res
        for model, mpath in todo:
            _touch([mpath, *[p for b in names for p in artifact_paths(b, mpath, artifacts)]])
        plan = [(r, model, mpath, names[(i + r) % len(names)]) for r in range(repeats)
                for model, mpath in todo for i in range(len(names))]
        bar = tqdm(plan, desc="cold starts", disable=not progress)
        for rep, model, mpath, b in bar:
            bar.set_postfix_str(f"{model} {b} rep {rep}")
            if (model, b) in convert:  # the artifact could not be built: every rep fails the same way
                res = {"status": "failed", "reason": f"conversion failed: {convert[(model, b)].get('reason')}"}
            else:
                res = spawn(b, mpath, inputs[model], threads=threads, batch=batch, artifacts=artifacts,
                            steady=steady_calls, steady_budget_s=steady_budget_s, timeout_s=timeout_s,
                            data_dir=data_dir, process=registry.get(b).process)
            raw.append({"model": model, "backend": b, "rep": rep, **res})
            rows.append(row_from(res, machine=machine, model=model, backend=b, rep=rep,
                                 convert_s=recorded_convert_s(b, mpath, artifacts)))
            save_rows(pd.DataFrame(rows, columns=COLUMNS), path, COLUMNS)
    atomic.atomic_write_text(out_dir / "startup.children.jsonl",
                             "".join(json.dumps(r, default=str) + "\n" for r in raw))
    envinfo.write_meta(path, extra={
        "stage": "startup", "models": [m for m, _ in todo], "backends": names, "repeats": repeats,
        "steady_calls": steady_calls, "steady_budget_s": steady_budget_s, "batch": batch,
        "threads_setting": threads, "timeout_s": timeout_s,
        "convert_s": "recorded by overhead.backends.converters when the artifact was built (0: runs the .keras file)",
        "rss": "peak resident set size (VmHWM) after each phase, MB"}, threads=threads)
    return pd.DataFrame(rows, columns=COLUMNS)


def _export(job: ExportJob, proto) -> int:
    return 0 if numpy_artifact(job.model, job.artifacts) else 1


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["export"]:  # the engine's .npz, built in a throw-away process: an ExportJob on stdin
        return jobs.child_entry(ExportJob, _export, argv, command="export")
    return jobs.child_entry(ColdStartJob, measure_job, argv)  # a ColdStartJob on stdin


if __name__ == "__main__":
    raise SystemExit(main())
