"""What importing the sheet's five files does (nothing but choose the Keras backend, and models.py's one visible
change to Keras), which way the imports go, and what a Keras release that changed the functions the project replaces
does to them (nothing: a warning, and Keras left as it is)."""

import ast
import json
import os
import subprocess
import sys

import pytest

from conftest import ENVIRONMENT_BEFORE_LABTOOLS, ROOT
from labtools import backend

SHEET_FILES = ("data", "models", "train", "evaluate", "persistence")

# In a fresh interpreter: import one of the five files and report what changed: environment variables, open file
# descriptors (and where 2 points), matplotlib's backend, and which Keras backend functions are no longer Keras's.
IMPORT_ONE = r"""
import json, os, re, sys
internals = {"tensorflow": ("keras.src.backend.tensorflow.nn", ["conv", "depthwise_conv", "separable_conv",
                                                                 "conv_transpose", "max_pool"]),
             "jax": ("keras.src.backend.jax.nn", ["conv", "max_pool"]),
             "torch": ("keras.src.backend.torch.nn", ["conv", "max_pool", "_transpose_spatial_inputs"])}

def descriptors():  # {descriptor: what it is open on}, pipe and socket numbers left out
    found = {}
    for fd in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        try:
            found[fd] = re.sub(r"\[\d+\]", "[]", os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the listing's own descriptor, closed since
            pass
    return found

environment, fds, stderr = dict(os.environ), descriptors(), os.fstat(2)
import importlib
module = importlib.import_module(sys.argv[1])
name = os.environ["KERAS_BACKEND"]
kernel_module = importlib.import_module(internals[name][0])
replaced = [f for f in internals[name][1] if getattr(kernel_module, f).__module__ != internals[name][0]]
import matplotlib
print(json.dumps({"environment": {k: v for k, v in os.environ.items() if environment.get(k) != v},
                  "removed": [k for k in environment if k not in os.environ],
                  "fds": {fd: what for fd, what in descriptors().items() if fds.get(fd) != what},
                  "closed": sorted(set(fds) - set(descriptors())),
                  "stderr": os.fstat(2) == stderr, "matplotlib": matplotlib.rcParams._get_backend_or_none(),
                  "replaced": replaced,
                  "backend_chosen_here": "KERAS_BACKEND" not in environment}))
"""


def start_import(name, choose=True):
    """A fresh interpreter importing module `name` (IMPORT_ONE), started from the environment before labtools was
    imported; choose: KERAS_BACKEND unset where the backend left to choose is the suite's, else set to it."""
    environment = {key: value for key, value in ENVIRONMENT_BEFORE_LABTOOLS.items() if key != "KERAS_BACKEND"}
    if not choose or backend.NAME != next(each for each in backend.BACKENDS if backend.installed(each)):
        environment["KERAS_BACKEND"] = backend.NAME
    return subprocess.Popen([sys.executable, "-c", IMPORT_ONE, name], cwd=ROOT, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def what_changed(process):
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def imports():
    """What importing Keras alone ("keras": its framework sets TF2_BEHAVIOR and others) and each of the five files
    changed, each in its own fresh interpreter, all started at once: the framework's import is most of the time."""
    started = {"keras": start_import("keras", choose=False), **{name: start_import(name) for name in SHEET_FILES}}
    try:
        return {name: what_changed(process) for name, process in started.items()}
    finally:
        for process in started.values():  # after a failure: none left running
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.mark.parametrize("name", SHEET_FILES)
def test_importing_a_sheet_file_changes_nothing_but_the_chosen_backend(name, imports):
    found = imports[name]
    chosen = {"KERAS_BACKEND": backend.NAME} if found["backend_chosen_here"] else {}
    assert found["environment"] == {**imports["keras"]["environment"], **chosen}
    assert found["removed"] == [] and found["stderr"]
    # descriptors as Keras and its framework leave them (Debian's Python 3.14 keeps libffi open after ctypes)
    assert found["fds"] == imports["keras"]["fds"] and found["closed"] == imports["keras"]["closed"] == []
    assert found["matplotlib"] is None or "MPLBACKEND" in os.environ  # nobody chose matplotlib's backend
    # models.py's one call: TensorFlow's channels_first convolutions (the sheet's own calls need it); nothing else
    expected = ["conv", "depthwise_conv", "separable_conv", "conv_transpose"] \
        if backend.NAME == "tensorflow" and name in ("models", "train", "evaluate", "persistence") else []
    assert found["replaced"] == expected


def test_the_five_files_import_the_package_and_the_package_imports_none_of_them():
    package_files = sorted((ROOT / "labtools").glob("*.py"))
    assert len(package_files) >= 10
    for path in package_files:
        tree = ast.parse(path.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {*SHEET_FILES, "predict", "visualize"}, path.name
    lines = sum(len((ROOT / f"{name}.py").read_text().splitlines()) for name in SHEET_FILES)
    assert lines <= 1000, f"the five files hold {lines} lines"


# In a fresh interpreter: Keras's function as a later release might have it (another signature), then the project's
# code that would replace it; what is printed tells whether Keras was left alone, and the warnings.
UPGRADED_KERAS = r"""
import importlib, json, sys, warnings
name, module_name, function_name = sys.argv[1:4]
module = importlib.import_module(module_name)
def changed(inputs, kernel, *, layout="nhwc"):  # a Keras that renamed data_format
    return "keras's own"
setattr(module, function_name, changed)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import models  # on TensorFlow: its one change, at import
    from labtools import keras_patches
    made = keras_patches.faster_training() if name != "tensorflow" else keras_patches.channels_first_convolutions()
print(json.dumps({"left_alone": getattr(module, function_name) is changed, "made": made,
                  "warnings": [str(w.message) for w in caught if w.category is keras_patches.KerasInternalsChanged]}))
"""
CHANGED = {"tensorflow": ("keras.src.backend.tensorflow.nn", "conv"), "jax": ("keras.src.backend.jax.nn", "max_pool"),
           "torch": ("keras.src.backend.torch.nn", "_transpose_spatial_inputs")}


def test_a_keras_release_that_changed_a_replaced_function_is_left_alone_with_one_warning():
    module_name, function_name = CHANGED[backend.NAME]
    result = subprocess.run([sys.executable, "-c", UPGRADED_KERAS, backend.NAME, module_name, function_name],
                            cwd=ROOT, env={**os.environ, "KERAS_BACKEND": backend.NAME}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["left_alone"] and found["made"] is False
    assert len(found["warnings"]) == 1 and function_name in found["warnings"][0] and "leaves it as it is" in \
        found["warnings"][0]


def test_the_changes_are_made_on_the_keras_they_were_written_for():
    from labtools import keras_patches

    import models  # noqa: F401  (on TensorFlow: its one change)

    module_name, function_name = CHANGED[backend.NAME]
    made = keras_patches.faster_training() if backend.NAME != "tensorflow" else \
        keras_patches.channels_first_convolutions()
    module = __import__(module_name, fromlist=[function_name])
    assert made and getattr(getattr(module, function_name), keras_patches.MARK)
    assert keras_patches.channels_first_convolutions() == (backend.NAME == "tensorflow")  # again: nothing more
