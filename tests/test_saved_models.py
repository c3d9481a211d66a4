"""A teacher's desk: models saved by other people's Keras load and compute what their own Keras computed.

The fixtures in tests/fixtures/ were written by Keras 1.2.2, 2.0.8 and 2.3.1 on Theano, tf.keras 2.x (tf_keras
2.21) and Keras 3, each in its own throwaway environment (tests/fixtures/make_fixtures.py says how), with the
writer's own predictions for the first 64 test images beside each model. Nothing here needs those versions.
"""

import csv
import importlib.util
import json
import re
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import keras
import pytest
from PIL import Image

import data
import evaluate
import models
import persistence
import predict
from labtools import errors, grading, layout, pixel_scale, saved_models, scores

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MANIFEST = dict(json.loads(line) for line in (FIXTURES / "fixtures.jsonl").read_text().splitlines() if line)
TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


def loadable_here(name):
    """The fixture, marked to skip where it cannot load: a SavedModel needs the TensorFlow backend, a checkpoint
    TensorFlow installed (their one line where not is tested in test_tensorflow_formats.py)."""
    needs = MANIFEST[name].get("needs")
    missing = (needs == "the TensorFlow backend" and keras.backend.backend() != "tensorflow" or
               needs == "TensorFlow installed" and not TENSORFLOW)
    return pytest.param(name, marks=pytest.mark.skipif(missing, reason=f"{name} needs {needs}"))


LOADABLE = [loadable_here(name) for name in sorted(MANIFEST) if MANIFEST[name].get("expect") != "refused"]


@pytest.fixture(scope="module")
def test_images():
    _, (X_test, y_test), _ = data.get_data_mnist(normalize=False)
    return X_test, y_test


@pytest.mark.parametrize("name", LOADABLE)
def test_each_saved_model_predicts_what_its_own_keras_predicted(name, test_images):
    entry = MANIFEST[name]
    saved = saved_models.load(FIXTURES / entry["files"][0])
    # "Keras 2.0.8", from the file's own attributes
    assert saved.writer.startswith(entry.get("loads_as", entry["writer"].split(" (")[0]))
    model = layout.channels_last_copy(saved.model)
    input_kind, data_format = grading.input_layout(model)
    X = test_images[0][:64] / (255 if entry["pixels"] == "0..1" else 1)
    outputs = model.predict(data.prepare_inputs(X, input_kind, data_format), verbose=0)
    expected = np.load(FIXTURES / f"{name}.expected.npy")
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-5)


def test_theano_kernels_are_flipped_as_keras_2_did():
    """tf_keras 2.21 does not flip them: its error rate for the Theano CNN is far from what Theano computed."""
    entry = MANIFEST["keras208_theano_cnn"]
    assert entry["tf_keras_2_21_error_rate"] > 4 * entry["error_rate"]
    with h5py.File(FIXTURES / "keras208_theano_cnn.h5") as f:
        stored = f["conv2d_1"]["conv2d_1/kernel"][()]  # Keras 2.0 on Theano: no ":0"
    loaded = persistence.load_keras_model(FIXTURES / "keras208_theano_cnn").layers[0].get_weights()[0]
    np.testing.assert_array_equal(loaded, stored[::-1, ::-1])


def test_keras_1_is_refused_in_one_line():
    with pytest.raises(errors.PairError, match=r"keras122_theano_mlp\.json: written by Keras 1\.2\.2, whose "
                                                    "format neither Keras 2 nor Keras 3 reads"):
        persistence.load_keras_model(FIXTURES / "keras122_theano_mlp")


@pytest.mark.parametrize("name", LOADABLE)
def test_auto_finds_the_pixel_scale_each_model_was_trained_on(name):
    saved = saved_models.load(FIXTURES / MANIFEST[name]["files"][0])
    model = layout.channels_last_copy(saved.model)
    test_sets = grading.TestSets(data.get_data_mnist, data.prepare_inputs)
    normalize, note = grading.choose_pixel_scale(name, model, test_sets, *grading.input_layout(model), {})
    assert normalize == (MANIFEST[name]["pixels"] == "0..1"), note
    images = pixel_scale.AUTO_SCALE_IMAGES
    assert note.startswith(f"pixels {MANIFEST[name]['pixels']}, chosen on {images} test images: ")
    assert "compare" not in note, note  # clear-cut on every fixture


@pytest.mark.parametrize("name", ["tf_keras_accurate_mlp", "tf_keras_accurate_cnn"])
def test_the_lower_loss_would_grade_an_accurate_model_on_the_wrong_scale(name, test_images):
    """Why the rule is not the lower loss: on the first 500 test images these models, trained
    on pixels /255, are right on every image on both scales, and their loss is lower on 0..255 (saturated)."""
    saved = saved_models.load(FIXTURES / MANIFEST[name]["files"][0])
    model, (X, y) = layout.channels_last_copy(saved.model), test_images
    losses, accuracies = [], []
    for scale in (255, 1):
        inputs = data.prepare_inputs(X[:500] / scale, *grading.input_layout(model))
        loss, accuracy = scores.loss_and_accuracy(model.predict(inputs, verbose=0), y[:500])
        losses.append(loss)
        accuracies.append(accuracy)
    assert accuracies == [1.0, 1.0] and losses[1] < losses[0]
    test_sets = grading.TestSets(data.get_data_mnist, data.prepare_inputs)
    assert "so by how sure it is" in grading.choose_pixel_scale(name, model, test_sets, *grading.input_layout(model),
                                                                 {})[1]


def test_a_models_margins_follow_its_outputs():
    probabilities = np.array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0], [0.1, 0.2, 0.7]], dtype=np.float32)
    np.testing.assert_allclose(scores.output_margins(probabilities), [np.log(2), np.inf, np.log(3.5)], rtol=1e-6)


def broken_files(folder):
    """Files a teacher finds among the ones handed in, each of which must be one line, and what that line says."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lonely.json").write_text((FIXTURES / "tf_keras_bn_cnn.json").read_text())
    shutil.copy(FIXTURES / "tf_keras_bn_cnn.h5", folder / "weights_only.h5")
    (folder / "notes.keras").write_text("not a zip")
    (folder / "corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    (folder.parent / "yann").mkdir()  # model.save("yann") before TensorFlow 2.16: a SavedModel, its graph empty
    (folder.parent / "yann" / "saved_model.pb").write_bytes(b"")
    import keras

    three = keras.Sequential([keras.Input((784,)), keras.layers.Dense(3, activation="softmax")])
    three.save(folder / "three_classes.keras")
    colour = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    colour.save(folder / "cifar.keras")
    return {"zoe/lonely.json": "no weights beside it", "zoe/weights_only.h5": "holds weights only",
            "zoe/notes.keras": "not a readable Keras archive", "zoe/corrupt.h5": "not a readable HDF5 model file",
            "yann": "SavedModel", "zoe/three_classes.keras": "not MNIST's 10 classes",
            "zoe/cifar.keras": "takes inputs of shape (32, 32, 3)"}


def test_a_teachers_folder_of_mixed_files(tmp_path, capsys):
    """students/ with one folder per student (as a course platform's download gives) and loose files: every good
    model gets its row, with what wrote it and the scale chosen; every bad file one line and a row that says why;
    nothing is written among the students' files; the CSV has the table."""
    students = tmp_path / "students"
    for name in ["keras208_theano_cnn", "tf_keras_raw_cnn", "tf_keras_functional_logits", "keras3_model",
                 "tf_keras_full", "keras122_theano_mlp"]:
        folder = students / name.split("_")[0]
        folder.mkdir(parents=True, exist_ok=True)
        for file in MANIFEST[name]["files"]:
            shutil.copy(FIXTURES / file, folder / file)
    expected_errors = broken_files(students / "zoe")
    before = sorted(p.relative_to(students) for p in students.rglob("*"))
    grades = tmp_path / "grades.csv"
    assert evaluate.main([str(students), "--csv", str(grades), "--test-limit", "500"]) == 1  # some failed
    output = capsys.readouterr()
    errors = output.err.strip().splitlines()
    assert len(errors) == len(expected_errors) + 1  # and the Keras 1 pair
    for file, message in expected_errors.items():
        student, _, inside = file.partition("/")  # each line names the student, then the file inside their folder
        assert any(f"error: {student}: {inside or student}:" in line and message in line for line in errors), (
            file, errors)
    assert any("keras122: keras122_theano_mlp.json: written by Keras 1.2.2" in line for line in errors)
    assert "Traceback" not in output.err + output.out
    rows = {"/".join(line[2:].split(" | ")[:2]): line for line in output.out.splitlines() if line.startswith("| ")}
    assert rows["keras208/keras208_theano_cnn"].split(" | ")[2:4] == ["Keras 2.0.8 (theano)", "(1, 28, 28)"]
    assert "| no (chosen) |" in rows["tf/tf_keras_raw_cnn"]
    assert "| yes (chosen) |" in rows["keras3/keras3_model.keras"]
    assert "its outputs are not probabilities (no softmax at the end)" in output.out
    assert sorted(p.relative_to(students) for p in students.rglob("*")) == before  # no report among their files
    with open(grades, newline="", encoding="utf-8-sig") as f:
        table = list(csv.DictReader(f))
    assert [f"{row['student']}/{row['model']}" for row in table] == [name for name in rows
                                                                      if name not in ("student/model", "---/---")]
    raw = next(row for row in table if row["model"] == "tf_keras_raw_cnn")
    assert raw["normalised"] == "no (chosen)" and raw["notes"].startswith("pixels 0..255, chosen on 500")
    assert raw["saved by"] == MANIFEST["tf_keras_raw_cnn"]["writer"]
    # every file handed in has its row, the refused ones too, with why in the notes: no student goes missing
    refused = [row for row in table if row["saved by"] == "refused"]
    assert len(refused) == len(errors) and len(table) == len(errors) + 5
    assert all(row["error rate"] == "-" and row["notes"] for row in refused)
    assert any("written by Keras 1.2.2" in row["notes"] and row["model"] == "keras122_theano_mlp"
               for row in refused)
    assert (f"3 of 6 students graded (5 models); 3 with no graded model; {len(errors)} of {len(table)} files "
            f"refused: why is in the lines above and in {grades}") in output.out


def test_a_copy_handed_in_twice_is_named_as_itself(tmp_path, monkeypatch, capsys):
    """evaluate.py keeps results by the files' bytes: the same file under two names is evaluated once, and each
    copy keeps its own name and path in the table and the CSV."""
    monkeypatch.setenv("MNIST_LABS_CACHE", str(tmp_path / "cache"))
    for student in ("ana", "ben"):
        (tmp_path / "students" / student).mkdir(parents=True)
        shutil.copy(FIXTURES / "keras3_model.keras", tmp_path / "students" / student / "model.keras")
    grades = tmp_path / "grades.csv"
    for _ in range(2):  # the second run takes both from the cache
        assert evaluate.main([str(tmp_path / "students"), "--test-limit", "500", "--csv", str(grades)]) == 0
        with open(grades, newline="", encoding="utf-8-sig") as f:
            table = list(csv.DictReader(f))
        expected = [(student, "model.keras", f"{student}/model.keras") for student in ("ana", "ben")]
        assert [(row["student"], row["model"], row["file"]) for row in table] == expected
        assert table[0]["error rate"] == table[1]["error rate"]


def test_the_table_error_rate_is_the_writers_own(capsys):
    """On all 10,000 test images, the error rate evaluate.py prints for each fixture is the one its own Keras
    computed (make_fixtures.py recorded it), with the scale chosen by auto."""
    names = ["keras208_theano_cnn", "keras231_theano_functional_bn", "tf_keras_raw_cnn", "keras3_full"]
    paths = [str(FIXTURES / MANIFEST[name]["files"][-1]) for name in names]
    assert evaluate.main([*paths, "--no-report"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Model error rate")]
    assert lines == [f"Model error rate : {MANIFEST[name]['error_rate']:.2f}%" for name in names]


def test_normalize_still_forces(capsys):
    assert evaluate.main([str(FIXTURES / "tf_keras_raw_cnn"), "--normalize", "yes", "--test-limit", "500",
                          "--no-report"]) == 0
    output = capsys.readouterr().out
    assert "chosen" not in output and "| yes |" in output


def test_load_keras_model_takes_every_format():
    for name in ("keras3_model.keras", "keras3_full.h5", "tf_keras_full.h5", "tf_keras_bn_cnn.h5",
                 "tf_keras_bn_cnn.json", "tf_keras_bn_cnn"):
        model = persistence.load_keras_model(FIXTURES / name)
        assert model.compiled and model.output_shape == (None, 10)


def test_predict_reads_a_model_from_elsewhere(tmp_path, test_images, capsys):
    digit = test_images[0][0, 0]
    Image.fromarray(digit.astype(np.uint8)).resize((280, 280)).save(tmp_path / "seven.png")
    assert predict.main([str(tmp_path / "seven.png"), "--pair", str(FIXTURES / "tf_keras_raw_cnn.h5")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"pixels 0..255, chosen on {pixel_scale.AUTO_SCALE_IMAGES} test images: " in lines[0]
    assert " on 0..255 only: a sign test's p = " in lines[0]
    assert lines[-1].startswith(f"{tmp_path / 'seven.png'}: 7 ")


def test_predict_refuses_a_model_that_is_not_for_digits(tmp_path, test_images, capsys):
    import keras

    Image.fromarray(test_images[0][0, 0].astype(np.uint8)).save(tmp_path / "seven.png")
    for name, model in [("three", keras.Sequential([keras.Input((784,)), keras.layers.Dense(3)])),
                        ("cifar", keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                                                    keras.layers.Dense(10)]))]:
        model.save(tmp_path / f"{name}.keras")
        with pytest.raises(SystemExit) as exit_info:
            predict.main([str(tmp_path / "seven.png"), "--pair", str(tmp_path / f"{name}.keras")])
        message = str(exit_info.value)
        assert message.startswith(f"predict.py: error: {tmp_path / name}.keras: ") and "\n" not in message
        assert ("not MNIST's 10 classes" if name == "three" else "takes inputs of shape (32, 32, 3)") in message


def test_an_image_too_large_for_pillow_is_one_line(tmp_path, monkeypatch, capsys):
    """Pillow refuses images past twice its limit of 89 million pixels (a 20,000 x 20,000 scan) and warns past
    the limit; the limit is lowered here so that a small file stands for such a scan."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for size in [(50, 30), (40, 40)]:  # past twice the limit (an error in Pillow), past the limit (a warning)
        path = tmp_path / f"scan{size[0]}.png"
        Image.fromarray(np.full(size, 200, np.uint8)).save(path)
        assert predict.main([str(path), "--pair", str(FIXTURES / "keras3_model.keras")]) == 1
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0 and f"{path}: too large to read safely" in error


def test_a_model_whose_outputs_ignore_the_pixels_gets_the_sheets_scale_and_a_warning():
    """Uniform outputs (margins 0 on both scales) or outputs saturated on both: the margins tell nothing."""
    import keras

    for bias in (np.zeros(10), np.eye(10)[3] * 200):  # uniform, and one answer saturated whatever the pixels
        model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
        model.layers[-1].set_weights([np.zeros((784, 10)), bias.astype(np.float32)])
        test_sets = grading.TestSets(data.get_data_mnist, data.prepare_inputs)
        normalize, note = grading.choose_pixel_scale("flat", model, test_sets, "flat", None, {})
        assert normalize and note.startswith("pixels 0..1, the sheets' scale: ") and "compare" in note, note


def test_the_accuracy_step_decides_when_the_split_between_the_scales_is_beyond_chance():
    """Right on 97.2% of 5,000 images on 0..1 and 98.1% on 0..255, with 24 right on 0..1 only and 66 on 0..255 only
    (the raw-pixel CNN that 2 points of accuracy let through to the margins, which said 0..1): 0..255, whatever the
    margins. An even split of the same images decides nothing, and the margins do."""
    labels = np.eye(10)[np.arange(5000) % 10]

    def outputs(right, margin):
        """One-hot-ish outputs right where `right`, wrong elsewhere, the first choice `margin` nats ahead."""
        chosen = np.where(right, labels.argmax(axis=1), (labels.argmax(axis=1) + 1) % 10)
        logits = np.zeros((len(labels), 10))
        logits[np.arange(len(labels)), chosen] = margin
        exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))  # no overflow at 1,500 nats
        return exponentials / exponentials.sum(axis=1, keepdims=True)

    both = np.arange(5000) >= 230  # right on both scales; the first 230 images are where they differ
    only_01, only_255 = (np.arange(5000) < 24), (np.arange(5000) >= 24) & (np.arange(5000) < 90)
    right_01, right_255 = both | only_01, both | only_255
    chosen, note = pixel_scale.choose({True: outputs(right_01, 1.36), False: outputs(right_255, 346)}, labels)
    assert chosen is False and "24 right on 0..1 only, 66 on 0..255 only" in note
    assert pixel_scale.sign_test(24, 66) < pixel_scale.SIGNIFICANCE < pixel_scale.sign_test(12, 23)
    only_01, only_255 = np.arange(5000) < 20, (np.arange(5000) >= 20) & (np.arange(5000) < 42)  # 20 and 22
    chosen, note = pixel_scale.choose({True: outputs(both | only_01, 6.0), False: outputs(both | only_255, 1500)},
                                      labels)
    assert chosen is True and "so by how sure it is" in note


def test_a_keras_2_0_pair_computes_the_same_under_the_sheets_global_channels_first(test_images):
    """The INSAT sheet sets K.set_image_data_format('channels_first') for the whole session: a Keras 2.0 pair's
    Flatten, which had no data_format and flattened in the stored order, still does."""
    import keras

    entry = MANIFEST["keras208_theano_cnn"]
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        model = persistence.load_keras_model(FIXTURES / "keras208_theano_cnn")
        outputs = model.predict(test_images[0][:64] / 255, verbose=0)
    finally:
        keras.config.set_image_data_format(previous)
    assert entry["input_shape"] == [1, 28, 28]
    np.testing.assert_allclose(outputs, np.load(FIXTURES / "keras208_theano_cnn.expected.npy"), rtol=1e-4, atol=1e-5)


HUGE = (40_000_000,)  # 160 MB of float32 declared for one layer: under the 50 M total limit, so only the shape check


def declare_huge_kernel(h5_file):
    """Replace the file's first Dense kernel by a dataset declared HUGE and never written (HDF5 allocates it lazily:
    the file stays small, and reading it would fill 160 MB). The dataset's path, relative to h5_file."""
    kernels = []
    h5_file.visititems(lambda name, item: kernels.append(name) if isinstance(item, h5py.Dataset) and len(item.shape)
                       == 2 and "dense" in name and not name.startswith("optimizer") else None)
    del h5_file[kernels[0]]
    h5_file.create_dataset(kernels[0], shape=HUGE, dtype="float32")
    return kernels[0]


def hostile_copy(kind, folder):
    """A copy of a good model file of `kind` whose weights declare HUGE values for one Dense layer: the path to
    load."""
    if kind == "keras 2 pair":
        for suffix in (".json", ".h5"):
            shutil.copy(FIXTURES / f"tf_keras_flatten_mlp{suffix}", folder / f"m{suffix}")
        weights, target = folder / "m.h5", folder / "m.json"
    elif kind == "keras 3 pair":
        source = Path(__file__).resolve().parent / "pairs" / "large_original_tensorflow"
        for suffix in (".json", ".weights.h5"):
            shutil.copy(f"{source}{suffix}", folder / f"m{suffix}")
        weights, target = folder / "m.weights.h5", folder / "m.json"
    elif kind in ("keras 2 full .h5", "keras 3 full .h5"):
        weights = target = folder / "m.h5"
        shutil.copy(FIXTURES / ("tf_keras_full.h5" if kind.startswith("keras 2") else "keras3_full.h5"), weights)
    else:  # a .keras archive, rewritten with such a model.weights.h5
        target, weights = folder / "m.keras", folder / "model.weights.h5"
        with zipfile.ZipFile(FIXTURES / "keras3_model.keras") as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        weights.write_bytes(members.pop("model.weights.h5"))
    with h5py.File(weights, "a") as f:
        declare_huge_kernel(f)
    if kind == ".keras":
        with zipfile.ZipFile(target, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
            archive.write(weights, "model.weights.h5")
    assert target.stat().st_size < 1 << 20  # declared, not written
    return target


@pytest.mark.parametrize("kind", ["keras 2 pair", "keras 3 pair", "keras 2 full .h5", "keras 3 full .h5", ".keras"])
def test_a_weight_of_the_wrong_shape_is_refused_before_it_is_read(kind, tmp_path):
    """Keras and h5py read a stored array whole before comparing its shape with the model's: a file declaring one
    layer's kernel of 40 M values would cost 160 MB per file, and a few GB for a few such files. The declared shapes
    are compared with the built model's first, so the refusal reads nothing (numpy reports its allocations to
    tracemalloc: a 160 MB read would show in the peak)."""
    import tracemalloc

    path = hostile_copy(kind, tmp_path)
    tracemalloc.start()
    try:
        with pytest.raises(errors.PairError) as refused:
            saved_models.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2 ** 20, f"{peak / 2 ** 20:.0f} MB traced while refusing {path.name}"
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{tmp_path}/m.") and "do not fit" in message, message
    shapes = r"layer (\w+/)?dense\w*\b.*stored shapes? \(40000000,\).*the model's \(\d+, \d+\)"
    assert re.search(shapes, message), message
    assert message.endswith(("save the model again", "or save the model again")), message
