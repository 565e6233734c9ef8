"""Page furniture for the report notebook: collapsible ``<details>`` blocks holding tables and markdown, and
markdown rendered to HTML (mistune, installed with nbconvert) so it can sit inside them."""
from __future__ import annotations

import html as _html

import pandas as pd


def md_html(md: str) -> str:
    import mistune
    return mistune.create_markdown(plugins=["table"], escape=False)(md)


def plain_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A named index becomes ordinary columns; a bare 0..n-1 index is dropped (no pandas index column)."""
    if any(n is not None for n in df.index.names):
        return df.reset_index()
    return df.reset_index(drop=True)


def part_html(part) -> str:
    if isinstance(part, pd.DataFrame):
        return plain_frame(part).to_html(classes="dataframe", border=0, na_rep="", escape=True, index=False)
    if hasattr(part, "to_html"):                 # a Styler
        return part.to_html()
    return md_html(str(part))


def details_html(summary: str, *parts) -> str:
    body = "".join(part_html(p) for p in parts if p is not None and (not isinstance(p, pd.DataFrame) or len(p)))
    return f"<details><summary>{_html.escape(summary)}</summary>{body}</details>"


def table(df):
    """A table shown in the page (not collapsed) without a pandas index column."""
    from IPython.display import HTML
    if df is None or (isinstance(df, pd.DataFrame) and not len(df)):
        return HTML("")
    return HTML(part_html(df))


def details(summary: str, *parts):
    """A collapsed block (closed by default) with ``parts``: DataFrames, Stylers or markdown strings."""
    from IPython.display import HTML
    return HTML(details_html(summary, *parts))
