"""The json + h5 pair: round trip, atomic saves, clear errors."""

import json

import numpy as np
import pytest

import models
import persistence
from conftest import predict_nchw
from labtools import errors, files


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).random((16, 1, 28, 28), dtype=np.float32)


def test_round_trip_gives_identical_predictions(tmp_path, images):
    model = models.build_model("large")
    persistence.save_keras_model(model, tmp_path / "large")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["large.json", "large.weights.h5"]
    assert json.loads((tmp_path / "large.json").read_text())["class_name"] == "Sequential"
    loaded = persistence.load_keras_model(tmp_path / "large")
    assert loaded.compiled and loaded.loss == "categorical_crossentropy"
    assert loaded.input_shape == (None, 1, 28, 28)
    np.testing.assert_array_equal(predict_nchw(loaded, images), predict_nchw(model, images))


def test_a_failed_save_keeps_the_previous_pair(tmp_path, images, monkeypatch):
    old = models.build_model("small")
    persistence.save_keras_model(old, tmp_path / "m")
    expected = predict_nchw(old, images)
    new = models.build_model("small")

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", crash)  # fails after both temporaries are written
    with pytest.raises(OSError):
        persistence.save_keras_model(new, tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.weights.h5"]  # no temporaries left
    np.testing.assert_array_equal(predict_nchw(persistence.load_keras_model(tmp_path / "m"), images), expected)


def test_missing_file_is_a_pair_error(tmp_path):
    persistence.save_keras_model(models.build_model("small"), tmp_path / "m")
    (tmp_path / "m.weights.h5").unlink()
    with pytest.raises(errors.PairError, match=r"m\.json: no weights beside it \(m\.weights\.h5, or m\.h5"):
        persistence.load_keras_model(tmp_path / "m")
    (tmp_path / "m.json").unlink()
    with pytest.raises(errors.PairError, match=r"m\.json: file not found; train the model first"):
        persistence.load_keras_model(tmp_path / "m")


def test_truncated_json_is_a_pair_error(tmp_path):
    persistence.save_keras_model(models.build_model("small"), tmp_path / "m")
    text = (tmp_path / "m.json").read_text()
    (tmp_path / "m.json").write_text(text[: len(text) // 2])
    with pytest.raises(errors.PairError, match=r"m\.json: not a readable model JSON"):
        persistence.load_keras_model(tmp_path / "m")


def test_weights_of_another_model_are_a_pair_error(tmp_path):
    persistence.save_keras_model(models.build_model("small"), tmp_path / "a")
    persistence.save_keras_model(models.build_model("medium"), tmp_path / "b")
    (tmp_path / "b.weights.h5").replace(tmp_path / "a.weights.h5")
    with pytest.raises(errors.PairError, match="saved with another a.json"):
        persistence.load_keras_model(tmp_path / "a")


def test_non_hdf5_weights_are_a_pair_error(tmp_path):
    persistence.save_keras_model(models.build_model("small"), tmp_path / "m")
    (tmp_path / "m.weights.h5").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(errors.PairError, match="not a readable HDF5 weights file"):
        persistence.load_keras_model(tmp_path / "m")


def test_weights_file_holds_the_layers_weights_only(tmp_path):
    import h5py

    model = models.build_model("medium")
    persistence.save_keras_model(model, tmp_path / "m")
    stored = []
    with h5py.File(tmp_path / "m.weights.h5", "r") as f:
        f.visititems(lambda name, item: stored.append(item.size) if isinstance(item, h5py.Dataset) else None)
    assert sum(stored) == model.count_params()  # no optimizer slots


def test_a_save_over_an_existing_pair_replaces_both_files(tmp_path, images):
    """Saving another model under the same name (a student who retrains and saves again) leaves that model's JSON
    and weights, nothing of the first, and no temporary file."""
    persistence.save_keras_model(models.build_model("small"), tmp_path / "m")
    new = models.build_model("medium")
    persistence.save_keras_model(new, tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.weights.h5"]
    assert (tmp_path / "m.json").read_text() == new.to_json()
    loaded = persistence.load_keras_model(tmp_path / "m")
    for a, b in zip(loaded.get_weights(), new.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(predict_nchw(loaded, images), predict_nchw(new, images))
