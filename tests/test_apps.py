"""The Keras Applications check (experiments.apps) and its report text, with the workers faked: one row per family
x path, resumable per family, and every failure named with its reason."""
import pandas as pd
import pytest

from overhead.experiments import apps
from overhead.report import analysis as A
from overhead.report.sections import architectures as arch


def fake_collect(job):
    rows = []
    for backend, _batch in job.keys:
        if backend == "openvino":
            rows.append({"backend": backend, "status": "failed", "reason": "conversion failed: Unsupported op X"})
        elif backend == "onnxruntime":
            continue  # a worker that crashed before its row
        else:
            rows.append({"backend": backend, "status": "ok", "parity": "pass", "max_abs_err": 1e-6, "tolerance": 1e-4,
                         "top1_agree": 1.0})
    return rows, []


@pytest.fixture
def no_build(monkeypatch, tmp_path):
    built = []
    monkeypatch.setattr(apps, "model_file", lambda family, folder: built.append(family) or tmp_path / f"{family}.keras")
    monkeypatch.setenv("OVERHEAD_DATA", str(tmp_path))
    return built


def test_one_row_per_family_and_path_with_a_crashed_worker_named(no_build, tmp_path):
    names = ["numpy", "tf.function", "onnxruntime", "openvino"]
    frame = apps.run(tmp_path / "out", families=["MobileNetV2"], names=names, collect=fake_collect)
    assert list(frame.columns) == apps.COLUMNS and list(frame["backend"]) == names
    got = frame.set_index("backend")
    assert got.loc["numpy", "parity"] == "pass" and got.loc["numpy", "input_px"] == 96
    assert got.loc["onnxruntime", "status"] == "failed" and "wrote no row" in got.loc["onnxruntime", "reason"]
    assert (tmp_path / "out" / "apps.csv").exists() and (tmp_path / "out" / "apps.meta.json").exists()


def test_a_second_run_keeps_the_families_already_checked(no_build, tmp_path):
    apps.run(tmp_path, families=["MobileNetV2"], names=["numpy"], collect=fake_collect)
    frame = apps.run(tmp_path, families=["MobileNetV2", "DenseNet121"], names=["numpy"], collect=fake_collect)
    assert no_build == ["MobileNetV2", "DenseNet121"] and list(frame["family"]) == ["MobileNetV2", "DenseNet121"]


def test_unknown_family_or_path_is_one_line_and_status_2(capsys):
    assert apps.main(["--families", "NoSuchNet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown family or path 'NoSuchNet'") and err.count("\n") == 1


def test_the_report_counts_the_pairs_and_names_each_failure_with_its_reason():
    rows = [("a", "MobileNetV2", "numpy", "ok", "pass", ""), ("a", "MobileNetV2", "openvino", "failed", None, "boom"),
            ("a", "DenseNet121", "numpy", "ok", "pass", ""), ("a", "DenseNet121", "openvino", "failed", None, "boom"),
            ("a", "DenseNet121", "litert", "failed", "fail", "parity: max |err| 3 > 1e-4; top-1 not judged"),
            ("a", "DenseNet121", "litert.int8", "failed", "fail", "parity: logit_rel_err 0.49 > 0.35; more")]
    R = A.Results(machine="a", machines=["a"])
    R.extra["apps"] = pd.DataFrame(rows, columns=["machine", "family", "backend", "status", "parity", "reason"])
    text = arch.families_text(R)
    assert text.startswith("On a, 2 of 6 family × path pairs run and agree with Keras (2 families, 4 paths, batch 1); "
                           "the NumPy engine on 2 of 2 families.")
    assert "Failing or skipped: `openvino` on MobileNetV2, DenseNet121 (failed: boom); " in text
    assert "`litert` on DenseNet121 (differs: parity: max |err| 3 > 1e-4)." in text
    assert text.endswith("not a conversion fault): `litert.int8` on DenseNet121 (0.49) "
                         "(differs: parity: logit_rel_err above 0.35).")
    t = arch.families_table(R).set_index("family")
    assert t.loc["DenseNet121", "litert"] == "differs" and t.loc["MobileNetV2", "numpy"] == "ok"


def test_no_apps_file_says_not_measured():
    assert arch.families_text(A.Results(machine="a")).startswith("*Not measured in this run:*")
