"""notebooks/06_report.py (jupytext source) on the synthetic fixture via papermill, rendered like `make report`."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_report.py"
FIXTURE = Path(__file__).parent / "fixtures"
MACHINE = "synthetic-fixture-2c"
SECTIONS = ["What should you do?", "Who pays for predict?", "Where does overhead stop mattering?",
            "How much slower than NumPy?", "Batch size", "Threads", "Sparse traffic", "Cold start and memory",
            "Memory in a loop", "Pipeline", "Where the time goes", "Ceilings", "How stable are the measurements?",
            "The original claims, checked", "Limitations", "Appendix", "Method", "Parity", "The code of each path"]
FIGURES = ["hero", "overhead_vs_compute", "who_pays", "slowdown_vs_numpy", "batch_size", "threads", "idle_gap",
           "cold_start", "pipeline", "breakdown", "roofline"]


def _data_tree(tmp: Path, drop=()) -> Path:
    data = tmp / "data"
    res = data / "results" / MACHINE
    res.mkdir(parents=True)
    for p in (FIXTURE / "results").iterdir():
        if p.name.split(".")[0] not in drop:
            shutil.copy(p, res / p.name)
    shutil.copytree(FIXTURE / "models", data / "models")
    return data


def _run(tmp: Path, data: Path, monkeypatch, **params) -> Path:
    from nbrun import run_notebook
    monkeypatch.setenv("OVERHEAD_MACHINE", "report-test-runner")   # the kernel skips the CPU probe
    run_notebook(NOTEBOOK.name, tmp, data_dir=str(data), figures_dir=str(tmp / "figures"), **params)
    return tmp / f"{NOTEBOOK.stem}.ipynb"


def _text(html: str) -> str:
    t = re.sub(r"<style.*?</style>|<script.*?</script>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", t)).replace("&amp;", "&")


def test_committed_notebook_is_clean_and_parameterised():
    import jupytext
    nb = jupytext.read(NOTEBOOK)
    assert "%load_ext autoreload" in nb.cells[0].source and "%autoreload 2" in nb.cells[0].source
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1
    for name in ("study = {}", "data_dir = None", "figures_dir = None", "machine = None", "extra_models = []"):
        assert name in params[0].source
    # no number typed by hand in the narrative: markdown cells carry no numbers (names like float32 are fine)
    for c in nb.cells:
        if c.cell_type == "markdown":
            assert not re.search(r"\b\d", c.source), c.source[:80]


@pytest.mark.slow
def test_report_renders_self_contained_html_with_every_section(tmp_path, monkeypatch):
    out = _run(tmp_path, _data_tree(tmp_path), monkeypatch)
    for name in FIGURES:
        assert (tmp_path / "figures" / f"{name}.png").exists(), name
        assert (tmp_path / "figures" / f"{name}.svg").exists(), name
    executed = nbformat.read(out, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    from overhead.report import render
    render.render(out, tmp_path / "report.html")            # what `make report` runs
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert not re.search(r'<script[^>]+src="(https?:)?//', html)       # no CDN require.js / MathJax
    assert "TL;DR" in (tmp_path / "figures" / "findings.md").read_text() or \
        len((tmp_path / "figures" / "findings.md").read_text()) > 100
    imgs = re.findall(r"<img\b[^>]*>", html)
    assert len(imgs) >= len(FIGURES)
    srcs = [re.search(r'src="([^"]+)"', t).group(1) for t in imgs]
    assert len(srcs) == len(set(srcs))                                        # no image twice
    assert len(html.encode()) <= 2.5e6
    for tag in imgs:
        src = re.search(r'src="([^"]*)"', tag).group(1)
        assert src.startswith("data:image/"), tag[:120]
    assert not re.search(r'<img[^>]+src="(https?:)?//', html)
    assert not re.search(r'<link[^>]+href="https?://[^"]+\.css', html)    # styles inlined
    assert "analysis.analyse(" not in _text(html) and "display(Markdown" not in _text(html)  # inputs hidden
    text = _text(html)
    headings = [_text(h) for h in re.findall(r"<h[1-3][^>]*>.*?</h[1-3]>", html, flags=re.S)]
    for section in SECTIONS:
        assert any(section in h for h in headings), section
    order = [text.find(h) for h in ("Advice:", "What should you do?", "Who pays for predict?", "Limitations",
                                    "Appendix")]
    assert order == sorted(order) and -1 not in order, order
    toc = re.search(r'<nav id="toc">.*?</nav>', html, flags=re.S).group(0)   # linked table of contents
    assert toc.count("<a href=\"#") >= len(SECTIONS) - 2 and html.find("<h1") < html.find("Advice:") < html.find('<nav id="toc"') < html.find('id="What-should-you-do?"')
    assert "@media print" in html
    assert "Not measured: no" not in text                   # every required stage of the fixture is present
    for what in ("idle_gap.csv", "memory_loop.csv", "ceilings.csv"):
        assert f"no {what}" not in text, what
    assert MACHINE in text and "cnn_seed" in text
    assert "seed-article" not in html and "/shared/" not in html             # the article by its title only
    assert "This run predates source recording" in text                      # the fixture's bench.meta.json has
    assert "model.predict(x" in text                                         # no timed_code: catalogue snippets


@pytest.mark.slow
def test_report_says_not_measured_for_missing_stages(tmp_path, monkeypatch):
    out = _run(tmp_path, _data_tree(tmp_path, drop=("startup", "pipeline", "breakdown", "idle_gap", "memory_loop",
                                                              "ceilings")),
               monkeypatch,
               extra_models=["/somewhere/cnn_small.keras"])
    nb = nbformat.read(out, as_version=4)
    shown = json.dumps([o for c in nb.cells if c.cell_type == "code" for o in c.outputs])
    assert not any(o.output_type == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    for what in ("cold-start measurement", "pipeline measurement", "per-call decomposition"):
        assert f"*Not measured:* no {what}" in shown, what
    for what in ("idle_gap.csv", "memory_loop.csv", "distortion.csv", "ceilings.csv"):
        assert f"*Not measured in this run:* no `{what}`" in shown, what
    assert "Your model `cnn_small`" in shown
    assert not (tmp_path / "figures" / "pipeline.png").exists()
