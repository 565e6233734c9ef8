"""The report's sentence on OPENBLAS_CORETYPE, from a blas_ab table."""
import pandas as pd

from overhead.report import optional


class _R:
    def __init__(self, frame):
        self.frame = frame

    def mine(self, name):
        return self.frame if name == "blas_ab" else pd.DataFrame()


def test_the_cost_of_a_forced_kernel_is_stated_from_the_table():
    ab = pd.DataFrame({"machine": "m", "setting": ["OPENBLAS_CORETYPE=Haswell", "OPENBLAS_CORETYPE unset"],
                       "OPENBLAS_CORETYPE": ["Haswell", None], "OPENBLAS_L2_SIZE": None,
                       "kernel": ["Haswell", "SkylakeX"], "threads": 1, "n": 2048, "gflops": [100.0, 185.0], "reps": 3})
    text = optional.blas_text(_R(ab))
    assert "OPENBLAS_CORETYPE=Haswell" in text and "`Haswell`" in text and "`SkylakeX`" in text
    assert "100 GFLOP/s with it, 185 without (1.9×)" in text


def test_unset_and_missing_say_so():
    ab = pd.DataFrame({"machine": "m", "setting": ["OPENBLAS_CORETYPE unset"], "OPENBLAS_CORETYPE": [None],
                       "OPENBLAS_L2_SIZE": None, "kernel": ["SkylakeX"], "threads": 1, "n": 2048,
                       "gflops": [185.0], "reps": 3})
    assert "is not set on this machine" in optional.blas_text(_R(ab))
    assert "Not measured in this run" in optional.blas_text(_R(pd.DataFrame()))
