"""The sweep's planner: configurations from parameters alone (no process, no file)."""
import os

import pytest

from overhead.experiments import sweepplan

KINDS = {"numpy": "tf", "keras.predict": "tf", "jax.jit": "jax", "litert": "tf"}


def test_thread_settings_are_computed_once_from_the_parameters():
    assert sweepplan.thread_settings([2, 1, 2]) == [1, 2]
    assert sweepplan.thread_settings(None) == sorted({1, os.cpu_count() or 1})
    with pytest.raises(ValueError, match="positive integers"):
        sweepplan.thread_settings([0, 1])


def test_plan_keeps_batch_one_everywhere_and_big_batches_on_the_chosen_few():
    p = sweepplan.plan(["a", "b"], list(KINDS), KINDS, [8, 1], [1, 2], big_batch_models=["a"],
                       big_batch_backends=["numpy"], threads_models=["a"], kind_order=("tf", "jax"))
    assert p.threads == [1, 2] and p.batches == [1, 8] and p.kinds == ["tf", "jax"]
    assert ("numpy", 8, 1) in p.keys["a"] and ("litert", 8, 1) not in p.keys["a"]
    assert all(n == 1 and t == 1 for _, n, t in p.keys["b"])  # b: batch 1, first thread setting only
    assert {b for b, _, _ in p.keys["b"]} == set(KINDS)
    assert p.total() == len(p.keys["a"]) + len(p.keys["b"]) == 10 + 4


def test_plan_skips_what_is_done_and_limits_secondary_paths():
    done = {("a", "numpy", 1, 1)}
    p = sweepplan.plan(["a", "b"], list(KINDS), KINDS, [1], [1], done=done, models_for={"jax.jit": ["b"]})
    assert ("numpy", 1, 1) not in p.keys["a"] and ("jax.jit", 1, 1) not in p.keys["a"]
    assert ("jax.jit", 1, 1) in p.keys["b"] and p.kinds == ["tf", "jax"]
