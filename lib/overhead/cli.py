"""The `overhead` command: benchmark or check any Keras model the way the study does, list the backends.

    overhead bench MODEL.keras ... [--backends a,b] [--batch-sizes 1,32] [--threads 1] [--out FILE] [--quick]
    overhead check MODEL.keras [--backends a,b] [--batch-size 1] [--threads 1]
    overhead backends [--no-probe]
    overhead export MODEL.keras OUT.npz
    overhead loadgen MODEL [--scenario SingleStream,Server] [--bound-ms 10] [--qps 100,200] [--paths a,b]
                     [--strategy thread|threads|processes] [--workers N] [--threads 1] [--http] [--out DIR] [--quick]

Everything is validated before TensorFlow is imported (bench/check run it only in worker processes;
export imports it in-process, with its log output silenced, to read the model). Bad
input prints one line on stderr, `overhead: error: <problem>; <fix>`, and exits with status 2; no
output file is left behind. `check` exits 1 when a backend disagrees with Keras beyond its tolerance,
and 2 (one line, after the table) when Keras' own outputs carry no signal on the inputs (near-zero
logits or the same output for every input: nothing can be judged); `bench` then warns in one line.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from overhead import backends, engine
from overhead.base import atomic, envinfo, quiet, settings
from overhead.base.atomic import UnwritableDirectoryError
from overhead.experiments import loadgen, sweep
from overhead.report.tables import format_bench
from overhead.usermodel import args as userargs
from overhead.usermodel import refsignal, resources

EXIT_USAGE, EXIT_DISAGREE = 2, 1


class UsageError(Exception):
    """Bad input: reported as one line on stderr with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + exits; we want one line
        raise UsageError(f"{message}; see `{self.prog} --help`")


def _ints(text: str, what: str, example: str) -> list[int]:
    values = []
    for part in str(text).split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit()) or int(part) < 1:
            raise UsageError(f"{what} must be positive integers, got {part!r}; e.g. {example}")
        values.append(int(part))
    return sorted(set(values))


def _backend_list(text: str | None) -> list[str]:
    if text is None:
        return list(backends.NAMES)
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise UsageError("--backends is empty; e.g. --backends numpy,tf.function")
    for name in names:
        try:
            backends.get(name)
        except backends.UnknownBackendError as exc:
            raise UsageError(f"{exc}; run `overhead backends` to see which work here") from None
    return list(dict.fromkeys(names))


def _model(arg: str) -> Path:
    """A .keras or Keras 2 .h5 file, a SavedModel folder, or a ladder name in data/models/."""

    try:
        return userargs.model_path(arg)
    except userargs.ArgError as exc:
        raise UsageError(str(exc)) from None


def _above_cores(threads) -> list[int]:
    return [t for t in threads if t > resources.cores()]  # warned about, and recorded in the .meta.json


def _user_args(args, threads) -> dict:
    """--inputs / --input-shape for the workers; warns about thread settings above the cores."""

    try:
        extra = userargs.job_args(args)
    except userargs.ArgError as exc:
        raise UsageError(str(exc)) from None
    userargs.warn_threads(threads)
    return extra


def _out_path(arg: str | None) -> Path | None:
    if arg is None:
        return None
    path = Path(arg).expanduser()
    if path.is_dir():
        raise UsageError(f"--out {arg} is a folder; name a .csv file inside it")
    if path.suffix != ".csv":
        raise UsageError(f"--out must name a .csv file, got {arg!r}; e.g. --out results.csv")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"cannot write --out {arg}: folder {parent} does not exist; create it first")
    if (path.exists() and not os.access(path, os.W_OK)) or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write --out {arg}: permission denied; choose a writable location")
    try:  # permissions can lie (read-only mounts, root): really create and remove a file
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"cannot write --out {arg}: {exc.strerror or exc}; choose a writable location") from None
    return path.resolve()


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"--budget must be a positive number of seconds, got {text!r}; e.g. --budget 0.5")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="overhead", description="Framework overhead of CPU inference: every path vs a NumPy engine.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    b = sub.add_parser("bench", help="time every backend on your Keras model(s) and print a table")
    b.add_argument("models", nargs="+", metavar="MODEL", help=".keras file(s) or ladder model names")
    b.add_argument("--backends", help="comma-separated backend names (default: all)")
    b.add_argument("--batch-sizes", default=None, help="comma-separated batch sizes (default: the study's, "
                   "params/full.yaml; --quick: params/quick.yaml)")
    b.add_argument("--threads", default="1", help="comma-separated thread counts, one fresh process each")
    b.add_argument("--budget", default=None, help="timing budget per configuration in seconds (default: the study's)")
    b.add_argument("--out", help="write the results table to this .csv (with a .meta.json beside it)")
    b.add_argument("--quick", action="store_true", help="params/quick.yaml's budget, batches and one run: a smoke test")
    userargs.add_arguments(b)
    c = sub.add_parser("check", help="compare every backend's outputs with Keras; exit 1 on disagreement")
    c.add_argument("models", nargs="+", metavar="MODEL")
    c.add_argument("--backends")
    c.add_argument("--batch-size", default="1")
    c.add_argument("--threads", default="1")
    userargs.add_arguments(c)
    k = sub.add_parser("backends", help="list the backends and whether each works here")
    k.add_argument("--no-probe", action="store_true", help="only check that the libraries import")
    e = sub.add_parser("export", help="save the NumPy engine file (.npz) of a Keras model: loads with NumPy alone")
    e.add_argument("model", metavar="MODEL.keras")
    e.add_argument("out", metavar="OUT.npz")
    g = sub.add_parser("loadgen", help="serve a model under MLPerf LoadGen (Single-Stream p90, Server max QPS)")
    g.add_argument("model", metavar="MODEL", help=".keras file or ladder model name")
    g.add_argument("--scenario", default="SingleStream,Server", help="comma-separated: SingleStream, Server")
    g.add_argument("--bound-ms", default=None, help="Server p99 bound in ms (default: 10 small, 100 large models)")
    g.add_argument("--qps", default=None, help="comma-separated Server target QPS (default: bisect for the maximum)")
    g.add_argument("--paths", default=None, help="comma-separated paths (default: numpy,litert,onnxruntime,tf.function)")
    g.add_argument("--strategy", default="thread", help="thread, threads (N threads) or processes (N processes)")
    g.add_argument("--workers", default=None, help="worker threads/processes for --strategy threads|processes")
    g.add_argument("--threads", default="1", help="threads one inference may use (one fresh process each)")
    g.add_argument("--http", action="store_true", help="also through the FastAPI/uvicorn service on 127.0.0.1")
    g.add_argument("--out", default=None, help="folder for loadgen.csv (+ .meta.json); default: print only")
    g.add_argument("--quick", action="store_true", help="short LoadGen runs: a smoke test")
    return p


def main(argv=None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except UsageError as exc:
        print(f"overhead: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("overhead: interrupted; finished results were kept", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: still one line (set OVERHEAD_DEBUG=1 for the traceback)
        if os.environ.get("OVERHEAD_DEBUG"):
            raise
        print(f"overhead: error: {type(exc).__name__}: {exc}; rerun with OVERHEAD_DEBUG=1 for details",
              file=sys.stderr)
        return 1


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        raise UsageError("missing command: choose bench, check, export, loadgen or backends; see `overhead --help`")
    return {"bench": _bench, "check": _check, "backends": _backends, "export": _export,
            "loadgen": _loadgen}[args.command](args)


def _fatal_model(rows: list[dict]) -> None:
    message = userargs.fatal_message(rows)  # the worker's own line: the model or inputs, with the fix
    if message:
        raise UsageError(message)


def _no_signal(rows) -> str | None:
    """The worker's one line when the Keras reference outputs carry no signal (first such row)."""
    return next(filter(None, (refsignal.find(r.get("reason")) for r in rows)), None)


def _bench(args) -> int:
    models = [_model(m) for m in args.models]
    study = settings.Settings.from_yaml(settings.QUICK_YAML) if args.quick else settings.Settings()
    batches = _ints(args.batch_sizes, "batch sizes", "--batch-sizes 1,32") if args.batch_sizes else study.bench.batches
    threads = _ints(args.threads, "threads", "--threads 1,2")
    extra = _user_args(args, threads)
    budget = _positive_float(args.budget) if args.budget is not None else study.bench.budget_s
    out = _out_path(args.out)
    # the user's models: every batch on every backend, no FLOPs cap, no GEMM rate
    bench = replace(study.bench, models=tuple(str(m) for m in models), backends=tuple(_backend_list(args.backends)),
                    batches=tuple(batches), threads=tuple(threads), budget_s=budget, max_flops_per_call=float("inf"),
                    gemm_n=None, big_batch_models=None, big_batch_backends=None, secondary_backends=(),
                    threads_models=None)
    with tempfile.TemporaryDirectory(prefix="overhead-bench-") as tmp:
        rows = sweep.run(study.replace(bench=bench, machine=envinfo.machine_id()), out_dir=tmp, resume=False,
                         progress=sys.stderr.isatty(), model_inputs=extra)
        _fatal_model(rows.to_dict("records"))
        print(format_bench(rows))
        no_signal = _no_signal(rows.to_dict("records"))
        if no_signal:
            print(f"overhead: warning: {no_signal}", file=sys.stderr)
        if out is not None:
            atomic.atomic_write_csv(rows, out)
            envinfo.write_meta(out, {"stage": "overhead bench", "models": [str(m) for m in models],
                                     "budget_s": budget, "threads_above_cores": _above_cores(threads)},
                               threads=threads)
            print(f"wrote {out}", file=sys.stderr)
    return 0


def _check(args) -> int:
    import pandas as pd


    models = [_model(m) for m in args.models]
    names = _backend_list(args.backends)
    kinds = {}  # one worker per process kind (Keras 3 on TF / JAX / NumPy cannot share a process)
    for b in names:
        kinds.setdefault(backends.get(b).process, []).append(b)
    batch = _ints(args.batch_size, "--batch-size", "--batch-size 1")
    threads = _ints(args.threads, "--threads", "--threads 1")
    extra = _user_args(args, threads)
    rows = []
    for path in models:
        for t in threads:
            for kind, group in kinds.items():
                job = sweep._job_for(path.stem, path, t, [(b, n) for n in batch for b in group],
                                     {"mode": "check", "parity_n": 256, "parity_max_s": 5.0,
                                      "max_flops_per_call": float("inf"), **extra}, process=kind)
                got, _ = sweep.collect_rows(job)
                rows += got
    _fatal_model(rows)
    table = pd.DataFrame(rows).reindex(columns=["model", "backend", "batch", "threads", "status", "parity",
                                                "max_abs_err", "top1_agree", "accuracy", "ref_accuracy",
                                                "tolerance", "reason"])
    print(table.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.3g}"))
    no_signal = _no_signal(rows)
    if no_signal:  # every path "disagrees" at rounding level: nothing can be judged; the input is at fault
        raise UsageError(no_signal)
    bad = table[table["parity"] == "fail"]
    failed = table[(table["status"] == "failed") & (table["parity"] != "fail")]
    if len(failed):
        print(f"{len(failed)} backend(s) could not run (see reason); they are not counted as disagreeing",
              file=sys.stderr)
    if len(bad):
        print(f"{len(bad)} backend(s) disagree with Keras beyond tolerance: {', '.join(bad['backend'])}",
              file=sys.stderr)
        return EXIT_DISAGREE
    return 0


def _backends(args) -> int:
    import pandas as pd


    table = pd.DataFrame([{"backend": n, "family": backends.get(n).family, "process": backends.get(n).process,
                           "available": backends.get(n).available()[0], "description": backends.get(n).description}
                          for n in backends.names()])
    if not args.no_probe:
        by = {}
        for kind in dict.fromkeys(table["process"]):  # one probe worker per process kind (KERAS_BACKEND)
            names = table.loc[table["process"] == kind, "backend"]
            job = sweep._job_for("probe", Path("probe.keras"), 1, [(n, 1) for n in names],
                                 {"mode": "probe", "parity_n": 32, "parity_max_s": 1.0}, process=kind)
            rows, _ = sweep.collect_rows(job)
            by.update({r["backend"]: r for r in rows})
        table["works"] = [("yes" if by.get(n, {}).get("parity") == "pass" else "no") for n in table["backend"]]
        table["detail"] = [str(by.get(n, {}).get("kernels") or by.get(n, {}).get("reason") or "")[:80]
                           for n in table["backend"]]
    print(table.to_string(index=False))
    return 0


def _export(args) -> int:
    """`overhead export MODEL.keras OUT.npz`: the engine file, written atomically (never partial)."""
    from contextlib import redirect_stdout

    model = _model(args.model)
    out = Path(args.out).expanduser()
    if out.suffix != ".npz" or out.is_dir():
        raise UsageError(f"OUT must name a .npz file, got {args.out!r}; e.g. overhead export model.keras model.npz")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"cannot write {args.out}: folder {parent} does not exist; create it first")
    try:  # before the slow part: really create and remove a file beside it
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}; choose a writable location") from None
    with quiet.stderr_silenced(), redirect_stdout(sys.stderr):
        try:
            import keras
            keras_model = keras.models.load_model(model, compile=False)
        except Exception as exc:  # noqa: BLE001 - any failure to read it is the file's problem
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise UsageError(f"cannot load model {args.model}: {first}; re-save it with "
                             "model.save('name.keras')") from None
        try:
            net = engine.from_keras(keras_model)
        except engine.UnsupportedLayerError as exc:
            raise UsageError(f"cannot export {args.model}: {exc} Replace or remove that layer, "
                             "or run the model with another backend") from None
        try:
            net.save(out)
        except (OSError, UnwritableDirectoryError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise UsageError(f"cannot write {args.out}: {why}; choose a writable location") from None
    print(f"wrote {out} ({len(net._ops)} ops, {out.stat().st_size / 1e6:.2f} MB): "
          "load it with overhead.engine.load (NumPy only)", file=sys.stderr)
    return 0


LOADGEN_PATHS = "numpy,litert,onnxruntime,tf.function"


def _floats(text: str, what: str, example: str) -> list[float]:
    values = []
    for part in str(text).split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise UsageError(f"{what} must be numbers, got {part.strip()!r}; e.g. {example}") from None
    return values


def _loadgen(args) -> int:
    """`overhead loadgen MODEL ...`: every input checked (one line, exit 2) before a child process starts."""

    scenarios = [s.strip() for s in args.scenario.split(",") if s.strip()]
    bound = _floats(args.bound_ms, "--bound-ms", "--bound-ms 10")[0] if args.bound_ms is not None else None
    qps = _floats(args.qps, "--qps", "--qps 100,200") if args.qps is not None else None
    paths = [p.strip() for p in (args.paths or LOADGEN_PATHS).split(",") if p.strip()]
    threads = _ints(args.threads, "threads", "--threads 1,2")
    workers = _ints(args.workers, "--workers", "--workers 2")[0] if args.workers is not None else None
    strategy = args.strategy.strip()
    try:
        loadgen.check_inputs(scenarios=scenarios, bounds_ms=None if bound is None else {Path(args.model).stem: bound},
                             qps=qps, paths=paths, strategies=(strategy,), workers=workers)
    except loadgen.LoadgenInputError as exc:
        raise UsageError(str(exc)) from None
    if strategy == "batching":
        raise UsageError("--strategy batching is run by the study's notebook only; use thread, threads or processes")
    model = _model(args.model)
    out = Path(args.out).expanduser() if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out} is a file; name a folder (loadgen.csv is written inside it)")
    with tempfile.TemporaryDirectory(prefix="overhead-loadgen-") as tmp:
        lg = replace(settings.Settings().loadgen, models=(str(model),), paths=tuple(paths), threads=tuple(threads),
                     scenarios=tuple(scenarios), bounds_ms=None if bound is None else {model.stem: bound},
                     qps=None if qps is None else tuple(qps), server_paths=tuple(paths), workers=workers,
                     strategies=() if strategy == "thread" else (strategy,), batching_paths=(),
                     strategy_paths=() if strategy == "thread" else tuple(paths),
                     http_paths=("noop", *paths) if args.http else ())
        study = settings.Settings.from_yaml(settings.QUICK_YAML) if args.quick else settings.Settings()
        frame = loadgen.run(study.replace(loadgen=replace(lg, runs=study.loadgen.runs)), out_dir=out or tmp,
                            progress=sys.stderr.isatty())
        if strategy != "thread":
            frame = frame[(frame["strategy"] == strategy) | (frame["scenario"] == "SingleStream")]
        cols = ["scenario", "path", "transport", "strategy", "workers", "phase", "target_qps", "achieved_qps", "p50_us",
                "p90_us", "p99_us", "validity", "max_valid", "parity", "status", "reason"]
        print(frame[cols].to_string(index=False, na_rep="", float_format=lambda v: f"{v:.4g}"))
        if out is not None:
            print(f"wrote {out / 'loadgen.csv'}", file=sys.stderr)
    return 0
