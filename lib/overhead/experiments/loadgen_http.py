"""The same SUT behind a real HTTP service: FastAPI on uvicorn, on 127.0.0.1 only, driven by an httpx client.

Server (``python -m overhead.experiments.loadgen_http serve``, a JSON job on stdin): a fresh process that
fixes its threads, prepares the path (or the no-op path), binds 127.0.0.1 on a free port, prints one
``ready`` line on its claimed stdout and serves ``POST /predict`` -- JSON ``{"inputs": [...]}`` validated
by a pydantic model, as a tutorial service does, answered with ``{"outputs": [...]}`` -- from a sync
endpoint (FastAPI's thread pool) with the one runner behind a lock; ``GET /stats`` gives its CPU seconds.

Client (:class:`HttpPool`, inside the LoadGen child): worker threads with one keep-alive ``httpx.Client``
each serialise the query's digit to JSON, post it and decode the answer. Client and server share the
machine's cores: the table records both processes' CPU time per query.
"""
# no `from __future__ import annotations`: FastAPI reads the endpoint's annotation (a local class) at def time
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np

from overhead import backends as bk
from overhead.experiments.loadgen_core import (
    ThreadPool,
    _runner,
    process_kind,
    service_time_s,
)
from overhead.harness.child import child_env, claim_stdout, error_text

HOST = "127.0.0.1"  # loopback only: nothing is ever exposed beyond this machine
READY_TIMEOUT_S = 600


def make_app(fn):
    """The FastAPI app around `fn(x: np.ndarray) -> np.ndarray` (one call at a time)."""
    from fastapi import FastAPI
    from pydantic import BaseModel

    class PredictRequest(BaseModel):
        inputs: list

    app = FastAPI(title="overhead loadgen SUT")
    lock = threading.Lock()

    @app.post("/predict")
    def predict(req: PredictRequest):
        x = np.asarray(req.inputs, dtype=np.float32)
        with lock:
            y = fn(x)
        return {"outputs": np.asarray(y).tolist()}

    @app.get("/stats")
    def stats():
        return {"cpu_s": time.process_time(), "pid": os.getpid()}

    return app


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it (Linux): the response's headers and body are separate writes, and
    # Nagle's algorithm would hold the second until the client's delayed ACK (~40 ms on loopback)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, 0))
    return sock


def serve(job: dict) -> int:
    """Prepare the path, print {"event": "ready", "port": ...}, serve until terminated."""

    proto = claim_stdout()
    try:

        kind = job.get("process", "tf")
        bk.enter_process(kind)
        bk.set_threads(int(job["threads"]))
        if kind == "tf":
            bk.configure_tf()
        fn = _runner(job["path"], job, 1)
        x = np.zeros((1, *job["input_shape"]), np.float32)
        fn(x), fn(x)
        import uvicorn

        app = make_app(fn)
        sock = free_socket()
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
    except Exception as exc:
        proto.write(json.dumps({"event": "fatal", "error": error_text(exc)}) + "\n")
        proto.flush()
        return 3
    proto.write(json.dumps({"event": "ready", "port": sock.getsockname()[1], "pid": os.getpid()}) + "\n")
    proto.flush()
    server.run(sockets=[sock])
    return 0


class HttpServer:
    """The server process of one configuration (started, waited for, terminated)."""

    def __init__(self, spec: dict, path: str, input_shape):

        job = {k: spec[k] for k in ("model_path", "threads", "artifacts", "out_width") if k in spec}
        job.update(path=path, process=process_kind(path), input_shape=list(input_shape))
        self.proc = subprocess.Popen([sys.executable, "-m", "overhead.experiments.loadgen_http", "serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=child_env(kind=job["process"]), text=True)  # a service: it runs until terminated
        self.proc.stdin.write(json.dumps(job))
        self.proc.stdin.close()
        ready = None
        t_end = time.monotonic() + READY_TIMEOUT_S
        for line in self.proc.stdout:
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
            self.stop()
            raise RuntimeError(f"HTTP server did not start: {(ready or {}).get('error', 'no ready line')}")
        self.port, self.pid = int(ready["port"]), int(ready["pid"])
        self.url = f"http://{HOST}:{self.port}"

    def cpu_s(self) -> float:
        import psutil

        t = psutil.Process(self.pid).cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _poster(url: str):
    import httpx

    # TCP_NODELAY, as urllib3 (requests) sets by default: without it Nagle's algorithm holds the body that
    # follows the headers until the server's delayed ACK, ~40 ms per request on loopback
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    client = httpx.Client(base_url=url, timeout=60.0, transport=transport)

    def post(xb: np.ndarray) -> np.ndarray:
        r = client.post("/predict", json={"inputs": xb.tolist()})
        r.raise_for_status()
        return np.asarray(r.json()["outputs"], dtype=np.float32)

    post.client = client
    return post


class HttpPool:
    """The HTTP client SUT: `workers` client threads posting to the configuration's own server."""

    def __init__(self, lg, item: dict, spec: dict, x, recorder):

        self.server = HttpServer(spec, item["path"], x.shape[1:])
        self.x = x
        try:
            self.posts = [_poster(self.server.url) for _ in range(int(item.get("workers", 1)))]
            self.pool = ThreadPool(lg, self.posts, x, recorder)
        except Exception:
            self.server.stop()
            raise
        self.issue, self.flush = self.pool.issue, self.pool.flush
        self._cpu0 = self.server.cpu_s()

    def probe(self) -> float:

        return service_time_s(self.posts[0], self.x)

    def mark(self) -> None:
        self._cpu0 = self.server.cpu_s()

    def server_cpu_s(self) -> float:
        return self.server.cpu_s() - self._cpu0

    def stop(self) -> None:
        try:
            self.pool.stop()
            for p in self.posts:
                p.client.close()
        finally:
            self.server.stop()


if __name__ == "__main__":
    if sys.argv[1:] != ["serve"]:
        print("usage: python -m overhead.experiments.loadgen_http serve  (JSON job on stdin)", file=sys.stderr)
        sys.exit(2)
    sys.exit(serve(json.loads(sys.stdin.read())))
