"""blasab: the OPENBLAS_CORETYPE A/B runs each setting in a child whose environment alone differs.

The tests never set or unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in this process; the one real child
runs with the environment as it is.
"""
import os

from overhead.base import envinfo
from overhead.experiments import blasab


def test_settings_and_child_env_leave_the_parent_environment_alone():
    base = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512", "PATH": "/bin"}
    before = dict(base)
    assert blasab.settings(base) == [("OPENBLAS_CORETYPE=Haswell", "Haswell"), ("OPENBLAS_CORETYPE unset", None)]
    assert blasab.settings({"PATH": "/bin"}) == [("OPENBLAS_CORETYPE unset", None)]
    unset = blasab.child_env(None, base)
    assert "OPENBLAS_CORETYPE" not in unset and unset["OPENBLAS_L2_SIZE"] == "512" and "PYTHONPATH" not in unset  # added by child_env
    assert blasab.child_env("SkylakeX", base)["OPENBLAS_CORETYPE"] == "SkylakeX"
    assert base == before


def test_measure_interleaves_settings_and_takes_the_median():
    seen = []

    def launch(job, env):
        seen.append(env.get("OPENBLAS_CORETYPE"))
        rate = 100.0 if env.get("OPENBLAS_CORETYPE") else 150.0
        return {"kernel": env.get("OPENBLAS_CORETYPE") or "SkylakeX", "library": "x.so",
                "env": {"OPENBLAS_CORETYPE": env.get("OPENBLAS_CORETYPE"), "OPENBLAS_L2_SIZE": None},
                "gflops": {str(t): rate * t + len(seen) for t in job.threads}}

    table = blasab.measure(n=64, threads=(1, 2), reps=3, env={"OPENBLAS_CORETYPE": "Haswell"}, launch=launch)
    assert seen == ["Haswell", None] * 3  # A, B, A, B, ...: settings interleaved in time
    assert list(table.columns) == blasab.COLUMNS and len(table) == 4 and (table.reps == 3).all()
    a = table[(table.setting == "OPENBLAS_CORETYPE=Haswell") & (table.threads == 1)].iloc[0]
    b = table[(table.setting == "OPENBLAS_CORETYPE unset") & (table.threads == 2)].iloc[0]
    assert a.kernel == "Haswell" and a.gflops == 100.0 + 3 and b.kernel == "SkylakeX" and b.gflops == 300.0 + 4


def test_a_real_child_reports_numpy_kernel_and_rate():
    before = {k: os.environ.get(k) for k in envinfo.OPENBLAS_ENV}
    out = blasab.gemm_in_child(blasab.GemmJob(64, (1,), 2), blasab.child_env(os.environ.get("OPENBLAS_CORETYPE")))
    assert out["gflops"]["1"] > 0 and out["env"] == before and out["kernel"]
    assert {k: os.environ.get(k) for k in envinfo.OPENBLAS_ENV} == before


def test_numpy_blas_picks_numpy_own_pool():
    pools = [{"user_api": "blas", "internal_api": "openblas", "filepath": "/x/scipy.libs/libopenblas.so",
              "architecture": "Zen"},
             {"user_api": "blas", "internal_api": "openblas", "filepath": "/x/numpy.libs/libscipy_openblas64_.so",
              "architecture": "Haswell", "version": "0.3.31"},
             {"user_api": "openmp", "internal_api": "openmp", "filepath": "/x/libgomp.so"}]
    got = envinfo.numpy_blas(pools)
    assert got["architecture"] == "Haswell" and got["library"] == "libscipy_openblas64_.so"
    assert envinfo.numpy_blas([]) is None
    assert envinfo.openblas_env({"OPENBLAS_CORETYPE": "Haswell"}) == {"OPENBLAS_CORETYPE": "Haswell",
                                                                       "OPENBLAS_L2_SIZE": None}


def test_cli_refuses_bad_threads(capsys):
    assert blasab.main(["--threads", "one"]) == 2
    err = capsys.readouterr().err
    assert "--threads" in err and "Traceback" not in err
    assert blasab.main(["child"]) == 2 and "usage" in capsys.readouterr().err
