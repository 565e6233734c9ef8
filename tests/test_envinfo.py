import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import pytest

from overhead.base import envinfo
from overhead.base.config import ROOT

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*-\d+c$")


def test_collect_has_every_key_without_importing_tensorflow():
    code = (
        "import json, sys\n"
        "from overhead.base import envinfo\n"
        "meta = envinfo.collect(threads=2)\n"
        "print(json.dumps({'meta': meta, 'keys': list(envinfo.KEYS),\n"
        "                  'heavy': [m for m in ('tensorflow', 'keras', 'onnxruntime', 'ai_edge_litert')\n"
        "                            if m in sys.modules]}, default=str))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "lib"))
    env.pop("OVERHEAD_MACHINE", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    meta = out["meta"]
    assert out["heavy"] == []
    assert set(out["keys"]) <= set(meta)
    assert meta["threads"] == 2
    assert meta["versions"]["numpy"] == np.__version__
    assert SLUG.match(meta["machine"])


def test_collect_values(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    meta = envinfo.collect()
    assert set(envinfo.KEYS) <= set(meta)
    assert meta["logical_cores"] >= 1 and meta["ram_gib"] > 0
    assert meta["cpu_model"]
    assert meta["env"]["OMP_NUM_THREADS"] == "1"
    assert set(envinfo.ENV_VARS) == set(meta["env"])
    assert meta["onednn"].startswith("default")
    assert datetime.fromisoformat(meta["date"]).utcoffset() == timezone.utc.utcoffset(None)
    assert meta["python"] == ".".join(map(str, sys.version_info[:3]))
    assert {"tensorflow", "keras", "ai-edge-litert", "onnxruntime"} <= set(meta["versions"])
    json.dumps(meta)  # everything is JSON-serialisable


def test_blas_info_reports_numpy_blas():
    pools = envinfo.blas_info()
    blas = [p for p in pools if p["user_api"] == "blas"]
    assert blas, pools
    assert {"internal_api", "version", "num_threads", "architecture"} <= set(blas[0])


def test_onednn_flag():
    assert envinfo.onednn_flag({}, arch="x86_64") == "default (on)"
    assert envinfo.onednn_flag({"TF_ENABLE_ONEDNN_OPTS": "0"}) == "off"
    assert envinfo.onednn_flag({"TF_ENABLE_ONEDNN_OPTS": "1"}) == "on"
    assert envinfo.onednn_flag({}, arch="aarch64").startswith("default")


def test_package_version_missing_is_none():
    assert envinfo.package_version("surely-not-an-installed-dist-xyz") is None


def test_machine_id_honours_env(monkeypatch):
    monkeypatch.setenv("OVERHEAD_MACHINE", "lab-box_2")
    assert envinfo.machine_id() == "lab-box_2"
    monkeypatch.setenv("OVERHEAD_MACHINE", "my laptop/../x")
    assert "/" not in envinfo.machine_id() and " " not in envinfo.machine_id()


def test_machine_id_default_is_slug(monkeypatch):
    monkeypatch.delenv("OVERHEAD_MACHINE", raising=False)
    mid = envinfo.machine_id()
    assert SLUG.match(mid), mid
    assert mid.endswith(f"-{envinfo.logical_cores()}c")


@pytest.mark.parametrize("brand, cores, expected", [
    ("Intel(R) Xeon(R) Processor @ 2.10GHz", 2, "intel-xeon-processor-2c"),
    ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", 12, "intel-core-i7-8700-12c"),
    ("AMD EPYC 7B12 64-Core Processor", 8, "amd-epyc-7b12-64-core-processor-8c"),
    ("", 1, "cpu-1c"),
])
def test_slugify_cpu(brand, cores, expected):
    assert envinfo.slugify_cpu(brand, cores) == expected


def test_git_info_outside_repo_and_without_git(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert envinfo.git_info(tmp_path) == (None, None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable reachable
    assert envinfo.git_info(ROOT) == (None, None)


def test_write_and_read_meta(tmp_path):
    result = tmp_path / "bench.csv"
    path = envinfo.write_meta(result, extra={"stage": "bench", "threads": 1})
    assert path == tmp_path / "bench.meta.json"
    meta = envinfo.read_meta(result)
    assert meta["stage"] == "bench" and meta["threads"] == 1
    assert meta["result_file"] == "bench.csv"
    assert set(envinfo.KEYS) <= set(meta)
    assert [p.name for p in tmp_path.iterdir()] == ["bench.meta.json"]


def test_isa_flags_read_from_proc_cpuinfo_text():
    text = ("processor\t: 0\nvendor_id\t: GenuineIntel\n"
            "flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni amx_tile amx_int8 amx_bf16 rdrand\n")
    flags = envinfo.proc_cpu_flags(text)
    assert {"avx2", "amx_int8", "rdrand"} <= flags
    assert envinfo.isa_flags(flags) == ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni",
                                        "amx_tile", "amx_int8", "amx_bf16"]
    arm = envinfo.proc_cpu_flags("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm sve\n")
    assert envinfo.isa_flags(arm) == ["asimd", "asimddp", "i8mm", "sve"]


def test_collect_reports_isa_flags_of_this_cpu():
    meta = envinfo.collect()
    assert meta["isa_flags"] == envinfo.isa_flags()
    assert set(meta["isa_flags"]) <= set(envinfo.ISA_FLAGS)
    assert set(meta["isa_flags"]) <= envinfo.proc_cpu_flags()


def test_meta_names_paths_inside_the_repository_relative_to_it(tmp_path):
    from overhead.base import config

    extra = {"models": {"m": str(config.ROOT / "data" / "models" / "m.keras")}, "data": str(config.ROOT / "data"),
             "elsewhere": "/opt/x", "root": str(config.ROOT)}
    meta = json.loads(envinfo.write_meta(tmp_path / "r.csv", extra).read_text())
    assert meta["models"] == {"m": "data/models/m.keras"} and meta["data"] == "data"
    assert meta["elsewhere"] == "/opt/x" and meta["root"] == "."


def test_a_bare_amd_brand_gets_its_generation():
    from overhead.base import envinfo

    assert envinfo.amd_generation(26, 2) == "zen5"
    assert envinfo.amd_generation(25, 0x11) == "zen4" and envinfo.amd_generation(25, 0x01) == "zen3"
    assert envinfo.amd_generation(6, 143) is None and envinfo.amd_generation(None, None) is None
