"""Keras 2 pairs (filename.json + filename.h5) load and compute what they computed under Keras 2.

The fixtures are written by hand, as Keras 2.0 and tf.keras 2.x wrote them, and
the expected outputs come from an independent NumPy forward pass.
"""

import json

import h5py
import numpy as np
import pytest

import evaluate
import persistence
from conftest import predict_nchw
from labtools import errors, grading, saved_models

RNG = np.random.default_rng(42)
WEIGHTS = {
    "conv2d_1": [RNG.normal(0, 0.3, (3, 3, 1, 4)).astype(np.float32), RNG.normal(0, 0.1, 4).astype(np.float32)],
    "dense_1": [RNG.normal(0, 0.1, (4 * 13 * 13, 10)).astype(np.float32), RNG.normal(0, 0.1, 10).astype(np.float32)],
}
OLD_INITIALIZER = {"class_name": "VarianceScaling",
                   "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}}


def keras_20_json():
    """Keras 2.0 (the 2019 tutorial): config is a list; no data_format on Flatten."""
    return {"class_name": "Sequential", "keras_version": "2.0.8", "backend": "tensorflow", "config": [
        {"class_name": "Conv2D", "config": {
            "name": "conv2d_1", "trainable": True, "batch_input_shape": [None, 1, 28, 28], "dtype": "float32",
            "filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid",
            "data_format": "channels_first", "dilation_rate": [1, 1], "activation": "relu", "use_bias": True,
            "kernel_initializer": OLD_INITIALIZER, "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None}},
        {"class_name": "MaxPooling2D", "config": {"name": "max_pooling2d_1", "trainable": True, "pool_size": [2, 2],
                                                  "padding": "valid", "strides": [2, 2],
                                                  "data_format": "channels_first"}},
        {"class_name": "Dropout", "config": {"name": "dropout_1", "trainable": True, "rate": 0.2}},
        {"class_name": "Flatten", "config": {"name": "flatten_1", "trainable": True}},
        {"class_name": "Dense", "config": {"name": "dense_1", "trainable": True, "units": 10, "activation": "softmax",
                                           "use_bias": True, "kernel_initializer": OLD_INITIALIZER}},
    ]}


def tf_keras_2_json():
    """tf.keras 2.x (Colab before TF 2.16): dict config, InputLayer with batch_input_shape, module keys."""
    layers = [{"module": "keras.layers", "class_name": "InputLayer", "config": {
        "batch_input_shape": [None, 1, 28, 28], "dtype": "float32", "sparse": False, "ragged": False,
        "name": "conv2d_input"}, "registered_name": None}]
    for layer in keras_20_json()["config"]:
        config = {k: v for k, v in layer["config"].items() if k != "batch_input_shape"}
        if layer["class_name"] == "Flatten":
            config["data_format"] = "channels_first"
        layers.append({"module": "keras.layers", "class_name": layer["class_name"], "config": config,
                       "registered_name": None})
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers},
            "keras_version": "2.15.0", "backend": "tensorflow"}


def write_legacy_h5(path):
    """Keras 2's save_weights layout: layer_names, one group per layer, weight_names per group."""
    with h5py.File(path, "w") as f:
        names = ["conv2d_1", "max_pooling2d_1", "dropout_1", "flatten_1", "dense_1"]
        f.attrs["layer_names"] = [n.encode() for n in names]
        f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", b"2.0.8"
        for name in names:
            group = f.create_group(name)
            arrays = WEIGHTS.get(name, [])
            weight_names = [f"{name}/{kind}:0" for kind in ("kernel", "bias")][: len(arrays)]
            group.attrs["weight_names"] = [n.encode() for n in weight_names]
            for weight_name, array in zip(weight_names, arrays):
                group.create_dataset(weight_name, data=array)


def numpy_forward(images, flatten_order):
    """The network by hand: conv 3x3 valid (channels_first), relu, maxpool 2x2, flatten, dense, softmax."""
    kernel, bias = WEIGHTS["conv2d_1"]
    x = images[:, 0]
    windows = np.stack([x[:, i: i + 26, j: j + 26] for i in range(3) for j in range(3)], axis=-1)  # (N,26,26,9)
    conv = np.einsum("nhwk,kf->nfhw", windows, kernel.reshape(9, 4)) + bias[None, :, None, None]
    conv = np.maximum(conv, 0)
    pooled = conv.reshape(len(x), 4, 13, 2, 13, 2).max(axis=(3, 5))  # (N, 4, 13, 13)
    if flatten_order == "hwc":
        pooled = pooled.transpose(0, 2, 3, 1)
    logits = pooled.reshape(len(x), -1) @ WEIGHTS["dense_1"][0] + WEIGHTS["dense_1"][1]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture
def images():
    return np.random.default_rng(0).random((6, 1, 28, 28), dtype=np.float32)


@pytest.mark.parametrize("make_json, flatten_order", [(keras_20_json, "chw"), (tf_keras_2_json, "hwc")])
def test_keras_2_pair_computes_what_keras_2_computed(tmp_path, images, make_json, flatten_order):
    (tmp_path / "old.json").write_text(json.dumps(make_json()))
    write_legacy_h5(tmp_path / "old.h5")
    model = persistence.load_keras_model(tmp_path / "old")
    assert model.compiled and model.input_shape == (None, 1, 28, 28)
    expected = numpy_forward(images, flatten_order)
    np.testing.assert_allclose(predict_nchw(model, images), expected, rtol=1e-4, atol=1e-6)
    # The other flatten order would give different answers: the check above can fail.
    other = numpy_forward(images, "hwc" if flatten_order == "chw" else "chw")
    assert np.abs(other - expected).max() > 1e-3


def test_evaluate_prints_the_sheet_lines_for_a_keras_2_pair(tmp_path, capsys):
    (tmp_path / "old.json").write_text(json.dumps(keras_20_json()))
    write_legacy_h5(tmp_path / "old.h5")
    assert evaluate.main([str(tmp_path / "old"), "--test-limit", "200"]) == 0
    output = capsys.readouterr().out
    assert "Model score : " in output and "Model error rate : " in output
    assert [p.name for p in grading.find_pairs([tmp_path])] == ["old"]


def test_legacy_weights_that_do_not_fit_are_a_pair_error(tmp_path):
    config = keras_20_json()
    config["config"][-1]["config"]["units"] = 5
    (tmp_path / "old.json").write_text(json.dumps(config))
    write_legacy_h5(tmp_path / "old.h5")
    with pytest.raises(errors.PairError, match=r"old\.h5: weights do not fit old\.json .*dense_1"):
        persistence.load_keras_model(tmp_path / "old")


def test_lambda_layers_are_refused(tmp_path):
    """Untrusted JSON is built in Keras's safe mode: no code from the file runs."""
    import models

    config = json.loads(models.build_model("small").to_json())
    config["config"]["layers"].insert(2, {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                                          "config": {"name": "evil", "function": {
                                              "class_name": "__lambda__", "config": {
                                                  "code": "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMEAAAAfABTAKkBTqkAKQHaAXhy"
                                                          "AgAAAHICAAAA+gg8c3RyaW5nPtoIPGxhbWJkYT4BAAAAcwAAAAA=",
                                                  "defaults": None, "closure": None}}}})
    (tmp_path / "m.json").write_text(json.dumps(config))
    persistence.save_keras_model(models.build_model("small"), tmp_path / "ok")
    (tmp_path / "ok.weights.h5").replace(tmp_path / "m.weights.h5")
    with h5py.File(tmp_path / "m.weights.h5", "a") as f:  # as if the JSON were edited by hand
        del f.attrs[saved_models.PAIR_HASH_ATTRIBUTE]
    with pytest.raises(errors.PairError, match="m.json: Keras cannot build this model .*Lambda"):
        persistence.load_keras_model(tmp_path / "m")
