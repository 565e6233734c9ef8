"""overhead.report.latency: the model chosen by leave-one-model-out error, residuals, misses and crossovers
labelled inside / beyond the measured range (synthetic data with known answers; no timing)."""
import numpy as np
import pandas as pd
import pytest

from overhead.report import analysis as A
from overhead.report import fmt
from overhead.report.sections import fits, tldr
from overhead.report import latency as L

FLOPS = np.array([1.5e4, 5e4, 1.2e6, 1.8e6, 5e6, 2.5e7, 1.1e8, 1.1e9, 3.6e9])
LAYERS = np.array([1, 2, 7, 3, 9, 10, 40, 70, 72], dtype=float)      # not monotone in FLOPs


def _noisy(y, seed=0, noise=0.02):
    return y * np.exp(np.random.default_rng(seed).normal(0, noise, len(y)))


def _bench(planted: dict, noise=0.02):
    """bench rows for backends with (overhead µs, GFLOP/s, µs per layer), one model per FLOPs/layers pair."""
    rows = []
    for j, (b, (o, g, c)) in enumerate(planted.items()):
        y = _noisy(L.predict_latency(FLOPS, o, g, LAYERS, c), seed=j, noise=noise)
        for i, (f, med) in enumerate(zip(FLOPS, y)):
            rows.append({"machine": "m", "model": f"m{i}", "flops": f, "params": 1, "backend": b, "batch": 1,
                         "threads": 2, "status": "ok", "reason": "", "median_us": med, "ci_lo_us": med * 0.98,
                         "ci_hi_us": med * 1.02, "n": 100, "unstable": False})
    models = pd.DataFrame({"name": [f"m{i}" for i in range(len(FLOPS))], "flops": FLOPS, "layers": LAYERS})
    return pd.DataFrame(rows), models


def test_per_layer_cost_the_two_term_model_cannot_fit_is_named_and_the_richer_model_chosen():
    bench, models = _bench({"keras.call": (100.0, 38.0, 60.0), "tf.function": (120.0, 42.0, 0.0)})
    R = A.analyse({"bench": bench, "machines": ["m"]}, models, n_boot=30)
    f = R.fits.set_index("backend")
    assert f.loc["keras.call", "model"] == "per-layer"
    assert f.loc["keras.call", "per_layer_us"] == pytest.approx(60.0, rel=0.15)
    assert f.loc["keras.call", "loo_per_layer"] < 0.5 * f.loc["keras.call", "loo_two_term"]
    assert f.loc["tf.function", "model"] == "two-term"               # no per-layer cost: the simpler model stays
    # the two-term model misses keras.call by > 25 %: the text names the backend, the model and the size
    two = L.misses(R.resid[R.resid["backend"] == "keras.call"], column="two_term_rel_err")
    assert len(two) and two["two_term_rel_err"].abs().max() > L.MISS
    text = fits.overhead_text(R)
    assert "1 take the per-layer model" in text and "fitted" in text


def test_a_miss_of_the_chosen_model_is_named_with_its_size():
    bench, models = _bench({"numpy": (8.0, 30.0, 0.0)}, noise=0.0)
    i = bench.index[bench["model"] == "m5"][0]
    bench.loc[i, ["median_us", "ci_lo_us", "ci_hi_us"]] *= 2.0          # one point twice as slow as the rest
    R = A.analyse({"bench": bench, "machines": ["m"]}, models, n_boot=10)
    bad = L.misses(R.resid)
    assert list(bad["model"]) == ["m5"]
    r = bad.iloc[0]
    assert f"worst: `numpy` on `m5`, fitted {fmt.fmt_us(r['fitted_us'])}, measured {fmt.fmt_us(r['measured_us'])}" \
        in fits.misses_text(R)
    assert list(fits.misses_table(R)["model"]) == ["m5"]


def test_crossover_beyond_the_largest_model_is_labelled_never_a_bare_number():
    bench, models = _bench({"keras.predict": (40000.0, 38.0, 0.0), "tf.function": (120.0, 42.0, 0.0)})
    R = A.analyse({"bench": bench, "machines": ["m"]}, models, n_boot=30)
    f = R.fits.set_index("backend")
    assert f.loc["keras.predict", "cross10_where"] == "beyond"            # 40 ms × 38 GFLOP/s × 9 ≫ 3.6 GFLOP
    text = fmt.crossover_of(R, "keras.predict", 10)
    assert text.startswith("beyond the largest model it ran on (`m8`, 3.6 GFLOP)")
    assert fmt.fmt_flops(f.loc["keras.predict", "cross10_flops"]) not in text
    inside = fmt.crossover_of(R, "tf.function", 10)                       # 120 µs × 42 × 9 = 45 MFLOP: inside
    assert f.loc["tf.function", "cross10_where"] == "inside"
    assert "95 % interval" in inside and "between `m5` and `m6`" in inside
    assert "not reached: still" in tldr.tldr(R) and "at m8 |" in tldr.tldr(R)


def test_per_layer_crossover_is_placed_on_the_measured_ladder():
    p = {"kind": "per-layer", "overhead_us": 100.0, "per_layer_us": 60.0, "gflops": 38.0}
    x, where = L.crossover(p, FLOPS, LAYERS, 0.5)
    share = L.fixed_share(FLOPS, 100.0, 38.0, LAYERS, 60.0)
    order = np.argsort(FLOPS)
    last_above = FLOPS[order][np.nonzero(share[order] > 0.5)[0][-1]]
    assert where == "inside" and last_above < x <= FLOPS[order][list(FLOPS[order]).index(last_above) + 1]
    assert L.crossover(p, FLOPS, LAYERS, 0.001)[1] == "beyond"
