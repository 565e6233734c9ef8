"""Render the executed report notebook into one self-contained HTML file, and publish the findings.

`python -m overhead.report.render NOTEBOOK HTML [--readme README.md --findings figures/findings.md]`

The page gets a linked table of contents (from its h2/h3 headings) after the title and introduction and a style sheet that
reads well in a browser and prints cleanly; nothing is loaded from the network.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from overhead.base.atomic import atomic_write_text

# nbconvert's lab template loads require.js and MathJax from a CDN; the report uses neither, and the
# file must open offline, so those tags are dropped.
EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>", re.I)
EXTERNAL_RESOURCE = re.compile(r"<(?:img|script|link|iframe)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//", re.I)
FINDINGS = re.compile(r"(<!-- findings:start -->\n).*?(<!-- findings:end -->)", re.S)
HEADING = re.compile(r"<h([23])\b[^>]*\bid=\"([^\"]+)\"[^>]*>(.*?)</h\1>", re.S)
CSS = """<style id="report-style">
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.5; color: #1a1a1a; }
.jp-Notebook, main { max-width: 1100px; margin: 0 auto !important; }
.jp-RenderedHTMLCommon table { font-size: 0.82em; border-collapse: collapse; margin: 0.6em 0; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { padding: 2px 6px; }
.jp-RenderedHTMLCommon h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
.jp-RenderedHTMLCommon img { max-width: 100%; height: auto; }
nav#toc { background: #f6f8fa; border: 1px solid #dde; border-radius: 6px; padding: 0.6em 1.2em; margin: 1em 0;
          font-size: 0.92em; }
nav#toc ol { margin: 0.2em 0; padding-left: 1.4em; } nav#toc ul.sub { margin: 0; padding-left: 1.2em; }
nav#toc li.h3 { list-style: circle; }
figure.report-figure { margin: 0.8em 0; } figure.report-figure figcaption { font-size: 0.9em; color: #333;
  max-width: 1000px; margin-top: 0.3em; }
nav#toc a { text-decoration: none; }
.jp-RenderedHTMLCommon pre { font-size: 0.8em; white-space: pre-wrap; }
.jp-RenderedHTMLCommon table.advice { table-layout: fixed; width: 100%; }
.jp-RenderedHTMLCommon table.advice td, .jp-RenderedHTMLCommon table.advice th { vertical-align: top;
  overflow-wrap: anywhere; text-align: left; }
.jp-RenderedHTMLCommon table.advice td:last-child code { white-space: normal; overflow-wrap: anywhere;
  font-size: 0.85em; background: none; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { overflow-wrap: anywhere; }
details { margin: 0.5em 0; max-width: 100%; overflow-x: auto; }
details > summary { cursor: pointer; color: #24527a; }
.jp-OutputArea-output, .jp-RenderedHTMLCommon { max-width: 100%; overflow-x: auto; }
@media print {
  details { display: block; } details > summary { display: none; }
  nav#toc { page-break-after: always; background: none; border: none; }
  .anchor-link { display: none; }
  .jp-RenderedHTMLCommon img, .jp-RenderedHTMLCommon table, pre { page-break-inside: avoid; }
  .jp-RenderedHTMLCommon h2, .jp-RenderedHTMLCommon h3 { page-break-after: avoid; }
  a { color: inherit; }
  body { font-size: 10.5pt; }
}
</style>
"""


def notebook_to_html(notebook: Path) -> str:
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True)
    nb = nbformat.read(notebook, as_version=4)
    for i, cell in enumerate(nb.cells):  # jupytext draws random cell ids: the same results give the same page
        cell.id = f"cell-{i}"
    html, _ = exporter.from_notebook_node(nb)
    return EXTERNAL_SCRIPT.sub("", html)


def external_references(html: str) -> list[str]:
    """Tags that would fetch something from the network when the page opens."""
    return [m.group(0) for m in EXTERNAL_RESOURCE.finditer(html)]


def _plain(fragment: str) -> str:
    text = re.sub(r"<a[^>]*class=\"anchor-link\"[^>]*>.*?</a>", "", fragment, flags=re.S)
    return re.sub(r"<[^>]+>", "", text).strip()


def toc(html: str) -> str:
    """A linked table of contents of the page's h2 / h3 headings (empty when there are none): sections numbered
    1, 2, 3 ... without gaps, their subsections in an unnumbered list under them."""
    out, open_sub = [], False
    for lvl, hid, body in HEADING.findall(html):
        link = f'<a href="#{hid}">{_plain(body)}</a>'
        if lvl == "3" and out:
            if not open_sub:
                out[-1] = out[-1].removesuffix("</li>") + '<ul class="sub">'
                open_sub = True
            out.append(f'<li class="h3">{link}</li>')
            continue
        if open_sub:
            out.append("</ul></li>")
            open_sub = False
        out.append(f'<li class="h2">{link}</li>')
    if open_sub:
        out.append("</ul></li>")
    return f'<nav id="toc"><strong>Contents</strong><ol>{"".join(out)}</ol></nav>' if out else ""


DEFAULT_ALT = "No description has been provided for this image"
IMG = re.compile(r"<img\b[^>]*>", re.I)
ALT = re.compile(r"\balt=([\"'])(.*?)\1", re.I | re.S)


def images_without_alt(html: str) -> list[str]:
    """The <img> tags with no alt text, an empty one, or nbconvert's placeholder (the start of each tag)."""
    bad = []
    for tag in IMG.findall(html):
        m = ALT.search(tag)
        if not m or not m.group(2).strip() or m.group(2).strip() == DEFAULT_ALT:
            bad.append(tag[:80])
    return bad


def layout(html: str) -> str:
    """Insert the style sheet into <head> and the table of contents before the first h2 (after the title and
    its introduction)."""
    html = html.replace("</head>", CSS + "</head>", 1) if "</head>" in html else CSS + html
    nav = toc(html)
    m = re.search(r"<h2\b", html)
    if nav and m:
        html = html[:m.start()] + nav + html[m.start():]
    return html


def render(notebook: Path, out: Path) -> Path:
    html = layout(notebook_to_html(notebook))
    found = external_references(html)
    if found:
        raise ValueError(f"the report would load external resources: {found[:3]}")
    bare = images_without_alt(html)
    if bare:
        raise ValueError(f"{len(bare)} figure(s) have no alt text (give them one with plotkit.describe): {bare[:2]}")
    return atomic_write_text(out, html)


def inject_findings(readme: Path, findings_md: str) -> bool:
    """Replace the README's findings block with the report's generated text; True when it changed."""
    text = readme.read_text()
    if not FINDINGS.search(text):
        raise ValueError(f"{readme} has no '<!-- findings:start -->' ... '<!-- findings:end -->' block")
    new = FINDINGS.sub(lambda m: m.group(1) + findings_md.strip() + "\n" + m.group(2), text)
    if new != text:
        atomic_write_text(readme, new)
    return new != text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m overhead.report.render", description=__doc__.splitlines()[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("html", type=Path)
    ap.add_argument("--readme", type=Path)
    ap.add_argument("--findings", type=Path)
    args = ap.parse_args(argv)
    try:
        render(args.notebook, args.html)
        if args.readme and args.findings:
            inject_findings(args.readme, args.findings.read_text())
    except (OSError, ValueError) as exc:
        print(f"overhead.report.render: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
