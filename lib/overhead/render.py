"""Render the executed report notebook into one self-contained HTML file, and publish the findings.

`python -m overhead.render NOTEBOOK HTML [--readme README.md --findings figures/findings.md]`
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from overhead.timing import atomic_write_text

# nbconvert's lab template loads require.js and MathJax from a CDN; the report uses neither, and the
# file must open offline, so those tags are dropped.
EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>", re.I)
EXTERNAL_RESOURCE = re.compile(r"<(?:img|script|link|iframe)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//", re.I)
FINDINGS = re.compile(r"(<!-- findings:start -->\n).*?(<!-- findings:end -->)", re.S)


def notebook_to_html(notebook: Path) -> str:
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True)
    html, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    return EXTERNAL_SCRIPT.sub("", html)


def external_references(html: str) -> list[str]:
    """Tags that would fetch something from the network when the page opens."""
    return [m.group(0) for m in EXTERNAL_RESOURCE.finditer(html)]


def render(notebook: Path, out: Path) -> Path:
    html = notebook_to_html(notebook)
    found = external_references(html)
    if found:
        raise ValueError(f"the report would load external resources: {found[:3]}")
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
    ap = argparse.ArgumentParser(prog="python -m overhead.render", description=__doc__.splitlines()[0])
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
        print(f"overhead.render: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
