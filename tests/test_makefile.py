"""The Makefile's DAG, read with `make -n` / `make -q` on a scratch copy of the tree (nothing is executed).

The copy holds the Makefile, lib/, notebooks/ and the files .venv depends on; every target is then marked up
to date by its mtime, so `make -n -W <module>` shows exactly the stages a change to that module re-runs.
"""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from overhead import deps

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["01_train", "02_benchmark", "03_startup", "04_pipeline", "05_loadgen", "07_versions", "06_report"]


def _make(tree: Path, *args, timeout=120) -> subprocess.CompletedProcess:
    # The caller's make flags (`make -s test-fast` exports MAKEFLAGS=s) would silence the messages these tests read.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEFILES")}
    return subprocess.run(["make", "--no-print-directory", "-C", str(tree), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def _copy_tree(tmp: Path) -> Path:
    tree = tmp / "repo"
    tree.mkdir()
    for f in ("Makefile", "requirements.txt", "requirements-nodeps.txt", "pyproject.toml"):
        shutil.copy(ROOT / f, tree / f)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "lib", tree / "lib", ignore=ignore)
    shutil.copytree(ROOT / "notebooks", tree / "notebooks", ignore=ignore)
    shutil.copytree(ROOT / "params", tree / "params")
    (tree / ".venv" / "bin").mkdir(parents=True)
    (tree / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (tree / ".venv" / ".installed").touch()
    return tree


def _mark_up_to_date(tree: Path) -> None:
    """Sources old, then every generated file newer than what it is made from, in DAG order."""
    assert _make(tree, "-n", "report").returncode == 0      # writes build/deps/*.d (makefiles are remade)
    t0 = time.time() - 1000
    for p in ([q for q in (tree / "lib").rglob("*") if q.is_file()] + list((tree / "notebooks").glob("*.py"))
              + list((tree / "params").glob("*.yaml"))):
        os.utime(p, (t0, t0))
    for f in ("Makefile", "requirements.txt", "requirements-nodeps.txt", "pyproject.toml"):
        os.utime(tree / f, (t0, t0))
    generated = [tree / ".venv" / ".installed", *(tree / "build" / "deps").glob("*.d"),
                 tree / "build" / "full" / "extra_models.txt"]
    generated += [tree / "build" / "notebooks" / f"{s}.ipynb" for s in STAGES]
    generated += [tree / "build" / "full" / "executed" / f"{s}.ipynb" for s in STAGES]
    generated.append(tree / "reports" / "report.html")
    for k, p in enumerate(generated, start=1):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
        os.utime(p, (t0 + k, t0 + k))


def _reruns(tree: Path, module: str) -> set:
    out = _make(tree, "-n", "-W", module, "report")
    assert out.returncode == 0, out.stderr
    ran = set(re.findall(r"papermill .*?build/notebooks/(\d\d_\w+)\.ipynb", out.stdout))
    return ran | ({"render"} if "overhead.report.render" in out.stdout else set())


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    tree = _copy_tree(tmp_path_factory.mktemp("make"))
    _mark_up_to_date(tree)
    return tree


def test_up_to_date_tree_does_nothing(tree):
    assert _make(tree, "-q", "report").returncode == 0
    assert "Nothing to be done" in _make(tree, "-n", "report").stdout


def test_touching_a_shared_module_reruns_every_stage_that_imports_it(tree):
    assert _reruns(tree, "lib/overhead/base/config.py") == set(STAGES) | {"render"}
    # timing: the benchmark imports it (and every stage after reads the benchmark); training does not
    assert _reruns(tree, "lib/overhead/harness/timing.py") == set(STAGES[1:]) | {"render"}
    # the decomposition only: the pipeline stage and the report after it
    assert _reruns(tree, "lib/overhead/experiments/breakdown.py") == {"04_pipeline", "06_report", "render"}
    assert _reruns(tree, "lib/overhead/report/stagetext.py") == {"03_startup", "04_pipeline", "06_report", "render"}


def test_the_study_design_is_passed_as_data_and_reruns_every_stage(tree):
    out = _make(tree, "-n", "-B", "report").stdout
    assert out.count("-f params/full.yaml") == len(STAGES) and "-p quick" not in out
    assert "-f params/quick.yaml" in _make(tree, "-n", "-B", "report", "QUICK=1").stdout
    assert _reruns(tree, "params/full.yaml") == set(STAGES) | {"render"}


def test_the_dependencies_come_from_the_imports():
    for stage in STAGES:
        files = {p.relative_to(ROOT).as_posix() for p in deps.closure([str(ROOT / "notebooks" / f"{stage}.py")])}
        assert "lib/overhead/__init__.py" in files and "lib/overhead/base/config.py" in files, stage
    bench = {p.name for p in deps.closure([str(ROOT / "notebooks" / "02_benchmark.py")])}
    assert {"sweep.py", "timing.py", "envinfo.py"} <= bench
    assert "stagetext.py" not in bench       # only what the stage imports


def test_a_new_module_is_picked_up_without_editing_the_makefile(tmp_path):
    tree = _copy_tree(tmp_path)
    pkg = tree / "lib" / "overhead" / "brandnew"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""A sub-package another engineer adds."""\n')
    (pkg / "gap.py").write_text("from . import helper  # noqa: F401\nVALUE = 1\n")
    (pkg / "helper.py").write_text("X = 2\n")
    breakdown = tree / "lib" / "overhead" / "experiments" / "breakdown.py"
    breakdown.write_text(breakdown.read_text() + "\n\ndef _late():\n    from overhead.brandnew import gap\n"
                         "    return gap.VALUE\n")
    _mark_up_to_date(tree)
    assert "lib/overhead/brandnew/helper.py" in (tree / "build" / "deps" / "04_pipeline.d").read_text()
    assert _reruns(tree, "lib/overhead/brandnew/helper.py") == {"04_pipeline", "06_report", "render"}
    # a module the stage stops importing (deleted) re-runs it once instead of breaking make
    shutil.rmtree(pkg)
    out = _make(tree, "-n", "report")
    assert out.returncode == 0 and "No rule to make target" not in out.stderr, out.stderr


def test_child_process_modules_named_as_strings_count(tmp_path):
    src = tmp_path / "nb.py"
    src.write_text('import subprocess, sys\nsubprocess.run([sys.executable, "-m", "overhead.experiments.sweep", "worker"])\n'
                   '# %% [markdown]\n# text naming overhead.ladder.train in prose does not count\n')
    names = {p.name for p in deps.closure([str(src)])}
    assert "sweep.py" in names and "train.py" not in names


def test_lab_allows_root_only_as_root(tree):
    assert "--allow-root" in _make(tree, "-n", "lab", "USER_ID=0").stdout
    as_user = _make(tree, "-n", "lab", "USER_ID=1000").stdout
    assert "jupyter lab" in as_user and "--allow-root" not in as_user
    if os.getuid() == 0:
        assert "--allow-root" in _make(tree, "-n", "lab").stdout
    # the .py notebooks open as notebooks: a venv-local default-viewer override, not the user's home
    assert "jupytext-config --settings-file .venv/share/jupyter/lab/settings/overrides.json" in as_user


def test_help_names_the_new_targets_and_where_executed_notebooks_live(tree):
    text = _make(tree, "help").stdout
    for target in ("render", "test-fast", "lab", "report", "test", "loadgen"):
        assert re.search(rf"^\s+{re.escape(target)}\s", text, flags=re.M), target
    assert "build/full/executed/" in text and "jupytext" in text


def test_render_runs_only_the_report_on_the_committed_results(tmp_path):
    tree = _copy_tree(tmp_path)
    out = _make(tree, "-n", "render")
    assert out.returncode == 0, out.stderr
    ran = re.findall(r"papermill .*?build/notebooks/(\d\d_\w+)\.ipynb", out.stdout)
    assert ran == ["06_report"]
    assert f"-p data_dir {tree / 'data'} " in out.stdout
    assert f"-p figures_dir {tree / 'figures'}" in out.stdout
    assert "reports/report.html --readme README.md --findings figures/findings.md" in out.stdout


def test_quick_report_stays_in_build_quick(tmp_path):
    tree = _copy_tree(tmp_path)
    out = _make(tree, "-n", "report", "QUICK=1").stdout
    assert f"-p figures_dir {tree / 'build' / 'quick' / 'figures'}" in out
    assert "build/quick/report.html" in out
    assert "--readme" not in out and "reports/" not in out
    assert f"-p data_dir {tree / 'build' / 'quick' / 'data'}" in out


def test_gitignore_keeps_each_machines_results_and_ignores_the_rest_of_data(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    kept = ["data/README.md", "data/results/m1/bench.csv", "data/results/m1/bench.meta.json",
            "data/results/m2/idle_gap.csv", "data/results/m1/samples/x.npz", "data/results/m1/samples/b/y.npz"]
    ignored = ["data/raw/mnist.npz", "data/models/a.keras", "data/models/a.json", "data/artifacts/a/h/m.onnx",
               "data/results/m1/logs/worker.log", "data/results/m1/bench.csv.tmp", "data/results/top.csv",
               "data/results/m1/samples/notes.txt", "build/full/executed/01_train.ipynb", ".venv/.installed"]
    for f in kept + ignored:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("x")
    for f in kept:
        r = subprocess.run(["git", "-C", str(tmp_path), "check-ignore", "-q", f])
        assert r.returncode == 1, f"{f} is ignored"
    for f in ignored:
        r = subprocess.run(["git", "-C", str(tmp_path), "check-ignore", "-q", f])
        assert r.returncode == 0, f"{f} is not ignored"


@pytest.mark.slow
def test_make_render_rebuilds_report_figures_and_findings_from_result_files_alone(tmp_path):
    """`make render` on a results tree (the synthetic fixture as one machine) into a scratch output."""
    fixture = ROOT / "tests" / "fixtures"
    data = tmp_path / "data"
    shutil.copytree(fixture / "results", data / "results" / "synthetic-fixture-2c")
    # no data/models/: a fresh clone has only the committed result files
    readme = tmp_path / "README.md"
    readme.write_text("# t\n\n<!-- findings:start -->\nold\n<!-- findings:end -->\n\nrest\n")
    before = {p: p.stat().st_mtime for p in (ROOT / "figures").glob("*")} if (ROOT / "figures").exists() else {}
    out = _make(ROOT, "render", f"DATA={data}", f"FIG={tmp_path / 'figures'}", f"HTML={tmp_path / 'report.html'}",
                f"RUNS={tmp_path / 'executed'}", f"README_FILE={readme}", timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "executed").glob("*.ipynb")) == ["06_report.ipynb"]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "synthetic-fixture-2c" in html and "<img" in html
    assert (tmp_path / "figures" / "overhead_vs_compute.png").exists()
    text = readme.read_text()
    assert "old" not in text and text.endswith("rest\n") and "figures/hero.png" in text
    assert not (data / "artifacts").exists()                          # nothing was converted or measured
    assert {p: p.stat().st_mtime for p in before} == before            # the published figures are untouched


@pytest.mark.slow
def test_the_published_report_is_what_the_committed_results_render(tmp_path):
    """reports/report.html and the README's findings are `make render` of data/results/ by this code: a
    report change committed without its re-render (or results without theirs) fails here."""
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    html = tmp_path / "report.html"
    out = _make(ROOT, "render", f"FIG={tmp_path / 'figures'}", f"HTML={html}", f"RUNS={tmp_path / 'executed'}",
                f"README_FILE={readme}", timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    stale = "stale: run `make render` and commit reports/ figures/ README.md"
    assert readme.read_text() == (ROOT / "README.md").read_text(), stale
    # images left out: a figure's pixels may differ in the last bit on another CPU, its numbers may not
    page = [re.sub(r"data:image/[^\"']+", "", p.read_text(encoding="utf-8")) for p in (html, ROOT / "reports" / "report.html")]
    assert page[0] == page[1], stale


def test_a_template_edit_reruns_what_renders_it(tree):
    """The report's sentences live in templates: editing one re-runs the stages whose modules read it."""
    assert "render" in _reruns(tree, "lib/overhead/report/templates/tldr.md.j2")
    assert "03_startup" in _reruns(tree, "lib/overhead/report/templates/stage_startup.md.j2")
