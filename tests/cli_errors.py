"""The CLI's bad-input contract, shared by the CLI tests: exit 2 and one line on stderr, no traceback."""


def one_line_error(done, *words):
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("overhead: error: ") and "Traceback" not in done.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]
