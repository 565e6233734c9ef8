"""The sweep's plan: which configurations to measure, computed from the parameters alone (no process, no file).

:func:`plan` turns the parameters of :func:`overhead.experiments.sweep.run` into a :class:`Plan`: the backends
and the worker-process kind of each, the thread settings (:func:`overhead.base.settings.thread_settings`), the batch sizes, and per
model the (backend, batch, threads) keys still to measure. The sweep's executor only runs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from overhead.base.settings import thread_settings


def wanted(model: str, backend: str, batch: int, smallest: int, big_batch_models=None,
           big_batch_backends=None, models_for=None) -> bool:
    """Batch 1 (the smallest batch) on every model and backend; larger ones only on the chosen few.

    `models_for` maps a backend to the only models it runs on (backends not in it run on every model).
    """
    if models_for and backend in models_for and model not in models_for[backend]:
        return False
    if batch == smallest:
        return True
    return ((big_batch_models is None or model in big_batch_models)
            and (big_batch_backends is None or backend in big_batch_backends))


@dataclass
class Plan:
    names: list  # backends, in registry order
    kind: dict  # backend -> worker-process kind ("tf", "jax", "keras-numpy")
    kinds: list  # the kinds in use, in the order their workers start
    threads: list  # thread settings, interleaved in time
    batches: list
    keys: dict = field(default_factory=dict)  # model -> [(backend, batch, threads)] still to measure

    def total(self) -> int:
        return sum(len(k) for k in self.keys.values())


def plan(models, names, kind_of: dict, batch_sizes, threads=None, *, done=frozenset(), kind_order=(),
         big_batch_models=None, big_batch_backends=None, models_for=None, threads_models=None) -> Plan:
    """The configurations to measure. `models`: model names; `kind_of`: backend -> process kind;
    `done`: (model, backend, batch, threads) already in bench.csv (skipped); `threads_models`: the models
    that run the thread settings above the first (None: all)."""
    names = list(names)
    kind = {n: kind_of[n] for n in names}
    kinds = [k for k in dict.fromkeys([*kind_order, *kind.values()]) if k in kind.values()]
    threads = thread_settings(threads)
    batches = sorted({int(b) for b in batch_sizes})
    keys = {m: [(b, n, t) for t in threads for n in batches for b in names
                if t == threads[0] or threads_models is None or m in threads_models
                if wanted(m, b, n, batches[0], big_batch_models, big_batch_backends, models_for)
                and (m, b, n, t) not in done] for m in models}
    return Plan(names, kind, kinds, threads, batches, keys)
