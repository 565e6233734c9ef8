"""The study design as data: params/*.yaml, overhead.base.settings.Settings, and what the notebooks take."""
import ast
import re

import jupytext
import pytest
import yaml

from overhead.base import config, settings
from overhead.base.settings import Settings, SettingsError

INJECTED = {"study", "data_dir", "machine", "extra_models", "figures_dir"}  # what make / the smoke tests pass


def test_full_yaml_spells_out_the_defaults_and_quick_yaml_is_smaller():
    assert Settings.from_yaml(settings.FULL_YAML) == Settings()
    quick = Settings.from_yaml(settings.QUICK_YAML)
    assert quick.quick and quick.bench.runs == 1 and quick.bench.threads == (1,)
    assert quick.bench.budget_s < Settings().bench.budget_s and len(quick.versions.models) == 1
    assert quick.train.epochs == 2 and quick.startup.memory_loop_calls is None


def test_values_are_typed_and_frozen():
    s = Settings.from_dict({"bench": {"batches": [1, 2], "budget_s": 1}, "data_dir": "x"})
    assert s.bench.batches == (1, 2) and isinstance(s.bench.budget_s, float) and s.data_dir.is_absolute()
    with pytest.raises(AttributeError):
        s.bench.runs = 4
    assert s.bench.models_for["jax.jit"] == s.bench.secondary_models


@pytest.mark.parametrize("overrides, words", [
    ({"bench": {"budget": 1}}, ["unknown setting bench.budget", "budget_s", "fix"]),
    ({"bogus": 1}, ["unknown setting bogus", "valid keys"]),
    ({"bench": {"runs": "three"}}, ["bench.runs must be int", "'three'"]),
    ({"bench": {"runs": 6}}, ["bench.runs must be 1..bench.max_runs"]),
    ({"bench": {"budget_s": 0}}, ["bench.budget_s must be > 0"]),
    ({"bench": {"batches": [1, 0]}}, ["bench.batches must be positive integers"]),
    ({"loadgen": {"threads": [0, None]}}, ["loadgen.threads"]),
    ({"startup": {"repeats": None}}, ["startup.repeats cannot be null"]),
    ({"versions": "all"}, ["versions must be a mapping"]),
])
def test_a_bad_setting_is_one_line_naming_the_key_and_the_fix(overrides, words):
    with pytest.raises(SettingsError) as err:
        Settings.from_yaml(settings.QUICK_YAML, **overrides)
    msg = str(err.value)
    assert "\n" not in msg and "quick.yaml" in msg
    for w in words:
        assert w in msg, msg


def test_one_and_all_cores_are_computed_in_one_place():
    assert settings.thread_settings(None) == sorted({1, settings.cores()})
    assert settings.thread_settings([1, None, 1]) == sorted({1, settings.cores()})
    assert settings.thread_settings([2, 1]) == [1, 2]
    with pytest.raises(ValueError):
        settings.thread_settings([0])


def test_yaml_files_hold_one_study_key():
    for path in (settings.FULL_YAML, settings.QUICK_YAML):
        assert set(yaml.safe_load(path.read_text())) == {"study"}, path


@pytest.mark.parametrize("path", sorted(config.NOTEBOOKS.glob("[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_notebook_parameter_cells_hold_only_what_papermill_injects(path):
    cell = next(c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", []))
    names = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets}
    assert "study" in names and names <= INJECTED, names - INJECTED


def test_no_library_module_writes_the_data_tree_into_the_environment():
    lib = config.ROOT / "lib" / "overhead"
    for p in lib.rglob("*.py"):
        if p.relative_to(lib).as_posix() != "harness/child.py":
            assert not re.search(r"os\.environ\[[\"']OVERHEAD_DATA[\"']\]\s*=", p.read_text()), p
