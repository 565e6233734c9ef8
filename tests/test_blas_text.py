"""The report's BLAS disclosure: every machine's NumPy numbers state the BLAS setting they ran with, and where
OPENBLAS_CORETYPE was set both GEMM rates of blas_ab.csv are shown with the one the headline uses."""
import types

import pandas as pd

from overhead.report.sections import ceilings


def _R(ab, meta=None, machines=("m",)):
    return types.SimpleNamespace(machine=machines[0], machines=list(machines), extra={"blas_ab": ab},
                                 meta_all=meta or {}, mine=lambda name: ab if name == "blas_ab" else pd.DataFrame())


AB = pd.DataFrame({"machine": "m", "setting": ["OPENBLAS_CORETYPE=Haswell", "OPENBLAS_CORETYPE unset"],
                   "OPENBLAS_CORETYPE": ["Haswell", None], "OPENBLAS_L2_SIZE": None,
                   "kernel": ["Haswell", "SkylakeX"], "threads": 1, "n": 2048, "gflops": [116.6, 221.4], "reps": 3})


def test_the_cost_of_a_forced_kernel_is_stated_from_the_table():
    text = ceilings.blas_text(_R(AB))
    assert "OPENBLAS_CORETYPE=Haswell" in text and "`Haswell`" in text and "`SkylakeX`" in text
    assert "1 thread 117 vs 221 GFLOP/s (1.9×)" in text
    assert "the headline included" in text           # which rate the headline numbers ran with


def test_every_machine_is_named_with_its_setting_from_the_metadata():
    meta = {"intel": {"bench": {"openblas_env": {"OPENBLAS_CORETYPE": None}, "numpy_blas": {"architecture": "SkylakeX"}}},
            "old": {"bench": {"env": {"OPENBLAS_CORETYPE": "Haswell"}, "blas": [{"architecture": "Haswell"}]}}}
    text = ceilings.blas_text(_R(pd.DataFrame(columns=AB.columns), meta, machines=("intel", "old")))
    intel, old = [x for x in text.splitlines() if x.startswith("- ")]
    assert "`intel`" in intel and "not set" in intel and "`SkylakeX`" in intel
    assert "`old`" in old and "OPENBLAS_CORETYPE=Haswell" in old and "not measured" in old


def test_unset_says_so():
    ab = AB.iloc[[1]]
    assert "`OPENBLAS_CORETYPE` not set" in ceilings.blas_text(_R(ab))
