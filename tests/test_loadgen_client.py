"""LoadGen's lean HTTP client against a tiny local server that answers as scripted (no timing asserted)."""
import socket
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from overhead.experiments import loadgen_client as lc
from overhead.experiments.loadgen_core import Recorder

from http_fakes import FakeLoadGen, response


class TinyServer:
    """Accepts connections on 127.0.0.1; for each request read, `answer(n)` (n: requests so far) gives the
    chunks to send (a pause between them) or None to close the connection without answering."""

    def __init__(self, answer):
        self.answer, self.count, self.lock = answer, 0, threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            with conn:
                self._answer(conn)
        except OSError:  # the client went away
            pass

    def _answer(self, conn):
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(buf) < length:
                buf += conn.recv(65536)
            buf = buf[length:]
            with self.lock:
                self.count += 1
                chunks = self.answer(self.count)
            if chunks is None:
                return
            for i, c in enumerate(chunks):
                if i:
                    time.sleep(0.005)  # the next chunk arrives in a later recv
                conn.sendall(c)

    def close(self):
        self.sock.close()


@pytest.fixture
def server():
    made = []

    def start(answer):
        made.append(TinyServer(answer))
        return made[-1]

    yield start
    for s in made:
        s.close()


def request(port, body=b"abc"):
    return lc.request_bytes("/predict/bin", body, "application/octet-stream", port)


def test_a_response_split_anywhere_is_read_whole():
    resp = response(b"0123456789") + response(b"second")
    r = lc.Reader()
    got = []
    for i in range(len(resp)):  # one byte per recv: the head's end and the body split everywhere
        got += r.feed(resp[i:i + 1])
    assert got == [b"0123456789", b"second"]
    assert lc.Reader().feed(resp) == [b"0123456789", b"second"]  # two responses in one recv
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz"
    assert lc.Reader().feed(head) == [b"xyz"]


def test_a_bad_response_is_a_clear_error():
    with pytest.raises(lc.HttpError, match="HTTP 422: b'bad input'"):
        lc.Reader().feed(response(b"bad input", "422 Unprocessable Entity"))
    with pytest.raises(lc.HttpError, match="without Content-Length"):
        lc.Reader().feed(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    with pytest.raises(lc.HttpError, match="not an HTTP/1.x status line"):
        lc.Reader().feed(b"SSH-2.0-OpenSSH\r\n\r\n")
    # a header that only starts like content-length is not it
    with pytest.raises(lc.HttpError, match="without Content-Length"):
        lc.Reader().feed(b"HTTP/1.1 200 OK\r\ncontent-length-x: 3\r\n\r\nabc")


def test_a_round_trip_over_a_socket_in_pieces_and_a_closed_connection(server):
    body = bytes(range(256)) * 40
    whole = response(body)
    srv = server(lambda n: [whole[:7], whole[7:60], whole[60:5000], whole[5000:]] if n == 1 else None)
    conn = lc.Connection(srv.port, timeout_s=10)
    try:
        assert conn.roundtrip(request(srv.port)) == body
        with pytest.raises(lc.HttpError, match="connection closed by the server"):
            conn.roundtrip(request(srv.port))  # the second request: the server hangs up without answering
        assert conn.sock is None
    finally:
        conn.close()


def run_pool(port, n, connections):
    lg, rec = FakeLoadGen(n), Recorder(every=1, limit=100)
    reqs = [request(port, bytes([i])) for i in range(4)]
    pool = lc.ClientPool(lg, port, reqs, lambda body: np.frombuffer(body, np.uint8).reshape(1, -1), rec,
                         connections=connections)
    try:
        pool.issue([SimpleNamespace(id=100 + i, index=i % 4) for i in range(n)])  # more than connections: queued
        lg.wait()
    finally:
        pool.stop()
    return lg, rec


def test_the_pool_completes_every_query_and_fails_the_bad_ones_without_hanging(server):
    ok = server(lambda n: [response(b"out!")])
    lg, rec = run_pool(ok.port, 12, connections=3)
    assert sorted(q for q, _ in lg.done) == list(range(100, 112)) and {s for _, s in lg.done} == {4}
    assert rec.errors == [] and rec.batches == {1: 12} and len(rec.kept) == 12
    assert ok.count == 12

    bad = server(lambda n: [response(b"boom", "500 Internal Server Error")] if n == 3 else
                 None if n == 5 else [response(b"fine")])
    lg, rec = run_pool(bad.port, 9, connections=2)
    assert sorted(q for q, _ in lg.done) == list(range(100, 109))  # failed queries complete too
    assert len(rec.errors) == 2 and any("HTTP 500: b'boom'" in e for e in rec.errors)
    assert any("connection closed by the server" in e for e in rec.errors)  # and the connection was reopened
