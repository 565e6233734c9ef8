"""The client spreads its connections evenly over the server's processes (no timing asserted).

Fake servers answer ``GET /stats`` with a pid of their own: listeners sharing one port with SO_REUSEPORT (the
kernel draws the listener of each connection, as for uvicorn's workers), or one listener whose n-th accepted
connection gets the n-th pid of a script (every draw known in advance)."""
import json
import socket
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from overhead.experiments import loadgen_client as lc
from overhead.experiments.loadgen_core import Recorder

from http_fakes import FakeLoadGen, response


class FakeWorkers:
    """`pids[i]`: the pid listener i answers (SO_REUSEPORT, one port); with `script`, one listener and the n-th
    connection's pid is script[n] (the last one after). `mute`: pids whose listener closes a connection at /stats."""

    def __init__(self, pids=(), script=None, mute=()):
        self.script, self.mute, self.accepted = script, set(mute), []
        self.lock, self.socks, self.port = threading.Lock(), [], 0
        for pid in (pids if script is None else [None]):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(64)
            self.port = sock.getsockname()[1]
            self.socks.append(sock)
            threading.Thread(target=self._accept, args=(sock, pid), daemon=True).start()

    def _accept(self, sock, pid):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with self.lock:
                n = len(self.accepted)
                mine = pid if self.script is None else self.script[min(n, len(self.script) - 1)]
                self.accepted.append(mine)
            threading.Thread(target=self._serve, args=(conn, mine), daemon=True).start()

    def _serve(self, conn, pid):
        buf = b""
        with conn:
            try:
                while True:
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buf += data
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]) \
                        if b"content-length:" in head.lower() else 0
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    buf = buf[length:]
                    if head.startswith(b"GET /stats"):
                        if pid in self.mute:
                            return
                        conn.sendall(response(json.dumps({"cpu_s": 0.0, "pid": pid}).encode()))
                    else:
                        conn.sendall(response(b"out!"))
            except OSError:
                pass

    def close(self):
        for s in self.socks:
            s.close()


@pytest.fixture
def fake():
    made = []

    def start(**kw):
        made.append(FakeWorkers(**kw))
        return made[-1]

    yield start
    for f in made:
        f.close()


def connections(port, n):
    conns = [lc.Connection(port, timeout_s=10) for _ in range(n)]
    for c in conns:
        c.connect()
    return conns


def pids_of(conns):
    return sorted(lc.stats_pid(c) for c in conns)


def test_a_scripted_split_is_evened_with_the_fewest_reconnects(fake):
    srv = fake(script=[7, 7, 7, 7, 7, 8, 8])  # 4+0 at first; the first reopened lands on 7 again, then 8, 8
    conns = connections(srv.port, 4)
    try:
        split = lc.balance(conns, workers=2)
        assert split.balanced and split.text == "2+2" and split.reconnects == 3
        assert pids_of(conns) == [7, 7, 8, 8] and srv.accepted == [7, 7, 7, 7, 7, 8, 8]
    finally:
        for c in conns:
            c.close()


@pytest.mark.parametrize("workers, n, shares", [(2, 4, [2, 2]), (3, 4, [2, 1, 1]), (3, 7, [3, 2, 2])])
def test_connections_over_reuseport_listeners_end_even(fake, workers, n, shares):
    srv = fake(pids=[101 + i for i in range(workers)])
    conns = connections(srv.port, n)
    try:
        split = lc.balance(conns, workers=workers)
        assert split.balanced and split.counts == shares and split.text == "+".join(map(str, shares))
        got = pids_of(conns)
        assert sorted((got.count(p) for p in set(got)), reverse=True) == shares
    finally:
        for c in conns:
            c.close()


def test_one_process_answering_gives_up_after_the_bounded_reconnects_and_says_so(fake):
    srv = fake(script=[5])  # every connection reaches the same process: 2+2 is out of reach
    conns = connections(srv.port, 4)
    try:
        split = lc.balance(conns, workers=2, reconnects=64)
        assert not split.balanced and split.reconnects == 64 and split.counts == [4, 0]
        assert split.text == "4+0, not balanced: after 64 reconnects, connections reached 1 of 2 processes"
        assert len(srv.accepted) == 4 + 64 and all(c.sock is not None for c in conns)  # still usable
    finally:
        for c in conns:
            c.close()


def test_a_process_that_never_answers_stats_leaves_its_connections_unanswered_and_the_split_uneven(fake):
    srv = fake(script=[11, 12], mute={12})  # the first connection reaches 11, every other one 12, which hangs up
    conns = connections(srv.port, 4)
    try:
        split = lc.balance(conns, workers=2, reconnects=8)
        assert not split.balanced and split.reconnects == 8 and split.counts == [1, 0] and split.unknown == 3
        assert split.text == ("1+0, 3 unanswered, not balanced: after 8 reconnects, connections reached 1 of 2 "
                              "processes (last error: HttpError: connection closed by the server)")
        assert len(srv.accepted) == 4 + 8
    finally:
        for c in conns:
            c.close()


def run_queries(pool, n):
    lg = FakeLoadGen(n)
    pool.lg = lg
    pool.issue([SimpleNamespace(id=i, index=0) for i in range(n)])
    lg.wait()
    return sorted(q for q, _ in lg.done)


def test_the_pool_starts_even_rebalances_between_runs_and_serves_every_query(fake):
    srv = fake(script=[1, 1, 1, 1, 2, 2, 1, 1, 1, 1, 1, 2, 1, 2])
    rec = Recorder(every=1, limit=100)
    req = lc.request_bytes("/predict/bin", b"x", "application/octet-stream", srv.port)
    pool = lc.ClientPool(None, srv.port, [req], lambda b: np.frombuffer(b, np.uint8).reshape(1, -1), rec,
                         connections=4, workers=2)
    try:
        assert pool.split.text == "2+2" and pool.split.reconnects == 2
        assert run_queries(pool, 10) == list(range(10))
        for c in pool.conns:  # as if the server closed them idle: the client thread reopens them, 4+0
            c.sock.shutdown(socket.SHUT_RDWR)
        assert pool.rebalance().balanced and pool.split.text == "2+2"
        assert run_queries(pool, 10) == list(range(10))
        assert rec.errors == [] and len(srv.accepted) >= 4 + 2 + 4 + 2
    finally:
        pool.stop()
    one = lc.ClientPool(None, srv.port, [req], lambda b: b, rec, connections=3)  # one process: nothing asked
    one.stop()
    assert one.split.text == "3" and one.split.reconnects == 0
