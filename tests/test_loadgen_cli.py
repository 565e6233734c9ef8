"""`overhead loadgen`: bad input gets one line and exit 2, before any child process starts."""
import pytest

import fake_loadgen_backends
from cli_errors import one_line_error
from test_cli import run_cli


@pytest.mark.parametrize("args, words", [
    (["--scenario", "Offline"], ["unknown scenario 'Offline'"]),
    (["--bound-ms", "0"], ["bound", "> 0 ms"]),
    (["--bound-ms", "-2"], ["bound", "> 0 ms"]),
    (["--bound-ms", "fast"], ["--bound-ms must be numbers"]),
    (["--qps", "100,0"], ["QPS must be > 0"]),
    (["--qps", "-5"], ["QPS must be > 0"]),
    (["--paths", "test.single_thread", "--strategy", "threads"], ["cannot run under threads"]),
    (["--strategy", "coroutines"], ["unknown strategy"]),
    (["--paths", "nope"], ["unknown backend 'nope'"]),
])
def test_bad_input_one_line_exit_2(args, words, tmp_path):
    done = run_cli("loadgen", "cnn_seed", *args, "--out", tmp_path / "out",
                   env={"OVERHEAD_EXTRA_BACKENDS": fake_loadgen_backends.HOOK, "OVERHEAD_DATA": str(tmp_path)})
    one_line_error(done, *words)
    assert not (tmp_path / "out").exists()
