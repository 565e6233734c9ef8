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
