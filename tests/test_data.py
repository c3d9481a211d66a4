"""MNIST loading: the real data, offline, checked; clear errors for damaged files."""

import numpy as np
import pytest

import data
from conftest import ROOT, run_script
from labtools import batches, errors, files, mnist_file


@pytest.fixture(scope="module")
def mnist():
    return data.get_data_mnist(normalize=False)


def test_shapes_dtypes_and_one_hot(mnist):
    (X_train, y_train), (X_test, y_test), num_classes = mnist
    assert X_train.shape == (60000, 1, 28, 28) and X_test.shape == (10000, 1, 28, 28)
    assert X_train.dtype == np.float32 and X_test.dtype == np.float32
    assert y_train.shape == (60000, 10) and y_test.shape == (10000, 10)
    assert num_classes == 10
    assert np.array_equal(y_train.sum(axis=1), np.ones(60000))


def test_known_mnist_facts(mnist):
    (X_train, y_train), (X_test, y_test), _ = mnist
    assert X_train.min() == 0 and X_train.max() == 255
    assert X_train.mean(dtype=np.float64) == pytest.approx(33.318421449829934, abs=1e-12)
    assert X_test.mean(dtype=np.float64) == pytest.approx(33.791224489795916, abs=1e-12)
    counts = np.bincount(y_train.argmax(axis=1))
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert y_train[:5].argmax(axis=1).tolist() == [5, 0, 4, 1, 9]
    assert y_test[:5].argmax(axis=1).tolist() == [7, 2, 1, 0, 4]


def test_normalize_divides_by_255(mnist):
    (X_raw, _), _, _ = mnist
    (X_train, _), (X_test, _), _ = data.get_data_mnist(normalize=True)
    assert X_train.min() == 0.0 and X_train.max() == 1.0 and X_test.max() == 1.0
    np.testing.assert_array_equal(X_train[:100], X_raw[:100] / np.float32(255))


def test_flat_and_channels_last_forms(mnist):
    (X_train, _), _, _ = mnist
    flat = data.prepare_inputs(X_train[:3], "flat")
    assert flat.shape == (3, 784)
    np.testing.assert_array_equal(flat[1], X_train[1].ravel())
    last = data.prepare_inputs(X_train[:3], "image", "channels_last")
    assert last.shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(last[..., 0], X_train[:3, 0])


def test_mnist_is_the_repository_file_and_loads_without_network_or_home(tmp_path):
    """The arrays come from datasets/mnist.npz, and loading them writes nothing in the user's home."""
    assert data.MNIST_FILE == ROOT / "datasets" / "mnist.npz" and data.MNIST_FILE.is_file()
    code = "import data; (x, y), _ = data.load_mnist(); print(x.shape, x.dtype, x.flags.writeable)"
    result = run_script("-c", code, env={"HOME": str(tmp_path), "KERAS_HOME": str(tmp_path / "keras")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["(60000,", "28,", "28)", "uint8", "False"]
    assert list(tmp_path.iterdir()) == []


def copy_of_mnist(tmp_path, **replace):
    """A copy of the MNIST file with some arrays replaced."""
    with np.load(data.MNIST_FILE) as f:
        arrays = {key: f[key] for key in f.files}
    arrays.update(replace)
    path = tmp_path / "mnist.npz"
    np.savez_compressed(path, **arrays)
    return path


def test_missing_file_names_it_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MNIST_FILE", tmp_path / "datasets" / "mnist.npz")
    with pytest.raises(errors.DataError, match=r"datasets/mnist\.npz: MNIST file not found; restore it with: git "):
        data.get_data_mnist()


def test_damaged_file_is_a_clear_error(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(data.MNIST_FILE.read_bytes()[:100_000])
    with pytest.raises(errors.DataError, match=r"mnist\.npz: cannot read this MNIST file .*git checkout -- "):
        data.load_mnist(path)


def test_other_data_is_refused(tmp_path):
    with np.load(data.MNIST_FILE) as f:
        x_train = f["x_train"].copy()
    x_train[0, 0, 0] ^= 1  # one bit of one pixel
    with pytest.raises(errors.DataError, match=r"differ from the real MNIST \(SHA-256 mismatch\)"):
        data.load_mnist(copy_of_mnist(tmp_path, x_train=x_train))
    with pytest.raises(errors.DataError, match="unexpected MNIST arrays"):
        data.load_mnist(copy_of_mnist(tmp_path, y_test=np.zeros(10, np.uint8)))


def test_restore_hint_works_from_any_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    assert mnist_file.restore_hint(data.MNIST_FILE) == "restore it with: git checkout -- datasets/mnist.npz"
    monkeypatch.chdir(tmp_path)
    assert mnist_file.restore_hint(data.MNIST_FILE) == f"restore it with: git -C {ROOT} checkout -- datasets/mnist.npz"


def test_the_training_order_is_tensorflows_stateless_shuffle():
    """data.epoch_order, in NumPy on every backend, visits the images in TensorFlow's order for [seed, epoch], so the
    runs trained with TensorFlow's own shuffle keep their batches; each (seed, epoch) has its own order."""
    tf = pytest.importorskip("tensorflow")
    for images, seed, epoch in [(60_000, 7, 0), (55_000, 8, 11), (5_216, 9, 3), (600, -1, 2**40), (2, 7, 1), (1, 7, 0)]:
        expected = tf.random.experimental.stateless_shuffle(tf.range(images, dtype=tf.int64),
                                                            seed=tf.constant([seed, epoch], tf.int64)).numpy()
        np.testing.assert_array_equal(batches.epoch_order(images, seed, epoch), expected)
    orders = [batches.epoch_order(1000, seed, epoch) for seed, epoch in [(7, 0), (7, 1), (8, 0)]]
    assert all(sorted(order) == list(range(1000)) for order in orders)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[0], orders[2])
