"""The same SUT behind a real HTTP service: FastAPI on uvicorn, on 127.0.0.1 only, driven by a keep-alive client.

Server (``python -m overhead.experiments.loadgen_http serve``, a :class:`~overhead.experiments.loadgen_jobs.ServeJob`
on stdin, read by :func:`overhead.harness.jobs.child_entry`): a fresh process that
fixes its threads, prepares the path (or the no-op path), binds 127.0.0.1 and prints one ``ready`` line on
its claimed stdout. With N worker processes (as ``uvicorn --workers N``) each one binds the same port with
SO_REUSEPORT and the kernel spreads the connections. Three payloads (:data:`PAYLOADS`):

- ``pydantic``: ``POST /predict``, JSON ``{"inputs": [...]}`` validated by a pydantic model, answered with
  ``{"outputs": [...]}`` -- the tutorial service;
- ``json``: ``POST /predict/json``, the same body read with ``json.loads`` + ``np.asarray``;
- ``binary``: ``POST /predict/bin``, the raw float32 bytes of the input, answered with the output's bytes.

The first version's p99 was 100x its p50 at half its capacity: a stall, not a queue. Its candidate causes
that are ours are removed here (which one dominated was not measured separately; the stage measures the
p99 at half capacity after the fixes): the sync endpoint handed every request to FastAPI's thread pool and
back (two thread switches fighting for the GIL with the event loop) and took a lock around the model -- the
endpoints are now ``async`` and call the model on the event loop (one call at a time per process, no lock
needed); a full garbage collection walks the TF process's whole heap (tens of ms) -- the heap built while
loading is frozen (``gc.freeze``) before serving; Nagle's algorithm holds the second write of a request or
response until the peer's delayed ACK (~40 ms) -- every socket sets TCP_NODELAY and the client sends headers
and body in one write. ``GET /stats`` gives the process's CPU seconds and pid (the client asks it on each of
its connections to spread them evenly over the worker processes).

Client (:class:`HttpPool`, inside the LoadGen child): keep-alive connections driven by one client thread
(:mod:`overhead.experiments.loadgen_client`, raw sockets: ``http.client`` cost 0.4-0.5 ms of CPU per query),
each query's whole request built once per sample before the run (as a load tester replays recorded requests),
so the client's own encoding stays off the measurement. Client and server share the machine's cores: the
table records both processes' CPU time per query. A C load generator
(``wrk``, :mod:`overhead.experiments.loadgen_wrk`) cross-checks the same endpoints.
"""
# no `from __future__ import annotations`: FastAPI reads the endpoint's annotation (a local class) at def time
import gc
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np

from overhead import backends as bk
from overhead.experiments.loadgen_client import HOST, ClientPool, Connection, request_bytes
from overhead.experiments.loadgen_core import (
    NOOP,
    _runner,
    process_kind,
    service_time_s,
)
from overhead.experiments.loadgen_jobs import ServeJob
from overhead.harness import jobs
from overhead.harness.child import child_env, error_text

READY_TIMEOUT_S = 600


PAYLOADS = {"pydantic": "/predict", "json": "/predict/json", "binary": "/predict/bin"}
PAYLOAD_TEXT = {"pydantic": "pydantic JSON", "json": "plain JSON", "binary": "binary float32"}


def make_app(fn, input_shape=None):
    """The FastAPI app around `fn(x: np.ndarray) -> np.ndarray`, one route per payload (:data:`PAYLOADS`)."""
    from fastapi import FastAPI, Request, Response
    from pydantic import BaseModel

    class PredictRequest(BaseModel):
        inputs: list

    app = FastAPI(title="overhead loadgen SUT")
    shape = tuple(input_shape) if input_shape else None

    @app.post(PAYLOADS["pydantic"])
    async def predict(req: PredictRequest):
        x = np.asarray(req.inputs, dtype=np.float32)
        return {"outputs": np.asarray(fn(x)).tolist()}

    @app.post(PAYLOADS["json"])
    async def predict_json(request: Request):
        x = np.asarray(json.loads(await request.body())["inputs"], dtype=np.float32)
        return Response(json.dumps({"outputs": np.asarray(fn(x)).tolist()}), media_type="application/json")

    @app.post(PAYLOADS["binary"])
    async def predict_bin(request: Request):
        x = np.frombuffer(await request.body(), dtype=np.float32)
        x = x.reshape((-1, *shape)) if shape else x.reshape(1, -1)
        y = np.ascontiguousarray(fn(x), dtype=np.float32)
        return Response(y.tobytes(), media_type="application/octet-stream")

    @app.get("/stats")
    async def stats():
        return {"cpu_s": time.process_time(), "pid": os.getpid()}

    return app


def free_socket(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1 (`port` 0: a free one); SO_REUSEPORT lets N worker processes share it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # accepted connections inherit it (Linux): the response's headers and body are separate writes, and
    # Nagle's algorithm would hold the second until the client's delayed ACK (~40 ms on loopback)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, int(port)))
    sock.listen(2048)  # before the ready line: a client may connect before uvicorn's loop starts accepting
    return sock


def serve(job: ServeJob, proto) -> int:
    """Prepare the path, print {"event": "ready", "port": ...} on `proto`, serve until terminated."""

    try:

        kind = job.process
        bk.enter_process(kind)
        bk.set_threads(int(job.threads))
        if kind == "tf" and job.path != NOOP:  # the no-op server measures the HTTP stack alone: no TF heap
            bk.configure_tf()
        fn = _runner(job, 1)
        x = np.zeros((1, *job.input_shape), np.float32)
        fn(x), fn(x)
        import uvicorn

        app = make_app(fn, job.input_shape)
        sock = free_socket(int(job.port))
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        gc.collect()
        gc.freeze()  # what loading built is never garbage: later full collections skip it
    except Exception as exc:
        proto.write(json.dumps({"event": "fatal", "error": error_text(exc)}) + "\n")
        proto.flush()
        return 3
    proto.write(json.dumps({"event": "ready", "port": sock.getsockname()[1], "pid": os.getpid()}) + "\n")
    proto.flush()
    server.run(sockets=[sock])
    return 0


class HttpServer:
    """The server processes of one configuration (`workers` uvicorn processes on one port; started,
    waited for, terminated)."""

    def __init__(self, job: ServeJob, input_shape, workers: int = 1):

        job = replace(job, process=process_kind(job.path), input_shape=tuple(int(d) for d in input_shape))
        self.procs, self.pids, self.port = [], [], 0
        try:
            for _ in range(max(int(workers), 1)):
                self.pids.append(self._start(replace(job, port=self.port)))
        except Exception:
            self.stop()
            raise
        self.url = f"http://{HOST}:{self.port}"

    def _start(self, job: ServeJob) -> int:
        proc = subprocess.Popen([sys.executable, "-m", "overhead.experiments.loadgen_http", "serve"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env=child_env(kind=job.process, threads=int(job.threads)), text=True)  # a service: it runs until terminated
        self.procs.append(proc)
        proc.stdin.write(jobs.to_json(job))
        proc.stdin.close()
        ready = None
        t_end = time.monotonic() + READY_TIMEOUT_S
        for line in proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") in ("ready", "fatal"):
                ready = ev
                break
            if time.monotonic() > t_end:
                break
        if not ready or ready["event"] != "ready":
            raise RuntimeError(f"HTTP server did not start: {(ready or {}).get('error', 'no ready line')}")
        self.port = int(ready["port"])
        return int(ready["pid"])

    def cpu_s(self) -> float:
        import psutil

        total = 0.0
        for pid in self.pids:
            t = psutil.Process(pid).cpu_times()
            total += float(t.user + t.system)
        return total

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def encode(payload: str, xb: np.ndarray) -> tuple[bytes, str]:
    """The request body of one query and its content type."""
    if payload == "binary":
        return np.ascontiguousarray(xb, dtype=np.float32).tobytes(), "application/octet-stream"
    return json.dumps({"inputs": xb.tolist()}).encode(), "application/json"


def decode(payload: str, body: bytes, n: int) -> np.ndarray:
    if payload == "binary":
        return np.frombuffer(body, dtype=np.float32).reshape(n, -1)
    return np.asarray(json.loads(body)["outputs"], dtype=np.float32)


class HttpPool:
    """The HTTP client SUT: LoadGen's queries posted as one payload over `clients` keep-alive connections
    (:class:`~overhead.experiments.loadgen_client.ClientPool`) to the configuration's own server of
    `server_workers` processes."""

    def __init__(self, lg, item: dict, job: ServeJob, x, recorder):

        workers = int(item.get("server_workers") or 1)
        self.server = HttpServer(job, x.shape[1:], workers=workers)
        self.x, self.payload = x, item.get("payload") or "pydantic"
        self.held = (f"one runner per server process ({workers}), async endpoint, "
                     f"{PAYLOAD_TEXT[self.payload]}")
        route, port = PAYLOADS[self.payload], self.server.port
        # every sample's whole request, built once before the run (as a load tester replays recorded requests)
        self.requests = [request_bytes(route, *encode(self.payload, x[i:i + 1]), port) for i in range(len(x))]
        try:
            self.pool = ClientPool(lg, port, self.requests, lambda body: decode(self.payload, body, 1), recorder,
                                   connections=int(item.get("clients") or 1), workers=workers)
        except Exception:
            self.server.stop()
            raise
        self.issue, self.flush = self.pool.issue, self.pool.flush
        self.conn_split = self.pool.split.text  # connections per server process, e.g. "2+2" (the points log)
        self._cpu0 = self.server.cpu_s()

    def probe(self) -> float:
        """Median round trip of one query, on a connection of its own (the pool's are the client thread's)."""
        conn = Connection(self.server.port)
        try:
            return service_time_s(lambda i: decode(self.payload, conn.roundtrip(self.requests[int(i[0])]), 1),
                                  np.arange(len(self.requests)))
        finally:
            conn.close()

    def mark(self) -> None:
        """Before each run: the connections spread evenly again (an idle one the server closed was reopened at
        random), then the server's CPU time is read."""
        self.conn_split = self.pool.rebalance().text
        self._cpu0 = self.server.cpu_s()

    def server_cpu_s(self) -> float:
        return self.server.cpu_s() - self._cpu0

    def stop(self) -> None:
        try:
            self.pool.stop()
        finally:
            self.server.stop()


def main(argv=None) -> int:
    return jobs.child_entry(ServeJob, serve, argv, command="serve")  # a ServeJob on stdin


if __name__ == "__main__":
    sys.exit(main())
