"""Shared by the HTTP client tests: a raw HTTP/1.1 response, and the part of mlperf_loadgen ClientPool calls."""
import threading
from types import SimpleNamespace


def response(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\ndate: now\r\nserver: tiny\r\ncontent-length: {len(body)}\r\n{extra}"
            "content-type: application/octet-stream\r\n\r\n").encode() + body


class FakeLoadGen:
    """What ClientPool calls of mlperf_loadgen; records (query id, response size) of each completion."""

    def __init__(self, n):
        self.done, self.left = [], threading.Semaphore(0)
        self.n = n

    def QuerySampleResponse(self, qid, ptr, size):
        return SimpleNamespace(id=qid, size=size)

    def QuerySamplesComplete(self, responses):
        for r in responses:
            self.done.append((r.id, r.size))
            self.left.release()

    def wait(self):
        for _ in range(self.n):
            assert self.left.acquire(timeout=20), "a query never completed"
