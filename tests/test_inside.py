"""Inside the CNNs (labtools/inside.py, visualize.py): feature maps, filters, integrated gradients and Grad-CAM
checked against what they are by hand on tiny models, the deletion check, the chest box, and visualize.py's
figures; on every backend (.ci/run runs this file on TensorFlow, JAX and PyTorch)."""

import keras
import numpy as np
import pytest
from keras import layers
from PIL import Image

import models
import visualize
from conftest import make_xray_tree, train_run
from labtools import inside


def linear_cnn(data_format="channels_last", size=4, classes=3, seed=0):
    """Conv 1x1 (one linear filter, no bias), Flatten, Dense softmax: each class score is linear in the pixels."""
    keras.utils.set_random_seed(seed)
    shape = (size, size, 1) if data_format == "channels_last" else (1, size, size)
    model = keras.Sequential([keras.Input(shape), layers.Conv2D(1, 1, use_bias=False, data_format=data_format),
                              layers.Flatten(data_format=data_format), layers.Dense(classes, activation="softmax")])
    model.layers[0].kernel.assign(np.full((1, 1, 1, 1), 2.0, np.float32))
    return model


def images(count=5, size=4, seed=1):
    return np.random.default_rng(seed).random((count, size, size, 1), dtype=np.float32)


def test_integrated_gradients_of_a_linear_score_are_pixel_times_weight():
    model = linear_cnn()
    x, classes = images(), np.array([0, 1, 2, 0, 1])
    weights = model.layers[-1].kernel.numpy()  # (16, 3), pixels row-major
    found, gaps = inside.Probe(model).integrated_gradients(x, classes)
    expected = x[..., 0].reshape(5, 16) * 2.0 * weights[:, classes].T
    np.testing.assert_allclose(found.reshape(5, 16), expected, rtol=1e-4, atol=1e-6)
    assert gaps.max() < 1e-4  # completeness: exact for a linear score


def test_integrated_gradients_add_up_to_the_score_difference_on_a_relu_network():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                              layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10, activation="softmax")])
    x = images(4, 8)
    found, gaps = inside.Probe(model).integrated_gradients(x, np.array([1, 2, 3, 4]), steps=64)
    assert found.shape == x.shape and np.all(np.isfinite(found))
    assert gaps.max() < 0.05


def test_gradcam_of_a_linear_score_by_hand():
    """One map A = 2x, gradients dScore/dA = the class's dense weights: Grad-CAM = relu(mean weight * A)."""
    model = linear_cnn()
    x, classes = images(), np.array([0, 1, 2, 0, 1])
    weights = model.layers[-1].kernel.numpy()
    found = inside.Probe(model).gradcam(x, classes, (4, 4))
    expected = np.maximum(weights[:, classes].mean(axis=0)[:, None, None] * 2.0 * x[..., 0], 0)
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_feature_maps_are_each_convolutions_output_channels_last(data_format):
    keras.utils.set_random_seed(0)
    shape = (10, 10, 1) if data_format == "channels_last" else (1, 10, 10)
    model = keras.Sequential([keras.Input(shape), layers.Conv2D(3, 3, activation="relu", data_format=data_format),
                              layers.MaxPooling2D(2, data_format=data_format),
                              layers.Conv2D(5, 3, activation="relu", data_format=data_format),
                              layers.Flatten(data_format=data_format), layers.Dense(2, activation="softmax")])
    if data_format == "channels_first" and keras.backend.backend() == "tensorflow":
        pytest.skip("TensorFlow runs channels_first convolutions on a CPU only with oneDNN (docs/models.md)")
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    probe = inside.Probe(model)
    maps = probe.feature_maps(x)
    assert [found.shape for _, found in maps] == [(2, 8, 8, 3), (2, 2, 2, 5)]
    first = keras.ops.convert_to_numpy(model.layers[0](x))
    np.testing.assert_allclose(maps[0][1], np.moveaxis(first, 1, -1) if data_format == "channels_first" else first,
                               rtol=1e-5, atol=1e-6)
    assert probe.first_filters().shape == (3, 3, 1, 3)


def test_a_model_without_a_convolution_or_not_a_chain_is_refused():
    with pytest.raises(ValueError, match="no convolution"):
        inside.Probe(models.mlp1_model())
    inputs = keras.Input((6, 6, 1))
    convolved = layers.Conv2D(1, 3, padding="same")(inputs)
    joined = layers.Add()([inputs, convolved])  # a skip connection: not a chain of layers
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(layers.Flatten()(joined)))
    with pytest.raises(ValueError, match="not a chain"):
        inside.Probe(model)


def one_pixel_model(pixel=5):
    """Flatten, Dense softmax: class 1 wins by the value of one pixel, class 0 by nothing."""
    model = keras.Sequential([keras.Input((4, 4, 1)), layers.Flatten(), layers.Dense(2, activation="softmax")])
    kernel = np.zeros((16, 2), np.float32)
    kernel[pixel, 1] = 10.0
    model.layers[-1].set_weights([kernel, np.zeros(2, np.float32)])
    return model


def test_deletion_follows_the_order_given_and_a_faithful_map_beats_random_order():
    model, x, fractions = one_pixel_model(), np.ones((6, 4, 4, 1), np.float32), np.linspace(0, 1, 17)
    faithful = np.zeros((6, 4, 4))
    faithful[:, 1, 1] = 1.0  # pixel 5, row-major
    curves = inside.deletion_curves(model, x, np.ones(6, int), inside.deletion_orders(faithful, 0), fractions)
    np.testing.assert_allclose(curves[:, 0], 1 / (1 + np.exp(-10)), rtol=1e-5)
    np.testing.assert_allclose(curves[:, 1:], 0.5, rtol=1e-5)  # gone at the first step: both classes at 0 score
    random = inside.deletion_curves(model, x, np.ones(6, int), inside.random_orders(6, 16, 0), fractions)
    assert (random[:, 1] > 0.99).sum() >= 4  # in random order the pixel goes 1 time in 16 first
    assert inside.area(curves, fractions).mean() < inside.area(random, fractions).mean() - 0.1  # both end at 0.5


def test_deletion_orders_break_ties_at_random_not_by_position():
    orders = inside.deletion_orders(np.zeros((200, 4, 4)), seed=0)
    assert len({int(first) for first in orders[:, 0]}) > 10


def test_randomized_copy_is_the_same_architecture_with_other_weights():
    model = linear_cnn(seed=0)
    copy = inside.randomized_copy(model, seed=1)
    assert [type(layer) for layer in copy.layers] == [type(layer) for layer in model.layers]
    assert not np.allclose(copy.layers[-1].kernel.numpy(), model.layers[-1].kernel.numpy())
    assert inside.probabilities(copy, images()).shape == (5, 3)


def test_outside_share_and_rank_correlation():
    uniform = np.ones((1, 100, 100))
    np.testing.assert_allclose(inside.outside_share(uniform), 1 - inside.box_area(), atol=1e-9)
    centred = np.zeros((1, 100, 100))
    centred[0, 40:60, 40:60] = 1.0
    corner = np.zeros((1, 100, 100))
    corner[0, :5, :5] = 1.0
    assert inside.outside_share(centred)[0] == 0 and inside.outside_share(corner)[0] == 1
    assert np.isnan(inside.outside_share(-uniform)[0])  # nothing positive
    maps = np.random.default_rng(0).random((3, 5, 5))
    np.testing.assert_allclose(inside.rank_correlation(maps, 2 * maps + 1), 1.0)
    np.testing.assert_allclose(inside.rank_correlation(maps, -maps), -1.0)


def figure_size(path):
    with Image.open(path) as image:
        return image.size


def test_visualize_draws_three_figures_of_a_saved_pair(tiny_run, tmp_path, capsys):
    out_dir, _ = tiny_run
    pair = next((out_dir / "models").glob("*.json")).with_suffix("")
    assert visualize.main([str(pair), "--out", str(tmp_path), "--images", "0,1,2,3,4",
                           "--test-limit", "1000"]) == 0
    figures = {kind: tmp_path / f"{pair.name}_{kind}.png" for kind in ("filters", "feature_maps", "attribution")}
    widths = {kind: figure_size(path)[0] for kind, path in figures.items()}
    heights = {kind: figure_size(path)[1] for kind, path in figures.items()}
    assert widths["filters"] > 800 and heights["filters"] > 400  # the small CNN's 64 filters, 16 a row
    assert widths["feature_maps"] > 1.4 * heights["feature_maps"]  # 5 images across; the image, two convolutions
    assert widths["attribution"] > 3 * heights["attribution"]  # ten classes across, right and wrong
    assert "wrote" in capsys.readouterr().out


def test_the_maps_differ_between_classes(tiny_run):
    """The feature maps of two digits of other classes differ, and a digit's map for one class is not its map for
    another."""
    import data
    from labtools import grading, layout

    out_dir, _ = tiny_run
    pair = next((out_dir / "models").glob("*.json")).with_suffix("")
    saved, _, normalize = grading.load_run(pair, models.MODELS)
    model = layout.channels_last_copy(saved.model)
    _, (x_test, y_test), _ = data.get_data_mnist(normalize)
    first = visualize.first_of_each_class(y_test.argmax(axis=1))
    x = np.moveaxis(x_test[first], 1, -1)
    probe = inside.Probe(model)
    maps = probe.feature_maps(x)[0][1]
    assert not np.allclose(maps[0], maps[1])
    for_zero, _ = probe.integrated_gradients(x[:1], np.array([0]))
    for_one, _ = probe.integrated_gradients(x[:1], np.array([1]))
    assert np.abs(for_zero - for_one).max() > 1e-3 * np.abs(for_zero).max()


def test_visualize_on_a_chest_xray_pair(tmp_path):
    tree = make_xray_tree(tmp_path / "xrays", per_class=6)
    train_run("pneumonia", tmp_path / "out", data_dir=tree, epochs=1, batch_size=8)
    pair = tmp_path / "out" / "models" / "pneumonia"
    assert visualize.main([str(pair), "--out", str(tmp_path / "plots")]) == 0  # the tree it was trained on
    width, height = figure_size(tmp_path / "plots" / "pneumonia_attribution.png")
    assert width > height  # a row per class: three right, three wrong
    assert figure_size(tmp_path / "plots" / "pneumonia_feature_maps.png")[0] > 1000  # five convolutions across


def test_visualize_bad_input_is_one_line(tiny_run, tmp_path, capsys):
    out_dir, _ = tiny_run
    pair = next((out_dir / "models").glob("*.json")).with_suffix("")
    assert visualize.main([str(pair), "--out", str(tmp_path), "--images", "0,999", "--test-limit", "500"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1] == "visualize.py: error: --images 0,999: indices go from 0 to 499"
    mlp = tmp_path / "mlp"
    train_run("mlp1", mlp, epochs=1, train_limit=200, test_limit=50)
    assert visualize.main([str(mlp / "models" / "mlp1"), "--out", str(tmp_path)]) == 1
    assert "has no convolution" in capsys.readouterr().err
    assert not list(tmp_path.glob("mlp1_*.png"))


def test_feature_maps_are_taken_after_the_batch_normalisation_and_relu_that_follow():
    """The ladder's rungs: Conv (no activation), BatchNormalization, Activation relu; the maps are the relu's."""
    model = models.build_model("batchnorm")
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    (name, first), *_ = inside.Probe(model).feature_maps(x)
    assert name == model.layers[0].name and first.min() >= 0
    after_relu = keras.ops.convert_to_numpy(model.layers[2](model.layers[1](model.layers[0](x), training=False)))
    np.testing.assert_allclose(first, after_relu, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fixture", ["keras208_theano_cnn", "tf_keras212_bn_cnn", "keras3_model.keras"])
def test_visualize_draws_models_that_other_keras_versions_saved(fixture, tmp_path):
    """A Keras 2.0.8 channels_first pair (Theano), a tf.keras 2.12 pair with batch normalisation, a Keras 3 archive:
    the files a teacher collects (tests/fixtures/README.md)."""
    from conftest import ROOT

    assert visualize.main([str(ROOT / "tests" / "fixtures" / fixture), "--out", str(tmp_path),
                           "--test-limit", "1000"]) == 0
    name = fixture.removesuffix(".keras")
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"{name}_{kind}.png" for kind in
                                                                ("attribution", "feature_maps", "filters")]


@pytest.mark.parametrize("ending", ["dense softmax", "softmax layer", "logits"])
def test_the_score_explained_is_the_one_before_the_softmax(ending):
    """Whether the softmax is the Dense layer's activation, a layer of its own, or absent (a model from elsewhere
    that gives logits), the class score is the same logit."""
    keras.utils.set_random_seed(0)
    body = [keras.Input((6, 6, 1)), layers.Conv2D(2, 3), layers.Flatten()]
    dense = layers.Dense(3, activation="softmax" if ending == "dense softmax" else None)
    model = keras.Sequential(body + [dense] + ([layers.Softmax()] if ending == "softmax layer" else []))
    x = images(4, 6)
    features = keras.ops.convert_to_numpy(model.layers[1](model.layers[0](x)))
    logits = features @ dense.kernel.numpy() + dense.bias.numpy()
    classes = np.array([0, 1, 2, 1])
    np.testing.assert_allclose(inside.Probe(model).scores(x, classes), logits[np.arange(4), classes], rtol=1e-5,
                               atol=1e-6)


def test_a_teachers_folder_names_each_students_figures_for_its_folder(tiny_run, tmp_path):
    import shutil

    out_dir, _ = tiny_run
    pair = next((out_dir / "models").glob("*.json")).with_suffix("")
    for student in ("alice", "bob"):
        (tmp_path / "desk" / student).mkdir(parents=True)
        for suffix in (".json", ".weights.h5"):
            shutil.copy(f"{pair}{suffix}", tmp_path / "desk" / student / f"model{suffix}")
    assert visualize.main([str(tmp_path / "desk"), "--out", str(tmp_path / "plots"), "--test-limit", "500",
                           "--images", "0"]) == 0
    assert sorted(path.name for path in (tmp_path / "plots").glob("*_filters.png")) == [
        "alice_model_filters.png", "bob_model_filters.png"]
