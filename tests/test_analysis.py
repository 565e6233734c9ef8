"""overhead.report.analysis / latency / loading on synthetic results with known answers (no timing)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from overhead.report import analysis as A
from overhead.report import latency as L
from overhead.report import loading

FIXTURE = Path(__file__).parent / "fixtures"


def _make_fixture_module():
    spec = importlib.util.spec_from_file_location("make_fixture", FIXTURE / "make_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def planted(flops, overhead_us=50.0, gflops=20.0, noise=0.02, outlier=None, seed=1):
    rng = np.random.default_rng(seed)
    y = L.predict_latency(flops, overhead_us, gflops) * np.exp(rng.normal(0, noise, len(flops)))
    if outlier is not None:
        y[outlier] *= 3.0
    return y


def bench_rows(backends: dict, flops, threads=2, machine="m", batch=1, noise=0.0, seed=0, ci=0.01):
    """A bench-like frame: one ok row per model × backend with latency = o + F / g (optionally noisy)."""
    rng = np.random.default_rng(seed)
    rows = []
    for b, (o, g) in backends.items():
        for i, f in enumerate(flops):
            med = float(L.predict_latency(f * batch, o, g)) * float(np.exp(rng.normal(0, noise))) if noise else \
                float(L.predict_latency(f * batch, o, g))
            rows.append({"machine": machine, "model": f"m{i:02d}", "flops": f, "params": 1, "backend": b,
                         "batch": batch, "threads": threads, "status": "ok", "reason": "", "max_abs_err": 1e-6,
                         "top1_agree": 1.0, "accuracy": 0.9, "ref_accuracy": 0.9, "n": 100, "median_us": med,
                         "ci_lo_us": med * (1 - ci), "ci_hi_us": med * (1 + ci), "cv": 0.01, "unstable": False})
    return pd.DataFrame(rows)


FLOPS = np.geomspace(1e3, 4e9, 11)


# ---------------------------------------------------------------- the fit ------------------------------
def test_fit_recovers_planted_overhead_and_throughput_despite_noise():
    y = planted(FLOPS, 50.0, 20.0, noise=0.02)
    fit = L.fit(FLOPS, y)
    assert fit["overhead_us"] == pytest.approx(50.0, rel=0.05)
    assert fit["gflops"] == pytest.approx(20.0, rel=0.05)
    assert fit["n"] == len(FLOPS)


def test_bootstrap_ci_brackets_the_truth_and_is_reproducible():
    y = planted(FLOPS, 50.0, 20.0, noise=0.02)
    a = L.fit_backend(FLOPS, y, n_boot=150, seed=3)
    b = L.fit_backend(FLOPS, y, n_boot=150, seed=3)
    assert {k: v for k, v in a.items() if k not in ("two_term", "per_layer")} == \
        {k: v for k, v in b.items() if k not in ("two_term", "per_layer")}
    assert a["model"] == "two-term"
    for key, truth in (("overhead_us", 50.0), ("gflops", 20.0)):
        assert a[f"{key}_lo"] <= a[key] <= a[f"{key}_hi"]
        assert 0.95 * a[f"{key}_lo"] <= truth <= 1.05 * a[f"{key}_hi"]     # a 95 % CI may just miss
    assert a["cross10_flops_lo"] <= a["cross10_flops"] <= a["cross10_flops_hi"]
    assert a["n_boot"] > 100


def test_fit_exact_data_and_bounds():
    exact = L.fit(FLOPS, L.predict_latency(FLOPS, 123.0, 7.5))
    assert exact["overhead_us"] == pytest.approx(123.0, rel=1e-4)
    assert exact["gflops"] == pytest.approx(7.5, rel=1e-4)
    no_overhead = L.fit(FLOPS[3:], L.predict_latency(FLOPS[3:], 0.0, 30.0))
    assert no_overhead["overhead_us"] >= 0.0
    assert no_overhead["overhead_us"] < 0.01 * L.predict_latency(FLOPS[3], 0.0, 30.0)
    assert no_overhead["gflops"] == pytest.approx(30.0, rel=1e-3)


def test_fit_needs_two_distinct_flop_counts():
    out = L.fit([1e6, 1e6, 1e6], [10.0, 11.0, 12.0])
    assert np.isnan(out["overhead_us"]) and np.isnan(out["gflops"])
    assert np.isnan(L.fit_backend([1e6], [10.0], n_boot=10)["overhead_us_lo"])
    assert np.isnan(L.fit(FLOPS[:3], planted(FLOPS[:3]), [1, 2, 3], "per-layer")["overhead_us"])  # 3 params


@pytest.mark.parametrize("share", [0.5, 0.1, 0.01])
def test_crossover_closed_form(share):
    o, g = 50.0, 20.0
    f = L.crossover_flops(o, g, share)
    assert f == pytest.approx(o * 1e3 * g * (1 - share) / share)
    assert L.fixed_share(f, o, g) == pytest.approx(share)
    assert L.crossover_flops(50.0, 20.0, 0.5) == pytest.approx(1e6)   # 50 µs at 20 GFLOP/s = 1 MFLOP


def test_fit_all_uses_ok_rows_of_the_main_sweep_only():
    planted_ = {"numpy": (8.0, 30.0), "keras.predict": (9000.0, 40.0)}
    bench = pd.concat([bench_rows(planted_, FLOPS, threads=2, noise=0.02),
                       bench_rows(planted_, FLOPS[:4], threads=1, noise=0.02, seed=1)])
    bad = bench.iloc[[0]].assign(status="failed", median_us=1e9, ci_lo_us=1e9, ci_hi_us=1e9, model="broken",
                                 flops=5e5)
    res = {"bench": pd.concat([bench, bad]), "machines": ["m"],
           "gemm": pd.DataFrame({"machine": ["m", "m"], "threads": [1, 2], "n": 2048, "gflops": [50., 100.]})}
    fits = A.analyse(res, n_boot=30).fits
    assert set(fits["threads"]) == {2}
    f = fits.set_index("backend")
    for b, (o, g) in planted_.items():
        assert f.loc[b, "overhead_us"] == pytest.approx(o, rel=0.1)
        assert f.loc[b, "gflops"] == pytest.approx(g, rel=0.1)
    assert f.loc["numpy", "n_models"] == len(FLOPS)
    assert f.loc["numpy", "peak_gflops"] == 100.0
    assert f.loc["numpy", "fit_peak_share"] == pytest.approx(f.loc["numpy", "gflops"] / 100.0)


# ---------------------------------------------------------------- tables -------------------------------
def test_relative_table_against_numpy_and_keras_predict():
    bench = bench_rows({"numpy": (10.0, 1e9), "keras.predict": (20.0, 1e9), "litert": (10.0, 1e9)}, [1e3, 1e4])
    vs = A.relative_table(bench, "numpy").set_index(["model", "backend"])
    assert vs.loc[("m00", "keras.predict"), "slowdown"] == pytest.approx(2.0, rel=1e-6)
    assert bool(vs.loc[("m00", "keras.predict"), "significant"])
    assert not bool(vs.loc[("m00", "litert"), "significant"])
    sp = A.relative_table(bench, "keras.predict").set_index(["model", "backend"])
    assert sp.loc[("m01", "numpy"), "speedup"] == pytest.approx(2.0, rel=1e-6)
    wide = A.pivot(A.relative_table(bench, "numpy"), "slowdown", backends=["numpy", "keras.predict", "litert"])
    assert list(wide.columns) == ["numpy", "keras.predict", "litert"]
    assert list(wide.index) == ["m00", "m01"]


def test_batch_curves_and_thread_scaling():
    b1 = bench_rows({"numpy": (10.0, 10.0)}, [1e6], batch=1)
    b8 = bench_rows({"numpy": (10.0, 10.0)}, [1e6], batch=8)
    t1 = bench_rows({"numpy": (10.0, 5.0)}, [1e6], threads=1)
    curves = A.batch_curves(pd.concat([b1, b8, t1])).set_index("batch")
    assert set(curves["threads"]) == {2}
    assert curves.loc[8, "throughput_sps"] == pytest.approx(8 / (10 + 800) * 1e6)
    assert curves.loc[8, "per_sample_us"] == pytest.approx((10 + 800) / 8)
    sc = A.thread_scaling(pd.concat([b1, t1]))
    assert sc["speedup"].iloc[0] == pytest.approx((10 + 200) / (10 + 100))
    assert (sc["threads_lo"].iloc[0], sc["threads_hi"].iloc[0]) == (1, 2)


def test_peak_share_on_largest_models():
    bench = bench_rows({"numpy": (0.0, 25.0)}, [1e3, 1e8, 1e9])
    gemm = pd.DataFrame({"machine": ["m"], "threads": [2], "n": [2048], "gflops": [100.0]})
    pk = A.peak_share(bench, gemm, n_largest=2)
    assert sorted(pk["model"]) == ["m01", "m02"]
    assert np.allclose(pk["peak_share"], 0.25)


def test_agreement_flags_a_planted_disagreement():
    a = bench_rows({"numpy": (10.0, 20.0), "litert": (5.0, 25.0)}, FLOPS[:5])
    b = a.copy()
    hit = (b["model"] == "m02") & (b["backend"] == "litert")
    b.loc[hit, ["median_us", "ci_lo_us", "ci_hi_us"]] *= 1.5
    t = A.agreement(a, b)
    assert t["agree"].sum() == len(t) - 1
    bad = t[~t["agree"]].iloc[0]
    assert (bad["model"], bad["backend"]) == ("m02", "litert")
    s = A.agreement_summary(t)
    assert s["n"] == 10 and s["n_agree"] == 9 and s["worst"]["model"] == "m02"


def test_agreement_between_machines_of_different_speed():
    a = bench_rows({"numpy": (10.0, 20.0)}, FLOPS[:5])
    b = a.assign(machine="other", median_us=a["median_us"] * 2, ci_lo_us=a["ci_lo_us"] * 2,
                 ci_hi_us=a["ci_hi_us"] * 2)
    assert not A.agreement(a, b)["agree"].any()
    t = A.agreement(a, b, normalize=True)
    assert t["agree"].all()
    assert A.agreement_summary(t)["median_ratio"] == pytest.approx(2.0)
    assert A.agreement_summary(t)["spearman"] == pytest.approx(1.0)


def test_status_table_and_problems():
    bench = bench_rows({"numpy": (10.0, 20.0), "litert.int8": (5.0, 25.0)}, [1e3, 1e4])
    bench.loc[(bench["backend"] == "litert.int8"), "accuracy"] = 0.85
    bench.loc[3, ["status", "reason", "median_us"]] = ["failed", "boom", np.nan]
    st = A.status_table(bench).set_index("backend")
    assert (st.loc["litert.int8", "ok"], st.loc["litert.int8", "failed"]) == (1, 1)
    assert st.loc["litert.int8", "max_acc_drop"] == pytest.approx(0.05)
    assert A.problems(bench)["reason"].tolist() == ["boom"]
    assert len(A.ok(bench)) == 3


def test_status_counts_model_backend_combinations_not_status_pairs_or_rows():
    """A combination ok at batch 1 and skipped at a large batch is one ok combination, not two."""
    b1 = bench_rows({"numpy": (10.0, 20.0), "keras.call": (50.0, 20.0)}, [1e3, 1e4])
    big = b1.assign(batch=256, status="skipped", reason="flops cap", median_us=np.nan)
    bench = pd.concat([b1, big, big.assign(batch=512)], ignore_index=True)
    st = A.status_table(bench).set_index("backend")
    assert (st.loc["numpy", "ok"], st.loc["numpy", "skipped"], st.loc["numpy", "failed"]) == (2, 0, 0)
    pr = A.problems(bench)
    assert len(pr.drop_duplicates(["model", "backend"])) == 4 and pr["rows"].sum() == 8


def test_accuracy_drop_ignores_untrained_references():
    bench = bench_rows({"litert.int8": (5.0, 25.0)}, [1e3, 1e4])
    bench.loc[0, ["ref_accuracy", "accuracy"]] = [0.1, 0.0]       # seeded model: chance-level reference
    bench.loc[1, ["ref_accuracy", "accuracy"]] = [0.98, 0.97]
    st = A.status_table(bench).set_index("backend")
    assert st.loc["litert.int8", "max_acc_drop"] == pytest.approx(0.01)


# ---------------------------------------------------------------- loading ------------------------------
def test_load_results_merges_machines_and_tolerates_missing_files(tmp_path):
    root = tmp_path / "results"
    a = bench_rows({"numpy": (10.0, 20.0)}, [1e3, 1e4], machine="alpha")
    (root / "alpha").mkdir(parents=True)
    a.to_csv(root / "alpha" / "bench.csv", index=False)
    (root / "alpha" / "bench.meta.json").write_text(json.dumps({"cpu_model": "X", "logical_cores": 2}))
    (root / "beta").mkdir()
    a.drop(columns="machine").to_csv(root / "beta" / "bench.csv", index=False)   # machine from the folder
    pd.DataFrame({"machine": ["beta"], "threads": [1], "n": [64], "gflops": [1.0]}).to_csv(
        root / "beta" / "gemm.csv", index=False)
    res = loading.load_results(root)
    assert res["machines"] == ["alpha", "beta"]
    assert set(res["bench"]["machine"]) == {"alpha", "beta"}
    assert res["startup"] is None and res["pipeline"] is None and res["breakdown"] is None
    assert res["meta"]["alpha"]["bench"]["cpu_model"] == "X"
    flat = loading.load_results(root / "alpha")            # a single machine folder works too
    assert flat["machines"] == ["alpha"]
    assert loading.load_results(tmp_path / "nowhere")["bench"] is None


def test_fixture_is_reproducible(tmp_path):
    _make_fixture_module().main(tmp_path)
    for p in sorted((FIXTURE / "results").glob("*")) + sorted((FIXTURE / "models").glob("*.json")):
        rel = p.relative_to(FIXTURE)
        assert (tmp_path / rel).read_text() == p.read_text(), rel


def test_analyse_on_the_fixture_recovers_the_planted_values():
    mk = _make_fixture_module()
    models = loading.load_models_meta(FIXTURE / "models")
    R = A.analyse(loading.load_results(FIXTURE / "results"), models, n_boot=20)
    assert isinstance(R, A.Results)
    assert R.machine == mk.MACHINE and R.threads == {mk.MACHINE: 2}
    f = R.fits.set_index("backend")
    for b, (o, g, c) in mk.PLANTED.items():
        assert f.loc[b, "gflops"] == pytest.approx(g, rel=0.1), b
        if c == 0:
            assert f.loc[b, "overhead_us"] == pytest.approx(o, rel=0.25), b
    assert "tf.function.xla" in set(R.problems["backend"])
    assert models["name"].iloc[0] == "logreg" and models["flops"].is_monotonic_increasing
    assert models.set_index("name")["layers"]["cnn_seed"] == mk.MODELS["cnn_seed"][4]
    assert R.extra["idle_gap"] is not None and R.extra["memory_loop"] is not None


def test_layer_count_read_from_a_keras_file_without_keras(tmp_path):
    import zipfile
    cfg = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "InputLayer", "config": {}}, {"class_name": "Conv2D", "config": {}},
        {"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {}},
                                                           {"class_name": "ReLU", "config": {}}]}},
        {"class_name": "Dense", "config": {}}]}}
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as z:
        z.writestr("config.json", json.dumps(cfg))
    (tmp_path / "m.json").write_text(json.dumps({"name": "m", "flops": 10}))
    assert loading.layers_in_keras_file(tmp_path / "m.keras") == 4
    assert loading.load_models_meta(tmp_path)["layers"].iloc[0] == 4
    assert loading.layers_in_keras_file(tmp_path / "missing.keras") is None
