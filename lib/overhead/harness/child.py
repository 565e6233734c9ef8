"""The one way the study runs a child process, and what every child shares.

Parent side: :func:`run_child` starts ``python -m MODULE ARGS`` with :func:`child_env` (the package on
PYTHONPATH, the thread environment, the Keras backend of its process kind), optionally a JSON job on
stdin, and reads the JSON lines the child writes on its protocol stdout, as they come (``on_event``);
it ends the child on a stall (no line for ``stall_timeout_s``) or at ``timeout_s``, and returns a
:class:`ChildResult` whose :meth:`~ChildResult.failure` is the one-line reason when it did not finish.
Restarting after a crash and resuming from finished results is the caller's (it knows what a finished
unit is: a sweep row, an idle-gap path, a bisection point).

Child side: :func:`thread_env` before any runtime is imported, :func:`claim_stdout` so that whatever
native libraries print cannot corrupt the protocol, :func:`error_text` for one-line reasons.
"""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# a worker-process kind (Backend.process) -> the KERAS_BACKEND Keras 3 must read at its import
KERAS_BACKEND_OF = {"tf": "tensorflow", "jax": "jax", "keras-numpy": "numpy"}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def thread_env(threads: int, *, override: bool = True) -> None:
    """Set the thread-count environment (BLAS, OpenMP, TF intra-op = threads, TF inter-op = 1) of THIS process.

    Takes effect for runtimes imported afterwards; ``override=False`` keeps values already set. Only for code that
    fixes threads in its own process (``backends.set_threads``, ``experiments.enginebench``); a child gets the same
    variables from ``run_child(threads=)`` / :func:`child_env` instead.
    """
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads}")
    for var in THREAD_VARS:
        if override or var not in os.environ:
            os.environ[var] = str(threads)
    if override or "TF_NUM_INTEROP_THREADS" not in os.environ:
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def claim_stdout():
    """A line-buffered writer on the original stdout; fd 1 and sys.stdout now go to stderr."""
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def error_text(exc: BaseException, limit: int = 300) -> str:
    """One line naming the exception type and the first line of its message, at most `limit` characters."""
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".strip().rstrip(":")
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- the parent's runner

LIB = str(Path(__file__).resolve().parents[2])  # lib/, put first on the child's PYTHONPATH


def child_env(*, threads: int | None = None, kind: str = "tf", env: dict | None = None, data_dir=None) -> dict:
    """The environment of a child: the package importable, TF quiet, unbuffered, Keras backend of `kind`,
    (when `threads` is given) the thread variables of :func:`thread_env`, and (when `data_dir` is given) the
    data tree the child reads (OVERHEAD_DATA, read by :func:`overhead.base.config.data_dir`)."""
    out = dict(os.environ if env is None else env)
    if data_dir is not None:
        out["OVERHEAD_DATA"] = str(Path(data_dir).resolve())
    out["PYTHONPATH"] = os.pathsep.join([LIB, *[p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p and p != LIB]])
    out.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out["PYTHONUNBUFFERED"] = "1"
    if kind not in KERAS_BACKEND_OF:
        raise ValueError(f"unknown process kind {kind!r}; valid kinds: {', '.join(KERAS_BACKEND_OF)}")
    out["KERAS_BACKEND"] = KERAS_BACKEND_OF[kind]
    if threads is not None:
        threads = int(threads)
        if threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads}")
        out.update({v: str(threads) for v in THREAD_VARS}, TF_NUM_INTEROP_THREADS="1")
    return out


def signal_name(rc: int) -> str:
    try:
        return f"signal {-rc}, {signal.Signals(-rc).name}"
    except ValueError:
        return f"signal {-rc}"


@dataclass
class ChildResult:
    returncode: int | None
    events: list = field(default_factory=list)  # every JSON value the child wrote on its protocol stdout
    stderr_tail: str = ""
    timed_out: bool = False
    stalled: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not (self.timed_out or self.stalled)

    def last(self, event: str | None = None):
        """The last JSON value written (the last dict whose "event" is `event`, when given), or None."""
        for e in reversed(self.events):
            if event is None or (isinstance(e, dict) and e.get("event") == event):
                return e
        return None

    def failure(self, limit: int = 300) -> str:
        """One line saying why the child did not finish ("" when it did)."""
        if self.ok:
            return ""
        if self.timed_out:
            why = f"timed out after {self.seconds:g} s"
        elif self.stalled:
            why = f"stalled (no progress for {self.seconds:g} s)"
        elif self.returncode is not None and self.returncode < 0:
            why = f"killed by {signal_name(self.returncode)}"
        else:
            why = f"exit status {self.returncode}"
        text = why + (f": {self.stderr_tail}" if self.stderr_tail else "")
        return text if len(text) <= limit else text[: limit - 3] + "..."


def _tail(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][-limit:] if lines else ""


def run_child(module: str, args=(), *, job=None, threads: int | None = None, kind: str = "tf",
              env: dict | None = None, timeout_s: float | None = None, stall_timeout_s: float | None = None,
              on_event=None, stderr_path=None, python: str | None = None, data_dir=None) -> ChildResult:
    """Run ``python -m module *args`` to the end and return what it said (see the module docstring).

    `python`: the interpreter (default: this one); another environment's, e.g. a TensorFlow release's
    own venv (experiments.versions), gets the same package path, protocol and timeouts.

    `job`: a job dataclass (:mod:`overhead.harness.jobs`) or a JSON-able value, written to the child's stdin as
    JSON (then closed). `on_event(value)` is called for
    every JSON line as it arrives; lines that are not JSON (a native library's stray print) are skipped.
    `stderr_path`: append the child's stderr to this file instead of keeping its last line only.
    `data_dir`: the data tree the child reads (its OVERHEAD_DATA); None keeps this process's.
    """
    cmd = [python or sys.executable, "-m", module, *[str(a) for a in args]]
    log = open(stderr_path, "a") if stderr_path else None
    err_chunks: list[str] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if job is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=log or subprocess.PIPE,
                            env=child_env(threads=threads, kind=kind, env=env, data_dir=data_dir), text=True)
    lines: queue.Queue = queue.Queue()
    readers = [threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout] + [lines.put(None)], daemon=True)]
    if log is None:
        readers.append(threading.Thread(target=lambda: err_chunks.extend(proc.stderr), daemon=True))
    for r in readers:
        r.start()
    result = ChildResult(returncode=None)
    try:
        if job is not None:
            try:
                proc.stdin.write(json.dumps(dataclasses.asdict(job) if dataclasses.is_dataclass(job) else job))
                proc.stdin.close()
            except BrokenPipeError:  # the child died at start; its status says why
                pass
        while True:
            waits = [w for w in (stall_timeout_s, None if timeout_s is None else timeout_s - (time.perf_counter() - t0))
                     if w is not None]
            try:
                line = lines.get(timeout=max(0.0, min(waits)) if waits else None)
            except queue.Empty:
                over = timeout_s is not None and time.perf_counter() - t0 >= timeout_s
                result.timed_out, result.stalled = over, not over
                proc.kill()
                break
            if line is None:
                break
            line = line.strip()
            if not line or line[0] not in "[{":
                continue
            try:
                value = json.loads(line)
            except ValueError:
                continue
            result.events.append(value)
            if on_event is not None:
                on_event(value)
        result.returncode = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for r in readers[1:]:
            r.join(timeout=5)
        if log is not None:
            log.close()
    result.seconds = time.perf_counter() - t0 if not (result.timed_out or result.stalled) else (
        timeout_s if result.timed_out else stall_timeout_s)
    result.stderr_tail = _tail("".join(err_chunks))
    return result
