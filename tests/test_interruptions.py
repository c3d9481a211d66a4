"""Interrupted runs resume to the same weights; kills during a save and NaN losses lose nothing."""

import json
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import data
import persistence
import train
from conftest import ROOT, RUN, interrupt_after_epoch, last_line, train_run
from labtools import console, errors, files

def test_resume_with_other_settings_or_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train_run("medium", tmp_path, callbacks=[interrupt_after_epoch(1)], **RUN)
    with pytest.raises(errors.UsageError, match=r"^--resume: \S+ was made with other settings \(batch_size\)"):
        train_run("medium", tmp_path, resume=True, batch_size=50, **RUN)
    checkpoint = tmp_path / "checkpoints" / "medium.npz"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(errors.UsageError, match=r"medium\.npz is damaged"):
        train_run("medium", tmp_path, resume=True, **RUN)
    with pytest.raises(errors.UsageError, match="no checkpoint"):
        train_run("small", tmp_path, resume=True, **RUN)


class PoisonWeights(keras.callbacks.Callback):
    """Makes the loss NaN from the second epoch on, as a diverging run would."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            kernel = self.model.layers[-1].kernel
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))


def test_nan_loss_stops_keeps_the_last_good_epoch_and_saves_nothing(tmp_path):
    with pytest.raises(errors.UsageError, match=r"NaN or infinite in epoch 2; the last good epoch \(1\) is kept .* "
                                               r"Normalise the inputs"):
        train_run("small", tmp_path, callbacks=[PoisonWeights()], **RUN)
    assert not (tmp_path / "models" / "small.json").exists()
    checkpoint = tmp_path / "checkpoints" / "small.npz"
    assert checkpoint.is_file()
    state = json.loads(str(np.load(checkpoint)["state"]))
    assert [row["epoch"] for row in state["epochs"]] == [1]


SAVER = """
import sys, numpy as np, models, persistence
model = models.build_model("small")
version = 0
while True:
    version += 1
    model.set_weights([np.full(w.shape, version, np.float32) for w in model.get_weights()])
    persistence.save_keras_model(model, sys.argv[1])
    print(version, flush=True)
"""


@pytest.mark.slow
def test_kill_9_during_saves_never_destroys_the_pair(tmp_path):
    target = tmp_path / "pair"
    for delay in (0.3, 0.9, 1.7):
        process = subprocess.Popen([sys.executable, "-c", SAVER, str(target)], cwd=ROOT, stdout=subprocess.PIPE,
                                   text=True)
        process.stdout.readline()  # one save done: a pair exists
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        weights = persistence.load_keras_model(target).get_weights()
        versions = {float(np.unique(w)[0]) for w in weights}
        assert len(versions) == 1 and all(len(np.unique(w)) == 1 for w in weights)  # one whole save, not a mix


def test_full_disk_is_one_line_and_keeps_the_previous_pair(tmp_path, monkeypatch, capsys):
    train_run("small", tmp_path, epochs=1, train_limit=200, test_limit=100)
    before = persistence.load_keras_model(tmp_path / "models" / "small").get_weights()

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--model", "small", "--epochs", "1", "--train-limit", "300", "--test-limit", "100",
                    "--out", str(tmp_path), "--quiet"])
    assert "No space left on device; nothing was saved" in str(exit_info.value)
    monkeypatch.undo()
    after = persistence.load_keras_model(tmp_path / "models" / "small").get_weights()
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_ctrl_c_is_one_line_naming_resume(tmp_path):
    process = subprocess.Popen([sys.executable, "train.py", "--model", "small", "--epochs", "50", "--train-limit",
                                "2000", "--out", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               # a shell's background job inherits SIGINT ignored; a terminal's Ctrl-C is not
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in process.stdout:  # wait for a finished epoch
        if "val_accuracy" in line:
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1 and "Traceback" not in stderr
    assert "interrupted" in last_line(stderr) and "--resume" in last_line(stderr)
    assert (tmp_path / "checkpoints" / "small.npz").is_file()
