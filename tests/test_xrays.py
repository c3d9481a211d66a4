"""Chest X-rays: real radiographs (tests/xrays/, credited in its README), the loader's quirks, the scores."""

import contextlib
import io
import json
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

import data
from conftest import ROOT, make_xray_tree
from labtools import errors, scores, xrays

XRAYS = ROOT / "tests" / "xrays" / "chest_xray"  # 8 + 8 train, 2 + 2 val, 4 + 4 test real radiographs


def test_real_radiographs_load_in_name_order_normal_first_each_with_its_folders_label():
    files, skipped = xrays.xray_files(XRAYS)
    splits = xrays.load_xrays(XRAYS)
    assert skipped == [] and set(splits) == {"train", "val", "test"}
    for split, count in (("train", 8), ("val", 2), ("test", 4)):
        images, labels = splits[split]
        assert images.shape == (2 * count, 128, 128, 1) and images.dtype == np.float32
        assert labels[:, 0].tolist() == [0] * count + [1] * count
        assert [path.parent.name for path, _ in files[split]] == ["NORMAL"] * count + ["PNEUMONIA"] * count
        assert [path.name for path, _ in files[split]] == sorted(path.name for path, _ in files[split][:count]) + \
            sorted(path.name for path, _ in files[split][count:])
        for (path, label), image, loaded_label in zip(files[split], images, labels[:, 0]):
            # each array is its own file's image: predictions and labels line up with the file names
            with Image.open(path) as original:
                expected = np.asarray(original.convert("L").resize((128, 128), Image.Resampling.BILINEAR))
            np.testing.assert_array_equal(image[..., 0], expected)
            assert loaded_label == label == ("PNEUMONIA" in str(path.parent))
    with Image.open(files["train"][0][0]) as train_image, Image.open(files["val"][0][0]) as val_image:
        assert (train_image.mode, train_image.size, val_image.mode, val_image.size) == ("RGB", (128, 128), "L",
                                                                                        (96, 96))
    only_test = xrays.load_xrays(XRAYS, splits=("test",))
    assert list(only_test) == ["test"] and np.array_equal(only_test["test"][0], splits["test"][0])


def write_pattern(path, pixels, mode):
    """Save an (H, W) uint8 pattern as mode L, RGB (three equal channels) or I;16 (16-bit grayscale PNG)."""
    if mode == "RGB":
        Image.fromarray(np.repeat(pixels[..., None], 3, axis=2), "RGB").save(path)
    elif mode == "I;16":
        Image.fromarray(pixels.astype(np.uint16) * 257).save(path)  # 0..65535, as 16-bit X-ray PNGs store it
    else:
        Image.fromarray(pixels, "L").save(path)


def test_grayscale_rgb_and_16_bit_images_of_any_size_give_the_same_pixels(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (300, 200), dtype=np.uint8)
    loaded = {}
    for mode, suffix in (("L", ".jpg"), ("L", ".png"), ("RGB", ".png"), ("I;16", ".png")):
        path = tmp_path / f"{mode.replace(';', '')}{suffix}"
        write_pattern(path, pixels, mode)
        loaded[path.name] = xrays.read_xrays([path], image_size=128)[0]
    with Image.open(tmp_path / "I16.png") as sixteen:
        assert sixteen.mode.startswith("I")  # the file really is 16-bit
    reference = loaded.pop("L.png")
    assert reference.shape == (128, 128) and reference.dtype == np.uint8
    np.testing.assert_array_equal(loaded["RGB.png"], reference)
    np.testing.assert_array_equal(loaded["I16.png"], reference)
    assert 0 < np.abs(loaded["L.jpg"].astype(int) - reference).mean() < 20  # JPEG is lossy, still the same image


def test_hidden_and_other_files_are_skipped_with_one_line_that_counts_them(tmp_path, capsys):
    tree = tmp_path / "chest_xray"
    shutil.copytree(XRAYS, tree)
    normal = tree / "train" / "NORMAL"
    (normal / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (normal / "._IM-0115-0001.jpeg").write_bytes(b"\x00\x05\x16\x07" + bytes(60))  # macOS's AppleDouble file
    (tree / "test" / "PNEUMONIA" / "notes.txt").write_text("read me")
    (tree / "test" / "PNEUMONIA" / "Thumbs.db").write_bytes(bytes(10))
    (tree / "val" / "NORMAL" / "more").mkdir()
    clean = xrays.load_xrays(XRAYS)
    capsys.readouterr()
    loaded = xrays.load_xrays(tree)
    (line,) = capsys.readouterr().out.splitlines()
    assert f"--data-dir {tree}: skipped 5 entries that are not images" in line
    assert "train/NORMAL/.DS_Store, train/NORMAL/._IM-0115-0001.jpeg, val/NORMAL/more, ..." in line
    for split in clean:
        for array, expected in zip(loaded[split], clean[split]):
            np.testing.assert_array_equal(array, expected)
    assert xrays.count_xrays(tree) == (16, 8)


def test_the_archives_outer_folder_names_the_folder_to_give(tmp_path, capsys):
    """The public archive unzips to archive/chest_xray/ holding train/, test/, val/, a nested chest_xray/ copy and
    __MACOSX/ (macOS's ._ copies of every file). Given archive/, train.py names archive/chest_xray in one line;
    given that, the ._ files and .DS_Store in the class folders are skipped."""
    import train

    archive = tmp_path / "archive"
    tree = archive / "chest_xray"
    shutil.copytree(XRAYS, tree)
    shutil.copytree(XRAYS, tree / "chest_xray")
    for folder in (tree / "__MACOSX" / "chest_xray" / "train" / "NORMAL", archive / "__MACOSX" / "train" / "NORMAL"):
        folder.mkdir(parents=True)
        (folder / "._IM-0115-0001.jpeg").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    (tree / "train" / "NORMAL" / "._IM-0115-0001.jpeg").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    (tree / "train" / "PNEUMONIA" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--model", "pneumonia", "--data-dir", str(archive), "--out", str(tmp_path / "out")])
    assert str(exit_info.value) == (f"train.py: error: --data-dir {archive}: no train/ folder, but chest_xray/train/ "
                                    f"is inside: use --data-dir {tree}")
    assert not (tmp_path / "out" / "models").exists()
    assert xrays.count_xrays(tree) == (16, 8)
    loaded = xrays.load_xrays(tree)
    assert "skipped 2 entries that are not images" in capsys.readouterr().out
    np.testing.assert_array_equal(loaded["train"][0], xrays.load_xrays(XRAYS, verbose=False)["train"][0])


def corrupt_files(folder):
    """Damaged files as they turn up in real trees: a cut JPEG, one of zero bytes, another file named .jpeg."""
    good = next(XRAYS.glob("test/NORMAL/*.jpeg")).read_bytes()
    return {"truncated.jpeg": good[: len(good) // 2], "empty.jpeg": b"",
            "page.jpeg": b"<!DOCTYPE html><html>Sign in to download</html>"}


@pytest.mark.parametrize("name", list(corrupt_files(None)))
def test_a_damaged_image_is_one_line_naming_it_and_nothing_is_loaded(tmp_path, name):
    tree = tmp_path / "chest_xray"
    shutil.copytree(XRAYS, tree)
    damaged = tree / "test" / "NORMAL" / name
    damaged.write_bytes(corrupt_files(None)[name])
    with pytest.raises(errors.DataError) as error:
        xrays.load_xrays(tree)
    message = str(error.value)
    assert message.startswith(f"--data-dir {damaged}: not an image Pillow can read") and "\n" not in message
    assert message.endswith("replace it with a good copy or remove it from the tree")


def test_train_stops_on_a_damaged_image_with_one_line_before_training_and_saves_nothing(tmp_path, capsys):
    import train

    tree = tmp_path / "chest_xray"
    shutil.copytree(XRAYS, tree)
    damaged = tree / "train" / "PNEUMONIA" / "truncated.jpeg"
    damaged.write_bytes(corrupt_files(None)["truncated.jpeg"])
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--model", "pneumonia", "--data-dir", str(tree), "--epochs", "1", "--out", str(tmp_path / "out"),
                    "--quiet"])
    assert str(exit_info.value).startswith(f"train.py: error: --data-dir {damaged}: not an image Pillow can read")
    assert "\n" not in str(exit_info.value) and "Epoch" not in capsys.readouterr().out
    assert not list((tmp_path / "out").rglob("pneumonia*"))


@pytest.mark.parametrize("side", [50, 70])  # 2,500 pixels: Pillow warns; 4,900: Pillow refuses (limit 2,000 here)
def test_an_image_too_large_for_pillow_is_one_line_naming_it_not_a_warning(tmp_path, monkeypatch, side):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # Pillow's default: 89,478,485 pixels (a 9,459 px square)
    tree = make_xray_tree(tmp_path / "xray")  # 48 x 40 = 1,920 pixels an image: under the limit
    large = tree / "test" / "PNEUMONIA" / "large.png"
    Image.fromarray(np.zeros((side, side), np.uint8)).save(large)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(errors.DataError) as error:
            xrays.load_xrays(tree)
    message = str(error.value)
    assert message.startswith(f"--data-dir {large}: too large to read safely (Image size ({side * side} pixels) "
                              "exceeds limit of ") and "\n" not in message
    assert "downsize it" in message
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    monkeypatch.undo()
    assert xrays.load_xrays(tree)["test"][0].shape == (25, 128, 128, 1)  # at Pillow's own limit it is an X-ray


# ---------------------------------------------------------------------------- the scores a student reports


def test_scores_follow_their_definitions_and_keras_threshold():
    import keras

    rng = np.random.default_rng(0)
    labels = (rng.random(300) < 0.6).astype(np.float32)
    probabilities = np.round(np.clip(labels * 0.3 + rng.random(300) * 0.7, 0, 1), 2)  # ties, and exact 0.5s
    probabilities[:5] = 0.5
    results = scores.xray_scores(probabilities, labels)
    (tn, fp), (fn, tp) = results["confusion_matrix"]
    predicted = probabilities > 0.5
    assert (tp, fp, fn, tn) == tuple(int(np.sum((labels == a) & (predicted == b)))
                                     for a, b in ((1, 1), (0, 1), (1, 0), (0, 0)))
    keras_accuracy = float(keras.ops.mean(keras.metrics.binary_accuracy(labels[:, None], probabilities[:, None])))
    assert results["accuracy"] == pytest.approx(keras_accuracy, abs=1e-7) == pytest.approx((tp + tn) / 300)
    assert results["precision"] == pytest.approx(tp / (tp + fp)) and results["recall"] == pytest.approx(tp / (tp + fn))
    assert results["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    positives, negatives = probabilities[labels == 1][:, None], probabilities[labels == 0][None, :]
    pairwise = np.mean((positives > negatives) + 0.5 * (positives == negatives))
    assert results["roc_auc"] == pytest.approx(pairwise, abs=1e-12)
    fpr, tpr, thresholds = scores.roc_curve(probabilities, labels)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1) and np.all(np.diff(fpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(pairwise, abs=1e-12)
    at_half = np.flatnonzero(thresholds > 0.5)[-1]  # the curve's point at the 0.5 threshold
    assert (fpr[at_half], tpr[at_half]) == pytest.approx((fp / (fp + tn), tp / (tp + fn)))
    assert scores.roc_auc([0.2, 0.9], [1, 1]) is None


@pytest.fixture(scope="module")
def xray_run(tmp_path_factory):
    """train.py --model pneumonia for one epoch on a copy of the real radiographs: (tree, results dir, stdout)."""
    import train

    root = tmp_path_factory.mktemp("xray_run")
    tree, out = root / "chest_xray", root / "out"
    shutil.copytree(XRAYS, tree)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        # batch 8: two batches an epoch
        assert train.main(["--model", "pneumonia", "--data-dir", str(tree), "--epochs", "1", "--batch-size", "8",
                           "--out", str(out), "--quiet"]) == 0
    return tree, out, printed.getvalue()


def test_train_prints_the_xray_scores_after_the_sheets_two_lines(xray_run):
    """One epoch on the real radiographs: what train.py prints is what the saved pair gives on the test images."""
    import persistence

    tree, out, printed = xray_run
    lines = printed.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("Model score : "))
    saved = json.loads((out / "models" / "pneumonia.history.json").read_text())
    test, results = saved["test"], dict(saved["test"]["metrics"])
    assert saved["config"]["validation"] == "val"  # the tree's val/ folder, as the ARN notebook
    assert [sorted(row) for row in saved["epochs"]] == [["accuracy", "epoch", "loss", "seconds", "val_accuracy",
                                                         "val_loss"]]  # it trained
    (tn, fp), (fn, tp) = results["confusion_matrix"]
    assert lines[first:] == [
        f"Model score : {test['accuracy'] * 100:.2f}%", f"Model error rate : {test['error_rate']:.2f}%",
        f"Precision : {results['precision']:.4f}  Recall : {results['recall']:.4f}  F1 : {results['f1']:.4f}  "
        f"ROC AUC : {results['roc_auc']:.4f}  (8 test images, PNEUMONIA positive, threshold 0.5)",
        "Confusion matrix (rows true, columns predicted):", "             NORMAL  PNEUMONIA",
        f"  NORMAL    {tn:8d} {fp:10d}", f"  PNEUMONIA {fn:8d} {tp:10d}"]
    assert tn + fp == fn + tp == 4 and results["accuracy"] == pytest.approx(test["accuracy"], abs=1e-6)
    assert results.pop("test_images_stored_as") == "128 x 128 RGB JPEG"
    model = persistence.load_keras_model(out / "models" / "pneumonia")
    x_test, y_test = xrays.load_xrays(tree, splits=("test",))["test"]
    again = scores.xray_metrics(model, x_test, y_test)
    assert again.pop("confusion_matrix") == results.pop("confusion_matrix") and again == pytest.approx(results)


def test_a_tree_without_val_validates_on_the_test_images(tmp_path):
    import train

    tree = tmp_path / "chest_xray"
    shutil.copytree(XRAYS, tree, ignore=shutil.ignore_patterns("val"))
    assert train.settings_for("pneumonia", data_dir=tree).validation == "test"
    assert train.settings_for("pneumonia", data_dir=XRAYS).validation == "val"


def test_evaluate_writes_the_xray_table_and_figures_with_the_data_sets_credit(xray_run, tmp_path, capsys):
    import evaluate

    tree, out, _ = xray_run
    results = tmp_path / "results"
    shutil.copytree(out / "models", results / "models")
    assert evaluate.main([str(results), "--data-dir", str(tree)]) == 0
    saved = json.loads((results / "models" / "pneumonia.history.json").read_text())["test"]["metrics"]
    report = (results / "RESULTS.md").read_text()
    (tn, fp), (fn, tp) = saved["confusion_matrix"]
    row = (f"| pneumonia | 8 | {saved['accuracy'] * 100:.2f}% | {saved['precision']:.3f} | {saved['recall']:.3f} | "
           f"{saved['f1']:.3f} | {saved['specificity']:.3f} | {saved['roc_auc']:.3f} | [[{tn}, {fp}], [{fn}, {tp}]] |")
    assert row in report  # what evaluate.py measures again is what train.py recorded
    assert "## Chest X-rays (ARN PW4, part 2)" in report and "(Kermany et al. 2018, CC BY 4.0), stored 128 x 128 " \
        "RGB JPEG: a copy re-saved at one size" in report
    assert "pneumonia's error rate: on the test radiographs of the 'Chest X-Ray Images (Pneumonia)'" in report
    for figure in ("history", "confusion", "roc", "errors"):
        assert (results / "plots" / f"pneumonia_{figure}.png").stat().st_size > 10_000, figure
    assert f"Precision : {saved['precision']:.4f}" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_without_the_data_set_says_where_to_get_it_and_keeps_the_recorded_row(xray_run, tiny_run, tmp_path,
                                                                                       capsys):
    import evaluate

    _, out, _ = xray_run
    results = tmp_path / "results"
    shutil.copytree(out / "models", results / "models")
    shutil.copytree(tiny_run[0] / "models", results / "models", dirs_exist_ok=True)
    recorded = json.loads((results / "models" / "pneumonia.history.json").read_text())
    recorded["config"]["data_dir"] = str(tmp_path / "gone")  # the tree it was trained on is not on this machine
    (results / "models" / "pneumonia.history.json").write_text(json.dumps(recorded))
    assert evaluate.main([str(results), "--test-limit", "300"]) == 0  # the other pairs still evaluate
    captured = capsys.readouterr()
    (line,) = [line for line in captured.err.splitlines() if "pneumonia" in line]
    assert line.startswith(f"evaluate.py: {results / 'models' / 'pneumonia'}: its test images ({tmp_path / 'gone'}) "
                           "are not here")
    assert "'Chest X-Ray Images (Pneumonia)' data set (Kermany et al. 2018, CC BY 4.0" in line
    assert line.endswith("and pass --data-dir DIR, the folder that holds its train/ and test/")
    assert f"Model score : {recorded['test']['accuracy'] * 100:.2f}%" in captured.out
    assert f"| pneumonia | 8 | {recorded['test']['accuracy'] * 100:.2f}% |" in (results / "RESULTS.md").read_text()
    assert "| small |" in (results / "RESULTS.md").read_text()
    assert not (results / "plots" / "pneumonia_roc.png").exists()  # no figure from predictions it could not make
    assert evaluate.main([str(results), "--data-dir", str(tmp_path / "gone")]) == 1  # a folder given that is not there
    assert f"--data-dir {tmp_path / 'gone'}: no such directory" in capsys.readouterr().err


class FitReached(Exception):
    """Raised by the stand-in for model.fit once it has read what train.py gave it."""


def test_class_weights_balance_an_unbalanced_tree_in_what_reaches_fit(tmp_path, monkeypatch):
    """3 NORMAL and 12 PNEUMONIA training images: each NORMAL image weighs 15 / (2 x 3) = 2.5 in the loss, each
    PNEUMONIA one 15 / (2 x 12) = 0.625 (the ARN notebook's weights from the class counts), in the batches
    model.fit itself reads, every image once per epoch."""
    import keras

    import train

    tree = make_xray_tree(tmp_path / "xray")
    for path in sorted((tree / "train" / "normal").iterdir())[3:]:
        path.unlink()
    seen = []

    def fit(model, *args, **kwargs):
        batches = kwargs.get("x", args[0] if args else None)
        for batch in batches:
            images, labels, weights = (keras.ops.convert_to_numpy(part) for part in batch)
            seen.extend(zip(labels.reshape(-1).tolist(), weights.reshape(-1).tolist()))
        raise FitReached

    monkeypatch.setattr(keras.Model, "fit", fit)
    with pytest.raises(FitReached):
        train.train_and_evaluate(train.settings_for("pneumonia", data_dir=tree, epochs=1, batch_size=4),
                                 out=tmp_path / "out", verbose=0)
    assert sorted(seen) == [(0.0, 2.5)] * 3 + [(1.0, 0.625)] * 12
