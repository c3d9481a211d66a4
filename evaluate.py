"""Evaluate saved models on the MNIST test set, as the INSAT sheet does, and write the report.

    python evaluate.py                  # every pair under results/models/
    python evaluate.py results/models/large other_dir/
    python evaluate.py students/ --csv grades.csv   # a teacher's folder of models saved by any Keras

For each model: the sheet's two lines (Model score, Model error rate), then one
table of all of them beside the error rate that the sheet or its tutorial
reports. A model is a json + h5 pair (this project's, or Keras 2's), a Keras 3
.keras archive or a full-model .h5 file; its inputs are shaped to what it takes
and, where nothing recorded how it was trained, its pixel scale is chosen from
the data (choose_pixel_scale). For a results directory (train.py's, with a
models/ folder) it also writes, beside models/:
    RESULTS.md   one row per model (mean and sd over seeds), machine, versions
    plots/       per run: history, confusion matrix, misclassified test images
"""

import collections
import csv
import hashlib
import json
import statistics
import sys
from pathlib import Path

import numpy as np

import cli  # first of the project's modules: it chooses the Keras backend and loads it with native lines filtered
import backend
import data
import history
import metrics
import models
import persistence
import plots
from cli import UsageError, markdown_table
from metrics import print_model_error_rate  # noqa: F401  (the sheet's function, where the sheet's part 4.c uses it)

ROOT = Path(__file__).resolve().parent
PREDICT_BATCH_SIZE = 1000  # test images per predict call
# What `--readme` copies from RESULTS.md into the documents: {document: {marker: how the block starts in RESULTS.md}}
GENERATED = {"README.md": {"results": "| model | sheet | error rate |"},
             "README.fr.md": {"results": "| model | sheet | error rate |"},
             "docs/ladder.md": {"ladder": "| rung |", "ladder-goal": "Goal: `"}}
# README.fr.md's table in French: its header's words, and the sheets' names
FRENCH = {"| model | sheet | error rate | over seeds | reference | difference | train time |":
          "| modèle | TP | taux d'erreur | sur les graines | référence | écart | temps d'entraînement |",
          "beyond the sheets": "au-delà des TP", " seeds) |": " graines) |"}
NEAR_CHANCE_ERROR = 80.0  # % error: chance is 90%; a model trained on pixels 0..255 and fed /255 lands here
XRAY_DATA = ("get the 'Chest X-Ray Images (Pneumonia)' data set (Kermany et al. 2018, CC BY 4.0: Kaggle "
             "paultimothymooney/chest-xray-pneumonia or Mendeley Data doi:10.17632/rscbjbr9sj.2) and pass "
             "--data-dir DIR, the folder that holds its train/ and test/")


def find_pairs(paths):
    """The saved models that paths name: a directory's (models_in), a pair's name, any of its files, a .keras
    archive, a full-model .h5, each as model_name names it. UsageError for a path that names nothing."""
    found = []
    for path in map(Path, paths):
        if path.is_dir() and not (path / "saved_model.pb").is_file():
            found.extend(models_in(models_dir(path)))
            continue
        files = persistence.model_files(path)
        if not any(p.exists() for p in files):
            raise UsageError(f"{path}: no such directory, pair ({files[0].name} + weights) or model file")
        found.append(model_name(path))
    return found


def model_name(path):
    """A model named from any of its files: a pair by its name without extension, a single-file model as it is."""
    files = persistence.model_files(path)
    return files[0] if len(files) == 1 else files[0].with_name(files[0].name[: -len(persistence.JSON_SUFFIX)])


def models_in(directory):
    """Every saved model in directory and in its subfolders one level down (a course platform's download gives
    one folder per student): pairs (name.json + name.weights.h5 or name.h5), .keras archives, .h5 files that are
    not a pair's weights, TensorFlow SavedModel folders; sorted. Loading says what is wrong with a file that is
    not a model (a JSON without weights, weights without JSON): the teacher sees every file that was handed in."""
    directory = Path(directory)
    folders = [directory, *sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))]
    found = set()
    for folder in folders:
        if folder != directory and (folder / "saved_model.pb").is_file():
            found.add(folder)
            continue
        for path in folder.iterdir():
            if path.name.startswith(".") or not path.is_file() or path.name.endswith(".history.json"):
                continue
            if path.suffix in (persistence.JSON_SUFFIX, persistence.KERAS_SUFFIX, *persistence.HDF5_SUFFIXES):
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
    """get_data_mnist's test set, loaded once per normalisation and prepared once per input kind."""

    def __init__(self, test_limit=None):
        self.test_limit = test_limit
        self._test_sets, self._prepared, self._xrays = {}, {}, {}

    def xrays(self, data_dir):
        """A chest X-ray tree's test images and labels (all of them: --test-limit would keep only NORMAL ones),
        their file names and how they are stored (data.xray_storage), read once per tree."""
        key = str(Path(data_dir).resolve())
        if key not in self._xrays:
            paths = [path for path, _ in data.xray_files(data_dir)[0]["test"]]
            images, labels = data.load_xrays(data_dir, splits=("test",))["test"]
            self._xrays[key] = images, labels, [path.name for path in paths], data.xray_storage(paths)
        return self._xrays[key]

    def get(self, normalize, input_kind, data_format, **input_options):
        """(model inputs, one-hot labels, (N, 1, 28, 28) images for the figures)."""
        key = (normalize, input_kind, data_format, tuple(sorted(input_options.items())))
        if key not in self._prepared:
            if normalize not in self._test_sets:
                _, (X_test, y_test), _ = data.get_data_mnist(normalize)
                self._test_sets[normalize] = X_test[: self.test_limit], y_test[: self.test_limit]
            X_test, y_test = self._test_sets[normalize]
            self._prepared[key] = (data.prepare_inputs(X_test, input_kind, data_format, **input_options), y_test,
                                   X_test)
        return self._prepared[key]


class Kept:
    """What evaluating each MNIST pair gave, kept between runs (in the project's cache, data.cache_dir()) under a
    key of all that decides it: the pair's and its history's bytes, the options, the backend and the versions.
    An unchanged pair is then neither loaded nor evaluated again, and its figures are redrawn only if one is
    missing; `evaluate.py --redraw` ignores what was kept."""

    VERSION = 3  # raise it when what evaluate_pair measures or draws changes

    def __init__(self, path=None, ignore=False):
        self.path = Path(path or data.cache_dir() / "evaluations.json")
        try:
            self.entries = {} if ignore else json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def key(self, filename, normalize, test_limit):
        digest = hashlib.sha256(json.dumps([self.VERSION, normalize, test_limit, backend.versions()]).encode())
        for path in (*persistence.model_files(filename), Path(f"{filename}.history.json")):
            digest.update(path.read_bytes() if path.is_file() else b"-")
        return digest.hexdigest()

    def get(self, key, figures):
        entry = self.entries.get(key)
        return entry if entry and all(Path(path).is_file() for path in figures) else None

    def put(self, key, entry):
        self.entries[key] = entry

    def save(self):
        try:
            with data.replacing(self.path) as (temporary,):
                temporary.write_text(json.dumps(self.entries))
        except OSError:  # a cache that cannot be written costs time next run, nothing else
            pass


def figure_paths(plots_dir, run, run_history, mnist=True):
    """The figures draw_figures writes for a run."""
    if plots_dir is None:
        return []
    kinds = (["history"] if run_history.get("epochs") else []) + ["confusion"] + (["errors"] if mnist else [])
    return [str(Path(plots_dir) / f"{run}_{kind}.png") for kind in kinds]


def evaluate_pair(filename, test_sets, normalize=None, data_dir=None, plots_dir=None, kept=None, run=None):
    """Load one saved model (a pair, a .keras archive, a full-model .h5), print the sheet's lines, draw its
    figures into plots_dir, return a result row.

    normalize: None decides as load_run and choose_pixel_scale say. kept (a Kept): where an unchanged model's
    numbers were kept by an earlier run; they are printed and used again. run: its name in the tables.
    """
    run_history = history.read_history(filename) or {}
    config = run_history.get("config", {})
    run = run or Path(filename).name
    figures_name = run.replace("/", "_")
    key = kept.key(filename, normalize, test_sets.test_limit) if kept is not None else None
    entry = kept.get(key, figure_paths(plots_dir, figures_name, run_history)) if key else None
    print(f"== {filename}")
    if entry is not None:
        print_notes(entry)
        metrics.print_score(entry["accuracy"])
        warn_near_chance(filename, entry["normalize"], entry["accuracy"])
        # the key is the files' bytes: a copy elsewhere (two students handing in the same file) is named as itself
        here = {"file": str(filename)} if entry["model"] in models.MODELS else {"file": str(filename), "model": run}
        return result_row(run, {**entry, **here}, config)
    saved, recipe, trained_normalize = persistence.load_run(filename, run_history)
    model = saved.model
    xray, notes = None, {"writer": saved.writer, "input": str(tuple(model.input_shape[1:]))}
    if recipe is not None and recipe.input_kind == "xray":
        normalize = True  # the model rescales its own input
        test_loss, test_accuracy, xray = evaluate_xray(filename, model, run_history, data_dir, test_sets, plots_dir)
    else:
        compute_model = channels_last(model, recipe)
        try:
            input_kind, data_format = models.input_layout(compute_model, recipe)
        except ValueError as error:
            raise persistence.PairError(f"{filename}: not an MNIST digit model: {error}") from None
        options = recipe.input_options if recipe else {}
        if normalize is None:
            normalize = trained_normalize
        if normalize is None:
            normalize, notes["pixels"] = choose_pixel_scale(filename, compute_model, test_sets, input_kind,
                                                            data_format, options)
        print_notes(notes)
        x_test, y_test, images = test_sets.get(normalize, input_kind, data_format, **options)
        probabilities, logits = metrics.as_probabilities(run_model(filename, compute_model, x_test))
        if logits:
            notes["outputs"] = ("its outputs are not probabilities (no softmax at the end): scored by the largest, "
                                "the loss from their softmax")
            print(f"   {notes['outputs']}")
        # model.evaluate's two numbers, from the predictions that the figures need anyway
        test_loss, test_accuracy = metrics.loss_and_accuracy(probabilities, y_test)
        metrics.print_score(test_accuracy)
        warn_near_chance(filename, normalize, test_accuracy)
        labels, predictions = y_test.argmax(axis=1), probabilities.argmax(axis=1)
        matrix = plots.confusion_matrix(labels, predictions, y_test.shape[1])
        if plots_dir is not None:
            draw_figures(Path(plots_dir), figures_name, run_history, matrix, None, (images, labels, predictions))
    entry = {"model": recipe.name if recipe else run, "parameters": model.count_params(),
             "layers": models.count_parameters(model)[0], "normalize": normalize, "test_loss": test_loss,
             "accuracy": test_accuracy, "metrics": xray, "file": str(filename), **notes}
    if key and xray is None:  # the X-ray tree is the user's and may change: evaluated every time
        kept.put(key, entry)
    return result_row(run, entry, config)


def channels_last(model, recipe):
    """The model computing in channels_last, where TensorFlow runs convolutions on every CPU; the weights carry
    over unchanged (models.relayout). A model from elsewhere that cannot be moved (a layer that names an axis,
    say) computes as it was saved."""
    try:
        return models.compute_model(model)
    except Exception:  # its own layout then; run_model says in one line if it cannot run here
        if recipe is not None:  # one of ours: a bug
            raise
        return model


AUTO_SCALE_IMAGES = 500  # test images scored on each pixel scale when nothing recorded the model's
CLOSE_SCALES = 1.5  # a loss less than 1.5 times the other does not tell the scales apart
PIXELS = {True: "0..1", False: "0..255"}  # normalize: the pixel scale


def choose_pixel_scale(filename, model, test_sets, input_kind, data_format, options):
    """(normalize, note): the pixel scale, 0..1 or 0..255, on which `model` has the lower cross-entropy on the
    first AUTO_SCALE_IMAGES test images, for a model whose training nobody recorded (a model from elsewhere).

    The loss, not the accuracy: a relu network's largest output hardly moves when its inputs are 255 times
    larger or smaller (relu is linear above 0), so both scales can score the same; but fed the scale it was
    not trained on, a network is either overconfident (x255: its mistakes cost a lot) or nearly uniform (/255),
    and its loss is several times higher (the committed fixtures: 2.6-13x; tests/fixtures/README.md).
    The note says what was measured, and says so when the two losses are close.
    """
    scores = {}
    for normalize in (True, False):
        x, y, _ = test_sets.get(normalize, input_kind, data_format, **options)
        probabilities, _ = metrics.as_probabilities(run_model(filename, model, x[:AUTO_SCALE_IMAGES]))
        scores[normalize] = metrics.loss_and_accuracy(probabilities, y[:AUTO_SCALE_IMAGES])
    chosen = scores[True][0] <= scores[False][0]
    (loss, accuracy), (other_loss, other_accuracy) = scores[chosen], scores[not chosen]
    note = (f"pixels {PIXELS[chosen]}, chosen on {min(AUTO_SCALE_IMAGES, len(y))} test images: loss {loss:.3f} "
            f"({accuracy:.1%} right) against {other_loss:.3f} ({other_accuracy:.1%}) on {PIXELS[not chosen]}")
    if other_loss < CLOSE_SCALES * loss:
        note += "; the two are close: compare with --normalize yes and no"
    return chosen, note


def run_model(filename, model, inputs):
    """model's outputs for inputs, (N, 10); a model that cannot run on them, or gives other than 10 outputs per
    image, is a PairError naming the file (a teacher's folder holds models that nobody here wrote)."""
    try:
        outputs = np.asarray(model.predict(inputs, batch_size=PREDICT_BATCH_SIZE, verbose=0))
    except Exception as error:  # whatever a model from elsewhere raises, it is that file's failure only
        raise persistence.PairError(f"{filename}: Keras cannot run this model on MNIST digits "
                                    f"({persistence.short_error(error)})") from None
    if outputs.ndim != 2 or outputs.shape[1] != 10:
        raise persistence.PairError(f"{filename}: it gives outputs of shape {outputs.shape[1:]} per image, not "
                                    "MNIST's 10 classes")
    return outputs


def print_notes(notes):
    """The lines under a model's name: what wrote it, its input, the pixel scale chosen for it, its outputs."""
    print(f"   saved by {notes.get('writer', '?')}; input {notes.get('input', '?')}")
    for key in ("pixels", "outputs"):
        if notes.get(key):
            print(f"   {notes[key]}")


def evaluate_xray(filename, model, run_history, data_dir, test_sets, plots_dir=None):
    """A chest X-ray pair on the test images of data_dir, or of the tree it was trained on: the sheet's two lines,
    precision, recall, F1, ROC AUC and the confusion matrix, and its figures. Returns (test loss, test accuracy,
    scores). Without --data-dir and without that tree, one line says where to get the data set, and the scores
    its history recorded at the end of training stand in (figures: history and confusion matrix only)."""
    recorded = run_history.get("config", {}).get("data_dir")
    here = [Path(recorded), ROOT / recorded] if recorded else []  # a relative folder: from where train.py ran
    found = data_dir or next((str(path) for path in here if path.is_dir()), None)
    run = Path(filename).name
    if found is None:
        test = run_history.get("test", {})
        if "metrics" not in test:
            raise UsageError(f"{filename}: a chest X-ray model, and its test images are not here; {XRAY_DATA}")
        sys.stdout.flush()  # the line comes after the pair's name
        print(f"evaluate.py: {filename}: its test images ({recorded or 'folder not recorded'}) are not here: the scores "
              f"below are those recorded at the end of its training; to evaluate it again, {XRAY_DATA}",
              file=sys.stderr)
        metrics.print_score(test["accuracy"])
        metrics.print_xray_metrics(test["metrics"])
        if plots_dir is not None:
            draw_xray_figures(Path(plots_dir), run, run_history, test["metrics"])
        return test["loss"], test["accuracy"], test["metrics"]
    images, labels, names, stored_as = test_sets.xrays(found)
    test_loss, test_accuracy = metrics.print_model_error_rate(model, images, labels)
    probabilities = metrics.xray_probabilities(model, images)
    scores = {**metrics.xray_scores(probabilities, labels), "test_images_stored_as": stored_as}
    metrics.print_xray_metrics(scores)
    if plots_dir is not None:
        draw_xray_figures(Path(plots_dir), run, run_history, scores, (images, labels, probabilities, names))
    return test_loss, test_accuracy, scores


def xray_source(stored_as, short=False):
    """What every chest X-ray number or figure says with it: the data set, its credit, how its test images are
    stored (a copy re-saved at one size is not the original files, whose sizes vary)."""
    stored_as = stored_as or "stored as not recorded"
    one_size = stored_as[:1].isdigit() and " sizes" not in stored_as
    if short:
        return (f"Chest X-rays: Kermany et al. 2018, CC BY 4.0; test images {stored_as}"
                + (" (a re-saved copy)" if one_size else ""))
    return ("the test radiographs of the 'Chest X-Ray Images (Pneumonia)' data set (Kermany et al. 2018, CC BY 4.0), "
            f"stored {stored_as}" + (": a copy re-saved at one size by third parties, not the original files (results "
                                     "on those are close, not identical; docs/data.md)" if one_size else ""))


def draw_xray_figures(plots_dir, run, run_history, scores, predictions=None):
    """plots/<run>_history.png, _confusion.png and, with predictions (images, labels, PNEUMONIA probabilities,
    file names), _roc.png (the 0.5 threshold marked) and _errors.png (misclassified radiographs, named)."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    credit = xray_source(scores.get("test_images_stored_as"), short=True)
    if run_history.get("epochs"):
        plots.plot_history(run_history["epochs"], plots_dir / f"{run}_history.png", f"{run}: training history",
                           run_history.get("config", {}).get("validation", "val"), credit=credit)
    plots.plot_confusion_matrix(np.array(scores["confusion_matrix"]), plots_dir / f"{run}_confusion.png",
                                f"{run}: confusion matrix\n(test set, threshold {scores.get('threshold', 0.5):g})",
                                list(data.XRAY_CLASSES), credit=credit.replace("; ", ";\n"))
    if predictions is None:
        return
    images, labels, probabilities, names = predictions
    fpr, tpr, _ = metrics.roc_curve(probabilities, labels)
    (tn, fp), (fn, tp) = scores["confusion_matrix"]
    plots.plot_roc(fpr, tpr, scores["roc_auc"], (fp / max(fp + tn, 1), tp / max(tp + fn, 1)),
                   plots_dir / f"{run}_roc.png", f"{run}: ROC curve on the {len(labels)} test radiographs",
                   threshold=scores.get("threshold", 0.5), credit=credit.replace("; ", ";\n"))
    plots.plot_misclassified_xrays(images, labels, probabilities, names, plots_dir / f"{run}_errors.png", run,
                                   threshold=scores.get("threshold", 0.5), credit=credit)


def xray_rows(rows):
    """The chest X-ray runs among rows (their scores in row["metrics"]), default seed first."""
    return group_by_model([row for row in rows if row.get("metrics")]).get("pneumonia", [])


def xray_table(runs):
    """Per chest X-ray run: accuracy, precision, recall, F1, specificity, ROC AUC, the confusion matrix and its
    training time; then their mean ± sample sd over the runs."""
    keys = ["accuracy", "precision", "recall", "f1", "specificity", "roc_auc"]
    header = ["run", "test images", "accuracy", "precision", "recall", "F1", "specificity", "ROC AUC",
              "confusion [[TN, FP], [FN, TP]]", "train time"]

    def cell(key, value):
        return "-" if value is None else f"{value * 100:.2f}%" if key == "accuracy" else f"{value:.3f}"

    table = [[row["run"], row["metrics"]["images"], *(cell(key, row["metrics"].get(key)) for key in keys),
              str(row["metrics"]["confusion_matrix"]), train_time(row)] for row in runs]
    if len(runs) > 1:
        spreads = []
        for key in keys:
            values = [row["metrics"].get(key) for row in runs]
            if None in values:
                spreads.append("-")
                continue
            scale, unit, digits = (100, "%", 2) if key == "accuracy" else (1, "", 3)
            spreads.append(f"{statistics.mean(values) * scale:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"
                           f"{unit}")
        seconds = recorded_seconds(runs)
        table.append([f"mean ± sd ({len(runs)} runs)", "", *spreads, "",
                      f"{statistics.mean(seconds):.0f} s" if seconds else "-"])
    return markdown_table(header, table)


def xray_section(runs):
    """RESULTS.md's lines on the chest X-rays: where the numbers come from, the scores per run, the references."""
    stored = sorted({row["metrics"].get("test_images_stored_as") or "" for row in runs})
    return [
        "## Chest X-rays (ARN PW4, part 2)", "",
        f"The `pneumonia` runs on {' / '.join(xray_source(kind) for kind in stored)}. PNEUMONIA is the positive "
        "class; a radiograph is called PNEUMONIA when the model's probability is above 0.5 (as Keras's accuracy); "
        "ROC AUC does not depend on that threshold. During training the runs validate on the tree's val/ folder "
        "(16 radiographs in the public data set), too few to choose anything on (docs/data.md). Figures per run in plots/: "
        "`<run>_history.png`, `<run>_confusion.png`, `<run>_roc.png` (the 0.5 threshold marked) and "
        "`<run>_errors.png` (misclassified radiographs with their file names). Reproduce: `python train.py --model "
        "pneumonia --data-dir DIR --seeds 7,8,9`, then `python evaluate.py --data-dir DIR`.", "",
        xray_table(runs), "",
        "References: the ARN students report about 76-80% test accuracy with recall near 0.99; Kermany et al. "
        "(Cell, 2018) report 92.8% accuracy (sensitivity 93.2%, specificity 90.1%) with transfer learning from an "
        "ImageNet-trained Inception v3, on the original images.", "",
    ]


def warn_near_chance(filename, normalize, accuracy):
    if normalize and 100 - accuracy * 100 >= NEAR_CHANCE_ERROR:
        print(f"evaluate.py: {filename} scores near chance on pixels /255: it may expect raw pixels 0..255; "
              "try --normalize no", file=sys.stderr)


def result_row(run, entry, config):
    """A table row from what evaluating a pair gave (entry) and its history's config."""
    recipe = models.MODELS.get(entry["model"])
    error_rate = 100 - entry["accuracy"] * 100
    reference = recipe.reference_error if recipe else None
    return {**entry, "run": run, "recipe": recipe, "config": config, "epochs": config.get("epochs"),
            "error_rate": error_rate, "reference": reference, "difference": distance_outside(error_rate, reference)}


def draw_figures(plots_dir, run, run_history, matrix, class_names, misclassified):
    plots_dir.mkdir(parents=True, exist_ok=True)
    if run_history.get("epochs"):
        plots.plot_history(run_history["epochs"], plots_dir / f"{run}_history.png", f"{run}: training history",
                           run_history.get("config", {}).get("validation", "test"))  # the sheets validate on the test
    plots.plot_confusion_matrix(matrix, plots_dir / f"{run}_confusion.png", f"{run}: confusion matrix (test set)",
                                class_names)
    if misclassified is not None:
        plots.plot_misclassified(*misclassified, plots_dir / f"{run}_errors.png", run)


def distance_outside(value, reference):
    """How far value lies outside the reference range (0 inside it); None without reference."""
    if reference is None:
        return None
    low, high = reference
    return value - high if value > high else value - low if value < low else 0.0


def format_reference(reference):
    if reference is None:
        return "-"
    low, high = reference
    return f"{low:.2f}%" if low == high else f"{low:.2f}-{high:.2f}%"


def format_difference(difference):
    return "-" if difference is None else "within" if difference == 0 else f"{difference:+.2f}"


def results_table(rows):
    """One line per model, as printed after the sheet's lines."""
    header, table = results_cells(rows)
    return markdown_table(header, table)


def results_cells(rows):
    """(header, rows of cells) of the printed table, also what --csv writes."""
    header = ["model", "saved by", "input", "parameters", "epochs", "normalised", "test loss", "accuracy",
              "error rate", "reference", "difference"]
    return header, [
        [row["run"], row.get("writer", "?"), row.get("input", "?"), f"{row['parameters']:,}", row["epochs"] or "?",
         normalised(row), f"{row['test_loss']:.4f}", f"{row['accuracy'] * 100:.2f}%", f"{row['error_rate']:.2f}%",
         format_reference(row["reference"]), format_difference(row["difference"])]
        for row in rows
    ]


def normalised(row):
    """'yes' or 'no' (pixels /255 or 0..255), with '(chosen)' when choose_pixel_scale decided from the data."""
    return ("yes" if row["normalize"] else "no") + (" (chosen)" if row.get("pixels") else "")


def write_csv(rows, path):
    """The printed table as CSV, for a spreadsheet, with each model's file and notes (pixel scale, outputs);
    written atomically."""
    header, table = results_cells(rows)
    with data.replacing(Path(path)) as (temporary,):
        with open(temporary, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["file", *header, "notes"])
            for row, cells in zip(rows, table):
                notes = "; ".join(row[key] for key in ("pixels", "outputs") if row.get(key))
                writer.writerow([row.get("file", row["run"]), *cells, notes])


def group_by_model(rows):
    """{model name: [rows of its runs]}, the default-seed run first, in registry order."""
    order = {name: index for index, name in enumerate(models.MODELS)}
    groups = {}
    for row in rows:
        groups.setdefault(row["model"], []).append(row)
    for runs in groups.values():
        runs.sort(key=lambda row: (row["run"] != row["model"], row["run"]))
    return dict(sorted(groups.items(), key=lambda item: order.get(item[0], len(order))))


def seed_spread(runs):
    """'mean ± sd (n)' of the error rates of a model's runs; '-' for a single run."""
    rates = [row["error_rate"] for row in runs]
    if len(rates) < 2:
        return "-"
    return f"{statistics.mean(rates):.2f} ± {statistics.stdev(rates):.2f}% ({len(rates)} seeds)"


def summary_table(rows):
    """The READMEs' table: per model, its default-seed run's error rate, the spread over seeds, the reference."""
    header = ["model", "sheet", "error rate", "over seeds", "reference", "difference", "train time"]
    table = []
    for name, runs in group_by_model(rows).items():
        row = runs[0]
        table.append([name, row["recipe"].sheet if row["recipe"] else "-", f"{row['error_rate']:.2f}%",
                      seed_spread(runs), format_reference(row["reference"]), format_difference(row["difference"]),
                      train_time(row)])
    return markdown_table(header, table)


def report_table(rows):
    """RESULTS.md's table: one row per model (its default-seed run), with the spread over seeds."""
    header = ["model", "sheet", "parameters", "epochs", "batch", "optimizer", "normalised", "test loss", "accuracy",
              "error rate", "over seeds", "reference", "difference", "train time", "trained with"]
    table = []
    for name, runs in group_by_model(rows).items():
        row, recipe, config = runs[0], runs[0]["recipe"], runs[0]["config"]
        table.append([
            name, recipe.sheet if recipe else "-", f"{row['parameters']:,}", row["epochs"] or "?",
            config.get("batch_size", "?"), config.get("optimizer", "?"), normalised(row),
            f"{row['test_loss']:.4f}", f"{row['accuracy'] * 100:.2f}%", f"{row['error_rate']:.2f}%",
            seed_spread(runs), format_reference(row["reference"]), format_difference(row["difference"]),
            train_time(row), history.trained_with(config) or "-",
        ])
    return markdown_table(header, table)


def ladder_table(rows):
    """The ladder beyond the sheets: per rung, what it adds, the mean ± sd of its seeds' error rates, the gain
    over the rung before it and its training time per run; None until every rung has been trained."""
    groups = group_by_model(rows)
    if not all(name in groups for name in models.LADDER):
        return None
    header = ["rung", "adds", "parameters", "epochs", "error rate, mean ± sd", "seeds", "gain over the rung before",
              "train time per run"]
    table, previous = [], None
    for name in models.LADDER:
        runs, recipe = groups[name], models.MODELS[name]
        rates = [row["error_rate"] for row in runs]
        mean = statistics.mean(rates)
        spread = f"{mean:.2f} ± {statistics.stdev(rates):.2f}%" if len(rates) > 1 else f"{mean:.2f}%"
        seconds = recorded_seconds(runs)
        adds = "the sheet's small CNN, pixels /255" if recipe.sheet != models.BEYOND else recipe.description
        table.append([name, adds, f"{runs[0]['parameters']:,}", runs[0]["epochs"] or "?", spread, len(rates),
                      "-" if previous is None else f"{previous - mean:+.2f} points",
                      f"{statistics.mean(seconds) / 60:.1f} min" if seconds else "-"])
        previous = mean
    return markdown_table(header, table)


def recorded_seconds(runs):
    """The training seconds of those runs whose history records them (older histories may not)."""
    return [row["config"]["train_seconds"] for row in runs if row["config"].get("train_seconds") is not None]


def train_time(row):
    """A run's training time for a table: "300 s", or "-" when its history does not record it."""
    seconds = recorded_seconds([row])
    return f"{seconds[0]:.0f} s" if seconds else "-"


def ladder_figure(rows, path):
    """results/plots/ladder.png: each rung's error rate (its seeds and their mean) and its training time."""
    groups = group_by_model(rows)
    rates = [[row["error_rate"] for row in groups[name]] for name in models.LADDER]
    minutes = [statistics.mean(recorded_seconds(groups[name]) or [float("nan")]) / 60 for name in models.LADDER]
    plots.plot_ladder(models.LADDER, rates, minutes, path, goal=models.LADDER_GOAL_ERROR,
                      limit_minutes=models.LADDER_TIME_LIMIT)


def parameters_table(rows):
    """Sheet part 3 (do deeper models have more weights?): trainable weights per layer and in total."""
    table = []
    for runs in sorted(group_by_model(rows).values(), key=lambda runs: runs[0]["parameters"]):
        per_layer = runs[0]["layers"]
        weighted = [f"{kind} {count:,}" for _, kind, count in per_layer if count]
        table.append([runs[0]["model"], len(weighted), ", ".join(weighted), f"{sum(c for _, _, c in per_layer):,}"])
    return markdown_table(["model", "layers with weights", "weights per layer", "total"], table)


def write_report(rows, path, ladder=None):
    """RESULTS.md: the results table, notes on references, the part 3 table, machine and versions; ladder: the
    ladder's table (ladder_table), if every rung has been trained."""
    versions = backend.versions()
    notes = [f"- **{name}**: {runs[0]['recipe'].note}" for name, runs in group_by_model(rows).items()
             if runs[0]["recipe"] is not None and runs[0]["recipe"].note]
    sources = [f"- **{name}**: {format_reference(runs[0]['reference'])}, {runs[0]['recipe'].reference_source}"
               + (f"; the sheet's test loss {runs[0]['recipe'].reference_loss:.4f}, ours {runs[0]['test_loss']:.4f}"
                  if runs[0]["recipe"].reference_loss else "")
               for name, runs in group_by_model(rows).items() if runs[0]["reference"] is not None]
    configs = [row["config"] for row in rows if row["config"]]
    devices = sorted({config.get("device", "?") for config in configs}) or ["?"]
    machines = sorted({config["machine"] for config in configs if config.get("machine")}) or ["unknown"]
    timed = recorded_seconds([row for row in rows if row["config"]])
    backends = collections.Counter(history.trained_with(config) for config in configs)
    text = "\n".join([
        "# Results", "",
        "Written by `python evaluate.py` from the pairs in models/ (trained by `python train.py`).",
        "Error rate: the default-seed (7) run on the 10,000 MNIST test images; *over seeds*: mean ± sample sd",
        "of all its runs; *difference*: how far the error rate lies outside the reference range.", "",
        summary_table(rows), "",
        *([f"pneumonia's error rate: on {xray_source(xray_rows(rows)[0]['metrics'].get('test_images_stored_as'))}; "
           "its scores: Chest X-rays below.", ""] if xray_rows(rows) else []),
        "All the columns:", "",
        report_table(rows), "",
        *(ladder_section(rows, ladder) if ladder else []),
        *(xray_section(xray_rows(rows)) if xray_rows(rows) else []),
        "## References", "", *sources, "",
        *(["## Notes", "", *notes, ""] if notes else []),
        "## Weights per layer (ARN sheet, part 3)", "", parameters_table(rows), "",
        "## Where these numbers come from", "",
        f"- Trained on: {'; '.join(machines)} ({', '.join(devices)}); evaluated on: {history.machine_description()}",
        f"- Training time, {'all' if len(timed) == len(configs) else f'the {len(timed)} of'} {len(configs)} runs"
        f"{'' if len(timed) == len(configs) else ' that record it'}: {sum(timed) / 60:.1f} min",
        "- Trained with (Keras backend, device): " + "; ".join(f"{name}: {count} runs" for name, count in
                                                               sorted(backends.items())),
        f"- Evaluated with: Python {versions['python']}, {versions['backend']} {versions[versions['backend']]}, "
        f"Keras {versions['keras']}, NumPy {versions['numpy']}",
        f"- Commit: {history.commit_description()}", "",
    ])
    Path(path).write_text(text)


def ladder_section(rows, ladder):
    """RESULTS.md's lines on the ladder beyond the sheets: how it was chosen, its table, where it was trained."""
    groups = group_by_model(rows)
    rungs_by_machines = {}  # "machine; machine" -> the rungs whose seeds were trained there, in ladder order
    for name in models.LADDER:
        machines = "; ".join(sorted({row["config"].get("machine", "unknown") for row in groups[name]}))
        rungs_by_machines.setdefault(machines, []).append(name)
    where = "; ".join(f"{', '.join(names)}: {machines}" for machines, names in rungs_by_machines.items())
    return [
        "## Beyond the sheets: a ladder from the sheet's small CNN", "",
        "Each rung adds one idea to the rung before it (`python train.py --model NAME`, seeds 7, 8, 9). The rungs "
        "after `small` hold out the last 5,000 training images as validation data; every choice (learning rate, "
        "schedule, resampling, the third convolution, epochs) was made on those, and the test set was used once per "
        "run, after training (results/logs/ladder_choices.txt). *Gain*: how many points of error rate the rung's "
        "mean takes off the mean of the rung before it. Figure: plots/ladder.png.", "",
        ladder, "",
        ladder_goal(groups[models.LADDER[-1]]), "",
        f"Trained on (train times are comparable within one machine only): {where}.", "",
    ]


def ladder_goal(runs):
    """One sentence: whether the last rung's runs meet the ladder's goal (models.LADDER_GOAL_ERROR as their mean
    error rate, each run trained in under models.LADDER_TIME_LIMIT minutes), and by how much they miss it."""
    goal, limit = models.LADDER_GOAL_ERROR, models.LADDER_TIME_LIMIT
    # Three decimals: fine enough for one test image in one of three runs, coarse enough to drop the float noise of
    # the accuracies; the table's two decimals would call a mean of 0.403% "at most 0.40%".
    mean = round(statistics.mean(row["error_rate"] for row in runs), 3)
    seconds = recorded_seconds(runs)
    longest = max(seconds, default=0) / 60
    unknown = len(runs) - len(seconds)  # a run without its time cannot show that it was under the limit
    misses = ([f"{mean - goal:.3f} points of error above it"] if mean > goal else []) + (
        [f"a run trained {longest:.1f} min"] if longest >= limit else [])
    verdict = (f"missed, {' and '.join(misses)}" if misses else
               f"not shown, {unknown} of its runs without a recorded training time" if unknown else "met")
    times = f"the longest {longest:.1f} min" if seconds else "no training time recorded"
    return (f"Goal: `{runs[0]['model']}` at most {goal:.2f}% error ({100 - goal:.2f}% accuracy) as the mean of its "
            f"seeds, each run trained in under {limit} minutes: {verdict}. "
            f"Its {len(runs)} runs: {mean:.3f}% ({100 - mean:.3f}% accuracy), {times}.")


def generated_block(report_text, document, marker):
    """The block of RESULTS.md (its text) that `document` shows between its `marker` markers, or None."""
    opening = GENERATED[document][marker]
    block = next((block for block in report_text.split("\n\n") if block.startswith(opening)), None)
    if block is not None and document.endswith(".fr.md"):
        for english, french in FRENCH.items():
            block = block.replace(english, french)
    return block


def update_readme(report_path, root=ROOT):
    """Copy RESULTS.md's generated blocks between the documents' markers (<!-- results:start --> ...): the
    results table into both READMEs (in French in README.fr.md), the ladder's table and goal line into
    docs/ladder.md."""
    report_text = Path(report_path).read_text()
    for document, markers in GENERATED.items():
        path = Path(root) / document
        text = path.read_text()
        for marker in markers:
            start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
            generated = generated_block(report_text, document, marker)
            if generated is None:
                continue
            if start not in text or end not in text:
                raise UsageError(f"{path}: no {start} ... {end} markers to fill")
            head, rest = text.split(start, 1)
            _, tail = rest.split(end, 1)
            text = f"{head}{start}\n{generated}\n{end}{tail}"
        path.write_text(text)


def make_parser():
    """The command line's parser (the docs test reads its flags)."""
    parser = cli.OneLineErrorParser(description="Evaluate saved json + h5 pairs on the test set and write "
                                                "RESULTS.md and figures.")
    parser.add_argument("paths", nargs="*", default=[history.DEFAULT_OUT], metavar="PATH",
                        help="results directories, folders of saved models (and their subfolders), pairs (name "
                             "without extension, or any of its files), .keras archives, full-model .h5 files")
    parser.add_argument("--normalize", choices=["auto", "yes", "no"], default="auto",
                        help="pixels /255 (yes) or 0..255 (no); auto: what the model was trained with (its history "
                             "or recipe), else the scale it scores clearly better on (500 test images)")
    parser.add_argument("--csv", metavar="FILE", help="also write the printed table to FILE as CSV (a spreadsheet)")
    parser.add_argument("--data-dir", metavar="DIR", help="chest X-ray tree for pneumonia pairs "
                                                           "(default: the one it was trained on)")
    parser.add_argument("--params", action="store_true",
                        help="also print each model's trainable weights per layer (ARN sheet part 3)")
    parser.add_argument("--no-report", action="store_true", help="print only: no RESULTS.md, no figures")
    parser.add_argument("--readme", action="store_true",
                        help="also copy RESULTS.md's tables into README.md, README.fr.md and docs/ladder.md "
                             "(for maintainers)")
    parser.add_argument("--test-limit", type=int, metavar="N", help="evaluate on the first N test images only")
    parser.add_argument("--redraw", action="store_true",
                        help="evaluate every pair and draw every figure again, also those unchanged since the last "
                             "run (their numbers are kept in the project's cache otherwise)")
    return parser


def parse_args(argv=None):
    return make_parser().parse_args(argv)


def run(args):
    print(backend.describe(), flush=True)
    normalize = {"auto": None, "yes": True, "no": False}[args.normalize]
    pairs = find_pairs(args.paths)
    if not pairs:
        raise UsageError(f"no trained model in {', '.join(args.paths)}; train one first: python train.py --model large")
    # A single results directory (train.py's: models/ inside) gets its report and figures; a folder of models
    # from elsewhere (a teacher's) and loose files are only printed: nothing is written among them.
    report_dir = None
    if not args.no_report and len(args.paths) == 1 and (Path(args.paths[0]) / "models").is_dir():
        report_dir = Path(args.paths[0])
    test_sets = TestSets(args.test_limit)
    kept = Kept(ignore=args.redraw)
    rows, failures = [], 0
    for filename in pairs:
        try:
            rows.append(evaluate_pair(filename, test_sets, normalize, args.data_dir,
                                      report_dir / "plots" if report_dir else None, kept,
                                      display_name(filename, args.paths)))
        except cli.PROJECT_ERRORS as error:  # one bad file does not stop the others
            print(f"evaluate.py: error: {error}", file=sys.stderr, flush=True)
            failures += 1
    kept.save()
    if args.csv:
        write_csv(rows, args.csv)
    if rows:
        print()
        print(results_table(rows))
        if args.params:
            print()
            print(parameters_table(rows))
        if report_dir is not None:
            ladder = ladder_table(rows)
            write_report(rows, report_dir / "RESULTS.md", ladder)
            if ladder:
                ladder_figure(rows, report_dir / "plots" / "ladder.png")
            if args.readme:
                update_readme(report_dir / "RESULTS.md")
            print(f"\nWrote {report_dir / 'RESULTS.md'} and figures in {report_dir / 'plots'}/")
    return 1 if failures else 0


def main(argv=None):
    return cli.main("evaluate.py", run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
