"""The cross-check of the HTTP service with a C load generator: ``wrk`` (Debian package ``wrk``).

wrk is closed-loop: C connections each send the next request when the last is answered, for D seconds.
With one connection it measures the round trip of one request at a time (to set against LoadGen's
Single-Stream p50 over HTTP); with several it measures what the service completes per second (to set
against LoadGen's Server maximum) and the latency at that load. Its client costs microseconds of C per
request, so it tells how much of a Python client's figure is the client.

:func:`ensure_wrk` finds ``wrk`` or, when absent and running as root with apt-get, installs it; otherwise
the stage records a row saying wrk is missing.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from overhead.experiments.loadgen_http import PAYLOADS, encode

CONNECTIONS = (1, 8)  # one request at a time, and enough outstanding to saturate one or two server processes
DURATION_S, QUICK_DURATION_S = 4, 1
MISSING = "wrk is not installed (apt-get install wrk as root); the cross-check did not run"


def ensure_wrk(install: bool = True) -> tuple[str | None, str]:
    """(path of wrk or None, how it was found or why it is missing)."""
    found = shutil.which("wrk")
    if found:
        return found, "found"
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, MISSING
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    for step in ([cmd], [["apt-get", "update"], cmd]):
        try:
            for c in step:
                subprocess.run(["nice", "-n", "19", *c], env=env, check=True, timeout=600,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (subprocess.SubprocessError, OSError):
            continue
        if shutil.which("wrk"):
            return shutil.which("wrk"), "installed with apt-get"
    return None, MISSING + " (apt-get install failed)"


def script(payload: str, body_path: Path) -> str:
    """The Lua script that makes wrk post one recorded body to the payload's route."""
    _, ctype = encode(payload, np.zeros((1, 1), np.float32))
    return (f'wrk.method = "POST"\nwrk.path = "{PAYLOADS[payload]}"\n'
            f'wrk.headers["Content-Type"] = "{ctype}"\n'
            f'local f = io.open("{body_path}", "rb")\nwrk.body = f:read("*a")\nf:close()\n')


_UNIT = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def _us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse(text: str) -> dict:
    """Requests/s, the request count, errors and p50/p90/p99 (us) from ``wrk --latency`` output."""
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["achieved_qps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    out["n_queries"] = int(m.group(1)) if m else 0
    for p in ("50", "90", "99"):
        m = re.search(rf"^\s*{p}(?:\.0+)?%\s+(\S+)", text, re.M)
        out[f"p{p}_us"] = _us(m.group(1)) if m else None
    errors = re.findall(r"(Non-2xx or 3xx responses: \d+|Socket errors: [^\n]+)", text)
    out["errors"] = errors
    return out


def run_wrk(wrk: str, port: int, payload: str, x: np.ndarray, *, connections: int, duration_s: float) -> dict:
    """One wrk run against 127.0.0.1:`port` posting the first sample of `x` as `payload`."""
    with tempfile.TemporaryDirectory(prefix="overhead-wrk-") as tmp:
        body, _ = encode(payload, x[:1])
        (Path(tmp) / "body").write_bytes(body)
        (Path(tmp) / "post.lua").write_text(script(payload, Path(tmp) / "body"))
        cmd = [wrk, "-t1", f"-c{int(connections)}", f"-d{max(1, int(round(duration_s)))}s", "--latency",
               "-s", str(Path(tmp) / "post.lua"), f"http://127.0.0.1:{int(port)}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {(done.stderr or done.stdout).strip()[:200]}")
    res = parse(done.stdout)
    res.update(clients=int(connections), duration_s=float(duration_s))
    return res
