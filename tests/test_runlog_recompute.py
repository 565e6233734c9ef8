"""runlog.recompute: the run-level columns redone for a published bench table from its pooled samples."""
import numpy as np
import pandas as pd

from overhead.base import atomic
from overhead.experiments import runlog
from overhead.harness import interval


def test_recompute_applies_the_between_runs_rule_to_pooled_samples(tmp_path):
    rng = np.random.default_rng(0)
    agree = np.concatenate([2e6 * rng.lognormal(0, 0.3, 100) for _ in range(3)]).astype(np.int64)
    apart = np.concatenate([2e6 * f * rng.lognormal(0, 0.01, 100) for f in (1.0, 1.0, 1.3)]).astype(np.int64)
    for name, x in (("agree", agree), ("apart", apart)):
        atomic.save_samples(tmp_path / f"samples/{name}.npz", {"samples_ns": x, "run_lengths": np.array([100] * 3)})
    bench = pd.DataFrame({"model": ["m"] * 3, "backend": ["a", "b", "c"], "median_us": [0.0, 0.0, 7.0],
                          "unstable": [True, False, True],
                          "samples_file": ["samples/agree.npz", "samples/apart.npz", "samples/gone.npz"]})
    out = runlog.recompute(bench, tmp_path)
    assert list(out["restat"]) == [True, True, False] and len(out) == 3
    a, b, gone = out.iloc[0], out.iloc[1], out.iloc[2]
    assert not a.unstable and a.unstable_pyperf and a.jitter_p90 > 1.2  # jitter, not instability
    assert b.unstable and "and 3 disagree" in b.unstable_reason and b.run_spread > 0.25
    assert b.ci_lo_us <= b.median_us <= b.ci_hi_us and b.ci_hi_us > 1.1 * b.median_us
    assert gone.median_us == 7.0 and gone.unstable  # no samples file: kept as it was
    assert bench["median_us"].tolist() == [0.0, 0.0, 7.0]  # the input is not changed


def test_restat_cli_rewrites_bench_csv_and_refuses_a_wrong_folder(tmp_path, capsys):
    import json

    rng = np.random.default_rng(1)
    x = np.concatenate([2e6 * f * rng.lognormal(0, 0.01, 50) for f in (1.0, 1.2, 1.0)]).astype(np.int64)
    atomic.save_samples(tmp_path / "samples/a.npz", {"samples_ns": x, "run_lengths": np.array([50] * 3)})
    pd.DataFrame({"model": ["m"], "backend": ["a"], "batch": [1], "threads": [1], "status": ["ok"],
                  "unstable": [False], "samples_file": ["samples/a.npz"]}).to_csv(tmp_path / "bench.csv", index=False)
    (tmp_path / "bench.meta.json").write_text(json.dumps({"machine": "box", "ci_method": "old"}))
    assert runlog.main(["restat", str(tmp_path)]) == 0
    assert "batch-1 rows unstable: 100.0% (runs disagree)" in capsys.readouterr().out
    out = pd.read_csv(tmp_path / "bench.csv")
    assert list(out.columns) == runlog.COLUMNS and bool(out.unstable.iloc[0]) and out.run_spread.iloc[0] > 0.15
    meta = json.loads((tmp_path / "bench.meta.json").read_text())
    assert meta["machine"] == "box" and meta["ci_method"] == interval.CI_METHOD and meta["restat"]["rows"] == 1
    assert runlog.main(["restat", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "bench.csv not found" in err and "Traceback" not in err
    assert runlog.main([]) == 2


def test_runs_disagree_reads_the_per_run_files(tmp_path):
    rng = np.random.default_rng(2)
    runs = {}
    for r, f in ((1, 1.0), (2, 1.0), (3, 1.25)):
        rel = f"samples/m/a__b1__t1__r{r}.npz"
        atomic.save_samples(tmp_path / rel, {"samples_ns": (2e6 * f * rng.lognormal(0, 0.01, 40)).astype(np.int64)})
        runs[r] = {"run": r, "status": "ok", "samples_file": rel}
    assert runlog.runs_disagree(runs, tmp_path)
    assert not runlog.runs_disagree({r: runs[r] for r in (1, 2)}, tmp_path, min_runs=2)
    assert runlog.runs_disagree({r: runs[r] for r in (1, 2)}, tmp_path)  # 2 runs < 3: not judged yet
    assert not runlog.runs_disagree({1: {"run": 1, "status": "skipped"}}, tmp_path)  # settled: no more runs
