"""The same recipes and scripts on every Keras backend: .ci/run runs this file on TensorFlow, JAX and PyTorch.

Every recipe trains one epoch on a slice; the same seed gives the same weights; an interrupted run resumes to the
weights of an uninterrupted one; pairs saved on any backend load on this one and compute the same; what a backend
cannot do is one line; fit trains on every batch; on PyTorch, backend.py's channels_last views compute what Keras's
copies compute. `KERAS_BACKEND=jax python tests/test_backends.py` writes this backend's fixture pair.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

if __name__ != "__main__":
    from conftest import RUN, ROOT, interrupt_after_epoch, last_line, make_xray_tree, run_script, train_run
else:  # writing the fixture pair: the repository's modules, as conftest puts them on the path
    ROOT = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(ROOT))

import data  # noqa: E402
import evaluate  # noqa: E402
import models  # noqa: E402
import persistence  # noqa: E402
import predict  # noqa: E402
import train  # noqa: E402
from labtools import backend, batches, bench, console, errors, grading, history, recipes  # noqa: E402

PAIRS = ROOT / "tests" / "pairs"  # large_original saved on each backend, and its outputs for FIXTURE_IMAGES there
FIXTURE_IMAGES = 32  # the first test images, pixels /255


def fixture_images():
    _, (X_test, _), _ = data.get_data_mnist(normalize=True)
    return X_test[:FIXTURE_IMAGES]


def predictions(model, images):
    return predict.predict(model, images[:, 0])


def write_fixture_pair():
    """This backend's pair of the sheet's large CNN (with the tutorial's second pooling), seed 7, untrained, and
    what it computes for the fixture images."""
    import keras

    keras.utils.set_random_seed(7)
    model = models.build_model("large_original")
    persistence.save_keras_model(model, PAIRS / f"large_original_{backend.NAME}")
    np.save(PAIRS / f"large_original_{backend.NAME}.npy", predictions(model, fixture_images()))


# the sheets' recipes in the quick set; the ladder's rungs beyond them (each one idea more) in the slow one
@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.slow] if recipe.sheet == recipes.BEYOND else [])
                                  for name, recipe in models.MODELS.items() if name != "pneumonia"])
def test_every_mnist_recipe_trains_one_epoch_on_a_slice(name, tmp_path):
    import keras

    result = train_run(name, tmp_path, epochs=1, train_limit=400, test_limit=100)
    recipe = models.MODELS[name]
    assert np.isfinite(result["history"][0]["loss"]) and result["config"]["train_images"] == 400
    assert ("val_loss" in result["history"][0]) == (recipe.validation != "none")  # the test set or the holdout
    assert result["config"]["validation"] == recipe.validation
    assert result["config"]["versions"]["backend"] == backend.NAME
    keras.utils.set_random_seed(7)  # the run's initial weights: two steps moved every layer with weights
    initial = models.build_model(name).get_weights()
    assert all(not np.array_equal(a, b) for a, b in zip(initial, result["model"].get_weights()) if a.ndim > 1)
    loaded = persistence.load_keras_model(tmp_path / "models" / name)
    images = fixture_images()[:8]
    # float32 rounding apart: on JAX a loaded pair with Keras's augmentation layers predicts uncompiled (Keras marks
    # them unfit for XLA; only training builds them marked fit), the trained model compiled
    np.testing.assert_allclose(predictions(loaded, images), predictions(result["model"], images), rtol=1e-6, atol=1e-7)


def test_pneumonia_trains_and_evaluates_on_synthetic_xrays(tmp_path):
    tree = make_xray_tree(tmp_path / "xray")
    result = train_run("pneumonia", tmp_path / "out", data_dir=tree, epochs=2, batch_size=8)
    scores = result["metrics"]
    assert scores["images"] == 24 and sum(map(sum, scores["confusion_matrix"])) == 24
    assert scores["accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-6)
    assert result["config"]["train_images"] == 24 and len(result["history"]) == 2
    assert evaluate.main([str(tmp_path / "out")]) == 0  # finds the data dir in the pair's history


def test_the_same_seed_twice_gives_the_same_weights(tmp_path):
    runs = [train_run("medium", tmp_path / str(i), epochs=1, train_limit=400, test_limit=100,
                                     verbose=0) for i in range(2)]
    for a, b in zip(*(run["model"].get_weights() for run in runs)):
        np.testing.assert_array_equal(a, b)
    other = train_run("medium", tmp_path / "8", epochs=1, seed=8, train_limit=400, test_limit=100,
                                     verbose=0)
    assert other["run"] == "medium_seed8"
    assert not np.array_equal(other["model"].get_weights()[0], runs[0]["model"].get_weights()[0])


@pytest.mark.parametrize("batches_per_epoch", [1, 3])
def test_fit_trains_on_every_batch_of_every_epoch_in_order(batches_per_epoch):
    """backend.training_data through model.fit is the epochs' batches, in order, none lost: the weights are those of
    train_on_batch over the same batches (on PyTorch the model's build used to eat the first batch, and an epoch of
    one batch trained on nothing)."""
    import keras

    images = 4 * batches_per_epoch
    rng = np.random.default_rng(0)
    x, y = rng.random((images, 3), dtype=np.float32), rng.random((images, 1), dtype=np.float32)
    orders = [rng.permutation(images) for _ in range(3)]
    fitted, stepped = [], []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        (fitted if not fitted else stepped).append(model)
    log = fitted[0].fit(batches.training_data((x, y), 4, lambda: iter(orders)), steps_per_epoch=batches_per_epoch,
                        epochs=3, shuffle=False, verbose=0)
    for order in orders:
        for start in range(0, images, 4):
            stepped[0].train_on_batch(x[order[start:start + 4]], y[order[start:start + 4]])
    assert len(log.history["loss"]) == 3
    for a, b in zip(fitted[0].get_weights(), stepped[0].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_an_interrupted_run_resumes_to_the_uninterrupted_weights(tmp_path):
    # medium has dropout: its random-seed state must be restored too, not only weights and optimizer
    whole = train_run("medium", tmp_path / "whole", **RUN)
    with pytest.raises(KeyboardInterrupt):
        train_run("medium", tmp_path / "cut", callbacks=[interrupt_after_epoch(2)], **RUN)
    resumed = train_run("medium", tmp_path / "cut", resume=True, **RUN)
    for a, b in zip(whole["model"].get_weights(), resumed["model"].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [row["epoch"] for row in resumed["history"]] == [1, 2, 3] and resumed["config"]["resumed_at_epoch"] == 2


@pytest.mark.parametrize("saved_on", backend.BACKENDS)
def test_a_pair_saved_on_any_backend_computes_the_same_here(saved_on):
    pair = PAIRS / f"large_original_{saved_on}"
    expected = np.load(f"{pair}.npy")
    model = persistence.load_keras_model(pair)
    np.testing.assert_allclose(predictions(model, fixture_images()), expected, rtol=0, atol=2e-6)
    assert expected.max(axis=1).min() < 0.9  # untrained: the check compares spread-out outputs, not one-hot ones


@pytest.mark.parametrize("run", ["large", "mlp1", "best"])
def test_committed_pairs_trained_with_tensorflow_score_the_same_here(run):
    """The sheet's large CNN (channels_first), an MLP, the ladder's best (its augmentation off at inference)."""
    filename = ROOT / "results" / "models" / run
    config = history.read_history(filename)["config"]
    assert history.trained_with(config).startswith("tensorflow")
    row = grading.evaluate_pair(filename, grading.TestSets(data.get_data_mnist, data.prepare_inputs), models.MODELS)
    recorded = history.read_history(filename)["test"]["error_rate"]
    assert abs(row["error_rate"] - recorded) <= 0.011  # to the hundredth: one test image is 0.01


def test_the_scripts_name_the_backend_first_and_run_end_to_end(tmp_path, capsys):
    assert train.main(["--model", "mlp1", "--epochs", "1", "--train-limit", "300", "--test-limit", "100",
                       "--out", str(tmp_path), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    import keras

    assert lines[0] == f"Keras {keras.__version__} on {backend.NAME} {backend.framework_version()}, cpu"
    assert lines[-1].startswith("Model error rate : ")
    config = json.loads((tmp_path / "models" / "mlp1.history.json").read_text())["config"]
    assert config["versions"]["backend"] == backend.NAME and config["device"] == "cpu"
    assert evaluate.main([str(tmp_path), "--test-limit", "100"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == lines[0] and f"| {backend.NAME} {backend.framework_version()}, cpu |" in (
        tmp_path / "RESULTS.md").read_text()
    digit = fixture_images()[0, 0]
    from PIL import Image

    Image.fromarray((255 - digit * 255).astype(np.uint8)).resize((140, 140)).save(tmp_path / "seven.png")
    assert predict.main([str(tmp_path / "seven.png"), "--pair", str(tmp_path / "models" / "mlp1")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'seven.png'}: ")


@pytest.mark.slow
def test_distribute_runs_here_or_is_one_line(tmp_path):
    if backend.NAME == "torch":
        with pytest.raises(SystemExit) as exit_info:
            train.main(["--model", "medium", "--distribute", "--out", str(tmp_path)])
        assert str(exit_info.value) == ("train.py: error: --distribute: Keras's data parallelism runs on TensorFlow "
                                        "and JAX, not on PyTorch; drop --distribute, or use KERAS_BACKEND=jax")
        assert not (tmp_path / "models" / "medium.json").exists()
        return
    # two CPU devices: TensorFlow's logical devices, XLA's host platform split in two
    code = ("import json, sys\nfrom labtools import backend\n"
            "if backend.NAME == 'tensorflow':\n"
            "    import tensorflow as tf\n"
            "    cpu = tf.config.list_physical_devices('CPU')[0]\n"
            "    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
            "import train\n"
            "settings = train.settings_for('medium', epochs=1, train_limit=2000, test_limit=500, batch_size=100,"
            " distribute=True)\n"
            "result = train.train_and_evaluate(settings, out=sys.argv[1], verbose=0)\n"
            "print(json.dumps({k: result['config'][k] for k in ('replicas', 'batch_size')} | "
            "{'error_rate': result['error_rate']}))\n")
    result = run_script("-c", code, tmp_path, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["replicas"] == 2 and outcome["batch_size"] == 200  # global batch = per replica x replicas
    assert outcome["error_rate"] < 60  # 10 steps of the medium CNN: far better than chance (90%)


def test_what_cannot_work_is_one_line(tmp_path):
    if not backend.accelerators():
        with pytest.raises(SystemExit) as exit_info:
            train.main(["--model", "small", "--device", "gpu", "--out", str(tmp_path)])
        assert str(exit_info.value).startswith(f"train.py: error: --device gpu: {backend.NAME} sees no GPU; ")
    if backend.NAME != "tensorflow":
        with pytest.raises(SystemExit) as exit_info:
            bench.main(["--models", "mlp1", "--out", str(tmp_path / "BENCH.md")])
        assert str(exit_info.value).startswith(f"labtools.bench: error: KERAS_BACKEND={backend.NAME}: it measures "
                                               "TensorFlow's kernels")
        assert not (tmp_path / "BENCH.md").exists()
    with pytest.raises(errors.UsageError, match="BatchNormalization, whose statistics slicing would change"):
        train_run("batchnorm", tmp_path, epochs=1, train_limit=400, slice_size=100)
    unknown = run_script("train.py", "--help", env={"KERAS_BACKEND": "theano"})
    assert unknown.returncode == 1 and unknown.stderr.strip() == (
        "train.py: error: KERAS_BACKEND=theano: choose tensorflow, jax or torch (or unset it)")
    missing = [name for name in backend.BACKENDS if not backend.installed(name)]
    if missing:
        result = run_script("evaluate.py", env={"KERAS_BACKEND": missing[0]})
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert last_line(result.stderr).startswith(f"evaluate.py: error: KERAS_BACKEND={missing[0]}, but "
                                                   f"{missing[0]} is not installed: pip install -r requirements")


if __name__ == "__main__":
    write_fixture_pair()
    print(f"wrote {PAIRS}/large_original_{backend.NAME}.*")


@pytest.mark.skipif(backend.NAME != "torch", reason="the channels_last views replace Keras's on PyTorch only")
@pytest.mark.parametrize("layer", [
    "Conv2D(8, 3)", "Conv2D(8, 5, padding='same')", "Conv2D(8, 3, strides=2, use_bias=False)",
    "Conv2D(8, 3, dilation_rate=2)", "DepthwiseConv2D(3)", "SeparableConv2D(8, 3, padding='same')",
    "Conv2DTranspose(8, 3, strides=2)", "MaxPooling2D(2)", "MaxPooling2D(3, strides=1, padding='same')",
    "AveragePooling2D(2, padding='same')",
])
def test_torch_channels_last_views_compute_what_keras_computes(layer):
    """Outputs and the gradients of inputs and weights bit for bit, with Keras's permute-and-copy and without."""
    import keras
    import torch
    from keras.src.backend.torch import nn

    from labtools import keras_patches

    assert keras_patches.faster_training()  # as train_and_evaluate switches them on
    views = nn._transpose_spatial_inputs
    assert getattr(views, keras_patches.MARK)
    keras_own = next(cell.cell_contents for cell in views.__closure__ if callable(cell.cell_contents))
    keras.utils.set_random_seed(7)
    built = eval(f"keras.layers.{layer}")
    x = np.maximum(np.random.default_rng(0).normal(size=(3, 13, 12, 4)).astype(np.float32), 0)
    results = []
    try:
        for transpose in (keras_own, views):
            nn._transpose_spatial_inputs = transpose
            inputs = torch.tensor(x, requires_grad=True)
            outputs = built(inputs)
            upstream = torch.tensor(np.random.default_rng(1).normal(size=tuple(outputs.shape)).astype(np.float32))
            grads = torch.autograd.grad(outputs, [inputs, *[w.value for w in built.trainable_weights]], upstream)
            results.append([outputs.detach().numpy(), *(g.numpy() for g in grads)])
    finally:
        nn._transpose_spatial_inputs = views
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
