"""The report's sentences live in Jinja2 templates (``templates/*.md.j2``), one finding each; this module renders
them with the formatting helpers as filters, and counts words the way a reader does."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from overhead.report.fmt import code, fmt_flops, fmt_pct, fmt_us, fmt_x

TEMPLATES = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def _env():
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False, autoescape=False)
    env.filters.update(us=fmt_us, flops=fmt_flops, pct=fmt_pct, x=fmt_x, code=code)
    return env


def render(name: str, **facts) -> str:
    """Render ``templates/<name>.md.j2`` with ``facts`` (a missing fact is an error, never a blank)."""
    return _env().get_template(f"{name}.md.j2").render(**facts).strip()


def words(markdown: str) -> int:
    """Words a reader reads: markup (``|``, ``*``, backticks, table rules, HTML tags) dropped, every remaining
    whitespace-separated token with a letter or digit counted."""
    text = re.sub(r"<[^>]+>", " ", markdown)
    text = re.sub(r"[|*`#]", " ", text)
    return sum(1 for t in text.split() if re.search(r"\w", t))
