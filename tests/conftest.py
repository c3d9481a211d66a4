"""Shared fixtures: the repository on sys.path, quiet TensorFlow, one tiny trained pair."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Derived data (the MNIST cache, HOG features of test slices) goes to a temporary cache, not the user's.
os.environ["MNIST_LABS_CACHE"] = tempfile.mkdtemp(prefix="mnist-labs-tests-")
atexit.register(shutil.rmtree, os.environ["MNIST_LABS_CACHE"], ignore_errors=True)
# The environment before labtools is imported: test_imports.py starts its fresh interpreters from it, so that a
# variable the package sets in this process is seen as set by the import, not inherited.
ENVIRONMENT_BEFORE_LABTOOLS = dict(os.environ)

from labtools import backend  # noqa: E402

backend.training_environment()  # what the scripts set before the backend starts (console.start)


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true",
                     help="also run the tests marked slow (long end-to-end checks; .ci/run runs them)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long end-to-end check, run with --slow (as .ci/run does)")


def pytest_collection_modifyitems(config, items):
    """Without --slow, the slow tests are deselected: the README's test command stays within a few minutes on two
    cores, and CI runs the rest (`pytest -q --slow -m slow`)."""
    if config.getoption("--slow"):
        return
    slow = [item for item in items if "slow" in item.keywords]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if "slow" not in item.keywords]


def run_script(*args, cwd=ROOT, env=None):
    """Run one of the project's scripts in a subprocess, as a student would."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def train_run(name, out, verbose=0, callbacks=(), **settings):
    """train.py's run of recipe `name` with these settings (train.settings_for's arguments), saved under out."""
    import train

    return train.train_and_evaluate(train.settings_for(name, **settings), out=out, verbose=verbose,
                                    callbacks=callbacks)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The small CNN trained for one epoch on 600 images, saved under a temporary results dir."""
    out = tmp_path_factory.mktemp("results")
    return out, train_run("small", out, epochs=1, train_limit=600, test_limit=300)


def make_xray_tree(root, per_class=12, class_names=("normal", "PNEUMONIA")):
    """A tiny tree of the standard layout: dark images are NORMAL, bright ones PNEUMONIA."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for label, class_name in enumerate(class_names):
            folder = root / split / class_name
            folder.mkdir(parents=True)
            for i in range(per_class if split != "val" else 2):
                base = 60 + 120 * label
                pixels = np.clip(rng.normal(base, 20, (48, 40)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{split}_{i}.png")
    return root


RUN = dict(epochs=3, train_limit=400, test_limit=100)  # a short run that can be interrupted


def interrupt_after_epoch(epoch):
    """A callback that presses Ctrl-C right after epoch `epoch`'s checkpoint is written."""
    import keras

    class InterruptAfterEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, finished, logs=None):
            if finished + 1 == epoch:
                raise KeyboardInterrupt

    return InterruptAfterEpoch()


def predict_nchw(model, images):
    """model's outputs for (N, 1, 28, 28) images on any CPU: through its channels_last twin when it is
    channels_first (TensorFlow runs channels_first convolutions only where it uses oneDNN)."""
    from labtools import layout

    if layout.model_data_format(model) == "channels_first":
        model, images = layout.channels_last_copy(model), images.transpose(0, 2, 3, 1)
    return model.predict(images, verbose=0)


def numpy_forward(model, images):
    """A channels_first Sequential model (Conv2D valid, MaxPooling2D 2x2, Dropout, Flatten, Dense; relu, softmax)
    computed by hand in NumPy on (N, C, H, W) images, independently of TensorFlow's layouts."""
    import numpy as np

    x = images.astype(np.float64)
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            kernel, bias = (w.astype(np.float64) for w in layer.get_weights())  # (kh, kw, in, out)
            kh, kw = kernel.shape[:2]
            height, width = x.shape[2] - kh + 1, x.shape[3] - kw + 1
            windows = np.stack([x[:, :, i: i + height, j: j + width] for i in range(kh) for j in range(kw)], axis=-1)
            x = np.einsum("nchwk,kcf->nfhw", windows, kernel.reshape(kh * kw, *kernel.shape[2:])) \
                + bias[None, :, None, None]
        elif kind == "MaxPooling2D":
            n, c, h, w = x.shape
            x = x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
        elif kind == "Flatten":
            # Keras 3's Flatten(channels_first) flattens in (rows, cols, channels) order; channels_last keeps C,H,W
            x = (x.transpose(0, 2, 3, 1) if layer.data_format == "channels_first" else x).reshape(len(x), -1)
        elif kind == "Dense":
            kernel, bias = (w.astype(np.float64) for w in layer.get_weights())
            x = x @ kernel + bias
        elif kind != "Dropout":
            raise ValueError(f"numpy_forward: no {kind}")
        activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
        if activation == "relu":
            x = np.maximum(x, 0)
        elif activation == "softmax":
            x = np.exp(x - x.max(axis=1, keepdims=True))
            x /= x.sum(axis=1, keepdims=True)
    return x
