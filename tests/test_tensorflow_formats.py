"""TensorFlow's own formats in a hand-in (labtools/tf_formats.py): a SavedModel folder is graded through
keras.layers.TFSMLayer once every op it can run is known to only compute; a tf.keras 2 checkpoint is graded beside
its JSON, its shapes checked first. Where the backend or the installation cannot, one line says what to do."""

import importlib.util
import shutil
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import data
import evaluate
from labtools import errors, model_size, saved_models, tf_formats

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
needs_tensorflow = pytest.mark.skipif(not TENSORFLOW, reason="TensorFlow reads these formats")
needs_tensorflow_backend = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                              reason="Keras runs SavedModels on its TensorFlow backend only")


def digits(count, shape):
    _, (x_test, _), _ = data.get_data_mnist(normalize=True)
    return x_test[:count].reshape((count, *shape))


@needs_tensorflow_backend
def test_a_saved_model_that_writes_a_file_is_refused_before_any_of_it_runs(tmp_path):
    import tensorflow as tf

    written = tmp_path / "written.txt"

    class Sneaky(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
        def serve(self, images):
            tf.io.write_file(str(written), "written by the model")
            tf.print("and printed")
            return {"probabilities": tf.nn.softmax(tf.reshape(images, [-1, 784])[:, :10])}

    sneaky = Sneaky()
    tf.saved_model.save(sneaky, str(tmp_path / "sneaky"), signatures={"serving_default": sneaky.serve})
    assert not written.exists()
    with pytest.raises(errors.PairError, match=r"sneaky: a SavedModel whose graph runs more than computations "
                                               r"\(PrintV2, StringFormat, WriteFile\): not loaded"):
        saved_models.load(tmp_path / "sneaky")
    assert not written.exists()
    # what the check stops: without it, TensorFlow's loader runs the file's graph and writes the file
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tf_formats, "COMPUTE_OPS", tf_formats.COMPUTE_OPS | {"PrintV2", "WriteFile", "StringFormat"})
        saved_models.load(tmp_path / "sneaky").model.predict(digits(2, (28, 28, 1)), verbose=0)
    assert written.read_text() == "written by the model"


@needs_tensorflow_backend
def test_a_keras_3_export_and_a_tf_keras_save_are_graded(tmp_path, capsys):
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((1, 28, 28)), keras.layers.Conv2D(4, 3, data_format="channels_first"),
                              keras.layers.BatchNormalization(axis=1), keras.layers.Flatten(),
                              keras.layers.Dropout(0.2), keras.layers.Dense(10, activation="softmax")])
    model.export(str(tmp_path / "exported"), verbose=False)  # Keras 3's SavedModel
    loaded = saved_models.load(tmp_path / "exported")
    images = digits(16, (1, 28, 28))
    np.testing.assert_allclose(loaded.model.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    # tf.keras 2's model.save("DIR"), as a fresh clone has it: git keeps no empty assets/ folder
    shutil.copytree(FIXTURES / "tf_keras_savedmodel", tmp_path / "tf_keras_savedmodel",
                    ignore=shutil.ignore_patterns("assets"))
    assert evaluate.main([str(tmp_path / "tf_keras_savedmodel"), "--test-limit", "500"]) == 0
    output = capsys.readouterr()
    assert "saved by TensorFlow 2.21.0 (SavedModel); input (28, 28, 1)" in output.out
    assert "| tf_keras_savedmodel | TensorFlow 2.21.0 (SavedModel) |" in output.out and "Traceback" not in output.err


@needs_tensorflow_backend
def test_a_saved_model_asking_too_much_or_damaged_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(model_size, "MAX_PARAMETERS", 10_000)  # 13,610 weights and 4 metric totals; no optimizer's
    with pytest.raises(errors.PairError, match=r"tf_keras_savedmodel: it stores 13,614 weights, over the limit of "
                                               "10,000; not read"):
        saved_models.load(FIXTURES / "tf_keras_savedmodel")
    monkeypatch.undo()
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURES / "tf_keras_savedmodel", broken)
    (broken / "saved_model.pb").write_bytes((broken / "saved_model.pb").read_bytes()[:3000])
    with pytest.raises(errors.PairError, match=r"broken: not a readable SavedModel \(.*\); in the student's "
                                               r"TensorFlow, load it and save it with model.save\(\"model.keras\"\)"):
        saved_models.load(broken)
    shutil.rmtree(broken / "variables")
    (broken / "saved_model.pb").write_bytes((FIXTURES / "tf_keras_savedmodel" / "saved_model.pb").read_bytes())
    with pytest.raises(errors.PairError, match=r"broken: a SavedModel folder without its variables"):
        saved_models.load(broken)


@needs_tensorflow
def test_a_checkpoint_is_read_beside_its_json_and_checked_against_it(tmp_path):
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(FIXTURES / f"tf_keras_ckpt{suffix}", tmp_path / f"model{suffix}")
    config = (FIXTURES / "tf_keras_ckpt.json").read_text()
    (tmp_path / "model.json").write_text(config)
    assert saved_models.load(tmp_path / "model").writer == "Keras 2.21.0 (tensorflow)"  # its name, as evaluate.py
    (tmp_path / "model.json").write_text(config.replace('"filters": 8', '"filters": 4'))
    with pytest.raises(errors.PairError, match=r"model\.index: layer conv2d\w*'s kernel is \(3, 3, 1, 8\) in the "
                                               r"checkpoint, \(3, 3, 1, 4\) in model\.json: they do not belong"):
        saved_models.load(tmp_path / "model.json")
    (tmp_path / "model.json").write_text((FIXTURES / "tf_keras_raw_cnn.json").read_text())
    with pytest.raises(errors.PairError, match=r"3 layers with weights in the checkpoint, 2 in model\.json"):
        saved_models.load(tmp_path / "model.index")
    (tmp_path / "model.json").write_text(config)
    data_file = tmp_path / "model.data-00000-of-00001"
    data_file.write_bytes(data_file.read_bytes()[:1000])
    with pytest.raises(errors.PairError, match=r"model\.index: damaged"):
        saved_models.load(tmp_path / "model")
    data_file.unlink()
    with pytest.raises(errors.PairError, match=r"without its model\.data-00000-of-00001 file"):
        saved_models.load(tmp_path / "model")
    (tmp_path / "model.data-00000-of-00001").write_bytes(b"x")
    (tmp_path / "model.index").write_bytes(b"not an index at all")
    with pytest.raises(errors.PairError, match=r"model\.index: not a readable TensorFlow checkpoint"):
        saved_models.load(tmp_path / "model")


def test_where_tensorflow_cannot_run_them_one_line_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(errors.PairError, match=r"tf_keras_savedmodel: a TensorFlow SavedModel folder, which Keras "
                                               r"runs on its TensorFlow backend only \(this is jax"):
        saved_models.load(FIXTURES / "tf_keras_savedmodel")
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as on Python 3.14, where TensorFlow has no wheel
    with pytest.raises(errors.PairError, match=r"tf_keras_ckpt\.index: a TensorFlow checkpoint, which only "
                                               r"TensorFlow reads, and TensorFlow is not installed here"):
        saved_models.load(FIXTURES / "tf_keras_ckpt")


def test_a_saved_model_folder_is_a_model_not_a_student_nor_a_folder_to_open(tmp_path):
    from labtools import desk

    models = tmp_path / "models"  # a teacher's folder of models: loose files and a SavedModel folder
    shutil.copytree(FIXTURES / "tf_keras_savedmodel", models / "export")
    shutil.copy(FIXTURES / "keras3_model.keras", models / "model.keras")
    (students,) = desk.find_class(models, tmp_path / "work")
    assert [hand_in.inside for hand_in in students.hand_ins] == ["model.keras", "export"]
    with zipfile.ZipFile(tmp_path / "one.zip", "w") as archive:  # a zip of one SavedModel folder: not looked into
        for path in sorted((models / "export").rglob("*")):
            archive.write(path, path.relative_to(models).as_posix())
    (work := tmp_path / "work2").mkdir()
    (student,) = desk.find_class(tmp_path / "one.zip", work)
    assert [(h.inside, h.files[0].name, h.refused) for h in student.hand_ins] == [("export", "saved_model.pb", "")]
