import numpy as np
import pytest

from overhead.ladder import models


@pytest.fixture(scope="module")
def built():
    return {name: models.build(name) for name in models.LADDER}


def test_ladder_has_enough_models_over_five_decades(built):
    flops = [models.count_flops(built[n]) for n in models.LADDER]
    assert len(flops) >= 8
    assert flops == sorted(flops), "LADDER must be ordered by FLOPs"
    assert np.log10(flops[-1] / flops[0]) >= 5
    # no gap wider than a decade and a half on the log axis
    assert np.diff(np.log10(flops)).max() <= 1.5


@pytest.mark.parametrize("name", models.LADDER)
def test_builder_shapes_and_params_match_keras(built, name):
    m = built[name]
    d = models.describe(m)
    assert d["params"] == m.count_params()
    assert d["trainable_params"] == sum(int(np.prod(w.shape)) for w in m.trainable_weights)
    x = np.zeros((2, *d["input_shape"]), np.float32)
    out = np.asarray(m(x, training=False))
    assert out.shape == (2, d["classes"])
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-5)


def test_seed_cnn_is_the_articles_model(built):
    layers = [type(l).__name__ for l in built["cnn_seed"].layers]
    assert layers == ["InputLayer", "Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    conv = built["cnn_seed"].layers[1]
    assert conv.filters == 8 and conv.kernel_size == (3, 3)
    # 26*26*8*9 conv multiply-adds + 13*13*8*10 dense ones
    assert models.count_macs(built["cnn_seed"]) == 26 * 26 * 8 * 9 + 13 * 13 * 8 * 10


def test_tiny_mlp_flops_by_hand(built):
    assert models.count_flops(built["mlp_tiny"]) == 2 * (784 * 32 + 32 * 10)


def test_resnet18_matches_the_published_figures(built):
    m = built["resnet18_224px"]
    # He et al. 2016, Table 1: 1.8 x 10^9 multiply-adds; torchvision's resnet18 has 11,689,512 parameters
    assert abs(models.count_macs(m) / 1.8e9 - 1) < 0.02
    assert models.describe(m)["trainable_params"] == 11_689_512


def test_seeded_builds_are_reproducible():
    a, b = models.build("mlp_tiny", seed=3), models.build("mlp_tiny", seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="unknown model 'vgg'.*cnn_seed"):
        models.build("vgg")


def test_saved_model_has_its_metadata(tiny_data_dir):
    meta = models.load_meta("cnn_seed", tiny_data_dir)
    for key in ("params", "flops", "input_shape", "accuracy", "data_source", "seed", "epochs", "train_s", "weights"):
        assert key in meta
    assert models.model_path("cnn_seed", tiny_data_dir).exists()
    assert meta["weights"] == "trained" and meta["accuracy"] > 0.5


def _macs_from_kernels(model):
    """Multiply-adds from the kernels' own shapes times the output positions: an independent count."""
    macs = 0
    for layer in model.layers:
        kernels = [getattr(layer, k, None) for k in ("depthwise_kernel", "pointwise_kernel", "kernel")]
        kernels = [k for k in kernels if k is not None]
        positions = int(np.prod(layer.output.shape[1:-1]))  # output pixels (1 for a Dense on a vector)
        macs += sum(positions * int(np.prod(k.shape)) for k in kernels)
    return macs


def test_separable_convolutions_count_both_stages():
    """Keras 3's SeparableConv2D is not a Conv2D: Xception and NASNet were counted without their separable layers."""
    import keras
    inp = keras.Input((12, 12, 3))
    x = keras.layers.SeparableConv2D(8, 3, padding="same", depth_multiplier=2)(inp)
    x = keras.layers.SeparableConv2D(4, 3, strides=2, use_bias=False)(x)
    m = keras.Model(inp, x)
    assert models.count_macs(m) == _macs_from_kernels(m) == 12 * 12 * 6 * (9 + 8) + 5 * 5 * 8 * (9 + 4)
    assert models.count_params(m) == m.count_params()


@pytest.mark.parametrize("name", ["mobilenetv2_035_32px", "efficientnetb0_32px", "resnet_mnist", "cnn_seed"])
def test_macs_match_a_count_from_the_kernels(built, name):
    assert models.count_macs(built[name]) == _macs_from_kernels(built[name])


@pytest.mark.parametrize("builder,extra,macs,params", [
    # Sandler et al. 2018 (MobileNetV2), Table 6 and the TF-Slim table: 300 M and 59.2 M multiply-adds at 224 px
    ("MobileNetV2", {}, 300e6, 3_538_984),
    ("MobileNetV2", {"alpha": 0.35}, 59.2e6, 1_691_208),
    # Tan & Le 2019 (EfficientNet), Table 2: 0.39 B FLOPs (multiply-adds), 5.3 M parameters
    ("EfficientNetB0", {}, 0.39e9, 5_330_571),
])
def test_applications_match_the_published_figures(builder, extra, macs, params):
    import keras

    m = getattr(keras.applications, builder)(input_shape=(224, 224, 3), weights=None, **extra)
    assert abs(models.count_macs(m) / macs - 1) < 0.02
    assert models.count_params(m) == m.count_params() == params


def test_efficientnet_standardises_digits_in_its_own_preprocessing(built):
    import keras

    m = built["efficientnetb0_32px"]
    norm = next(layer for layer in m.layers if isinstance(layer, keras.layers.Normalization))
    x = np.zeros((1, *models.describe(m)["input_shape"]), np.float32)
    x[0, 0, :3] = [[0.0] * 3, [models.MNIST_MEAN] * 3, [1.0] * 3]
    rescaling = next(layer for layer in m.layers if isinstance(layer, keras.layers.Rescaling))
    # the digits' own range before the Normalization (a tiny one there breaks TFLite's int8 quantization)
    np.testing.assert_array_equal(np.asarray(keras.Model(m.inputs, rescaling.output)(x)), x)
    out = np.asarray(keras.Model(m.inputs, norm.output)(x))[0, 0, :3, 0]
    np.testing.assert_allclose(out, [-models.MNIST_MEAN / models.MNIST_STD, 0.0,
                                     (1 - models.MNIST_MEAN) / models.MNIST_STD], atol=1e-5)


def test_standardisation_survives_saving(tmp_path, built):
    import keras

    m = built["efficientnetb0_32px"]
    m.save(tmp_path / "e.keras")
    back = keras.saving.load_model(tmp_path / "e.keras")
    x = np.random.default_rng(0).random((2, *models.describe(m)["input_shape"]), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(back(x, training=False)), np.asarray(m(x, training=False)), rtol=1e-5,
                               atol=1e-7)
