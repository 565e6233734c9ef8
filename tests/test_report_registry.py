"""Every committed result table reaches the report: the sections are rendered from the committed data/results/
(every machine found there) and none of them says "not measured" for a table its machine committed. No
TensorFlow is imported; the registry (``overhead.base.tables``) names each table's section renderer."""
import importlib
from pathlib import Path

import pytest

from overhead.base import tables
from overhead.report import analysis as A
from overhead.report import loading
from overhead.report.sections import loadgen

PUBLISHED = Path(__file__).resolve().parents[1] / "data" / "results"
MACHINES = sorted(p.name for p in PUBLISHED.iterdir() if (p / "bench.csv").is_file()) if PUBLISHED.is_dir() else []
# folders holding side experiments only (a stage run on a machine whose sweep is not published)
SIDE = sorted(p.name for p in PUBLISHED.iterdir()
              if p.is_dir() and p.name not in MACHINES and any(p.glob("*.csv"))) if PUBLISHED.is_dir() else []
NOT_MEASURED = "*Not measured"       # the start of fmt.NOT_MEASURED and fmt.not_measured


@pytest.fixture(scope="module")
def results():
    return loading.load_results(PUBLISHED)


def _render(entry, R) -> str:
    module, function = entry.renderer.split(":")
    return str(getattr(importlib.import_module(module), function)(R))


def test_every_committed_table_is_declared_once():
    assert len(tables.BY_STEM) == len(tables.TABLES)
    for m in MACHINES + SIDE:
        for csv in (PUBLISHED / m).glob("*.csv"):
            assert csv.stem in tables.BY_STEM, f"{m}/{csv.name} is committed but not declared in overhead.base.tables"


def test_every_renderer_named_by_the_registry_exists():
    for t in tables.TABLES:
        module, function = t.renderer.split(":")
        assert callable(getattr(importlib.import_module(module), function, None)), t.renderer
        assert t.loader in loading.LOADERS, t


@pytest.mark.skipif(not MACHINES, reason="no committed results")
@pytest.mark.parametrize("machine", MACHINES)
def test_every_committed_table_renders_its_section(results, machine):
    R = A.analyse(results, loading.models_from_results(PUBLISHED, prefer=machine), n_boot=10,
                  preferred_machine=machine)
    assert R.machine == machine
    for t in tables.TABLES:
        if not (PUBLISHED / machine / t.file).is_file():
            continue
        text = _render(t, R)
        assert NOT_MEASURED not in text, (f"{machine}/{t.file} is committed but its section "
                                          f"'{t.section}' says: {text[:160]}")


# models.csv describes the ladder, not a machine; loadgen.csv's section names each machine in its own heading
# (tests below), its lead sentence only the machine with confirmed maxima
NOT_PER_MACHINE = {"models.csv", "loadgen.csv"}


@pytest.mark.parametrize("machine", MACHINES)
def test_a_section_measured_on_several_machines_names_each(results, machine):
    """A claim that holds on some machines and not others names them: a section whose table is committed for
    several machines speaks for each, not for the report's machine alone."""
    R = A.analyse(results, loading.models_from_results(PUBLISHED, prefer=machine), n_boot=10,
                  preferred_machine=machine)
    for t in tables.TABLES:
        have = [m for m in MACHINES + SIDE if (PUBLISHED / m / t.file).is_file()]
        if len(have) < 2 or t.file in NOT_PER_MACHINE:
            continue
        text = _render(t, R)
        assert all(m in text for m in have), f"{t.file}: '{t.section}' names not every machine of {have}: {text[:200]}"


@pytest.mark.skipif(not (SIDE and MACHINES), reason="no committed folder without a sweep")
@pytest.mark.parametrize("side", SIDE)
def test_a_folder_without_a_sweep_reaches_its_sections(results, side):
    # e.g. the version and LoadGen stages run on a machine whose sweep is not published: the report's machine is
    # a swept one, and the side machine's tables must still be shown, named by their machine
    R = A.analyse(results, loading.models_from_results(PUBLISHED, prefer=MACHINES[0]), n_boot=10,
                  preferred_machine=MACHINES[0])
    for t in tables.TABLES:
        if not (PUBLISHED / side / t.file).is_file():
            continue
        text = _render(t, R)
        assert NOT_MEASURED not in text, f"{side}/{t.file} is committed but '{t.section}' says: {text[:160]}"
        assert side in text, f"{side}/{t.file}: section '{t.section}' does not name the machine it comes from"


def _lg_rows(machine, duration_s, qps):
    base = dict(machine=machine, scenario="Server", model="cnn_seed", path="litert", transport="inproc",
                strategy="thread", workers=1, threads=1, batching=None, bound_ms=10.0, status="ok", parity="pass",
                role="bisection", stationary=True, p50_us=100.0, p90_us=200.0, p99_us=900.0)
    return [dict(base, duration_s=0.5, target_qps=qps * 2, validity="INVALID"),
            dict(base, duration_s=duration_s, target_qps=qps, validity="VALID"),
            dict(base, scenario="SingleStream", role="single-stream", duration_s=1.0, target_qps=float("nan"),
                 validity="VALID")]


def test_long_run_maxima_lead_the_under_load_section_and_the_advice():
    import pandas as pd
    from overhead.report.sections import advice
    from overhead.experiments.loadgen_table import COLUMNS
    frame = pd.DataFrame(_lg_rows("short-runs-only", 0.5, 80_000) + _lg_rows("long-runs", 12.0, 5_000),
                         columns=COLUMNS)
    R = A.Results(machine="short-runs-only", machines=["short-runs-only"])
    R.extra["loadgen"] = frame
    order = [m for m, _ in loadgen.loadgen_machines(R)]
    assert order == ["long-runs", "short-runs-only"]
    assert loadgen.loadgen_text(R).startswith("On `long-runs`")
    row = advice._under_load_row(R)
    assert "`long-runs`" in row["situation"] and "upper bound" not in row["situation"]


@pytest.mark.skipif("amd-epyc-zen5-2c" not in MACHINES, reason="the run with loadgen.csv is not committed")
def test_the_check_fails_when_loading_drops_a_table(monkeypatch):
    # the bug of issue 22: a hand-kept list that left loadgen.csv out of the results object
    monkeypatch.setattr(loading, "RESULT_FILES", tuple(s for s in loading.RESULT_FILES if s != "loadgen"))
    R = A.analyse(loading.load_results(PUBLISHED), None, n_boot=5, preferred_machine="amd-epyc-zen5-2c")
    assert NOT_MEASURED in loadgen.loadgen_text(R)


@pytest.mark.skipif("amd-epyc-zen5-2c" not in MACHINES, reason="the run with loadgen.csv is not committed")
def test_short_run_server_points_reach_the_advice_as_upper_bounds(results):
    # Server points of 0.5 s publish no maximum (Zen 5's first LoadGen run). The advice takes a machine whose
    # long runs published maxima when one is committed (and names it), else says what the short runs show
    from overhead.report.sections import advice
    R = A.analyse(results, None, n_boot=5, preferred_machine="amd-epyc-zen5-2c")
    rows = advice.advice(R)
    row = rows[rows["situation"].str.contains("under load")].iloc[0]
    assert "not measured" not in row["fastest (measured)"]
    first, frame = loadgen.loadgen_machines(R)[0]
    if loadgen.has_confirmed_maxima(frame):
        # the advice uses the first machine with long-run maxima, named when it is not the report's machine
        assert first == R.machine or f"`{first}`" in row["situation"]
        assert "upper bound" not in row["situation"]
    else:
        assert "upper bound" in row["situation"] and "at most" in row["fastest (measured)"]
