"""PNG -> label pipeline: images, stage functions, labels on real digits (no timing assertions)."""
import io

import numpy as np
import pytest

from overhead.base import data
from overhead.experiments import pipeline


def test_image_geometry():
    assert pipeline.image_geometry([784]) == (28, 28, 1, True)
    assert pipeline.image_geometry([28, 28, 1]) == (28, 28, 1, False)
    assert pipeline.image_geometry((224, 224, 3)) == (224, 224, 3, False)
    with pytest.raises(ValueError):
        pipeline.image_geometry([785])
    with pytest.raises(ValueError):
        pipeline.image_geometry([8, 8, 2])


def test_png_round_trip_is_lossless():
    from PIL import Image

    pix = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)
    png = pipeline.encode_png(pix)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), pix)


def test_png_digits_at_model_sizes(data_env):
    pngs, y = pipeline.png_digits([28, 28, 1], 5, image_size=None)
    assert len(pngs) == 5 and y.shape == (5,)
    d = data.load_mnist()
    img = np.asarray(pipeline.Pipeline([28, 28, 1]).decode(pngs[0]))
    assert np.array_equal(img, np.rint(d.x_test[0, ..., 0] * 255).astype(np.uint8))
    big, _ = pipeline.png_digits([32, 32, 3], 2, image_size=None)
    pipe = pipeline.Pipeline([32, 32, 3])
    assert np.asarray(pipe.decode(big[0])).shape == (32, 32, 3)
    x = pipe.preprocess(pipe.decode(big[0]))
    assert x.shape == (1, 32, 32, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1


def test_numpy_preprocess_matches_the_reference_inputs(data_env):
    pngs, _ = pipeline.png_digits([28, 28, 1], 8, image_size=None)
    ref, _ = data.inputs_for([28, 28, 1], 8)
    flat, _ = data.inputs_for([784], 8)
    for i, png in enumerate(pngs):
        pipe = pipeline.Pipeline([28, 28, 1])
        assert np.allclose(pipe.preprocess(pipe.decode(png)), ref[i:i + 1], atol=1e-6)
        mlp = pipeline.Pipeline([784])
        assert np.allclose(mlp.preprocess(mlp.decode(png)), flat[i:i + 1], atol=1e-6)


def test_postprocess_and_explicit_softmax():
    out = np.array([[0.1, 0.7, 0.2]], np.float32)
    assert pipeline.Pipeline([28, 28, 1]).postprocess(out) == (1, pytest.approx(0.7))
    label, p = pipeline.Pipeline([28, 28, 1], explicit_softmax=True).postprocess(np.array([[0.0, 2.0, 0.0]]))
    assert label == 1 and p == pytest.approx(np.exp(2) / (np.exp(2) + 2))


def test_rows_shares_sum_to_one():
    samples = np.array([[10, 20, 60, 10], [12, 18, 70, 10], [8, 22, 50, 10]]) * 1000
    rows = pipeline.rows("m", "cnn_seed", "numpy", samples)
    assert [r["stage"] for r in rows] == list(pipeline.STAGES)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert rows[0]["total_us"] == pytest.approx(100.0) and rows[2]["median_us"] == pytest.approx(60.0)


def test_measure_with_a_fake_runner(data_env):
    pngs, labels = pipeline.png_digits([28, 28, 1], 6, image_size=None)
    pipe = pipeline.Pipeline([28, 28, 1])
    truth = {png: int(y) for png, y in zip(pngs, labels)}
    seen = []

    def runner(x):  # a "model" that knows the answer for each image, by its pixels
        seen.append(x.shape)
        key = next(p for p in pngs if np.allclose(pipe.preprocess(pipe.decode(p)), x))
        return np.eye(10, dtype=np.float32)[[truth[key]]]

    got = pipeline.measure({"fake": pipe}, {"fake": runner}, pngs, calls=12, budget_s=5.0, rounds=3, warmup=1)
    assert got["fake"]["samples"].shape == (12, 4)
    assert np.array_equal(got["fake"]["labels"], labels[np.arange(12) % 6])
    assert set(seen) == {(1, 28, 28, 1)}


def test_real_backends_give_the_right_labels(data_env):
    pytest.importorskip("tensorflow")
    from overhead import backends

    model = data_env / "models" / "cnn_seed.keras"
    pngs, labels = pipeline.png_digits([28, 28, 1], 32, image_size=None)
    ref_x, _ = data.inputs_for([28, 28, 1], 32)
    for name, style in (("numpy", "numpy+pillow"), ("keras.call", "tf.io+tf.image")):
        runner = backends.prepare(name, model, 1, 1)
        pipe = pipeline.pipeline_for(name, [28, 28, 1])
        assert pipe.style == style
        got = np.array([pipeline.run_once(pipe, runner, p)[1] for p in pngs])
        direct = np.array([int(runner(ref_x[i:i + 1]).argmax()) for i in range(32)])
        assert np.mean(got == direct) >= 0.95  # the label the model gives for the reference input
        assert np.mean(got == labels) >= 0.3  # and real digits recognised (the fixture model is barely trained)
    tf_pipe, np_pipe = pipeline.TFPipeline([28, 28, 1]), pipeline.Pipeline([28, 28, 1])
    a = np.asarray(tf_pipe.preprocess(tf_pipe.decode(pngs[3])))
    assert np.allclose(a, np_pipe.preprocess(np_pipe.decode(pngs[3])), atol=1e-6)


def test_camera_sized_png_is_really_resized_by_both_pipelines(data_env):
    from PIL import Image

    pytest.importorskip("tensorflow")
    pngs, _ = pipeline.png_digits([784], 6)  # default: camera-sized RGB whatever the model
    assert Image.open(io.BytesIO(pngs[0])).size == pipeline.IMAGE_SIZE == (640, 480)
    assert Image.open(io.BytesIO(pngs[0])).mode == "RGB"
    ref, _ = data.inputs_for([28, 28, 1], 6)
    for shape, out_shape in (([28, 28, 1], (1, 28, 28, 1)), ([784], (1, 784)), ([32, 32, 3], (1, 32, 32, 3))):
        np_pipe, tf_pipe = pipeline.Pipeline(shape), pipeline.TFPipeline(shape)
        for png in pngs:
            a = np_pipe.preprocess(np_pipe.decode(png))
            b = tf_pipe.preprocess(tf_pipe.decode(png))
            assert isinstance(b, np.ndarray) and a.shape == b.shape == out_shape and a.dtype == b.dtype == np.float32
            assert np.abs(a - b).max() < 0.01  # the same antialiased bilinear reduction in both libraries
    back = pipeline.Pipeline([28, 28, 1])
    x = np.concatenate([back.preprocess(back.decode(p)) for p in pngs])
    assert np.abs(x - ref).mean() < 0.05  # the real digit survives 28 -> 640x480 -> 28


def test_measure_keeps_gc_enabled_while_timing():
    import gc

    states = []
    pipe = pipeline.Pipeline([28, 28, 1])
    png = pipeline.encode_png(np.zeros((28, 28), np.uint8))
    pipeline.measure({"f": pipe}, {"f": lambda x: states.append(gc.isenabled()) or np.ones((1, 10))}, [png],
                     calls=6, budget_s=5.0, rounds=2, warmup=1)
    assert len(states) >= 6 and all(states)
