"""train.py: one epoch on a slice through the same function, determinism, the command line."""

import csv
import json

import numpy as np
import pytest

import cli
import models
import history
import persistence
import train
from conftest import last_line, run_script


def test_one_epoch_on_a_slice_writes_pair_and_history(tiny_run):
    out, result = tiny_run
    models_dir = out / "models"
    names = sorted(p.name for p in models_dir.iterdir())
    assert names == ["small.history.csv", "small.history.json", "small.json", "small.weights.h5"]
    history = json.loads((models_dir / "small.history.json").read_text())
    assert history["config"]["model"] == "small" and history["config"]["train_images"] == 600
    assert history["config"]["batch_size"] == 200 and history["config"]["normalize"] is True
    (epoch,) = history["epochs"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(epoch) and epoch["seconds"] > 0
    assert history["test"]["error_rate"] == result["error_rate"]
    # The last epoch's val_accuracy is the test accuracy: the test set is the validation data.
    assert epoch["val_accuracy"] == result["test_accuracy"]
    rows = list(csv.DictReader(open(models_dir / "small.history.csv")))
    assert len(rows) == 1 and float(rows[0]["val_loss"]) == epoch["val_loss"]
    assert 0 < result["error_rate"] < 90  # one epoch on 600 images already beats chance (90% error)


def test_saved_pair_is_channels_first_and_computes_what_was_trained(tiny_run):
    out, result = tiny_run
    loaded = persistence.load_keras_model(out / "models" / "small")
    assert loaded.input_shape == (None, 1, 28, 28)
    for saved, trained in zip(loaded.get_weights(), result["model"].get_weights()):
        np.testing.assert_array_equal(saved, trained)


def test_help_shows_models_and_defaults():
    result = run_script("train.py", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for expected in ("small_unnormalized", "large_original", "(default: 7)", "(default: results)", "(default: auto)"):
        assert expected in text


def test_unknown_model_is_one_line_exit_2():
    result = run_script("train.py", "--model", "huge")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "unknown model 'huge'; choose one of: small_unnormalized" in result.stderr


def test_negative_slice_size_is_one_line_exit_2():
    result = run_script("train.py", "--model", "small", "--slice-size", "-5")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "--slice-size: -5 is negative" in result.stderr


def test_slices_and_distribute_together_are_refused_before_training(tmp_path):
    with pytest.raises(cli.UsageError, match="--slice-size works for the MNIST recipes, without --distribute"):
        train.train_and_evaluate("small", out=tmp_path, slice_size=20, distribute=True)
    assert not (tmp_path / "models").exists()


def test_unwritable_output_dir_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_script("train.py", "--model", "small", "--out", blocker / "results")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot write there" in last_line(result.stderr) and str(blocker) in last_line(result.stderr)


def test_model_all_and_seeds_flags():
    args = train.parse_args(["--model", "all", "--seeds", "7,8,9"])
    assert "pneumonia" not in args.models and {"small", "large_original", "mlp3", "hog_mlp2"} <= set(args.models)
    assert "best" not in args.models and train.parse_args(["--model", "ladder"]).models == models.LADDER[1:]
    assert args.seeds == [7, 8, 9]
    assert "pneumonia" in train.parse_args(["--model", "all", "--data-dir", "x"]).models
    assert train.parse_args(["--model", "small,medium"]).models == ["small", "medium"]
    assert history.run_name("small", 7) == "small" and history.run_name("small", 8) == "small_seed8"
