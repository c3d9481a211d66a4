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


def run_script(*args, cwd=ROOT, env=None):
    """Run one of the project's scripts in a subprocess, as a student would."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The small CNN trained for one epoch on 600 images, saved under a temporary results dir."""
    import train

    out = tmp_path_factory.mktemp("results")
    result = train.train_and_evaluate("small", out=out, epochs=1, train_limit=600, test_limit=300, verbose=0)
    return out, result
