"""One Python 3.11 environment per TensorFlow release, built with uv from PyPI and reused.

Each release gets ``<root>/tf-<minor>/`` (``data/envs/`` by default, git-ignored): a venv of the machine's
Python 3.11 with the latest patch of ``tensorflow-cpu`` of that minor (and its own pins: NumPy, Keras 2 for
2.12-2.15, Keras 3 from 2.16), plus ``tf-keras`` of the same minor from 2.16 on (installed ``--no-deps``: it
declares the full ``tensorflow`` distribution, which would put a second TensorFlow beside ``tensorflow-cpu``).
A finished environment holds ``overhead-env.json`` (the package set, seconds and bytes it cost) and is reused
as it is; a half-built one (no marker) is rebuilt. A failed install is returned with its reason (one line), not
raised: the stage turns it into a row. uv is a binary, not a Python child job, so it runs through subprocess
(tests/test_layers.py lists this module beside lscpu's).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from overhead.base import config
from overhead.base.atomic import atomic_write_text

RELEASES = ("2.12", "2.13", "2.14", "2.15", "2.16", "2.17", "2.18", "2.19", "2.20", "2.21")
KERAS3_FROM = (2, 16)  # tf.keras is Keras 3 from here; Keras 2 is tf_keras (TF_USE_LEGACY_KERAS=1)
MARKER = "overhead-env.json"
INSTALL_TIMEOUT_S = 1800.0


def envs_dir(override=None) -> Path:
    """Where the release environments live: data/envs/ (OVERHEAD_DATA moves it with the data tree)."""
    return config.data_dir(override) / "envs"


def minor_tuple(minor: str) -> tuple[int, int]:
    major, _, rest = str(minor).partition(".")
    return int(major), int(rest.split(".")[0])


def keras_flavours(minor: str) -> tuple[str, ...]:
    """The Keras versions a release runs: "2" (tf.keras) up to 2.15; "3" (tf.keras) and "2" (tf_keras) from 2.16."""
    return ("3", "2") if minor_tuple(minor) >= KERAS3_FROM else ("2",)


def requirements(minor: str) -> list[tuple[str, bool]]:
    """(requirement, with its dependencies?) in install order for one TensorFlow minor release."""
    major, m = minor_tuple(minor)
    reqs = [(f"tensorflow-cpu~={major}.{m}.0", True)]
    if (major, m) >= KERAS3_FROM:
        reqs.append((f"tf-keras~={major}.{m}.0", False))
    return reqs


def env_python(env: Path) -> Path:
    return Path(env) / "bin" / "python"


def base_python() -> str:
    """The machine's Python 3.11 (the interpreter this venv was made from), never one uv downloads."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base if Path(base).exists() else (shutil.which("python3.11") or sys.executable)


def uv_binary() -> str | None:
    """The uv executable of this environment (pip installs it beside python), else one on PATH."""
    here = Path(sys.executable).parent / "uv"
    return str(here) if here.exists() else shutil.which("uv")


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def packages_of(frozen: str) -> dict:
    """{name: version} from `uv pip freeze` output (terminal colour codes dropped: uv may colour a pipe)."""
    return dict(ANSI.sub("", line).strip().split("==", 1) for line in frozen.splitlines() if "==" in line)


def read_marker(env: Path) -> dict | None:
    """The finished environment's marker; a marker written before colour codes were dropped is cleaned."""
    try:
        marker = json.loads((Path(env) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(marker, dict) and isinstance(marker.get("packages"), dict):
        marker["packages"] = {ANSI.sub("", k): v for k, v in marker["packages"].items()}
        marker["tensorflow"] = marker.get("tensorflow") or marker["packages"].get("tensorflow-cpu", "")
    return marker


def dir_bytes(path: Path) -> int:
    """Bytes of the files under `path`, each inode counted once (uv hard-links files from its cache)."""
    seen, total = set(), 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _one_line(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.lower().startswith(("error", "×", "╰─▶", "because"))]
    line = (errs or lines or [""])[-1]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _uv(uv: str, args: list[str], env: dict, timeout_s: float) -> tuple[bool, str]:
    try:
        done = subprocess.run([uv, *args], capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"uv {args[0]} timed out after {timeout_s:g} s"
    except OSError as exc:
        return False, f"cannot run uv: {exc.strerror or exc}"
    return done.returncode == 0, (done.stdout if done.returncode == 0 else _one_line(done.stderr or done.stdout))


def build(minor: str, root=None, *, uv: str | None = None, python: str | None = None, cache_dir=None,
          timeout_s: float = INSTALL_TIMEOUT_S) -> dict:
    """The environment of TensorFlow `minor` under `root`, built once: {status: ok|failed, reason, python,
    packages {name: version}, tensorflow, install_s, bytes, reused}. Never raises for a failed install."""
    root = Path(root) if root is not None else envs_dir()
    env = root / f"tf-{minor}"
    done = read_marker(env)
    if done is not None and env_python(env).exists():
        return dict(done, status="ok", reason="", python=str(env_python(env)), reused=True)
    uv = uv or uv_binary()
    if not uv:
        return {"status": "failed", "reason": "uv not found: run make env (requirements.txt pins uv)", "reused": False}
    if env.exists():  # half-built by an interrupted run: start again
        shutil.rmtree(env)
    root.mkdir(parents=True, exist_ok=True)
    uv_env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", UV_CACHE_DIR=str(cache_dir or root / ".uv-cache"),
                  UV_NO_PROGRESS="1", NO_COLOR="1")
    uv_env.pop("VIRTUAL_ENV", None)
    t0 = time.perf_counter()
    ok, out = _uv(uv, ["venv", "--quiet", "--python", python or base_python(), str(env)], uv_env, timeout_s)
    py = str(env_python(env))
    for req, deps in requirements(minor) if ok else ():
        ok, out = _uv(uv, ["pip", "install", "--quiet", "--python", py, *([] if deps else ["--no-deps"]), req],
                      uv_env, timeout_s)
        if not ok:
            out = f"{req}: {out}"
            break
    if not ok:
        shutil.rmtree(env, ignore_errors=True)
        return {"status": "failed", "reason": f"install failed: {out}", "reused": False,
                "install_s": round(time.perf_counter() - t0, 1)}
    ok, frozen = _uv(uv, ["pip", "freeze", "--python", py], uv_env, 120)
    packages = packages_of(frozen) if ok else {}
    marker = {"minor": minor, "requirements": [r for r, _ in requirements(minor)], "packages": packages,
              "tensorflow": packages.get("tensorflow-cpu", ""), "install_s": round(time.perf_counter() - t0, 1),
              "bytes": dir_bytes(env), "uv": _uv(uv, ["--version"], uv_env, 30)[1].strip()}
    atomic_write_text(env / MARKER, json.dumps(marker, indent=2, sort_keys=True) + "\n")
    return dict(marker, status="ok", reason="", python=py, reused=False)


def main(argv=None) -> int:
    """python -m overhead.experiments.versions_env [MINOR ...]: build (or reuse) the environments, one line each."""
    argv = sys.argv[1:] if argv is None else argv
    bad = [a for a in argv if a not in RELEASES]
    if bad:
        print(f"error: unknown release {bad[0]!r}; choose from {', '.join(RELEASES)}", file=sys.stderr)
        return 2
    for minor in argv or RELEASES:
        r = build(minor)
        print(json.dumps({k: r.get(k) for k in ("status", "reason", "tensorflow", "install_s", "bytes", "reused")}
                         | {"minor": minor}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
