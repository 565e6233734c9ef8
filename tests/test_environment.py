"""The environment is reproducible: pins agree across files, the Makefile documents itself, lib/ is tracked."""
import re
import subprocess

import yaml

from overhead.base import config

ROOT = config.ROOT


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(*paths):
    out = {}
    lines = [line for path in paths for line in path.read_text().splitlines()]
    for line in lines:
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            out[_norm(name)] = version
    return out


def test_requirements_pin_every_direct_dependency_exactly():
    pins = _pins(ROOT / "requirements.txt", ROOT / "requirements-nodeps.txt")
    direct = [_norm(l.split("#")[0].strip()) for l in (ROOT / "requirements.in").read_text().splitlines()
              if l.strip() and not l.startswith("#")]
    assert all(v for v in pins.values()), "every line of requirements.txt is name==version"
    missing = [d for d in direct if d not in pins]
    assert not missing, f"not pinned in requirements.txt: {missing}"
    assert pins["tensorflow-cpu"].startswith("2.21.") and pins["keras"].startswith("3.")
    assert pins["tf-keras"] == pins["tensorflow-cpu"], "Keras 2 (tf-keras) must match the TensorFlow version"
    assert "tensorflow" not in pins, "full `tensorflow` beside tensorflow-cpu would duplicate TF"


def test_environment_yml_matches_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip_block = next(d["pip"] for d in deps if isinstance(d, dict))
    conda = {_norm(p.split("==")[0]): p.split("==")[1] for p in pip_block if "==" in p}
    pins = _pins(ROOT / "requirements.txt", ROOT / "requirements-nodeps.txt")
    direct = {_norm(l.split("#")[0].strip()) for l in (ROOT / "requirements.in").read_text().splitlines()
              if l.strip() and not l.startswith("#")}
    assert set(conda) == direct, "environment.yml's pip block must list exactly requirements.in"
    drift = {k: (v, pins[k]) for k, v in conda.items() if pins[k] != v}
    assert not drift, f"environment.yml and requirements.txt disagree (yml, txt): {drift}"


def test_installed_versions_are_the_pinned_ones():
    from importlib.metadata import version

    pins = _pins(ROOT / "requirements.txt", ROOT / "requirements-nodeps.txt")
    for pkg in ("numpy", "tensorflow-cpu", "keras", "tf-keras", "jax", "openvino", "ai-edge-litert", "onnxruntime",
                "pandas", "papermill", "jupytext"):
        assert version(pkg) == pins[pkg], pkg


def test_make_help_lists_every_target():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for target in ("env", "test", "test-fast", "report", "render", "bench", "lab", "clean", "train", "benchmark"):
        assert re.search(rf"^\s+{target}\s+\S", out, re.M), f"make help does not document {target}"


def test_lib_is_not_ignored_and_data_is():
    ignored = subprocess.run(["git", "check-ignore", "-q", "lib/overhead/ladder/models.py"], cwd=ROOT).returncode
    assert ignored == 1, "lib/ must be tracked (a generic Python .gitignore ignores lib/)"
    assert subprocess.run(["git", "check-ignore", "-q", "data/models/x.keras"], cwd=ROOT).returncode == 0
    assert subprocess.run(["git", "check-ignore", "-q", "data/README.md"], cwd=ROOT).returncode == 1
    # the published runs' result files are committed, per machine
    assert subprocess.run(["git", "check-ignore", "-q", "data/results/any-machine/bench.csv"], cwd=ROOT).returncode == 1


def test_every_notebook_is_a_jupytext_source_that_says_where_its_outputs_are():
    import jupytext

    assert not list((ROOT / "notebooks").glob("*.ipynb")), "notebooks are jupytext .py sources, no .ipynb"
    assert not (ROOT / "tools").exists() or not list((ROOT / "tools").glob("make_*_notebook.py"))
    for path in sorted((ROOT / "notebooks").glob("0[1-4]_*.py")):
        nb = jupytext.read(path)
        assert nb.cells[0].cell_type == "markdown" and f"build/full/executed/{path.stem}.ipynb" in nb.cells[0].source
        assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1, path.name
        assert any("%autoreload 2" in c.source for c in nb.cells if c.cell_type == "code"), path.name
        assert not [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith("def ")], \
            f"{path.name} defines helpers: they belong in the package"


def test_no_file_names_a_path_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in ("README.md", "docs/contracts.md", "Makefile", ".ci/run", "pyproject.toml"):
        assert name in tracked.split() and "/work/" not in (ROOT / name).read_text(), name


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci/run").read_text()
    assert "make test" in (ROOT / "README.md").read_text() and "make report" in (ROOT / "README.md").read_text()
