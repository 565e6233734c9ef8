"""The `overhead` command: every bad input is one line + exit 2 and no file; bench/check/backends work."""
import json
import os
import subprocess
import sys
import zipfile

import fake_backends
import pandas as pd
import pytest
from cli_errors import one_line_error

from overhead import cli
from overhead.base import paths


def run_cli(*args, env=None, timeout=600):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "overhead", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def assert_usage_error(done, *words):
    line = one_line_error(done, *words)
    assert done.stdout == ""
    return line


@pytest.fixture(scope="module")
def model(tiny_data_dir):
    return tiny_data_dir / "models" / "cnn_seed.keras"


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "junk.keras").write_bytes(b"this is not a zip archive")
    with zipfile.ZipFile(d / "noconfig.keras", "w") as zf:
        zf.writestr("metadata.json", "{}")
    with zipfile.ZipFile(d / "broken.keras", "w") as zf:  # passes the cheap check, fails to load
        zf.writestr("config.json", json.dumps({"class_name": "NoSuchLayer", "config": {}}))
    return d


def _bad_inputs(model, bad, out):
    return [
        (["bench", bad / "missing.keras"], ["model file not found", "missing.keras"]),
        (["bench", bad / "junk.keras"], ["not a valid Keras model file", "model.save"]),
        (["bench", bad / "noconfig.keras"], ["not a valid Keras model file"]),
        (["bench", bad], ["is a folder"]),
        (["bench", model, "--backends", "numpy,tf.magic"], ["unknown backend 'tf.magic'", "litert.int8"]),
        (["bench", model, "--backends", ","], ["--backends is empty"]),
        (["bench", model, "--batch-sizes", "0"], ["batch sizes must be positive integers", "'0'"]),
        (["bench", model, "--batch-sizes", "1,-4"], ["'-4'"]),
        (["bench", model, "--batch-sizes", "1.5"], ["'1.5'"]),
        (["bench", model, "--batch-sizes", "abc"], ["'abc'"]),
        (["bench", model, "--threads", "0"], ["threads must be positive integers"]),
        (["bench", model, "--threads", "two"], ["'two'"]),
        (["bench", model, "--budget", "-1"], ["--budget"]),
        (["bench", model, "--out", out / "nowhere" / "r.csv"], ["does not exist"]),
        (["bench", model, "--out", "/proc/overhead-test.csv"], ["cannot write --out"]),
        (["bench", model, "--out", out], ["is a folder"]),
        (["bench", model, "--out", out / "r.txt"], [".csv"]),
        (["check", model, "--batch-size", "0"], ["--batch-size"]),
        (["check", bad / "missing.keras"], ["model file not found"]),
        (["bench"], ["MODEL"]),
        (["frobnicate"], ["invalid choice"]),
        ([], ["missing command"]),
    ]


def test_bad_inputs_exit_2_with_one_line_in_process(model, bad_files, tmp_path, capsys):
    """All cases through cli.main directly (fast): exit 2, one stderr line, nothing on stdout, no file."""
    for argv, words in _bad_inputs(model, bad_files, tmp_path):
        assert cli.main([str(a) for a in argv]) == 2, argv
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("overhead: error: "), (argv, err)
        assert all(w in lines[0] for w in words), (argv, lines[0], words)
        assert out == ""
    assert list(tmp_path.iterdir()) == []  # no partial output file anywhere


@pytest.mark.parametrize("case", [0, 4, 6, 14])
def test_bad_inputs_through_the_real_command(case, model, bad_files, tmp_path):
    argv, words = _bad_inputs(model, bad_files, tmp_path)[case]
    assert_usage_error(run_cli(*argv), *words)


@pytest.mark.slow  # starts the real command on several broken files
def test_unloadable_model_is_a_usage_error_without_output(bad_files, tmp_path, data_env):
    out = tmp_path / "r.csv"
    done = run_cli("bench", bad_files / "broken.keras", "--backends", "numpy", "--quick", "--out", out)
    assert_usage_error(done, "cannot load model broken")
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.slow  # a real benchmark in fresh worker processes
def test_bench_prints_a_table_and_writes_the_file(model, tmp_path, data_env):
    out = tmp_path / "r.csv"
    done = run_cli("bench", model, "--backends", "numpy,tf.function,litert", "--batch-sizes", "1,2",
                   "--quick", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tf.function" in done.stdout and "median_us" in done.stdout
    rows = pd.read_csv(out)
    assert len(rows) == 6 and set(rows.status) == {"ok"} and (rows.median_us > 0).all()
    assert set(rows.batch) == {1, 2} and set(rows.backend) == {"numpy", "tf.function", "litert"}
    assert (tmp_path / "r.meta.json").exists()


@pytest.mark.slow  # parity of every backend in fresh worker processes
def test_check_passes_and_fails(model, data_env):
    good = run_cli("check", model, "--backends", "numpy,onnxruntime,litert.int8,jax.jit,keras.numpy.predict")
    assert good.returncode == 0, good.stderr[-3000:]
    assert "litert.int8" in good.stdout and "pass" in good.stdout
    passed = {ln.split()[1] for ln in good.stdout.splitlines()[1:] if " pass " in ln}
    assert {"jax.jit", "keras.numpy.predict"} <= passed, good.stdout  # each in a worker of its own kind
    bad = run_cli("check", model, "--backends", "numpy,test.wrong,test.raise", env={"OVERHEAD_EXTRA_BACKENDS": fake_backends.HOOK})
    assert bad.returncode == 1, bad.stderr[-3000:]
    assert "test.wrong" in bad.stdout and "fail" in bad.stdout and "deliberate failure" in bad.stdout
    assert "disagree" in bad.stderr


def test_backends_lists_every_backend_without_probing():
    done = run_cli("backends", "--no-probe")
    assert done.returncode == 0, done.stderr
    for name in paths.NAMES:
        assert name in done.stdout
    lines = {ln.split()[0]: ln.split() for ln in done.stdout.splitlines()[1:]}
    assert lines["jax.jit"][2] == "jax" and lines["keras.numpy.predict"][2] == "keras-numpy"  # process column
    assert lines["tf1.session"][2] == "tf"


@pytest.mark.slow
def test_backends_probe_says_each_works_here(data_env):
    done = run_cli("backends")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {ln.split()[0]: ln for ln in done.stdout.splitlines()[1:]}
    assert set(lines) >= set(cli_names())
    assert all(" yes " in lines[n] for n in cli_names()), done.stdout


def cli_names():
    from overhead import backends
    return backends.NAMES
