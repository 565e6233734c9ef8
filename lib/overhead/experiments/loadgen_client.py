"""LoadGen's HTTP client: HTTP/1.1 keep-alive over raw sockets, N connections driven by one client thread.

Why not ``http.client`` (or a library on top of it): the client shares the machine's two cores with the server
it measures, so every microsecond of client CPU per query comes off the server's capacity. The first client
(one ``http.client`` connection per worker thread) spent 0.4-0.5 ms of CPU per query: ``getresponse`` parses the
headers with the ``email`` package's parser, builds an ``HTTPResponse`` and ``HTTPMessage`` per request, and each
query crossed two threads (LoadGen's issuing thread -> a worker thread blocked in ``recv`` -> LoadGen), each
crossing a GIL hand-off. Its LoadGen Server maximum over HTTP was 0.21-0.60x of ``wrk``'s on the same no-op
endpoint. urllib3 and requests are built on ``http.client`` (the same parser, plus their own pool and
objects per request); httpx parses with h11, pure Python; none is cheaper per request.

This client does only what the study's service needs: each sample's request (line, headers and body) is
encoded once before the run and sent with one ``sendall``; a response is read as its status line and headers up
to the blank line, then exactly Content-Length body bytes. Anything else -- a status other than 200, no
Content-Length (a chunked body), a connection the server closed -- is a clear :class:`HttpError`, and the query
still completes (LoadGen would otherwise wait for it) with the error recorded, so its row fails.

:class:`ClientPool`: LoadGen's issuing thread sends each query at once on a free connection (or queues it when
all are busy); one client thread waits on every connection with ``selectors``, reads a response as it arrives,
sends the next queued request on that connection and completes the query to LoadGen. One thread hand-off per
query (the response wakes the client thread), as a C load generator's event loop has.

:func:`balance`: N server processes share one SO_REUSEPORT port, the kernel hands each connection to one by a hash
of its address: 4 connections over 2 are 2+2 only 3 times in 8 (4+0 once), and 3+1 saturates early. The pool asks
each connection's process (``GET /stats``: its pid) and reopens connections until the split is even, before a run.
"""
from __future__ import annotations

import collections
import json
import re
import selectors
import socket
import threading
import time
from dataclasses import dataclass

import numpy as np

from overhead.experiments.loadgen_core import Recorder, _complete

HOST = "127.0.0.1"  # loopback only: nothing is ever exposed beyond this machine
RECV_BYTES = 1 << 16
MAX_HEAD = 1 << 16  # a response's status line and headers never exceed this from our server
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")
BALANCE_RECONNECTS = 64  # reopened connections allowed to even the split over the server's processes
BALANCE_S = 30.0  # and the time allowed (a /stats answer: 1 ms on loopback)
STATS_TIMEOUT_S = 5.0
_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*(\d+)[ \t]*(?=\r\n|$)", re.I)


class HttpError(RuntimeError):
    """A response the client cannot use: another status than 200, no Content-Length, or a closed connection."""


def request_bytes(route: str, body: bytes, content_type: str, port: int, host: str = HOST) -> bytes:
    """The whole ``POST`` request of one body, ready for one ``sendall``."""
    head = (f"POST {route} HTTP/1.1\r\nHost: {host}:{int(port)}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + bytes(body)


class Reader:
    """The responses of one connection, parsed from the bytes as they arrive (a response may span many
    ``recv`` calls, and a ``recv`` may end anywhere in it)."""

    def __init__(self):
        self.buf = bytearray()
        self.status, self.need = 0, None  # need: the body's length once the head is read

    def feed(self, data: bytes) -> list[bytes]:
        """The bodies of the responses `data` completes (HTTP 200 only; else :class:`HttpError`)."""
        self.buf += data
        out = []
        while True:
            if self.need is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > MAX_HEAD:
                        raise HttpError(f"no end of the response headers in {len(self.buf)} bytes")
                    return out
                self.status, self.need = parse_head(bytes(self.buf[:end]))
                del self.buf[:end + 4]
            if len(self.buf) < self.need:
                return out
            body = bytes(self.buf[:self.need])
            del self.buf[:self.need]
            self.need = None
            if self.status != 200:
                raise HttpError(f"HTTP {self.status}: {body[:200]!r}")
            out.append(body)


def parse_head(head: bytes) -> tuple[int, int]:
    """(status, Content-Length) of a response head (status line and headers, without the blank line)."""
    m = _STATUS.match(head)
    if not m:
        raise HttpError(f"not an HTTP/1.x status line: {head[:80]!r}")
    length = _LENGTH.search(head)
    if length is None:
        raise HttpError(f"HTTP {m.group(1).decode()} response without Content-Length "
                        f"(chunked bodies are not supported): {head[:200]!r}")
    return int(m.group(1)), int(length.group(1))


class Connection:
    """One keep-alive connection (TCP_NODELAY: a request or response is never held for a delayed ACK)."""

    def __init__(self, port: int, host: str = HOST, timeout_s: float = 60.0):
        self.addr, self.timeout_s = (host, int(port)), timeout_s
        self.sock: socket.socket | None = None
        self.reader = Reader()

    def connect(self) -> None:
        self.close()
        sock = socket.create_connection(self.addr, timeout=self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.reader = sock, Reader()

    def send(self, request: bytes) -> None:
        if self.sock is None:
            self.connect()
        self.sock.sendall(request)

    def read(self) -> list[bytes]:
        """What one ``recv`` completes (blocks until some bytes arrive); :class:`HttpError` on a closed connection."""
        data = self.sock.recv(RECV_BYTES)
        if not data:
            partial = " in the middle of a response" if (self.reader.buf or self.reader.need is not None) else ""
            raise HttpError(f"connection closed by the server{partial}")
        return self.reader.feed(data)

    def roundtrip(self, request: bytes) -> bytes:
        """Send one request and return its response's body (blocking)."""
        try:
            self.send(request)
            while True:
                got = self.read()
                if got:
                    return got[0]
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@dataclass
class Split:
    """How the connections are spread over the server's processes: `counts` most first (a process no connection
    reached: 0), `unknown` connections whose process did not say; `note`: why the split is not even."""
    counts: list
    balanced: bool
    reconnects: int = 0
    unknown: int = 0
    note: str = ""

    @property
    def text(self) -> str:  # '2+2'; '3+1, not balanced: why'
        split = "+".join(map(str, self.counts)) + (f", {self.unknown} unanswered" if self.unknown else "")
        return split if self.balanced else f"{split}, not balanced: {self.note}"


def stats_pid(conn: Connection) -> int:
    """The pid of the server process holding `conn`: ``GET /stats`` on the connection itself (keep-alive)."""
    if conn.sock is None:
        conn.connect()
    host, port = conn.addr
    conn.sock.settimeout(STATS_TIMEOUT_S)
    body = conn.roundtrip(f"GET /stats HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode("latin-1"))
    conn.sock.settimeout(conn.timeout_s)
    return int(json.loads(body)["pid"])


def balance(conns: list, workers: int, reconnects: int = BALANCE_RECONNECTS, budget_s: float = BALANCE_S) -> Split:
    """Spread `conns` over the server's `workers` processes, each holding len//workers or len//workers+1 of them:
    a connection on the busiest process (or whose process did not answer) is reopened -- a new source port, a new
    draw of the kernel's hash -- until the split is even, at most `reconnects` times and `budget_s` seconds.
    Never raises: a split it cannot even is returned with why; a connection it could not reopen is left closed."""
    n, workers = len(conns), max(int(workers), 1)
    if workers == 1:
        return Split([n], True)
    pid, errors, done, t_end = {}, [], 0, time.monotonic() + budget_s

    def ask(c):
        try:
            pid[c] = stats_pid(c)  # (re)connects a closed connection
        except Exception as exc:  # noqa: BLE001  (refused, closed, a bad answer: reopen it next)
            c.close()
            pid[c] = None
            errors.append(f"{type(exc).__name__}: {exc}")

    for c in conns:
        ask(c)
    while True:
        by: dict = {}
        for c in conns:
            by.setdefault(pid[c], []).append(c)
        unknown = by.pop(None, [])
        counts = sorted((len(v) for v in by.values()), reverse=True)
        counts += [0] * (workers - len(counts))
        if not unknown and all(n // workers <= c <= -(-n // workers) for c in counts):
            return Split(counts, True, done)
        if done >= reconnects or time.monotonic() > t_end:
            why = f"after {done} reconnects" + (f", connections reached {len(by)} of {workers} processes"
                                                if len(by) != workers else "")
            return Split(counts, False, done, len(unknown), why + (f" (last error: {errors[-1]})" if errors else ""))
        victim = unknown[0] if unknown else max(by.values(), key=len)[-1]
        done += 1
        victim.close()
        ask(victim)  # reopened: a new source port, a new draw


class ClientPool:
    """LoadGen's SUT over HTTP: `connections` keep-alive connections to 127.0.0.1:`port`, one client thread.

    `requests[i]` is sample i's whole request; `decode(body)` turns a body into the output rows that parity
    checks (only for the queries the recorder keeps; LoadGen gets every response's raw bytes).
    `workers`: the server's processes, over which the connections are spread evenly (:func:`balance`; `split`)."""

    def __init__(self, lg, port: int, requests, decode, recorder: Recorder, connections: int = 1, workers: int = 1):
        self.lg, self.requests, self.decode, self.rec = lg, list(requests), decode, recorder
        self.conns = [Connection(port) for _ in range(max(int(connections), 1))]
        self.workers = max(int(workers), 1)
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.sel.register(self.wake_r, selectors.EVENT_READ, None)
        for c in self.conns:
            c.connect()
        self.split = balance(self.conns, self.workers)
        for c in self.conns:
            if c.sock is None:  # balancing could not reopen it: a server gone fails here, as before
                c.connect()
            self.sel.register(c.sock, selectors.EVENT_READ, c)
        self.task: threading.Event | None = None  # rebalance(): done by the client thread
        self.lock = threading.Lock()
        self.free = list(self.conns)
        self.waiting: collections.deque = collections.deque()
        self.inflight: dict[Connection, tuple] = {}
        self.dead: str | None = None  # why no connection can be opened any more: every query fails at once
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True, name="http-client")
        self.thread.start()

    # LoadGen's issuing thread
    def issue(self, samples) -> None:
        now = time.perf_counter()
        for s in samples:
            item = (s.id, s.index, self.rec.keep_next(), now)
            with self.lock:
                conn = self.free.pop() if (self.free and self.dead is None) else None
                if conn is None:
                    if self.dead is None:
                        self.waiting.append(item)
                        continue
                else:
                    self.inflight[conn] = item
            if conn is None:
                self._finish(item, None, HttpError(self.dead))
            else:
                self._send(conn, item)

    def _send(self, conn: Connection, item) -> None:
        try:
            conn.sock.sendall(self.requests[item[1]])
        except OSError as exc:  # the client thread sees the broken socket readable and reconnects it
            with self.lock:
                mine = self.inflight.get(conn) is item and self.inflight.pop(conn)
            if mine:
                self._finish(item, None, HttpError(f"send failed: {exc}"))

    def rebalance(self, timeout_s: float = BALANCE_S + 2 * STATS_TIMEOUT_S) -> Split:
        """Even the split again between runs (nothing in flight): the server closes a connection idle for its
        keep-alive timeout (uvicorn: 5 s) and the client thread reopens it wherever the kernel puts it."""
        if self.workers > 1:
            done = self.task = threading.Event()
            self.wake_w.send(b"b")
            if not done.wait(timeout_s):
                self.split = Split(self.split.counts, False, note=f"rebalancing did not end in {timeout_s:g} s")
        return self.split

    # the client thread
    def _loop(self) -> None:
        while not self.stopping:
            for key, _ in self.sel.select():
                if key.data is None:  # stop() or rebalance() woke the thread
                    self.wake_r.recv(64)
                    if self.stopping:
                        return
                    task, self.task = self.task, None
                    if task is not None:
                        try:
                            self._rebalance()
                        except Exception as exc:  # a bug: the thread lives on, the run's row fails with it
                            self.rec.error(exc)
                        task.set()
                    break  # this batch's other events may name sockets rebalancing replaced: select again
                try:
                    self._read(key.data)
                except Exception as exc:  # a bug, not the server: the thread must live on (LoadGen waits for it)
                    self.rec.error(exc)

    def _read(self, conn: Connection) -> None:
        try:
            bodies = conn.read()
        except (OSError, HttpError) as exc:
            self._broken(conn, exc)
            return
        if not bodies:
            return
        with self.lock:
            item = self.inflight.pop(conn, None)
        self._release(conn)  # the next queued request goes out before this one is completed
        if item is None:
            self.rec.error(HttpError("a response arrived with no request in flight"))
        else:
            self._finish(item, bodies[0])

    def _rebalance(self) -> None:
        with self.lock:
            if self.inflight or self.waiting or self.dead or len(self.free) != len(self.conns):
                self.split = Split(self.split.counts, False, note="queries in flight or no server: not tried")
                return
            self.free = []  # a query issued meanwhile waits for the connections
        for c in self.conns:
            self.sel.unregister(c.sock)
        self.split = balance(self.conns, self.workers)
        for c in self.conns:
            self._reopen(c)

    def _release(self, conn: Connection) -> None:
        with self.lock:
            item = self.waiting.popleft() if self.waiting else None
            if item is None:
                self.free.append(conn)
            else:
                self.inflight[conn] = item
        if item is not None:
            self._send(conn, item)

    def _broken(self, conn: Connection, exc: BaseException) -> None:
        """Fail the connection's query, reconnect it; if that fails too, fail every query from now on."""
        with self.lock:
            item = self.inflight.pop(conn, None)
            if conn in self.free:  # an idle connection the server closed (its keep-alive timeout)
                self.free.remove(conn)
        if item is not None:
            self._finish(item, None, exc)
        if conn.sock is not None:
            self.sel.unregister(conn.sock)  # before it is closed: a new socket may get the same fd
        conn.close()
        self._reopen(conn)

    def _reopen(self, conn: Connection) -> None:
        """Connect `conn` (if closed) and serve the queue with it; if it cannot, fail every query from now on."""
        try:
            if conn.sock is None:
                conn.connect()
        except OSError as err:
            with self.lock:
                self.dead = f"cannot reconnect to the server: {err}"
                waiting, self.waiting = list(self.waiting), collections.deque()
            for it in waiting:
                self._finish(it, None, HttpError(self.dead))
            return
        self.sel.register(conn.sock, selectors.EVENT_READ, conn)
        self._release(conn)

    def _finish(self, item, body: bytes | None, exc: BaseException | None = None) -> None:
        qid, idx, keep, t_issue = item
        if exc is not None:
            self.rec.error(exc)
        elif keep:
            try:
                self.rec.keep(idx, self.decode(body)[0])
            except Exception as err:
                self.rec.error(err)
        self.rec.batch(1)
        _complete(self.lg, [(qid, None if body is None else np.frombuffer(body, np.uint8), t_issue)], self.rec)

    def flush(self) -> None:
        pass

    def stop(self) -> None:
        self.stopping = True
        self.wake_w.send(b"x")
        self.thread.join(timeout=30)
        for c in self.conns:
            c.close()
        self.sel.close()
        self.wake_r.close()
        self.wake_w.close()
