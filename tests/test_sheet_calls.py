"""The INSAT sheet's own Python calls, as a student types them, on a CPU, on whichever backend the suite runs on.

The sheet builds its CNNs in channels_first and feeds them (N, 1, 28, 28). TensorFlow's CPU convolutions take
NHWC only, except where its oneDNN rewrite is on (by default Linux x86 with AVX-512 VNNI or newer, as on CI's
usual machines), so these calls run in a fresh process with TF_ENABLE_ONEDNN_OPTS=0: what an AVX2-only CPU, a Mac
or Windows runs. Without keras_patches.channels_first_convolutions (models.py calls it) they fail there with "The
Conv2D op currently only supports the NHWC tensor format on the CPU". JAX and PyTorch ignore the variable.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labtools import backend

ROOT = Path(__file__).resolve().parents[1]

# Each step prints one JSON line; the test reads them all.
SHEET_CALLS = r"""
import json, sys
import numpy as np
import data, models, persistence
from labtools import layout

folder = sys.argv[1]
(X_train, y_train), (X_test, y_test), num_classes = data.get_data_mnist(normalize=True)
X_train, y_train, X_test, y_test = X_train[:400], y_train[:400], X_test[:256], y_test[:256]
for builder in ("small_model", "medium_model", "large_model"):
    model = getattr(models, builder)()
    fitted = model.fit(X_train, y_train, validation_data=(X_test, y_test), epochs=1, batch_size=200, verbose=0)
    scores = model.evaluate(X_test, y_test, verbose=0)
    before = model.predict(X_test, verbose=0)
    persistence.save_keras_model(model, f"{folder}/{builder}")
    saved_format = {layer["config"].get("data_format") for layer in
                    json.load(open(f"{folder}/{builder}.json"))["config"]["layers"]} - {None}
    loaded = persistence.load_keras_model(f"{folder}/{builder}")
    after = loaded.predict(X_test, verbose=0)
    copy = layout.relayout(model, "channels_last")  # the same weights in channels_last (as train.py computes)
    channels_last = copy.predict(X_test.transpose(0, 2, 3, 1), verbose=0)
    print(json.dumps({"step": builder, "input": list(model.input_shape), "saved_format": sorted(saved_format),
                      "val_loss": fitted.history["val_loss"][-1], "test_loss": scores[0],
                      "reloaded_equal": bool(np.array_equal(before, after)),
                      "channels_last_difference": float(np.abs(before - channels_last).max())}), flush=True)

# channels_first files that Keras 2.0, 2.3 and 3 wrote, loaded as the sheet loads them and fed its own arrays
fixtures = f"{sys.argv[2]}/fixtures"
for name in ("keras208_theano_cnn", "keras231_theano_functional_bn", "keras3_full"):
    files = {"keras3_full": "keras3_full.h5"}.get(name, name)
    model = persistence.load_keras_model(f"{fixtures}/{files}")
    outputs = model.predict(X_test[:64], verbose=0)
    expected = np.load(f"{fixtures}/{name}.expected.npy")
    test_loss = model.evaluate(X_test[:64], y_test[:64], verbose=0)[0]
    # the 2019 tutorial's kind of pair trains on too (once: each fit traces anew)
    fit_loss = model.fit(X_train, y_train, epochs=1, batch_size=200, verbose=0).history["loss"][-1] \
        if name == "keras208_theano_cnn" else None
    print(json.dumps({"step": name, "input": list(model.input_shape),
                      "difference": float(np.abs(outputs - expected).max()), "test_loss": test_loss,
                      "fit_loss": fit_loss}), flush=True)
"""


@pytest.fixture(scope="module")
def sheet_calls(tmp_path_factory):
    environment = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", SHEET_CALLS, str(tmp_path_factory.mktemp("pairs")),
                             str(ROOT / "tests")], cwd=ROOT, env=environment, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return {row["step"]: row for row in map(json.loads, result.stdout.splitlines()) if row}


@pytest.mark.parametrize("builder", ["small_model", "medium_model", "large_model"])
def test_the_sheets_models_fit_evaluate_predict_save_and_load_in_channels_first(sheet_calls, builder):
    row = sheet_calls[builder]
    assert row["input"] == [None, 1, 28, 28]
    assert row["saved_format"] == ["channels_first"]  # the JSON stays the sheet's
    assert 0 < row["val_loss"] < 2.4 and 0 < row["test_loss"] < 2.4  # one epoch of 400 images: not diverged
    assert row["reloaded_equal"]
    # on TensorFlow computed by the channels_last copy's kernels between transposes, so the very same numbers;
    # JAX and PyTorch run their own channels_first kernels
    assert row["channels_last_difference"] <= (0 if backend.NAME == "tensorflow" else 1e-6)


@pytest.mark.parametrize("name", ["keras208_theano_cnn", "keras231_theano_functional_bn", "keras3_full"])
def test_channels_first_files_from_other_keras_predict_on_the_sheets_arrays(sheet_calls, name):
    row = sheet_calls[name]
    assert row["input"] == [None, 1, 28, 28]
    assert row["difference"] < 1e-4  # what the writer's own Keras predicted
    assert row["test_loss"] > 0
    if name == "keras208_theano_cnn":
        assert 0 < row["fit_loss"] < 2.4
