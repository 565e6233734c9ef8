import pytest

from overhead import render


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
