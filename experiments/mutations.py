"""Does the default test suite notice a careless edit? Each mutation below is one such edit, made by hand once; this
script makes each in a copy of the repository, runs the README's test command there (`pytest -q`, stopping at the
first failure) and says which test caught it, or that none did.

    python experiments/mutations.py               # every mutation: about 2 minutes each, 3 when none catches it
    python experiments/mutations.py --only 3,7    # some of them
    python experiments/mutations.py --list        # what they are

Output: results/logs/mutations.txt (with --only: the terminal only). The copy is made once, in a temporary
folder, from the files git knows and results/models/; the repository itself is never edited.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

import logs  # noqa: E402

# (what a careless edit does, file, text before, text after): the text before occurs once in the file
MUTATIONS = [
    ("medium loses its Dropout", "models.py",
     '    model.add(layers.Dropout(0.2))\n    model.add(layers.Flatten(data_format=data_format))\n'
     '    model.add(layers.Dense(128, activation="relu"))\n    model.add(layers.Dense(num_classes',
     '    model.add(layers.Flatten(data_format=data_format))\n'
     '    model.add(layers.Dense(128, activation="relu"))\n    model.add(layers.Dense(num_classes'),
    ("large's Dropout 0.2 becomes 0.5", "models.py",
     "        model.add(layers.MaxPooling2D(pool_size=(2, 2), data_format=data_format))\n"
     "    model.add(layers.Dropout(0.2))",
     "        model.add(layers.MaxPooling2D(pool_size=(2, 2), data_format=data_format))\n"
     "    model.add(layers.Dropout(0.5))"),
    ("small's first convolution loses its relu", "models.py",
     'model.add(layers.Conv2D(64, (3, 3), activation="relu", data_format=data_format))',
     'model.add(layers.Conv2D(64, (3, 3), data_format=data_format))'),
    ("mlp2's Dropout 0.5 becomes 0.2", "models.py",
     '    model.add(layers.Dense(512, activation="sigmoid"))\n    model.add(layers.Dropout(0.5))\n'
     '    model.add(layers.Dense(num_classes',
     '    model.add(layers.Dense(512, activation="sigmoid"))\n    model.add(layers.Dropout(0.2))\n'
     '    model.add(layers.Dense(num_classes'),
    ("arn_cnn's Dense 25 relu becomes tanh", "models.py", 'layers.Dense(25, activation="relu")',
     'layers.Dense(25, activation="tanh")'),
    ("pneumonia loses its Rescaling(1/255)", "models.py", "    model.add(layers.Rescaling(1 / 255))\n", ""),
    ("hog_mlp1's HOG: 2 orientations, 2 px cells (also 392 features)", "models.py",
     'input_options={"orientations": 8, "pixels_per_cell": 4}',
     'input_options={"orientations": 2, "pixels_per_cell": 2}'),
    ("small's optimizer adam becomes rmsprop", "models.py",
     '    model.add(layers.Dense(num_classes, activation="softmax"))\n    # compile model\n'
     '    model.compile(loss="categorical_crossentropy", optimizer="adam"',
     '    model.add(layers.Dense(num_classes, activation="softmax"))\n    # compile model\n'
     '    model.compile(loss="categorical_crossentropy", optimizer="rmsprop"'),
    ("best trains 10 epochs instead of 12", "labtools/ladder.py", "and 12 epochs\", {}, 12,",
     "and 12 epochs\", {}, 10,"),
    ("get_data_mnist divides by 256", "data.py", "        X_train /= 255\n", "        X_train /= 256\n"),
    ("the holdout is 4,000 images", "labtools/runs.py", "HOLDOUT_IMAGES = 5000", "HOLDOUT_IMAGES = 4000"),
    ("the training order ignores the epoch", "labtools/batches.py", "epoch & 0xFFFFFFFF, epoch >> 32]]", "0, 0]]"),
    ("the X-ray class weights swapped", "train.py", "xrays.class_weights(counts)[int(label)]",
     "xrays.class_weights(counts[::-1])[int(label)]"),
    ("a checkpoint forgets the optimizer", "labtools/runs.py",
     '        arrays.update({f"optimizer_{i}": v.numpy() for i, v in enumerate(model.optimizer.variables)})\n', ""),
    ("the evaluation cache ignores the weights file", "labtools/grading.py",
     "for path in (*saved_models.model_files(filename), Path(",
     "for path in (saved_models.model_files(filename)[0], Path("),
    ("the pixel-scale sign test's threshold 0.001 becomes 0.5", "labtools/pixel_scale.py", "SIGNIFICANCE = 0.001",
     "SIGNIFICANCE = 0.5"),
    ("a save over an existing pair keeps the old JSON", "persistence.py", "json_file.write_text(model_json)",
     "json_file.write_text(json_path.read_text() if json_path.is_file() else model_json)"),
    ("Theano kernels are not flipped", "labtools/saved_models.py",
     "arrays = [kernel[(slice(None, None, -1),) * (kernel.ndim - 2)], *arrays[1:]]", "arrays = [kernel, *arrays[1:]]"),
    ("Keras 2.0's Flatten keeps no stored order", "labtools/saved_models.py",
     'layer_config["data_format"] = "channels_last"  # Keras 2.0', 'pass  # Keras 2.0'),
    ("the error rate is printed as the score", "evaluate.py", '"Model error rate : %.2f%%" % (100 - scores[1] * 100)',
     '"Model error rate : %.2f%%" % (scores[1] * 100)'),
    ("importing labtools sets another environment variable", "labtools/backend.py",
     "NAME = os.environ[\"KERAS_BACKEND\"].strip().lower()\n",
     "NAME = os.environ[\"KERAS_BACKEND\"].strip().lower()\nos.environ.setdefault(\"TF_ENABLE_ONEDNN_OPTS\", \"0\")\n"),
    ("the figures choose matplotlib's backend at import", "labtools/plots.py", "import numpy as np\n",
     "import matplotlib\nimport numpy as np\n\nmatplotlib.use(\"Agg\")\n"),
    ("the package imports a sheet file", "labtools/report.py", "from labtools.recipes import BEYOND\n",
     "from labtools.recipes import BEYOND\nfrom models import SHEET_FORMAT  # noqa: F401\n"),
    ("a change to Keras skips its check", "labtools/keras_patches.py", "            if found != parameters:",
     "            if False:"),
    ("--help shows (default: None) again", "labtools/console.py", "            if action.default is None:",
     "            if False:"),
    ("predict.py takes dark ink for a photo whose mean is over 127", "predict.py", "    dark = -low > high\n",
     "    dark = gray.mean() > 127\n"),
    ("integrated gradients forget the (pixel - black) factor", "labtools/inside.py",
     "found.append(batch * gradients", "found.append(1 * gradients"),
    ("Grad-CAM keeps its negative values", "labtools/inside.py",
     "cam = np.maximum((weights * activations).sum(axis=-1), 0)", "cam = (weights * activations).sum(axis=-1)"),
    ("the deletion check deletes one pixel too many at each step", "labtools/inside.py",
     "deleted = np.where(ranks < round", "deleted = np.where(ranks <= round"),
    ("the deletion check breaks ties by position", "labtools/inside.py",
     "np.stack([np.lexsort((rng.random(flat.shape[1]), -row)) for row in flat])",
     "np.stack([np.argsort(-row, kind=\"stable\") for row in flat])"),
]


def repository_copy(destination):
    """The files git knows (committed or not, not ignored), plus results/models/, under destination."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    shutil.copytree(ROOT / "results" / "models", destination / "results" / "models", dirs_exist_ok=True)


def first_failure(output):
    """The first test pytest reported failed or erroring, from its short summary."""
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0].split(" ", 1)[1]
    return None


def run_mutation(copy, index, mutation, cache):
    what, relative, before, after = mutation
    path = copy / relative
    original = path.read_text()
    if original.count(before) != 1:
        return f"{index:2d}. {what}: NOT APPLIED (the text before occurs {original.count(before)} times in {relative})"
    path.write_text(original.replace(before, after))
    started = time.perf_counter()
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"], cwd=copy,
                                capture_output=True, text=True, env={**os.environ, "MNIST_LABS_CACHE": cache})
    finally:
        path.write_text(original)
    seconds = time.perf_counter() - started
    caught = first_failure(result.stdout)
    if result.returncode == 0:
        return f"{index:2d}. {what}: NOT CAUGHT ({seconds:.0f} s)"
    return f"{index:2d}. {what}: caught by {caught or 'pytest exit ' + str(result.returncode)} ({seconds:.0f} s)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated numbers of the mutations to make (default: all)")
    parser.add_argument("--list", action="store_true", help="print the mutations and stop")
    args = parser.parse_args()
    chosen = [int(n) for n in args.only.split(",")] if args.only else list(range(1, len(MUTATIONS) + 1))
    if args.list:
        for index in chosen:
            print(f"{index:2d}. {MUTATIONS[index - 1][0]} ({MUTATIONS[index - 1][1]})")
        return 0
    log = logs.tee("mutations.txt") if not args.only else None
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    print(f"# python experiments/mutations.py at {commit}: each edit made alone, then pytest -q -x (the default suite)")
    caught = 0
    with tempfile.TemporaryDirectory(prefix="mutations-") as folder:
        copy, cache = Path(folder) / "repository", str(Path(folder) / "cache")
        repository_copy(copy)
        for index in chosen:
            line = run_mutation(copy, index, MUTATIONS[index - 1], cache)
            caught += "caught by" in line
            print(line, flush=True)
    print(f"# caught: {caught} of {len(chosen)}")
    if log is not None:
        log.__exit__()
    return 0


if __name__ == "__main__":
    sys.exit(main())
