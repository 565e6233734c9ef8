import numpy as np

from overhead.ladder import train


def test_shift_augment_keeps_the_real_digits_and_adds_their_shifts():
    x = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5, 1) + 1
    y = np.array([3, 7])
    xa, ya = train.shift_augment(x, y)
    assert xa.shape == (18, 4, 5, 1) and ya.tolist() == [3, 7] * 9
    k = train.SHIFTS.index((0, 0))
    np.testing.assert_array_equal(xa[2 * k:2 * k + 2], x)
    k = train.SHIFTS.index((1, -1))  # down one row, left one column
    down_left = xa[2 * k]
    np.testing.assert_array_equal(down_left[1:, :-1], x[0, :-1, 1:])
    assert not down_left[0].any() and not down_left[:, -1].any()


def test_train_samples_follow_the_flops_budget():
    # 3 x 1e6 FLOPs x 2 epochs = 6e6 FLOPs per digit: a 3e9 budget affords 500 of 4000
    assert train.train_samples_for(1e6, 2, 4000, train_flops_budget=3e9) == 500
    assert train.train_samples_for(1e6, 2, 4000, train_flops_budget=3e6, min_train_samples=256) == 256
    assert train.train_samples_for(1e3, 2, 4000, train_flops_budget=3e9, max_train_samples=1000) == 1000
    assert train.train_samples_for(1e9, 1, 100, train_flops_budget=1.0, min_train_samples=256) == 100
    assert train.train_samples_for(1e9, 3, 4000) == 4000  # no budget: every digit


def test_decisiveness_of_softmax_outputs():
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.1, 0.1, 0.8]])
    d = train.decisiveness(probs)
    assert d["decisive_share"] == 2 / 3 and d["median_top_prob"] == 0.8
    assert d["median_logit_margin"] == np.log(0.8 / 0.1)  # log p1 - log p2 is the logit margin
    uniform = train.decisiveness(np.full((4, 10), 0.1))
    assert uniform["decisive_share"] == 0.0 and uniform["median_logit_margin"] == 0.0


def test_train_one_within_a_budget_records_what_it_did(tiny_data_dir, tmp_path):
    from overhead.base import data
    from overhead.ladder import models

    splits = data.load_mnist(tiny_data_dir, allow_download=False)
    flops = models.count_flops(models.build("logreg"))
    meta = train.train_one("logreg", splits, epochs=5, batch_size=16, seed=0, max_train_samples=None,
                           train_flops_budget=3 * flops * 5 * 300, min_train_samples=100,
                           eval_flops_budget=flops * 150, min_eval_samples=120, data_dir=tmp_path)
    assert meta["weights"] == "trained" and meta["train_samples"] == 300 and meta["epochs"] == 5
    assert "300 of" in meta["training_note"] and "train_flops_budget" in meta["training_note"]
    assert meta["train_flops"] == 3 * flops * 300 * 5
    assert meta["accuracy_split"].startswith("held-out test (150 of")
    assert meta["accuracy"] > 0.5 and 0 <= meta["decisive_share"] <= 1 and meta["train_s"] > 0
    assert models.model_path("logreg", tmp_path).exists()
    seeded = train.train_one("mlp_tiny", splits, epochs=1, batch_size=64, seed=0, max_train_flops=1.0,
                             eval_flops_budget=0, min_eval_samples=50, data_dir=tmp_path)
    assert seeded["weights"] == "seeded-init" and "max_train_flops" in seeded["why_untrained"]
    assert seeded["train_samples"] == 0 and seeded["accuracy"] is not None


def test_recalibrate_batchnorm_sets_moving_stats_to_the_mean_batch_stats():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.BatchNormalization(momentum=0.99, name="bn")(inp))
    x = np.random.default_rng(0).normal([5.0, -2.0, 0.5], [1.0, 3.0, 0.1], size=(96, 3)).astype(np.float32)
    assert train.recalibrate_batchnorm(model, x, batch_size=32) == 3
    bn = model.get_layer("bn")
    batches = x.reshape(3, 32, 3)
    np.testing.assert_allclose(np.asarray(bn.moving_mean), batches.mean(1).mean(0), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), batches.var(1).mean(0), rtol=1e-3)
    assert bn.momentum == 0.99  # restored
    assert train.recalibrate_batchnorm(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), x) == 0


def test_recalibration_sees_what_inference_sees_with_dropout_off():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    drop = keras.layers.Dropout(0.9, name="drop")
    model = keras.Model(inp, keras.layers.BatchNormalization(name="bn")(drop(inp)))
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(64, 4)).astype(np.float32)
    train.recalibrate_batchnorm(model, x, batch_size=64)
    # dropout at 0.9 would scale the kept inputs by 10 and zero the rest: mean and variance far from x's
    np.testing.assert_allclose(np.asarray(model.get_layer("bn").moving_mean), x.mean(0), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(model.get_layer("bn").moving_variance), x.var(0), rtol=1e-3)
    assert drop.rate == 0.9  # restored
