"""The jobs of the LoadGen stage's child processes (:mod:`overhead.harness.jobs`): :class:`SutJob` for the System
Under Test child (:mod:`overhead.experiments.loadgen_sut`), :class:`ServeJob` for a process serving one path (the
HTTP server child, :mod:`overhead.experiments.loadgen_http`, and a ``processes`` strategy worker).
"""
from __future__ import annotations

from dataclasses import dataclass

N_INPUTS = 256  # real digits in the Query Sample Library (all held in memory)


@dataclass(frozen=True)
class ServeJob:
    """One path served by a fresh process: the HTTP server child's job (JSON on its stdin,
    ``python -m overhead.experiments.loadgen_http serve``) and a ``processes`` worker's (spawned, pickled).

    `out_width`: the no-op path's output width (the model's); `input_shape`: one sample's shape (the HTTP binary
    payload's); `port`: the HTTP port, 0 for a free one (later server workers join the first one's)."""

    path: str
    model_path: str
    threads: int
    process: str = "tf"
    artifacts: str | None = None
    out_width: int = 10
    input_shape: tuple = ()
    port: int = 0


@dataclass(frozen=True)
class SutJob:
    """One SUT child's job: the `items` (:func:`overhead.experiments.loadgen.plan`'s dicts, run in order) of one
    model at one thread setting in one process kind. `settings`: LoadGen's run lengths (``loadgen.SETTINGS`` and
    the study's); `wrk` / `wrk_reason`: the wrk binary for the wrk items, or why there is none."""

    model: str
    model_path: str
    threads: int
    items: tuple
    settings: dict
    process: str = "tf"
    artifacts: str | None = None
    wrk: str | None = None
    wrk_reason: str = ""
    n_inputs: int = N_INPUTS

    def serving(self, path: str, out_width: int) -> ServeJob:
        """The job of a process serving `path` for this child (a ``processes`` worker, an HTTP server)."""
        return ServeJob(path=path, model_path=self.model_path, threads=int(self.threads), process=self.process,
                        artifacts=self.artifacts, out_width=int(out_width))
