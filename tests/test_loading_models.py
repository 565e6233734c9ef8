"""A committed run re-renders without the trained models: their metadata travels as models.csv."""
import json

from overhead.report import loading


def test_models_meta_round_trips_through_the_results_folder(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for name, flops, layers in (("big", 3e9, 60), ("small", 1.2e6, 5)):
        (models / f"{name}.json").write_text(json.dumps(
            {"name": name, "flops": flops, "layers": layers, "input_shape": [28, 28, 1], "accuracy": 0.9}))
    for machine in ("a", "b"):
        loading.save_models_meta(models, tmp_path / "results" / machine)
    back = loading.models_from_results(tmp_path / "results", prefer="b")
    assert list(back.name) == ["small", "big"]  # smallest FLOPs first, one row per model
    assert list(back.layers) == [5, 60] and json.loads(back.input_shape[0]) == [28, 28, 1]


def test_models_from_results_is_empty_without_any_models_csv(tmp_path):
    assert loading.models_from_results(tmp_path / "nothing").empty


def test_user_model_outcomes_show_what_ran_and_why_the_rest_did_not():
    import pandas as pd

    from overhead.report.sections import tldr

    bench = pd.DataFrame([
        {"machine": "m", "model": "mine", "backend": "numpy", "batch": 1, "threads": 1, "status": "skipped",
         "median_us": None, "logit_rel_err": None, "reason": "unsupported layer LSTM 'lstm'"},
        {"machine": "m", "model": "mine", "backend": "keras.predict", "batch": 1, "threads": 1, "status": "ok",
         "median_us": 900.0, "logit_rel_err": 0.0, "reason": None},
        {"machine": "m", "model": "mine", "backend": "keras.predict", "batch": 8, "threads": 1, "status": "ok",
         "median_us": 950.0, "logit_rel_err": 0.0, "reason": None},
        {"machine": "m", "model": "cnn_seed", "backend": "numpy", "batch": 1, "threads": 1, "status": "ok",
         "median_us": 20.0, "logit_rel_err": 0.0, "reason": None},
    ])
    t = tldr.user_model_outcomes(bench, ["mine"], machine="m")
    from overhead.report.style import order_backends

    assert list(t.backend) == order_backends(["numpy", "keras.predict"])  # the study's order, batch 1 only
    t = t.set_index("backend")
    assert t.status["numpy"] == "skipped" and t.reason["numpy"] == "unsupported layer LSTM 'lstm'"
    assert t.status["keras.predict"] == "ok" and t.median_us["keras.predict"] == 900.0
    assert tldr.user_model_outcomes(bench, ["absent"]).empty


def test_a_folder_with_only_a_side_experiment_is_not_a_machine(tmp_path):
    # the Zen 3 folder once held only spread.csv: preferring it as "this machine" emptied every section
    from overhead.report import loading
    (tmp_path / "ran").mkdir()
    (tmp_path / "side").mkdir()
    (tmp_path / "ran" / "bench.csv").write_text("machine,model,backend,batch,threads,median_s\nran,m,numpy,1,1,0.001\n")
    (tmp_path / "side" / "spread.csv").write_text("machine,variant,path,process,median_s\nside,as_is,tf.function,0,0.001\n")
    res = loading.load_results(tmp_path)
    assert res["machines"] == ["ran"]
    assert loading.select_machine(res, preferred="side") == "ran"
    assert res["spread"] is not None and set(res["spread"]["machine"]) == {"side"}


def test_release_labels_stay_text(tmp_path):
    # "2.20" read as a number is 2.2: the versions section would merge two releases
    from overhead.report import loading
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "bench.csv").write_text("machine,model,backend,batch,threads,median_s\nm,x,numpy,1,1,0.001\n")
    (tmp_path / "m" / "versions.csv").write_text("machine,release,keras,status\nm,2.20,3,ok\nm,2.2,3,ok\n")
    res = loading.load_results(tmp_path)
    assert list(res["versions"]["release"]) == ["2.20", "2.2"]
