"""The version stage: the same models through every path in every TensorFlow release 2.12 ... 2.21.

For each release (an environment of its own, :mod:`overhead.experiments.versions_env`) and each Keras it runs
(Keras 2 up to 2.15; Keras 3 and tf_keras from 2.16), each model and each oneDNN setting, ``runs`` fresh child
processes (:mod:`overhead.experiments.versions_child`, started in the release's interpreter through
:func:`overhead.harness.child.run_child`) rebuild the model from the NumPy engine's ``.npz`` (version-neutral
weights), run every path on real digits, and time the paths interleaved at batch 1 on ``threads`` threads.
Configurations are interleaved in time, run by run. Here the parent judges each path's outputs against the
NumPy engine's logits (the study's rule, :func:`overhead.harness.parity.compare`, float32 tier), pools the
runs' samples (:func:`overhead.harness.stats.summarize`: the run-level interval and the between-runs rule),
and writes ``versions.csv`` (+ ``versions.meta.json`` with every release's package set) and the raw samples.

Resumes: every finished child is a line of ``versions.runs.jsonl`` (its outputs and samples in
``versions.work/``); a re-run skips them. A release that fails to install or to import is a row with its reason.
QUICK and tests: :func:`study_release` is the current environment as the only release (no download).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from overhead.base import config, data, envinfo
from overhead.base.atomic import atomic_write_text
from overhead.experiments import startup, versions_env
from overhead.experiments.versions_child import VersionsJob
from overhead.harness import child, interval, parity, stats

CHILD = "overhead.experiments.versions_child"
PATHS = ("predict", "predict_on_batch", "call", "tf.function", "tf.function.xla", "savedmodel", "tf1.session",
         "tflite")
ONEDNN_OFF_PATHS = ("tf.function",)  # oneDNN off (TF_ENABLE_ONEDNN_OPTS=0): the paths measured again
MODELS = ("logreg", "cnn_seed", "resnet_mnist", "resnet18_32px")  # softmax regression, seed CNN, mid ResNet, ResNet-18
# the models measured again with oneDNN off: the seed CNN and ResNet-18 (a 16-release x 2-Keras sweep of every model
# twice would double the stage for two more points of the same comparison)
ONEDNN_OFF_MODELS = ("cnn_seed", "resnet18_32px")
COLUMNS = ["machine", "release", "tensorflow", "keras", "keras_version", "numpy", "env", "model", "weights_sha",
           "path", "onednn", "threads", "batch", "status", "reason", "parity", "logit_rel_err", "logit_cos",
           "top1_decisive", "n_decisive", "n_parity", "runs", "n", "median_us", "ci_lo_us", "ci_hi_us", "p90_us",
           "min_us", "run_spread", "unstable", "unstable_reason", "import_s", "prepare_s", "first_call_s",
           "rss_1_mb", "rss_n_mb", "rss_n_calls", "samples_file", "date"]


@dataclass
class Release:
    """A TensorFlow release to measure: its label (minor version), interpreter and how it was obtained."""
    label: str
    python: str | None = None  # None: not available (see reason)
    env: str = "built"  # built | study (the current environment, QUICK/tests)
    reason: str = ""
    info: dict = field(default_factory=dict)
    kerases: tuple = ()


def study_release() -> Release:
    """The current environment as the only release (QUICK runs and tests: nothing is downloaded)."""
    from importlib import metadata
    try:
        tf_version = metadata.version("tensorflow-cpu")
    except metadata.PackageNotFoundError:
        tf_version = metadata.version("tensorflow")
    minor = ".".join(tf_version.split(".")[:2])
    kerases = versions_env.keras_flavours(minor)
    try:
        metadata.version("tf-keras")
    except metadata.PackageNotFoundError:
        kerases = tuple(k for k in kerases if k != "2") or kerases
    return Release(minor, sys.executable, "study", info={"tensorflow": tf_version}, kerases=kerases)


def built_release(minor: str, root=None, **build_kw) -> Release:
    """A release from its own environment under data/envs/ (built with uv on first use)."""
    got = versions_env.build(minor, root, **build_kw)
    if got["status"] != "ok":
        return Release(minor, None, "built", reason=got["reason"], info=got)
    return Release(minor, got["python"], "built", info={k: v for k, v in got.items() if k != "python"},
                   kerases=versions_env.keras_flavours(minor))


def weights_file(model: str, data_dir=None, timeout_s: float = 900) -> Path:
    """The NumPy engine's .npz of a ladder model (exported once, in a throw-away TF child; cached)."""
    model_path = config.models_dir(data_dir) / f"{model}.keras"
    if not model_path.exists():
        raise FileNotFoundError(f"no trained model {model_path}: run the training stage first (make train)")
    done = startup.ensure_artifacts("numpy", str(model_path), None, threads=1, timeout_s=timeout_s)
    if done.get("status") != "ok":
        raise RuntimeError(f"cannot export {model} to the NumPy engine's file: {done.get('reason')}")
    return startup.artifact_paths("numpy", str(model_path))[0]


def sha12(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def reference(weights: Path, model: str, n: int, data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """(real digits at the model's input shape, the NumPy engine's outputs on them): the version-independent
    reference every release is judged against."""
    # lazy: the engine's package is only needed by a stage that judges parity
    from overhead import engine
    net = engine.load(weights, threads=1)
    x, _ = data.inputs_for(net.input_shape[1:], n, data_dir=data_dir)
    return x, np.concatenate([net(x[i:i + 1]) for i in range(len(x))])


def _env_for(release: Release, keras: str, onednn: bool, threads: int) -> dict:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if onednn else "0", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_USE_LEGACY_KERAS", None)
    if keras == "2" and versions_env.minor_tuple(release.label) >= versions_env.KERAS3_FROM:
        env["TF_USE_LEGACY_KERAS"] = "1"
    if release.env == "built":  # a release's own venv: nothing of the study's site-packages
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONHOME", None)
    return env


def config_key(release: str, keras: str, model: str, onednn: bool, sha: str) -> str:
    return f"{release}|k{keras}|{model}|onednn{'on' if onednn else 'off'}|{sha}"


def load_log(path: Path) -> dict:
    """Finished children by (config key, run) from versions.runs.jsonl (a torn last line is skipped)."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[(rec["key"], int(rec["run"]))] = rec
            except (ValueError, KeyError, TypeError):
                continue
    return done


def run_one(release: Release, keras: str, onednn: bool, run: int, *, models: list[str], weights: dict, inputs: dict,
            work: Path, paths, threads: int, budget_s: float, rounds: int, min_samples: int, rss_calls,
            timeout_s: float) -> list[dict]:
    """One fresh child for every model of one (release, Keras, oneDNN) configuration -- TensorFlow is imported
    once per process, not once per model (the import is 10 s of a 2-core machine's time in the older releases).
    Returns one log record per model (events, the .npz with outputs and samples). RSS after `rss_calls` predict
    calls is read on the first model only, before any other model ran in the process."""
    jobs = []
    for model in models:
        key = config_key(release.label, keras, model, onednn, sha12(weights[model]))
        safe = key.replace("|", "__")
        scratch = work / f"{safe}__r{run}.scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        jobs.append({"model": model, "key": key, "weights": str(weights[model]), "inputs": str(inputs[model]),
                     "out": str(work / f"{safe}__r{run}.npz"), "scratch": str(scratch)})
    job = VersionsJob(models=tuple({k: v for k, v in j.items() if k != "key"} for j in jobs), paths=tuple(paths),
                      threads=int(threads), budget_s=budget_s, rounds=rounds, min_samples=min_samples,
                      rss_calls=tuple(rss_calls))
    done = child.run_child(CHILD, ["child"], job=job, threads=threads, env=_env_for(release, keras, onednn, threads),
                           timeout_s=timeout_s, stall_timeout_s=timeout_s, python=release.python)
    imp = done.last("import") or {}
    events = [e for e in done.events if isinstance(e, dict)]
    recs = []
    for j in jobs:
        mine = [e for e in events if e.get("model") == j["model"]]
        failed = next((e for e in mine if e.get("event") == "model" and e.get("status") == "failed"), None)
        finished = any(e.get("event") == "model_done" for e in mine)
        reason = ""
        if imp.get("status") == "failed":
            reason = imp.get("reason", "")
        elif failed is not None:
            reason = failed["reason"]
        elif not finished:
            reason = f"child failed: {done.failure()}" if not done.ok else "child ended before this model"
        rss = next((e.get("calls", {}) for e in mine if e.get("event") == "rss"), {})
        recs.append({"key": j["key"], "run": run, "release": release.label, "keras": keras, "model": j["model"],
                     "onednn": onednn, "ok": not reason, "reason": reason, "seconds": round(done.seconds, 2),
                     "cpu_s": (done.last("done") or {}).get("cpu_s"), "import": imp,
                     "paths": {e["path"]: e for e in mine if e.get("event") == "path"},
                     "rss": rss, "npz": j["out"] if not reason else ""})
    return recs


def _median(values):
    vals = [float(v) for v in values if v is not None and np.isfinite(float(v))]
    return float(np.median(vals)) if vals else np.nan


def pool(recs: list[dict], path: str, ref: np.ndarray, results: Path, samples_rel: str, min_runs: int) -> dict:
    """One versions.csv row's measured part from the runs of one configuration and path."""
    events = [r["paths"].get(path) for r in recs if r["ok"]]
    events = [e for e in events if e is not None]
    row = {"import_s": _median(r["import"].get("import_s") for r in recs if r["ok"])}
    bad = next((e for e in events if e.get("status") != "ok"), None)
    if not events or bad is not None:
        why = bad["reason"] if bad is not None else next((r["reason"] for r in recs if r["reason"]), "did not run")
        return dict(row, status="failed", reason=why)
    runs, checks = [], []
    for r in (r for r in recs if r["ok"]):
        with np.load(r["npz"]) as npz:
            if f"samples__{path}" in npz.files:
                runs.append(npz[f"samples__{path}"])
            checks.append(parity.compare(npz[f"out__{path}"], ref[: len(npz[f"out__{path}"])], "float32"))
    first = checks[0]
    problems = sorted({p for c in checks for p in c["problems"]})
    row.update(parity="fail" if problems else "pass", logit_rel_err=max(c["logit_rel_err"] for c in checks),
               logit_cos=min(c["logit_cos"] for c in checks), top1_decisive=first["top1_decisive"],
               n_decisive=first["n_decisive"], n_parity=len(ref),
               prepare_s=_median(e.get("prepare_s") for e in events),
               first_call_s=_median(e.get("first_call_s") for e in events),
               status="failed" if problems else "ok", reason=("parity: " + "; ".join(problems)) if problems else "")
    runs = [a for a in runs if len(a)]
    if runs:
        lengths = [len(a) for a in runs]
        allv = np.concatenate(runs)
        s = stats.summarize(allv, lengths, min_runs=min_runs)
        row.update({k: s[k] for k in ("runs", "n", "median_us", "ci_lo_us", "ci_hi_us", "p90_us", "min_us",
                                      "run_spread", "unstable", "unstable_reason")})
        target = results / samples_rel
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(target, samples_ns=allv, run_lengths=np.asarray(lengths, dtype=np.int64))
        row["samples_file"] = samples_rel
    return row


def rows_for(release: Release, keras: str, model: str, onednn: bool, recs: list[dict], paths, ref, results: Path,
             machine: str, threads: int, min_runs: int) -> list[dict]:
    imp = next((r["import"] for r in recs if r["ok"]), {}) or {}
    rss = next((r["rss"] for r in recs if r["rss"]), {})
    base = {"machine": machine, "release": release.label, "tensorflow": imp.get("tensorflow") or
            release.info.get("tensorflow", ""), "keras": keras, "keras_version": imp.get("keras", ""),
            "numpy": imp.get("numpy", ""), "env": release.env, "model": model,
            "weights_sha": recs[0]["key"].rsplit("|", 1)[1] if recs else "", "onednn": "on" if onednn else "off",
            "threads": threads, "batch": 1, "date": time.strftime("%Y-%m-%d")}
    out = []
    for path in paths:
        rel = f"samples/versions/{release.label}-keras{keras}/{model}/{path}__onednn-{base['onednn']}.npz"
        row = dict(base, path=path, **pool(recs, path, ref, results, rel, min_runs))
        if path == "predict":
            calls = sorted(rss, key=int)
            if calls:
                row.update(rss_1_mb=rss[calls[0]], rss_n_mb=rss[calls[-1]], rss_n_calls=int(calls[-1]))
        out.append(row)
    return out


def plan_configs(releases, models, onednn_off_paths, onednn_off_models=None) -> list[tuple]:
    """(release, keras, onednn, models) in the order children run within one round: one child per tuple, all its
    models in one process; oneDNN off only for the models in `onednn_off_models` (None: every model)."""
    off = [m for m in models if onednn_off_models is None or m in onednn_off_models] if onednn_off_paths else []
    out = []
    for rel in releases:
        if rel.python is None:
            continue
        for keras in rel.kerases:
            out.append((rel, keras, True, list(models)))
            if off:
                out.append((rel, keras, False, off))
    return out


def run(releases, models=MODELS, *, runs: int = 2, paths=PATHS, onednn_off_paths=ONEDNN_OFF_PATHS,
        onednn_off_models=ONEDNN_OFF_MODELS, threads: int = 1,
        budget_s: float = 0.3, rounds: int = 5, min_samples: int = 20, rss_calls=(1, 200), n_parity: int = 32,
        out_dir=None, machine=None, data_dir=None, timeout_s: float = 1800, weights=None, progress=print) -> pd.DataFrame:
    """Measure `releases` (list of :class:`Release`) x models x paths into ``<results>/versions.csv``.

    `weights`: {model: engine .npz} (default: exported from data/models/<model>.keras). Children already in
    ``versions.runs.jsonl`` are not run again. Returns the rows written.
    """
    machine = machine or envinfo.machine_id()
    results = Path(out_dir) if out_dir else config.results_dir(machine, data_dir)
    results.mkdir(parents=True, exist_ok=True)
    work = results / "versions.work"
    work.mkdir(exist_ok=True)
    log_path = results / "versions.runs.jsonl"
    done = load_log(log_path)
    weights = dict(weights or {m: weights_file(m, data_dir) for m in models})
    refs, inputs = {}, {}
    for m in models:
        x, ref = reference(Path(weights[m]), m, n_parity, data_dir)
        inputs[m] = work / f"inputs__{m}__{sha12(weights[m])}__n{n_parity}.npz"
        if not inputs[m].exists():
            np.savez(inputs[m], x=x)
        refs[m] = ref
    configs = plan_configs(releases, models, onednn_off_paths, onednn_off_models)
    t_stage = time.perf_counter()
    for r in range(runs):
        shift = r % max(1, len(configs))
        for rel, keras, onednn, ms in configs[shift:] + configs[:shift]:
            todo = [m for m in ms if (config_key(rel.label, keras, m, onednn, sha12(weights[m])), r) not in done]
            if not todo:
                continue
            recs = run_one(rel, keras, onednn, r, models=todo, weights=weights, inputs=inputs, work=work,
                           paths=paths if onednn else onednn_off_paths, threads=threads, budget_s=budget_s,
                           rounds=rounds, min_samples=min_samples, rss_calls=rss_calls if (r == 0 and onednn) else (),
                           timeout_s=timeout_s)
            with open(log_path, "a") as f:
                for rec in recs:
                    f.write(json.dumps(rec, default=float) + "\n")
            for rec in recs:
                done[(rec["key"], r)] = rec
            if progress:
                bad = [f"{rec['model']}: {rec['reason']}" for rec in recs if not rec["ok"]]
                progress(f"{rel.label} keras {keras} oneDNN {'on' if onednn else 'off'} run {r + 1}/{runs}, "
                         f"{len(recs)} models: {'; '.join(bad) or 'ok'} ({recs[0]['seconds']:.0f} s)")
    rows = []
    for rel in releases:
        if rel.python is None:
            rows.append({"machine": machine, "release": rel.label, "env": rel.env, "status": "failed",
                         "reason": rel.reason, "date": time.strftime("%Y-%m-%d")})
    for rel, keras, onednn, ms in configs:
        for model in ms:
            key = config_key(rel.label, keras, model, onednn, sha12(weights[model]))
            recs = [done[(key, r)] for r in range(runs) if (key, r) in done]
            rows += rows_for(rel, keras, model, onednn, recs, paths if onednn else onednn_off_paths, refs[model],
                             results, machine, threads, min_runs=min(runs, stats.MIN_RUNS))
    df = pd.DataFrame(rows, columns=COLUMNS)
    target = results / "versions.csv"
    atomic_write_text(target, df.to_csv(index=False))
    envinfo.write_meta(target, extra={
        "stage": "versions", "threads": threads, "batch": 1, "runs": runs, "budget_s": budget_s, "rounds": rounds,
        "min_samples": min_samples, "rss_calls": list(rss_calls), "n_parity": n_parity, "paths": list(paths),
        "onednn_off_paths": list(onednn_off_paths), "models": list(models),
        "onednn_off_models": list(models if onednn_off_models is None else onednn_off_models), "stage_s": round(time.perf_counter()
                                                                                                - t_stage, 1),
        "parity_rule": parity.criterion_text("float32"), "reference": "NumPy engine (.npz) logits",
        "ci_method": interval.CI_METHOD, "stability_rule": stats.STABILITY_RULE,
        "releases": {rel.label: {"env": rel.env, "reason": rel.reason, **{k: v for k, v in rel.info.items()
                                                                         if k not in ("status", "reused")}}
                     for rel in releases}}, threads=threads)
    return df
