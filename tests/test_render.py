import re
from pathlib import Path

import pytest

from overhead.report import render


def test_external_scripts_are_dropped_and_detected():
    html = ('<head><script src="https://cdn.example/require.js"></script><script>var a=1;</script></head>'
            '<img src="data:image/png;base64,AAAA">')
    cleaned = render.EXTERNAL_SCRIPT.sub("", html)
    assert "cdn.example" not in cleaned and "var a=1" in cleaned
    assert render.external_references(cleaned) == []
    assert render.external_references('<img src="http://x/y.png">')
    assert render.external_references('<link rel="stylesheet" href="//x/y.css">')


def test_findings_replace_only_the_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# T\n<!-- findings:start -->\nold\n<!-- findings:end -->\nrest\n")
    assert render.inject_findings(readme, "new **finding**\n") is True
    assert readme.read_text() == "# T\n<!-- findings:start -->\nnew **finding**\n<!-- findings:end -->\nrest\n"
    assert render.inject_findings(readme, "new **finding**") is False


def test_readme_without_markers_is_a_clear_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no block\n")
    with pytest.raises(ValueError, match="findings:start"):
        render.inject_findings(readme, "x")
    assert readme.read_text() == "# no block\n"


def test_layout_adds_a_linked_table_of_contents_and_print_styles():
    html = ('<html><head><title>t</title></head><body><h1 id="T">Title</h1><p>x</p>'
            '<h2 id="TL;DR">TL;DR<a class="anchor-link" href="#TL;DR">¶</a></h2>'
            '<h3 id="Overhead-share">Overhead share</h3><h2 id="Appendix">Appendix</h2></body></html>')
    out = render.layout(html)
    assert out.index("<p>x</p>") < out.index('<nav id="toc">') < out.index('<h2 id="TL;DR">')
    assert '<a href="#TL;DR">TL;DR</a>' in out and '<li class="h3"><a href="#Overhead-share">' in out
    assert "¶" not in render.toc(html)
    assert "@media print" in out and out.index("report-style") < out.index("</head>")
    assert render.external_references(out) == []
    assert render.toc("<p>no headings</p>") == ""


def test_main_reports_a_bad_notebook_in_one_line(tmp_path, capsys):
    assert render.main([str(tmp_path / "missing.ipynb"), str(tmp_path / "out.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("overhead.report.render: error:") and err.count("\n") == 1
    assert not (tmp_path / "out.html").exists()


def test_contents_number_sections_without_gaps():
    html = ('<h2 id="a">A</h2><h3 id="a1">A1</h3><h3 id="a2">A2</h3><h2 id="b">B</h2><h3 id="b1">B1</h3>'
            '<h2 id="c">C</h2>')
    nav = render.toc(html)
    top = re.sub(r"<ul class=\"sub\">.*?</ul>", "", nav)
    assert top.count('<li class="h2">') == 3 and 'class="h3"' not in top    # subsections outside the numbering
    assert nav.count('<li class="h3">') == 3


def test_images_without_alt_text_are_found():
    ok = '<img src="data:image/png;base64,AA" alt="Latency against FLOPs">'
    assert render.images_without_alt(ok) == []
    for bad in ('<img src="x.png">', '<img src="x.png" alt="">', f'<img src="x.png" alt="{render.DEFAULT_ALT}">'):
        assert render.images_without_alt(bad), bad


def test_the_published_report_has_alt_text_on_every_image():
    page = (Path(__file__).resolve().parents[1] / "reports" / "report.html").read_text()
    assert "<img" in page
    assert render.images_without_alt(page) == []


def test_the_same_notebook_renders_the_same_page_whatever_its_cell_ids(tmp_path):
    import nbformat

    pages = []
    for k in range(2):  # two conversions of one source: jupytext would draw different random ids
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A"), nbformat.v4.new_code_cell("1")])
        for cell in nb.cells:
            cell.id = f"random{k}{id(cell)}"
        path = tmp_path / f"nb{k}.ipynb"
        nbformat.write(nb, path)
        pages.append(render.notebook_to_html(path))
    assert pages[0] == pages[1] and 'id="cell-id=cell-0"' in pages[0]
