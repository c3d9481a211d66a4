"""HEIG-VD ARN PW4: MLPs, HOG features, the course CNN, the chest X-ray pipeline."""

import numpy as np
import pytest
from skimage.feature import hog

import data
import models
from conftest import make_xray_tree
from labtools import errors, scores, xrays

def test_arn_recipes():
    expected = {"mlp1": (10, 128), "mlp2": (20, 32), "mlp3": (30, 128), "hog_mlp1": (50, 128), "hog_mlp2": (20, 128),
                "arn_cnn": (10, 128), "pneumonia": (5, 64)}
    for name, (epochs, batch_size) in expected.items():
        recipe = models.MODELS[name]
        assert (recipe.epochs, recipe.batch_size) == (epochs, batch_size)
        assert recipe.optimizer == ("adam" if name == "pneumonia" else "rmsprop")
    assert models.MODELS["pneumonia"].loss == "binary_crossentropy"
    # the HOG of the course notebooks (8 orientations, 4 px cells: 392 features) and of the ARN report's model 2
    assert models.MODELS["hog_mlp1"].input_options == {"orientations": 8, "pixels_per_cell": 4}
    assert models.MODELS["hog_mlp2"].input_options == {"orientations": 16, "pixels_per_cell": 4}


@pytest.mark.parametrize("orientations, pixels_per_cell, size", [(8, 4, 392), (16, 4, 784), (8, 5, 200), (9, 7, 144)])
def test_hog_size_is_skimages_count(orientations, pixels_per_cell, size):
    image = np.random.default_rng(0).random((28, 28))
    features = hog(image, orientations=orientations, pixels_per_cell=(pixels_per_cell, pixels_per_cell),
                   cells_per_block=(1, 1))
    assert len(features) == size == data.hog_size(orientations, pixels_per_cell)


def test_hog_features_equal_skimage_image_by_image(mnist_test_images):
    images = mnist_test_images[:5]
    features = data.hog_features(images, orientations=8, pixels_per_cell=4, cache=False)
    assert features.shape == (5, 392) and features.dtype == np.float32
    for image, row in zip(images, features):
        expected = hog(image[0], orientations=8, pixels_per_cell=(4, 4), cells_per_block=(1, 1))
        np.testing.assert_allclose(row, expected, rtol=1e-6)
    flat_input = data.hog_features(images[:, 0], orientations=8, pixels_per_cell=4, cache=False)
    np.testing.assert_array_equal(flat_input, features)


@pytest.mark.slow
def test_hog_in_parallel_equals_serial_and_is_cached(mnist_test_images, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_LABS_CACHE", str(tmp_path))
    images = mnist_test_images[:4000]
    serial = data.hog_of_images(images[:, 0], 16, 4)
    features = data.hog_features(images, orientations=16, pixels_per_cell=4)
    np.testing.assert_array_equal(features, serial)
    (cache_file,) = tmp_path.glob("hog-o16-p4-*.npz")
    monkeypatch.setattr(data, "hog_of_images", lambda *args: pytest.fail("cache not used"))
    np.testing.assert_array_equal(data.hog_features(images, orientations=16, pixels_per_cell=4), features)
    cache_file.write_bytes(b"damaged")  # a damaged cache is computed again, not trusted
    monkeypatch.undo()
    monkeypatch.setenv("MNIST_LABS_CACHE", str(tmp_path))
    np.testing.assert_array_equal(data.hog_features(images[:1000], orientations=16, pixels_per_cell=4),
                                  features[:1000])


@pytest.fixture(scope="module")
def mnist_test_images():
    _, (X_test, _), _ = data.get_data_mnist(normalize=True)
    return X_test


# ---------------------------------------------------------------------------- chest X-rays


class BrightnessModel:
    """Predicts PNEUMONIA for bright images: lets us check that labels and predictions line up."""

    def predict(self, images, batch_size, verbose):
        return (np.asarray(images).mean(axis=(1, 2, 3)) > 120).astype(np.float32)


def test_xray_labels_line_up_whatever_the_letter_case(tmp_path):
    make_xray_tree(tmp_path)
    splits = xrays.load_xrays(tmp_path)
    images, labels = splits["train"]
    assert images.shape == (24, 128, 128, 1) and images.dtype == np.float32 and 0 <= images.min() < images.max() <= 255
    assert labels[:, 0].tolist() == [0] * 12 + [1] * 12  # the lower-case normal/ folder is still label 0
    results = scores.xray_metrics(BrightnessModel(), *splits["test"])
    assert results["accuracy"] == 1.0 and results["confusion_matrix"] == [[12, 0], [0, 12]]
    assert xrays.class_weights([1341, 3875]) == pytest.approx({0: 1.9448, 1: 0.6730}, abs=1e-4)


@pytest.mark.parametrize("damage, message", [
    (lambda root: None, "no such directory"),
    (lambda root: make_xray_tree(root) and __import__("shutil").rmtree(root / "test"), "no test/ folder"),
    (lambda root: make_xray_tree(root) and __import__("shutil").rmtree(root / "train" / "PNEUMONIA"),
     "needs NORMAL/ and PNEUMONIA/"),
    (lambda root: make_xray_tree(root) and [p.unlink() for p in (root / "test" / "normal").iterdir()],
     "no images"),
])
def test_malformed_xray_tree_is_a_clear_error(tmp_path, damage, message):
    root = tmp_path / "xray"
    damage(root)
    with pytest.raises(errors.DataError, match=message) as error:
        xrays.xray_split_dirs(root)
    assert "Chest X-Ray Images (Pneumonia)" in str(error.value)
