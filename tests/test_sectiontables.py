"""The report's section tables read as tables for a reader (labels with units, no index column, no long dumps,
a finding each), raw tables are linked, and the one call timed in several sections is reconciled."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from overhead.base import config
from overhead.report import analysis, layout, loading
from overhead.report.sections import appendix, distortion, pipeline, reconcile, startup

RAW_NAME = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")     # import_s, cold_over_steady, median_us_a, ...


@pytest.fixture(scope="module")
def R():
    root = config.data_dir(None) / "results"
    return analysis.analyse(loading.load_results(root), loading.models_from_results(root), n_boot=5)


def test_part_html_drops_the_pandas_index_column():
    html = layout.part_html(pd.DataFrame({"a": [1, 2]}, index=[47, 77]))
    assert ">47<" not in html and "<th>a</th>" in html
    named = layout.part_html(pd.DataFrame({"v": [1]}, index=pd.Index(["x"], name="backend")))
    assert named.count("<tr") == 2 and "<th>backend</th>" in named       # one header row, the index as a column


@pytest.mark.parametrize("make", [startup.startup_table, pipeline.pipeline_table,
                                  distortion.distortion_table])
def test_section_tables_have_readable_labels(R, make):
    t = make(R)
    assert len(t)
    assert not [c for c in t.columns if RAW_NAME.match(str(c))]
    assert isinstance(t.index, pd.RangeIndex)


def test_raw_links_point_at_the_committed_csvs_from_the_report():
    md = appendix.raw_links(config.data_dir(None) / "results", config.REPORTS)
    links = re.findall(r"\]\(([^)]+)\)", md)
    assert links and all(not Path(x).is_absolute() for x in links)
    assert all((config.REPORTS / x).resolve().is_file() for x in links)


def test_predict_timings_of_every_section_side_by_side(R):
    t = reconcile.contexts(R)
    assert t["section"].iloc[0] == "Timing sweep" and t["ratio"].iloc[0] == pytest.approx(1.0)
    assert len(t) >= 3                              # the committed runs time it in the sweep and elsewhere
    text = reconcile.text(t)
    lo, hi = t.loc[t["median_us"].idxmin(), "section"], t.loc[t["median_us"].idxmax(), "section"]
    assert lo.lower() in text and hi.lower() in text
