"""bench.py's FLOP count and report, sliced batches, bf16 training, MirroredStrategy on two logical CPUs, JAX's max
pooling (PyTorch's channels_last views: tests/test_backends.py, which CI runs on PyTorch)."""

import json
import re
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import models
import train
from conftest import last_line, train_run
from labtools import backend, bench, console, errors, recipes, runs


def test_training_flops_of_the_small_cnn_from_its_layer_shapes():
    model = models.build_model("small", data_format="channels_last")
    # conv1 26*26*64*9 MACs (forward + weight gradients), conv2 24*24*32*9*64 and dense 18432*10 (+ input gradients)
    expected = 2 * (26 * 26 * 64 * 9 * 2 + 24 * 24 * 32 * 576 * 3 + 18432 * 10 * 3)
    assert bench.training_flops_per_image(model) == expected
    assert round(expected / 1e6, 1) == 66.4
    channels_first = models.build_model("small")
    assert bench.training_flops_per_image(channels_first) == expected


def test_sliced_batches_take_the_whole_batch_mean_gradient():
    # SGD with learning rate 1: the change of every weight is the gradient itself. 80 images, one batch, or four
    # slices of 20 (two of 40) whose gradients the optimizer accumulates and applies once.
    rng = np.random.default_rng(0)
    x = rng.random((80, 28, 28, 1), dtype="float32")
    y = keras.utils.to_categorical(rng.integers(0, 10, 80), 10)
    gradients, losses = [], []
    for slice_size in (80, 20, 40):
        keras.utils.set_random_seed(7)
        model = models.build_model("small", data_format="channels_last")
        accumulate = {"gradient_accumulation_steps": 80 // slice_size} if slice_size < 80 else {}
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0, **accumulate),
                      loss="categorical_crossentropy", metrics=["accuracy"])
        before = model.get_weights()
        history = model.fit(x, y, batch_size=slice_size, epochs=1, verbose=0, shuffle=False).history
        gradients.append([b - a for a, b in zip(model.get_weights(), before)])
        losses.append((history["loss"][0], history["accuracy"][0]))
    whole = gradients[0]
    assert max(np.abs(g).max() for g in whole) > 0
    for sliced in gradients[1:]:
        for g, s in zip(whole, sliced):
            np.testing.assert_allclose(s, g, rtol=0, atol=1e-4 * np.abs(g).max())
    np.testing.assert_allclose(losses[1:], [losses[0]] * 2, rtol=1e-6)  # same logged loss and accuracy


@pytest.mark.slow
def test_train_py_slices_only_when_asked(tmp_path):
    sliced = train_run("small", tmp_path, epochs=1, train_limit=400, test_limit=100, slice_size=20)
    history = json.loads((tmp_path / "models" / "small.history.json").read_text())
    assert history["config"]["slice_size"] == 20 and sliced["error_rate"] < 85
    whole = train_run("small", tmp_path, epochs=1, train_limit=400, test_limit=100)
    history = json.loads((tmp_path / "models" / "small.history.json").read_text())
    assert history["config"]["slice_size"] is None  # the sheet's whole batches by default
    for a, b in zip(sliced["model"].get_weights(), whole["model"].get_weights()):  # two steps of the same batches
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    with pytest.raises(errors.UsageError, match=r"--slice-size 30: slices must split every batch evenly"):
        train_run("small", tmp_path, slice_size=30)
    with pytest.raises(errors.UsageError, match=r"--slice-size 20: .*a multiple of it \(450 images now\)"):
        train_run("small", tmp_path, slice_size=20, train_limit=450)


def test_steps_per_execution_never_crosses_an_epoch():
    assert runs.steps_per_execution(300) == 50  # the INSAT recipes: 60,000 / 200
    assert runs.steps_per_execution(469) == 7  # 60,000 / 128 rounded up = 7 x 67
    assert runs.steps_per_execution(11) == 11
    assert runs.steps_per_execution(53) == 1


@pytest.mark.slow
@pytest.mark.skipif(not backend.steps_per_call_allowed(), reason="Keras runs one batch per call on PyTorch")
def test_several_batches_per_call_change_no_number(tmp_path):
    trained = []
    for most in (1, runs.STEPS_PER_CALL):
        result = train_run("medium", tmp_path / str(most), epochs=2, train_limit=2200, test_limit=300,
                           steps_per_call=most)  # 11 batches an epoch
        assert result["config"]["steps_per_call"] == min(most, 11)  # 11 calls of 1 batch, or 1 of 11
        trained.append(result)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [row[key] for row in trained[0]["history"]] == [row[key] for row in trained[1]["history"]]
    for a, b in zip(trained[0]["model"].get_weights(), trained[1]["model"].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bf16_trains_and_saves_a_float32_pair(tmp_path):
    result = train_run("small", tmp_path, epochs=1, train_limit=1000, test_limit=300, precision="bf16")
    assert result["error_rate"] < 85
    config = json.loads((tmp_path / "models" / "small.json").read_text())
    policies = {layer["config"]["dtype"]["config"]["name"] for layer in config["config"]["layers"]
                if isinstance(layer["config"].get("dtype"), dict)}
    assert policies == {"float32"}
    assert all(w.dtype == "float32" for w in result["model"].get_weights())
    assert json.loads((tmp_path / "models" / "small.history.json").read_text())["config"]["slice_size"] is None
    assert models.build_model("small").dtype_policy.name == "float32"  # the global policy is restored


@pytest.mark.slow
@pytest.mark.skipif(backend.NAME != "tensorflow", reason="bench.py measures TensorFlow's kernels; elsewhere it "
                    "refuses in one line (tests/test_backends.py)")
def test_bench_writes_its_report_and_the_profile_adds_up(tmp_path):
    out = tmp_path / "BENCH.md"
    # a small peak matmul and one model per backend: enough to check the report's shape
    assert bench.main(["--models", "mlp1", "--bf16-models", "", "--epochs", "1", "--train-limit", "500",
                       "--profile-steps", "3", "--peak-size", "512", "--backends", f"tensorflow={sys.executable}",
                       "--backend-models", "small", "--out", str(out)]) == 0
    text = out.read_text()
    backends = text.split("on each Keras backend")[1].split("\n## ")[0]
    assert f"tensorflow {tf_version()} in `{bench.shown_python(sys.executable)}`" in backends
    assert re.search(r"\| small \| \d+\.\d \|", backends)
    assert "512x512 matmul" in text and "| fp32 |" in text and "| bf16 |" in text  # both peaks, this run's size
    assert "| mlp1 | fp32 |" in text
    for precision in ("fp32", "bf16"):
        section = text.split(f"batch 200, {precision}: where the time goes")[1].split("\n## ")[0]
        rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
        parts = {row[0][2:]: float(row[1]) for row in rows
                 if not row[0].startswith("| **") and "measured" not in row[0]}
        assert {"conv2 weight gradients", "conv2 input gradients", "conv1 forward (with bias and relu)",
                "conv2 forward (with bias and relu)", "optimizer update (adam)"} <= set(parts)
        total = next(float(row[1]) for row in rows if "sum of the parts" in row[0])
        assert abs(sum(parts.values()) - total) <= 0.1 * len(parts)  # rounding of each part to 0.1 ms
        assert next(float(row[1]) for row in rows if "measured step" in row[0]) > 0


def test_bench_knows_the_sheets_models_as_the_registry_lists_them():
    assert bench.SHEET_MODELS == [name for name, recipe in models.MODELS.items()
                                  if recipe.sheet != recipes.BEYOND and recipe.input_kind != "xray"]
    assert set(bench.MNIST_MODELS) == {name for name, recipe in models.MODELS.items() if recipe.input_kind != "xray"}


def test_bench_names_an_interpreter_inside_the_repository_by_its_relative_path(tmp_path):
    root = Path(bench.__file__).resolve().parents[1]
    assert bench.shown_python(str(root / ".venv-jax" / "bin" / "python")) == ".venv-jax/bin/python"
    assert bench.shown_python(str(tmp_path / "python")) == str(tmp_path / "python")  # elsewhere: as given


def test_bench_refuses_a_backend_it_cannot_run_in_one_line(tmp_path, capsys):
    for argument, says in [("jax=" + str(tmp_path / "python"), "no such Python"), ("mxnet", "not a Keras backend")]:
        with pytest.raises(SystemExit) as exit:
            bench.parse_args(["--backends", argument])
        assert exit.value.code == 2 and says in last_line(capsys.readouterr().err)


def tf_version():
    import importlib.metadata

    return importlib.metadata.version("tensorflow")


def test_a_compared_setting_is_set_in_one_environment_and_absent_from_the_other(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert bench.environment_with("TF_ENABLE_ONEDNN_OPTS=1")["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert "TF_ENABLE_ONEDNN_OPTS" not in bench.environment_with("TF_ENABLE_ONEDNN_OPTS=1", enabled=False)
    assert bench.environment_with("A=b=c")["A"] == "b=c"  # only the first '=' separates name and value


@pytest.mark.skipif(backend.NAME != "jax", reason="the window max pooling replaces Keras's on JAX only")
@pytest.mark.parametrize("shape, pool, strides, padding, data_format", [
    ((4, 24, 24, 3), 2, 2, "valid", "channels_last"),  # the sheets' 2x2
    ((3, 25, 23, 4), (2, 2), (2, 2), "valid", "channels_last"),  # a remainder that valid pooling drops
    ((2, 4, 12, 12), 2, 2, "valid", "channels_first"),
    ((2, 12, 12, 3), 3, 3, "same", "channels_last"),  # "same" that pads nothing
    ((2, 13, 12, 3), 2, 2, "same", "channels_last"),  # "same" that pads: Keras's own
    ((2, 12, 12, 3), 3, 1, "valid", "channels_last"),  # overlapping windows: Keras's own
])
def test_jax_window_max_pooling_computes_what_keras_computes(shape, pool, strides, padding, data_format):
    """Outputs and gradients bit for bit, ties included (relu'd maps: many zeros, and whole numbers): the gradient
    goes to each window's first maximum, as XLA's select_and_scatter gives it."""
    import jax
    import jax.numpy as jnp
    from keras.src.backend.jax import nn

    from labtools import keras_patches

    assert keras_patches.faster_training()  # as train_and_evaluate switches it on
    window = nn.max_pool
    assert getattr(window, keras_patches.MARK)
    original = next(cell.cell_contents for cell in window.__closure__
                    if callable(cell.cell_contents) and cell.cell_contents.__name__ == "max_pool")
    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(size=shape).astype(np.float32), 0)
    x[..., 0] = np.round(x[..., 0])
    x = jnp.asarray(x)
    results = []
    for pooling in (original, window):
        y, pullback = jax.vjp(lambda v: pooling(v, pool, strides, padding, data_format), x)
        upstream = jnp.asarray(np.random.default_rng(1).normal(size=y.shape).astype(np.float32))
        results.append((np.asarray(y), np.asarray(pullback(upstream)[0])))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert (np.asarray(x) == 0).sum() > x.size / 4  # the ties are there
