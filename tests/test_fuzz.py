"""Fuzzing the loaders: damaged pairs and random image bytes raise only the project's own errors."""

import json

import h5py
import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import models
import persistence
import predict
from labtools import errors, saved_models

FUZZ = settings(max_examples=120, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def valid_pair(tmp_path_factory):
    """A valid pair whose weights carry no JSON hash, so damaged JSON reaches the parser and Keras; and its model."""
    directory = tmp_path_factory.mktemp("pair")
    model = models.build_model("medium")
    persistence.save_keras_model(model, directory / "m")
    with h5py.File(directory / "m.weights.h5", "a") as f:
        del f.attrs[saved_models.PAIR_HASH_ATTRIBUTE]
    return (directory / "m.json").read_text(), (directory / "m.weights.h5").read_bytes(), model


def check_loaded(loaded, original, same_weights):
    """What a load that succeeded returns: a compiled model with the original's 10 outputs and weight shapes, and
    with same_weights, the original's weights themselves."""
    assert isinstance(loaded, keras.Model) and loaded.compiled and loaded.output_shape == (None, 10)
    weights, expected = loaded.get_weights(), original.get_weights()
    assert [w.shape for w in weights] == [w.shape for w in expected]
    if same_weights:
        for a, b in zip(weights, expected):
            np.testing.assert_array_equal(a, b)


def report(capsys, count, what):
    with capsys.disabled():
        print(f"\n  fuzz: {count} {what}, each loaded or refused with the project's own error", end="")


@pytest.mark.slow
def test_mutated_json(valid_pair, tmp_path, capsys):
    text, weights, original = valid_pair
    (tmp_path / "m.weights.h5").write_bytes(weights)
    cases, loaded = [], []

    @FUZZ
    @given(st.data())
    def run(draw):
        mutated = text
        for _ in range(draw.draw(st.integers(1, 4))):
            position = draw.draw(st.integers(0, len(mutated)))
            kind = draw.draw(st.sampled_from(["delete", "insert", "replace", "truncate", "value"]))
            if kind == "delete":
                mutated = mutated[:position] + mutated[position + draw.draw(st.integers(1, 40)):]
            elif kind == "insert":
                mutated = mutated[:position] + draw.draw(st.text(max_size=8)) + mutated[position:]
            elif kind == "replace":
                mutated = mutated[:position] + draw.draw(st.sampled_from('{}[]",:0-9')) + mutated[position + 1:]
            elif kind == "truncate":
                mutated = mutated[:position]
            else:  # a structurally valid JSON with a changed value
                config = json.loads(text)
                layer = draw.draw(st.sampled_from(config["config"]["layers"]))
                key = draw.draw(st.sampled_from(sorted(layer["config"])))
                layer["config"][key] = draw.draw(st.one_of(st.none(), st.integers(-3, 300), st.text(max_size=5),
                                                           st.lists(st.integers(-1, 40), max_size=4)))
                mutated = json.dumps(config)
        (tmp_path / "m.json").write_text(mutated)
        cases.append(mutated)
        try:
            model = persistence.load_keras_model(tmp_path / "m")
        except errors.PairError:
            return
        check_loaded(model, original, same_weights=True)  # the weights file is the original's
        loaded.append(mutated)

    run()
    report(capsys, len(cases), f"mutated JSON files ({len(loaded)} loaded)")
    assert len(cases) == FUZZ.max_examples


@pytest.mark.slow
def test_damaged_weights(valid_pair, tmp_path, capsys):
    text, weights, original = valid_pair
    (tmp_path / "m.json").write_text(text)
    cases, loaded = [], []

    @FUZZ
    @given(st.one_of(st.binary(max_size=4096), st.integers(0, len(weights) - 1).map(lambda n: weights[:n]),
                     st.tuples(st.integers(0, len(weights) - 1), st.binary(min_size=1, max_size=64)).map(
                         lambda change: weights[:change[0]] + change[1] + weights[change[0] + len(change[1]):])))
    def run(damaged):
        (tmp_path / "m.weights.h5").write_bytes(damaged)
        cases.append(len(damaged))
        try:
            model = persistence.load_keras_model(tmp_path / "m")
        except errors.PairError:
            return
        # HDF5 checks no data: bytes overwritten inside a weight array would load as other numbers, but the file
        # records its weights' SHA-256 (saved_models.sign), so a load that succeeds gives the saved weights
        check_loaded(model, original, same_weights=True)
        loaded.append(damaged == weights)

    run()
    report(capsys, len(cases), f"random, truncated or overwritten HDF5 files ({len(loaded)} loaded)")
    assert len(cases) == FUZZ.max_examples


def test_random_image_bytes(tmp_path, capsys):
    png_header = b"\x89PNG\r\n\x1a\n"
    cases = []

    @FUZZ
    @given(st.one_of(st.binary(max_size=2048), st.binary(max_size=512).map(lambda tail: png_header + tail),
                     st.binary(max_size=512).map(lambda tail: b"\xff\xd8\xff\xe0" + tail)))
    def run(content):
        path = tmp_path / "image.png"
        path.write_bytes(content)
        cases.append(len(content))
        try:
            predict.to_mnist(predict.load_grayscale(path), source=path)
        except errors.DataError:
            pass

    run()
    report(capsys, len(cases), "random image files")
    assert len(cases) == FUZZ.max_examples
