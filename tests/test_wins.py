"""The rule for "wins" on planted tables: a tie inside the interval, a tie inside the between-run spread, a win
on one machine and a loss on another (named), and a clean win."""
import types

import numpy as np
import pandas as pd

from overhead.report import wins


def _frame(rows):
    return pd.DataFrame(rows, columns=list(wins.COLUMNS))


def test_a_clean_win_on_every_machine_is_a_win():
    f = _frame([("m1", "a", 5.0, 4.9, 5.1, 0.01), ("m1", "b", 7.0, 6.9, 7.1, 0.01),
                ("m2", "a", 6.0, 5.9, 6.1, 0.02), ("m2", "b", 9.0, 8.8, 9.2, 0.02)])
    d = wins.decide(f)
    assert d.winners == ["a"] and not d.tie
    assert wins.names(d) == "`a`"


def test_overlapping_intervals_are_a_tie():
    # the case: 5.70 [5.65, 5.81] against 5.82 [5.78, 5.85]
    f = _frame([("m1", "dyn", 5.70, 5.65, 5.81, 0.0), ("m1", "int8", 5.82, 5.78, 5.85, 0.0),
                ("m1", "float", 6.65, 6.60, 6.70, 0.0)])
    d = wins.decide(f)
    assert d.winners == ["dyn", "int8"] and d.tie
    assert "a tie between `dyn` and `int8`" == wins.names(d)


def test_a_gap_inside_the_between_run_spread_is_a_tie():
    # intervals clear (10 vs 11) but the runs of b spread 20 %: a 10 % gap could be overturned by a rerun
    f = _frame([("m1", "a", 10.0, 9.9, 10.1, 0.02), ("m1", "b", 11.0, 10.9, 11.1, 0.20)])
    assert set(wins.decide(f).winners) == {"a", "b"}
    # the same with calm runs is a win
    f.loc[1, "spread"] = 0.02
    assert wins.decide(f).winners == ["a"]


def test_a_win_on_one_machine_and_a_loss_on_another_is_a_tie_naming_the_machines():
    f = _frame([("amd", "litert", 6.6, 6.5, 6.7, 0.01), ("amd", "xla", 9.0, 8.9, 9.1, 0.01),
                ("intel", "litert", 32.2, 32.0, 32.4, 0.01), ("intel", "xla", 27.8, 27.6, 28.0, 0.01)])
    d = wins.decide(f)
    assert set(d.winners) == {"litert", "xla"}
    text = wins.names(d)
    assert "`litert` wins on `amd`" in text and "`xla` wins on `intel`" in text
    assert d.machines_won("litert") == ["amd"]


def test_a_machine_that_measured_only_one_of_them_does_not_decide():
    f = _frame([("m1", "a", 5.0, 4.9, 5.1, 0.0), ("m1", "b", 9.0, 8.9, 9.1, 0.0), ("m2", "b", 1.0, 0.9, 1.1, 0.0)])
    assert wins.decide(f).winners == ["a"]


def test_no_interval_no_win_and_higher_is_better_for_throughput():
    f = _frame([("m1", "a", 5.0, np.nan, np.nan, 0.0), ("m1", "b", 9.0, 8.9, 9.1, 0.0)])
    assert set(wins.decide(f).winners) == {"a", "b"}
    f = _frame([("m1", "a", 100.0, 99.0, 101.0, 0.0), ("m1", "b", 50.0, 49.0, 51.0, 0.0)])
    assert wins.decide(f, higher_better=True).winners == ["a"]


def test_the_tally_counts_comparisons_and_ties_once_per_question():
    R = types.SimpleNamespace()
    tie = _frame([("m1", "a", 5.0, 4.0, 6.0, 0.0), ("m1", "b", 5.5, 4.5, 6.5, 0.0), ("m1", "c", 50.0, 49, 51, 0.0)])
    win = _frame([("m1", "a", 5.0, 4.9, 5.1, 0.0), ("m1", "b", 9.0, 8.9, 9.1, 0.0)])
    wins.decide(tie, "q1", R=R)
    wins.decide(tie, "q1", R=R)            # asked twice (README and report): counted once
    wins.decide(win, "q2", R=R)
    assert wins.tally(R) == {"n": 3, "ties": 1, "questions": 2, "tied_questions": 1}


def test_repetitions_give_a_range_interval():
    st = pd.DataFrame({"machine": "m1", "backend": ["a"] * 3 + ["b"] * 3,
                       "start_to_first_pred_s": [3.445, 3.40, 3.50, 3.451, 3.42, 3.48]})
    d = wins.decide(wins.from_repetitions(st, "start_to_first_pred_s"))
    assert d.tie      # the cold start: 3.445 vs 3.451 s is no win


def test_a_capacity_that_held_no_load_loses_only_below_what_the_other_held():
    # b held nothing: its capacity lies in [0, 300) (300 QPS failed); a held 500, so a clears b
    f = _frame([("m1", "a", 500.0, 500.0, 600.0, 0.0), ("m1", "b", 0.0, 0.0, 300.0, 0.0)])
    assert wins.decide(f, higher_better=True).winners == ["a"]
    # b failed only at 800: its capacity may exceed a's 500, so no win
    f.loc[1, "hi"] = 800.0
    assert wins.decide(f, higher_better=True).winners == ["a", "b"]
    # for a latency, a zero is no measurement and never loses
    f = _frame([("m1", "a", 5.0, 4.9, 5.1, 0.0), ("m1", "b", 0.0, 0.0, 0.0, 0.0)])
    assert set(wins.decide(f).winners) == {"a", "b"}


def test_a_win_on_one_machine_and_a_tie_on_another_names_the_machine():
    f = _frame([("m1", "a", 5.0, 4.9, 5.1, 0.0), ("m1", "b", 9.0, 8.9, 9.1, 0.0),
                ("m2", "a", 5.0, 4.0, 6.0, 0.0), ("m2", "b", 5.5, 4.5, 6.5, 0.0)])
    d = wins.decide(f)
    assert d.tie and wins.names(d) == "a tie between `a` and `b` (`a` wins on `m1`)"
