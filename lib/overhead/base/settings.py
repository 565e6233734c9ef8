"""The study's design as one typed, frozen value: :class:`Settings`, one section per stage.

The defaults are the full study's (``params/full.yaml`` spells the same values out); ``params/quick.yaml`` is
the small run. ``make`` hands the yaml to papermill (``-f``): its one top-level key ``study`` becomes the
notebooks' ``study`` parameter, and each notebook builds ``Settings.from_dict(study, data_dir=..., ...)``.
Experiments take the Settings (or the section they need) instead of keyword arguments. A bad key or value
raises :class:`SettingsError`, one line naming the key and the fix.

"1 and all cores" is computed here only: :func:`cores`, :func:`thread_settings`.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

from overhead.base import config

PARAMS = config.ROOT / "params"
FULL_YAML, QUICK_YAML = PARAMS / "full.yaml", PARAMS / "quick.yaml"


class SettingsError(ValueError):
    """A bad setting; the message is one line naming the key and the fix."""


def cores() -> int:
    """All cores of this machine (the "all" of "1 and all cores")."""
    return os.cpu_count() or 1


def thread_settings(threads=None) -> list[int]:
    """The thread counts to run, sorted and distinct: as given (a None entry means all cores), else 1 and all cores."""
    out = sorted({cores() if t is None else int(t) for t in threads}) if threads else sorted({1, cores()})
    if out[0] < 1:
        raise SettingsError(f"thread counts must be positive integers, got {out}; e.g. threads: [1, null]")
    return out


def merged(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` applied, sections (dicts) merged key by key."""
    out = dict(base)
    for k, v in (overrides or {}).items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@dataclass(frozen=True)
class Train:
    models: tuple | None = None          # None: the whole ladder
    epochs: int = 6                      # MNIST-sized plain models
    resnet_epochs: int = 2
    batch_size: int = 64
    seed: int = 0
    max_train_flops: float | None = None  # forward FLOPs per image above which a model keeps its seeded init
    max_train_samples: int = 10000
    train_flops_budget: float = 6e12     # training FLOPs per model; large models see fewer digits
    min_train_samples: int = 256
    augment_max_flops: float = 2e6       # models up to this size also see one-pixel shifts (9x data)


@dataclass(frozen=True)
class Bench:
    models: tuple | None = None          # None: the whole ladder
    backends: tuple | None = None        # None: every backend
    batches: tuple = (1, 8, 64)          # the smallest everywhere; the others on big_batch_models x big_batch_backends
    threads: tuple | None = None         # None: 1 and all cores
    budget_s: float = 0.05               # timing budget per configuration and run
    runs: int = 3                        # fresh worker processes per configuration
    max_runs: int = 5                    # more (all kept) while a configuration's runs disagree
    max_flops_per_call: float = 8e9      # configurations above are skipped, with the reason
    parity_n: int = 128
    parity_max_s: float = 0.5
    gemm_n: int | None = 2048            # None: no gemm.csv
    big_batch_models: tuple | None = ("cnn_seed", "cnn_mnist")  # None: all
    big_batch_backends: tuple | None = (
        "numpy", "keras.predict", "keras.predict_on_batch", "tf.function", "tf.function.xla", "tf_keras.predict",
        "jax.jit", "litert", "litert.int8", "onnxruntime", "openvino")
    # variants and "who pays?" paths: on four models spanning the ladder only
    secondary_backends: tuple = ("numpy.plain", "tf1.session", "tf_keras.predict_on_batch", "tf_keras.call",
                                 "keras.jax.predict", "keras.jax.call", "jax.jit", "keras.numpy.predict",
                                 "litert.builtin", "litert.fp16")
    secondary_models: tuple = ("mlp_tiny", "cnn_seed", "cnn_mnist", "resnet_mnist")
    threads_models: tuple | None = ("mlp_tiny", "cnn_seed", "resnet_mnist")  # thread settings above 1; None: all
    distortion: bool = True              # each backend alone vs interleaved with the NumPy engine
    idle_gap: bool = True
    idle_models: tuple = ("cnn_seed", "resnet_mnist")
    ceilings: bool = True
    blas_ab: bool = True

    @property
    def models_for(self) -> dict:
        """backend -> the only models it runs on."""
        return {b: self.secondary_models for b in self.secondary_backends}


@dataclass(frozen=True)
class Startup:
    models: tuple = ("cnn_seed", "resnet18_224px")
    backends: tuple | None = ("numpy", "numpy.plain", "keras.predict", "tf.function", "tf.savedmodel", "tf1.session",
                              "tf_keras.predict", "keras.jax.predict", "litert", "onnxruntime", "openvino")
    repeats: int = 3                     # fresh processes per model x backend
    memory_loop: bool = True
    memory_loop_calls: tuple | None = (1, 1000, 2000)  # None: memloop's quick default
    memory_loop_backends: tuple | None = None  # None: memloop.BACKENDS
    steady_calls: int = 200
    threads: int | None = None           # None: all cores
    timeout_s: float = 600
    spread_runs: int = 10                # fresh processes per variant (between-run spread)
    spread_budget_s: float = 0.5
    spread_variants: tuple | None = None  # None: every variant (spread.VARIANTS)


@dataclass(frozen=True)
class Pipeline:
    models: tuple = ("cnn_seed", "resnet18_32px", "resnet18_224px")
    backends: tuple | None = None
    calls: int = 200
    budget_s: float = 1.5
    breakdown_models: tuple = ("cnn_seed", "resnet18_224px")
    breakdown_backends: tuple | None = None  # None: keras.predict, keras.predict_on_batch, keras.call, tf.function
    breakdown_budget_s: float = 4.0
    threads: int | None = None


@dataclass(frozen=True)
class Loadgen:
    models: tuple = ("cnn_seed", "cnn_medium", "resnet18_32px")
    paths: tuple | None = None           # Single-Stream; None: every path (quick: loadgen.QUICK_PATHS)
    server_paths: tuple | None = None    # None: loadgen.SERVER_PATHS
    threads: tuple = (1, None)           # None: all cores
    scenarios: tuple = ("SingleStream", "Server")
    bounds_ms: float | dict | None = None  # ms, or {model: p99 bound}; None: 10 ms small, 100 ms large models
    qps: tuple | None = None             # fixed Server points instead of the bisection
    strategies: tuple = ("threads", "processes")
    strategy_paths: tuple | None = None
    workers: int | None = None           # None: all cores
    batching_paths: tuple | None = None
    http_paths: tuple | None = None
    bisect: dict | None = None           # overrides of loadgen_core.BISECT
    runs: dict = field(default_factory=lambda: {  # LoadGen run lengths
        "ss_min_duration_ms": 500, "ss_min_queries": 64, "server_min_duration_ms": 500, "server_min_queries": 1024,
        "server_max_duration_ms": 12000, "confirm_min_duration_ms": 10000, "confirm_min_queries": 1024,
        "confirm_max_duration_ms": 30000, "wrk_duration_s": 4})


@dataclass(frozen=True)
class Versions:
    releases: tuple | None = None        # None: all (versions_env.RELEASES)
    models: tuple = ("logreg", "cnn_seed", "resnet_mnist", "resnet18_32px")
    paths: tuple | None = None
    onednn_off_paths: tuple | None = None
    onednn_off_models: tuple | None = None  # None: versions.ONEDNN_OFF_MODELS
    runs: int = 2                        # fresh processes per configuration (params/full.yaml says why)
    budget_s: float = 0.3
    rss_calls: tuple = (1, 200)


SECTIONS = {"train": Train, "bench": Bench, "startup": Startup, "pipeline": Pipeline, "loadgen": Loadgen,
            "versions": Versions}


@dataclass(frozen=True)
class Settings:
    quick: bool = False
    data_dir: Path | None = None         # None: config.data_dir()
    machine: str | None = None           # None: envinfo.machine_id()
    extra_models: tuple = ()             # paths of the user's own models
    train: Train = field(default_factory=Train)
    bench: Bench = field(default_factory=Bench)
    startup: Startup = field(default_factory=Startup)
    pipeline: Pipeline = field(default_factory=Pipeline)
    loadgen: Loadgen = field(default_factory=Loadgen)
    versions: Versions = field(default_factory=Versions)

    @classmethod
    def from_dict(cls, study: dict | None = None, *, where: str = "the settings", **overrides) -> Settings:
        """Settings from a mapping shaped like params/*.yaml's ``study``; `overrides` win (sections merged)."""
        doc = merged(study or {}, overrides)
        top = {k: v for k, v in doc.items() if k not in SECTIONS}
        _check_keys(cls, top, "", where)
        kw = {k: _coerce(cls, k, v, "", where) for k, v in top.items()}
        for name, section in SECTIONS.items():
            values = doc.get(name) or {}
            if not isinstance(values, dict):
                raise SettingsError(f"{name} must be a mapping of settings, got {values!r}; fix {where}")
            _check_keys(section, values, f"{name}.", where)
            kw[name] = section(**{k: _coerce(section, k, v, f"{name}.", where) for k, v in values.items()})
        out = cls(**kw)
        out.validate(where)
        return out

    @classmethod
    def from_yaml(cls, path=FULL_YAML, **overrides) -> Settings:
        import yaml  # lazy: only reading a params file needs PyYAML (cold-start children import this module)

        path = Path(path)
        doc = yaml.safe_load(path.read_text()) or {}
        if set(doc) != {"study"}:
            raise SettingsError(f"{path} must hold one top-level key, study; found {sorted(doc)}")
        return cls.from_dict(doc["study"], where=str(path), **overrides)

    def validate(self, where: str = "the settings") -> None:
        b = self.bench
        if not 1 <= b.runs <= b.max_runs:
            raise SettingsError(f"bench.runs must be 1..bench.max_runs, got {b.runs} and {b.max_runs}; fix {where}")
        for key, value in (("bench.budget_s", b.budget_s), ("bench.parity_max_s", b.parity_max_s),
                           ("pipeline.budget_s", self.pipeline.budget_s), ("versions.budget_s", self.versions.budget_s),
                           ("pipeline.breakdown_budget_s", self.pipeline.breakdown_budget_s),
                           ("startup.spread_budget_s", self.startup.spread_budget_s),
                           ("startup.timeout_s", self.startup.timeout_s)):
            if not value > 0:
                raise SettingsError(f"{key} must be > 0 seconds, got {value!r}; fix {where}")
        for key, values in (("bench.batches", b.batches), ("bench.threads", b.threads or ()),
                            ("loadgen.threads", [t for t in self.loadgen.threads if t is not None])):
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values) or (
                    key == "bench.batches" and not values):
                raise SettingsError(f"{key} must be positive integers, got {list(values)}; fix {where}")

    def replace(self, **changes) -> Settings:
        """A copy with `changes` (top-level fields or whole sections: ``bench=dataclasses.replace(...)``)."""
        return dataclasses.replace(self, **changes)


def _check_keys(cls, values: dict, prefix: str, where: str) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    for k in values:
        if k not in known and not (not prefix and k in SECTIONS):
            raise SettingsError(f"unknown setting {prefix}{k}; valid keys: {', '.join(known)}; fix {where}")


def _coerce(cls, key: str, value, prefix: str, where: str):
    """yaml lists -> tuples, ints -> floats where a float is wanted; anything of the wrong kind is an error."""
    hint = typing.get_type_hints(cls)[key]
    args = typing.get_args(hint) or (hint,)
    if value is None:
        if type(None) in args:
            return None
        raise SettingsError(f"{prefix}{key} cannot be null; give a value or drop the key; fix {where}")
    if tuple in args and isinstance(value, (list, tuple)):
        return tuple(value)
    if float in args and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if Path in args and isinstance(value, (str, Path)):
        return Path(value).expanduser().resolve()
    if any(a is not type(None) and isinstance(value, a) and not (isinstance(value, bool) and a is int) for a in args):
        return value
    names = " or ".join("null" if a is type(None) else a.__name__ for a in args)
    raise SettingsError(f"{prefix}{key} must be {names}, got {value!r}; fix {where}")
