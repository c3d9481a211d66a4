"""Evaluating saved models on the MNIST test set, as evaluate.py does for a results folder or a teacher's desk:
finding the models a path names, each model's inputs and pixel scale, the sheet's lines and a row for the report,
its figures, and an evaluation cache so that an unchanged model is not evaluated again.

A model is a json + h5 pair (this project's, or Keras 2's), a Keras 3 .keras archive or a full-model .h5 file
(saved_models.py); its inputs are shaped to what it takes and, where nothing recorded how it was trained, its
pixel scale is chosen from the data (choose_pixel_scale).
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from labtools import (backend, files, history, layout, pixel_scale, plots, report, saved_models, scores, tf_formats,
                      xrays)
from labtools.errors import PairError, UsageError, short_error

PREDICT_BATCH_SIZE = 1000  # test images per predict call
NEAR_CHANCE_ERROR = 80.0  # % error: chance is 90%; a model trained on pixels 0..255 and fed /255 lands here


def find_pairs(paths):
    """The saved models that paths name: a directory's (models_in), a pair's name, any of its files, a .keras
    archive, a full-model .h5, each as model_name names it. UsageError for a path that names nothing."""
    found = []
    for path in map(Path, paths):
        if path.is_dir() and not tf_formats.is_saved_model(path):
            found.extend(models_in(models_dir(path)))
            continue
        held_in = saved_models.model_files(path)
        if not any(p.exists() for p in held_in):
            raise UsageError(f"{path}: no such directory, pair ({held_in[0].name} + weights) or model file")
        found.append(model_name(path))
    return found


def model_name(path):
    """A model named from any of its files: a pair by its name without extension, a single-file model as it is."""
    held_in = saved_models.model_files(path)
    if tf_formats.is_saved_model(path):
        return Path(path)
    return held_in[0] if len(held_in) == 1 else held_in[0].with_name(held_in[0].name[: -len(saved_models.JSON_SUFFIX)])


def models_in(directory):
    """Every saved model in directory and in its subfolders one level down (a course platform's download gives
    one folder per student): pairs (name.json + name.weights.h5 or name.h5), .keras archives, .h5 files that are
    not a pair's weights, TensorFlow SavedModel folders; sorted. Loading says what is wrong with a file that is
    not a model (a JSON without weights, weights without JSON): the teacher sees every file that was handed in."""
    directory = Path(directory)
    folders = [directory, *sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))]
    found = set()
    for folder in folders:
        if folder != directory and tf_formats.is_saved_model(folder):
            found.add(folder)
            continue
        for path in folder.iterdir():
            if path.name.startswith(".") or not path.is_file() or path.name.endswith(".history.json"):
                continue
            if path.suffix in (saved_models.JSON_SUFFIX, saved_models.KERAS_SUFFIX, *saved_models.HDF5_SUFFIXES,
                               saved_models.CHECKPOINT_SUFFIX):
                found.add(model_name(path))
    return sorted(found)


def display_name(filename, paths):
    """How the table names a model: its name, with its folder when it lies in a subfolder of a directory given."""
    filename = Path(filename)
    for path in map(Path, paths):
        if path.is_dir():
            root = models_dir(path)
            if filename.parent.parent == root:
                return f"{filename.parent.name}/{filename.name}"
    return filename.name


def models_dir(directory):
    """A results directory keeps its pairs in models/; a directory of pairs is taken as it is."""
    directory = Path(directory)
    return directory / "models" if (directory / "models").is_dir() else directory


class TestSets:
    """The MNIST test set, loaded once per normalisation (get_data_mnist, from data.py, the caller's) and prepared
    once per input kind (prepare_inputs); a chest X-ray tree's test images, read once per tree."""

    def __init__(self, get_data_mnist, prepare_inputs, test_limit=None):
        self.get_data_mnist, self.prepare_inputs, self.test_limit = get_data_mnist, prepare_inputs, test_limit
        self._test_sets, self._prepared, self._xrays = {}, {}, {}

    def xray_test_images(self, data_dir):
        """A chest X-ray tree's test images and labels (all of them: --test-limit would keep only NORMAL ones),
        their file names and how they are stored (xrays.xray_storage), read once per tree."""
        key = str(Path(data_dir).resolve())
        if key not in self._xrays:
            paths = [path for path, _ in xrays.xray_files(data_dir)[0]["test"]]
            images, labels = xrays.load_xrays(data_dir, splits=("test",))["test"]
            self._xrays[key] = images, labels, [path.name for path in paths], xrays.xray_storage(paths)
        return self._xrays[key]

    def get(self, normalize, input_kind, data_format, **input_options):
        """(model inputs, one-hot labels, (N, 1, 28, 28) images for the figures)."""
        key = (normalize, input_kind, data_format, tuple(sorted(input_options.items())))
        if key not in self._prepared:
            if normalize not in self._test_sets:
                _, (X_test, y_test), _ = self.get_data_mnist(normalize)
                self._test_sets[normalize] = X_test[: self.test_limit], y_test[: self.test_limit]
            X_test, y_test = self._test_sets[normalize]
            self._prepared[key] = (self.prepare_inputs(X_test, input_kind, data_format, **input_options), y_test,
                                   X_test)
        return self._prepared[key]


class EvaluationCache:
    """What evaluating each MNIST pair gave, kept between runs (in the project's cache, files.cache_dir()) under a
    key of all that decides it: the pair's and its history's bytes, the options, the backend and the versions.
    An unchanged pair is then neither loaded nor evaluated again, and its figures are redrawn only if one is
    missing; `evaluate.py --redraw` ignores what was kept."""

    VERSION = 3  # raise it when what evaluate_pair measures or draws changes

    def __init__(self, path=None, ignore=False):
        self.path = Path(path or files.cache_dir() / "evaluations.json")
        try:
            self.entries = {} if ignore else json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def key(self, filename, normalize, test_limit, files=None):
        digest = hashlib.sha256(json.dumps([self.VERSION, normalize, test_limit, backend.versions()]).encode())
        for code in (plots.__file__, __file__):  # how the figures are drawn and titled: a change there redraws them
            digest.update(Path(code).read_bytes())
        for path in (*(files or saved_models.model_files(filename)), Path(f"{filename}.history.json")):
            digest.update(path.read_bytes() if path.is_file() else b"-")
        return digest.hexdigest()

    def get(self, key, figures):
        entry = self.entries.get(key)
        return entry if entry and all(Path(path).is_file() for path in figures) else None

    def put(self, key, entry):
        self.entries[key] = entry

    def save(self):
        try:
            with files.atomic_write(self.path) as (temporary,):
                temporary.write_text(json.dumps(self.entries))
        except OSError:  # a cache that cannot be written costs time next run, nothing else
            pass


def figure_paths(plots_dir, run, run_history, mnist=True):
    """The figures draw_figures writes for a run."""
    if plots_dir is None:
        return []
    kinds = (["history"] if run_history.get("epochs") else []) + ["confusion"] + (["errors"] if mnist else [])
    return [str(Path(plots_dir) / f"{run}_{kind}.png") for kind in kinds]


def evaluate_pair(filename, test_sets, recipes, normalize=None, data_dir=None, plots_dir=None, cache=None,
                  run=None, files=None):
    """Load one saved model (a pair, a .keras archive, a full-model .h5), print the sheet's lines, draw its
    figures into plots_dir, return a result row.

    recipes: the registry (models.MODELS). normalize: None decides as load_run and choose_pixel_scale say. cache
    (an EvaluationCache): where an unchanged model's numbers were kept by an earlier run; they are printed and used
    again. run: its name in the tables. files: the model's files where they are not named after filename (a
    student's model.json + model_weights.h5).
    """
    run_history = history.read_history(filename) or {}
    config = run_history.get("config", {})
    run = run or Path(filename).name
    figures_name = run.replace("/", "_")
    key = cache.key(filename, normalize, test_sets.test_limit, files) if cache is not None else None
    entry = cache.get(key, figure_paths(plots_dir, figures_name, run_history)) if key else None
    print(f"== {filename if files is None else run}")
    if entry is not None:
        print_notes(entry)
        scores.print_score(entry["accuracy"])
        warn_near_chance(filename, entry["normalize"], entry["accuracy"])
        # the key is the files' bytes: a copy elsewhere (two students handing in the same file) is named as itself
        here = {"file": str(filename)} if entry["model"] in recipes else {"file": str(filename), "model": run}
        return result_row(run, {**entry, **here}, config, recipes)
    saved, recipe, trained_normalize = load_run(filename, recipes, run_history, files)
    model = saved.model
    xray, notes = None, {"writer": saved.writer, "input": str(tuple(model.input_shape[1:]))}
    if recipe is not None and recipe.input_kind == "xray":
        normalize = True  # the model rescales its own input
        test_loss, test_accuracy, xray = xrays.evaluate_xray(filename, model, run_history, data_dir,
                                                             test_sets.xray_test_images, plots_dir)
    else:
        runnable = channels_last(model, recipe)  # the model as this CPU can run it
        x_test, y_test, images, normalize, pixels = mnist_inputs(
            filename, runnable, recipe, trained_normalize if normalize is None else normalize, test_sets)
        if pixels:
            notes["pixels"] = pixels
        print_notes(notes)
        probabilities, logits = scores.as_probabilities(run_model(filename, runnable, x_test))
        if logits:
            notes["outputs"] = ("its outputs are not probabilities (no softmax at the end): scored by the largest, "
                                "the loss from their softmax")
            print(f"   {notes['outputs']}")
        # model.evaluate's two numbers, from the predictions that the figures need anyway
        test_loss, test_accuracy = scores.loss_and_accuracy(probabilities, y_test)
        scores.print_score(test_accuracy)
        warn_near_chance(filename, normalize, test_accuracy)
        labels, predictions = y_test.argmax(axis=1), probabilities.argmax(axis=1)
        matrix = plots.confusion_matrix(labels, predictions, y_test.shape[1])
        if plots_dir is not None:
            draw_figures(Path(plots_dir), figures_name, run_history, matrix, None, (images, labels, predictions))
    entry = {"model": recipe.name if recipe else run, "parameters": model.count_params(),
             "layers": layout.count_parameters(model)[0], "normalize": normalize, "test_loss": test_loss,
             "accuracy": test_accuracy, "metrics": xray, "file": str(filename), **notes}
    if key and xray is None:  # the X-ray tree is the user's and may change: evaluated every time
        cache.put(key, entry)
    return result_row(run, entry, config, recipes)


def mnist_inputs(filename, model, recipe, normalize, test_sets):
    """(inputs, one-hot labels, (N, 1, 28, 28) images, normalize, how the pixel scale was chosen or None): the MNIST
    test set as model takes it (input_layout; a model that takes no MNIST digit is a PairError naming the file), on
    the pixel scale normalize, or where that is None the one chosen from the data (choose_pixel_scale)."""
    try:
        input_kind, data_format = input_layout(model, recipe)
    except ValueError as error:
        raise PairError(f"{filename}: not an MNIST digit model: {error}") from None
    options = recipe.input_options if recipe else {}
    pixels = None
    if normalize is None:
        normalize, pixels = choose_pixel_scale(filename, model, test_sets, input_kind, data_format, options)
    return (*test_sets.get(normalize, input_kind, data_format, **options), normalize, pixels)


def channels_last(model, recipe):
    """The model computing in channels_last, where TensorFlow runs convolutions on every CPU; the weights carry
    over unchanged (layout.relayout). A model from elsewhere that cannot be moved (a layer that names an axis,
    say) computes as it was saved."""
    try:
        return layout.channels_last_copy(model)
    except Exception:  # its own layout then; run_model says in one line if it cannot run here
        if recipe is not None:  # one of ours: a bug
            raise
        return model


def choose_pixel_scale(filename, model, test_sets, input_kind, data_format, options):
    """(normalize, note): pixel_scale.choose on the model's outputs for the first pixel_scale.AUTO_SCALE_IMAGES test
    images, fed on each scale."""
    probabilities, labels = {}, None
    for normalize in (True, False):
        x, y, _ = test_sets.get(normalize, input_kind, data_format, **options)
        labels = y[:pixel_scale.AUTO_SCALE_IMAGES]
        probabilities[normalize] = scores.as_probabilities(run_model(filename, model, x[:len(labels)]))[0]
    return pixel_scale.choose(probabilities, labels)


def run_model(filename, model, inputs):
    """model's outputs for inputs, (N, 10); a model that cannot run on them, or gives other than 10 outputs per
    image, is a PairError naming the file (a teacher's folder holds models that nobody here wrote)."""
    try:
        outputs = np.asarray(model.predict(inputs, batch_size=PREDICT_BATCH_SIZE, verbose=0))
    except Exception as error:  # whatever a model from elsewhere raises, it is that file's failure only
        raise PairError(f"{filename}: Keras cannot run this model on MNIST digits "
                                    f"({short_error(error)})") from None
    if outputs.ndim != 2 or outputs.shape[1] != 10:
        raise PairError(f"{filename}: it gives outputs of shape {outputs.shape[1:]} per image, not "
                                    "MNIST's 10 classes")
    return outputs


def print_notes(notes):
    """The lines under a model's name: what wrote it, its input, the pixel scale chosen for it, its outputs."""
    print(f"   saved by {notes.get('writer', '?')}; input {notes.get('input', '?')}")
    for key in ("pixels", "outputs"):
        if notes.get(key):
            print(f"   {notes[key]}")


def warn_near_chance(filename, normalize, accuracy):
    if normalize and 100 - accuracy * 100 >= NEAR_CHANCE_ERROR:
        print(f"evaluate.py: {filename} scores near chance on pixels /255: it may expect raw pixels 0..255; "
              "try --normalize no", file=sys.stderr)


def result_row(run, entry, config, recipes):
    """A table row from what evaluating a pair gave (entry) and its history's config; "order": its recipe's place in
    the registry (recipes), for the report's tables."""
    recipe = recipes.get(entry["model"])
    error_rate = 100 - entry["accuracy"] * 100
    reference = recipe.reference_error if recipe else None
    return {**entry, "run": run, "recipe": recipe, "order": list(recipes).index(recipe.name) if recipe else None,
            "config": config, "epochs": config.get("epochs"),
            "error_rate": error_rate, "reference": reference,
            "difference": report.distance_outside(error_rate, reference)}


def draw_figures(plots_dir, run, run_history, matrix, class_names, misclassified):
    plots_dir.mkdir(parents=True, exist_ok=True)
    if run_history.get("epochs"):
        plots.plot_history(run_history["epochs"], plots_dir / f"{run}_history.png", f"{run}: training history",
                           run_history.get("config", {}).get("validation", "test"))  # the sheets validate on the test
    plots.plot_confusion_matrix(matrix, plots_dir / f"{run}_confusion.png", f"{run}: confusion matrix (test set)",
                                class_names)
    if misclassified is not None:
        plots.plot_misclassified(*misclassified, plots_dir / f"{run}_errors.png", run)


# What a model from elsewhere takes, by its input shape (None: any size): (input kind, data format)
FOREIGN_INPUTS = {(1, 28, 28): ("image", "channels_first"), (28, 28, 1): ("image", "channels_last"),
                  (28, 28): ("grid", None), (784,): ("flat", None)}


def input_layout(model, recipe=None):
    """(input kind, data format) for data.prepare_inputs: the recipe's input kind and the model's data format,
    else, for a model from elsewhere, what its input shape says (FOREIGN_INPUTS); ValueError for a model that
    takes anything else."""
    if recipe is not None:
        return recipe.input_kind, layout.model_data_format(model)
    shape = model.input_shape
    if isinstance(shape, list):
        raise ValueError(f"it takes {len(shape)} inputs, not one MNIST digit")
    dims = tuple(shape[1:])
    for known, formats in FOREIGN_INPUTS.items():
        if len(known) == len(dims) and all(d is None or d == k for d, k in zip(dims, known)):
            return formats
    raise ValueError(f"it takes inputs of shape {dims}, not MNIST's 28 x 28 digits "
                     "((784,), (28, 28), (28, 28, 1) or (1, 28, 28))")


def recipe_for(model, recipes, history=None):
    """The recipe of `recipes` (the registry) a model was built from, or None for a model from elsewhere.

    The run's history names it (train.py writes it); else the model's name does. Pairs saved before models
    carried their recipe's name call small_unnormalized "small": their history tells them apart.
    """
    name = ((history or {}).get("config") or {}).get("model") or model.name
    return recipes.get(name)


def load_run(filename, recipes, run_history=None, files=None):
    """A trained model and what its run recorded: (saved_models.Saved, recipe or None, normalize or None).

    The recipe is the one its history names, else its model's name (recipe_for); normalize is whether it takes
    pixels /255 as its history records it, else its recipe's choice, else None: nobody recorded it (a model from
    elsewhere), and the caller decides from the data (choose_pixel_scale). run_history: the model's history, if
    the caller has read it already.
    """
    saved = saved_models.load(filename, files)
    run_history = (history.read_history(saved.files[0].with_suffix("")) or {}) if run_history is None else run_history
    recipe = recipe_for(saved.model, recipes, run_history)
    if recipe is not None:  # compiled for model.evaluate, as load_keras_model compiles it
        recipe.compile(saved.model)
    else:
        saved.model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    normalize = run_history.get("config", {}).get("normalize", recipe.normalize if recipe else None)
    return saved, recipe, normalize
