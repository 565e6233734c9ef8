import math

import pandas as pd
import pytest

from overhead.base import envinfo
from overhead.experiments import ceilings

SPR = ("vendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+ @ 2.00GHz\n"
       "cpu MHz\t\t: 2000.000\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni avx_vnni avx512_bf16 "
       "amx_tile amx_int8 amx_bf16\n")
ZEN4 = ("vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\ncpu MHz\t\t: 2400.000\n"
        "flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni avx512_bf16\n")
AVX2 = ("vendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz\n"
        "flags\t\t: fpu sse4_2 avx avx2 fma\n")


def test_sapphire_rapids_peaks_from_flags_and_nominal_clock():
    clock = ceilings.clock_mhz(SPR, lscpu_text="", cpufreq_max_khz="")
    assert clock == (2000.0, "nominal clock in the model name (turbo may be higher)", True)
    peaks = ceilings.theoretical(SPR, cores=4, clock=clock)
    assert peaks["fp32_flops_per_cycle_per_core"] == 64  # 2 AVX-512 FMA units x 16 lanes x 2
    assert math.isclose(peaks["fp32_peak_gflops"], 4 * 2.0 * 64)
    assert peaks["int8_ops_per_cycle_per_core"] == 2048 and "AMX" in peaks["int8_derivation"]
    assert math.isclose(peaks["int8_peak_gops"], 4 * 2.0 * 2048)
    assert "amx_int8" in peaks["isa_flags"] and peaks["fma_units_are_assumption"]


def test_zen4_avx2_and_no_vnni_cases():
    assert ceilings.fp32_flops_per_cycle(envinfo.proc_cpu_flags(ZEN4), "AuthenticAMD")[0] == 32
    assert ceilings.int8_ops_per_cycle(envinfo.proc_cpu_flags(ZEN4), "AuthenticAMD")[0] == 128
    flags = envinfo.proc_cpu_flags(AVX2)
    assert ceilings.fp32_flops_per_cycle(flags, "GenuineIntel")[0] == 32
    ops, why = ceilings.int8_ops_per_cycle(flags)
    assert ops is None and "no int8 ceiling" in why
    assert ceilings.theoretical(AVX2, cores=2, clock=(3400.0, "x", True))["int8_peak_gops"] is None


def test_clock_prefers_max_frequency_then_lscpu_then_current():
    assert ceilings.clock_mhz(SPR, "", "3800000\n")[:2] == (3800.0, "cpufreq cpuinfo_max_freq")
    assert ceilings.clock_mhz(SPR, "CPU max MHz:  3500.0000\n", "")[0] == 3500.0
    mhz, source, assumed = ceilings.clock_mhz(ZEN4, "", "")
    assert mhz == 2400.0 and "current" in source and assumed


def test_time_gemm_rate_is_2n3_over_median():
    calls = []
    res = ceilings.time_gemm(lambda: calls.append(1), 64, min_reps=7, min_s=0.0)
    assert res["reps"] == 7 and len(calls) == 9  # two warm-up calls discarded
    assert math.isclose(res["gflops"], 2 * 64**3 / (res["median_s"] * 1e9))
    assert res["gflops_best"] >= res["gflops"]


def test_measure_each_library_in_a_fresh_process_and_summary():
    frame = ceilings.measure(("numpy", "onnxruntime"), sizes=(64,), threads=(1,), quick=True)
    assert list(frame.columns) == ceilings.COLUMNS
    assert (frame["status"] == "ok").all(), frame["reason"].tolist()
    assert sorted(frame["library"]) == ["numpy", "onnxruntime"] and (frame["gflops"] > 0).all()
    bad = ceilings.time_in_child(ceilings.LibraryGemmJob("nosuchlib", 1, (8,)))
    assert bad[0]["status"] == "failed" and "nosuchlib" in bad[0]["reason"]
    summ = ceilings.summary(frame, {"fp32_peak_gflops_1core": 1e6, "fp32_peak_gflops": 2e6})
    best = summ["measured_best"][1]
    assert best["gflops"] == frame["gflops"].max() and 0 < best["share_of_peak"] < 1


def test_summary_raises_the_peak_to_a_faster_measured_gemm():
    frame = pd.DataFrame({"library": ["numpy", "tensorflow"], "n": [256, 256], "threads": [2, 2],
                          "gflops": [90.0, 120.0], "status": ["ok", "ok"]})
    summ = ceilings.summary(frame, {"fp32_peak_gflops_1core": 50.0, "clock_is_assumption": True,
                                    "physical_cores": 2, "fp32_flops_per_cycle_per_core": 64})
    best = summ["measured_best"][2]
    assert best["library"] == "tensorflow" and best["peak_gflops_at_threads"] == 120.0
    assert best["share_of_peak"] == pytest.approx(1.0) and summ["fp32_peak_kind"] == "nominal"
    assert "raised to the best measured GEMM (tensorflow, 2 thread(s))" in summ["fp32_peak_source"]


NOMINAL = {"fp32_flops_per_cycle_per_core": 64, "fp32_peak_gflops_1core": 166.4, "physical_cores": 2,
           "clock_mhz": 2600.0, "clock_source": "/proc/cpuinfo 'cpu MHz'", "clock_is_assumption": True}


@pytest.mark.parametrize("planted", [10.0, 170.0, 186.2, 400.0, 1e4])
@pytest.mark.parametrize("fma", [None, {"status": "ok", "gflops": 240.0, "lanes": 16, "isa": "avx512",
                                       "accumulators": 12},
                                 {"status": "failed", "reason": "no C compiler"}])
@pytest.mark.parametrize("exposed", [False, True])
def test_peak_derivation_is_never_below_a_planted_measured_gemm(planted, fma, exposed):
    peaks = dict(NOMINAL, clock_is_assumption=not exposed)
    for threads in (1, 2):
        got = ceilings.derive_peak(peaks, fma, {threads: {"gflops": planted * threads, "library": "x"}})
        assert got["fp32_peak_gflops_1core"] >= planted
        assert got["fp32_peak_gflops"] == pytest.approx(2 * got["fp32_peak_gflops_1core"])
        if fma and fma["status"] == "ok":
            assert got["fp32_peak_gflops_1core"] >= fma["gflops"]


def test_peak_kind_says_how_the_clock_was_known():
    assert ceilings.derive_peak(dict(NOMINAL, clock_is_assumption=False))["fp32_peak_kind"] == "theoretical"
    nominal = ceilings.derive_peak(NOMINAL, {"status": "failed", "reason": "no compiler"})
    assert nominal["fp32_peak_kind"] == "nominal" and nominal["fp32_peak_gflops_1core"] == 166.4
    assert "the clock is not known" in nominal["fp32_peak_source"]
    fma = {"status": "ok", "gflops": 240.0, "lanes": 16, "isa": "avx512", "accumulators": 12}
    measured = ceilings.derive_peak(NOMINAL, fma)
    assert measured["fp32_peak_kind"] == "measured" and measured["fp32_peak_gflops_1core"] == 240.0
    assert measured["clock_mhz"] == pytest.approx(240.0 / 64 * 1e3) and not measured["clock_is_assumption"]
    assert "FMA" in measured["clock_source"]
    slow = ceilings.derive_peak(NOMINAL, dict(fma, gflops=100.0))  # a loop on a shared core: not the peak
    assert slow["fp32_peak_kind"] == "nominal" and slow["fp32_peak_gflops_1core"] == 166.4
    assert "FMA loop measured less" in slow["fp32_peak_source"] and slow["clock_is_assumption"]


def test_one_float32_ceiling_is_the_best_gemm_of_every_frame():
    lib = pd.DataFrame({"library": ["numpy", "tensorflow", "onnxruntime"], "n": [2048] * 3, "threads": [1] * 3,
                        "gflops": [160.0, 186.2, 500.0], "status": ["ok", "ok", "failed"]})
    bench = pd.DataFrame({"machine": ["m", "m"], "threads": [1, 2], "n": [2048, 2048], "gflops": [170.0, 340.2]})
    best = ceilings.float32_ceiling(lib, bench, None)
    assert best[1]["gflops"] == 186.2 and best[1]["library"] == "tensorflow"  # a failed row never counts
    assert best[2]["gflops"] == 340.2 and best[2]["library"] == "numpy"
    frame = ceilings.with_peak_columns(lib, {"fp32_peak_gflops_1core": 200.0, "fp32_peak_kind": "measured",
                                             "fp32_peak_source": "FMA loop"})
    assert list(frame["peak_gflops"]) == [200.0] * 3 and frame["peak_source"].iloc[0] == "measured: FMA loop"


def test_rederive_a_published_run_without_measuring(tmp_path):
    from overhead.base import envinfo

    frame = pd.DataFrame({"machine": ["m"] * 2, "library": ["numpy", "tensorflow"], "n": [2048] * 2,
                          "threads": [1, 1], "gflops": [160.0, 186.2], "status": ["ok", "ok"]})
    frame.to_csv(tmp_path / "ceilings.csv", index=False)
    envinfo.write_meta(tmp_path / "ceilings.csv", extra={"ceilings": dict(NOMINAL, measured_best={})})
    pd.DataFrame({"machine": ["m"], "threads": [2], "n": [2048], "gflops": [380.0]}).to_csv(tmp_path / "gemm.csv",
                                                                                          index=False)
    summ = ceilings.rederive(tmp_path)
    assert summ["fp32_peak_kind"] == "nominal" and summ["fp32_peak_gflops_1core"] == 190.0  # 380 / 2 threads
    assert all(v["share_of_peak"] <= 1.0 for v in summ["measured_best"].values())
